"""The Nanning endpoint's and the receipt tracker's state machines, with real keys and real SQLite (no broker).

Payloads here are real Avro frames of an agreed schema (BusinessResponse) sealed as IDA documents: the
mechanics under test (open, de-duplicate, answer, match, resend, dead letter) do not depend on the
declaration's content; the business rules are tested on records directly.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from xborder_gateway import avro
from xborder_gateway.connectors import Faults, NanningProcessor, ReceiptTracker
from xborder_gateway.connectors._common import H_ATTEMPT, H_MESSAGE_ID, H_RUN
from xborder_gateway.connectors.nanning import TRANSIENT_NACK
from xborder_gateway.envelope import SealedEnvelope, seal
from xborder_gateway.exchange import KnownDeclaration, decide, summarize_run
from xborder_gateway.transport import Incoming, Outgoing

from .conftest import Home


def _payload(key: str) -> bytes:
    return avro.encode("BusinessResponse", {
        "message_id": "00000000-0000-0000-0000-000000000000", "business_key": key, "document_type": "IDA",
        "status": "ACCEPTED", "reasons": [], "responded_at": datetime.now(UTC)})


def _sealed(home: Home, key: str = "100000000001") -> SealedEnvelope:
    payload = _payload(key)
    return seal(payload, sender=home.vn, recipient="CN", trust=home.vn_trust, document_type="IDA",
                schema_fingerprint=payload[2:10])


def _incoming(topic: str, env: SealedEnvelope | bytes, offset: int = 0, run: str = "r1",
              attempt: int = 1) -> Incoming:
    data = env.data if isinstance(env, SealedEnvelope) else env
    mid = str(env.message_id) if isinstance(env, SealedEnvelope) else "x"
    return Incoming(topic, 0, offset, mid.encode(), data,
                    ((H_MESSAGE_ID, mid.encode()), (H_RUN, run.encode()), (H_ATTEMPT, str(attempt).encode()),
                     ("xbg-published-ms", b"1000")), timestamp_ms=int(time.time() * 1000))


def _as_incoming(out: Outgoing, offset: int) -> Incoming:
    return Incoming(out.topic, 0, offset, out.key, out.value, out.headers)


# --- the endpoint ----------------------------------------------------------------------------------------
def test_duplicate_is_answered_with_the_original_bytes_and_processed_once(home: Home) -> None:
    cn = NanningProcessor(home.settings, home.cn, home.cn_trust, Faults())
    env = _sealed(home)
    rec = _incoming(home.settings.topic_exchange, env)
    res = cn.process([rec])
    first, counts1 = res.outputs, res.counts
    res = cn.process([rec])
    again, events2, counts2 = res.outputs, res.events, res.counts
    assert counts1["processed"] == 1
    assert counts2 == {**counts2, "processed": 0, "duplicate": 1}
    assert [o.value for o in again] == [o.value for o in first], "duplicate must get the ORIGINAL answers"
    assert [o.header("xbg-kind") for o in first] == [b"receipt"], "one answer per declaration (issue 13)"
    assert [e.event_type.value for e in events2] == ["duplicate"]
    db = sqlite3.connect(home.settings.state_db("CN"))
    assert db.execute("SELECT count(*) FROM cn_processed").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM cn_duplicates").fetchone()[0] == 1
    cn.close()


def test_duplicate_within_one_batch_and_after_restart(home: Home) -> None:
    env = _sealed(home)
    rec = _incoming(home.settings.topic_exchange, env)
    cn = NanningProcessor(home.settings, home.cn, home.cn_trust, Faults(duplicate_rate=1.0, seed=1))
    res = cn.process([rec])
    out, counts = res.outputs, res.counts
    assert (counts["processed"], counts["duplicate"]) == (1, 1)
    assert len(out) == 2, "one answer per declaration (issue 13), and the same answer for the copy"
    assert out[0].value == out[1].value
    cn.close()
    restarted = NanningProcessor(home.settings, home.cn, home.cn_trust, Faults())
    res = restarted.process([rec])
    out2, counts2 = res.outputs, res.counts
    assert (counts2["processed"], counts2["duplicate"]) == (0, 1), "the store survives a restart"
    assert [o.value for o in out2] == [o.value for o in out[:1]]
    restarted.close()


HOSTILE = [
    ("truncated envelope", lambda d: d[: len(d) // 2], "ENV-"),
    ("flipped ciphertext byte", lambda d: d[:-5] + bytes([d[-5] ^ 1]) + d[-4:], "ENV-6"),
    ("garbage", lambda d: b"\x00" * 64, "ENV-"),
]


@pytest.mark.parametrize(("case", "mutate", "rule"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_refused_envelope_gets_a_nack_and_is_not_recorded(home: Home, case: str, mutate: object, rule: str) -> None:
    cn = NanningProcessor(home.settings, home.cn, home.cn_trust, Faults())
    env = _sealed(home)
    bad = mutate(env.data)  # type: ignore[operator]
    res = cn.process([_incoming(home.settings.topic_exchange, bad)])
    out, events, counts = res.outputs, res.events, res.counts
    assert counts["refused"] == 1
    assert counts["processed"] == 0
    assert events[0].reason_code is not None
    assert events[0].reason_code.startswith(rule.replace(" ", "_"))
    tracker = ReceiptTracker(home.settings, home.vn, home.vn_trust)
    # the NACK is a valid, signed receipt the VN side can open
    tcounts = tracker.consume([_as_incoming(o, i) for i, o in enumerate(out)]).counts
    assert tcounts["nack"] == 1
    tracker.close()
    # and a correct copy of the same message is still processed afterwards
    counts2 = cn.process([_incoming(home.settings.topic_exchange, env, offset=1)]).counts
    assert counts2["processed"] == 1
    cn.close()


def test_drop_and_transient_reject_faults_do_not_record(home: Home) -> None:
    env = _sealed(home)
    rec = _incoming(home.settings.topic_exchange, env)
    dropped = NanningProcessor(home.settings, home.cn, home.cn_trust, Faults(drop_rate=1.0))
    res = dropped.process([rec])
    out, counts = res.outputs, res.counts
    assert (out, counts["dropped"]) == ([], 1)
    dropped.close()
    rejecting = NanningProcessor(home.settings, home.cn, home.cn_trust, Faults(reject_rate=1.0))
    res = rejecting.process([rec])
    out, events, counts = res.outputs, res.events, res.counts
    assert counts["transient_nack"] == 1
    assert [(e.event_type.value, e.outcome, e.reason_code) for e in events] == [
        ("opened", "ok", None), ("receipt_sent", "nack", TRANSIENT_NACK)], "the transient NACK is in the CN audit log"
    rejecting.close()
    normal = NanningProcessor(home.settings, home.cn, home.cn_trust, Faults())
    counts = normal.process([rec]).counts
    assert counts["processed"] == 1, "neither a drop nor a transient NACK recorded the message id"
    normal.close()


# --- the tracker -----------------------------------------------------------------------------------------
def test_tracker_delivers_counts_duplicate_receipts_and_business_status(home: Home) -> None:
    s = home.settings
    env = _sealed(home)
    cn = NanningProcessor(s, home.cn, home.cn_trust, Faults(duplicate_rate=1.0, seed=3))
    answers = cn.process([_incoming(s.topic_exchange, env)]).outputs
    tracker = ReceiptTracker(s, home.vn, home.vn_trust)
    res = tracker.consume([_incoming(s.topic_exchange, env)]
                          + [_as_incoming(o, i) for i, o in enumerate(answers)])
    events, counts, latencies = res.events, res.counts, res.latencies
    assert counts["sent"] == 1
    assert counts["delivered"] == 1
    assert counts["duplicate_receipt"] == 1
    assert counts["business"] == 1, "the outcome the first ACK carried (Receipt v2); the duplicate changes nothing"
    assert latencies
    assert {e.event_type.value for e in events} >= {"sent", "delivered", "receipt_received"}
    summary = summarize_run(tracker.conn, "r1")
    assert (summary.delivered, summary.pending, summary.duplicate_receipts) == (1, 0, 1)
    assert summary.business == {"ACCEPTED": 1}
    tracker.close()


def test_receipt_for_other_bytes_is_refused(home: Home) -> None:
    s = home.settings
    env = _sealed(home)
    other = seal(_payload("X"), sender=home.vn, recipient="CN", trust=home.vn_trust, document_type="IDA",
                 schema_fingerprint=_payload("X")[2:10], message_id=env.message_id)
    cn = NanningProcessor(s, home.cn, home.cn_trust, Faults())
    answers = cn.process([_incoming(s.topic_exchange, other)]).outputs
    tracker = ReceiptTracker(s, home.vn, home.vn_trust)
    counts = tracker.consume([_incoming(s.topic_exchange, env), _as_incoming(answers[0], 0)]).counts
    assert counts["bad_receipt"] == 1
    assert counts["delivered"] == 0
    tracker.close()


def test_due_resend_then_dead_letter(tmp_path: object, home: Home) -> None:
    from .conftest import make_home

    h = make_home(home.path.parent / "fast", exchange_receipt_timeout_s=0.001, exchange_backoff_initial_s=0.001,
                  exchange_backoff_jitter_s=0, exchange_resend_max_attempts=3,
                  exchange_dead_letter_after="attempts")  # ADR 0601: the attempts horizon under test
    s = h.settings
    env = _sealed(h)
    tracker = ReceiptTracker(s, h.vn, h.vn_trust)
    tracker.consume([_incoming(s.topic_exchange, env)])

    time.sleep(0.01)
    due = tracker.due()
    assert [m.message_id for m, _ in due] == [str(env.message_id)]
    assert due[0][0].data == env.data, "a resend carries the same bytes"
    for _ in range(2):  # the threshold is the decision's, through the claims (not set by the test)
        time.sleep(0.01)
        assert [m.message_id for m in tracker.claim(tracker.due()).resend] == [str(env.message_id)]
    row = tracker.conn.execute("SELECT attempts, state FROM xbg_messages").fetchone()
    assert row == (3, "pending")
    time.sleep(0.01)
    assert [m.message_id for m, _ in tracker.claim(tracker.due()).dead] == [str(env.message_id)]
    summary = summarize_run(tracker.conn, "r1")
    assert (summary.dead_lettered, summary.resent) == (1, 2)
    tracker.close()


def test_transient_nack_brings_the_resend_forward(home: Home) -> None:
    s = home.settings
    env = _sealed(home)
    tracker = ReceiptTracker(s, home.vn, home.vn_trust)
    tracker.consume([_incoming(s.topic_exchange, env)])
    due_before = tracker.conn.execute("SELECT next_due_ms FROM xbg_messages").fetchone()[0]
    cn = NanningProcessor(s, home.cn, home.cn_trust, Faults(reject_rate=1.0))
    nack = cn.process([_incoming(s.topic_exchange, env)]).outputs
    tracker.consume([_as_incoming(nack[0], 5)])
    due_after, last = tracker.conn.execute("SELECT next_due_ms, last_nack FROM xbg_messages").fetchone()
    assert last == TRANSIENT_NACK
    assert due_after < due_before
    assert not tracker.is_permanent(last)
    tracker.close()


# --- business rules (BIZ-1..3) ------------------------------------------------------------------------------
def _known(*keys: str, kg: str = "1000") -> dict[str, KnownDeclaration]:
    return {k: KnownDeclaration(k, Decimal(kg)) for k in keys}


BUSINESS = [
    ("declaration, all lines crosswalked", "IDA", {"goods": [{"line_number": 1, "hs_national": "08109010",
                                                               "cn_code": "0810909000"}]}, {}, "ACCEPTED", None),
    ("declaration, HS without CN code (BIZ-1)", "EDA", {"goods": [{"line_number": 1, "hs_national": "99999999",
                                                                   "cn_code": None}]}, {}, "HELD",
     "HS_NOT_IN_CROSSWALK"),
    ("manifest, all linked known", "TIR", {"linked_declarations": ["1", "2"]}, _known("1", "2"), "ACCEPTED", None),
    ("manifest, unknown linked declaration (BIZ-2)", "TIR", {"linked_declarations": ["1", "3"]}, _known("1"),
     "REJECTED", "LINKED_DECLARATION_UNKNOWN"),
    ("manifest, linked weight above manifest (BIZ-3)", "TOR",
     {"linked_declarations": ["1", "2"], "gross_weight_kg": Decimal("1500")}, _known("1", "2"), "HELD",
     "GROSS_WEIGHT_EXCEEDS_MANIFEST"),
    ("manifest, linked weight within manifest", "TOR",
     {"linked_declarations": ["1", "2"], "gross_weight_kg": Decimal("2000")}, _known("1", "2"), "ACCEPTED", None),
    ("unknown document type", "XYZ", {}, {}, "REJECTED", "DOCUMENT_TYPE_UNKNOWN"),
]


@pytest.mark.parametrize(("case", "doc_type", "record", "known", "status", "code"), BUSINESS,
                         ids=[b[0] for b in BUSINESS])
def test_business_rules(case: str,  # noqa: PLR0917 - one parameter per table column
                         doc_type: str, record: dict[str, object], known: dict[str, KnownDeclaration],
                        status: str, code: str | None) -> None:
    decision = decide(doc_type, record, lookup=known.get, crosswalk=lambda hs: None)
    assert decision.status == status
    assert (decision.reasons[0][0] if decision.reasons else None) == code




# --- poison messages never block a partition ----------------------------------------------------------------
def test_endpoint_bug_on_one_envelope_nacks_only_that_envelope(home: Home) -> None:
    from xborder_gateway.exchange import BusinessDecision, CnRuleSet

    poison = _sealed(home, "999999999999")

    class Buggy(CnRuleSet):
        def decide(self, document_type: str, record: Any, *, lookup: Any) -> BusinessDecision:
            if record.get("business_key") == "999999999999":
                raise RuntimeError("simulated bug")
            return super().decide(document_type, record, lookup=lookup)

    cn = NanningProcessor(home.settings, home.cn, home.cn_trust, Faults(), rules=Buggy())
    good = _sealed(home, "100000000002")
    res = cn.process([_incoming(home.settings.topic_exchange, poison),
                      _incoming(home.settings.topic_exchange, good, offset=1)])
    out, events, counts = res.outputs, res.events, res.counts
    assert counts["failed"] == 1
    assert counts["processed"] == 1
    poison_out = [o for o in out if o.header("xbg-message-id") == str(poison.message_id).encode()]
    assert [o.header("xbg-kind") for o in poison_out] == [b"receipt"], "the poison gets one (NACK) receipt"
    poison_events = [e for e in events if e.message_id == str(poison.message_id)]
    assert [(e.event_type.value, e.reason_code) for e in poison_events] == [("receipt_sent", "INTERNAL_ERROR")]
    db = sqlite3.connect(home.settings.state_db("CN"))
    answers = db.execute("SELECT count(*) FROM cn_answers WHERE message_id = ?", (str(poison.message_id),))
    assert answers.fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM envelope_replay").fetchone()[0] == 1, "the poison id was not recorded"
    cn.close()


def test_outbound_bug_on_one_document_rejects_only_that_document(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    from xborder_gateway import documents
    from xborder_gateway.connectors import OutboundProcessor
    from xborder_gateway.samples import generate

    real = documents.translate_xml
    a, b = list(generate("EDA", 2, seed=3))

    def buggy(raw: bytes, **kw: object) -> object:
        if raw == a.xml:
            raise ZeroDivisionError("simulated bug")
        return real(raw, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(documents, "translate_xml", buggy)
    ob = OutboundProcessor(home.settings, home.vn, home.vn_trust)
    recs = [Incoming(home.settings.topic_intake, 0, i, x.business_key.encode(), x.xml) for i, x in enumerate((a, b))]
    res = ob.process(recs)
    out, counts = res.outputs, res.counts
    assert (counts["rejected"], counts["sealed"]) == (1, 1)
    rejected = next(o for o in out if o.topic == home.settings.topic_rejected)
    assert rejected.value == a.xml, "the raw bytes are kept"
    assert b"INTERNAL_TRANSLATION_ERROR" in (rejected.header("xbg-reasons") or b"")


def test_every_step_appends_an_audit_event_on_each_side(home: Home) -> None:
    """VN: received -> validated -> sealed (or received -> rejected); CN: opened -> business_response ->
    verified -> receipt_sent; a duplicate copy: duplicate only."""
    from xborder_gateway.connectors import OutboundProcessor
    from xborder_gateway.samples import generate

    (good,) = generate("EDA", 1, seed=4)
    s = home.settings
    recs = [Incoming(s.topic_intake, 0, 0, good.business_key.encode(), good.xml),
            Incoming(s.topic_intake, 0, 1, b"k", b"<not-a-declaration/>")]
    res = OutboundProcessor(s, home.vn, home.vn_trust).process(recs)
    out, events = res.outputs, res.events
    steps = [(e.event_type.value, e.kafka_offset) for e in events]
    assert steps == [("received", 0), ("validated", 0), ("sealed", 0), ("received", 1), ("rejected", 1)]
    assert {e.raw_sha256 for e in events if e.kafka_offset == 0} == {hashlib.sha256(good.xml).hexdigest()}
    envelope = next(o for o in out if o.topic in (s.topic_exchange, s.topic_exchange_priority))
    cn = NanningProcessor(s, home.cn, home.cn_trust, Faults(duplicate_rate=1.0, seed=1))
    cn_events = cn.process([Incoming(envelope.topic, 0, 0, envelope.key, envelope.value, envelope.headers)]).events
    assert [e.event_type.value for e in cn_events] == ["opened", "business_response", "verified", "receipt_sent",
                                                       "duplicate"]
    cn.close()


def test_rejected_record_is_bounded_to_fit_the_rejected_topic(home: Home) -> None:
    """What the rejected record adds to the intake record is bounded; raw bytes beyond the intake topic's limit
    (an intake topic created elsewhere with a larger limit) are cut and the original length said."""
    from xborder_gateway.connectors.outbound import _rejected_record
    from xborder_gateway.errors import IntakeError
    from xborder_gateway.transport import INTAKE_MAX_MESSAGE_BYTES

    s = home.settings
    exc = IntakeError("x" * 100_000, code="XML_TOO_LARGE", hint="y" * 100_000)
    huge_header = ((H_RUN, b"r" * 500_000), ("xbg-published-ms", b"1" * 1000))
    fits = Incoming(s.topic_intake, 0, 7, b"k" * 5000, b"<a/>" * 1000, huge_header)
    out = _rejected_record(s.topic_rejected, fits, exc, "src", fits.header("xbg-published-ms") or b"")
    assert (out.key, out.value) == (fits.key, fits.value), "key and raw bytes kept whole"
    assert out.header("xbg-truncated") is None
    assert sum(len(k) + len(v) for k, v in out.headers) < 40 * 1024, "headers bounded"
    assert out.header(H_RUN) is None
    assert out.header("xbg-business-key") is None, "a long key is not copied into a header"
    too_big = Incoming(s.topic_intake, 0, 8, b"key", b"z" * (INTAKE_MAX_MESSAGE_BYTES + 10))
    cut = _rejected_record(s.topic_rejected, too_big, exc, "src", b"1")
    assert len(cut.value) + len(cut.key or b"") == INTAKE_MAX_MESSAGE_BYTES
    assert cut.header("xbg-truncated") == str(INTAKE_MAX_MESSAGE_BYTES + 10).encode()
    assert cut.value == too_big.value[: len(cut.value)]
