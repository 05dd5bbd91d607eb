"""The raw same-hops pipeline of ``bench_exchange.py``: the exchange's record hops with plain aiokafka.

Three processes, as the gateway's three connectors, doing only the transport's part of their work:

    exchange  intake -> exchange topic: consume-transform-produce in ONE Kafka transaction per batch
              (the produced records and the consumed offsets), an envelope-sized value per record;
    endpoint  exchange topic -> receipts topic: the same, a receipt-sized value per record;
    tracker   reads the exchange topic and the receipts topic (read_committed), commits its offsets,
              and prints ``done <unix time of the last receipt>`` once it has seen ``--expect`` receipts.

No XML, no crypto, no state, no audit: the bound the transport puts on this design.

    python bench/raw_hops.py exchange --bootstrap H:P --prefix P --size 1150
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata


def topics(prefix: str) -> dict[str, str]:
    return {"intake": f"{prefix}.intake", "exchange": f"{prefix}.exchange", "receipts": f"{prefix}.receipts"}


def _consumer(bootstrap: str, group: str, *names: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(*names, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                            auto_offset_reset="earliest", isolation_level="read_committed", max_poll_records=500,
                            session_timeout_ms=10_000, heartbeat_interval_ms=1_000)


async def transform(bootstrap: str, prefix: str, src: str, dst: str, *, size: int, linger_ms: int) -> None:
    """consume ``src`` -> produce ``dst`` + commit offsets, one transaction per polled batch."""
    t = topics(prefix)
    group = f"{prefix}.{dst}"
    consumer = _consumer(bootstrap, group, t[src])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                                linger_ms=linger_ms, transactional_id=f"{prefix}.{dst}.0")
    await producer.start()
    await consumer.start()
    filler = os.urandom(size)
    print("ready", flush=True)
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            if not batch:
                continue
            async with producer.transaction():
                offsets: dict[TopicPartition, OffsetAndMetadata] = {}
                for tp, records in batch.items():
                    for r in records:
                        # the same key (partition) and the first 20 bytes (publish stamp) carried along
                        await producer.send(t[dst], key=r.key, value=r.value[:20] + filler[20:])
                    offsets[tp] = OffsetAndMetadata(records[-1].offset + 1, "")
                await producer.send_offsets_to_transaction(offsets, group)
    finally:
        await consumer.stop()
        await producer.stop()


async def tracker(bootstrap: str, prefix: str, expect: int) -> None:
    t = topics(prefix)
    group = f"{prefix}.tracker"
    consumer = _consumer(bootstrap, group, t["exchange"], t["receipts"])
    await consumer.start()
    print("ready", flush=True)
    seen = 0
    latencies: list[float] = []
    try:
        while seen < expect:
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            now = time.time()
            for tp, records in batch.items():
                if tp.topic == t["receipts"]:
                    seen += len(records)
                    latencies.extend(now - float(r.value[:20].decode()) for r in records)
            if batch:
                await consumer.commit()
        latencies.sort()
        print(f"done {time.time():.6f} {latencies[len(latencies) // 2] * 1000:.1f} "
              f"{latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))] * 1000:.1f}", flush=True)
    finally:
        await consumer.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("exchange", "endpoint", "tracker"))
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--size", type=int, default=1150, help="bytes of each produced value")
    p.add_argument("--expect", type=int, default=0, help="tracker: receipts to wait for")
    p.add_argument("--linger-ms", type=int, default=2)
    a = p.parse_args()
    if a.stage == "exchange":
        asyncio.run(transform(a.bootstrap, a.prefix, "intake", "exchange", size=a.size, linger_ms=a.linger_ms))
    elif a.stage == "endpoint":
        asyncio.run(transform(a.bootstrap, a.prefix, "exchange", "receipts", size=a.size, linger_ms=a.linger_ms))
    else:
        asyncio.run(tracker(a.bootstrap, a.prefix, a.expect))
    return 0


if __name__ == "__main__":
    sys.exit(main())
