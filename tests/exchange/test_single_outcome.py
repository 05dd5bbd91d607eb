"""Issue 9 item 11 on a real broker: a message's outcome is decided once.

1. Deterministic interleavings: a receipt committed while the resend task is between its claim and its
   send (a hook runs there) -- the claimed decision stands, the receipt is recorded, nothing is produced
   twice and the audit log never shows two outcomes.
2. A fault run: the endpoint drops, duplicates and answers late (so dead letters and late ACKs race), the
   tracker and the endpoint are killed (-9) and restarted; afterwards the dead-letter topic, the tracker's
   state and BOTH audit logs must agree that no message has two outcomes.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from collections import defaultdict
from pathlib import Path

import pytest

from xborder_gateway.audit import AuditLog, EventType
from xborder_gateway.config import Settings
from xborder_gateway.connectors import Faults, NanningProcessor, ReceiptTracker
from xborder_gateway.connectors._common import Auditor, Ops
from xborder_gateway.connectors.receipts import Claims, _tick
from xborder_gateway.envelope import SealedEnvelope
from xborder_gateway.transport import Outgoing, ensure_topics, make_producer

from .conftest import Home, make_home
from .harness import Exchange, new_exchange
from .test_endpoint_and_tracker import _as_incoming, _incoming, _sealed
from .test_endpoint_faults import _read_all

pytestmark = [pytest.mark.integration]


def _audit_entries(settings: Settings, authority: str) -> list[tuple[int, str, str]]:
    """(index, message id, event type) of every entry of ``authority``'s audit log, in log order."""
    out = []
    log = AuditLog.open(settings, authority, read_only=True)
    try:
        after = None
        while page := log.search(after=after, limit=1000):
            out.extend((e.index, str(e.event.message_id), e.event.event_type.value) for e in page)
            after = page[-1].index
    finally:
        log.close()
    return out


def assert_one_outcome_each(entries: list[tuple[int, str, str]]) -> tuple[set[str], set[str]]:
    """No id both delivered and dead-lettered; no resend logged after the id's outcome. Returns the sets."""
    delivered: set[str] = set()
    dead: set[str] = set()
    late_resends = []
    settled: dict[str, str] = {}
    for _i, mid, kind in entries:
        if kind in ("delivered", "dead_lettered"):
            (delivered if kind == "delivered" else dead).add(mid)
            settled.setdefault(mid, kind)
        elif kind == "resent" and mid in settled:
            late_resends.append((mid, settled[mid]))
    both = delivered & dead
    assert not both, f"{len(both)} messages both delivered and dead-lettered, e.g. {sorted(both)[:3]}"
    assert not late_resends, f"{len(late_resends)} resends logged after the outcome, e.g. {late_resends[:3]}"
    return delivered, dead


async def _setup(tmp_path: Path, bootstrap: str, prefix: str, max_attempts: int
                 ) -> tuple[Home, SealedEnvelope, ReceiptTracker, list[Outgoing]]:
    home = make_home(tmp_path / "home", exchange_resend_max_attempts=max_attempts, exchange_receipt_timeout_s=0.001,
                     exchange_dead_letter_after="attempts",  # ADR 0601: the attempts horizon under test
                     exchange_backoff_initial_s=0.001, exchange_backoff_jitter_s=0,
                     topic_exchange=f"{prefix}.exchange", topic_dead_letter=f"{prefix}.dead-letter",
                     topic_receipts=f"{prefix}.receipts")
    s = home.settings
    await ensure_topics(bootstrap, [s.topic_exchange, s.topic_dead_letter], 1)
    env = _sealed(home)
    tracker = ReceiptTracker(s, home.vn, home.vn_trust)
    tracker.consume([_incoming(s.topic_exchange, env)])
    cn = NanningProcessor(s, home.cn, home.cn_trust, Faults())
    answers = cn.process([_incoming(s.topic_exchange, env)]).outputs
    cn.close()
    return_value = (home, env, tracker, answers)
    await asyncio.sleep(0.01)
    return return_value


async def test_ack_between_dead_letter_claim_and_send(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str) -> None:
    home, env, tracker, answers = await _setup(tmp_path, kafka_bootstrap, topic_prefix, 1)
    s = home.settings
    auditor = Auditor(s, "VN")
    producer = make_producer(kafka_bootstrap, client_id="t-interleave")
    await producer.start()

    async def receipt_arrives(claims: Claims) -> None:  # the receipt handler commits in between
        assert [m.message_id for m, _ in claims.dead] == [str(env.message_id)]
        counts = tracker.consume([_as_incoming(o, i) for i, o in enumerate(answers)],
                                 audit=auditor.append).counts
        assert (counts["delivered"], counts["late_receipt"]) == (0, 1)

    try:
        await _tick(tracker, producer, auditor, Ops("receipts", None, dict), after_claim=receipt_arrives)
        again = await _tick(tracker, producer, auditor, Ops("receipts", None, dict))
        assert (again.resend, again.dead) == ([], [])
    finally:
        await producer.stop()
        auditor.close()
    state = tracker.conn.execute("SELECT state FROM xbg_messages").fetchone()[0]
    tracker.close()
    assert state == "dead"
    letters = await _read_all(kafka_bootstrap, s.topic_dead_letter, 1, idle_s=2)
    assert [k for k, _, _ in letters] == [str(env.message_id)], "exactly one dead letter"
    kinds = [k for _, m, k in _audit_entries(s, "VN") if m == str(env.message_id)]
    # issue 13: the late Receipt v2 carries CN's decision, recorded (audited) as the business outcome
    assert kinds == ["dead_lettered", "receipt_received", "business_response"], \
        "the late ACK is recorded, not delivered"
    assert_one_outcome_each(_audit_entries(s, "VN"))


