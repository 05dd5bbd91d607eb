"""Audit completeness of the endpoint and the receipt tracker (ADR 0400): every batch's audit events are
appended durably INSIDE the open SQLite state transaction, before it commits.

- A process that dies right after the audit append (a real child process, ``os._exit`` inside the open
  transaction) leaves the state uncommitted; the redelivered batch is processed again and its events are
  appended again: the log holds them at least once, the repeat carries the same message id, event type,
  Kafka position and attempt, and the state holds the message once.
- A failing audit append (the audit database locked by another writer) leaves the state uncommitted:
  nothing is recorded as processed / sent / delivered without its events, and the retry is processed as
  new (not as a duplicate that would skip the events).
- Holding the state lock across the audit append does not deadlock with another writer of the same
  state file and another writer of the same audit log.

Real keys, real SQLite, real audit logs; no broker (the connectors' Kafka commit comes after all this).
"""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

import pytest

from xborder_gateway.audit import AuditConfig, AuditEvent, AuditLog
from xborder_gateway.connectors import Faults, NanningProcessor, ReceiptTracker
from xborder_gateway.connectors._common import Auditor
from xborder_gateway.errors import TransportError
from xborder_gateway.transport import Incoming

from .conftest import PASSPHRASE, Home
from .test_endpoint_and_tracker import _as_incoming, _incoming, _sealed

CRASH = 17
CN_STEPS = ["opened", "business_response", "verified", "receipt_sent"]
# issue 13: the Receipt v2 carries the immediate business decision, recorded (and audited) by the tracker
VN_STEPS = ["sent", "receipt_received", "delivered", "business_response"]

