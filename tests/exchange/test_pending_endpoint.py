"""The pending store wired into the Nanning endpoint (issue 15 items 1-2), without Kafka: real envelopes,
real SQLite, an injected clock. Vehicles before their declarations are PENDING (receipt only) and decided in
the batch that completes them; the grace tick rejects only from processing time, exactly once, and
re-produces its answers (identical bytes) until the Kafka commit is confirmed; a restart keeps both; an
amendment releases a HELD declaration with a new business response that the tracker records."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from xborder_gateway import avro
from xborder_gateway.connectors import Faults, NanningProcessor, ReceiptTracker
from xborder_gateway.connectors._pending_endpoint import ExpiryTicker, pending_summary
from xborder_gateway.documents import translate_xml
from xborder_gateway.envelope import seal
from xborder_gateway.exchange import read_status
from xborder_gateway.samples import Sample, generate_mix
from xborder_gateway.transport import Incoming, Outgoing

from .conftest import Home, open_answers

GRACE_S = 20.0
T0 = 1_800_000_000_000


class Clock:
    def __init__(self) -> None:
        self.ms = T0

    def __call__(self) -> int:
        return self.ms


def _home_settings(home: Home) -> Any:
    return home.settings.model_copy(update={"exchange_linked_grace_s": GRACE_S})


def _endpoint(home: Home, clock: Clock) -> NanningProcessor:
    cn = NanningProcessor(_home_settings(home), home.cn, home.cn_trust, Faults())
    cn.pending.clock = clock
    return cn


_offsets = iter(range(1, 10**9))


def _incoming(home: Home, sample: Sample, *, partition: int = 0) -> Incoming:
    doc = translate_xml(sample.xml)
    env = seal(doc.payload, sender=home.vn, recipient="CN", trust=home.vn_trust, document_type=doc.doc_type,
               schema_fingerprint=doc.schema_fingerprint)
    mid = str(env.message_id).encode()
    return Incoming(home.settings.topic_exchange, partition, next(_offsets), mid, env.data,
                    (("xbg-message-id", mid), ("xbg-run", b"r1"), ("xbg-attempt", b"1"),
                     ("xbg-published-ms", b"1000"), ("xbg-doc-type", doc.doc_type.encode())),
                    timestamp_ms=int(time.time() * 1000))


def _truck(seed: int = 3) -> tuple[list[Sample], Sample]:
    """The declarations and the TIR of the first truck of a generated stream whose documents are all valid."""
    samples = list(generate_mix(60, seed, invalid_ratio=0.0))
    decls: list[Sample] = []
    for s in samples:
        if s.kind == "TIR":
            if decls:
                return decls, s
            decls = []
        else:
            decls.append(s)
    raise AssertionError("no truck")


def _answers(home: Home, outputs: Sequence[Outgoing]) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, message id, record) of each answer, opened with VN's keys as its tracker would."""
    return open_answers(outputs, home.vn, home.vn_trust)


def _mid(r: Incoming) -> str:
    return (r.key or b"").decode()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def endpoint(home: Home, clock: Clock) -> Iterator[NanningProcessor]:
    cn = _endpoint(home, clock)
    yield cn
    cn.close()


