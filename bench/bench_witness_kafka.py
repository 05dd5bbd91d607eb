"""The witness's added cost per checkpoint over Kafka (issue 12 item 5): `run witness` on both sites.

    XBG_KAFKA_BOOTSTRAP=127.0.0.1:9092 python bench/bench_witness_kafka.py --checkpoints 40
    python bench/bench_witness_kafka.py --kafka-port 30630      # starts a throwaway local broker

Two homes (VN, CN) on one broker, each running the witness role in this process (as
tests/audit/test_witness_kafka.py does). Per checkpoint of ``--entries`` entries appended to VN's log:
the time from the checkpoint being signed to CN's cosignature being stored beside it in VN's log — the
publish, CN's witness (verify, consistency proof, compare-and-set, cosign) inside a Kafka transaction, and
VN's collector (verify, durable insert) inside another. Same-run baseline: the raw Kafka round trip of the
same shape without any audit work (produce; a consumer that answers in a transaction; consume the answer).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from xborder_gateway.audit import AuditEvent, AuditLog, EventType
from xborder_gateway.audit._keys import (
    counterpart_witness_path,
    key_paths,
    load_or_create_witness_signer,
    witness_key_paths,
)
from xborder_gateway.audit._witness_service import WitnessOptions, run_witness
from xborder_gateway.audit.cosignature import CosignatureVerifier
from xborder_gateway.config import Settings, load_settings


def _events(authority: str, start: int, n: int) -> list[AuditEvent]:
    t0 = datetime(2026, 11, 25, tzinfo=UTC)
    return [AuditEvent(time=t0 + timedelta(milliseconds=i), authority=authority, process="outbound",
                       event_type=EventType.SENT, message_id=f"m{i}", business_key=f"3051{i:08d}",
                       raw_sha256=f"{i:064x}") for i in range(start, start + n)]


def _ms(samples: list[float]) -> str:
    p95 = sorted(samples)[int(len(samples) * 0.95)]
    return f"median {statistics.median(samples) * 1e3:7.1f} ms  p95 {p95 * 1e3:7.1f} ms"


def _settings(home: Path, bootstrap: str, prefix: str, entries: int) -> Settings:
    return Settings(home=home, audit_url=None, audit_checkpoint_entries=entries, audit_checkpoint_seconds=10**6,
                    kafka_bootstrap=bootstrap, exchange_group_prefix=prefix, exchange_poll_ms=10, topic_partitions=1,
                    topic_vn_audit_checkpoints=f"{prefix}.vn.cp", topic_cn_audit_checkpoints=f"{prefix}.cn.cp",
                    topic_vn_audit_cosignatures=f"{prefix}.vn.cos", topic_cn_audit_cosignatures=f"{prefix}.cn.cos")


async def witness_round_trips(bootstrap: str, tmp: Path, checkpoints: int, entries: int) -> list[float]:
    prefix = f"bw{uuid.uuid4().hex[:8]}"
    vn_s, cn_s = _settings(tmp / "vn", bootstrap, prefix, entries), _settings(tmp / "cn", bootstrap, prefix, entries)
    vn = AuditLog.open(vn_s, "VN", background_checkpoints=False)
    AuditLog.open(cn_s, "CN", background_checkpoints=False).close()
    for me, other, a, b in ((vn_s, cn_s, "VN", "CN"), (cn_s, vn_s, "CN", "VN")):  # the trust bundle
        load_or_create_witness_signer(me, a)
        shutil.copy(key_paths(other, b)[1], key_paths(me, b)[1])
        shutil.copy(witness_key_paths(me, a)[1], counterpart_witness_path(other, b))
    cn_witness = CosignatureVerifier.parse(witness_key_paths(cn_s, "CN")[1].read_text().strip())
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(run_witness(s, WitnessOptions(authority=a, publish_every_s=0.005), stop=stop,
                                             install_shutdown=False))
             for s, a, stop in ((vn_s, "VN", stops[0]), (cn_s, "CN", stops[1]))]
    samples: list[float] = []
    try:
        for k in range(checkpoints + 5):  # the first five warm up (group joins, producer ids)
            vn.append(_events("VN", k * entries, entries))
            t0 = time.perf_counter()
            size = (k + 1) * entries
            while size not in vn.cosigned_sizes(cn_witness):
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError(f"checkpoint {size} was not cosigned within 60 s")
                await asyncio.sleep(0.001)
            if k >= 5:
                samples.append(time.perf_counter() - t0)
    finally:
        for s in stops:
            s.set()
        await asyncio.gather(*tasks)
        vn.close()
    return samples


async def raw_round_trips(bootstrap: str, count: int, size: int) -> list[float]:
    """The same shape without audit work: produce -> a transactional answerer -> consume the answer."""
    from xborder_gateway.transport import (
        Incoming,
        LoopConfig,
        Outgoing,
        TransactionalBatchLoop,
        ensure_topics,
        make_consumer,
        make_producer,
    )

    prefix = f"braw{uuid.uuid4().hex[:8]}"
    ask, answer = f"{prefix}.ask", f"{prefix}.answer"
    await ensure_topics(bootstrap, [ask, answer], 1)
    stop = asyncio.Event()

    async def handler(records: list[Incoming]) -> list[Outgoing]:
        return [Outgoing(answer, r.key, r.value) for r in records]

    loop = TransactionalBatchLoop(LoopConfig(bootstrap=bootstrap, topics=(ask,), group_id=f"{prefix}.g",
                                             client_id=f"{prefix}-c", transactional_id=f"{prefix}.t", poll_ms=10),
                                  handler, stop)
    task = asyncio.create_task(loop.run())
    producer = make_producer(bootstrap)
    consumer = make_consumer(bootstrap, group_id=None, batch_max=10, topics=(answer,))
    await producer.start()
    await consumer.start()
    samples: list[float] = []
    try:
        payload = os.urandom(size)
        for k in range(count + 5):
            t0 = time.perf_counter()
            await producer.send_and_wait(ask, value=payload, key=b"k")
            got = False
            while not got:
                batch = await consumer.getmany(timeout_ms=1000)
                got = any(batch.values())
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError("no answer within 60 s")
            if k >= 5:
                samples.append(time.perf_counter() - t0)
    finally:
        stop.set()
        await producer.stop()
        await consumer.stop()
        await task
    return samples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", type=int, default=40)
    ap.add_argument("--entries", type=int, default=100, help="entries per checkpoint")
    ap.add_argument("--kafka-port", type=int, default=30630, help="port of a throwaway broker if "
                    "XBG_KAFKA_BOOTSTRAP is unset (the controller takes the next one)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="xbg-bench-witness-kafka-"))
    os.environ.setdefault("XBG_KEY_PASSPHRASE", "bench passphrase")
    broker = None
    bootstrap = os.environ.get("XBG_KAFKA_BOOTSTRAP")
    try:
        if not bootstrap:
            from xborder_gateway.kafka_local import LocalKafka

            broker = LocalKafka(load_settings(home=tmp / "broker", kafka_port=args.kafka_port,
                                              kafka_controller_port=args.kafka_port + 1))
            bootstrap = broker.start().bootstrap
        print(f"broker {bootstrap}; {os.cpu_count()} cores, Python {sys.version.split()[0]}", flush=True)
        raw = asyncio.run(raw_round_trips(bootstrap, args.checkpoints, 400))
        wit = asyncio.run(witness_round_trips(bootstrap, tmp, args.checkpoints, args.entries))
        raw2 = asyncio.run(raw_round_trips(bootstrap, args.checkpoints, 400))  # after: load drifts on a shared box
        raw = sorted(raw + raw2)
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.checkpoints} checkpoints of {args.entries} entries")
    print(f"  baseline raw Kafka round trip (produce, transactional answer, consume)  {_ms(raw)}")
    print(f"  checkpoint signed -> cosignature stored, over Kafka                    {_ms(wit)}")
    print(f"  added by the witness over the raw round trip (medians)                 "
          f"{(statistics.median(wit) - statistics.median(raw)) * 1e3:7.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
