"""The receipt tracker's resend task when something other than Kafka fails (real broker, SQLite, audit log).

A failed audit write must leave the message pending (it is resent and audited on the next run), and must
stop the tracker instead of leaving it consuming receipts with a dead resend task.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from xborder_gateway.connectors import ReceiptTracker
from xborder_gateway.connectors._common import Auditor, Ops
from xborder_gateway.connectors.receipts import resend_forever
from xborder_gateway.transport import make_producer

from .conftest import make_home
from .test_endpoint_and_tracker import _incoming, _sealed

pytestmark = [pytest.mark.integration]


async def test_audit_failure_in_the_resend_task_stops_the_tracker_and_keeps_the_message_pending(
        tmp_path: Path, kafka_bootstrap: str, topic_prefix: str) -> None:
    home = make_home(tmp_path / "home", exchange_receipt_timeout_s=0.001, exchange_backoff_initial_s=0.001,
                     exchange_backoff_jitter_s=0, topic_exchange=f"{topic_prefix}.exchange",
                     topic_dead_letter=f"{topic_prefix}.dead-letter")
    s = home.settings
    env = _sealed(home)
    tracker = ReceiptTracker(s, home.vn, home.vn_trust)
    tracker.consume([_incoming(s.topic_exchange, env)])
    await asyncio.sleep(0.01)
    assert tracker.due(), "the message must be due for a resend"
    auditor = Auditor(s, "VN")
    auditor.close()  # the audit write of the resend will fail
    ops = Ops("receipts", None, dict)
    producer = make_producer(kafka_bootstrap, client_id="t-resend")
    stop = asyncio.Event()
    try:
        with pytest.raises(Exception) as failure:  # noqa: PT011 - whatever the closed log raises
            await asyncio.wait_for(resend_forever(tracker, producer, auditor, ops, stop,
                                                  owned=lambda: {(s.topic_exchange, 0)}, tick_s=0.05), timeout=60)
        assert not isinstance(failure.value, TimeoutError), "the resend task kept running after the failure"
        assert stop.is_set(), "the tracker must stop when its resend task dies"
        row = tracker.conn.execute("SELECT state, attempts FROM xbg_messages WHERE message_id = ?",
                                   (str(env.message_id),)).fetchone()
        assert row == ("pending", 1), "an unaudited resend must not advance the state"
    finally:
        await producer.stop()
        tracker.close()
