"""gate_delivery=outbox (ADR 0701): the SQLite commit holds a batch's decisions in the outbox, an idempotent
producer sends them, their acknowledgements take them out; a restart (or the batch after a failed send) first
looks on the decisions topic for what the outbox still holds, so a decision the broker wrote before the
process died is not written twice. Real store, processor and sender on the in-memory transport."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from xborder_gateway.config import load_settings
from xborder_gateway.connectors._common import Auditor
from xborder_gateway.gate import (
    Arrival,
    Decision,
    Direction,
    GatePolicy,
    GateProcessor,
    GateStore,
    PlateHasher,
    decode_decision,
    encode_arrival,
)
from xborder_gateway.gate._connector import (
    GateOptions,
    _OutboxSender,
    find_on_topic,
    gate_db,
    publish_outbox,
    run_gate,
)
from xborder_gateway.transport import Incoming, ensure_topics, make_consumer, make_producer, memory_broker

from .test_demo_hour import _feed


def _settings(tmp_path: Path, name: str) -> Any:
    return load_settings(home=tmp_path, kafka_bootstrap=f"memory://{name}-{time.monotonic_ns()}",
                         key_passphrase="outbox test passphrase", topic_gate_feed="vn.declarations.status")


def _arrival(aid: str, i: int) -> Arrival:
    return Arrival(aid, "HUU_NGHI", "L1", Direction.EXIT_TO_CN, f"12C-{10000 + i}", 0.97, int(time.time() * 1000))


def _incoming(settings: Any, offset: int, a: Arrival) -> Incoming:
    return Incoming(settings.topic_gate_arrivals, 0, offset, a.arrival_id.encode(), encode_arrival(a))


async def _on_topic(settings: Any) -> list[Decision]:
    consumer = make_consumer(settings.bootstrap, group_id=None, batch_max=1000,
                             topics=(settings.topic_gate_decisions,))
    await consumer.start()
    out: list[Decision] = []
    try:
        for _ in range(5):
            got = await consumer.getmany(timeout_ms=50)
            out += [decode_decision(r.value) for recs in got.values() for r in recs]
    finally:
        await consumer.stop()
    return out


@contextlib.asynccontextmanager
async def _sender(settings: Any) -> AsyncIterator[tuple[GateStore, _OutboxSender]]:
    """The gate's store and outbox sender on ``settings``' home (with the site's audit log), closed after."""
    store = GateStore.open(gate_db(settings))
    auditor = Auditor(settings, "VN")
    sender = _OutboxSender(settings, store, "t-decisions", auditor)
    try:
        yield store, sender
    finally:
        await sender.close()
        auditor.close()
        store.close()


def _processor(settings: Any, store: GateStore) -> GateProcessor:
    return GateProcessor(store, PlateHasher(b"k" * 32), GatePolicy(), lambda: int(time.time() * 1000),
                         arrivals_topic=settings.topic_gate_arrivals, decisions_topic=settings.topic_gate_decisions)


async def _view(settings: Any, store: GateStore, n: int) -> None:
    """The feed of ``n`` pre-declared vehicles applied to ``store`` (as the gate's catch-up would)."""
    await _feed(settings, int(time.time() * 1000) - 1000, n)
    await ensure_topics(settings.bootstrap, (settings.topic_gate_arrivals, settings.topic_gate_decisions), 3)
    broker = memory_broker(settings.bootstrap)
    proc = _processor(settings, store)
    proc.handle([Incoming(r.topic, r.partition, r.offset, r.key, r.value or b"")
                 for r in broker.records(settings.topic_status)])


def test_each_decision_waits_in_the_outbox_until_it_is_marked_published(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "outbox-store")
    store = GateStore.open(tmp_path / "g.sqlite")
    try:
        asyncio.run(_view(settings, store, 3))
        result = _processor(settings, store).handle([_incoming(settings, i, _arrival(f"a{i}", i)) for i in range(3)])
        assert result.output_ids == ["a0/1", "a1/1", "a2/1"]  # one id per output, same order
        assert [o.decision_id for o in store.outbox()] == ["a0/1", "a1/1", "a2/1"]
        assert store.unpublished(["a0/1", "a2/1", "zz/1"]) == {"a0/1", "a2/1"}
        store.mark_published(["a0/1", "a2/1"], [("dec", 1, 7), ("dec", 1, 4), ("dec", 2, 0)])
        assert [o.decision_id for o in store.outbox()] == ["a1/1"]
        assert store.published_offsets("dec") == {1: 8, 2: 1}  # after the highest offset seen, never back
        store.mark_published([], [("dec", 1, 2)])
        assert store.published_offsets("dec") == {1: 8, 2: 1}
        # gate_delivery=transaction: Kafka transactions deliver, the outbox stays empty
        store.keep_outbox = False
        _processor(settings, store).handle([_incoming(settings, 3, _arrival("b0", 0))])
        assert [o.decision_id for o in store.outbox()] == ["a1/1"]
    finally:
        store.close()


def test_a_restart_sends_only_the_decisions_the_topic_does_not_already_have(tmp_path: Path) -> None:
    """The process died after the broker wrote two of a batch's three decisions and before their
    acknowledgements reached SQLite: the restart finds those two on the topic and sends the third only."""
    settings = _settings(tmp_path, "outbox-restart")

    async def go() -> tuple[tuple[int, int], list[Decision]]:
        store = GateStore.open(gate_db(settings))
        try:
            await _view(settings, store, 3)
            result = _processor(settings, store).handle(
                [_incoming(settings, i, _arrival(f"a{i}", i)) for i in range(3)])
            producer = make_producer(settings.bootstrap)
            await producer.start()
            for out in result.outputs[:2]:  # what the dead process got written
                await producer.send_and_wait(out.topic, out.value, key=out.key)
            counts = await publish_outbox(settings, store, producer)
            await producer.stop()
            assert store.outbox() == []
            assert sum(store.published_offsets(settings.topic_gate_decisions).values()) >= 1
        finally:
            store.close()
        return counts, await _on_topic(settings)

    counts, decisions = asyncio.run(go())
    assert counts == (2, 1)
    assert Counter(d.decision_id for d in decisions) == {"a0/1": 1, "a1/1": 1, "a2/1": 1}


def test_the_search_starts_at_the_last_acknowledged_offsets(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "outbox-since")

    async def go() -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
        store = GateStore.open(gate_db(settings))
        try:
            await _view(settings, store, 1)
            result = _processor(settings, store).handle([_incoming(settings, 0, _arrival("a0", 0))])
            producer = make_producer(settings.bootstrap)
            await producer.start()
            meta = await producer.send_and_wait(settings.topic_gate_decisions, result.outputs[0].value,
                                                key=result.outputs[0].key)
            await producer.stop()
            topic = settings.topic_gate_decisions
            everywhere = await find_on_topic(settings.bootstrap, topic, {}, {"a0/1"})
            after = await find_on_topic(settings.bootstrap, topic, {meta.partition: meta.offset + 1}, {"a0/1"})
            return everywhere, after
        finally:
            store.close()

    everywhere, after = asyncio.run(go())
    assert list(everywhere) == ["a0/1"]
    assert after == {}


def test_a_replayed_record_re_sends_its_decision_only_while_it_is_still_in_the_outbox(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "outbox-replay")

    async def go() -> list[Decision]:
        async with _sender(settings) as (store, sender):
            await _view(settings, store, 2)
            sender.decide = _processor(settings, store).handle
            await sender.start()
            first = [_incoming(settings, 0, _arrival("a0", 0)), _incoming(settings, 1, _arrival("a1", 1))]
            await sender(first)
            assert store.outbox() == []
            await sender(first)  # the batch again (its offsets were not committed before a restart)
            store._db.execute("INSERT INTO outbox VALUES ('a1/1')")  # as if its acknowledgement never came back
            await sender(first)
            return await _on_topic(settings)

    decisions = asyncio.run(go())
    assert Counter(d.decision_id for d in decisions) == {"a0/1": 1, "a1/1": 2}


def test_after_a_failed_send_the_next_batch_reconciles_first_and_nothing_is_lost(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "outbox-fail")

    async def go() -> tuple[str, list[Decision], int]:
        async with _sender(settings) as (store, sender):
            await _view(settings, store, 2)
            sender.decide = _processor(settings, store).handle
            await sender.start()
            memory_broker(settings.bootstrap).faults.fail_sends = 1
            try:
                await sender([_incoming(settings, 0, _arrival("a0", 0))])
            except Exception as exc:  # noqa: BLE001 - the loop would restart its clients on it
                failed = type(exc).__name__
            else:
                failed = ""
            left = len(store.outbox())
            await sender([_incoming(settings, 1, _arrival("a1", 1))])
            assert store.outbox() == []
            return failed, await _on_topic(settings), left

    failed, decisions, left = asyncio.run(go())
    assert failed  # the send failed and said so
    assert left == 1  # the decision stayed in the outbox ...
    assert Counter(d.decision_id for d in decisions) == {"a0/1": 1, "a1/1": 1}  # ... and was sent once, first


def test_run_gate_in_outbox_mode_decides_every_arrival_once(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "outbox-run")
    assert settings.gate_delivery == "outbox"  # the default

    async def go() -> list[Decision]:
        await _feed(settings, int(time.time() * 1000) - 1000, 6)
        await ensure_topics(settings.bootstrap, (settings.topic_gate_arrivals, settings.topic_gate_decisions), 3)
        stop = asyncio.Event()
        task = asyncio.create_task(run_gate(settings, GateOptions(instance="t"), stop=stop, install_shutdown=False))
        producer = make_producer(settings.bootstrap)
        await producer.start()
        for i in range(6):
            a = _arrival(f"a{i}", i)
            await producer.send(settings.topic_gate_arrivals, encode_arrival(a), key=a.arrival_id.encode())
        await producer.stop()
        deadline = time.monotonic() + 30
        got: list[Decision] = []
        while len(got) < 6 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            got = await _on_topic(settings)
        stop.set()
        await asyncio.wait_for(task, 30)
        return await _on_topic(settings)

    decisions = asyncio.run(go())
    assert Counter(d.decision_id for d in decisions) == {f"a{i}/1": 1 for i in range(6)}
    store = GateStore.open(gate_db(settings))
    try:
        assert store.outbox() == []
    finally:
        store.close()


def _audited(settings: Any) -> Counter[str]:
    from xborder_gateway.audit.log import AuditLog

    log = AuditLog.open(settings, "VN")
    try:
        return Counter(e.event.message_id or "" for e in log.search(event_type="gate_decision", limit=1000))
    finally:
        log.close()


def test_the_audit_events_are_committed_with_the_batch_and_appended_after_the_decisions_are_sent(
        tmp_path: Path) -> None:
    """ADR 0701 rule 5: with defer_audit the batch's events are in the store's commit (not appended inside
    it), and the sender appends them to the audit log once the decisions are out; none lost, none twice."""
    settings = _settings(tmp_path, "outbox-audit")
    appended_inline: list[object] = []

    async def go() -> tuple[list[str], int, Counter[str], int]:
        async with _sender(settings) as (store, sender):
            await _view(settings, store, 3)
            proc = GateProcessor(store, PlateHasher(b"k" * 32), GatePolicy(), lambda: int(time.time() * 1000),
                                 arrivals_topic=settings.topic_gate_arrivals,
                                 decisions_topic=settings.topic_gate_decisions, audit=appended_inline.append)
            proc.defer_audit = True
            proc.handle([_incoming(settings, 0, _arrival("a0", 0))])
            _, pending = store.pending_audit()
            deferred = [e.message_id or "" for e in pending]
            sender.decide = proc.handle
            await sender.start()  # appends what a previous process left (here: a0's event)
            left_after_start = len(store.pending_audit()[1])
            await sender([_incoming(settings, 1, _arrival("a1", 1)), _incoming(settings, 2, _arrival("a2", 2))])
            task = sender.audit._task  # the append the send kicked off, in the background
            assert task is not None
            await asyncio.wait_for(task, 10)
            return deferred, left_after_start, _audited(settings), len(store.pending_audit()[1])

    deferred, left_after_start, audited, left = asyncio.run(go())
    assert appended_inline == []  # nothing appended inside the batch's transaction
    assert deferred == ["a0/1"]
    assert left_after_start == 0
    assert audited == {"a0/1": 1, "a1/1": 1, "a2/1": 1}
    assert left == 0


def test_a_failed_audit_append_stops_the_next_batch_and_keeps_the_events(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "outbox-audit-fail")

    async def go() -> tuple[str, int, Counter[str]]:
        async with _sender(settings) as (store, sender):
            await _view(settings, store, 2)
            proc = _processor(settings, store)
            proc.defer_audit = True
            sender.decide = proc.handle
            await sender.start()
            auditor = sender.audit._auditor
            assert auditor is not None
            real = auditor.append

            def broken(events: object) -> None:
                raise OSError("audit database unavailable (test)")

            auditor.append = broken  # type: ignore[method-assign]
            await sender([_incoming(settings, 0, _arrival("a0", 0))])
            if sender.audit._task is not None:
                await asyncio.wait_for(sender.audit._task, 10)  # the background append met the failure
            try:
                await sender([_incoming(settings, 1, _arrival("a1", 1))])
            except OSError as exc:
                stopped = str(exc)
            else:
                stopped = ""
            kept = len(store.pending_audit()[1])
            auditor.append = real  # type: ignore[method-assign]
            await sender.audit.flush()
            return stopped, kept, _audited(settings)

    stopped, kept, audited = asyncio.run(go())
    assert "audit database unavailable" in stopped  # the next batch is refused, not decided unaudited
    assert kept == 1  # a0's event stayed in the store
    assert audited == {"a0/1": 1}  # and reached the log once the append worked again
