"""Faults of the two-site exchange on real brokers and real MirrorMakers (issue 11 item 5), checked on the
replicated topic itself and through both sites' audit logs:

- the exchange's connectors across the link (tests/link/exchange.py: VN outbound + receipts, CN endpoint):
  a link cut longer than the tracker's attempts horizon dead-letters nothing and delivers all once (ADR 0601);
- raw records through the link: a cut (frozen MirrorMaker), a kill -9 mid-stream, and the read_uncommitted
  control that shows why the link reads read_committed.

Each test restores the session's two sites before it returns (tests/link/conftest.py); the exchange tests
come first in the module (the raw-record tests leave non-envelope records on the exchange topics, which a
later endpoint would have to refuse one by one). Scaled timeouts: receipt timeout 1 s, 3 sends, a 15 s cut
via SIGSTOP/SIGCONT, MirrorMaker's producer transaction timeout 10 s. "Nothing doubled" is counted on the
replicated topic itself (records per message id and attempt, read_committed at the target).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
import uuid
from collections import Counter

import pytest

from .exchange import SiteExchange, count_envelopes, run_sync
from .harness import TwoSites, count_ids, produce

# the first test of the module also pays for the session fixture (two brokers, two MirrorMakers: 1-4 min under load)
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

TOPIC = "xb.vn-cn.exchange"


EXCHANGE_TOPICS = ["xb.vn-cn.exchange", "xb.vn-cn.exchange.priority"]


def _pending_attempts(ex: SiteExchange) -> list[int]:
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(ex.sites.vn.settings.state_db("VN"), timeout=10)) as v:
        return [int(a) for (a,) in v.execute("SELECT attempts FROM xbg_messages WHERE run = ? AND state = 'pending'",
                                             (ex.run,))]


def _check_once_through_both_logs(ex: SiteExchange, *, expect_copies: bool) -> dict[str, int]:
    """Every envelope of the run: delivered once in VN's log, never dead-lettered; answered once with a
    business response in CN's log; processed once at CN; each (message id, attempt) once on the topic the
    link replicated into CN (read_committed). Returns counters for the test's report."""
    ids = ex.message_ids()
    assert ids, "the run sealed no envelope"
    mids = set(ids)
    delivered = ex.audit_ids("VN", "delivered", mids)
    assert set(delivered) == mids, "VN: every message delivered"
    assert max(delivered.values()) == 1, "VN: each message delivered once"
    assert not ex.audit_ids("VN", "dead_lettered", mids), "VN: nothing dead-lettered"
    answered = ex.audit_ids("CN", "business_response", mids)
    assert set(answered) == mids, "CN: a business response for every message"
    # ADR 0400: the LAST group of processing events is the committed one; a rolled-back attempt may repeat
    # events, but only one attempt commits -- counted below in CN's own state and on the topic
    processed = ex.cn_processed_keys()
    assert set(processed) == set(ids.values()), "CN processed every declaration"
    assert max(processed.values()) == 1, "CN processed each declaration once"
    copies = run_sync(count_envelopes(ex.sites.cn.bootstrap, EXCHANGE_TOPICS, ex.run))
    assert {m for m, _ in copies} == mids, "every message crossed the link"
    assert max(copies.values()) == 1, f"a copy doubled by the link: {[k for k, c in copies.items() if c > 1][:3]}"
    per_id = Counter(m for m, _ in copies)
    if expect_copies:
        assert max(per_id.values()) > 1, "the cut should have made the tracker resend"
    duplicates = ex.audit_ids("CN", "duplicate", mids)
    return {"messages": len(mids), "copies": sum(copies.values()), "cn_duplicates": sum(duplicates.values())}


