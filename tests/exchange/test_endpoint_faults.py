"""The Nanning endpoint and the receipt tracker as real processes on a real broker, under injected faults.

Envelopes are put on the exchange topic as the outbound connector commits them (sealed by VN, same
headers); the full path from intake XML is covered in test_exchange_e2e.py. Every test checks its counts
through BOTH sides' audit logs as well as through the tracker's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import DIRECTIONS, Exchange, new_exchange

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N = 300


@pytest.fixture
def exchange(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, direction: str) -> Iterator[Exchange]:
    ex = new_exchange(tmp_path, kafka_bootstrap, topic_prefix, direction)
    try:
        yield ex
    finally:
        ex.stop_all()


def assert_exactly_once(ex: Exchange, ids: list[str]) -> None:
    """Every id delivered once (sender's audit), processed once at the endpoint (receiver's audit + store)."""
    delivered = ex.audit_ids(ex.sender, "delivered")
    verified = ex.audit_ids(ex.receiver, "verified")
    assert set(delivered) == set(ids), f"VN audit: {len(set(ids) - set(delivered))} ids not delivered"
    assert max(delivered.values()) == 1, "an id was delivered twice in the VN audit log"
    assert set(verified) == set(ids), "CN audit: not every id was processed"
    assert max(verified.values()) == 1, "the endpoint processed an id twice (CN audit log)"
    summary = ex.summary()
    assert summary is not None
    assert summary.processed_at_endpoint == len(ids)
    assert summary.delivered == len(ids)
    assert summary.dead_lettered == 0


async def test_drop_30_duplicate_30_every_document_acknowledged_once(exchange: Exchange) -> None:
    ex = exchange
    ex.start("nanning", "--drop-rate", "0.3", "--duplicate-rate", "0.3", "--seed", "11")
    ex.start("receipts")
    ids = await ex.inject(N, perishable_every=7)
    await asyncio.to_thread(ex.wait_for, lambda s: s.delivered == N, 120, f"{N} delivered")
    summary = await asyncio.to_thread(ex.settled)
    assert summary.resent > 0, "30% drops must have caused resends"
    assert (summary.duplicates_eliminated or 0) > 0, "30% duplicates must have been eliminated"
    assert_exactly_once(ex, ids)
    assert sum(ex.audit_ids("CN", "duplicate").values()) == summary.duplicates_eliminated
    assert sum(ex.audit_ids("VN", "resent").values()) == summary.resent


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_endpoint_crash_after_n_then_restart_recovers(exchange: Exchange) -> None:
    ex = exchange
    crashed = ex.start("nanning", "--crash-after", "100")
    ex.start("receipts")
    ids = await ex.inject(N)
    code = await asyncio.to_thread(crashed.popen.wait, 60)
    assert code == 17, f"--crash-after must exit 17, got {code}\n{ex.logs()}"
    ex.stop("nanning")
    ex.start("nanning")
    await asyncio.to_thread(ex.wait_for, lambda s: s.delivered == N, 120, f"{N} delivered after the crash")
    assert_exactly_once(ex, ids)
    # the crashed batch was committed in SQLite but not in Kafka: redelivered, answered as duplicates
    assert sum(ex.audit_ids(ex.receiver, "duplicate").values()) >= 1


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_endpoint_offline_then_resend_recovers(exchange: Exchange) -> None:
    ex = exchange
    ex.start("nanning", "--offline-for", "6")
    ex.start("receipts")
    ids = await ex.inject(100)
    await asyncio.to_thread(ex.wait_for, lambda s: s.delivered == 100, 120, "100 delivered")
    summary = await asyncio.to_thread(ex.settled)
    assert summary.resent >= 100, "nothing was answered for 6 s with a 2 s timeout: every message was resent"
    assert_exactly_once(ex, ids)
    assert (summary.duplicates_eliminated or 0) >= 1, "the resent copies met the originals at the endpoint"


async def _read_all(bootstrap: str, topic: str, expected: int, idle_s: float = 3.0) -> list[tuple[str, bytes, Any]]:
    """Every committed record of ``topic`` as (key, value, JSON of the xbg-reasons header)."""
    from xborder_gateway.transport import make_consumer

    consumer = make_consumer(bootstrap, group_id=None, batch_max=500, topics=(topic,))
    await consumer.start()
    out: list[tuple[str, bytes, Any]] = []
    try:
        deadline = asyncio.get_running_loop().time() + 30
        idle_until = None
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            records = [r for recs in batch.values() for r in recs]
            for r in records:
                out.append((r.key.decode(), r.value, json.loads(dict(r.headers)["xbg-reasons"])))
            now = asyncio.get_running_loop().time()
            if records:
                idle_until = now + idle_s
            elif len(out) >= expected and idle_until is not None and now >= idle_until:
                break  # no more after the expected count: also catches a second copy
    finally:
        await consumer.stop()
    return out


async def test_unanswered_messages_are_dead_lettered(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str) -> None:
    ex = new_exchange(tmp_path, kafka_bootstrap, topic_prefix, XBG_EXCHANGE_RESEND_MAX_ATTEMPTS="3",
                      XBG_EXCHANGE_DEAD_LETTER_AFTER="attempts",  # ADR 0601: the attempts horizon under test
                      XBG_EXCHANGE_RECEIPT_TIMEOUT_S="1", XBG_EXCHANGE_BACKOFF_INITIAL_S="0.2")
    try:
        ex.start("nanning", "--drop-rate", "1.0")
        ex.start("receipts")
        ids = await ex.inject(20)
        summary = await asyncio.to_thread(ex.wait_for, lambda s: s.dead_lettered == 20, 60, "20 dead letters")
        assert summary.resent == 40, "3 sends each: the first and two resends"
        dead = ex.audit_ids("VN", "dead_lettered")
        assert set(dead) == set(ids)
        assert max(dead.values()) == 1
        assert not ex.audit_ids("CN", "verified"), "the endpoint dropped everything"
        # the dead-letter topic holds each envelope once, with its exact bytes and why it is dead
        with contextlib.closing(sqlite3.connect(ex.settings.state_db("VN"))) as vn:
            sent = {str(m): bytes(d) for m, d in vn.execute("SELECT message_id, data FROM xbg_messages")}
        letters = await _read_all(kafka_bootstrap, ex.settings.topic_dead_letter, 20)
        assert sorted(k for k, _, _ in letters) == sorted(ids), "one dead letter per message id"
        for mid, value, reasons in letters:
            assert value == sent[mid], "the dead letter carries the envelope's exact bytes"
            assert (reasons["code"], reasons["message_id"], reasons["attempts"]) == ("DEAD_LETTER", mid, 3)
    finally:
        ex.stop_all()
    log = "".join(p.read_text(errors="replace") for p in ex.home.path.glob("receipts.*.log"))
    assert log.count("ERROR") >= 20, "every dead letter logs an ERROR line"


async def test_priority_lane_is_served_first(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str) -> None:
    """A backlog on both lanes: the perishable (priority) envelopes are processed before the normal ones."""
    ex = new_exchange(tmp_path, kafka_bootstrap, topic_prefix, XBG_EXCHANGE_BATCH_MAX="50")
    try:
        normal = await ex.inject(200)
        priority = await ex.inject(200, perishable_every=1)
        ex.start("nanning")
        order: list[str] = []
        for _ in range(180):
            await asyncio.sleep(0.5)
            with contextlib.suppress(sqlite3.OperationalError), \
                    contextlib.closing(sqlite3.connect(ex.settings.state_db("CN"), timeout=10)) as db:
                order = [str(m) for (m,) in db.execute("SELECT message_id FROM cn_processed ORDER BY rowid")]
            if len(order) >= 400:
                break
        positions = {mid: i for i, mid in enumerate(order)}
        last_priority = max(positions[m] for m in priority)
        assert set(order) == set(normal) | set(priority)
        # at most the first batch's normal envelopes (fetched before the lane was paused) precede the last one
        assert last_priority < 200 + 50 + 25, f"priority lane not served first: last at position {last_priority}"
    finally:
        ex.stop_all()


async def test_transient_rejects_and_delay_recover(exchange: Exchange) -> None:
    """30% transient NACKs (CN_TEMPORARILY_UNAVAILABLE) and a 50 ms answer delay: resends bring every message
    through, each processed once."""
    ex = exchange
    ex.start("nanning", "--reject-rate", "0.3", "--delay-ms", "50", "--seed", "5")
    ex.start("receipts")
    ids = await ex.inject(200)
    await asyncio.to_thread(ex.wait_for, lambda s: s.delivered == 200, 120, "200 delivered")
    summary = await asyncio.to_thread(ex.settled)
    assert summary.resent > 0, "transient NACKs must have been resent"
    assert_exactly_once(ex, ids)
    nacks = ex.audit_ids("VN", "receipt_received")
    assert sum(nacks.values()) > 200, "the VN audit log holds the NACKs as well as the ACKs"


async def test_two_tracker_instances_split_the_resends(exchange: Exchange) -> None:
    """Two receipt trackers in one group share the state file; each resends only the messages of the exchange
    partitions it consumes, so no (message id, attempt) is resent twice."""
    from collections import Counter

    from xborder_gateway.audit import AuditLog

    ex = exchange
    ex.start("nanning", "--drop-rate", "0.3", "--seed", "17")
    ex.start("receipts", instance="a")
    ex.start("receipts", instance="b")
    ids = await ex.inject(100)
    await asyncio.to_thread(ex.wait_for, lambda s: s.delivered == 100, 120, "100 delivered")
    summary = await asyncio.to_thread(ex.settled)
    assert summary.resent > 0
    assert_exactly_once(ex, ids)
    pairs: Counter[tuple[str, int]] = Counter()
    log = AuditLog.open(ex.settings, "VN", read_only=True)
    try:
        after = None
        while page := log.search(event_type="resent", after=after, limit=1000):
            pairs.update((str(e.event.message_id), int(e.event.attempt or 0)) for e in page)
            after = page[-1].index
    finally:
        log.close()
    assert pairs
    assert max(pairs.values()) == 1, "a message was resent by both instances for the same attempt"
    logs = "".join(p.read_text(errors="replace") for p in ex.home.path.glob("receipts.*.log"))
    assert logs.count("resent message_id=") == sum(pairs.values())
