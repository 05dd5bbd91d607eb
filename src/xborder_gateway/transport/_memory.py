"""An in-memory Kafka for fast tests: the same client surface the gateway uses, transactions included.

Selected by the bootstrap address ``memory://<name>``: :func:`make_producer`, :func:`make_consumer` and
:func:`ensure_topics` then hand out clients of the named :class:`MemoryBroker` instead of aiokafka's, so
the exchange's own code runs unchanged, in one process and one event loop, with no broker to start. It is
a test double *beside* the real broker, never instead of it: the same scenario bodies run on both
(tests/transport/test_contract.py, tests/exchange/scenarios.py), and only the real broker's result counts
for Kafka behaviour.

What it models (the guarantees the exchange relies on):

- topics with partitions, keys partitioned with Kafka's murmur2 (the same partition as a real broker);
- idempotent producers (a record is appended once per ``send``);
- transactions: records of a transaction take their offsets when sent but become visible to
  (read_committed) consumers only at ``commit_transaction``, atomically with the group offsets given to
  ``send_offsets_to_transaction``; an open transaction holds the last stable offset back, and aborted
  records keep their offsets but are never handed out (as on a real broker); a producer started with a
  transactional id fences the previous holder of that id (its next operation raises ``ProducerFenced``)
  and aborts its open transaction;
- consumer groups: partitions spread over the members; a join or a leave is a rebalance in which every
  member revokes (through its listener, at its next poll -- so a batch in flight finishes first, as with
  a real cooperative poll loop) before anyone gets the new assignment; committed offsets per group;
- ``pause``/``resume``, ``position``, ``last_stable_offset``, ``seek``.

What it does not model: replication, retention, compaction, quotas, message size limits, transaction
markers (a real broker spends an offset on each), read_uncommitted readers, wire-level errors.

Faults are injected through :attr:`MemoryBroker.faults` (:class:`Faults`): fail the next N commits
(before or after they took effect -- the "unknown outcome" the exchange's loop must survive), fence a
transactional id, force a rebalance of a group, make the broker unreachable for a while, hand out the
committed offsets from before the last transaction (the pending-marker window after EndTxn).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord, RecordMetadata

__all__ = [
    "MEMORY_SCHEME",
    "Faults",
    "MemoryBroker",
    "MemoryConsumer",
    "MemoryProducer",
    "is_memory",
    "memory_broker",
]

MEMORY_SCHEME = "memory://"
_POLL_STEP_S = 0.005
_BROKERS: dict[str, MemoryBroker] = {}
_member_ids = itertools.count(1)


def is_memory(bootstrap: str) -> bool:
    return bootstrap.startswith(MEMORY_SCHEME)


def memory_broker(bootstrap: str) -> MemoryBroker:
    """The broker named by ``memory://<name>`` (created on first use)."""
    if not is_memory(bootstrap):
        raise ValueError(f"not a memory:// bootstrap address: {bootstrap!r}")
    name = bootstrap[len(MEMORY_SCHEME):]
    broker = _BROKERS.get(name)
    if broker is None:
        broker = _BROKERS[name] = MemoryBroker(name)
    return broker


@dataclass
class Faults:
    """Failures the next operations meet; each counter is consumed as it fires."""

    #: the next N ``commit_transaction`` calls fail without taking effect (then the transaction is aborted)
    fail_commits_before: int = 0
    #: the next N ``commit_transaction`` calls take effect and then fail (the caller cannot know it worked)
    fail_commits_after: int = 0
    #: the next N ``send`` calls fail with a retriable timeout
    fail_sends: int = 0
    #: until this monotonic time every client operation fails as if the broker were down
    unreachable_until: float = 0.0
    #: the next N fetches of a partition's committed offset (a consumer taking the partition after a
    #: rebalance, or ``committed()``) return the value from before the last transaction that committed it:
    #: on a real broker ``commit_transaction`` returns at EndTxn, the markers that make the transactional
    #: offset commit visible follow, and an OffsetFetch without ``require_stable`` (aiokafka) meanwhile
    #: returns the previous offset
    stale_committed_fetches: int = 0

    def unreachable_for(self, seconds: float) -> None:
        self.unreachable_until = time.monotonic() + seconds


_OPEN, _COMMITTED, _ABORTED = 0, 1, 2


@dataclass(slots=True)
class _Entry:
    record: ConsumerRecord[bytes, bytes]
    status: int


