"""The tracker's compare-and-set claims and its receipt checks, on real keys and real SQLite (no broker):
issue 9 items 3 (connectors' half), 11, 12 and 14.

The clock is injected (``now=``) instead of ageing rows with SQL or sleeping.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from xborder_gateway.audit import EventType
from xborder_gateway.connectors import Faults, NanningProcessor, ReceiptTracker
from xborder_gateway.connectors.nanning import INTERNAL_ERROR, OFFICE
from xborder_gateway.envelope import (
    LocalAuthority,
    SealedEnvelope,
    TrustStore,
    export_bundle,
    import_bundle,
    init_authority,
    make_receipt,
    open_envelope,
    seal,
    seal_receipt,
)
from xborder_gateway.exchange import BusinessDecision, CnRuleSet, summarize_run
from xborder_gateway.transport import Incoming, Outgoing

from .conftest import PASSPHRASE, Home, make_home
from .test_endpoint_and_tracker import _as_incoming, _incoming, _payload, _sealed

LATER = 10**13  # an injected "now" far past every due time


@pytest.fixture
def fast(tmp_path: Any) -> Home:
    return make_home(tmp_path / "fast", exchange_resend_max_attempts=3, exchange_backoff_jitter_s=0,
                     exchange_dead_letter_after="attempts")  # ADR 0601: test_link_outage.py covers "expiry"


def _receipt(home: Home, env: SealedEnvelope, outcome: str = "ACK", code: str | None = None,
             offset: int = 100) -> Incoming:
    """A receipt CN signs for ``env`` (opened with CN's keys, no replay store)."""
    opened = open_envelope(env.data, me=home.cn, trust=home.cn_trust, replay=None)
    record = make_receipt(opened, receiver=OFFICE, outcome=outcome, reason_code=code)  # type: ignore[arg-type]
    sealed = seal_receipt(record, me=home.cn, trust=home.cn_trust)
    return Incoming(home.settings.topic_receipts, 0, offset, str(env.message_id).encode(), sealed.data,
                    (("xbg-kind", b"receipt"),))


def _row(tracker: ReceiptTracker, env: SealedEnvelope) -> tuple[Any, ...]:
    return tuple(tracker.conn.execute("SELECT state, attempts, dead_letter_ms FROM xbg_messages WHERE message_id = ?",
                                      (str(env.message_id),)).fetchone())


def _claim_at(tracker: ReceiptTracker, step: int) -> Any:
    """One tick at the injected time LATER + step hours (every earlier due time has passed)."""
    now = LATER + step * 3_600_000
    return tracker.claim(tracker.due(now=now), now=now)


def _tracked(home: Home) -> tuple[ReceiptTracker, SealedEnvelope]:
    tracker = ReceiptTracker(home.settings, home.vn, home.vn_trust)
    env = _sealed(home)
    tracker.consume([_incoming(home.settings.topic_exchange, env)])
    return tracker, env


# --- item 11: a decision is claimed before anything is produced ----------------------------------------
def test_receipt_between_snapshot_and_claim_wins_and_nothing_is_claimed(fast: Home) -> None:
    tracker, env = _tracked(fast)
    snapshot = tracker.due(now=LATER)
    assert [m.message_id for m, _ in snapshot] == [str(env.message_id)]
    counts = tracker.consume([_receipt(fast, env)]).counts  # the receipt handler commits `delivered`
    assert counts["delivered"] == 1
    claims = tracker.claim(snapshot, now=LATER)  # the tick acts on its (stale) snapshot
    assert (claims.resend, claims.dead, claims.events) == ([], [], [])
    assert [m.message_id for m in claims.lost] == [str(env.message_id)]
    assert _row(tracker, env)[0] == "delivered"
    tracker.close()


def test_stale_snapshot_at_max_attempts_is_not_dead_lettered(fast: Home) -> None:
    tracker, env = _tracked(fast)
    for step in range(2):
        assert _claim_at(tracker, step).resend
    snapshot = tracker.due(now=LATER * 2)
    tracker.consume([_receipt(fast, env)])
    claims = tracker.claim(snapshot, now=LATER * 2)
    assert not claims.dead, "a message delivered after the snapshot must not be dead-lettered"
    assert _row(tracker, env) == ("delivered", 3, None)
    tracker.close()


def test_two_instances_claim_the_same_snapshot_once(fast: Home) -> None:
    tracker, _env = _tracked(fast)
    other = ReceiptTracker(fast.settings, fast.vn, fast.vn_trust)  # a second instance on the same state file
    snap_a, snap_b = tracker.due(now=LATER), other.due(now=LATER)
    a, b = tracker.claim(snap_a, now=LATER), other.claim(snap_b, now=LATER)
    assert (len(a.resend), len(b.resend), len(b.lost)) == (1, 0, 1)
    other.close()
    tracker.close()


def test_receipt_after_the_dead_letter_is_recorded_without_a_second_outcome(fast: Home) -> None:
    tracker, env = _tracked(fast)
    for step in range(2):
        _claim_at(tracker, step)
    claims = _claim_at(tracker, 2)
    assert [(m.message_id, why) for m, why in claims.dead] == [(str(env.message_id), "no receipt after 3 sends")]
    assert [e.event_type for e in claims.events] == [EventType.DEAD_LETTERED]
    res = tracker.consume([_receipt(fast, env)])
    events, counts, latencies = res.events, res.counts, res.latencies
    assert (counts["delivered"], counts["late_receipt"], latencies) == (0, 1, [])
    assert [(e.event_type, e.reason_code) for e in events] == [
        (EventType.RECEIPT_RECEIVED, "RECEIPT_AFTER_DEAD_LETTER")]
    assert _row(tracker, env)[0] == "dead"
    summary = summarize_run(tracker.conn, "r1")
    assert (summary.delivered, summary.dead_lettered) == (0, 1)
    tracker.close()


def test_dead_letter_stays_to_produce_until_marked(fast: Home) -> None:
    """A crash between the claim and the send leaves the dead letter to produce (found again, once)."""
    tracker, env = _tracked(fast)
    nack = _receipt(fast, env, "NACK", "ENV-7 SIGNATURE_INVALID")
    tracker.consume([nack])
    claims = tracker.claim(tracker.due(now=LATER), now=LATER)
    assert [why for _, why in claims.dead] == ["NACK ENV-7 SIGNATURE_INVALID"]
    assert [m.message_id for m, _ in tracker.unproduced_dead_letters()] == [str(env.message_id)]
    tracker.dead_letters_produced([m for m, _ in claims.dead])
    assert tracker.unproduced_dead_letters() == []
    assert _row(tracker, env)[2] is not None
    tracker.close()


def test_failed_audit_append_claims_nothing(fast: Home) -> None:
    tracker, env = _tracked(fast)

    def broken(_events: object) -> None:
        raise OSError("audit disk full")

    with pytest.raises(OSError, match="audit disk full"):
        tracker.claim(tracker.due(now=LATER), audit=broken, now=LATER)
    assert _row(tracker, env) == ("pending", 1, None)
    tracker.close()


# --- item 12: the threshold and the NACK classes through the claims -------------------------------------
def test_threshold_resend_until_max_then_dead_letter(fast: Home) -> None:
    tracker, _env = _tracked(fast)
    kinds = []
    for step in range(4):
        c = _claim_at(tracker, step)
        kinds.append(("resend" if c.resend else "") + ("dead" if c.dead else ""))
    assert kinds == ["resend", "resend", "dead", ""]
    summary = summarize_run(tracker.conn, "r1")
    assert (summary.resent, summary.dead_lettered, summary.pending) == (2, 1, 0)
    tracker.close()


def test_permanent_nack_is_dead_lettered_at_the_first_tick(fast: Home) -> None:
    tracker, env = _tracked(fast)
    tracker.consume([_receipt(fast, env, "NACK", "ENV-10 MESSAGE_ID_REUSED")])
    now = int(tracker.conn.execute("SELECT next_due_ms FROM xbg_messages").fetchone()[0])
    claims = tracker.claim(tracker.due(now=now), now=now)
    assert [why for _, why in claims.dead] == ["NACK ENV-10 MESSAGE_ID_REUSED"], "dead at attempt 1"
    tracker.close()


@pytest.mark.parametrize("code", ["CN_TEMPORARILY_UNAVAILABLE", INTERNAL_ERROR])
def test_retriable_nack_is_resent(fast: Home, code: str) -> None:
    tracker, env = _tracked(fast)
    due_before = int(tracker.conn.execute("SELECT next_due_ms FROM xbg_messages").fetchone()[0])
    tracker.consume([_receipt(fast, env, "NACK", code)])
    due_after = int(tracker.conn.execute("SELECT next_due_ms FROM xbg_messages").fetchone()[0])
    assert due_after < due_before, "a retriable NACK brings the resend forward"
    claims = tracker.claim(tracker.due(now=due_after), now=due_after)
    assert ([m.message_id for m in claims.resend], claims.dead) == ([str(env.message_id)], [])
    tracker.close()


# --- item 12 + 14: forged, malformed and wrong-issuer receipts are counted, not acted on -----------------
def _third_authority(home: Home) -> tuple[LocalAuthority, TrustStore]:
    """A third authority VN trusts (as a home serving more than one counterpart would)."""
    s = home.settings
    init_authority(s, "LA", PASSPHRASE)
    import_bundle(s, "VN", export_bundle(s, "LA"), allow_other_authority=True)  # a third authority, on purpose
    import_bundle(s, "LA", export_bundle(s, "VN"), allow_other_authority=True)
    return LocalAuthority.load(s, "LA", PASSPHRASE), TrustStore.load(s, "LA")


def test_receipt_from_the_wrong_issuer_is_refused_and_counted(fast: Home) -> None:
    la, la_trust = _third_authority(fast)
    vn_trust = TrustStore.load(fast.settings, "VN")
    tracker = ReceiptTracker(fast.settings, fast.vn, vn_trust)
    env = _sealed(fast)  # sealed to CN
    tracker.consume([_incoming(fast.settings.topic_exchange, env)])
    opened = open_envelope(env.data, me=fast.cn, trust=fast.cn_trust, replay=None)
    # LA signs an ACK naming our message id and the very digest we sent, as issuer LA
    record = make_receipt(opened, receiver="LA", outcome="ACK")
    forged = seal_receipt(record, me=la, trust=la_trust, recipient="VN")
    res = tracker.consume([Incoming(fast.settings.topic_receipts, 0, 1, None, forged.data)])
    events, counts = res.events, res.counts
    assert (counts["bad_receipt"], counts["delivered"], events) == (1, 0, [])
    assert _row(tracker, env)[0] == "pending"
    tracker.close()


def test_receipt_whose_issuer_field_is_not_its_signer_is_refused(fast: Home) -> None:
    tracker, env = _tracked(fast)
    opened = open_envelope(env.data, me=fast.cn, trust=fast.cn_trust, replay=None)
    record = make_receipt(opened, receiver="VN", outcome="ACK")  # CN signs a receipt "issued by VN"
    sealed = seal_receipt(record, me=fast.cn, trust=fast.cn_trust)
    counts = tracker.consume([Incoming(fast.settings.topic_receipts, 0, 1, None, sealed.data)]).counts
    assert (counts["bad_receipt"], counts["delivered"]) == (1, 0)
    tracker.close()


def _flip(data: bytes) -> bytes:
    return data[:-3] + bytes([data[-3] ^ 1]) + data[-2:]


FORGED = [
    ("garbage", lambda h, env: b"\x00" * 80),
    ("truncated receipt", lambda h, env: _receipt(h, env).value[:100]),
    ("flipped byte", lambda h, env: _flip(_receipt(h, env).value)),
    ("a document, not a receipt", lambda h, env: env.data),
    ("receipt for other bytes under our id", lambda h, env: _receipt(h, seal(
        _payload("X"), sender=h.vn, recipient="CN", trust=h.vn_trust, document_type="IDA",
        schema_fingerprint=_payload("X")[2:10], message_id=env.message_id)).value),
]


@pytest.mark.parametrize(("case", "make"), FORGED, ids=[f[0] for f in FORGED])
def test_forged_or_malformed_receipts_are_counted_not_acted_on(fast: Home, case: str, make: Any) -> None:
    tracker, env = _tracked(fast)
    bad = Incoming(fast.settings.topic_receipts, 0, 1, None, make(fast, env), (("xbg-kind", b"receipt"),))
    res = tracker.consume([bad, _receipt(fast, env, offset=2)])
    events, counts = res.events, res.counts
    assert counts["bad_receipt"] == 1, case
    assert counts["delivered"] == 1, "the good receipt after it in the batch is still applied"
    assert {e.event_type for e in events} == {EventType.RECEIPT_RECEIVED, EventType.DELIVERED}
    tracker.close()


def test_unexpected_failure_on_a_receipt_is_audited_and_skipped(fast: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    from xborder_gateway.connectors import receipts

    tracker, env = _tracked(fast)
    other = _sealed(fast, "100000000009")
    tracker.consume([_incoming(fast.settings.topic_exchange, other, offset=1)])
    real = receipts.open_receipt
    poison = _receipt(fast, env, offset=5)

    def buggy(data: bytes, **kw: Any) -> Any:
        if data == poison.value:
            raise OverflowError("date value out of range")  # e.g. a certificate valid until 9999-12-31
        return real(data, **kw)

    monkeypatch.setattr(receipts, "open_receipt", buggy)
    res = tracker.consume([poison, _receipt(fast, other, offset=6)])
    events, counts = res.events, res.counts
    assert (counts["failed"], counts["delivered"]) == (1, 1)
    failed = [e for e in events if e.event_type is EventType.REJECTED]
    assert [(e.outcome, e.reason_code, e.kafka_offset) for e in failed] == [("failed", INTERNAL_ERROR, 5)]
    assert _row(tracker, env)[0] == "pending", "nothing decided on a receipt that failed"
    tracker.close()


# --- item 3 (connectors' half): an unexpected failure at the endpoint is a retriable NACK ----------------
def _answers_by_kind(out: list[Outgoing]) -> list[bytes | None]:
    return [o.header("xbg-kind") for o in out]


class BrokenRules(CnRuleSet):
    """CN's rule set with a bug while ``broken``: the endpoint's processing fails unexpectedly."""

    broken = True

    def decide(self, document_type: str, record: Any, *, lookup: Any) -> BusinessDecision:
        if self.broken:
            raise RuntimeError("simulated bug in a business rule")
        return super().decide(document_type, record, lookup=lookup)


def test_endpoint_failure_is_nacked_internal_error_audited_and_resent(fast: Home) -> None:
    s = fast.settings
    rules = BrokenRules()
    tracker, env = _tracked(fast)
    cn = NanningProcessor(s, fast.cn, fast.cn_trust, Faults(), rules=rules)
    res = cn.process([_incoming(s.topic_exchange, env)])
    out, events, counts = res.outputs, res.events, res.counts
    assert counts["failed"] == 1
    assert _answers_by_kind(out) == [b"receipt"]
    assert [(e.event_type, e.outcome, e.reason_code, e.message_id) for e in events if e.reason_code] == [
        (EventType.RECEIPT_SENT, "nack", INTERNAL_ERROR, str(env.message_id))]
    db = sqlite3.connect(s.state_db("CN"))
    assert db.execute("SELECT count(*) FROM envelope_replay").fetchone()[0] == 0, "nothing recorded"
    assert db.execute("SELECT count(*) FROM cn_answers").fetchone()[0] == 0
    # the tracker takes the NACK as retriable and resends the same bytes
    tcounts = tracker.consume([_as_incoming(out[0], 10)]).counts
    assert tcounts["nack"] == 1
    due = int(tracker.conn.execute("SELECT next_due_ms FROM xbg_messages").fetchone()[0])
    claims = tracker.claim(tracker.due(now=due), now=due)
    assert [m.data for m in claims.resend] == [env.data]
    # the bug is fixed: the resend is processed and acknowledged
    rules.broken = False
    res = cn.process([_incoming(s.topic_exchange, env, offset=1, attempt=2)])
    out2, counts2 = res.outputs, res.counts
    assert counts2["processed"] == 1
    tcounts2 = tracker.consume([_as_incoming(o, 11 + i) for i, o in enumerate(out2)]).counts
    assert tcounts2["delivered"] == 1
    cn.close()
    tracker.close()


def test_endpoint_failure_before_opening_is_nacked_internal_error(fast: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    from xborder_gateway.connectors import nanning

    def overflow(*_a: object, **_kw: object) -> object:
        raise OverflowError("date value out of range")

    monkeypatch.setattr(nanning, "open_envelope_checked", overflow)
    env = _sealed(fast)
    cn = NanningProcessor(fast.settings, fast.cn, fast.cn_trust, Faults())
    res = cn.process([_incoming(fast.settings.topic_exchange, env)])
    out, events, counts = res.outputs, res.events, res.counts
    assert counts["failed"] == 1
    assert [o.header("xbg-message-id") for o in out] == [str(env.message_id).encode()]
    assert [(e.event_type, e.reason_code) for e in events] == [(EventType.RECEIPT_SENT, INTERNAL_ERROR)]
    cn.close()


# --- item 14: the same message id with other bytes -----------------------------------------------------
def test_message_id_reused_with_other_bytes_is_nacked_never_the_original_answers(fast: Home) -> None:
    s = fast.settings
    env = _sealed(fast)
    other = seal(_payload("X"), sender=fast.vn, recipient="CN", trust=fast.vn_trust, document_type="IDA",
                 schema_fingerprint=_payload("X")[2:10], message_id=env.message_id)
    cn = NanningProcessor(s, fast.cn, fast.cn_trust, Faults())
    first = cn.process([_incoming(s.topic_exchange, env)]).outputs
    res = cn.process([_incoming(s.topic_exchange, other, offset=1)])
    out, events, counts = res.outputs, res.events, res.counts
    assert (counts["refused"], counts["duplicate"], counts["processed"]) == (1, 0, 0)
    assert len(out) == 1
    assert out[0].value not in {o.value for o in first}, "never the original answers"
    assert [(e.event_type, e.reason_code, e.message_id) for e in events] == [
        (EventType.REJECTED, "ENV-10 MESSAGE_ID_REUSED", str(env.message_id))]
    tracker = ReceiptTracker(s, fast.vn, fast.vn_trust)
    tcounts = tracker.consume([_as_incoming(out[0], 0)]).counts
    from xborder_gateway.envelope import open_receipt

    _opened, record = open_receipt(out[0].value, me=fast.vn, trust=fast.vn_trust, replay=None)
    assert (record["outcome"], record["reason_code"]) == ("NACK", "ENV-10 MESSAGE_ID_REUSED")
    assert record["envelope_sha256"] == other.sha256, "the NACK names the reused bytes, not the original"
    assert tcounts["nack"] == 1
    cn.close()
    tracker.close()


# --- the sender's status feed (issue 10 item 4): the tracker's state changes -----------------------------
def _tracked_with_key(home: Home) -> tuple[ReceiptTracker, SealedEnvelope]:
    """As outbound commits it: the exchange record names its declaration number and type in headers."""
    tracker = ReceiptTracker(home.settings, home.vn, home.vn_trust)
    env = _sealed(home)
    r = _incoming(home.settings.topic_exchange, env)
    headers = (*r.headers, ("xbg-business-key", b"100000000001"), ("xbg-doc-type", b"IDA"))
    tracker.consume([Incoming(r.topic, r.partition, r.offset, r.key, r.value, headers, r.timestamp_ms)])
    return tracker, env


def _states(outputs: list[Outgoing], topic: str) -> list[str]:
    from xborder_gateway.exchange import read_status

    return [read_status(o.value).kind.value for o in outputs if o.topic == topic]


def test_delivery_and_late_receipt_go_to_the_status_feed(fast: Home) -> None:
    tracker, env = _tracked_with_key(fast)
    res = tracker.consume([_receipt(fast, env)])
    assert _states(res.outputs, fast.settings.topic_status) == ["DELIVERED"]
    assert res.outputs[0].key == b"100000000001"  # keyed by the declaration number
    again = tracker.consume([_receipt(fast, env)])  # a duplicate receipt is no state change
    assert _states(again.outputs, fast.settings.topic_status) == []
    tracker.close()
    tracker, env = _tracked_with_key(fast)
    for step in range(3):
        claims = _claim_at(tracker, step)
    assert _states(tracker.claims_status(claims), fast.settings.topic_status) == ["DEAD_LETTERED"]
    late = tracker.consume([_receipt(fast, env)])
    assert _states(late.outputs, fast.settings.topic_status) == ["LATE_RECEIPT"]
    tracker.close()


def test_resends_go_to_the_status_feed_with_their_attempt(fast: Home) -> None:
    from xborder_gateway.exchange import read_status

    tracker, _env = _tracked_with_key(fast)
    claims = _claim_at(tracker, 0)
    (record,) = tracker.claims_status(claims)
    change = read_status(record.value)
    assert (change.kind.value, change.attempt) == ("RESENT", 2)
    tracker.close()


def test_a_refused_receipt_leaves_no_status_record(fast: Home) -> None:
    tracker, env = _tracked_with_key(fast)
    forged = _receipt(fast, env)
    bad = type(forged)(forged.topic, forged.partition, forged.offset, forged.key,
                       forged.value[:-1] + bytes([forged.value[-1] ^ 1]), forged.headers, forged.timestamp_ms)
    res = tracker.consume([bad])
    assert res.counts["bad_receipt"] == 1
    assert _states(res.outputs, fast.settings.topic_status) == []
    tracker.close()


# --- issue 13 item 4: receipts are opened before the state's write lock is taken -------------------------
def test_receipts_are_opened_before_the_state_write_lock(fast: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening (verify, decrypt, decode) is the tracker's CPU-heavy part; while it runs, the other VN writers
    of the state file (outbound's duplicate check, the resend task) must be able to write."""
    tracker, env = _tracked(fast)
    receipt = _receipt(fast, env)
    other = sqlite3.connect(fast.settings.state_db("VN"), isolation_level=None, timeout=0)
    writable: list[bool] = []
    real_open = tracker._open

    def opening(r: Incoming) -> Any:
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            writable.append(True)
        except sqlite3.OperationalError:  # "database is locked": the tracker holds the write lock
            writable.append(False)
        return real_open(r)

    monkeypatch.setattr(tracker, "_open", opening)
    counts = tracker.consume([receipt]).counts
    assert writable == [True]
    assert counts["delivered"] == 1  # opened ahead, applied in the transaction as before
    other.close()
    tracker.close()


def test_a_receipt_that_cannot_be_opened_ahead_is_still_refused_in_its_savepoint(fast: Home) -> None:
    tracker, env = _tracked(fast)
    receipt = _receipt(fast, env)
    tampered = Incoming(receipt.topic, receipt.partition, receipt.offset, receipt.key,
                        receipt.value[:-1] + bytes([receipt.value[-1] ^ 1]), receipt.headers)
    counts = tracker.consume([tampered]).counts
    assert (counts["bad_receipt"], counts["delivered"]) == (1, 0)
    assert _row(tracker, env)[0] == "pending"
    tracker.close()
