"""``xborder run gate``: the thin Kafka shell around :class:`GateProcessor` (each decision visible once).

Consumes the status feed and the arrivals (read_committed) and hands each batch to the processor (state,
decisions and audit events in one SQLite transaction). Then, by ``gate_delivery``:

- ``outbox`` (default, ADR 0701): the commit put the batch's decisions in the outbox table; an idempotent
  producer sends them at once (acks=all), their acknowledgements take them out of the outbox with the offset
  each landed at, and the input offsets are committed after that (at least once: a replayed record's stored
  decisions are re-sent only while still in the outbox). At start, and after a failed send, the outbox is
  reconciled before anything new is sent: the decisions topic is read from this gate's last acknowledged
  offsets, what is found there leaves the outbox, the rest is sent (:func:`publish_outbox`). No Kafka
  transaction is on an arrival's path: a decision costs one produce round trip after the SQLite commit. The
  batch's audit events were committed with it and are appended to the audit log after the send, from a
  thread of their own (:class:`_AuditFlusher`, ADR 0701 rule 4). The arrivals and the feed have a loop each.
- ``transaction`` (ADR 0700): the decisions and the input offsets in one Kafka transaction per batch
  (:class:`TransactionalBatchLoop`), the audit appended before the SQLite commit; a crash between the two
  commits replays the batch and the processor re-emits the stored decisions.

Either way each arrival has exactly one visible first decision.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xborder_gateway.config import Settings
from xborder_gateway.connectors._common import Auditor, ConnectorOptions, Identity, Ops, log_line
from xborder_gateway.gate._codec import GateInputError, decode_decision
from xborder_gateway.gate._decide import GatePolicy
from xborder_gateway.gate._privacy import PlateHasher
from xborder_gateway.gate._service import GateProcessor
from xborder_gateway.gate._store import GateStore, Output
from xborder_gateway.transport import (
    AtLeastOnceLoop,
    Incoming,
    LoopConfig,
    Outgoing,
    TransactionalBatchLoop,
    ensure_topics,
    kafka_boundary,
    make_consumer,
    make_producer,
    to_incoming,
    wait_for_assignment,
)
from xborder_gateway.transport import install_shutdown as _install_shutdown

__all__ = ["GateOptions", "catch_up_feed", "gate_db", "gate_hmac_key", "gate_policy", "gate_topics",
           "publish_outbox", "recover_lost_tail", "run_gate"]


@dataclass(frozen=True)
class GateOptions(ConnectorOptions):
    authority: str = "VN"


def gate_db(settings: Settings, authority: str = "VN") -> Path:
    return settings.home / "gate" / f"{authority.lower()}.sqlite"


def gate_hmac_key(settings: Settings) -> Path:
    return settings.home / "gate" / "plate-hmac.key"


def gate_policy(settings: Settings) -> GatePolicy:
    return GatePolicy(min_confidence=settings.gate_min_confidence, grace_ms=int(settings.gate_grace_s * 1000),
                      supersede_window_ms=int(settings.gate_supersede_window_s * 1000))


def gate_topics(settings: Settings) -> tuple[str, str, str]:
    return settings.topic_gate_feed, settings.topic_gate_arrivals, settings.topic_gate_decisions


async def catch_up_feed(settings: Settings, processor: GateProcessor, *, batch: int = 500,
                        timeout_s: float = 300.0) -> int:
    """Apply the feed up to its current end before any arrival is decided (a restarted gate must not decide
    trucks on a stale view). Reads from the offsets stored with the state; the records applied here are
    seen again by the loop (its group offsets are behind) and skipped there as already applied -- any
    superseding decision they produced is re-emitted then (gate_delivery=transaction: inside the loop's
    transaction; outbox: it waits in the outbox, which the sender's start sends). Returns the number of
    records applied."""
    topic = settings.topic_gate_feed
    consumer = make_consumer(settings.bootstrap, group_id=None, batch_max=batch, client_id="xbg-gate-catch-up",
                             topics=(topic,))
    applied = 0
    with kafka_boundary("feed catch-up"):
        await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        with kafka_boundary("feed catch-up"):
            await wait_for_assignment(consumer, deadline)
            parts = list(consumer.assignment())
            for tp in parts:
                consumer.seek(tp, processor.store.next_offset(topic, tp.partition))
            end = await consumer.end_offsets(parts)
            idle = 0
            while time.monotonic() < deadline and idle < 3:  # idle: an open transaction holds the rest back
                behind = [tp for tp in parts if await consumer.position(tp) < end[tp]]
                if not behind:
                    break
                got = await consumer.getmany(*behind, timeout_ms=500, max_records=batch)
                records = [to_incoming(r) for recs in got.values() for r in recs]
                idle = 0 if records else idle + 1
                if records:
                    processor.handle(records)
                    applied += len(records)
    finally:
        await consumer.stop()
    log_line(logging.INFO, "feed caught up", records=applied)
    return applied


async def recover_lost_tail(settings: Settings, processor: GateProcessor, group_id: str, *, batch: int = 500,
                            timeout_s: float = 120.0) -> int:
    """Re-apply arrivals the gate's database lost although Kafka committed their batch; returns how many.

    The database runs WAL with ``synchronous=NORMAL`` (docs/gate.md "Speed"): a commit survives a crash of
    the process, but a power loss or kernel crash may drop the last few commits while their Kafka
    transaction (decisions + offsets) went through. The gate then finds its stored arrivals offsets behind
    the group's committed ones, and before deciding anything new it reads that range again and hands it to
    the processor: the arrivals get their clearances back (GATE-4) and their decisions are produced again
    (the same decision ids; a consumer keeps the first of a decision id)."""
    topic = settings.topic_gate_arrivals
    consumer = make_consumer(settings.bootstrap, group_id=None, batch_max=batch, client_id="xbg-gate-recover",
                             topics=(topic,))
    group = make_consumer(settings.bootstrap, group_id=group_id, batch_max=1, client_id="xbg-gate-recover-offsets")
    recovered = 0
    with kafka_boundary("gate recovery"):
        await consumer.start()
        await group.start()
        try:
            deadline = time.monotonic() + timeout_s
            todo = await _behind(consumer, group, processor.store, deadline)
            if not todo:
                return 0
            producer = make_producer(settings.bootstrap, client_id="xbg-gate-recover")
            await producer.start()
            try:
                while todo and time.monotonic() < deadline:
                    got = await consumer.getmany(*todo, timeout_ms=500, max_records=batch)
                    records = [to_incoming(r) for tp, recs in got.items() for r in recs if r.offset < todo[tp]]
                    for tp in list(todo):
                        if await consumer.position(tp) >= todo[tp]:
                            del todo[tp]
                    if records:
                        result = processor.handle(records)
                        recovered += len(records) - result.replayed
                        for out in result.outputs:
                            await producer.send_and_wait(out.topic, out.value, key=out.key)
            finally:
                await producer.stop()
        finally:
            await group.stop()
            await consumer.stop()
    if recovered:
        log_line(logging.WARNING, "gate state recovered a lost tail", records=recovered)
    return recovered


async def _behind(consumer: Any, group: Any, store: GateStore, deadline: float) -> dict[Any, int]:
    """The partitions ``consumer`` was assigned (group-less) whose stored offset is behind ``group``'s committed
    one; ``consumer`` is seeked to the stored offset. Returns partition -> committed offset."""
    await wait_for_assignment(consumer, deadline)
    todo: dict[Any, int] = {}
    for tp in sorted(consumer.assignment(), key=lambda t: t.partition):
        committed = await group.committed(tp)
        stored = store.next_offset(tp.topic, tp.partition)
        if committed is not None and stored < committed:
            todo[tp] = committed
            consumer.seek(tp, stored)
    return todo


async def send_outputs(producer: Any, store: GateStore, topic: str, outputs: Sequence[Output]) -> None:
    """Send ``outputs`` (in order: one arrival's decisions share a key, hence a partition) and, once every one
    is acknowledged, take them out of the outbox with the offsets they landed at (one SQLite commit)."""
    if not outputs:
        return
    with kafka_boundary("send decisions"):
        futures = [await producer.send(topic, o.value, key=o.key) for o in outputs]
        metas = await asyncio.gather(*futures)
    store.mark_published([o.decision_id for o in outputs], [(topic, m.partition, m.offset) for m in metas])


async def find_on_topic(bootstrap: str, topic: str, since: dict[int, int], wanted: set[str], *,
                        timeout_s: float = 120.0) -> dict[str, tuple[int, int]]:
    """Which of the decision ids ``wanted`` are on ``topic``, read from ``since`` (partition -> offset; from
    the beginning where absent) to the current end: decision id -> (partition, offset)."""
    consumer = make_consumer(bootstrap, group_id=None, batch_max=500, client_id="xbg-gate-outbox",
                             topics=(topic,))
    found: dict[str, tuple[int, int]] = {}
    with kafka_boundary("outbox reconciliation"):
        await consumer.start()
        try:
            deadline = time.monotonic() + timeout_s
            await wait_for_assignment(consumer, deadline)
            parts = sorted(consumer.assignment(), key=lambda tp: tp.partition)
            for tp in parts:
                consumer.seek(tp, since.get(tp.partition, 0))
            end = await consumer.end_offsets(parts)
            todo = {tp for tp in parts if await consumer.position(tp) < end[tp]}
            while todo and time.monotonic() < deadline:
                got = await consumer.getmany(*todo, timeout_ms=500, max_records=500)
                for recs in got.values():
                    for r in recs:
                        try:
                            did = decode_decision(r.value or b"").decision_id
                        except GateInputError:
                            continue  # not a decision of this schema: nothing of ours
                        if did in wanted:
                            found[did] = (r.partition, r.offset)
                todo = {tp for tp in todo if await consumer.position(tp) < end[tp]}
            if todo:
                raise TimeoutError(f"the outbox reconciliation did not reach the end of {topic} in {timeout_s:.0f}s")
        finally:
            await consumer.stop()
    return found


async def publish_outbox(settings: Settings, store: GateStore, producer: Any) -> tuple[int, int]:
    """Reconcile the outbox with the decisions topic, then send what is not there (see the module docstring).
    Returns (found on the topic, sent now). A decision is sent only if it was not found from this gate's last
    acknowledged offsets on: a process that died after the broker wrote a decision but before the
    acknowledgement reached SQLite does not get it written twice."""
    pending = store.outbox()
    if not pending:
        return 0, 0
    topic = settings.topic_gate_decisions
    found = await find_on_topic(settings.bootstrap, topic, store.published_offsets(topic),
                                {o.decision_id for o in pending})
    store.mark_published(sorted(found), [(topic, p, o) for p, o in found.values()])
    rest = [o for o in pending if o.decision_id not in found]
    await send_outputs(producer, store, topic, rest)
    log_line(logging.WARNING if rest or found else logging.INFO, "gate outbox reconciled", found_on_topic=len(found),
             sent=len(rest))
    return len(found), len(rest)


class _AuditFlusher:
    """gate_delivery=outbox (ADR 0701 rule 4): appends the audit events the batches committed to the store
    (``audit_pending``) to the gate's audit log (``AuditLog`` is thread-safe) from a thread of its own, so an
    arrival's decision never waits for the audit log's fsync. One flush runs at a time; a row leaves the store
    only after the audit log has it (a crash in between appends it again: repeated, never lost -- AUD-5).
    A failed append is raised by the next :meth:`check`, so the gate stops as it would have before."""

    def __init__(self, store: GateStore, auditor: Auditor) -> None:
        self.store = store
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="gate-audit")
        self._auditor: Auditor | None = auditor
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    async def start(self) -> None:
        await self.flush()  # what a previous process committed and did not append

    def check(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def kick(self) -> None:
        """Append what is pending, in the background (a flush already running picks new rows up too)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        auditor = self._auditor
        done = 0
        try:
            while auditor is not None:
                upto, events = self.store.pending_audit()
                if not events or upto <= done:  # nothing new (a row that would not leave is not re-sent forever)
                    return
                await loop.run_in_executor(self._executor, auditor.append, events)
                self.store.audit_appended(upto)
                done = upto
        except Exception as exc:  # noqa: BLE001 - kept and raised by check() on the loop's next batch
            log_line(logging.ERROR, "gate audit append failed", error=repr(exc))
            self._error = exc

    async def flush(self) -> None:
        """Wait until everything pending is in the audit log; raises what a flush met."""
        if self._task is not None:
            await self._task
        self._task = asyncio.create_task(self._run())
        await self._task
        self.check()

    async def close(self) -> None:
        """Append what is pending; the auditor stays open (its owner closes it)."""
        try:
            if self._auditor is not None:
                await self.flush()
        finally:
            self._auditor = None
            self._executor.shutdown(wait=True)


class _OutboxSender:
    """gate_delivery=outbox: the sink of the loop (decide, send, take out of the outbox; see the module
    docstring). Its producer is idempotent, not transactional; after a failed send it is replaced, and the
    next batch first reconciles the outbox with the topic (what the failed send wrote is unknown)."""

    def __init__(self, settings: Settings, store: GateStore, client_id: str, auditor: Auditor) -> None:
        self.settings = settings
        self.store = store
        self.client_id = client_id
        self.audit = _AuditFlusher(store, auditor)
        self.decide: Callable[[list[Incoming]], Any] | None = None
        self._producer: Any = None
        self._reconcile = True
        self._lock = asyncio.Lock()  # the arrivals' and the feed's loops share it: one batch at a time

    async def start(self) -> None:
        await self.audit.start()
        self._producer = make_producer(self.settings.bootstrap, client_id=self.client_id, linger_ms=0)
        with kafka_boundary("start producer"):
            await self._producer.start()
        await self._reconciled()

    async def _replace_producer(self) -> None:
        """After a failed send: a new producer (the old one's state is unknown); started if Kafka lets it,
        else the loop's restart retries."""
        await self._stop_producer()
        self._producer = make_producer(self.settings.bootstrap, client_id=self.client_id, linger_ms=0)
        with contextlib.suppress(Exception):
            await self._producer.start()

    async def _reconciled(self) -> None:
        if self._reconcile:
            await publish_outbox(self.settings, self.store, self._producer)
            self._reconcile = False

    async def __call__(self, records: list[Incoming]) -> None:
        async with self._lock:
            await self._handle(records)

    async def _handle(self, records: list[Incoming]) -> None:
        assert self.decide is not None  # noqa: S101 - set by run_gate before the loop runs
        self.audit.check()
        await self._reconciled()
        result = self.decide(records)
        outputs = [Output(o.key or b"", o.value, i) for o, i in zip(result.outputs, result.output_ids, strict=True)]
        if result.replayed:  # a replayed record's decisions are re-sent only while still in the outbox
            still = self.store.unpublished([o.decision_id for o in outputs])
            outputs = [o for o in outputs if o.decision_id in still]
        try:
            await send_outputs(self._producer, self.store, self.settings.topic_gate_decisions, outputs)
        except BaseException:
            self._reconcile = True
            await self._replace_producer()
            raise
        self.audit.kick()  # the batch's audit events, now that its decisions are out

    async def _stop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), timeout=15)

    async def close(self) -> None:
        try:
            await self._stop_producer()
        finally:
            await self.audit.close()