# --- PEN-1 / PEN-2: PENDING, then decided in the batch that completes it --------------------------------
def test_vehicle_before_its_declarations_is_pending_then_decided_by_the_completing_batch(
        home: Home, endpoint: NanningProcessor, clock: Clock) -> None:
    decls, tir = _truck()
    tir_in = _incoming(home, tir, partition=1)
    res = endpoint.process([tir_in])
    answers = _answers(home, res.outputs)
    assert [(k, m) for k, m, _r in answers] == [("receipt", _mid(tir_in))], "PENDING: the receipt only"
    assert answers[0][2]["outcome"] == "ACK"
    assert answers[0][2]["reason_text"].startswith("LINKED_DECLARATION_PENDING: ")
    pending_events = [e for e in res.events if e.event_type.value == "business_response"]
    assert [(e.outcome, e.reason_code) for e in pending_events] == [("pending", "LINKED_DECLARATION_PENDING")]

    clock.ms += 5_000
    ins = [_incoming(home, d, partition=2) for d in decls]
    res = endpoint.process(ins[:-1])
    assert all(m != _mid(tir_in) for _k, m, _r in _answers(home, res.outputs)), "still waiting for the last one"
    res = endpoint.process(ins[-1:])
    answers = _answers(home, res.outputs)
    later = [(k, r) for k, m, r in answers if m == _mid(tir_in)]
    assert [k for k, _r in later] == ["business-response"], "decided in the same batch (transaction)"
    assert later[0][1]["status"] == "ACCEPTED"
    events = [e for e in res.events if e.event_type.value == "business_response" and e.message_id == _mid(tir_in)]
    assert [e.outcome for e in events] == ["accepted"]

    # a crash after the SQLite commit replays the completing batch as duplicates: the later answer comes again
    replay = endpoint.process(ins[-1:])
    assert [o.value for o in replay.outputs] == [o.value for o in res.outputs]
    # a resend of that declaration (another offset) gets its own answers only, not the vehicle's again
    last = ins[-1]
    resend = Incoming(last.topic, last.partition, last.offset + 1000, last.key, last.value, last.headers)
    assert {m for _k, m, _r in _answers(home, endpoint.process([resend]).outputs)} == {_mid(last)}
    # a duplicate of the vehicle message gets everything it was sent, in order: receipt, then the response
    dup = _answers(home, endpoint.process([tir_in]).outputs)
    assert [k for k, _m, _r in dup] == ["receipt", "business-response"]
    with sqlite3.connect(home.settings.state_db("CN")) as db:
        assert pending_summary(db, "r1") == {"pending_then_decided": 1, "expired": 0, "still_pending": 0,
                                             "released": 0}


def test_declarations_first_decide_the_vehicle_at_once(home: Home, endpoint: NanningProcessor) -> None:
    decls, tir = _truck()
    endpoint.process([_incoming(home, d) for d in decls])
    tir_in = _incoming(home, tir)
    answers = _answers(home, endpoint.process([tir_in]).outputs)
    # decided at once: one answer, the Receipt v2 carrying the outcome (issue 13)
    assert [k for k, _m, _r in answers] == ["receipt"]
    assert answers[0][2]["reason_text"] is None
    assert answers[0][2]["business_status"] == "ACCEPTED"


# --- PEN-3 / PEN-4 / TICK-1: the grace tick ---------------------------------------------------------------
def test_grace_tick_rejects_from_processing_time_once_and_reproduces_until_committed(
        home: Home, endpoint: NanningProcessor, clock: Clock) -> None:
    _decls, tir = _truck()
    tir_in = _incoming(home, tir)
    endpoint.process([tir_in])
    audited: list[Any] = []
    ticker = ExpiryTicker(endpoint.pending, endpoint.store, audited.extend)
    clock.ms += int(GRACE_S * 1000) - 1
    assert list(ticker.tick()) == [], "inside the grace period nothing is decided"
    clock.ms += 1
    first = list(ticker.tick())
    answers = _answers(home, first)
    assert [(k, m) for k, m, _r in answers] == [("business-response", _mid(tir_in))]
    assert answers[0][2]["status"] == "REJECTED"
    assert {r["code"] for r in answers[0][2]["reasons"]} == {"LINKED_DECLARATION_UNKNOWN"}
    assert [(e.outcome, e.reason_code) for e in audited] == [("rejected", "LINKED_DECLARATION_UNKNOWN")]
    # the Kafka transaction failed (committed() not called): the same bytes again, no second decision
    clock.ms += 1_000
    again = list(ticker.tick())
    assert [o.value for o in again] == [o.value for o in first]
    assert len(audited) == 1, "decided once"
    ticker.committed(again)
    assert list(ticker.tick()) == []
    # a late declaration does not revive a vehicle rejected after the grace period (PEN-3)
    decls, _ = _truck()
    res = endpoint.process([_incoming(home, d) for d in decls])
    assert all(m != _mid(tir_in) for _k, m, _r in _answers(home, res.outputs))
    with sqlite3.connect(home.settings.state_db("CN")) as db:
        assert pending_summary(db, "r1")["expired"] == 1


