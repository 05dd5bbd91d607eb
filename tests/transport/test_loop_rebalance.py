"""EOS-1 (transport/_loop.py): a batch whose transaction committed is never redone because the group's
committed offset was fetched stale after a rebalance (the window between EndTxn and the transaction
markers, in which an OffsetFetch without ``require_stable`` still returns the previous offset).

The memory broker injects that window (``Faults.stale_committed_fetches``); on the real broker the test
forces the consumer to rejoin its group right after every commit, which is where the window opens.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from xborder_gateway.transport import (
    Incoming,
    LoopConfig,
    MemoryBroker,
    Outgoing,
    TransactionalBatchLoop,
    ensure_topics,
    make_consumer,
    memory_broker,
)

from .test_contract import produce


def _config(bootstrap: str, src: str, group: str, **kw: Any) -> LoopConfig:
    return LoopConfig(bootstrap=bootstrap, topics=(src,), group_id=group, client_id="t-eos",
                      transactional_id=f"tx-{uuid.uuid4().hex[:8]}", restart_backoff_s=0.05, **kw)


async def _read_all(bootstrap: str, topic: str, expected: int, limit_s: float = 60.0, linger_s: float = 2.0
                    ) -> list[bytes]:
    """Every committed value of ``topic``: wait for ``expected``, then linger (more would be duplicates)."""
    consumer = make_consumer(bootstrap, group_id=None, batch_max=5000, client_id="t-eos-read", topics=(topic,))
    await consumer.start()
    out: list[bytes] = []
    try:
        async with asyncio.timeout(limit_s):
            while len(out) < expected:
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                out.extend(r.value for records in batch.values() for r in records)
        idle = 0.0
        while idle < linger_s:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            got = [r.value for records in batch.values() for r in records]
            out.extend(got)
            idle = 0.0 if got else idle + 0.2
    finally:
        await consumer.stop()
    return out


async def _run(loop: TransactionalBatchLoop, stop: asyncio.Event, bootstrap: str, dst: str, expected: int, *,
               limit_s: float = 60.0) -> list[bytes]:
    task = asyncio.create_task(loop.run())
    try:
        return await _read_all(bootstrap, dst, expected, limit_s=limit_s)
    finally:
        stop.set()
        await asyncio.wait_for(task, limit_s)


def _echo(dst: str):  # type: ignore[no-untyped-def]
    async def handler(records: list[Incoming]) -> Sequence[Outgoing]:
        return [Outgoing(dst, r.key, r.value + b"!") for r in records]
    return handler


@pytest.fixture
def memory() -> MemoryBroker:
    return memory_broker(f"memory://{uuid.uuid4().hex}")


@pytest.mark.parametrize("partitions", [1, 3])
async def test_memory_stale_committed_offset_after_a_rebalance_redoes_nothing(memory: MemoryBroker,
                                                                               partitions: int) -> None:
    """A rebalance right after the first commit hands the loop the offsets from before it (stale); the
    records of that committed batch come again and are dropped, not handled a second time."""
    boot, group = memory.bootstrap, "g-stale"
    await ensure_topics(boot, ("in", "out"), partitions)
    values = [f"s-{i}".encode() for i in range(60)]
    await produce(boot, "in", values)
    inner = _echo("out")
    batches = 0

    async def handler(records: list[Incoming]) -> Sequence[Outgoing]:
        nonlocal batches
        batches += 1
        if batches == 1:  # the rebalance starts now; it completes right after this batch commits
            memory.faults.stale_committed_fetches = partitions
            memory.rebalance(group)
        return await inner(records)

    stop = asyncio.Event()
    loop = TransactionalBatchLoop(_config(boot, "in", group, batch_max=10), handler, stop)
    out = await _run(loop, stop, boot, "out", len(values), limit_s=20)
    # only partitions the first transaction committed have a stale value to serve
    assert memory.faults.stale_committed_fetches < partitions, "a stale fetch was served"
    assert loop.redone_dropped == 10, "the first batch came again from the stale offset"
    assert Counter(out) == Counter(v + b"!" for v in values)


async def test_memory_stale_fetch_after_an_unknown_commit_outcome_loses_nothing(memory: MemoryBroker) -> None:
    """A commit that took effect but raised is not remembered (its outcome was unknown): the restarted
    clients read the group's offsets, and nothing is dropped that was not committed by a known success."""
    boot, group = memory.bootstrap, "g-unknown"
    await ensure_topics(boot, ("in", "out"), 1)
    values = [f"u-{i}".encode() for i in range(50)]
    await produce(boot, "in", values)
    memory.faults.fail_commits_before = 1
    stop = asyncio.Event()
    loop = TransactionalBatchLoop(_config(boot, "in", group, batch_max=10), _echo("out"), stop)
    out = await _run(loop, stop, boot, "out", len(values), limit_s=20)
    assert loop.stats.restarts == 1
    assert loop.redone_dropped == 0
    assert Counter(out) == Counter(v + b"!" for v in values)


def test_only_offsets_below_our_own_committed_transactions_are_dropped() -> None:
    """Never backwards: a partition another instance advanced past ours is read from where it got to."""
    cfg = LoopConfig(bootstrap="memory://unused", topics=("in",), group_id="g", client_id="c",
                     transactional_id="x")
    loop = TransactionalBatchLoop(cfg, _echo("out"), asyncio.Event())
    from aiokafka import TopicPartition

    loop._remember_committed({TopicPartition("in", 0): 10, TopicPartition("in", 1): 3})
    loop._remember_committed({TopicPartition("in", 0): 7})  # an older value never moves ours back
    records = [Incoming("in", p, o, None, b"v", (), 0) for p, o in ((0, 9), (0, 10), (0, 25), (1, 2), (1, 40),
                                                                      (2, 0))]
    kept = loop._drop_committed(records)
    assert [(r.partition, r.offset) for r in kept] == [(0, 10), (0, 25), (1, 40), (2, 0)]
    assert loop.redone_dropped == 2


class _RejoinAfterCommit(TransactionalBatchLoop):
    """Asks the consumer to rejoin its group right after every committed transaction: the rejoin fetches
    the group's committed offsets while the transaction markers may still be pending."""

    rejoins = 0

    async def _commit(self, outputs: Sequence[Outgoing], offsets: dict[Any, int]) -> None:
        await super()._commit(outputs, offsets)
        if offsets and self._consumer is not None:
            self._consumer._coordinator.request_rejoin()
            self.rejoins += 1


@pytest.mark.integration
async def test_kafka_rejoin_right_after_each_commit_redoes_nothing(kafka_bootstrap: str) -> None:
    base = f"t.eos.{uuid.uuid4().hex[:8]}"
    src, dst = f"{base}.in", f"{base}.out"
    await ensure_topics(kafka_bootstrap, (src, dst), 2)
    values = [f"k-{i}".encode() for i in range(400)]
    await produce(kafka_bootstrap, src, values)
    stop = asyncio.Event()
    loop = _RejoinAfterCommit(_config(kafka_bootstrap, src, f"g-{base}", batch_max=20), _echo(dst), stop)
    out = await _run(loop, stop, kafka_bootstrap, dst, len(values), limit_s=50)
    print(f"rejoins={loop.rejoins} redone_dropped={loop.redone_dropped} batches={loop.stats.batches}")
    assert loop.rejoins > 0
    assert Counter(out) == Counter(v + b"!" for v in values)
