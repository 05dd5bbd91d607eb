"""Issue 13: envelope suite v2 and Receipt v2 wired through outbound, endpoint and tracker (no broker).

One rule per test: a transaction attempt seals one batch and a redo never reuses its batch secret; v1 is
still accepted (and producible) when v2 is the default; the endpoint answers an immediate decision with one
Receipt v2 and still answers a later decision with a BusinessResponse; the tracker records the outcome a
Receipt v2 carries (store, audit, status feed) and still takes BusinessResponses.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest

from xborder_gateway import avro
from xborder_gateway.connectors import Faults, NanningProcessor, OutboundProcessor, ReceiptTracker
from xborder_gateway.envelope import (
    SUITE_V1,
    SUITE_V2,
    make_receipt,
    open_envelope,
    open_receipt,
    peek_header,
    receipt_decision,
)
from xborder_gateway.exchange import AnswerBatch, immediate_decision, read_status
from xborder_gateway.transport import Incoming, Outgoing

from .conftest import Home, make_home

BATCH_ID = 16
ENC = 32


def _h_len(data: bytes) -> int:
    return 9 + int.from_bytes(data[7:9], "big")


def _batch_id(data: bytes) -> bytes:
    return data[_h_len(data):_h_len(data) + BATCH_ID]


def _enc(data: bytes) -> bytes:
    start = _h_len(data) + BATCH_ID
    return data[start:start + ENC]


def _intake(home: Home, n: int, seed: int = 13) -> list[Incoming]:
    from xborder_gateway.samples import generate

    return [Incoming(home.settings.topic_intake, 0, i, d.business_key.encode(), d.xml)
            for i, d in enumerate(generate("IDA", n, seed=seed))]


def _envelopes(home: Home, out: list[Outgoing]) -> list[Outgoing]:
    s = home.settings
    return [o for o in out if o.topic in (s.topic_exchange, s.topic_exchange_priority)]


def _as_incoming(out: Outgoing, offset: int) -> Incoming:
    return Incoming(out.topic, 0, offset, out.key, out.value, out.headers)


@pytest.fixture
def v1_home(tmp_path: Any) -> Home:
    return make_home(tmp_path / "v1", envelope_suite=1, envelope_receipt_version=1)


def test_v2_and_receipt_v2_are_the_defaults(home: Home) -> None:
    assert (home.settings.envelope_suite, home.settings.envelope_receipt_version) == (2, 2)


# --- outbound ---------------------------------------------------------------------------------------------
def test_outbound_seals_one_batch_per_attempt_and_a_redo_never_reuses_the_batch_secret(home: Home) -> None:
    """§8.4 rule 1: the redo of an aborted transaction (the same intake records, the same coordinates) is
    sealed with a NEW batch id and a new HPKE encapsulation of a new secret -- if the processor kept its
    sealer (or its secret) between attempts, a key and nonce would meet two plaintexts."""
    records = _intake(home, 4)
    ob = OutboundProcessor(home.settings, home.vn, home.vn_trust)
    try:
        first = _envelopes(home, ob.process(records).outputs)
        redo = _envelopes(home, ob.process(records).outputs)  # same coordinates: a redo, not a duplicate
    finally:
        ob.close()
    assert len(first) == len(redo) == 4
    for attempt in (first, redo):
        assert {peek_header(o.value).suite for o in attempt} == {SUITE_V2}  # type: ignore[union-attr]
        assert len({_batch_id(o.value) for o in attempt}) == 1, "one batch per transaction attempt"
        assert len({_enc(o.value) for o in attempt}) == 1, "one HPKE encapsulation per batch"
        assert len({o.key for o in attempt}) == 4, "still one envelope (and key) per declaration"
    assert _batch_id(first[0].value) != _batch_id(redo[0].value), "a redo gets a new batch id"
    assert _enc(first[0].value) != _enc(redo[0].value), "a redo gets a new batch secret encapsulation"
    assert {o.key for o in first}.isdisjoint({o.key for o in redo}), "a redo seals under new message ids"


def test_v1_is_still_producible_by_configuration(v1_home: Home) -> None:
    ob = OutboundProcessor(v1_home.settings, v1_home.vn, v1_home.vn_trust)
    try:
        out = _envelopes(v1_home, ob.process(_intake(v1_home, 3)).outputs)
    finally:
        ob.close()
    assert {peek_header(o.value).suite for o in out} == {SUITE_V1}  # type: ignore[union-attr]


def test_a_refused_document_is_rejected_alone_and_its_batch_mates_are_sealed(home: Home) -> None:
    s = home.settings
    records = _intake(home, 3)
    records[1] = Incoming(s.topic_intake, 0, 1, b"bad", b"<not-a-declaration/>")
    ob = OutboundProcessor(s, home.vn, home.vn_trust)
    try:
        res = ob.process(records)
    finally:
        ob.close()
    assert (res.counts["sealed"], res.counts["rejected"]) == (2, 1)
    assert [o.value for o in res.outputs if o.topic == s.topic_rejected] == [b"<not-a-declaration/>"]
    assert len({_batch_id(o.value) for o in _envelopes(home, res.outputs)}) == 1


# --- endpoint ---------------------------------------------------------------------------------------------
def _exchange(home: Home, n: int = 3) -> tuple[list[Outgoing], list[Incoming]]:
    ob = OutboundProcessor(home.settings, home.vn, home.vn_trust)
    try:
        envs = _envelopes(home, ob.process(_intake(home, n)).outputs)
    finally:
        ob.close()
    return envs, [_as_incoming(o, i) for i, o in enumerate(envs)]


def test_endpoint_answers_an_immediate_decision_with_one_receipt_v2(home: Home) -> None:
    _, incoming = _exchange(home)
    cn = NanningProcessor(home.settings, home.cn, home.cn_trust, Faults())
    try:
        res = cn.process(incoming)
    finally:
        cn.close()
    assert res.counts["processed"] == 3
    assert [o.header("xbg-kind") for o in res.outputs] == [b"receipt"] * 3, "one answer per declaration"
    assert len({_batch_id(o.value) for o in res.outputs}) == 1, "the batch's answers are sealed together (v2)"
    for o in res.outputs:
        _, record = open_receipt(o.value, me=home.vn, trust=home.vn_trust, replay=None)
        decision = receipt_decision(record)
        assert decision is not None
        assert decision.status in {"ACCEPTED", "HELD", "REJECTED"}
        assert record["outcome"] == "ACK"


def test_endpoint_with_receipt_v1_answers_receipt_and_business_response(v1_home: Home) -> None:
    _, incoming = _exchange(v1_home, 2)
    cn = NanningProcessor(v1_home.settings, v1_home.cn, v1_home.cn_trust, Faults())
    try:
        res = cn.process(incoming)
    finally:
        cn.close()
    assert [o.header("xbg-kind") for o in res.outputs] == [b"receipt", b"business-response"] * 2
    _, record = open_receipt(res.outputs[0].value, me=v1_home.vn, trust=v1_home.vn_trust, replay=None)
    assert receipt_decision(record) is None
    assert {peek_header(o.value).suite for o in res.outputs} == {SUITE_V1}  # type: ignore[union-attr]


def test_endpoint_with_v2_default_still_accepts_v1_envelopes(home: Home) -> None:
    """A counterpart still sealing suite v1 is opened and answered (v1 is always accepted)."""
    ob = OutboundProcessor(home.settings.model_copy(update={"envelope_suite": 1}), home.vn, home.vn_trust)
    try:
        envs = _envelopes(home, ob.process(_intake(home, 2)).outputs)
    finally:
        ob.close()
    assert {peek_header(o.value).suite for o in envs} == {SUITE_V1}  # type: ignore[union-attr]
    cn = NanningProcessor(home.settings, home.cn, home.cn_trust, Faults())
    try:
        res = cn.process([_as_incoming(o, i) for i, o in enumerate(envs)])
    finally:
        cn.close()
    assert (res.counts["processed"], res.counts["refused"]) == (2, 0)
    assert [o.header("xbg-kind") for o in res.outputs] == [b"receipt"] * 2


def test_a_later_decision_is_not_carried_by_the_receipt() -> None:
    """Only ACCEPTED / HELD / REJECTED ride in the Receipt v2; anything else (a decision still to come) is
    answered with a receipt only, and later with a BusinessResponse; with Receipt v1 nothing rides."""
    assert immediate_decision("HELD", (("X", "y"),), receipt_version=2) is not None
    assert immediate_decision("PENDING", (("X", "y"),), receipt_version=2) is None
    assert immediate_decision("ACCEPTED", (), receipt_version=1) is None


def test_answer_batch_rollback_forgets_the_undone_step(home: Home) -> None:
    batch = AnswerBatch(home.cn, home.cn_trust, suite=2)
    _, incoming = _exchange(home, 2)
    opened = [open_envelope(r.value, me=home.cn, trust=home.cn_trust, replay=None) for r in incoming]
    kept = batch.receipt(make_receipt(opened[0], receiver="CN", outcome="ACK"))
    batch.then("a", lambda get: [Outgoing("t", b"a", get(kept).data)])
    mark = batch.mark()
    undone = batch.receipt(make_receipt(opened[1], receiver="CN", outcome="ACK"))
    batch.then("b", lambda get: [Outgoing("t", b"b", get(undone).data)])
    batch.rollback(mark)
    out = batch.finish()
    assert [o.key for o in out] == [b"a"]
    with pytest.raises(RuntimeError):
        batch.finish()
    with pytest.raises(RuntimeError):  # spent: a redo needs a new batch (a new secret)
        batch.receipt(make_receipt(opened[1], receiver="CN", outcome="ACK"))


# --- tracker ----------------------------------------------------------------------------------------------
def _statuses(home: Home, out: list[Outgoing]) -> Iterator[Any]:
    for o in out:
        if o.topic == home.settings.topic_status:
            yield read_status(o.value)


def test_tracker_records_the_outcome_a_receipt_v2_carries(home: Home) -> None:
    s = home.settings
    _envs, incoming = _exchange(home, 3)
    cn = NanningProcessor(s, home.cn, home.cn_trust, Faults())
    try:
        answers = cn.process(incoming).outputs
    finally:
        cn.close()
    expected = {}
    for o in answers:
        _, record = open_receipt(o.value, me=home.vn, trust=home.vn_trust, replay=None)
        expected[record["message_id"]] = receipt_decision(record).status  # type: ignore[union-attr]
    tracker = ReceiptTracker(s, home.vn, home.vn_trust)
    try:
        res = tracker.consume(incoming + [_as_incoming(o, 10 + i) for i, o in enumerate(answers)])
        again = tracker.consume([_as_incoming(o, 10 + i) for i, o in enumerate(answers)])  # duplicates
    finally:
        tracker.close()
    assert (res.counts["delivered"], res.counts["business"]) == (3, 3)
    assert (again.counts["duplicate_receipt"], again.counts["business"]) == (3, 0), "a duplicate adds nothing"
    with closing(sqlite3.connect(s.state_db("VN"))) as db:
        rows = dict(db.execute("SELECT message_id, business_status FROM xbg_messages").fetchall())
    assert rows == expected
    audited = [(e.message_id, e.outcome) for e in res.events if e.event_type.value == "business_response"]
    assert sorted(audited) == sorted((m, st.lower()) for m, st in expected.items())
    outcomes = [st for st in _statuses(home, res.outputs) if st.kind.value == "BUSINESS_OUTCOME"]
    assert sorted((st.message_id, st.business_status) for st in outcomes) == sorted(expected.items())


def test_tracker_still_takes_a_later_business_response(v1_home: Home) -> None:
    """Receipt v1 + BusinessResponse (a v1 counterpart, or a HELD released later) are still recorded."""
    s = v1_home.settings
    envs, incoming = _exchange(v1_home, 1)
    cn = NanningProcessor(s, v1_home.cn, v1_home.cn_trust, Faults())
    try:
        answers = cn.process(incoming).outputs
    finally:
        cn.close()
    tracker = ReceiptTracker(s, v1_home.vn, v1_home.vn_trust)
    try:
        res = tracker.consume(incoming + [_as_incoming(o, 10 + i) for i, o in enumerate(answers)])
    finally:
        tracker.close()
    assert (res.counts["delivered"], res.counts["business"]) == (1, 1)
    response = next(o for o in answers if o.header("xbg-kind") == b"business-response")
    assert response.header("xbg-message-id") == envs[0].key
    with closing(sqlite3.connect(s.state_db("VN"))) as db:
        status = db.execute("SELECT business_status FROM xbg_messages").fetchone()[0]
    assert status == avro.decode(open_envelope(response.value, me=v1_home.vn, trust=v1_home.vn_trust,
                                               replay=None).payload).record["status"]
