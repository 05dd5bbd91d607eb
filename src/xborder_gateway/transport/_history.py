"""Reading one key's records back from a topic (the status feed's history, ``xborder status``)."""

from __future__ import annotations

import asyncio
import time

from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from xborder_gateway.transport._clients import make_consumer
from xborder_gateway.transport._errors import kafka_boundary
from xborder_gateway.transport._loop import to_incoming
from xborder_gateway.transport._records import Incoming

__all__ = ["partition_for_key", "read_key"]

_PARTITIONER = DefaultPartitioner()


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives ``key`` among ``partitions``."""
    if partitions < 1:
        raise ValueError("partitions must be >= 1")
    every = list(range(partitions))
    return int(_PARTITIONER(key, every, every))


async def read_key(bootstrap: str, topic: str, key: bytes, *, timeout_s: float = 15.0) -> list[Incoming] | None:
    """Every committed record of ``topic`` with ``key``, in offset order, read from the one partition the
    key hashes to, up to the partition's last stable offset at the time of the call. None when the topic
    does not exist (a site whose connectors never ran)."""
    consumer = make_consumer(bootstrap, group_id=None, batch_max=2000, client_id="xbg-status", topics=(topic,))
    deadline = time.monotonic() + timeout_s
    with kafka_boundary("read status"):
        await consumer.start()
    try:
        with kafka_boundary("read status"):
            partitions = consumer.partitions_for_topic(topic)
            while not partitions and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                return None
            tp = TopicPartition(topic, partition_for_key(key, len(partitions)))
            while tp not in consumer.assignment() and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            others = [p for p in consumer.assignment() if p != tp]
            if others:
                consumer.pause(*others)
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            out: list[Incoming] = []
            while await consumer.position(tp) < end:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {topic} took longer than {timeout_s:.0f}s")
                batch = await consumer.getmany(tp, timeout_ms=500)
                out.extend(to_incoming(r) for r in batch.get(tp, ()) if r.key == key)
            return out
    finally:
        await consumer.stop()
