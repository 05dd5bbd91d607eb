"""Factories for the aiokafka clients the connectors use (all settings in one place)."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from xborder_gateway.transport._memory import MemoryConsumer, MemoryProducer, is_memory, memory_broker

__all__ = ["make_consumer", "make_producer"]


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
                  topics: tuple[str, ...] = ()) -> Any:
    """A read_committed consumer without auto commit, starting at the earliest offset for a new group."""
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
    )
