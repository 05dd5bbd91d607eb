"""The transport boundary: error translation (unit) and the exactly-once batch loop (real broker)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

import pytest
from aiokafka import errors as kafka_errors

from xborder_gateway.errors import TransportError
from xborder_gateway.transport import (
    Incoming,
    LoopConfig,
    Outgoing,
    TransactionalBatchLoop,
    TransportFencedError,
    ensure_topics,
    kafka_boundary,
    make_consumer,
    make_producer,
    translate,
)

TRANSLATIONS = [
    ("broker unreachable", kafka_errors.KafkaConnectionError("down"), "TRANSPORT_UNREACHABLE", True),
    ("no brokers", kafka_errors.NoBrokersAvailable(), "TRANSPORT_UNREACHABLE", True),
    ("client timeout", kafka_errors.KafkaTimeoutError(), "TRANSPORT_TIMEOUT", True),
    ("record too large", kafka_errors.RecordTooLargeError(), "TRANSPORT_RECORD_TOO_LARGE", False),
    ("not leader (retriable)", kafka_errors.NotLeaderForPartitionError(), "TRANSPORT_NOTLEADERFORPARTITIONERROR",
     True),
    ("topic authorization (fatal)", kafka_errors.TopicAuthorizationFailedError(),
     "TRANSPORT_TOPICAUTHORIZATIONFAILEDERROR", False),
    ("socket error", ConnectionResetError("reset"), "TRANSPORT_OS", True),
]


@pytest.mark.parametrize(("case", "exc", "code", "retriable"), TRANSLATIONS, ids=[t[0] for t in TRANSLATIONS])
def test_translate(case: str, exc: BaseException, code: str, retriable: bool) -> None:
    err = translate(exc, "op")
    assert isinstance(err, TransportError)
    assert err.code == code
    assert err.retriable is retriable


def test_fenced_is_not_retriable_and_says_what_to_do() -> None:
    err = translate(kafka_errors.ProducerFenced(), "commit")
    assert isinstance(err, TransportFencedError)
    assert not err.retriable
    assert err.hint
    assert "--instance" in err.hint


def test_boundary_reraises_as_transport_error() -> None:
    with pytest.raises(TransportError) as info, kafka_boundary("send"):
        raise kafka_errors.KafkaConnectionError("refused")
    assert info.value.code == "TRANSPORT_UNREACHABLE"
    assert isinstance(info.value.__cause__, kafka_errors.KafkaConnectionError)


async def _seed(bootstrap: str, topic: str, n: int) -> None:
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for i in range(n):
            await producer.send(topic, key=str(i % 11).encode(), value=str(i).encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _drain(bootstrap: str, topic: str, expected: int, idle_s: float = 3.0) -> list[bytes]:
    consumer = make_consumer(bootstrap, group_id=None, batch_max=5000, topics=(topic,))
    await consumer.start()
    out: list[bytes] = []
    idle = 0.0
    try:
        while idle < idle_s:
            batch = await consumer.getmany(timeout_ms=500)
            if not batch:
                idle += 0.5
                if len(out) >= expected:
                    break
                continue
            idle = 0.0
            for records in batch.values():
                out.extend(r.value for r in records)
    finally:
        await consumer.stop()
    return out


@pytest.mark.integration
async def test_ensure_topics_is_idempotent(kafka_bootstrap: str, topic_prefix: str) -> None:
    names = (f"{topic_prefix}.a", f"{topic_prefix}.b")
    assert sorted(await ensure_topics(kafka_bootstrap, names, 2)) == sorted(names)
    assert await ensure_topics(kafka_bootstrap, names, 2) == []


@pytest.mark.integration
async def test_loop_exactly_once_across_a_failed_batch(kafka_bootstrap: str, topic_prefix: str) -> None:
    """A retriable failure after half a batch was produced: the loop restarts its clients (same
    transactional id), the half-produced transaction is aborted, and every input appears once in the output."""
    source, sink = f"{topic_prefix}.in", f"{topic_prefix}.out"
    await ensure_topics(kafka_bootstrap, (source, sink), 3)
    n = 1500
    await _seed(kafka_bootstrap, source, n)
    stop = asyncio.Event()
    calls = Counter[str]()

    async def handler(records: list[Incoming]) -> Sequence[Outgoing]:
        calls["batches"] += 1
        calls["records"] += len(records)
        if calls["batches"] == 2:
            raise TransportError("injected", code="TEST_INJECTED", retriable=True)
        return [Outgoing(sink, r.key, b"out:" + r.value) for r in records]

    config = LoopConfig(bootstrap=kafka_bootstrap, topics=(source,), group_id=f"{topic_prefix}.g",
                        client_id="test", transactional_id=f"{topic_prefix}.tx", batch_max=200,
                        restart_backoff_s=0.2)
    loop = TransactionalBatchLoop(config, handler, stop)
    task = asyncio.create_task(loop.run())

    outputs = await _drain(kafka_bootstrap, sink, n, idle_s=6.0)
    stop.set()
    await asyncio.wait_for(task, 30)

    counts = Counter(outputs)
    assert len(outputs) == n, f"{len(outputs)} outputs for {n} inputs"
    assert max(counts.values()) == 1
    assert set(counts) == {f"out:{i}".encode() for i in range(n)}
    assert loop.stats.restarts == 1
    assert calls["records"] > n, "the failed batch was handled again"
