"""Benchmark of the link (MirrorMaker 2 over mutual TLS) beside raw Kafka on the same machine, same run.

    python bench/bench_link.py                         # two throwaway sites on free ports
    XBG_BENCH_LINK_PORT_BASE=29180 python bench/bench_link.py --rate 100 --seconds 10

Prints:
1. MirrorMaker start time (``LinkMirror.start()`` until its replication task runs) and stop time;
2. baseline: raw aiokafka produce -> consume latency (read_committed, transactional producer, one record per
   transaction) on one cluster at the offered rate;
3. the link: the same stream produced at the VN site, consumed at the CN site after MirrorMaker carried it
   (p50/p99/max of consume time - produce timestamp; both on this machine's clock).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from xborder_gateway.config import Settings, load_settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _sites(root: Path) -> dict[str, Settings]:
    base = os.environ.get("XBG_BENCH_LINK_PORT_BASE")
    ports: dict[str, tuple[int, ...]] = (
        {"VN": tuple(range(int(base), int(base) + 4)), "CN": tuple(range(int(base) + 5, int(base) + 9))}
        if base else {s: tuple(_free_port() for _ in range(4)) for s in ("VN", "CN")})
    out = {}
    for site, other in (("VN", "CN"), ("CN", "VN")):
        p = ports[site]
        out[site] = load_settings(home=root / site.lower(), site_authority=site, kafka_port=p[0],
                                  kafka_controller_port=p[1], kafka_link_port=p[2], link_rest_port=p[3],
                                  link_remote_bootstrap=f"127.0.0.1:{ports[other][2]}")
    return out


async def _latency(produce_at: str, consume_at: str, topic: str, rate: float, seconds: float) -> list[float]:
    """Latencies (ms) of a paced stream: one record per transaction, consumed read_committed."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    count = int(rate * seconds)
    run = uuid.uuid4().hex[:8].encode()
    producer = AIOKafkaProducer(bootstrap_servers=produce_at, transactional_id=f"bench-{uuid.uuid4().hex}")
    await producer.start()
    lat: list[float] = []
    admin = AIOKafkaAdminClient(bootstrap_servers=consume_at)
    await admin.start()
    parts: list[int] = []
    for _ in range(120):
        meta = [m for m in await admin.describe_topics([topic]) if m.get("error_code", 0) == 0]
        if meta:
            parts = [p["partition"] for p in meta[0]["partitions"]]
            break
        await asyncio.sleep(0.5)
    await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=consume_at, isolation_level="read_committed", group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in parts]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)

    async def consume() -> None:
        deadline = time.monotonic() + seconds + 60
        while len(lat) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            now = time.time() * 1000
            for records in batch.values():
                for rec in records:
                    if rec.value and rec.value.startswith(run):
                        lat.append(now - rec.timestamp)

    task = asyncio.create_task(consume())
    start = time.monotonic()
    for i in range(count):
        async with producer.transaction():
            await producer.send(topic, run + b"-%d" % i)
        delay = start + (i + 1) / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    await task
    await producer.stop()
    await consumer.stop()
    return lat


def _report(name: str, lat: list[float], expected: int) -> None:
    print(f"{name:34} n={len(lat)}/{expected}  p50 {statistics.median(lat):7.1f} ms  p99 {_pct(lat, 0.99):7.1f} ms"
          f"  max {max(lat):7.1f} ms" if lat else f"{name}: nothing arrived")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0, help="records per second offered (default 100)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the paced stream runs (default 10)")
    args = parser.parse_args(argv)

    from xborder_gateway.envelope import export_bundle, import_bundle, init_authority
    from xborder_gateway.kafka_local import LocalKafka
    from xborder_gateway.link import LinkMirror, init_link_pki

    with tempfile.TemporaryDirectory(prefix="xbg-bench-link-") as tmp:
        sites = _sites(Path(tmp))
        for name, s in sites.items():
            init_authority(s, name, b"bench")
            init_link_pki(s, b"bench")
        import_bundle(sites["CN"], "CN", export_bundle(sites["VN"], "VN"))
        import_bundle(sites["VN"], "VN", export_bundle(sites["CN"], "CN"))
        brokers = [LocalKafka(s) for s in sites.values()]
        mirror: Any = None
        try:
            for b in brokers:
                b.start(timeout=180)
            from aiokafka.admin import AIOKafkaAdminClient, NewTopic

            async def topics() -> None:
                admin = AIOKafkaAdminClient(bootstrap_servers=sites["VN"].bootstrap_local)
                await admin.start()
                with contextlib.suppress(Exception):
                    await admin.create_topics([NewTopic("xb.vn-cn.exchange", 3, 1), NewTopic("bench.base", 3, 1)])
                await admin.close()

            asyncio.run(topics())
            mirror = LinkMirror(sites["CN"])
            started = time.monotonic()
            mirror.start(timeout=300)
            print(f"{'MirrorMaker start':34} {time.monotonic() - started:.1f} s (until the replication task runs)")
            expected = int(args.rate * args.seconds)
            base = asyncio.run(_latency(sites["VN"].bootstrap_local, sites["VN"].bootstrap_local, "bench.base",
                                        args.rate, args.seconds))
            _report(f"baseline: one cluster @{args.rate:.0f}/s", base, expected)
            link = asyncio.run(_latency(sites["VN"].bootstrap_local, sites["CN"].bootstrap_local,
                                        "xb.vn-cn.exchange", args.rate, args.seconds))
            _report(f"link VN -> CN @{args.rate:.0f}/s", link, expected)
            stopping = time.monotonic()
            mirror.stop()
            print(f"{'MirrorMaker stop':34} {time.monotonic() - stopping:.1f} s")
            mirror = None
        finally:
            if mirror is not None:
                mirror.stop()
            for b in brokers:
                b.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