async def _run_all(loops: Sequence[TransactionalBatchLoop | AtLeastOnceLoop], stop: asyncio.Event) -> None:
    """Run the loops until ``stop``; the first to fail stops the others and its error is raised."""
    tasks = [asyncio.create_task(lp.run()) for lp in loops]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        stop.set()
        for task in tasks:
            if not task.done():
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout=30)


def _loop_config(settings: Settings, ident: Identity) -> LoopConfig:
    # No priority lane for the feed: the catch-up above brought the view to the feed's end before the first
    # arrival, and within a batch the processor applies feed records first. Pausing the arrivals while the
    # feed had a backlog (as before) starved them when the exchange writes the feed at full rate; a feed
    # record that lands after a truck's decision re-decides it (GATE-6, a superseding record) instead.
    return LoopConfig(bootstrap=settings.bootstrap, topics=(settings.topic_gate_feed, settings.topic_gate_arrivals),
                      group_id=ident.group_id, client_id=ident.client_id,
                      transactional_id=ident.transactional_id if settings.gate_delivery == "transaction" else None,
                      batch_max=settings.exchange_batch_max, poll_ms=min(settings.exchange_poll_ms, 50),
                      txn_timeout_s=settings.exchange_txn_timeout_s, fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms)


def _processor(settings: Settings, store: GateStore, auditor: Auditor, clock: Callable[[], int],
               authority: str) -> GateProcessor:
    return GateProcessor(store, PlateHasher.load_or_create(gate_hmac_key(settings)), gate_policy(settings), clock,
                         arrivals_topic=settings.topic_gate_arrivals, decisions_topic=settings.topic_gate_decisions,
                         authority=authority, audit=auditor.append)


