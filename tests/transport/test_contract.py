"""The transport contract, written once and run on two backends: the in-memory broker (fast, in the unit
suite) and the real Kafka 4.1 broker (integration). The exchange's loops must give each input exactly one
output whatever the backend; the memory broker earns its place in the unit suite only by passing the same
bodies as the real one.

Fault injection (commit failures with an unknown outcome, fencing by a new instance, forced rebalances)
exists only in memory; on the real broker the exchange tests kill real processes instead.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence

import pytest

from xborder_gateway.errors import TransportError
from xborder_gateway.transport import (
    AtLeastOnceLoop,
    Incoming,
    LoopConfig,
    MemoryBroker,
    Outgoing,
    TransactionalBatchLoop,
    TransportFencedError,
    ensure_topics,
    make_consumer,
    make_producer,
    memory_broker,
)

BACKENDS = [pytest.param("memory", id="memory"), pytest.param("kafka", id="kafka", marks=pytest.mark.integration)]


@pytest.fixture(params=BACKENDS)
def bootstrap(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return f"memory://{uuid.uuid4().hex}"
    return str(request.getfixturevalue("kafka_bootstrap"))


async def produce(bootstrap: str, topic: str, values: Sequence[bytes]) -> None:
    producer = make_producer(bootstrap, client_id="t-produce")
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=v) for v in values]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str, expected: int, idle_s: float = 3.0) -> list[bytes]:
    """Every committed value of ``topic`` (read_committed), waiting for ``expected`` then a short linger."""
    consumer = make_consumer(bootstrap, group_id=None, batch_max=5000, client_id="t-read", topics=(topic,))
    await consumer.start()
    out: list[bytes] = []
    try:
        idle = 0.0
        while idle < idle_s:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            got = [r.value for records in batch.values() for r in records]
            out.extend(got)
            idle = 0.0 if got else idle + 0.2
            if len(out) >= expected and not got:
                idle = max(idle, idle_s - 0.6)  # linger a little: more than expected would be duplicates
    finally:
        await consumer.stop()
    return out


def doubling(out_topic: str):  # type: ignore[no-untyped-def]
    async def handler(records: list[Incoming]) -> Sequence[Outgoing]:
        return [Outgoing(out_topic, r.key, r.value + b"!") for r in records]
    return handler


async def run_until(loop: TransactionalBatchLoop | AtLeastOnceLoop, stop: asyncio.Event,
                    done: asyncio.Future[None] | None = None, limit_s: float = 60.0) -> None:
    task = asyncio.create_task(loop.run())
    try:
        if done is not None:
            await asyncio.wait_for(asyncio.shield(done), limit_s)
    finally:
        stop.set()
        await asyncio.wait_for(task, limit_s)


@pytest.fixture
async def topics(bootstrap: str) -> tuple[str, str]:
    base = f"t.contract.{uuid.uuid4().hex[:8]}"
    names = (f"{base}.in", f"{base}.out")
    await ensure_topics(bootstrap, names, 3)
    return names


def config(bootstrap: str, src: str, *, tid: str | None = None, group: str | None = None, **kw: object) -> LoopConfig:
    return LoopConfig(bootstrap=bootstrap, topics=(src,), group_id=group or f"g-{uuid.uuid4().hex[:8]}",
                      client_id="t-loop", transactional_id=tid or f"tx-{uuid.uuid4().hex[:8]}",
                      restart_backoff_s=0.05, **kw)  # type: ignore[arg-type]


async def wait_for_count(bootstrap: str, topic: str, n: int, limit_s: float = 60.0) -> None:
    consumer = make_consumer(bootstrap, group_id=None, batch_max=5000, client_id="t-count", topics=(topic,))
    await consumer.start()
    seen = 0
    try:
        async with asyncio.timeout(limit_s):
            while seen < n:
                batch = await consumer.getmany(timeout_ms=200)
                seen += sum(len(v) for v in batch.values())
    finally:
        await consumer.stop()


async def test_consume_transform_produce_gives_each_input_once(bootstrap: str, topics: tuple[str, str]) -> None:
    src, dst = topics
    values = [f"doc-{i}".encode() for i in range(300)]
    await produce(bootstrap, src, values)
    stop = asyncio.Event()
    loop = TransactionalBatchLoop(config(bootstrap, src, batch_max=40), doubling(dst), stop)
    await run_until(loop, stop, asyncio.ensure_future(wait_for_count(bootstrap, dst, 300)))
    out = await read_all(bootstrap, dst, 300)
    assert Counter(out) == Counter(v + b"!" for v in values)
    assert loop.stats.records_in == 300


async def test_a_failed_handler_commits_nothing_and_the_redo_outputs_once(bootstrap: str,
                                                                          topics: tuple[str, str]) -> None:
    src, dst = topics
    values = [f"x-{i}".encode() for i in range(50)]
    await produce(bootstrap, src, values)
    failures = {"left": 1}
    inner = doubling(dst)

    async def flaky(records: list[Incoming]) -> Sequence[Outgoing]:
        outputs = await inner(records)
        if failures["left"]:
            failures["left"] -= 1
            raise TimeoutError("handler timed out after producing its outputs")  # the loop restarts its clients
        return outputs

    stop = asyncio.Event()
    loop = TransactionalBatchLoop(config(bootstrap, src, batch_max=20), flaky, stop)
    await run_until(loop, stop, asyncio.ensure_future(wait_for_count(bootstrap, dst, 50)))
    out = await read_all(bootstrap, dst, 50)
    assert Counter(out) == Counter(v + b"!" for v in values)
    assert loop.stats.restarts >= 1


async def test_an_aborted_transaction_is_never_read(bootstrap: str, topics: tuple[str, str]) -> None:
    _, dst = topics
    producer = make_producer(bootstrap, transactional_id=f"tx-{uuid.uuid4().hex[:8]}", client_id="t-abort")
    await producer.start()
    try:
        await producer.begin_transaction()
        await producer.send(dst, value=b"aborted", key=b"k")
        await producer.abort_transaction()
        await producer.begin_transaction()
        await producer.send(dst, value=b"committed", key=b"k")
        await producer.commit_transaction()
    finally:
        await producer.stop()
    assert await read_all(bootstrap, dst, 1, idle_s=1.5) == [b"committed"]


async def test_a_group_splits_partitions_and_takes_over_when_a_member_leaves(bootstrap: str,
                                                                             topics: tuple[str, str]) -> None:
    src, dst = topics
    group = f"g-{uuid.uuid4().hex[:8]}"
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    a = TransactionalBatchLoop(config(bootstrap, src, group=group), doubling(dst), stop_a)
    b = TransactionalBatchLoop(config(bootstrap, src, group=group), doubling(dst), stop_b)
    task_a, task_b = asyncio.create_task(a.run()), asyncio.create_task(b.run())
    try:
        async with asyncio.timeout(60):
            while not (a.stats.assigned and b.stats.assigned and a.stats.assigned + b.stats.assigned == 3):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        first = [f"a-{i}".encode() for i in range(60)]
        await produce(bootstrap, src, first)
        await wait_for_count(bootstrap, dst, 60)
        # the outputs become visible when a transaction commits, a moment before its loop counts the batch
        async with asyncio.timeout(10):
            while a.stats.records_in + b.stats.records_in < 60:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert a.stats.records_in > 0  # both members did work
        assert b.stats.records_in > 0
        stop_b.set()
        await asyncio.wait_for(task_b, 30)
        second = [f"b-{i}".encode() for i in range(60)]
        await produce(bootstrap, src, second)
        await wait_for_count(bootstrap, dst, 120)
        out = await read_all(bootstrap, dst, 120)
        assert Counter(out) == Counter(v + b"!" for v in first + second)
    finally:
        stop_a.set()
        stop_b.set()
        await asyncio.wait_for(asyncio.gather(task_a, task_b, return_exceptions=True), 30)


async def test_at_least_once_loop_commits_after_the_handler(bootstrap: str, topics: tuple[str, str]) -> None:
    src, _ = topics
    values = [f"s-{i}".encode() for i in range(30)]
    await produce(bootstrap, src, values)
    seen: list[bytes] = []
    got_all: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def sink(records: list[Incoming]) -> None:
        seen.extend(r.value for r in records)
        if len(seen) >= 30 and not got_all.done():
            got_all.set_result(None)

    group = f"g-{uuid.uuid4().hex[:8]}"
    stop = asyncio.Event()
    cfg = LoopConfig(bootstrap=bootstrap, topics=(src,), group_id=group, client_id="t-sink", restart_backoff_s=0.05)
    await run_until(AtLeastOnceLoop(cfg, sink, stop), stop, got_all)
    assert Counter(seen) == Counter(values)
    # a second member of the same group starts from the committed offsets: nothing is handed out again
    again: list[bytes] = []

    async def sink2(records: list[Incoming]) -> None:
        again.extend(r.value for r in records)

    stop2 = asyncio.Event()
    task = asyncio.create_task(AtLeastOnceLoop(cfg, sink2, stop2).run())
    await asyncio.sleep(3.0)
    stop2.set()
    await asyncio.wait_for(task, 30)
    assert again == []


# --- faults: memory only ---------------------------------------------------------------------------------
@pytest.fixture
def memory() -> MemoryBroker:
    return memory_broker(f"memory://{uuid.uuid4().hex}")


@pytest.mark.parametrize("after", [False, True], ids=["commit-failed-before", "commit-failed-after-it-took-effect"])
async def test_memory_commit_with_unknown_outcome_never_doubles(memory: MemoryBroker, after: bool) -> None:
    boot = memory.bootstrap
    await ensure_topics(boot, ("in", "out"), 3)
    values = [f"u-{i}".encode() for i in range(100)]
    await produce(boot, "in", values)
    if after:
        memory.faults.fail_commits_after = 2
    else:
        memory.faults.fail_commits_before = 2
    stop = asyncio.Event()
    loop = TransactionalBatchLoop(config(boot, "in", batch_max=25), doubling("out"), stop)
    await run_until(loop, stop, asyncio.ensure_future(wait_for_count(boot, "out", 100)), limit_s=20)
    await asyncio.sleep(0.3)
    assert Counter(r.value for r in memory.records("out")) == Counter(v + b"!" for v in values)
    assert loop.stats.restarts == 2


async def test_memory_fenced_loop_stops_with_transport_fenced(memory: MemoryBroker) -> None:
    boot = memory.bootstrap
    await ensure_topics(boot, ("in", "out"), 1)
    stop = asyncio.Event()
    cfg = config(boot, "in", tid="shared-id")
    started = asyncio.Event()
    inner = doubling("out")

    async def handler(records: list[Incoming]) -> Sequence[Outgoing]:
        memory.fence("shared-id")  # another instance with our transactional id started meanwhile
        started.set()
        return await inner(records)

    await produce(boot, "in", [b"one"])
    with pytest.raises(TransportFencedError):
        await asyncio.wait_for(TransactionalBatchLoop(cfg, handler, stop).run(), 20)
    assert started.is_set()
    assert memory.records("out") == []  # the fenced instance's transaction left nothing


async def test_memory_rebalance_waits_for_the_batch_in_flight(memory: MemoryBroker) -> None:
    """A partition moves to another member only after the batch in flight has committed (the listener takes
    the loop's lock), so no input is handled by two members."""
    boot = memory.bootstrap
    await ensure_topics(boot, ("in", "out"), 2)
    await produce(boot, "in", [f"r-{i}".encode() for i in range(40)])
    group = "g-rebalance"
    gate = asyncio.Event()
    handled: list[bytes] = []

    async def slow(records: list[Incoming]) -> Sequence[Outgoing]:
        handled.extend(r.value for r in records)
        if not gate.is_set():
            memory.rebalance(group)  # a rebalance starts while this batch is in flight
            await asyncio.sleep(0.2)
            gate.set()
        return [Outgoing("out", r.key, r.value) for r in records]

    stop = asyncio.Event()
    loop = TransactionalBatchLoop(config(boot, "in", group=group, batch_max=10), slow, stop)
    await run_until(loop, stop, asyncio.ensure_future(wait_for_count(boot, "out", 40)), limit_s=20)
    assert Counter(handled) == Counter(r.value for r in memory.records("out"))
    assert max(Counter(r.value for r in memory.records("out")).values()) == 1


async def test_memory_unreachable_broker_is_a_retriable_transport_error(memory: MemoryBroker) -> None:
    boot = memory.bootstrap
    memory.faults.unreachable_for(5)
    with pytest.raises(TransportError) as info:
        await ensure_topics(boot, ("t",), 1)
    assert info.value.retriable
    memory.faults.unreachable_until = 0
    assert await ensure_topics(boot, ("t",), 1) == ["t"]
    assert await ensure_topics(boot, ("t",), 1) == []


async def test_memory_keys_land_on_the_partition_kafka_would_choose(memory: MemoryBroker) -> None:
    # murmur2 like the real client: the same key -> the same partition numbers as on a broker
    from aiokafka.partitioner import DefaultPartitioner

    boot = memory.bootstrap
    await ensure_topics(boot, ("p",), 4)
    keys = [f"key-{i}".encode() for i in range(20)]
    await produce(boot, "p", keys)
    expected = {k: DefaultPartitioner()(k, [0, 1, 2, 3], [0, 1, 2, 3]) for k in keys}
    assert {r.key: r.partition for r in memory.records("p")} == expected
