"""Factories for the aiokafka clients the connectors use (all settings in one place)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from xborder_gateway.transport._memory import MemoryConsumer, MemoryProducer, is_memory, memory_broker

__all__ = ["make_consumer", "make_producer", "wait_for_assignment"]

#: How long aiokafka waits before retrying AddPartitionsToTxn answered CONCURRENT_TRANSACTIONS: the broker
#: is still writing the previous transaction's commit markers, which on a local broker takes 1-3 ms. aiokafka
#: fixes it at 20 ms (``aiokafka.producer.sender.BACKOFF_OVERRIDE``, after KAFKA-5477); a transactional loop
#: that begins its next transaction right after a commit met it on about a third of its batches at a convoy's
#: 50 arrivals/s (bench/bench_gate.py), 20 ms of an arrival's latency each time. 5 ms retries sooner; the
#: retry is the same request, so only its timing changes.
CONCURRENT_TRANSACTIONS_BACKOFF_S = 0.005


def _tune_aiokafka() -> None:
    from aiokafka.producer import sender

    if hasattr(sender, "BACKOFF_OVERRIDE"):  # a later aiokafka without it keeps its own behaviour
        sender.BACKOFF_OVERRIDE = CONCURRENT_TRANSACTIONS_BACKOFF_S


_tune_aiokafka()


def make_producer(bootstrap: str, *, transactional_id: str | None = None, client_id: str = "xbg",
                  linger_ms: int = 2) -> Any:
    """An idempotent producer (acks=all); transactional when ``transactional_id`` is given.
    ``memory://NAME`` gives a client of the in-memory broker of that name (tests)."""
    if is_memory(bootstrap):
        return MemoryProducer(memory_broker(bootstrap), transactional_id=transactional_id, client_id=client_id)
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=linger_ms,
        transactional_id=transactional_id,
        request_timeout_ms=30_000,
        retry_backoff_ms=200,
    )


def make_consumer(bootstrap: str, *, group_id: str | None, batch_max: int, client_id: str = "xbg",
                  topics: tuple[str, ...] = (), fetch_max_wait_ms: int = 500) -> Any:
    """A read_committed consumer without auto commit, starting at the earliest offset for a new group.

    ``fetch_max_wait_ms``: aiokafka keeps one fetch in flight per broker; a record arriving on a partition
    that fetch does not cover waits until it returns, i.e. up to this long when the others are quiet. The
    connectors pass ``Settings.kafka_fetch_max_wait_ms`` (50 ms); Kafka's default 500 ms stays for the rest."""
    if is_memory(bootstrap):
        return MemoryConsumer(memory_broker(bootstrap), *topics, group_id=group_id, client_id=client_id,
                              max_poll_records=batch_max)
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        client_id=client_id,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=batch_max,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
        retry_backoff_ms=200,
        fetch_max_wait_ms=fetch_max_wait_ms,
    )


async def wait_for_assignment(consumer: Any, deadline: float) -> set[Any]:
    """The partitions a started consumer is assigned, waiting for them until ``deadline`` (``time.monotonic``);
    empty if none came by then. aiokafka has no event for it, so this polls."""
    while not consumer.assignment() and time.monotonic() < deadline:  # noqa: ASYNC110 - no event to wait on
        await asyncio.sleep(0.05)
    return set(consumer.assignment())