def test_catching_up_after_an_outage_rejects_nothing(home: Home, endpoint: NanningProcessor, clock: Clock) -> None:
    """The grace period runs from processing, not creation: vehicles created long ago (a backlog) still wait."""
    decls, tir = _truck()
    tir_in = _incoming(home, tir)  # created "an hour ago": the envelope's time plays no part
    clock.ms += 3_600_000
    endpoint.process([tir_in])
    ticker = ExpiryTicker(endpoint.pending, endpoint.store, None)
    clock.ms += 2_000
    assert list(ticker.tick()) == []
    res = endpoint.process([_incoming(home, d) for d in decls])
    statuses = [r["status"] for k, m, r in _answers(home, res.outputs) if m == _mid(tir_in)]
    assert statuses == ["ACCEPTED"]


def test_declarations_arriving_after_the_grace_in_one_backlog_still_decide(
        home: Home, endpoint: NanningProcessor, clock: Clock) -> None:
    """PEN-3: only the tick rejects. The endpoint was down longer than the grace period; the vehicle's
    declarations come in the backlog after it: the first arrival must not reject it for the second."""
    decls, tir = next((d, t) for d, t in (_truck(seed) for seed in range(3, 60)) if len(d) >= 2)
    tir_in = _incoming(home, tir)
    endpoint.process([tir_in])
    clock.ms += int(GRACE_S * 1000) * 5
    res = endpoint.process([_incoming(home, d) for d in decls])
    assert [r["status"] for _k, m, r in _answers(home, res.outputs) if m == _mid(tir_in)] == ["ACCEPTED"]


def test_restart_while_pending_decides_after_restart_exactly_once(home: Home, clock: Clock) -> None:
    decls, tir = _truck()
    _d2, tir2 = _truck(seed=11)
    cn = _endpoint(home, clock)
    tir_in, orphan_in = _incoming(home, tir), _incoming(home, tir2)
    cn.process([tir_in, orphan_in])
    ticker = ExpiryTicker(cn.pending, cn.store, None)
    clock.ms += int(GRACE_S * 1000)
    ins = [_incoming(home, d) for d in decls]
    cn.process(ins)  # tir decided by its declarations; the orphan expires at the next tick ...
    produced = list(ticker.tick())
    cn.close()  # ... and the process dies before the tick's Kafka transaction commits
    cn = _endpoint(home, clock)
    ticker = ExpiryTicker(cn.pending, cn.store, None)
    after = list(ticker.tick())
    assert [o.value for o in after] == [o.value for o in produced], "the outbox is found again in SQLite"
    assert [m for _k, m, _r in _answers(home, after)] == [_mid(orphan_in)]
    ticker.committed(after)
    assert list(ticker.tick()) == []
    # and a declaration after the restart still completes a vehicle that was pending before it
    decls3, tir3 = _truck(seed=19)
    tir3_in = _incoming(home, tir3)
    cn.process([tir3_in])
    cn.close()
    cn = _endpoint(home, clock)
    ins3 = [_incoming(home, d) for d in decls3]
    res = cn.process(ins3)
    assert [r["status"] for _k, m, r in _answers(home, res.outputs) if m == _mid(tir3_in)] == ["ACCEPTED"]
    res = cn.process(ins3)  # redelivered: duplicates, nothing decided again
    assert [e.event_type.value for e in res.events] == ["duplicate"] * len(decls3)
    cn.close()


# --- REL-1..4: a HELD declaration released by an amendment -------------------------------------------------
def _held_with_amendment() -> tuple[Sample, Sample]:
    for seed in range(1, 40):
        for s in generate_mix(200, seed, invalid_ratio=0.0, amendments=True):
            if s.expected_holds and s.amended_by is not None and not s.amendment:
                return s, s.amended_by
    raise AssertionError("no held declaration with an amendment")