@dataclass
class _Group:
    members: dict[int, MemoryConsumer] = field(default_factory=dict)
    generation: int = 0
    assignment: dict[int, set[TopicPartition]] = field(default_factory=dict)
    #: members that still have to revoke their old assignment before the new one takes effect
    revoking: set[int] = field(default_factory=set)
    pending: dict[int, set[TopicPartition]] | None = None
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    #: per partition, the committed offset before the last transactional commit (None: there was none)
    before_txn: dict[TopicPartition, int | None] = field(default_factory=dict)

    def fetch_committed(self, tp: TopicPartition, faults: Faults) -> int | None:
        """The committed offset a consumer fetches (stale while ``faults.stale_committed_fetches`` lasts)."""
        if faults.stale_committed_fetches > 0 and tp in self.before_txn:
            faults.stale_committed_fetches -= 1
            return self.before_txn[tp]
        return self.committed.get(tp)


class MemoryBroker:
    """One in-process cluster. Use it from a single event loop."""

    def __init__(self, name: str = "test") -> None:
        self.name = name
        self.partitions: dict[str, list[list[_Entry]]] = {}
        self.groups: dict[str, _Group] = {}
        self.epochs: dict[str, int] = {}
        self.faults = Faults()
        #: a member that has not polled for this long is dropped from its group (a killed instance)
        self.session_timeout_s = 10.0
        self._partitioner = DefaultPartitioner()
        self._round_robin = itertools.count()

    @property
    def bootstrap(self) -> str:
        return MEMORY_SCHEME + self.name

    # --- admin --------------------------------------------------------------------------------------
    def create_topic(self, name: str, partitions: int) -> bool:
        if name in self.partitions:
            return False
        if partitions < 1:
            raise ValueError("a topic needs at least one partition")
        self.partitions[name] = [[] for _ in range(partitions)]
        for group in self.groups.values():  # subscribers of the new topic get its partitions
            if any(name in m.subscription for m in group.members.values()):
                self._rebalance(group)
        return True

    def topic_partitions(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in range(len(self.partitions.get(topic, ())))]

    def end_offset(self, tp: TopicPartition) -> int:
        parts = self.partitions.get(tp.topic)
        if parts is None or tp.partition >= len(parts):
            return 0
        return len(parts[tp.partition])

    def last_stable_offset(self, tp: TopicPartition) -> int:
        """The first offset of a still open transaction, else the end offset."""
        parts = self.partitions.get(tp.topic)
        if parts is None or tp.partition >= len(parts):
            return 0
        log = parts[tp.partition]
        for index, entry in enumerate(log):
            if entry.status == _OPEN:
                return index
        return len(log)

    def records(self, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
        """Every committed record of ``topic``, partition by partition (for assertions)."""
        return [e.record for part in self.partitions.get(topic, ()) for e in part if e.status == _COMMITTED]

    # --- faults -------------------------------------------------------------------------------------
    def check_reachable(self, operation: str) -> None:
        if time.monotonic() < self.faults.unreachable_until:
            raise kafka_errors.KafkaConnectionError(f"{operation}: memory broker {self.name} is unreachable")

    def fence(self, transactional_id: str) -> None:
        """Take the transactional id away from its current holder (as a new instance's start would)."""
        self.epochs[transactional_id] = self.epochs.get(transactional_id, 0) + 1

    def rebalance(self, group_id: str) -> None:
        group = self.groups.get(group_id)
        if group is not None:
            self._rebalance(group)

    # --- internals ----------------------------------------------------------------------------------
    def _partition_for(self, topic: str, key: bytes | None, partition: int | None) -> int:
        count = len(self.partitions[topic])
        if partition is not None:
            if not 0 <= partition < count:
                raise kafka_errors.KafkaError(f"partition {partition} of {topic} does not exist")
            return partition
        everything = list(range(count))
        if key is None:
            return next(self._round_robin) % count
        return int(self._partitioner(key, everything, everything))

    def _append(self, topic: str, partition: int, key: bytes | None, value: bytes | None,
                headers: Sequence[tuple[str, bytes]], *, status: int = _COMMITTED) -> tuple[RecordMetadata, _Entry]:
        log = self.partitions[topic][partition]
        offset = len(log)
        now = int(time.time() * 1000)
        entry = _Entry(ConsumerRecord(topic, partition, offset, now, 0, key, value, None,
                                      len(key or b""), len(value or b""), tuple(headers)), status)
        log.append(entry)
        return RecordMetadata(topic, partition, TopicPartition(topic, partition), offset, now, 0, None), entry

    def _join(self, group_id: str, consumer: MemoryConsumer) -> int:
        group = self.groups.setdefault(group_id, _Group())
        member = next(_member_ids)
        group.members[member] = consumer
        self._rebalance(group)
        return member

    def _leave(self, group_id: str, member: int) -> None:
        group = self.groups.get(group_id)
        if group is None or member not in group.members:
            return
        del group.members[member]
        group.assignment.pop(member, None)
        group.revoking.discard(member)
        self._rebalance(group)

    def _rebalance(self, group: _Group) -> None:
        topics = sorted({t for m in group.members.values() for t in m.subscription})
        members = sorted(group.members)
        plan: dict[int, set[TopicPartition]] = {m: set() for m in members}
        if members:
            every = [tp for t in topics for tp in self.topic_partitions(t)]
            for index, tp in enumerate(every):
                # round robin over the members subscribed to the partition's topic
                eligible = [m for m in members if tp.topic in group.members[m].subscription]
                if eligible:
                    plan[eligible[index % len(eligible)]].add(tp)
        group.generation += 1
        group.pending = plan
        # Members holding partitions revoke first; the others have nothing to give back.
        group.revoking = {m for m in members if group.assignment.get(m)}
        if not group.revoking:
            self._complete(group)

    def _evict_silent(self, group: _Group) -> None:
        """Drop revoking members that stopped polling (a crashed instance never says goodbye)."""
        now = time.monotonic()
        silent = [m for m in group.revoking if now - group.members[m].last_poll > self.session_timeout_s]
        for member in silent:
            del group.members[member]
            group.assignment.pop(member, None)
            group.revoking.discard(member)
        if silent:
            self._rebalance(group)

    @staticmethod
    def _complete(group: _Group) -> None:
        if group.pending is not None:
            group.assignment = group.pending
            group.pending = None


class MemoryProducer:
    """aiokafka ``AIOKafkaProducer``'s surface, as the gateway uses it."""

    def __init__(self, broker: MemoryBroker, *, transactional_id: str | None = None, client_id: str = "xbg",
                 **_: Any) -> None:
        self._broker = broker
        self.transactional_id = transactional_id
        self.client_id = client_id
        self._epoch: int | None = None
        self._started = False
        self._txn: list[_Entry] | None = None
        self._txn_offsets: dict[str, dict[TopicPartition, int]] = {}

    async def start(self) -> None:
        self._broker.check_reachable("start producer")
        if self.transactional_id is not None:
            # init_transactions: a new epoch fences the previous holder and aborts what it left open
            self._broker.fence(self.transactional_id)
            self._epoch = self._broker.epochs[self.transactional_id]
        self._started = True

    async def stop(self) -> None:
        if self._txn is not None:
            self._abort()
        self._started = False

    def _check(self, operation: str) -> None:
        if not self._started:
            raise kafka_errors.IllegalStateError(f"{operation}: producer not started")
        self._broker.check_reachable(operation)
        if self.transactional_id is not None and self._broker.epochs.get(self.transactional_id) != self._epoch:
            self._abort()
            raise kafka_errors.ProducerFenced()

    async def begin_transaction(self) -> None:
        self._check("begin_transaction")
        if self.transactional_id is None:
            raise kafka_errors.IllegalStateError("not a transactional producer")
        if self._txn is not None:
            raise kafka_errors.IllegalStateError("a transaction is already open")
        self._txn = []
        self._txn_offsets = {}

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, *,
                   partition: int | None = None, timestamp_ms: int | None = None,
                   headers: Iterable[tuple[str, bytes]] | None = None) -> asyncio.Future[RecordMetadata]:
        del timestamp_ms
        self._check("send")
        if self._broker.faults.fail_sends > 0:
            self._broker.faults.fail_sends -= 1
            raise kafka_errors.KafkaTimeoutError("injected send failure")
        if topic not in self._broker.partitions:
            raise kafka_errors.UnknownTopicOrPartitionError(topic)
        if self.transactional_id is not None and self._txn is None:
            raise kafka_errors.IllegalStateError("send outside a transaction on a transactional producer")
        number = self._broker._partition_for(topic, key, partition)
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        fixed = tuple((str(k), bytes(v)) for k, v in (headers or ()))
        if self._txn is not None:
            metadata, entry = self._broker._append(topic, number, key, value, fixed, status=_OPEN)
            self._txn.append(entry)
        else:
            metadata, _ = self._broker._append(topic, number, key, value, fixed)
        future.set_result(metadata)
        return future

    async def send_and_wait(self, topic: str, value: bytes | None = None, key: bytes | None = None, *,
                            partition: int | None = None, timestamp_ms: int | None = None,
                            headers: Iterable[tuple[str, bytes]] | None = None) -> RecordMetadata:
        future = await self.send(topic, value, key, partition=partition, timestamp_ms=timestamp_ms, headers=headers)
        return await future

    async def send_offsets_to_transaction(self, offsets: Mapping[TopicPartition, int], group_id: str) -> None:
        self._check("send_offsets_to_transaction")
        if self._txn is None:
            raise kafka_errors.IllegalStateError("no open transaction")
        self._txn_offsets.setdefault(group_id, {}).update(offsets)

    async def commit_transaction(self) -> None:
        self._check("commit_transaction")
        if self._txn is None:
            raise kafka_errors.IllegalStateError("no open transaction")
        faults = self._broker.faults
        if faults.fail_commits_before > 0:
            faults.fail_commits_before -= 1
            self._abort()
            raise kafka_errors.KafkaTimeoutError("injected commit failure (transaction aborted)")
        pending, offsets = self._txn, self._txn_offsets
        self._txn, self._txn_offsets = None, {}
        for entry in pending:
            entry.status = _COMMITTED
        for group_id, committed in offsets.items():
            group = self._broker.groups.setdefault(group_id, _Group())
            group.before_txn.update({tp: group.committed.get(tp) for tp in committed})
            group.committed.update(committed)
        if faults.fail_commits_after > 0:
            faults.fail_commits_after -= 1
            raise kafka_errors.KafkaTimeoutError("injected commit failure (the transaction did commit)")

    async def abort_transaction(self) -> None:
        self._check("abort_transaction")
        self._abort()

    def _abort(self) -> None:
        for entry in self._txn or ():
            entry.status = _ABORTED
        self._txn, self._txn_offsets = None, {}

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        await self.begin_transaction()
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                await self.abort_transaction()
            raise
        await self.commit_transaction()

    async def flush(self) -> None:
        self._broker.check_reachable("flush")

    async def partitions_for(self, topic: str) -> set[int]:
        return {tp.partition for tp in self._broker.topic_partitions(topic)}