# The child: one batch through the real processor, whose audit sink appends durably and then kills the
# process before the processor can commit its SQLite transaction.
_CHILD = """
import base64, json, os, sys
from pathlib import Path
from xborder_gateway.config import load_settings
from xborder_gateway.connectors import Faults, NanningProcessor, ReceiptTracker
from xborder_gateway.connectors._common import Auditor
from xborder_gateway.envelope import LocalAuthority, TrustStore
from xborder_gateway.transport import Incoming

home, side, batch, passphrase = sys.argv[1:5]
settings = load_settings(home=Path(home), key_passphrase=passphrase)
me = LocalAuthority.load(settings, side, passphrase.encode())
trust = TrustStore.load(settings, side)
def b(s):
    return None if s is None else base64.b64decode(s)
records = [Incoming(t, p, o, b(k), b(v), tuple((hk, b(hv)) for hk, hv in h), ts)
           for t, p, o, k, v, h, ts in json.loads(Path(batch).read_text())]
auditor = Auditor(settings, side)

def append_then_die(events):
    auditor.append(events)  # durable when it returns (AUD-5)
    os._exit(@CRASH@)       # dies inside the open state transaction: no SQLite commit, no cleanup

if side == "CN":
    NanningProcessor(settings, me, trust, Faults()).process(records, audit=append_then_die)
else:
    ReceiptTracker(settings, me, trust).consume(records, audit=append_then_die)
sys.exit(3)  # not reached unless the processor never called its audit sink
""".replace("@CRASH@", str(CRASH))


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _crash_in_child(home: Home, side: str, records: Sequence[Incoming]) -> int:
    batch = home.path / f"batch-{side}.json"
    batch.write_text(json.dumps([[r.topic, r.partition, r.offset, _b64(r.key), _b64(r.value),
                                  [[k, _b64(v)] for k, v in r.headers], r.timestamp_ms] for r in records]))
    done = subprocess.run([sys.executable, "-c", _CHILD, str(home.path), side, str(batch), PASSPHRASE.decode()],
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == CRASH, done.stderr.decode(errors="replace")[-2000:]
    return done.returncode


def _events(home: Home, side: str, message_id: str) -> list[AuditEvent]:
    log = AuditLog.open(home.settings, side, read_only=True)
    try:
        log.verify()  # the log itself is intact after the crash (raises naming the first bad entry)
        return [e.event for e in log.search(message_id=message_id, limit=1000)]
    finally:
        log.close()


def _count(home: Home, side: str, sql: str, *args: object) -> int:
    db = sqlite3.connect(home.settings.state_db(side))
    try:
        return int(db.execute(sql, args).fetchone()[0])
    finally:
        db.close()


def _identity(e: AuditEvent) -> tuple[object, ...]:
    """What makes a repeated event recognisable as the same step of the same delivery."""
    return (e.message_id, e.event_type.value, e.kafka_topic, e.kafka_partition, e.kafka_offset, e.attempt)


def _assert_repeated_once(events: list[AuditEvent], steps: list[str]) -> None:
    assert [e.event_type.value for e in events] == steps + steps, "each step audited, then repeated once"
    first, again = events[: len(steps)], events[len(steps):]
    assert [_identity(e) for e in first] == [_identity(e) for e in again], "a repeat is recognisable as one"


def _locked_audit(home: Home, side: str) -> sqlite3.Connection:
    """Another writer holding the audit database's write lock (as a busy outbound connector would)."""
    lock = sqlite3.connect(home.settings.audit_db(side), isolation_level=None, timeout=5)
    lock.execute("BEGIN IMMEDIATE")
    return lock


# --- the endpoint ----------------------------------------------------------------------------------------
def test_endpoint_dies_after_the_audit_append_the_redelivery_repeats_the_events(home: Home) -> None:
    s = home.settings
    env = _sealed(home)
    mid = str(env.message_id)
    batch = [_incoming(s.topic_exchange, env, offset=7)]
    _crash_in_child(home, "CN", batch)
    # the events are durable, the state is not: nothing is recorded as processed
    assert [e.event_type.value for e in _events(home, "CN", mid)] == CN_STEPS
    assert _count(home, "CN", "SELECT count(*) FROM cn_processed") == 0
    assert _count(home, "CN", "SELECT count(*) FROM envelope_replay") == 0
    assert _count(home, "CN", "SELECT count(*) FROM cn_answers") == 0

    # the batch is redelivered (its Kafka transaction never committed): processed again, audited again
    auditor = Auditor(s, "CN")
    cn = NanningProcessor(s, home.cn, home.cn_trust, Faults())
    try:
        res = cn.process(batch, audit=auditor.append)
        answers, counts = res.outputs, res.counts
        assert (counts["processed"], counts["duplicate"]) == (1, 0), "not mistaken for a duplicate"
        assert [o.header("xbg-kind") for o in answers] == [b"receipt"], "one answer per declaration (issue 13)"
        _assert_repeated_once(_events(home, "CN", mid), CN_STEPS)
        assert _count(home, "CN", "SELECT count(*) FROM cn_processed WHERE message_id = ?", mid) == 1
        assert _count(home, "CN", "SELECT count(*) FROM cn_answers WHERE message_id = ?", mid) == 1
        # once committed, a further copy is a duplicate: one more event, no second processing
        counts = cn.process(batch, audit=auditor.append).counts
        assert (counts["processed"], counts["duplicate"]) == (0, 1)
        assert [e.event_type.value for e in _events(home, "CN", mid)] == CN_STEPS + CN_STEPS + ["duplicate"]
    finally:
        cn.close()
        auditor.close()


def test_endpoint_failed_audit_append_leaves_nothing_processed(home: Home) -> None:
    s = home.settings
    env = _sealed(home)
    mid = str(env.message_id)
    batch = [_incoming(s.topic_exchange, env)]
    log = AuditLog.open(s, "CN", config=AuditConfig(busy_timeout_s=0.2), background_checkpoints=False)
    cn = NanningProcessor(s, home.cn, home.cn_trust, Faults())
    try:
        lock = _locked_audit(home, "CN")
        with pytest.raises(TransportError) as failed:
            cn.process(batch, audit=log.append)
        assert failed.value.code == "AUDIT_DB_BUSY"
        assert cn.processed == 0
        lock.rollback()
        lock.close()
        assert _events(home, "CN", mid) == []
        for table in ("cn_processed", "envelope_replay", "cn_answers", "cn_declarations", "cn_duplicates"):
            assert _count(home, "CN", f"SELECT count(*) FROM {table}") == 0, f"{table} written without audit"  # noqa: S608
        # the retry (the loop restarts and the batch is redelivered) is processed as new, with its events
        counts = cn.process(batch, audit=log.append).counts
        assert (counts["processed"], counts["duplicate"]) == (1, 0)
        assert [e.event_type.value for e in _events(home, "CN", mid)] == CN_STEPS
    finally:
        cn.close()
        log.close()


# --- the receipt tracker ---------------------------------------------------------------------------------
def _sent_and_acked(home: Home) -> tuple[str, list[Incoming]]:
    """A committed exchange record and the endpoint's signed ACK for it, as the tracker consumes them."""
    s = home.settings
    env = _sealed(home)
    sent = _incoming(s.topic_exchange, env, offset=3)
    cn = NanningProcessor(s, home.cn, home.cn_trust, Faults())
    try:
        answers = cn.process([sent]).outputs
    finally:
        cn.close()
    receipt = next(o for o in answers if o.header("xbg-kind") == b"receipt")
    return str(env.message_id), [sent, _as_incoming(receipt, 5)]


def test_tracker_dies_after_the_audit_append_the_redelivery_repeats_the_events(home: Home) -> None:
    mid, batch = _sent_and_acked(home)
    _crash_in_child(home, "VN", batch)
    assert [e.event_type.value for e in _events(home, "VN", mid)] == VN_STEPS
    assert _count(home, "VN", "SELECT count(*) FROM xbg_messages") == 0, "the state must not have committed"

    # the offsets were never committed: the same batch again, applied and audited again
    auditor = Auditor(home.settings, "VN")
    tracker = ReceiptTracker(home.settings, home.vn, home.vn_trust)
    try:
        counts = tracker.consume(batch, audit=auditor.append).counts
        assert (counts["sent"], counts["delivered"], counts["duplicate_receipt"]) == (1, 1, 0)
        _assert_repeated_once(_events(home, "VN", mid), VN_STEPS)
        row = tracker.conn.execute("SELECT state, attempts, receipts FROM xbg_messages WHERE message_id = ?",
                                   (mid,)).fetchone()
        assert row == ("delivered", 1, 1)
    finally:
        tracker.close()
        auditor.close()


def test_tracker_failed_audit_append_marks_nothing_sent_or_delivered(home: Home) -> None:
    mid, batch = _sent_and_acked(home)
    log = AuditLog.open(home.settings, "VN", config=AuditConfig(busy_timeout_s=0.2), background_checkpoints=False)
    tracker = ReceiptTracker(home.settings, home.vn, home.vn_trust)
    try:
        lock = _locked_audit(home, "VN")
        with pytest.raises(TransportError):
            tracker.consume(batch, audit=log.append)
        lock.rollback()
        lock.close()
        assert _events(home, "VN", mid) == []
        assert _count(home, "VN", "SELECT count(*) FROM xbg_messages") == 0, "tracked without its audit events"
        assert tracker.conn.in_transaction is False, "the failed batch's transaction was rolled back"
        counts = tracker.consume(batch, audit=log.append).counts
        assert (counts["sent"], counts["delivered"]) == (1, 1), "the retry is applied as new"
        assert [e.event_type.value for e in _events(home, "VN", mid)] == VN_STEPS
    finally:
        tracker.close()
        log.close()


def test_state_lock_held_across_the_audit_append_does_not_deadlock(home: Home) -> None:
    """Tracker A holds the VN state lock and waits for the audit log, which a third writer (an outbound
    append) holds; tracker B (another instance on the same state file) waits for the state lock. Lock order
    is state -> audit everywhere, so all three finish as soon as the audit writer lets go."""
    s = home.settings
    first, second = _sealed(home, "100000000001"), _sealed(home, "100000000002")
    a_holds_state = threading.Event()
    errors: list[Exception] = []
    auditor = Auditor(s, "VN")

    def tracker_a() -> None:
        def sink(events: Sequence[AuditEvent]) -> None:
            a_holds_state.set()  # we are inside A's state transaction
            auditor.append(events)
        t = ReceiptTracker(s, home.vn, home.vn_trust)
        try:
            t.consume([_incoming(s.topic_exchange, first, offset=0)], audit=sink)
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            t.close()

    def tracker_b() -> None:
        t = ReceiptTracker(s, home.vn, home.vn_trust)
        try:
            t.consume([_incoming(s.topic_exchange, second, offset=1)], audit=auditor.append)
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            t.close()

    try:
        lock = _locked_audit(home, "VN")
        a = threading.Thread(target=tracker_a)
        a.start()
        assert a_holds_state.wait(20), "tracker A never reached its audit append"
        b = threading.Thread(target=tracker_b)
        b.start()
        time.sleep(0.5)  # A waits for the audit log, B for the state file
        assert a.is_alive(), "A must be waiting for the audit log"
        assert b.is_alive(), "B must be waiting for the state file"
        started = time.monotonic()
        lock.rollback()  # the other audit writer commits
        lock.close()
        a.join(20)
        b.join(20)
        assert not a.is_alive(), "deadlock: tracker A is still waiting"
        assert not b.is_alive(), "deadlock: tracker B is still waiting"
        assert time.monotonic() - started < 10
        assert errors == []
        for env in (first, second):
            assert [e.event_type.value for e in _events(home, "VN", str(env.message_id))] == ["sent"]
        assert _count(home, "VN", "SELECT count(*) FROM xbg_messages WHERE state = 'pending'") == 2
    finally:
        auditor.close()
