"""Duplicate submissions at intake (ADR 0401): the same declaration bytes published twice (a VN customs system
retrying a send with a non-idempotent producer) are delivered once; the second copy is rejected with
``DUPLICATE_SUBMISSION`` and its raw bytes. A redo of the SAME intake record (an aborted batch) is processed
again; an amended document (same business key, other bytes) is not a duplicate.

Unit tests: the pure decision and the processor against a real SQLite state file (no broker). Integration
tests: outbound, Nanning endpoint and receipt tracker as real processes on a real broker, checked through
the VN tracker's state, the rejected topic, both audit logs and the endpoint's store."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from xborder_gateway.audit import AuditLog
from xborder_gateway.exchange._state import (
    IntakeCoordinates,
    PriorSubmission,
    SubmissionDecision,
    decide_submission,
)
from xborder_gateway.transport import Incoming

from .conftest import Home
from .harness import RUN, Exchange, new_exchange

HERE = IntakeCoordinates("vn.declarations.raw", 1, 40)

DECISIONS = [
    ("never seen", None, SubmissionDecision.NEW),
    ("same coordinates: redo of an aborted batch", PriorSubmission(HERE, "m-1", 1), SubmissionDecision.REDO),
    ("same coordinates, message id unknown", PriorSubmission(HERE, None, 1), SubmissionDecision.REDO),
    ("other offset, same partition", PriorSubmission(IntakeCoordinates(HERE.topic, 1, 39), "m-1", 1),
     SubmissionDecision.DUPLICATE),
    ("other partition, same offset", PriorSubmission(IntakeCoordinates(HERE.topic, 0, 40), "m-1", 1),
     SubmissionDecision.DUPLICATE),
    ("other topic, same partition and offset", PriorSubmission(IntakeCoordinates("other.raw", 1, 40), None, 1),
     SubmissionDecision.DUPLICATE),
]


@pytest.mark.parametrize(("case", "prior", "expected"), DECISIONS, ids=[d[0] for d in DECISIONS])
def test_decision_same_coordinates_process_other_coordinates_duplicate(
        case: str, prior: PriorSubmission | None, expected: SubmissionDecision) -> None:
    assert decide_submission(prior, HERE) is expected, case


# --- the processor with a real state file, no broker -----------------------------------------------------------


def _ida(seed: int = 11) -> Any:
    from xborder_gateway.samples import generate

    (ida,) = generate("IDA", 1, seed=seed)
    return ida


def _amend(xml: bytes) -> bytes:
    amended = xml.replace(b"</NT2>", " (s\u1eeda \u0111\u1ed5i)</NT2>".encode(), 1)
    assert amended != xml
    return amended


def _rec(home: Home, offset: int, key: str, xml: bytes, partition: int = 0) -> Incoming:
    return Incoming(home.settings.topic_intake, partition, offset, key.encode(), xml)


def _submissions(home: Home) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(home.settings.state_db("VN"))) as db:
        return db.execute("SELECT business_key, topic, part, offs, message_id FROM xbg_submissions "
                          "ORDER BY offs").fetchall()


def test_processor_rejects_the_second_copy_and_redoes_the_same_record(home: Home) -> None:
    from xborder_gateway.connectors import OutboundProcessor

    s = home.settings
    ida = _ida()
    ob = OutboundProcessor(s, home.vn, home.vn_trust)
    try:
        # first submission and, in the same batch, a second copy on another partition
        res = ob.process([_rec(home, 5, ida.business_key, ida.xml),
                          _rec(home, 9, ida.business_key, ida.xml, partition=2)])
        out, events, counts = res.outputs, res.events, res.counts
        assert (counts["sealed"], counts["rejected"], counts["duplicate_submission"]) == (1, 1, 1)
        sealed = next(o for o in out if o.topic in (s.topic_exchange, s.topic_exchange_priority))
        first_mid = (sealed.header("xbg-message-id") or b"").decode()
        dup = next(o for o in out if o.topic == s.topic_rejected)
        assert dup.value == ida.xml, "the duplicate's raw bytes are kept"
        assert dup.header("xbg-source") == f"{s.topic_intake}/2@9".encode()
        reasons = json.loads(dup.header("xbg-reasons") or b"{}")
        assert reasons["code"] == "DUPLICATE_SUBMISSION"
        assert reasons["first_source"] == f"{s.topic_intake}/0@5"
        assert reasons["first_message_id"] == first_mid
        assert f"{s.topic_intake}/0@5" in reasons["message"]
        assert first_mid in reasons["message"]
        steps = [(e.event_type.value, e.kafka_offset, e.reason_code) for e in events]
        assert steps == [("received", 5, None), ("validated", 5, None), ("sealed", 5, None),
                         ("received", 9, None), ("rejected", 9, "DUPLICATE_SUBMISSION")]

        # the first record's batch aborted: the same coordinates come again -> sealed again, new message id
        res = ob.process([_rec(home, 5, ida.business_key, ida.xml)])
        out2, counts2 = res.outputs, res.counts
        assert (counts2["sealed"], counts2["rejected"]) == (1, 0), "a redo is not a duplicate"
        redo_mid = (out2[0].header("xbg-message-id") or b"").decode()
        assert redo_mid != first_mid
        assert _submissions(home) == [(ida.business_key, s.topic_intake, 0, 5, redo_mid)]

        # a third copy later names the redo's message id (the one actually committed)
        out3 = ob.process([_rec(home, 12, ida.business_key, ida.xml)]).outputs
        assert json.loads(out3[0].header("xbg-reasons") or b"{}")["first_message_id"] == redo_mid

        # an amendment (same key, other bytes) is not a duplicate
        res = ob.process([_rec(home, 13, ida.business_key, _amend(ida.xml))])
        out4, counts4 = res.outputs, res.counts
        assert (counts4["sealed"], counts4["rejected"]) == (1, 0)
        assert out4[0].topic in (s.topic_exchange, s.topic_exchange_priority)
    finally:
        ob.close()


def test_check_survives_a_restart_of_the_connector(home: Home) -> None:
    """The check is durable: a new processor (a restarted connector) on the same state file still knows."""
    from xborder_gateway.connectors import OutboundProcessor

    ida = _ida()
    first = OutboundProcessor(home.settings, home.vn, home.vn_trust)
    try:
        first.process([_rec(home, 0, ida.business_key, ida.xml)])
    finally:
        first.close()
    second = OutboundProcessor(home.settings, home.vn, home.vn_trust)
    try:
        counts = second.process([_rec(home, 1, ida.business_key, ida.xml)]).counts
        assert counts["duplicate_submission"] == 1
    finally:
        second.close()


def test_two_instances_sharing_the_state_file_and_other_record_keys(home: Home) -> None:
    """Two outbound instances on one machine (two connections to one state file) and a copy published under
    another record key (so on another partition): the business key comes from the document, the copy is
    still a duplicate."""
    from xborder_gateway.connectors import OutboundProcessor

    ida = _ida()
    a = OutboundProcessor(home.settings, home.vn, home.vn_trust)
    b = OutboundProcessor(home.settings, home.vn, home.vn_trust)
    try:
        first = a.process([_rec(home, 3, ida.business_key, ida.xml, partition=0)]).counts
        res = b.process([_rec(home, 8, "retry-under-another-key", ida.xml, partition=1)])
        out, second = res.outputs, res.counts
        assert (first["sealed"], second["sealed"], second["duplicate_submission"]) == (1, 0, 1)
        assert json.loads(out[0].header("xbg-reasons") or b"{}")["first_source"] == \
            f"{home.settings.topic_intake}/0@3"
    finally:
        a.close()
        b.close()


def test_two_instances_racing_on_the_same_copies_seal_each_document_once(home: Home) -> None:
    """Both instances take the write lock before their lookups (BEGIN IMMEDIATE): checking the same 20
    documents at the same time from two partitions lets each through exactly once. Each lookup is slowed
    down by 5 ms so that the other instance gets to run between one's lookup and its insert (with a deferred
    BEGIN this fails: "database is locked" on the upgrade to a write). The documents are translated and
    sealed beforehand in this thread: the race is the SQLite check's, lxml's schema loading is not meant
    to be shared by threads, and real instances are processes."""
    import threading
    import time

    from xborder_gateway.connectors import OutboundProcessor
    from xborder_gateway.connectors.outbound import _Taken
    from xborder_gateway.samples import generate

    docs = list(generate("IDA", 20, seed=31))
    prep = OutboundProcessor(home.settings, home.vn, home.vn_trust)
    try:
        from xborder_gateway.exchange._answers import new_batch_sealer

        sealer = new_batch_sealer(prep.me, "CN", prep.trust, home.settings.envelope_suite)
        queued = [(d, *prep._translate_and_seal(d.xml, "prep", sealer)) for d in docs]
        envelopes = sealer.seal()
        prepared = [(d, doc, envelopes[i]) for d, doc, i in queued]
    finally:
        prep.close()
    class SlowLookups:  # the state database on slow storage: a pause right after each lookup
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            cur = self.conn.execute(sql, *args)
            if sql.startswith("SELECT") and "xbg_submissions" in sql:
                time.sleep(0.005)
            return cur

        def close(self) -> None:
            self.conn.close()

    barrier = threading.Barrier(2)
    passed: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def instance(partition: int) -> None:
        try:
            ob = OutboundProcessor(home.settings, home.vn, home.vn_trust)
            ob.db = SlowLookups(ob.db)  # type: ignore[assignment]
            try:
                barrier.wait()
                got = []
                for i, (d, doc, sealed) in enumerate(prepared):  # one record per batch: the most interleaving
                    r = _rec(home, i, d.business_key, d.xml, partition=partition)
                    t = _Taken(r, IntakeCoordinates(r.topic, partition, i), hashlib.sha256(d.xml).digest(),
                               None, doc, sealed)  # type: ignore[arg-type]
                    ob._check_submissions([t])
                    if t.error is None:
                        got.append(d.business_key)
                passed[partition] = got
            finally:
                ob.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=instance, args=(p,)) for p in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    both = passed[0] + passed[1]
    assert sorted(both) == sorted(d.business_key for d in docs), "each document let through by exactly one instance"


def test_a_redo_that_is_rejected_releases_the_bytes(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the first record's redo is rejected for another reason (here: a simulated bug), it did not take the
    bytes in after all: a later copy is processed, not rejected as a duplicate of a rejected record."""
    from xborder_gateway import documents
    from xborder_gateway.connectors import OutboundProcessor

    ida = _ida()
    ob = OutboundProcessor(home.settings, home.vn, home.vn_trust)
    try:
        ob.process([_rec(home, 0, ida.business_key, ida.xml)])
        real = documents.translate_xml

        def buggy(raw: bytes, **kw: object) -> object:
            raise ZeroDivisionError("simulated bug")

        monkeypatch.setattr(documents, "translate_xml", buggy)
        counts = ob.process([_rec(home, 0, ida.business_key, ida.xml)]).counts
        assert counts["rejected"] == 1
        assert _submissions(home) == []
        monkeypatch.setattr(documents, "translate_xml", real)
        counts = ob.process([_rec(home, 7, ida.business_key, ida.xml)]).counts
        assert (counts["sealed"], counts["duplicate_submission"]) == (1, 0)
    finally:
        ob.close()