class MemoryConsumer:
    """aiokafka ``AIOKafkaConsumer``'s surface, as the gateway uses it (read_committed only)."""

    def __init__(self, broker: MemoryBroker, *topics: str, group_id: str | None = None,
                 auto_offset_reset: str = "earliest", client_id: str = "xbg", max_poll_records: int | None = None,
                 **_: Any) -> None:
        self._broker = broker
        self.group_id = group_id
        self.client_id = client_id
        self.subscription: set[str] = set(topics)
        self._listener: Any = None
        self._reset = auto_offset_reset
        self._max_records = max_poll_records or 500
        self._member: int | None = None
        self._assigned: set[TopicPartition] = set()
        self._manual: set[TopicPartition] | None = None
        self._positions: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._fetched: set[TopicPartition] = set()
        self._started = False
        self.last_poll = time.monotonic()

    def subscribe(self, topics: Sequence[str], listener: Any = None) -> None:
        self.subscription = set(topics)
        self._listener = listener
        self._manual = None

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        self._manual = set(partitions)
        self.subscription = set()
        if self._started:  # like aiokafka: a started consumer may be assigned partitions by hand
            self._assigned = set(self._manual)

    async def start(self) -> None:
        self._broker.check_reachable("start consumer")
        self._started = True
        if self._manual is not None:
            self._assigned = set(self._manual)
        elif self.group_id is not None and self.subscription:
            self._member = self._broker._join(self.group_id, self)
        elif self.subscription:  # no group: every partition of the subscribed topics
            self._assigned = {tp for t in self.subscription for tp in self._broker.topic_partitions(t)}

    async def stop(self) -> None:
        if self._member is not None and self.group_id is not None:
            self._broker._leave(self.group_id, self._member)
        self._member = None
        self._started = False

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def pause(self, *partitions: TopicPartition) -> None:
        self._paused |= set(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self._paused -= set(partitions)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def last_stable_offset(self, tp: TopicPartition) -> int | None:
        return self._broker.last_stable_offset(tp) if tp in self._fetched else None

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.last_stable_offset(tp)

    async def position(self, tp: TopicPartition) -> int:
        return self._position(tp)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._positions[tp] = offset

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp in partitions or tuple(self._assigned):
            self._positions[tp] = 0

    async def seek_to_end(self, *partitions: TopicPartition) -> None:
        for tp in partitions or tuple(self._assigned):
            self._positions[tp] = self._broker.end_offset(tp)

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self._broker.end_offset(tp) for tp in partitions}

    async def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 0)

    async def committed(self, tp: TopicPartition) -> int | None:
        if self.group_id is None:
            return None
        group = self._broker.groups.get(self.group_id)
        return None if group is None else group.fetch_committed(tp, self._broker.faults)

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        parts = self._broker.topic_partitions(topic)
        return {tp.partition for tp in parts} if parts else None

    async def topics(self) -> set[str]:
        return set(self._broker.partitions)

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self._broker.check_reachable("commit offsets")
        if self.group_id is None:
            raise kafka_errors.IllegalStateError("commit needs a group_id")
        group = self._broker.groups.setdefault(self.group_id, _Group())
        if offsets is None:
            offsets = {tp: self._position(tp) for tp in self._assigned}
        if self._member is not None and any(tp not in self._assigned for tp in offsets):
            raise kafka_errors.CommitFailedError("partitions were reassigned during a rebalance")
        group.committed.update(offsets)
        for tp in offsets:  # a plain commit is visible at once: nothing pending for these partitions
            group.before_txn.pop(tp, None)

    def _position(self, tp: TopicPartition) -> int:
        if tp not in self._positions:
            committed = None
            if self.group_id is not None:
                group = self._broker.groups.get(self.group_id)
                committed = None if group is None else group.fetch_committed(tp, self._broker.faults)
            if committed is not None:
                self._positions[tp] = committed
            else:
                self._positions[tp] = 0 if self._reset == "earliest" else self._broker.end_offset(tp)
        return self._positions[tp]

    async def _sync_group(self) -> None:
        """Take part in a rebalance: revoke (listener first), then, once everyone has, take the new set."""
        if self._member is None or self.group_id is None:
            return
        group = self._broker.groups[self.group_id]
        self.last_poll = time.monotonic()
        if group.revoking - {self._member}:
            self._broker._evict_silent(group)
        if self._member in group.revoking:
            if self._listener is not None:
                await self._listener.on_partitions_revoked(set(self._assigned))
            self._assigned = set()
            self._positions.clear()
            self._paused.clear()
            group.revoking.discard(self._member)
            if not group.revoking:
                self._broker._complete(group)
        if group.pending is None:
            mine = group.assignment.get(self._member, set())
            if mine != self._assigned:
                gained = mine - self._assigned
                self._assigned = set(mine)
                for tp in list(self._positions):
                    if tp not in mine:
                        del self._positions[tp]
                self._paused &= mine
                if self._listener is not None and (gained or not mine):
                    await self._listener.on_partitions_assigned(set(mine))

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
                      ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        if not self._started:
            raise kafka_errors.IllegalStateError("consumer not started")
        deadline = time.monotonic() + timeout_ms / 1000
        limit = max_records or self._max_records
        while True:
            self._broker.check_reachable("poll")
            await self._sync_group()
            wanted = set(partitions) if partitions else self._assigned
            out: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
            taken = 0
            for tp in sorted(wanted - self._paused, key=lambda t: (t.topic, t.partition)):
                if tp not in self._assigned:
                    continue
                self._fetched.add(tp)
                log = self._broker.partitions.get(tp.topic, [])[tp.partition]
                position = self._position(tp)
                stable = self._broker.last_stable_offset(tp)
                chunk: list[ConsumerRecord[bytes, bytes]] = []
                while position < stable and taken + len(chunk) < limit:
                    entry = log[position]
                    position += 1
                    if entry.status == _COMMITTED:  # read_committed: aborted records are skipped
                        chunk.append(entry.record)
                self._positions[tp] = position
                if chunk:
                    out[tp] = chunk
                    taken += len(chunk)
                if taken >= limit:
                    break
            if out or time.monotonic() >= deadline:
                return out
            await asyncio.sleep(_POLL_STEP_S)
