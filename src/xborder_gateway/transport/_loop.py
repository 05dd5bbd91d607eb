"""The consume -> transform -> produce loop, one Kafka transaction per batch (exactly once).

A batch is: ``getmany`` (read_committed) -> ``handler(records)`` (pure work plus the caller's durable
side effects, e.g. audit append, SQLite commit) -> one transaction holding every output record and the
input offsets (``send_offsets_to_transaction``) -> commit. Records therefore leave the input exactly when
their outputs become visible to read_committed readers.

Failure handling. Any failure between ``begin`` and the end of ``commit`` leaves the outcome of the
transaction unknown to this process (aiokafka #1004 and #1098 are such failures inside its sender task,
and a commit can also time out). The loop never guesses: it drops both clients and starts new ones with
the SAME transactional id, so ``init_transactions`` completes or aborts whatever the old producer left,
and the new consumer resumes from the group's committed offsets -- which are, by construction, exactly
the inputs whose outputs were committed. A fenced producer (another live instance with our id) stops
the loop instead.

Rebalances: the revocation callback waits for the batch in flight (a lock), so a partition is never
handed to another instance between producing its outputs and committing its offsets.

EOS-1, committed inputs are never redone after a rebalance. ``commit_transaction`` returns once the
broker acknowledged EndTxn, but the transaction markers that make its offset commit visible in
``__consumer_offsets`` are written afterwards. aiokafka 0.14 fetches committed offsets with OffsetFetch
v3 at most (no ``require_stable``, KIP-447), so a consumer that rejoins its group right after a commit (a
member dropped for a missed heartbeat, any rebalance) can be handed the offset from *before* our last
transaction and would redo a batch whose outputs are already committed -- new envelopes, new message ids.
The loop therefore remembers, per partition, the next offset of its own last successfully committed
transaction, and, under the batch lock right before handling a batch, drops every record below it. It
never moves backwards: a partition another instance advanced meanwhile is read from where it got to (all
its offsets are above ours). Partitions this instance never committed are not covered: their previous
owner's pending markers are settled by the rebalance itself (the owner's revocation waited for its
commit, and the join/sync round trips of the whole group follow), and a restart is safe because the new
producer's ``init_transactions`` completes our pending transaction before the new consumer fetches
offsets (``_start`` starts the producer first). Nor is a zombie member: one the broker dropped during a
long batch whose partitions another instance already took -- aiokafka sends TxnOffsetCommit v0 (no
generation or member id), so the broker cannot fence its late commit (KIP-447 would). See
docs/exchange.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from xborder_gateway.errors import TransportError
from xborder_gateway.transport._clients import make_consumer, make_producer
from xborder_gateway.transport._errors import TransportFencedError, kafka_boundary, translate
from xborder_gateway.transport._records import Incoming, Outgoing

__all__ = ["AtLeastOnceLoop", "BatchHandler", "LoopConfig", "LoopStats", "Ticker", "TransactionalBatchLoop",
           "to_incoming"]

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[Incoming]], Awaitable[Sequence[Outgoing]]]
SinkHandler = Callable[[list[Incoming]], Awaitable[None]]
_MAX_PAUSED_POLLS = 10
_STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class LoopConfig:
    bootstrap: str
    topics: tuple[str, ...]
    group_id: str
    client_id: str
    transactional_id: str | None = None
    batch_max: int = 500
    poll_ms: int = 200
    txn_timeout_s: float = 30.0
    #: topics whose records are handled first in a batch and whose backlog pauses the others
    priority_topics: frozenset[str] = frozenset()
    restart_backoff_s: float = 1.0
    #: the consumer's fetch.max.wait.ms (``make_consumer``): bounds a quiet partition's wait for the next fetch
    fetch_max_wait_ms: int = 500
    #: tests (``run outbound --crash-after``): called with the batch's output count once its records are in the
    #: log inside the open transaction, just before the commit (issue 11: an aborted transaction on demand)
    before_commit: Callable[[Sequence[Outgoing]], None] | None = None


@dataclass
class LoopStats:
    batches: int = 0
    records_in: int = 0
    records_out: int = 0
    restarts: int = 0
    last_error: str | None = None
    started_at: float = field(default_factory=time.monotonic)
    last_batch_at: float | None = None
    #: partitions currently assigned; None until the consumer first joined its group
    assigned: int | None = None
    #: polls that returned nothing (the consumer had caught up with its partitions at that moment)
    empty_polls: int = 0


class Ticker(Protocol):
    """Work a transactional loop does between batches, even when no input arrives (issue 15: the endpoint's
    grace-period expiry). ``tick()`` makes its state durable and returns the records to produce; the loop
    produces them in a Kafka transaction of their own (no input offsets) and then calls ``committed()``
    with them. If the transaction fails, ``committed`` is not called and the next tick must return the same
    records again (the caller keeps them in an outbox): at least once, with identical bytes."""

    interval_s: float
    #: the loop ticks when it has caught up with every assigned partition (nothing left to read up to the
    #: last stable offset), or, under continuous input, once this long has passed since the last tick
    max_wait_s: float

    def tick(self) -> Sequence[Outgoing]: ...

    def committed(self, outputs: Sequence[Outgoing]) -> None: ...


def to_incoming(record: Any) -> Incoming:
    headers = tuple((str(k), bytes(v)) for k, v in (record.headers or ()))
    return Incoming(record.topic, record.partition, record.offset, record.key, record.value or b"", headers,
                    int(record.timestamp or 0))


def _being_cancelled() -> bool:
    """Whether the running task itself has been asked to stop (not just a client's inner task)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class _WaitForBatch(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, lock: asyncio.Lock, stats: LoopStats) -> None:
        self._lock = lock
        self._stats = stats

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self._lock:  # the batch in flight commits (or aborts) before the partitions move
            log.info("partitions revoked: %s", sorted(str(tp) for tp in revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._stats.assigned = len(assigned)
        log.info("partitions assigned: %s", sorted(str(tp) for tp in assigned))


class _BaseLoop:
    def __init__(self, config: LoopConfig, stop: asyncio.Event) -> None:
        self.config = config
        self.stop = stop
        self.stats = LoopStats()
        self._lock = asyncio.Lock()
        self._consumer: Any = None
        self._paused: set[Any] = set()
        self._paused_polls = 0

    def assigned(self) -> set[tuple[str, int]]:
        """(topic, partition) pairs this instance consumes now (empty while not in the group)."""
        consumer = self._consumer
        if consumer is None:
            return set()
        try:
            return {(tp.topic, tp.partition) for tp in consumer.assignment()}
        except Exception:  # noqa: BLE001 - assignment is undefined while (re)joining
            return set()

    async def _start_consumer(self) -> None:
        c = self.config
        consumer = make_consumer(c.bootstrap, group_id=c.group_id, batch_max=c.batch_max, client_id=c.client_id,
                                 fetch_max_wait_ms=c.fetch_max_wait_ms)
        consumer.subscribe(list(c.topics), listener=_WaitForBatch(self._lock, self.stats))
        with kafka_boundary("start consumer"):
            await consumer.start()
        self._consumer = consumer
        self._paused = set()
        self._paused_polls = 0

    async def _stop_consumer(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                await asyncio.wait_for(consumer.stop(), timeout=_STOP_TIMEOUT_S)
            except asyncio.CancelledError:
                # aiokafka's fetcher re-raises the cancellation of its own task from stop() after a broker
                # outage; only a cancellation of THIS task may propagate, or the loop would die instead of
                # restarting its clients
                if _being_cancelled():
                    raise
                log.debug("consumer stop: its fetcher task was cancelled")
            except Exception as exc:  # noqa: BLE001 - closing a broken client; the next start reports
                log.debug("consumer stop: %r", exc)

    async def _poll(self) -> list[Incoming]:
        c = self.config
        with kafka_boundary("poll"):
            batch = await self._consumer.getmany(timeout_ms=c.poll_ms, max_records=c.batch_max)
        records: list[Incoming] = []
        if c.priority_topics:
            # The priority lane's records are handled first in every batch ...
            prio = [tp for tp in batch if tp.topic in c.priority_topics]
            rest = [tp for tp in batch if tp.topic not in c.priority_topics]
            for tp in prio + rest:
                records.extend(to_incoming(r) for r in batch[tp])
            with kafka_boundary("priority backlog"):
                await self._steer_priority()
        else:
            for recs in batch.values():
                records.extend(to_incoming(r) for r in recs)
        return records

    async def _priority_backlog(self) -> int:
        consumer = self._consumer
        backlog = 0
        for tp in consumer.assignment():
            if tp.topic not in self.config.priority_topics:
                continue
            lso = consumer.last_stable_offset(tp)  # known once the partition was fetched
            if lso is not None and lso >= 0:
                backlog += max(0, lso - await consumer.position(tp))
        return backlog

    async def _steer_priority(self) -> None:
        """... and while the priority lane has a real backlog (more than half a batch waiting), the other
        topics are paused so it drains first. A cap on consecutive paused polls keeps the normal lane from
        starving when perishable traffic is continuous."""
        consumer = self._consumer
        busy = await self._priority_backlog() > max(1, self.config.batch_max // 2)
        if busy and self._paused_polls < _MAX_PAUSED_POLLS:
            others = {tp for tp in consumer.assignment() if tp.topic not in self.config.priority_topics}
            new = others - self._paused
            if new:
                consumer.pause(*new)
                self._paused |= new
            self._paused_polls += 1
        elif self._paused:
            consumer.resume(*self._paused)
            self._paused = set()
            self._paused_polls = 0
        else:
            self._paused_polls = 0

    @staticmethod
    def _offsets(records: Sequence[Incoming]) -> dict[Any, int]:
        offsets: dict[Any, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, -1), r.offset + 1)
        return offsets

    async def _restart_pause(self, exc: BaseException) -> None:
        err = translate(exc, "batch") if not isinstance(exc, TransportError) else exc
        self.stats.restarts += 1
        self.stats.last_error = str(err)
        log.warning("%s: %s; restarting the Kafka clients in %.1fs", self.config.client_id, err,
                    self.config.restart_backoff_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=self.config.restart_backoff_s)


class TransactionalBatchLoop(_BaseLoop):
    """Exactly-once consume -> transform -> produce; see the module docstring."""

    def __init__(self, config: LoopConfig, handler: BatchHandler, stop: asyncio.Event,
                 ticker: Ticker | None = None) -> None:
        if not config.transactional_id:
            raise ValueError("TransactionalBatchLoop needs a transactional_id")
        super().__init__(config, stop)
        self._handler = handler
        self._producer: Any = None
        self._ticker = ticker
        self._next_tick = 0.0
        self._last_tick = time.monotonic()
        #: EOS-1: per partition, the next offset of this loop's own last successfully committed transaction
        self._committed_next: dict[tuple[str, int], int] = {}
        #: records dropped by EOS-1 (already committed by this loop, fetched again from a stale offset)
        self.redone_dropped = 0

    def _drop_committed(self, records: list[Incoming]) -> list[Incoming]:
        """EOS-1: drop the records this loop's own committed transactions already consumed (see the module
        docstring). Only offsets below ours are dropped, so a partition another instance advanced is kept."""
        ours = self._committed_next
        kept = [r for r in records if r.offset >= ours.get((r.topic, r.partition), -1)]
        dropped = len(records) - len(kept)
        if dropped:
            self.redone_dropped += dropped
            log.warning("%s: %d record(s) fetched again below offsets this loop already committed (stale "
                        "committed offsets after a rebalance); dropped, not redone", self.config.client_id, dropped)
        return kept

    def _remember_committed(self, offsets: dict[Any, int]) -> None:
        """EOS-1: called only after ``commit_transaction`` returned (an unknown outcome records nothing)."""
        for tp, offset in offsets.items():
            key = (tp.topic, tp.partition)
            self._committed_next[key] = max(self._committed_next.get(key, -1), offset)

    async def _caught_up(self) -> bool:
        """Whether every assigned partition has been read up to its last stable offset (known once fetched)."""
        consumer = self._consumer
        if consumer is None or self._ticker is None:
            return False
        with kafka_boundary("lag"):
            for tp in consumer.assignment():
                lso = consumer.last_stable_offset(tp)
                if lso is None or lso < 0 or await consumer.position(tp) < lso:
                    return False
        return True

    async def _maybe_tick(self, caught_up: bool) -> None:
        """Run the ticker when due (between batches, under the batch lock, on the loop's own producer): when
        caught up with the input, so a backlog read after an outage is handled before any tick decides on
        time, or after ``max_wait_s`` without a tick under continuous input."""
        ticker = self._ticker
        now = time.monotonic()
        if ticker is None or now < self._next_tick or (not caught_up and now - self._last_tick < ticker.max_wait_s):
            return
        self._next_tick = now + ticker.interval_s
        self._last_tick = now
        async with self._lock:
            outputs = ticker.tick()
            if outputs:
                await asyncio.wait_for(self._commit(outputs, {}), timeout=self.config.txn_timeout_s)
                ticker.committed(outputs)
                self.stats.records_out += len(outputs)

    async def _start(self) -> None:
        c = self.config
        producer = make_producer(c.bootstrap, transactional_id=c.transactional_id, client_id=c.client_id)
        with kafka_boundary("start producer"):
            await producer.start()  # init_transactions: fences a zombie with our id, settles its transaction
        self._producer = producer
        await self._start_consumer()
        self._last_tick = time.monotonic()  # max_wait_s counts from when this consumer started reading

    async def _stop(self) -> None:
        await self._stop_consumer()
        producer, self._producer = self._producer, None
        if producer is not None:
            try:  # bounded: a producer whose sender task died (aiokafka #1004) may never finish stopping
                await asyncio.wait_for(producer.stop(), timeout=_STOP_TIMEOUT_S)
            except asyncio.CancelledError:
                if _being_cancelled():
                    raise
                log.debug("producer stop: its sender task was cancelled")
            except Exception as exc:  # noqa: BLE001 - closing a broken client
                log.debug("producer stop: %r", exc)

    async def _commit(self, outputs: Sequence[Outgoing], offsets: dict[Any, int]) -> None:
        producer = self._producer
        with kafka_boundary("transaction"):
            # No abort on failure here: the loop replaces the producer, and init_transactions with the same
            # transactional id settles (aborts) whatever this one left open.
            await producer.begin_transaction()
            futures = [await producer.send(o.topic, value=o.value, key=o.key, headers=list(o.headers))
                       for o in outputs]
            if futures:
                await asyncio.gather(*futures)
            if self.config.before_commit is not None:  # tests: crash with the transaction open (issue 11)
                self.config.before_commit(outputs)
            if offsets:  # a tick's transaction consumes nothing
                await producer.send_offsets_to_transaction(offsets, self.config.group_id)
            await producer.commit_transaction()

    async def run(self) -> None:
        """Run until ``stop`` is set (SIGTERM) or a non-retriable error is raised."""
        try:
            while not self.stop.is_set():
                try:
                    if self._producer is None or self._consumer is None:
                        await self._stop()
                        await self._start()
                    records = await self._poll()
                    if not records:
                        await self._maybe_tick(await self._caught_up())
                        continue
                    async with self._lock:
                        records = self._drop_committed(records)  # EOS-1, re-checked under the lock
                        if not records:
                            continue
                        offsets = self._offsets(records)
                        outputs = await self._handler(records)
                        await asyncio.wait_for(self._commit(outputs, offsets), timeout=self.config.txn_timeout_s)
                        self._remember_committed(offsets)
                    self.stats.batches += 1
                    self.stats.records_in += len(records)
                    self.stats.records_out += len(outputs)
                    self.stats.last_batch_at = time.monotonic()
                    await self._maybe_tick(caught_up=False)
                except TransportFencedError:
                    raise
                except TransportError as exc:
                    if not exc.retriable:
                        raise
                    await self._stop()
                    await self._restart_pause(exc)
                except (TimeoutError, OSError) as exc:
                    await self._stop()
                    await self._restart_pause(exc)
                except Exception as exc:
                    from aiokafka.errors import KafkaError

                    if not isinstance(exc, KafkaError):
                        raise
                    err = translate(exc, "batch")
                    if isinstance(err, TransportFencedError):
                        raise err from exc
                    await self._stop()
                    await self._restart_pause(err)
        finally:
            await self._stop()


class AtLeastOnceLoop(_BaseLoop):
    """Consume, hand the batch to ``handler`` (which makes its effects durable and idempotent), then commit
    the offsets. A crash between the two replays the batch, so the handler must tolerate seeing it again."""

    def __init__(self, config: LoopConfig, handler: SinkHandler, stop: asyncio.Event) -> None:
        super().__init__(config, stop)
        self._handler = handler

    async def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    if self._consumer is None:
                        await self._start_consumer()
                    records = await self._poll()
                    if not records:
                        self.stats.empty_polls += 1
                        continue
                    async with self._lock:
                        await self._handler(records)
                        with kafka_boundary("commit offsets"):
                            await self._consumer.commit(self._offsets(records))
                    self.stats.batches += 1
                    self.stats.records_in += len(records)
                    self.stats.last_batch_at = time.monotonic()
                except TransportError as exc:
                    if not exc.retriable:
                        raise
                    await self._stop_consumer()
                    await self._restart_pause(exc)
                except Exception as exc:
                    from aiokafka.errors import KafkaError

                    if not isinstance(exc, KafkaError | OSError | TimeoutError):
                        raise
                    await self._stop_consumer()
                    await self._restart_pause(exc)
        finally:
            await self._stop_consumer()