async def test_ack_between_resend_claim_and_send(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str) -> None:
    home, env, tracker, answers = await _setup(tmp_path, kafka_bootstrap, topic_prefix, 5)
    s = home.settings
    auditor = Auditor(s, "VN")
    producer = make_producer(kafka_bootstrap, client_id="t-interleave")
    await producer.start()

    async def receipt_arrives(claims: Claims) -> None:
        assert [m.message_id for m in claims.resend] == [str(env.message_id)]
        counts = tracker.consume([_as_incoming(o, i) for i, o in enumerate(answers)],
                                 audit=auditor.append).counts
        assert counts["delivered"] == 1, "a receipt is never blocked by a claimed resend"

    try:
        await _tick(tracker, producer, auditor, Ops("receipts", None, dict), after_claim=receipt_arrives)
        await asyncio.sleep(0.01)
        again = await _tick(tracker, producer, auditor, Ops("receipts", None, dict))
        assert (again.resend, again.dead) == ([], []), "nothing more for a delivered message"
    finally:
        await producer.stop()
        auditor.close()
    tracker.close()
    kinds = [k for _, m, k in _audit_entries(s, "VN") if m == str(env.message_id)]
    assert kinds == ["resent", "receipt_received", "delivered", "business_response"], \
        "the resend was decided before the ACK (issue 13: the Receipt v2 carries the business outcome)"
    assert_one_outcome_each(_audit_entries(s, "VN"))


N = 300


async def test_fault_run_no_message_has_two_outcomes(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str) -> None:
    """Drops (40 % per copy), duplicates (30 %), answers delayed 0.3 s per batch and only three sends make dead
    letters and late ACKs race; both connectors are killed -9 and restarted mid-run."""
    ex: Exchange = new_exchange(tmp_path, kafka_bootstrap, topic_prefix, XBG_EXCHANGE_RESEND_MAX_ATTEMPTS="3",
                                XBG_EXCHANGE_DEAD_LETTER_AFTER="attempts",  # ADR 0601: dead letters must race
                                XBG_EXCHANGE_RECEIPT_TIMEOUT_S="3", XBG_EXCHANGE_BACKOFF_INITIAL_S="0.3",
                                XBG_EXCHANGE_BACKOFF_MAX_S="1", XBG_EXCHANGE_BACKOFF_JITTER_S="0.2",
                                XBG_EXCHANGE_BATCH_MAX="40")
    faults = ("--drop-rate", "0.4", "--duplicate-rate", "0.3", "--delay-ms", "300")
    try:
        ex.start("nanning", *faults, "--seed", "21")
        ex.start("receipts")
        ids = await ex.inject(N, perishable_every=5)
        await asyncio.to_thread(ex.wait_for, lambda s: s.delivered >= 30, 60, "30 delivered")
        ex.stop("receipts", sig=signal.SIGKILL)  # mid-run, with receipts and resends in flight
        ex.start("receipts")
        await asyncio.to_thread(ex.wait_for, lambda s: s.delivered >= 120, 60, "120 delivered")
        ex.stop("nanning", sig=signal.SIGKILL)
        ex.start("nanning", *faults, "--seed", "22")
        summary = await asyncio.to_thread(ex.wait_for, lambda s: s.delivered + s.dead_lettered == N, 90,
                                          f"{N} settled")
        summary = await asyncio.to_thread(ex.settled, 4.0, 30)  # late answers and duplicates land
    finally:
        ex.stop_all()
    assert summary.delivered > 0
    assert summary.dead_lettered > 0, "the run must have raced dead letters against receipts"
    vn = _audit_entries(ex.settings, "VN")
    delivered, dead = assert_one_outcome_each(vn)
    assert delivered | dead == set(ids), "every message has an outcome in the VN audit log"
    late = [m for _i, m, k in vn if k == "receipt_received" and m in dead]
    # the tracker's state and the dead-letter topic say the same
    with contextlib.closing(sqlite3.connect(ex.settings.state_db("VN"))) as db:
        states = defaultdict(set)
        for mid, state in db.execute("SELECT message_id, state FROM xbg_messages WHERE data IS NOT NULL"):
            states[str(state)].add(str(mid))
    assert states["delivered"] == delivered
    assert states["dead"] == dead
    assert not states["pending"]
    letters = await _read_all(kafka_bootstrap, ex.settings.topic_dead_letter, len(dead), idle_s=2)
    assert {k for k, _, _ in letters} == dead, "the dead-letter topic holds exactly the dead-lettered ids"
    # the CN side processed each message at most once, and every delivered one
    verified: dict[str, int] = defaultdict(int)
    for _i, mid, kind in _audit_entries(ex.settings, "CN"):
        if kind == EventType.VERIFIED.value:
            verified[mid] += 1
    assert max(verified.values()) == 1, "the endpoint processed a message twice"
    assert delivered <= set(verified)
    print(f"fault run: delivered={len(delivered)} dead={len(dead)} late_receipts_after_dead={len(late)} "
          f"resent={summary.resent} duplicates_eliminated={summary.duplicates_eliminated}")
