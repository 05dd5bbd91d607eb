"""The Kafka guarantees the gateway stands on, proven on a real broker with aiokafka.

- idempotent producer: 10,000 records, each arrives exactly once, in order per partition;
- transactions: an aborted transaction's records are never seen by a read_committed consumer;
- consume -> produce with send_offsets_to_transaction: every input appears exactly once in the output,
  also when a batch is aborted half-way and processed again (aiokafka issues #1098 and #1004).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.integration


async def create_topics(bootstrap: str, *names: str, partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await admin.close()


async def consume_all(
    bootstrap: str, topic: str, expected: int, *, isolation: str = "read_committed", idle_s: float = 3.0
) -> list[tuple[int, int, bytes | None, bytes]]:
    """(partition, offset, key, value) of every record; stops at `expected` or after `idle_s` of silence."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
        isolation_level=isolation, group_id=None,
    )
    await consumer.start()
    out: list[tuple[int, int, bytes | None, bytes]] = []
    try:
        idle = 0.0
        while idle < idle_s and len(out) < expected:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            if not batch:
                idle += 0.5
                continue
            idle = 0.0
            for tp, records in batch.items():
                out.extend((tp.partition, r.offset, r.key, r.value) for r in records)
        if len(out) >= expected:  # linger briefly: anything beyond `expected` is a duplicate to catch
            extra = await consumer.getmany(timeout_ms=1000)
            for tp, records in extra.items():
                out.extend((tp.partition, r.offset, r.key, r.value) for r in records)
    finally:
        await consumer.stop()
    return out


async def test_idempotent_producer_10k_once_and_in_order(kafka_bootstrap: str, unique_topic: str) -> None:
    await create_topics(kafka_bootstrap, unique_topic, partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    n, keys = 10_000, 50
    try:
        futures = [
            await producer.send(unique_topic, key=f"decl-{i % keys}".encode(), value=f"{i % keys}:{i}".encode())
            for i in range(n)
        ]
        await producer.flush()
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    assert len(metadata) == n

    records = await consume_all(kafka_bootstrap, unique_topic, n)
    values = [v for _, _, _, v in records]
    assert len(values) == n, f"expected {n} records, got {len(values)}"
    assert len(set(values)) == n, "a record arrived more than once"
    # In order per partition: within one key (one partition), sequence numbers rise with the offset.
    last_seq: dict[bytes | None, int] = {}
    partition_of: dict[bytes | None, int] = {}
    for partition, _offset, key, value in sorted(records, key=lambda r: (r[0], r[1])):
        seq = int(value.split(b":")[1])
        assert partition_of.setdefault(key, partition) == partition, "one key spread over two partitions"
        assert seq > last_seq.get(key, -1), f"key {key!r} out of order: {seq} after {last_seq.get(key)}"
        last_seq[key] = seq
    assert len(last_seq) == keys


async def test_aborted_transaction_never_seen_committed_seen(kafka_bootstrap: str, unique_topic: str) -> None:
    await create_topics(kafka_bootstrap, unique_topic, partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"tx-{uuid.uuid4()}")
    await producer.start()
    try:
        await producer.begin_transaction()
        for i in range(100):
            await producer.send(unique_topic, value=f"aborted-{i}".encode())
        await producer.abort_transaction()
        async with producer.transaction():
            for i in range(100):
                await producer.send(unique_topic, value=f"committed-{i}".encode())
    finally:
        await producer.stop()

    committed = [v for *_, v in await consume_all(kafka_bootstrap, unique_topic, 100)]
    assert sorted(committed) == sorted(f"committed-{i}".encode() for i in range(100))
    assert not any(v.startswith(b"aborted") for v in committed)
    # Control: the aborted records did reach the log; read_uncommitted sees them, so the check above is real.
    uncommitted = [v for *_, v in await consume_all(kafka_bootstrap, unique_topic, 200, isolation="read_uncommitted")]
    assert sum(v.startswith(b"aborted") for v in uncommitted) == 100


async def test_consume_transform_produce_exactly_once(kafka_bootstrap: str, topic_prefix: str) -> None:
    """send_offsets_to_transaction in a loop, one batch aborted half-way and redone (#1098, #1004)."""
    source, sink, group = f"{topic_prefix}.in", f"{topic_prefix}.out", f"{topic_prefix}.group"
    await create_topics(kafka_bootstrap, source, sink, partitions=3)
    n = 2_000
    seed = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await seed.start()
    try:
        for i in range(n):
            await seed.send(source, key=str(i % 17).encode(), value=str(i).encode())
        await seed.flush()
    finally:
        await seed.stop()

    consumer = AIOKafkaConsumer(
        source, bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", isolation_level="read_committed", max_poll_records=250,
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"{group}.tx")
    await consumer.start()
    await producer.start()
    batches = aborted = 0
    try:
        done = 0
        idle = 0
        while done < n and idle < 20:
            batch = await consumer.getmany(timeout_ms=500, max_records=250)
            if not batch:
                idle += 1
                continue
            idle = 0
            batches += 1
            if batches == 3:  # abort this one after producing half of it, then rewind and redo it
                await producer.begin_transaction()
                for records in batch.values():
                    for r in records[: len(records) // 2]:
                        await producer.send(sink, key=r.key, value=b"out:" + r.value)
                await producer.abort_transaction()
                aborted += 1
                for tp, records in batch.items():
                    consumer.seek(tp, records[0].offset)
                continue
            async with producer.transaction():
                offsets: dict[TopicPartition, int] = {}
                for tp, records in batch.items():
                    for r in records:
                        await producer.send(sink, key=r.key, value=b"out:" + r.value)
                    offsets[tp] = records[-1].offset + 1
                    done += len(records)
                await producer.send_offsets_to_transaction(offsets, group)
    finally:
        await producer.stop()
        await consumer.stop()
    assert aborted == 1

    outputs = [v for *_, v in await consume_all(kafka_bootstrap, sink, n)]
    counts: dict[bytes, int] = defaultdict(int)
    for v in outputs:
        counts[v] += 1
    assert len(outputs) == n, f"expected {n} outputs, got {len(outputs)}"
    assert all(c == 1 for c in counts.values()), "an input was produced twice"
    assert set(counts) == {f"out:{i}".encode() for i in range(n)}

    # The group's committed offsets are the end of every input partition: nothing left to redo.
    check = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await check.start()
    try:
        partitions = [TopicPartition(source, p) for p in range(3)]
        ends = await check.end_offsets(partitions)
        for tp in partitions:
            assert await check.committed(tp) == ends[tp]
    finally:
        await check.stop()
