"""VN's endpoint re-checks the CN exports still waiting for their IDA (issue 10 item 3).

An export whose IDA VN has not taken in yet is acknowledged at once (its receipt) and its business response
is deferred (``xbg_mirror`` state ``waiting``). Every ``mirror_recheck_s`` this task, beside the endpoint's
loop, re-checks the waiting rows against the IDAs VN's outbound recorded since (``xbg_imports``) and the
timeout (MIR-4: ``NO_IMPORT_DECLARATION`` only once ``mirror_import_timeout_s`` has passed):

1. :func:`recheck_once` -- ONE state transaction: decide (compare-and-set ``waiting -> decided``), seal the
   business response, keep it with the row and among the message's original answers (a duplicate of the
   export is answered with it too), append the audit events (before the commit, ADR 0400), commit;
2. produce the kept responses not yet known to be produced, then mark them produced.

A crash between 1 and 2 produces them at the next tick (at least once, like the tracker's status feed: the
sender's tracker stores a business response idempotently); a response is never decided twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from xborder_gateway.audit import AuditEvent, EventType
from xborder_gateway.connectors._common import H_MESSAGE_ID, AuditSink, event, log_line, now_ms
from xborder_gateway.connectors._runtime import Processor, Runtime
from xborder_gateway.errors import TransportError
from xborder_gateway.exchange import StoredAnswer
from xborder_gateway.exchange._state import decode_headers, encode_headers
from xborder_gateway.transport import Outgoing, kafka_boundary, make_producer

__all__ = ["mirror_tick_task", "recheck_once"]


def recheck_once(processor: Any, audit: AuditSink | None, *, now: int | None = None) -> list[Outgoing]:
    """Decide the waiting exports that can be decided now (one state transaction, audited before its commit);
    returns every kept business response not yet produced (those decided now and any left by a crash)."""
    from xborder_gateway.connectors.nanning import PROCESS

    desk = processor.mirror
    if desk is None:
        return []
    at = now_ms() if now is None else now
    events: list[AuditEvent] = []
    with processor.store.transaction() as conn:
        for d in desk.recheck(now_ms=at):
            row = conn.execute("SELECT business_key, doc_type FROM cn_processed WHERE message_id = ?",
                               (d.message_id,)).fetchone()
            business_key, doc_type = (row[0], row[1]) if row else (d.export_number, "CN_EXPORT")
            data = processor.business_response(d.message_id, business_key, doc_type, d.decision,
                                               recipient=processor.counterpart, now=datetime.now(UTC))
            out = processor._answer(d.message_id, "business-response", data, mid=d.message_id, run=d.run,
                                    business_key=business_key)
            processor.answers.append_answer(d.message_id, StoredAnswer(out.topic, out.key, out.value, out.headers))
            desk.keep_response(d.message_id, out.key or b"", out.value, encode_headers(out.headers))
            conn.execute("UPDATE cn_processed SET status = ? WHERE message_id = ?", (d.decision.status, d.message_id))
            events.append(event(processor.authority, PROCESS, EventType.BUSINESS_RESPONSE, message_id=d.message_id,
                                business_key=business_key, document_type=doc_type,
                                kafka_topic=processor.settings.topic_receipts, outcome=d.decision.status.lower(),
                                reason_code=d.decision.reasons[0][0] if d.decision.reasons else None))
            log_line(logging.INFO, "mirror decided", message_id=d.message_id, export=d.export_number,
                     codes=",".join(d.result.codes) or "-")
        if audit is not None and events:
            audit(events)
        pending = desk.unproduced()
    return [Outgoing(processor.settings.topic_receipts, key, data, decode_headers(headers))
            for _mid, key, data, headers in pending]


def mark_produced(processor: Any, outputs: list[Outgoing]) -> None:
    with processor.store.transaction():
        processor.mirror.produced([(o.header(H_MESSAGE_ID) or b"").decode() for o in outputs], now_ms())


async def mirror_tick_task(rt: Runtime, processor: Processor) -> None:
    """The endpoint's background task: :func:`recheck_once` every ``mirror_recheck_s`` until the stop event."""
    producer: Any = None
    period = rt.settings.mirror_recheck_s
    try:
        while not rt.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rt.stop.wait(), timeout=period)
            if rt.stop.is_set():
                break
            audit = rt.auditor.append if rt.auditor is not None else None
            outputs = recheck_once(processor, audit)
            if not outputs:
                continue
            try:
                if producer is None:
                    candidate = make_producer(rt.settings.bootstrap, client_id=f"{rt.ident.client_id}-mirror")
                    with kafka_boundary("start mirror producer"):
                        await candidate.start()
                    producer = candidate
                with kafka_boundary("produce deferred business responses"):
                    futures = [await producer.send(o.topic, value=o.value, key=o.key, headers=list(o.headers))
                               for o in outputs]
                    await asyncio.gather(*futures)
            except TransportError as exc:  # kept: produced at the next tick
                log_line(logging.WARNING, "deferred business responses not produced yet", code=exc.code,
                         count=len(outputs))
                broken, producer = producer, None
                if broken is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(broken.stop(), timeout=15)
                continue
            mark_produced(processor, outputs)
    finally:
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), timeout=15)