def _now_ms() -> int:
    return int(time.time() * 1000)


async def run_gate(settings: Settings, options: GateOptions, *, stop: asyncio.Event | None = None,
                   clock: Callable[[], int] = _now_ms, install_shutdown: bool = True) -> int:
    """Run the gate until ``stop`` (SIGTERM/SIGINT); returns the exit code."""
    await ensure_topics(settings.bootstrap, gate_topics(settings), settings.topic_partitions)
    ident = Identity("gate", options.instance, settings.exchange_group_prefix)
    store = GateStore.open(gate_db(settings, options.authority))
    outbox = settings.gate_delivery == "outbox"
    store.keep_outbox = outbox
    auditor: Auditor | None = None
    sender: _OutboxSender | None = None
    try:
        auditor = Auditor(settings, options.authority)
        processor = _processor(settings, store, auditor, clock, options.authority)
        processor.defer_audit = outbox  # the audit events go out after the decisions (ADR 0701 rule 4)
        await catch_up_feed(settings, processor)
        await recover_lost_tail(settings, processor, ident.group_id)
        sender = _OutboxSender(settings, store, f"{ident.client_id}-decisions", auditor)
        await sender.start()  # reconciles the outbox (also after a switch from gate_delivery=outbox)
        stop = stop or asyncio.Event()
        if install_shutdown:
            _install_shutdown(stop)
        config = _loop_config(settings, ident)
        loops: list[TransactionalBatchLoop | AtLeastOnceLoop] = []
        ops = Ops("gate", options.metrics_port, lambda: {
            "ok": bool(loops) and not stop.is_set(), "connector": "gate", "instance": options.instance,
            "ready": bool(loops) and all(lp.stats.assigned is not None for lp in loops),
            "restarts": sum(lp.stats.restarts for lp in loops)})

        def decide(records: list[Incoming]) -> Any:
            result = processor.handle(records)  # synchronous: one SQLite transaction per batch
            for d in result.decisions:
                ops.count(d.colour.name.lower())
            ops.count("invalid", result.invalid)
            return result

        async def handler(records: list[Incoming]) -> list[Outgoing]:
            return list(decide(records).outputs)

        if outbox:
            # two loops in one process, one store: the arrivals' (small batches, nothing else in them) and the
            # feed's (at most gate_feed_batch_max records a batch), so an arrival never waits behind a backlog
            # of the feed; a feed record applied after a truck's decision supersedes it (GATE-6)
            sender.decide = decide
            loops += [AtLeastOnceLoop(dataclasses.replace(config, topics=(settings.topic_gate_arrivals,)), sender,
                                      stop),
                      AtLeastOnceLoop(dataclasses.replace(config, topics=(settings.topic_gate_feed,),
                                                          group_id=f"{ident.group_id}.feed",
                                                          client_id=f"{ident.client_id}-feed",
                                                          batch_max=settings.gate_feed_batch_max), sender, stop)]
        else:
            loops.append(TransactionalBatchLoop(config, handler, stop))
        log_line(logging.INFO, "gate started", instance=options.instance, bootstrap=settings.bootstrap,
                 delivery=settings.gate_delivery)
        try:
            await _run_all(loops, stop)
        finally:
            ops.close()
    finally:
        if sender is not None:
            await sender.close()
        if auditor is not None:
            auditor.close()
        store.close()
    return 0