def test_submissions_older_than_the_window_are_forgotten(tmp_path: Path) -> None:
    from xborder_gateway.connectors import OutboundProcessor

    from .conftest import make_home

    home = make_home(tmp_path / "home", exchange_duplicate_window_days=1.0)
    ida = _ida()
    ob = OutboundProcessor(home.settings, home.vn, home.vn_trust)
    try:
        ob.process([_rec(home, 0, ida.business_key, ida.xml)])
        with closing(sqlite3.connect(home.settings.state_db("VN"))) as db, db:
            db.execute("UPDATE xbg_submissions SET first_seen_ms = first_seen_ms - 2 * 86400000")
        ob._next_purge_ms = 0  # the hourly purge is due
        counts = ob.process([_rec(home, 1, ida.business_key, ida.xml)]).counts
        assert (counts["sealed"], counts["duplicate_submission"]) == (1, 0), "forgotten after the window"
        counts = ob.process([_rec(home, 2, ida.business_key, ida.xml)]).counts
        assert counts["duplicate_submission"] == 1, "remembered again from its new first submission"
    finally:
        ob.close()


# --- real broker: the whole exchange ---------------------------------------------------------------------------


@pytest.fixture
def exchange(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str) -> Iterator[Exchange]:
    ex = new_exchange(tmp_path, kafka_bootstrap, topic_prefix)
    try:
        yield ex
    finally:
        ex.stop_all()