def test_amendment_releases_a_held_declaration_with_a_new_business_response(
        home: Home, endpoint: NanningProcessor) -> None:
    held, amendment = _held_with_amendment()
    held_in = _incoming(home, held)
    first = _answers(home, endpoint.process([held_in]).outputs)
    assert [k for k, _m, _r in first] == ["receipt"], "an immediate HELD rides in the Receipt v2"
    assert first[0][2]["business_status"] == "HELD"
    assert [r["code"] for r in first[0][2]["business_reasons"]] == list(held.expected_holds)
    amend_in = _incoming(home, amendment)
    res = endpoint.process([amend_in])
    answers = _answers(home, res.outputs)
    own = [r["business_status"] for k, m, r in answers if m == _mid(amend_in) and k == "receipt"]
    release = [r for k, m, r in answers if m == _mid(held_in)]
    assert own == ["ACCEPTED"]
    assert [r["status"] for r in release] == ["ACCEPTED"], "a new business response for the HELD message"
    assert [(e.message_id, e.reason_code) for e in res.events if e.event_type.value == "business_response"
            and e.message_id == _mid(held_in)] == [(_mid(held_in), "HOLD_RELEASED")]
    # the tracker records the later outcome for the delivered message, and says so on the status feed
    tracker = ReceiptTracker(home.settings, home.vn, home.vn_trust)
    try:
        sent = Incoming(home.settings.topic_exchange, 0, 1, held_in.key, held_in.value, held_in.headers)
        tracker.consume([sent])
        outs = endpoint.process([held_in]).outputs  # the original answers (receipt, HELD) + the release
        as_in = [Incoming(o.topic, 0, 100 + i, o.key, o.value, o.headers) for i, o in enumerate(outs)]
        res_t = tracker.consume(as_in)
        row = tracker.conn.execute("SELECT state, business_status FROM xbg_messages WHERE message_id = ?",
                                   (_mid(held_in),)).fetchone()
        assert tuple(row) == ("delivered", "ACCEPTED")
        feed = [read_status(o.value) for o in res_t.outputs]
        assert [(f.kind.value, f.business_status) for f in feed if f.kind.value == "BUSINESS_OUTCOME"] == [
            ("BUSINESS_OUTCOME", "HELD"), ("BUSINESS_OUTCOME", "ACCEPTED")]
    finally:
        tracker.close()
    with sqlite3.connect(home.settings.state_db("CN")) as db:
        assert pending_summary(db, "r1")["released"] == 1


def test_an_accepted_declaration_is_not_released_again(home: Home, endpoint: NanningProcessor) -> None:
    held, amendment = _held_with_amendment()
    endpoint.process([_incoming(home, amendment)])  # the amendment's bytes first: ACCEPTED (REL-1)
    held_in = _incoming(home, held)
    res = endpoint.process([held_in])
    # Declaration v4 (ADR 0404): the original (version 1) after its amendment (version 2) is STALE, answered
    # alone, and releases nothing
    assert all(m == _mid(held_in) for _k, m, _r in _answers(home, res.outputs))


def test_an_amendment_processed_before_its_original_keeps_the_original_stale(
        home: Home, endpoint: NanningProcessor) -> None:
    """VER-1/VER-2 on VN's records (Declaration v4 ``version``): decided by version, not by arrival order."""
    original, amendment = _held_with_amendment()
    assert (translate_xml(original.xml).values["version"], translate_xml(amendment.xml).values["version"]) == (1, 2)
    amend_in = _incoming(home, amendment)
    first = _answers(home, endpoint.process([amend_in]).outputs)
    assert [(k, r["business_status"]) for k, _m, r in first] == [("receipt", "ACCEPTED")]
    original_in = _incoming(home, original)
    res = endpoint.process([original_in])
    answers = _answers(home, res.outputs)
    assert [(k, m) for k, m, _r in answers] == [("receipt", _mid(original_in))]
    receipt = answers[0][2]
    assert (receipt["business_status"], [r["code"] for r in receipt["business_reasons"]]) == (
        "REJECTED", ["VERSION_STALE"])
    with sqlite3.connect(home.settings.state_db("CN")) as db:  # nothing applied: the amendment stays in force
        assert db.execute("SELECT version, kind FROM cn_declaration_versions WHERE business_key = ?",
                          (original.business_key,)).fetchone() == (2, "DECLARATION")
        assert db.execute("SELECT message_id, status FROM cn_declaration_outcomes WHERE business_key = ?",
                          (original.business_key,)).fetchone() == (_mid(amend_in), "ACCEPTED")
        assert db.execute("SELECT message_id FROM cn_declarations WHERE business_key = ?",
                          (original.business_key,)).fetchone() == (_mid(amend_in),)