def test_link_cut_longer_than_the_dead_letter_horizon_dead_letters_nothing(two_sites: TwoSites) -> None:
    """Issue 11 item 5 (ADR 0601): the VN -> CN link frozen for 15 s while documents are sent -- longer than
    the tracker's attempts horizon (3 sends, 1 s receipt timeout: every message reaches its last send while
    the link is down) -> nothing dead-lettered; after the restore every document is delivered once, none
    processed twice at CN, resends counted and each copy crossed once."""
    ex = SiteExchange.create(two_sites)
    mirror = two_sites.mirror("CN")  # CN's MirrorMaker pulls VN -> CN
    pid = mirror.status().pid
    assert pid is not None
    try:
        ex.start("CN", "nanning")
        ex.start("VN", "receipts")
        ex.start("VN", "outbound")
        os.kill(pid, signal.SIGSTOP)
        cut = time.monotonic()
        try:
            samples = run_sync(ex.publish(30, seed=1101))
            sent = ex.wait_for(lambda s: s.sent + s.rejected == len(samples) and s.sent > 0, 60, "the outbound run")
            # the attempts horizon passes while the link is still down: every message has had all its sends
            deadline = cut + 150  # generous: the tracker ticks slowly on a loaded 2-core machine
            while (att := _pending_attempts(ex)) and min(att) < 3 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert att, "nothing pending during the cut"
            assert min(att) == 3, f"not every message reached its last send during the cut: {att}"
            horizon_s = time.monotonic() - cut
            time.sleep(max(0.0, 15 - horizon_s))
            assert ex.summary().dead_lettered == 0, "dead-lettered while the link was down"  # type: ignore[union-attr]
        finally:
            os.kill(pid, signal.SIGCONT)
        cut_s = time.monotonic() - cut
        done = ex.wait_for(lambda s: s.delivered + s.rejected == len(samples), 180, "delivery after the restore")
        time.sleep(3)  # late copies and receipts land
        final = ex.summary()
        assert final is not None
        assert (final.dead_lettered, final.pending, final.delivered) == (0, 0, done.delivered)
        assert final.resent >= 2 * sent.sent, "resends are counted (two per message during the cut)"
        report = _check_once_through_both_logs(ex, expect_copies=True)
        print(f"link cut {cut_s:.0f}s (attempts horizon reached after {horizon_s:.1f}s): {report}, "
              f"resent={final.resent}, dead={final.dead_lettered}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        ex.stop_all()


def test_kill_9_of_outbound_mid_batch_with_the_link_running_processes_nothing_twice(two_sites: TwoSites) -> None:
    """Issue 11 item 5: the outbound connector dies (``--crash-after``: exit 17 with its transaction open, the
    batch's envelopes already in VN's log) while the link runs; restarted, it redoes the batch under new
    message ids. The aborted envelopes are in VN's log (read_uncommitted) but never cross (read_committed at
    CN), are never tracked nor ``sent`` at VN (only ``sealed``: ADR 0400 decision 4), and no declaration is
    processed twice at CN -- counted on the replicated topic and through both audit logs."""
    ex = SiteExchange.create(two_sites, XBG_EXCHANGE_BATCH_MAX="10")
    try:
        ex.start("CN", "nanning")
        ex.start("VN", "receipts")
        samples = run_sync(ex.publish(40, seed=1102))
        crashed = ex.start("VN", "outbound", "--crash-after", "25")
        assert crashed.popen.wait(timeout=180) == 17, ex.logs()
        ex.stop("VN", "outbound")
        ex.start("VN", "outbound")
        ex.wait_for(lambda s: s.delivered + s.rejected == len(samples), 180, "delivery after the outbound restart")
        time.sleep(3)
        final = ex.summary()
        assert final is not None
        assert (final.dead_lettered, final.pending) == (0, 0)
        tracked = set(ex.message_ids())
        in_vn_log = run_sync(count_envelopes(two_sites.vn.bootstrap, EXCHANGE_TOPICS, ex.run,
                                             isolation="read_uncommitted"))
        aborted = {m for m, _ in in_vn_log} - tracked
        assert aborted, "the crash must have left envelopes of an open (then aborted) transaction in VN's log"
        at_cn = run_sync(count_envelopes(two_sites.cn.bootstrap, EXCHANGE_TOPICS, ex.run))
        assert not aborted & {m for m, _ in at_cn}, "an aborted transaction crossed the link"
        assert set(ex.audit_ids("VN", "sealed", aborted)) == aborted, "VN's log holds what was attempted"
        assert not ex.audit_ids("VN", "sent", aborted), "never recorded sent"
        assert not ex.audit_ids("CN", "business_response", aborted), "never processed at CN"
        report = _check_once_through_both_logs(ex, expect_copies=False)
        print(f"outbound crash: aborted envelopes={len(aborted)}, {report}")
    finally:
        ex.stop_all()


def test_cn_site_stopped_with_its_broker_killed_then_restarted_delivers_all_once(two_sites: TwoSites) -> None:
    """Issue 11 item 5: the CN site goes away while VN keeps sending -- its endpoint stopped, its MirrorMaker
    stopped and its broker killed (-9) -- for longer than the tracker's attempts horizon, then brought back
    (broker, link, endpoint). All delivered once after, nothing dead-lettered, nothing processed twice; on
    the replicated topic and through both audit logs."""
    from xborder_gateway.kafka_local import LocalKafka

    cn = two_sites.cn
    ex = SiteExchange.create(two_sites)
    broker, mirror = LocalKafka(cn.settings), two_sites.mirror("CN")
    try:
        ex.start("CN", "nanning")
        ex.start("VN", "receipts")
        ex.start("VN", "outbound")
        first = run_sync(ex.publish(10, seed=1103))
        ex.wait_for(lambda s: s.delivered + s.rejected == len(first), 120, "delivery before the CN outage")
        down = time.monotonic()
        ex.stop("CN", "nanning")
        mirror.stop(timeout=30)
        pid = broker.status().pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # the site's broker dies
        more = run_sync(ex.publish(20, seed=1104))
        total = len(first) + len(more)
        deadline = down + 150
        while time.monotonic() < deadline:
            now_s, att = ex.summary(), _pending_attempts(ex)
            if now_s is not None and now_s.sent + now_s.rejected == total and att and min(att) == 3:
                break
            time.sleep(0.5)
        assert att, "nothing pending while CN is down"
        assert min(att) == 3, f"not every message reached its last send while CN was down: {att}"
        assert ex.summary().dead_lettered == 0  # type: ignore[union-attr]
        time.sleep(max(0.0, 15 - (time.monotonic() - down)))
        broker.start(timeout=180)
        mirror.start(timeout=240)
        ex.start("CN", "nanning")
        outage_s = time.monotonic() - down
        ex.wait_for(lambda s: s.delivered + s.rejected == total, 240, "delivery after the CN site came back")
        time.sleep(3)
        final = ex.summary()
        assert final is not None
        assert (final.dead_lettered, final.pending) == (0, 0)
        report = _check_once_through_both_logs(ex, expect_copies=True)
        print(f"CN site down {outage_s:.0f}s (broker kill -9, link and endpoint stopped): {report}, "
              f"resent={final.resent}")
    finally:
        ex.stop_all()
        if not broker.status().running:
            broker.start(timeout=180)
        if not mirror.status().running:
            mirror.start(timeout=240)


def _wait_port_free(port: int, timeout: float = 120) -> None:
    """After a kill -9 the MirrorMaker's REST port can stay unbindable for a while (connections in TIME_WAIT);
    `link start` refuses a port in use, so wait until it binds."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return
            except OSError:
                time.sleep(1)
    raise AssertionError(f"port {port} still in use after {timeout:.0f}s")


def _stream_in_background(bootstrap: str, ids: list[str], *, batch: int, pause_s: float) -> threading.Thread:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(produce(bootstrap, TOPIC, ids, batch=batch, pause_s=pause_s))
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test through the list
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def _join(thread: threading.Thread) -> None:
    thread.join(timeout=120)
    assert not thread.is_alive(), "the producer did not finish"
    assert not thread.errors, thread.errors  # type: ignore[attr-defined]


def test_link_cut_for_15s_then_restored_delivers_all_once(two_sites: TwoSites) -> None:
    """MirrorMaker frozen (SIGSTOP) for 15 s mid-stream, then thawed: every record once at the target."""
    mirror = two_sites.mirror("CN")
    pid = mirror.status().pid
    assert pid is not None
    prefix = f"cut-{uuid.uuid4().hex[:8]}-"
    ids = [f"{prefix}{i:05d}" for i in range(3000)]
    producer = _stream_in_background(two_sites.vn.bootstrap, ids, batch=50, pause_s=0.2)
    time.sleep(2)
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(15)
    finally:
        os.kill(pid, signal.SIGCONT)
    _join(producer)
    counts = asyncio.run(count_ids(two_sites.cn.bootstrap, TOPIC, prefix, expect=len(ids), wait_s=120))
    assert set(counts) == set(ids), f"lost {len(set(ids) - set(counts))}"
    assert max(counts.values()) == 1, f"doubled {sum(1 for c in counts.values() if c > 1)}"


def test_kill_9_of_mirrormaker_mid_stream_and_restart_loses_and_doubles_nothing(two_sites: TwoSites) -> None:
    mirror = two_sites.mirror("CN")
    pid = mirror.status().pid
    assert pid is not None
    prefix = f"k9-{uuid.uuid4().hex[:8]}-"
    ids = [f"{prefix}{i:05d}" for i in range(4000)]
    producer = _stream_in_background(two_sites.vn.bootstrap, ids, batch=100, pause_s=0.1)
    time.sleep(3)
    os.kill(pid, signal.SIGKILL)  # mid-stream, mid-transaction most likely
    deadline = time.monotonic() + 10
    while mirror.status().running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not mirror.status().running
    _join(producer)
    started = time.monotonic()
    mirror.start(timeout=240)
    counts = asyncio.run(count_ids(two_sites.cn.bootstrap, TOPIC, prefix, expect=len(ids), wait_s=180))
    resumed_in = time.monotonic() - started
    assert set(counts) == set(ids), f"lost {len(set(ids) - set(counts))} (after {resumed_in:.0f}s)"
    assert max(counts.values()) == 1, f"doubled {sum(1 for c in counts.values() if c > 1)}"


def test_controls_read_uncommitted_lets_an_aborted_transaction_through_and_exactly_once_off_doubles(
        two_sites: TwoSites) -> None:
    """The controls that show what the link's settings prevent (test_link.py and the tests above check that
    the defaults never let an aborted record through nor double one), with ONE control MirrorMaker at CN:
    read_uncommitted, exactly-once off, and a fresh set of MirrorMaker topics (``link_internal_topics_suffix``:
    otherwise the restarted link would resume from its stored source offsets and connector configuration).

    1. records of an aborted source transaction arrive at the target;
    2. kill -9 of that MirrorMaker mid-stream and a restart: records doubled on the replicated topic (its
       source offsets are flushed only every 60 s here, so the restart replays what it had copied).

    Exactly-once is off for both: MirrorMaker "can only provide exactly-once guarantees" with read_committed."""
    vn, cn = two_sites.vn, two_sites.cn
    default = two_sites.mirror("CN")
    default.stop(timeout=30)
    control = two_sites.mirror("CN", link_isolation_level="read_uncommitted", link_exactly_once=False,
                               link_internal_topics_suffix=f"-control-{uuid.uuid4().hex[:6]}",
                               link_offset_flush_interval_ms=60_000)
    try:
        t0 = time.monotonic()
        control.start(timeout=240)
        start_s = time.monotonic() - t0
        prefix = f"ru-{uuid.uuid4().hex[:8]}-"
        aborted = [f"{prefix}aborted-{i}" for i in range(50)]
        committed = [f"{prefix}committed-{i}" for i in range(50)]
        asyncio.run(produce(vn.bootstrap, "xb.vn-cn.exchange.priority", aborted, batch=50, abort=True))
        asyncio.run(produce(vn.bootstrap, "xb.vn-cn.exchange.priority", committed, batch=50))
        got = asyncio.run(count_ids(cn.bootstrap, "xb.vn-cn.exchange.priority", prefix, expect=100, wait_s=90))
        assert set(committed) <= set(got)
        assert set(aborted) <= set(got), "read_uncommitted should have let the aborted records through"
        # 2. exactly-once off: kill -9 mid-stream, restart, count on the replicated topic
        pid = control.status().pid
        assert pid is not None
        prefix2 = f"eo-{uuid.uuid4().hex[:8]}-"
        ids = [f"{prefix2}{i:05d}" for i in range(2000)]
        producer = _stream_in_background(vn.bootstrap, ids, batch=100, pause_s=0.1)
        # kill only once it has copied some of them (under load it may not have in a fixed sleep): its source
        # offsets are not flushed yet (every 60 s), so the restart must copy those again
        copied = asyncio.run(count_ids(cn.bootstrap, TOPIC, prefix2, expect=200, wait_s=90, settle=0))
        assert len(copied) >= 200, "the control MirrorMaker copied nothing before the kill"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while control.status().running and time.monotonic() < deadline:
            time.sleep(0.1)
        _join(producer)
        _wait_port_free(cn.settings.link_rest_port)
        control.start(timeout=240)
        counts = asyncio.run(count_ids(cn.bootstrap, TOPIC, prefix2, expect=len(ids), wait_s=180, settle=5))
        assert set(counts) == set(ids), f"lost {len(set(ids) - set(counts))}"
        doubled = sum(1 for c in counts.values() if c > 1)
        assert doubled > 0, "with exactly-once off, the restart after kill -9 should have doubled records"
        print(f"controls: control MirrorMaker start {start_s:.0f}s; aborted through={len(set(aborted) & set(got))}; "
              f"doubled without exactly-once={doubled} of {len(ids)}")
    finally:
        control.stop(timeout=30)
        _wait_port_free(cn.settings.link_rest_port)
        default.start(timeout=240)