def _vn_events(ex: Exchange, business_key: str) -> list[Any]:
    with AuditLog.open(ex.settings, "VN", read_only=True) as log:
        return [e.event for e in log.search(business_key=business_key, limit=1000)]


async def _read_rejected(ex: Exchange, want: int, wait_s: float = 30) -> list[Any]:
    from xborder_gateway.transport import make_consumer

    consumer = make_consumer(ex.bootstrap, group_id=None, batch_max=50, topics=(ex.settings.topic_rejected,))
    await consumer.start()
    got: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + wait_s
        while len(got) < want and asyncio.get_running_loop().time() < deadline:
            for recs in (await consumer.getmany(timeout_ms=300)).values():
                got.extend(recs)
        # a little longer: nothing beyond ``want`` may arrive
        for recs in (await consumer.getmany(timeout_ms=1000)).values():
            got.extend(recs)
    finally:
        await consumer.stop()
    return got



@pytest.mark.integration
@pytest.mark.slow
async def test_same_ida_published_twice_is_delivered_once(exchange: Exchange) -> None:
    from xborder_gateway.connectors import publish_documents

    ex = exchange
    s = ex.settings
    for name in ("nanning", "receipts", "outbound"):
        ex.start(name)
    ida = _ida(seed=21)
    raw_sha = hashlib.sha256(ida.xml).hexdigest()
    # two separate sends of the same bytes: a sender retrying with a non-idempotent producer
    await publish_documents(s, [(ida.business_key, ida.xml)], run=RUN)
    await publish_documents(s, [(ida.business_key, ida.xml)], run=RUN)
    await asyncio.to_thread(ex.wait_for, lambda x: x.settled >= 2, 90, "both copies settled")
    summary = ex.settled()
    assert (summary.delivered, summary.rejected, summary.dead_lettered) == (1, 1, 0), summary
    assert summary.rejected_by_reason == {"DUPLICATE_SUBMISSION": 1}
    assert summary.rejected + summary.delivered + summary.dead_lettered == 2, "the counts reconcile"

    # the endpoint applied the declaration once: its store and its audit log
    assert ex.cn_processed_keys() == {ida.business_key: 1}
    verified = ex.audit_ids("CN", "verified")
    assert len(verified) == 1
    assert max(verified.values()) == 1
    assert set(ex.audit_ids("VN", "delivered")) == set(verified)

    # VN audit: both copies received (by their own coordinates), one sealed, the other rejected as duplicate
    events = _vn_events(ex, ida.business_key)
    received = sorted((e.kafka_partition, e.kafka_offset) for e in events if e.event_type.value == "received")
    assert len(received) == 2
    assert received[0][0] == received[1][0], "same key: same partition, two offsets"
    assert all(e.raw_sha256 == raw_sha for e in events if e.event_type.value in ("received", "rejected"))
    sealed = [e for e in events if e.event_type.value == "sealed"]
    rejected = [e for e in events if e.event_type.value == "rejected"]
    assert len(sealed) == 1
    assert len(rejected) == 1
    assert rejected[0].reason_code == "DUPLICATE_SUBMISSION"
    assert (sealed[0].kafka_partition, sealed[0].kafka_offset) == received[0], "the first copy is the one sent"
    assert (rejected[0].kafka_partition, rejected[0].kafka_offset) == received[1]
    assert {str(sealed[0].message_id)} == set(verified)

    # the rejected topic holds the second copy byte for byte, naming the first submission
    (dup,) = await _read_rejected(ex, 1)
    assert dup.value == ida.xml
    headers = dict(dup.headers)
    part, offset = received[1]
    assert headers["xbg-source"] == f"{s.topic_intake}/{part}@{offset}".encode()
    reasons = json.loads(headers["xbg-reasons"])
    assert reasons["code"] == "DUPLICATE_SUBMISSION"
    assert reasons["first_source"] == f"{s.topic_intake}/{received[0][0]}@{received[0][1]}"
    assert reasons["first_message_id"] == str(sealed[0].message_id)