def test_records_without_a_version_still_count_by_arrival_order(home: Home, endpoint: NanningProcessor) -> None:
    """ADR 0404: a VN record without ``AMV`` (version null) is the next version of its number on arrival."""
    original, amendment = _held_with_amendment()
    unversioned = [Sample(name=s.name, xml=s.xml.replace(b"<AMV>1</AMV>", b"").replace(b"<AMV>2</AMV>", b""),
                          kind=s.kind, business_key=s.business_key, broken_rule=None, perishable=s.perishable,
                          amendment=s.amendment) for s in (amendment, original)]
    assert all(translate_xml(s.xml).values["version"] is None for s in unversioned)
    endpoint.process([_incoming(home, unversioned[0])])
    later = _incoming(home, unversioned[1])
    answers = _answers(home, endpoint.process([later]).outputs)
    assert answers[0][2]["business_status"] == "HELD"  # the later arrival is applied (and judged) as version 2
    with sqlite3.connect(home.settings.state_db("CN")) as db:
        assert db.execute("SELECT version FROM cn_declaration_versions WHERE business_key = ?",
                          (original.business_key,)).fetchone() == (2,)


def test_tracker_puts_pending_on_the_status_feed(home: Home, endpoint: NanningProcessor) -> None:
    _decls, tir = _truck()
    tir_in = _incoming(home, tir)
    outs = endpoint.process([tir_in]).outputs
    tracker = ReceiptTracker(home.settings, home.vn, home.vn_trust)
    try:
        tracker.consume([Incoming(home.settings.topic_exchange, 0, 1, tir_in.key, tir_in.value, tir_in.headers)])
        res = tracker.consume([Incoming(o.topic, 0, 7, o.key, o.value, o.headers) for o in outs])
        feed = [read_status(o.value) for o in res.outputs]
        assert [(f.kind.value, f.business_status) for f in feed] == [("DELIVERED", None),
                                                                    ("BUSINESS_OUTCOME", "PENDING")]
        assert feed[1].reasons[0][0] == "LINKED_DECLARATION_PENDING"
    finally:
        tracker.close()


@pytest.mark.parametrize("version", [0, 1000, 2**31 - 1, -1])
def test_a_signed_declaration_with_a_version_outside_1_to_999_is_rejected_and_nothing_applied(
        home: Home, endpoint: NanningProcessor, version: int) -> None:
    """VER-5 at the receiver: the XSD bounds AMV at VN's intake, but the endpoint trusts no sender's Avro."""
    sample = _held_with_amendment()[1]
    record = dict(avro.decode(translate_xml(sample.xml).payload).record)
    record["version"] = version
    payload = avro.encode("Declaration", record)
    env = seal(payload, sender=home.vn, recipient="CN", trust=home.vn_trust, document_type=sample.kind,
               schema_fingerprint=payload[2:10])
    mid = str(env.message_id).encode()
    r = Incoming(home.settings.topic_exchange, 0, next(_offsets), mid, env.data,
                 (("xbg-message-id", mid), ("xbg-run", b"r1"), ("xbg-attempt", b"1"), ("xbg-published-ms", b"1000"),
                  ("xbg-doc-type", sample.kind.encode())), timestamp_ms=int(time.time() * 1000))
    res = endpoint.process([r])
    assert res.counts["processed"] == 1
    answers = _answers(home, res.outputs)
    assert [(k, a["business_status"], [x["code"] for x in a["business_reasons"]]) for k, _m, a in answers] == [
        ("receipt", "REJECTED", ["VERSION_INVALID"])]
    with sqlite3.connect(home.settings.state_db("CN")) as db:
        assert db.execute("SELECT count(*) FROM cn_declaration_versions").fetchone() == (0,)


def test_a_hold_released_within_its_own_batch_stores_its_answers_in_order(
        home: Home, endpoint: NanningProcessor) -> None:
    """The HELD declaration and the amendment that releases it in ONE batch: the release is stored for the
    HELD message while the batch's own answers are still being sealed (issue 13 defers them to the end of the
    batch). Its own receipt must come first, then the release -- and storing both must not collide."""
    held, amendment = _held_with_amendment()
    held_in, amend_in = _incoming(home, held), _incoming(home, amendment)
    res = endpoint.process([held_in, amend_in])
    assert "failed" not in res.counts, res.counts
    answers = _answers(home, res.outputs)
    assert [(k, r.get("business_status") or r.get("status")) for k, m, r in answers if m == _mid(held_in)] == [
        ("receipt", "HELD"), ("business-response", "ACCEPTED")]
    # a duplicate of the HELD message is answered with what it was sent, in the order it was sent
    dup = _answers(home, endpoint.process([held_in]).outputs)
    assert [(k, r.get("business_status") or r.get("status")) for k, _m, r in dup] == [
        ("receipt", "HELD"), ("business-response", "ACCEPTED")]
