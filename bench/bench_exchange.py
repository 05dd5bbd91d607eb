"""Benchmark of the full exchange against raw aiokafka on the same broker, in the same run.

    python bench/bench_exchange.py                 # broker: $XBG_KAFKA_BOOTSTRAP, else a throwaway local one
    python bench/bench_exchange.py --count 3000 --rate 500 --rate-seconds 10

Prints:
1. raw aiokafka, same broker, payloads of the exchanged envelopes' size: produce -> consume (read_committed)
   throughput, and p50/p99 latency at the fixed offered rate;
2. the full exchange (outbound, Nanning endpoint, receipt tracker as three processes, as in production):
   end-to-end declarations/s from first publish to last receipt, and p50/p99 publish -> receipt latency at
   the fixed offered rate; the ratio to raw Kafka;
3. the single-threaded CPU cost of each pure stage per declaration (what bounds the throughput).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sqlite3
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
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


# --- 1. raw aiokafka -------------------------------------------------------------------------------------
async def raw_kafka(bootstrap: str, size: int, count: int, rate: float, seconds: float) -> dict[str, float]:
    from xborder_gateway.transport import ensure_topics, make_consumer, make_producer

    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [topic], 3)
    producer = make_producer(bootstrap)
    consumer = make_consumer(bootstrap, group_id=None, batch_max=5000, topics=(topic,))
    await producer.start()
    await consumer.start()
    await consumer.seek_to_end()
    filler = os.urandom(size)
    latencies: list[float] = []
    got = 0
    total = count + int(rate * seconds)
    first_recv = [0.0, 0.0]

    async def consume() -> None:
        nonlocal got
        while got < total:
            batch = await consumer.getmany(timeout_ms=500)
            now = time.time()
            for records in batch.values():
                for r in records:
                    got += 1
                    if got == count:
                        first_recv[1] = now
                    stamp = float(r.value[:20].decode())
                    if got > count:
                        latencies.append((now - stamp) * 1000)

    task = asyncio.create_task(consume())
    t0 = time.time()
    futures = []
    for _ in range(count):  # throughput: as fast as the producer goes
        futures.append(await producer.send(topic, value=f"{time.time():20.6f}".encode() + filler[20:]))
    await asyncio.gather(*futures)
    while got < count:  # noqa: ASYNC110 - a benchmark's poll, 10 ms granularity is fine
        await asyncio.sleep(0.01)
    tput = count / (first_recv[1] - t0)
    start = time.monotonic()  # latency at the offered rate
    n = int(rate * seconds)
    for i in range(n):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await producer.send(topic, value=f"{time.time():20.6f}".encode() + filler[20:])
    await asyncio.wait_for(task, 60)
    await producer.stop()
    await consumer.stop()
    return {"throughput": tput, "p50": _pct(latencies, 0.5), "p99": _pct(latencies, 0.99)}


# --- 2. the full exchange --------------------------------------------------------------------------------
def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def exchange(settings: Settings, bootstrap: str, *, count: int, rates: list[float], seconds: float,
             seed: int) -> dict[str, Any]:
    from xborder_gateway._cli.commands.demo import _connectors, _ensure_keys, _passphrase_file, _wait_ready
    from xborder_gateway._cli.commands.publish import generated
    from xborder_gateway.connectors import publish_documents
    from xborder_gateway.exchange import summarize_run

    pf = _passphrase_file(settings.home)
    _ensure_keys(settings, pf)
    run_settings = settings.model_copy(update={"kafka_bootstrap": bootstrap})
    ns = argparse.Namespace(config=None, chaos=False)
    results: dict[str, Any] = {}

    def wait(run: str, n: int, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(sqlite3.OperationalError), \
                    contextlib.closing(sqlite3.connect(settings.state_db("VN"), timeout=10)) as vn:
                s = summarize_run(vn, run)
                if s.settled >= n:
                    return s
            time.sleep(0.25)
        raise SystemExit(f"run {run}: not settled in {timeout}s")

    with _connectors(settings, ns, pf, bootstrap, settings.home / "bench-logs") as children:
        _wait_ready(children, 90)
        # warm-up: connections, coordinators, first transactions
        asyncio.run(publish_documents(run_settings, generated(50, seed + 1, None, 0.0), run="warmup"))
        wait("warmup", 50, 60)
        # throughput: publish as fast as possible, measure first publish -> last receipt
        cpu0 = {c.name: _cpu_seconds(c.proc.pid) for c in children}
        t0 = time.monotonic()
        asyncio.run(publish_documents(run_settings, generated(count, seed, None, 0.05), run="tput"))
        pub_s = time.monotonic() - t0
        s = wait("tput", count, 300)
        span_ms = max(1, (s.last_settled_ms or 0) - (s.first_published_ms or 0))
        results["throughput"] = count / (span_ms / 1000)
        results["publish_s"] = pub_s
        results["tput_summary"] = s.as_dict()
        results["cpu_ms_per_doc"] = {c.name: (_cpu_seconds(c.proc.pid) - cpu0[c.name]) * 1000 / count
                                     for c in children}
        # latency at fixed offered rates
        results["rates"] = {}
        for i, rate in enumerate(rates):
            n = int(rate * seconds)
            run = f"rate{i}"
            asyncio.run(publish_documents(run_settings, generated(n, seed + 2 + i, None, 0.05), run=run,
                                          rate_per_s=rate))
            s2 = wait(run, n, 300)
            results["rates"][rate] = s2
    return results


# --- 3. per-stage CPU ------------------------------------------------------------------------------------
def stages(settings: Settings, pf: Path, n: int = 300) -> list[tuple[str, float]]:
    from xborder_gateway import avro
    from xborder_gateway.documents import translate_xml
    from xborder_gateway.envelope import (
        LocalAuthority,
        TrustStore,
        make_receipt,
        open_envelope,
        open_receipt,
        resolve_passphrase,
        seal,
        seal_receipt,
    )
    from xborder_gateway.samples import generate_mix

    pw = resolve_passphrase(settings, pf)
    vn, vt = LocalAuthority.load(settings, "VN", pw), TrustStore.load(settings, "VN")
    cn, ct = LocalAuthority.load(settings, "CN", pw), TrustStore.load(settings, "CN")
    samples = [x for x in generate_mix(n, 99) if x.broken_rule is None]
    out: list[tuple[str, float]] = []

    def timed(name: str, fn: Any, items: list[Any]) -> list[Any]:
        t0 = time.perf_counter()
        res = [fn(x) for x in items]
        out.append((name, (time.perf_counter() - t0) / len(items) * 1e6))
        return res

    docs = timed("VN translate_xml (parse+XSD+map+Avro)", lambda x: translate_xml(x.xml), samples)
    sealed = timed("VN seal", lambda d: seal(d.payload, sender=vn, recipient="CN", trust=vt, document_type=d.doc_type,
                                             schema_fingerprint=d.schema_fingerprint), docs)
    opened = timed("CN open", lambda e: open_envelope(e.data, me=cn, trust=ct, replay=None), sealed)
    timed("CN Avro decode", lambda o: avro.decode(o.payload), opened)
    receipts = timed("CN receipt make+seal", lambda o: seal_receipt(
        make_receipt(o, receiver="CN-7220", outcome="ACK"), me=cn, trust=ct), opened)
    timed("VN receipt open", lambda r: open_receipt(r.data, me=vn, trust=vt, replay=None), receipts)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=3000, help="documents for the throughput run")
    parser.add_argument("--rate", type=float, action="append",
                        help="offered rate of a latency run (per s; repeatable; default 500 and 250)")
    parser.add_argument("--rate-seconds", type=float, default=10.0, help="duration of the latency run")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="xbg-bench-"))
    broker = None
    bootstrap = os.environ.get("XBG_KAFKA_BOOTSTRAP")
    if not bootstrap:
        from xborder_gateway.kafka_local import LocalKafka

        bs = load_settings(home=tmp / "broker", kafka_port=_free_port(), kafka_controller_port=_free_port())
        broker = LocalKafka(bs)
        bootstrap = broker.start().bootstrap
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    settings = load_settings(
        home=tmp / "home", kafka_bootstrap=bootstrap, exchange_group_prefix=prefix,
        topic_intake=f"{prefix}.raw", topic_rejected=f"{prefix}.rejected", topic_exchange=f"{prefix}.exchange",
        topic_exchange_priority=f"{prefix}.exchange.priority", topic_receipts=f"{prefix}.receipts",
        topic_dead_letter=f"{prefix}.dead-letter")
    for key, value in {"XBG_EXCHANGE_GROUP_PREFIX": prefix, "XBG_TOPIC_INTAKE": settings.topic_intake,
                       "XBG_TOPIC_REJECTED": settings.topic_rejected, "XBG_TOPIC_EXCHANGE": settings.topic_exchange,
                       "XBG_TOPIC_EXCHANGE_PRIORITY": settings.topic_exchange_priority,
                       "XBG_TOPIC_RECEIPTS": settings.topic_receipts,
                       "XBG_TOPIC_DEAD_LETTER": settings.topic_dead_letter}.items():
        os.environ[key] = value  # the connector processes inherit them
    try:
        print(f"broker {bootstrap}; machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}", flush=True)
        rates = args.rate or [500.0, 250.0]
        ex = exchange(settings, bootstrap, count=args.count, rates=rates, seconds=args.rate_seconds, seed=args.seed)
        size = 1150  # bytes: the average sealed envelope of generated documents
        raw = asyncio.run(raw_kafka(bootstrap, size, args.count, rates[0], args.rate_seconds))
        st = stages(settings, settings.home / "demo-passphrase")
    finally:
        if broker is not None:
            broker.stop()
    print()
    print(f"{'':34s} {'raw aiokafka':>14s} {'full exchange':>14s} {'ratio':>8s}")
    print(f"{'throughput (docs/s)':34s} {raw['throughput']:14,.0f} {ex['throughput']:14,.0f} "
          f"{ex['throughput'] / raw['throughput']:8.3f}")
    print(f"{f'p50 latency at {rates[0]:.0f}/s (ms)':34s} {raw['p50']:14.1f} {ex['rates'][rates[0]].p50_ms or 0:14.1f}")
    print(f"{f'p99 latency at {rates[0]:.0f}/s (ms)':34s} {raw['p99']:14.1f} {ex['rates'][rates[0]].p99_ms or 0:14.1f}")
    for rate in rates[1:]:
        r = ex["rates"][rate]
        print(f"{f'p50 / p99 latency at {rate:.0f}/s (ms)':34s} {'':14s} {r.p50_ms or 0:8.1f} / {r.p99_ms or 0:.1f}")
    print(f"\nthroughput run: {args.count} documents, publish took {ex['publish_s']:.2f}s; "
          f"settled: {ex['tput_summary']}")
    for rate, r in ex["rates"].items():
        print(f"latency run at {rate:.0f}/s for {args.rate_seconds:.0f}s: {r.as_dict()}")
    print("\nCPU per declaration in each connector process during the throughput run:")
    for name, ms in ex["cpu_ms_per_doc"].items():
        print(f"  {name:10s} {ms:6.2f} ms")
    print("\nsingle-threaded CPU per declaration (pure stages):")
    for name, us in st:
        print(f"  {name:40s} {us:8.0f} µs")
    total = sum(us for _, us in st)
    print(f"  {'sum':40s} {total:8.0f} µs  -> one core: {1e6 / total:,.0f} declarations/s of pure work")
    print(f"(median of stages {statistics.median(us for _, us in st):.0f} µs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