@pytest.mark.integration
@pytest.mark.slow
async def test_amended_document_same_key_other_bytes_is_delivered_twice(exchange: Exchange) -> None:
    from xborder_gateway.connectors import publish_documents

    ex = exchange
    for name in ("nanning", "receipts", "outbound"):
        ex.start(name)
    ida = _ida(seed=22)
    amended = _amend(ida.xml)
    await publish_documents(ex.settings, [(ida.business_key, ida.xml)], run=RUN)
    await publish_documents(ex.settings, [(ida.business_key, amended)], run=RUN)
    await asyncio.to_thread(ex.wait_for, lambda x: x.settled >= 2, 90, "both documents settled")
    summary = ex.settled()
    assert (summary.delivered, summary.rejected, summary.dead_lettered) == (2, 0, 0), summary
    assert ex.cn_processed_keys() == {ida.business_key: 2}, "the endpoint received the original and the amendment"
    verified = ex.audit_ids("CN", "verified")
    assert len(verified) == 2
    assert max(verified.values()) == 1
    events = _vn_events(ex, ida.business_key)
    assert sorted(e.raw_sha256 for e in events if e.event_type.value == "sealed") == \
        sorted(hashlib.sha256(x).hexdigest() for x in (ida.xml, amended))
    assert not [e for e in events if e.event_type.value == "rejected"]
