"""Issue 15 on a real broker: vehicle declarations published BEFORE their linked declarations (other
partitions, with a delay) are PENDING and then decided -- none REJECTED for arriving early; an orphan is
REJECTED ``LINKED_DECLARATION_UNKNOWN`` by the grace tick with no further input; a restart of the endpoint
while vehicles are PENDING decides them after the restart exactly once; an amendment releases a HELD
declaration and the tracker records the later ACCEPTED."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from xborder_gateway.documents import translate_xml
from xborder_gateway.envelope import open_receipt, seal
from xborder_gateway.samples import Sample, generate_mix
from xborder_gateway.transport import ensure_topics, make_consumer, make_producer

from .harness import RUN, Exchange, new_exchange

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GRACE_S = 6


@pytest.fixture
def exchange(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str) -> Iterator[Exchange]:
    ex = new_exchange(tmp_path, kafka_bootstrap, topic_prefix, XBG_EXCHANGE_LINKED_GRACE_S=str(GRACE_S))
    try:
        yield ex
    finally:
        ex.stop_all()


def _trucks(seed: int, n: int) -> list[tuple[list[Sample], Sample]]:
    out: list[tuple[list[Sample], Sample]] = []
    decls: list[Sample] = []
    for s in generate_mix(40 * n, seed, invalid_ratio=0.0):
        if s.kind == "TIR":
            if decls:
                out.append((decls, s))
            decls = []
        else:
            decls.append(s)
        if len(out) == n:
            break
    return out


def _held_with_amendment(seed: int) -> tuple[Sample, Sample]:
    for s in generate_mix(300, seed, invalid_ratio=0.0, amendments=True):
        if s.expected_holds and s.amended_by is not None and not s.amendment:
            return s, s.amended_by
    raise AssertionError("no held declaration with an amendment")


async def _publish(ex: Exchange, samples: list[Sample], partition: int) -> list[str]:
    """Seal each sample as the outbound would and commit it to ``partition`` of the exchange topic."""
    s = ex.settings
    await ensure_topics(ex.bootstrap, [s.topic_exchange, s.topic_exchange_priority, s.topic_receipts,
                                       s.topic_rejected, s.topic_dead_letter, s.topic_intake, s.topic_status], 3)
    producer = make_producer(ex.bootstrap)
    await producer.start()
    ids = []
    try:
        for sample in samples:
            doc = translate_xml(sample.xml)
            env = seal(doc.payload, sender=ex.home.vn, recipient="CN", trust=ex.home.vn_trust,
                       document_type=doc.doc_type, schema_fingerprint=doc.schema_fingerprint)
            mid = str(env.message_id)
            ids.append(mid)
            headers = [("xbg-message-id", mid.encode()), ("xbg-doc-type", doc.doc_type.encode()),
                       ("xbg-business-key", doc.business_key.encode()), ("xbg-run", RUN.encode()),
                       ("xbg-published-ms", str(int(time.time() * 1000)).encode()), ("xbg-attempt", b"1")]
            await (await producer.send(s.topic_exchange, key=mid.encode(), value=env.data, headers=headers,
                                       partition=partition))
    finally:
        await producer.stop()
    return ids


def _business(ex: Exchange, ids: list[str]) -> dict[str, tuple[str, str | None, str | None]]:
    db = ex.home.settings.state_db("VN")
    if not db.exists():
        return {}
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as vn:
        try:
            rows = vn.execute(f"SELECT message_id, state, business_status, business_reasons FROM xbg_messages "  # noqa: S608
                              f"WHERE message_id IN ({','.join('?' * len(ids))})", ids).fetchall()
        except sqlite3.OperationalError:
            return {}
    return {str(m): (str(s), b, r) for m, s, b, r in rows}


async def _until_decided(ex: Exchange, ids: list[str], limit_s: float,
                         want: dict[str, str] | None = None) -> dict[str, tuple[str, str | None, str | None]]:
    deadline = time.monotonic() + limit_s
    got: dict[str, tuple[str, str | None, str | None]] = {}
    while time.monotonic() < deadline:
        got = _business(ex, ids)
        done = len(got) == len(ids) and all(v[0] == "delivered" and v[1] for v in got.values())
        if done and (want is None or all(got[m][1] == st for m, st in want.items())):
            return got
        await asyncio.sleep(0.5)
    raise AssertionError(f"not decided in {limit_s}s: {got}\n{ex.logs()}")


async def _business_responses(ex: Exchange) -> Counter[str]:
    """How many DIFFERENT business decisions (by bytes) each message id got on the receipts topic
    (read_committed). A resend of a message is answered with its original bytes again (ENV-10), so copies
    of the same bytes are one decision."""
    consumer = make_consumer(ex.bootstrap, group_id=None, batch_max=500, topics=(ex.settings.topic_receipts,))
    await consumer.start()
    seen: set[tuple[str, bytes]] = set()
    out: Counter[str] = Counter()
    try:
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 3:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                for r in recs:
                    idle_since = time.monotonic()
                    if (r.key.decode(), r.value) in seen or not _is_decision(ex, r):
                        continue
                    seen.add((r.key.decode(), r.value))
                    out[r.key.decode()] += 1
    finally:
        await consumer.stop()
    return out


def _is_decision(ex: Exchange, r: object) -> bool:
    """A business decision: a BusinessResponse, or a Receipt v2 carrying the immediate one (issue 13)."""
    kind = dict(r.headers).get("xbg-kind")  # type: ignore[attr-defined]
    if kind == b"business-response":
        return True
    if kind != b"receipt":
        return False
    _opened, record = open_receipt(r.value, me=ex.home.vn, trust=ex.home.vn_trust, replay=None)  # type: ignore[attr-defined]
    return record.get("business_status") is not None


def _pending_audit(ex: Exchange) -> Counter[str]:
    return ex.audit_ids("CN", "business_response")


async def test_vehicles_before_their_declarations_are_decided_none_rejected_for_order(exchange: Exchange) -> None:
    ex = exchange
    ex.start("nanning")
    ex.start("receipts")
    trucks = _trucks(5, 8)
    _never_sent, orphan = _trucks(77, 1)[0]
    held, amendment = _held_with_amendment(9)
    # every vehicle first, on partition 0; its declarations a few seconds later on partitions 1 and 2
    tir_ids = await _publish(ex, [t for _d, t in trucks] + [orphan], 0)
    await asyncio.sleep(2)
    decls = [d for ds, _t in trucks for d in ds]
    decl_ids = await _publish(ex, decls[::2], 1) + await _publish(ex, decls[1::2], 2)
    held_id = (await _publish(ex, [held], 1))[0]
    vehicles = tir_ids[:-1]
    got = await _until_decided(ex, vehicles + decl_ids + [held_id], 120)
    assert {got[m][1] for m in vehicles} == {"ACCEPTED"}, "none REJECTED for arriving early"
    assert got[held_id][1] == "HELD"
    # the orphan: its declarations never come; the grace tick rejects it with no further input
    got = await _until_decided(ex, [tir_ids[-1]], GRACE_S + 60)
    assert got[tir_ids[-1]][1] == "REJECTED"
    assert "LINKED_DECLARATION_UNKNOWN" in str(got[tir_ids[-1]][2])
    # the amendment releases the hold: a second business response for the HELD message, ACCEPTED
    amend_id = (await _publish(ex, [amendment], 2))[0]
    got = await _until_decided(ex, [held_id, amend_id], 60, want={held_id: "ACCEPTED"})
    assert got[amend_id][1] == "ACCEPTED"
    responses = await _business_responses(ex)
    assert all(responses[m] == 1 for m in [*vehicles, tir_ids[-1]]), responses
    assert responses[held_id] == 2, "HELD, then released"


async def test_restart_while_pending_decides_each_vehicle_once(exchange: Exchange) -> None:
    ex = exchange
    ex.start("nanning")
    ex.start("receipts")
    trucks = _trucks(13, 4)
    _od, orphan = _trucks(41, 1)[0]
    tir_ids = await _publish(ex, [t for _d, t in trucks] + [orphan], 0)
    # wait until the endpoint has answered them all with their receipts (PENDING), then stop it
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = _business(ex, tir_ids)
        if len(got) == len(tir_ids) and all(v[0] == "delivered" for v in got.values()):
            break
        await asyncio.sleep(0.5)
    assert all(v[1] is None for v in _business(ex, tir_ids).values()), "PENDING: no business response yet"
    assert ex.stop("nanning") == 0
    # the declarations arrive while it is down; the orphan's grace runs out while it is down
    decls = [d for ds, _t in trucks for d in ds]
    await _publish(ex, decls, 1)
    await asyncio.sleep(GRACE_S + 1)
    ex.start("nanning")
    got = await _until_decided(ex, tir_ids, 90)
    assert {got[m][1] for m in tir_ids[:-1]} == {"ACCEPTED"}
    assert got[tir_ids[-1]][1] == "REJECTED"
    responses = await _business_responses(ex)
    assert all(responses[m] == 1 for m in tir_ids), f"decided once each: {responses}"
    audit = _pending_audit(ex)
    assert all(audit[m] == 2 for m in tir_ids), f"one 'pending' and one decision event each: {audit}"
