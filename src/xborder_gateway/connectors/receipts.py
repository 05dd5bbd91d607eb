"""``xborder run receipts --authority A``: the sender's receipt tracker -- match receipts, resend, dead-letter.

Any sending authority runs it (issue 10): VN tracks what it sealed for CN (``xb.vn-cn.exchange`` and the
receipts on ``xb.cn-vn.receipts``, dead letters to ``vn.exchange.dead-letter``); CN tracks what it sealed for
VN (``xb.cn-vn.exchange``, receipts on ``xb.vn-cn.receipts``, dead letters to ``cn.exchange.dead-letter``),
each in its own state database and audit log. Below, VN is the sender of the example.

What was sent is learnt by consuming the exchange topics **read_committed**: that is the durable record
of exactly what the outbound connector committed (an aborted transaction's envelopes are never seen, so
never tracked or resent). A table written by the outbound connector could not be committed atomically
with its Kafka transaction. Each envelope's exact bytes are kept in ``settings.state_db("VN")`` with its
attempts and next due time, so the state survives restarts.

- Receipt ACK (opened, signed by the authority the message was sealed to, digest of the very bytes we sent:
  ENV-11) -> ``delivered``; a second ACK for the same id is a duplicate receipt, counted and otherwise
  ignored; an ACK after the dead letter is recorded (``receipt_received`` with reason
  ``RECEIPT_AFTER_DEAD_LETTER``), never a second outcome;
- Receipt NACK with a retriable code (``CN_TEMPORARILY_UNAVAILABLE``, ``INTERNAL_ERROR``) -> resend after the
  backoff; any other NACK is permanent -> dead letter at the next tick;
- BusinessResponse -> the business status (ACCEPTED / HELD / REJECTED) is stored with the message;
- no receipt by the due time -> the SAME envelope bytes are produced again under the SAME message id (and
  key) on the same topic; the next due time is ``now + receipt timeout + backoff`` where the backoff is
  tenacity's ``wait_exponential_jitter``; after ``exchange_resend_max_attempts`` sends -> the envelope goes
  to ``xb.vn-cn.dead-letter`` with JSON reasons, an ERROR log line and a ``dead_lettered`` audit event.

Every state change is decided by :func:`xborder_gateway.exchange.decide_message` (pure) and applied by the
one compare-and-set :func:`xborder_gateway.exchange.apply_transition`. The resend task CLAIMS a resend or a
dead letter (CAS on state and attempts, with its audit event, one transaction) before it produces anything,
so a receipt committed meanwhile wins and nothing is produced for a message that is no longer pending.

The consumer side is at-least-once with idempotent state updates (upserts keyed by message id), so a
replayed batch changes nothing but the duplicate-receipt counter.

Order per consumed batch (ADR 0400, audit completeness): apply the batch inside the open SQLite transaction
-> append its audit events durably -> commit SQLite -> commit the Kafka offsets. A crash (or a failed
SQLite commit) after the audit append rolls the state back, so the redelivered batch is applied again and
its ``sent`` / ``receipt_received`` / ``delivered`` events are appended again -- a recognisable repeat
(same message id, event type and Kafka position), never a loss. A failed audit append rolls the state
back too: nothing is marked sent or delivered without its events.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import tenacity

from xborder_gateway import avro
from xborder_gateway.audit import AuditEvent, EventType
from xborder_gateway.config import Settings
from xborder_gateway.connectors._common import (
    H_ATTEMPT,
    H_BUSINESS_KEY,
    H_DOC_TYPE,
    H_MESSAGE_ID,
    H_PUBLISHED_MS,
    H_REASONS,
    H_RUN,
    Auditor,
    AuditSink,
    ConnectorOptions,
    Ops,
    event,
    log_line,
    now_ms,
)
from xborder_gateway.connectors._runtime import (
    ConnectorSpec,
    Guarantee,
    Processor,
    ProcessResult,
    Runtime,
    run_connector,
)
from xborder_gateway.connectors.nanning import BUSINESS_DOCUMENT_TYPE, INTERNAL_ERROR
from xborder_gateway.envelope import (
    DEFAULT_LIMITS,
    LocalAuthority,
    OpenedEnvelope,
    TrustStore,
    open_envelope,
    open_receipt,
    peek_header,
    receipt_decision,
)
from xborder_gateway.errors import GatewayError, TransportError
from xborder_gateway.exchange import (
    VN_SCHEMA,
    Action,
    MessageState,
    PendingMessage,
    StatusChange,
    StatusKind,
    Stimulus,
    TrackerPolicy,
    TrackerStore,
    apply_transition,
    connect,
    dead_letter_horizon_ms,
    decide_message,
    is_retriable_nack,
    status_record,
    transaction,
)
from xborder_gateway.transport import (
    Incoming,
    Outgoing,
    kafka_boundary,
    make_producer,
)

__all__ = ["Backoff", "Claims", "ReceiptTracker", "ReceiptsOptions", "receipts_spec", "resend_forever",
           "run_receipts"]

AUTHORITY = "VN"
PROCESS = "receipts"


@dataclass(frozen=True, slots=True)
class _Opening:
    """A receipts-topic record opened ahead of the batch's transaction: the result, or what opening raised."""

    result: tuple[OpenedEnvelope, dict[str, Any]] | None
    error: Exception | None

    def get(self) -> tuple[OpenedEnvelope, dict[str, Any]]:
        if self.error is not None:
            raise self.error
        assert self.result is not None  # noqa: S101 - one of the two is set by construction
        return self.result


@dataclass(frozen=True)
class ReceiptsOptions(ConnectorOptions):
    tick_s: float = 0.2


class Backoff:
    """Resend delay after the n-th send: tenacity's exponential backoff with jitter."""

    def __init__(self, settings: Settings) -> None:
        self._wait = tenacity.wait_exponential_jitter(multiplier=settings.exchange_backoff_initial_s,
                                                      max=settings.exchange_backoff_max_s, exp_base=2,
                                                      jitter=settings.exchange_backoff_jitter_s)
        self._state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})

    def seconds(self, sends: int) -> float:
        self._state.attempt_number = max(1, sends)
        return float(self._wait(self._state))


class ReceiptTracker:
    """The tracker's state transitions over SQLite; Kafka I/O is done by :func:`run_receipts`."""

    def __init__(self, settings: Settings, me: LocalAuthority, trust: TrustStore, authority: str = AUTHORITY
                 ) -> None:
        self.settings = settings
        self.me = me
        self.trust = trust
        self.authority = authority
        self.conn = connect(settings.state_db(authority), VN_SCHEMA)
        self.store = TrackerStore(self.conn)
        self.backoff = Backoff(settings)
        self.timeout_ms = int(settings.exchange_receipt_timeout_s * 1000)
        self.exchange_topics = {settings.topic_exchange, settings.topic_exchange_priority}
        self.pending_seen = 0  # refreshed by the resend task; read by the health endpoint (another thread)
        self._status: list[Outgoing] = []
        self.policy = TrackerPolicy(max_attempts=settings.exchange_resend_max_attempts,
                                    receipt_timeout_ms=self.timeout_ms,
                                    backoff_ms=lambda sends: int(self.backoff.seconds(sends) * 1000))

    def close(self) -> None:
        self.conn.close()

    # --- consumed records ----------------------------------------------------------------------------
    def handle(self, records: Sequence[Incoming], audit: AuditSink) -> ProcessResult:
        return self.consume(records, audit=audit)

    def health(self) -> dict[str, Any]:
        return {"pending": self.pending_seen}

    def consume(self, records: Sequence[Incoming], *, audit: AuditSink | None = None) -> ProcessResult:
        """Apply a batch (sent envelopes first, then rejections, then receipts) in one SQLite transaction.

        With ``audit`` (the connector passes :meth:`Auditor.append`), the batch's events are appended
        durably INSIDE the open transaction, just before it commits (a failed append rolls the batch back;
        a crash after it repeats the events on redelivery, never loses them). It is called synchronously:
        no other coroutine can use this connection (the resend task shares it) while the transaction is
        open. Without ``audit`` (unit tests) the caller gets the events after the commit.
        """
        events: list[AuditEvent] = []
        counts = {"sent": 0, "rejected": 0, "delivered": 0, "duplicate_receipt": 0, "nack": 0, "business": 0,
                  "bad_receipt": 0, "late_receipt": 0, "failed": 0}
        latencies: list[float] = []
        self._status = []  # the sender's status feed (issue 10 item 4): produced after the state commit
        order = {self.settings.topic_rejected: 1, self.settings.topic_receipts: 2}
        opened = self._open_all(records)  # the pure, CPU-heavy part, before the state's write lock
        ordered = sorted(records, key=lambda x: order.get(x.topic, 0))
        try:
            with transaction(self.conn) as conn:
                self._sent_all(conn, [r for r in ordered if r.topic in self.exchange_topics], events, counts)
                for r in ordered:
                    if r.topic == self.settings.topic_rejected:
                        self._rejected(conn, r, counts)
                self._receipts(conn, [r for r in ordered if r.topic == self.settings.topic_receipts], opened,
                               events, counts, latencies)
                if audit is not None and events:
                    # Audit before the state commit (ADR 0400). Lock order state -> audit; no writer of the VN
                    # audit log (outbound, other tracker instances, their resend tasks, the checkpoint thread)
                    # waits for the state file while holding the audit log, so this cannot deadlock.
                    audit(events)
        finally:
            self.store.forget()  # issue 13: nothing read ahead outlives the batch's transaction
        status, self._status = self._status, []
        return ProcessResult(status, events, counts, latencies)

    def _sent_all(self, conn: sqlite3.Connection, sent: Sequence[Incoming], events: list[AuditEvent],
                  counts: dict[str, int]) -> None:
        """The batch's committed envelopes, tracked by one query and one multi-row upsert (issue 13; the
        result per envelope is :meth:`TrackerStore.record_sent_many`'s)."""
        del conn  # the store's connection, in the open transaction
        rows = []
        for r in sent:
            published = r.header_str(H_PUBLISHED_MS)
            sent_ms = r.timestamp_ms or now_ms()
            rows.append({"message_id": r.header_str(H_MESSAGE_ID) or (r.key or b"").decode(), "topic": r.topic,
                         "partition": r.partition, "key": r.key, "data": r.value, "headers": r.headers,
                         "doc_type": r.header_str(H_DOC_TYPE), "business_key": r.header_str(H_BUSINESS_KEY),
                         "run": r.header_str(H_RUN), "published_ms": int(published) if published else None,
                         "sent_ms": sent_ms, "due_ms": sent_ms + self.timeout_ms})
        for r, row, tracked in zip(sent, rows, self.store.record_sent_many(rows), strict=True):
            if tracked:
                counts["sent"] += 1
                events.append(event(self.authority, PROCESS, EventType.SENT, message_id=row["message_id"],
                                    business_key=row["business_key"], document_type=row["doc_type"],
                                    envelope_sha256=hashlib.sha256(r.value).digest(), kafka_topic=r.topic,
                                    kafka_partition=r.partition, kafka_offset=r.offset, attempt=1))

    def _receipts(self, conn: sqlite3.Connection, receipts: Sequence[Incoming],  # noqa: PLR0917
                  opened: dict[tuple[int, int], _Opening], events: list[AuditEvent], counts: dict[str, int],
                  latencies: list[float]) -> None:
        """The batch's receipts-topic records, poison isolation paid for by a failure only (issue 13 item 4).

        The fast pass reads the tracked rows of all of them with one query (:meth:`TrackerStore.prefetch`) and
        applies them under ONE savepoint. A record that raises (what :meth:`_receipt` handles in its own
        savepoint: untrusted, malformed, unexpected) rolls the pass back -- state, events, counts, latencies
        and status records -- and the pass runs again with that record handled from its recorded error,
        without applying it; every other record is applied again. So one bad receipt never fails or blocks
        its batch-mates (a921b26), and a healthy batch pays no savepoint per record."""
        failed: dict[int, Exception] = {}
        marks = len(events), dict(counts), len(latencies), len(self._status)
        while True:
            self.store.prefetch(self._receipt_ids(receipts, opened))
            conn.execute("SAVEPOINT receipts")
            try:
                for i, r in enumerate(receipts):
                    if i in failed:
                        self._receipt_failed(r, failed[i], events, counts)
                        continue
                    try:
                        self._apply_receipt(conn, r, events, counts, latencies, pre=opened[(r.partition, r.offset)])
                    except Exception as exc:
                        failed[i] = exc
                        raise _Retry from exc
            except _Retry:
                conn.execute("ROLLBACK TO receipts")
                conn.execute("RELEASE receipts")
                del events[marks[0]:]
                counts.clear()
                counts.update(marks[1])
                del latencies[marks[2]:]
                del self._status[marks[3]:]
                continue
            conn.execute("RELEASE receipts")
            return

    @staticmethod
    def _receipt_ids(receipts: Sequence[Incoming], opened: dict[tuple[int, int], _Opening]) -> list[str]:
        """The message ids the opened receipts and business responses name (for the read ahead)."""
        ids = []
        for r in receipts:
            got = opened[(r.partition, r.offset)].result
            if got is not None and isinstance(got[1], dict) and "message_id" in got[1]:
                ids.append(str(got[1]["message_id"]))
        return ids

    def _rejected(self, conn: sqlite3.Connection, r: Incoming, counts: dict[str, int]) -> None:
        code = None
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            code = json.loads(r.header_str(H_REASONS) or "{}").get("code")
        published = r.header_str(H_PUBLISHED_MS)
        counts["rejected"] += self.store.record_rejected(
            topic=r.topic, partition=r.partition, offset=r.offset, run=r.header_str(H_RUN),
            business_key=r.header_str(H_BUSINESS_KEY), reason_code=str(code) if code else None,
            published_ms=int(published) if published else None)

    def _open(self, r: Incoming) -> tuple[OpenedEnvelope, dict[str, Any]]:
        """Verify, decrypt and decode one record of the receipts topic: pure (keys, trust and the clock only),
        so it runs before the batch's state transaction. Raises what opening raises."""
        if (r.header_str("xbg-kind") or "receipt") == "receipt":
            return open_receipt(r.value, me=self.me, trust=self.trust, replay=None)
        opened = open_envelope(r.value, me=self.me, trust=self.trust, replay=None)
        if opened.header.document_type != BUSINESS_DOCUMENT_TYPE:
            raise GatewayError(f"unexpected {opened.header.document_type} on the receipts topic",
                               code="RECEIPT_UNEXPECTED_TYPE")
        return opened, avro.decode(opened.payload).record

    def _open_all(self, records: Sequence[Incoming]) -> dict[tuple[int, int], _Opening]:
        """Every receipts-topic record of the batch opened BEFORE the state's write lock is taken: the other
        VN writers of the state file (outbound's duplicate check, the resend task) do not wait for this CPU
        work (issue 13 item 4). What opening raised is kept and raised again where the record is applied, in
        its savepoint, so a record that cannot be opened is handled exactly as before."""
        out: dict[tuple[int, int], _Opening] = {}
        for r in records:
            if r.topic != self.settings.topic_receipts:
                continue
            try:
                out[(r.partition, r.offset)] = _Opening(self._open(r), None)
            except Exception as exc:  # noqa: BLE001 - raised again, and handled, in _receipt
                out[(r.partition, r.offset)] = _Opening(None, exc)
        return out

    def _apply_receipt(self, conn: sqlite3.Connection, r: Incoming, events: list[AuditEvent], counts: dict[str, int],
                       latencies: list[float], *, pre: _Opening) -> None:
        """Apply one opened record of the receipts topic; raises what opening or applying it raised."""
        opened, record = pre.get()
        if (r.header_str("xbg-kind") or "receipt") == "receipt":
            self._technical(conn, opened.header.sender, record, r, events=events, counts=counts,
                            latencies=latencies)
            return
        response = record
        self.store.record_business(str(response["message_id"]), str(response["status"]),
                                   response.get("reasons"))
        counts["business"] += 1
        self._status.append(status_record(self.settings.topic_status, StatusChange(
            str(response["business_key"]), self.authority, StatusKind.BUSINESS_OUTCOME, now_ms(),
            str(response.get("document_type") or "") or None, message_id=str(response["message_id"]),
            business_status=str(response["status"]),
            reasons=tuple((str(x["code"]), str(x["text"])[:500]) for x in response.get("reasons") or ()))))

    def _receipt_failed(self, r: Incoming, exc: Exception, events: list[AuditEvent], counts: dict[str, int]) -> None:
        """A record whose application raised ``exc`` (its writes undone): counted, logged and, for an
        unexpected failure, audited -- it changes nothing else."""
        if isinstance(exc, GatewayError):  # a receipt we cannot trust changes nothing
            counts["bad_receipt"] += 1
            log_line(logging.WARNING, "receipt refused", message_id=r.header_str(H_MESSAGE_ID), code=exc.code)
        elif isinstance(exc, (KeyError, TypeError, ValueError)):  # a signed but malformed record
            counts["bad_receipt"] += 1
            logging.getLogger(__name__).error("malformed receipt message_id=%s", r.header_str(H_MESSAGE_ID),
                                              exc_info=exc)
        else:  # issue 9 item 3: an unexpected failure is audited and counted, never silent
            counts["failed"] = counts.get("failed", 0) + 1
            logging.getLogger(__name__).error("unexpected error on receipt %s/%d@%d message_id=%s", r.topic,
                                              r.partition, r.offset, r.header_str(H_MESSAGE_ID), exc_info=exc)
            events.append(event(self.authority, PROCESS, EventType.REJECTED, message_id=r.header_str(H_MESSAGE_ID),
                                envelope_sha256=hashlib.sha256(r.value).digest(), kafka_topic=r.topic,
                                kafka_partition=r.partition, kafka_offset=r.offset, outcome="failed",
                                reason_code=INTERNAL_ERROR))

    def _technical(self, conn: sqlite3.Connection, issuer: str, record: dict[str, Any], r: Incoming, *,
                   events: list[AuditEvent], counts: dict[str, int], latencies: list[float]) -> None:
        mid = str(record["message_id"])
        now = now_ms()
        tracked = self.store.message(mid)  # a receipt that overtook our view of the exchange topic: remembered
        state, data, published, attempts = tracked.state, tracked.data, tracked.published_ms, tracked.attempts
        due_ms = tracked.next_due_ms
        if data is not None:
            # ENV-11: the receipt acknowledges exactly the bytes we sent
            if hashlib.sha256(data).digest() != record["envelope_sha256"]:
                counts["bad_receipt"] += 1
                log_line(logging.ERROR, "receipt acknowledges other bytes than sent", message_id=mid,
                         code="ENV-11 RECEIPT_DIGEST_MISMATCH")
                return
            # ENV-11: ... and is issued (signed) by the authority those bytes were sealed to, not by any
            # other authority this home happens to trust
            sent_to = peek_header(data)
            if sent_to is None or sent_to.recipient != issuer:
                counts["bad_receipt"] += 1
                log_line(logging.ERROR, "receipt signed by another authority than the recipient", message_id=mid,
                         code="ENV-11 RECEIPT_WRONG_ISSUER", issuer=issuer)
                return
        ack = record["outcome"] == "ACK"
        code = None if ack else str(record.get("reason_code") or "NACK")
        step = decide_message(state, attempts, Stimulus.ACK if ack else Stimulus.NACK, now_ms=now,
                              policy=self.policy, code=code, due_ms=due_ms)
        applied = apply_transition(conn, mid, expected_state=state, expected_attempts=attempts, transition=step,
                                   now_ms=now, receipt=ack)
        if not applied:  # cannot happen inside this write transaction; refuse to act rather than guess
            raise GatewayError(f"state of {mid} changed under the receipt handler", code="TRACKER_CAS_FAILED")
        events.append(event(self.authority, PROCESS, EventType.RECEIPT_RECEIVED, message_id=mid,
                            business_key=record.get("business_key"), document_type=record.get("document_type"),
                            envelope_sha256=record["envelope_sha256"], kafka_topic=r.topic,
                            kafka_partition=r.partition, kafka_offset=r.offset,
                            outcome="ack" if ack else "nack",
                            reason_code=code if not ack else
                            (step.reason if step.action is Action.LATE_RECEIPT else None)))
        if not ack:
            counts["nack"] += 1
            if step.action is Action.LATE_RECEIPT:
                counts["late_receipt"] = counts.get("late_receipt", 0) + 1
            log_line(logging.WARNING, "NACK received", message_id=mid, code=code)
            return
        if step.action is Action.DELIVER:
            counts["delivered"] += 1
            if published:
                latencies.append((now - int(published)) / 1000)
            events.append(event(self.authority, PROCESS, EventType.DELIVERED, message_id=mid,
                                business_key=record.get("business_key"),
                                document_type=record.get("document_type"), kafka_topic=r.topic,
                                kafka_partition=r.partition, kafka_offset=r.offset, attempt=attempts))
            log_line(logging.DEBUG, "delivered", message_id=mid)
            self._status_change(tracked.business_key or record.get("business_key"), StatusKind.DELIVERED, mid,
                                tracked.doc_type or record.get("document_type"), attempt=attempts)
            key = tracked.business_key or record.get("business_key")
            if key and str(record.get("reason_text") or "").startswith("LINKED_DECLARATION_PENDING:"):  # issue 15
                self._status.append(status_record(self.settings.topic_status, StatusChange(  # PEN-1: decided later
                    str(key), self.authority,
                    StatusKind.BUSINESS_OUTCOME, now_ms(), tracked.doc_type or record.get("document_type"),
                    message_id=mid, business_status="PENDING",
                    reasons=(("LINKED_DECLARATION_PENDING", str(record.get("reason_text") or "")[:500]),))))
        elif step.action is Action.LATE_RECEIPT:  # recorded (the event above), no second outcome
            self._status_change(tracked.business_key or record.get("business_key"), StatusKind.LATE_RECEIPT, mid,
                                tracked.doc_type or record.get("document_type"), attempt=attempts)
            counts["late_receipt"] = counts.get("late_receipt", 0) + 1
            log_line(logging.WARNING, "receipt after dead letter", message_id=mid)
        else:
            counts["duplicate_receipt"] += 1
        if step.action in (Action.DELIVER, Action.LATE_RECEIPT):  # issue 13: a Receipt v2's business outcome
            self._carried_outcome(record, tracked, r, events, counts)

    def _carried_outcome(self, record: dict[str, Any], tracked: Any, r: Incoming, events: list[AuditEvent],
                         counts: dict[str, int]) -> None:
        """Issue 13: the immediate business decision a Receipt v2 carries is the declaration's business
        outcome -- stored, audited and on the status feed, as a BusinessResponse's would be."""
        decision = receipt_decision(record)
        if decision is None:  # Receipt v1, or a decision still to come (a later BusinessResponse)
            return
        mid = str(record["message_id"])
        reasons = [{"code": c, "text": t} for c, t in decision.reasons]
        self.store.record_business(mid, decision.status, reasons)
        counts["business"] += 1
        business_key = tracked.business_key or record.get("business_key")
        doc_type = tracked.doc_type or record.get("document_type")
        events.append(event(self.authority, PROCESS, EventType.BUSINESS_RESPONSE, message_id=mid,
                            business_key=business_key, document_type=doc_type, kafka_topic=r.topic,
                            kafka_partition=r.partition, kafka_offset=r.offset, outcome=decision.status.lower(),
                            reason_code=decision.reasons[0][0] if decision.reasons else None))
        if business_key:
            self._status.append(status_record(self.settings.topic_status, StatusChange(
                str(business_key), self.authority, StatusKind.BUSINESS_OUTCOME, now_ms(),
                str(doc_type) if doc_type else None, message_id=mid, business_status=decision.status,
                reasons=tuple((c, t[:500]) for c, t in decision.reasons))))

    def _status_change(self, business_key: Any, kind: StatusKind, mid: str, doc_type: Any, *,
                       attempt: int | None, reasons: tuple[tuple[str, str], ...] = ()) -> None:
        if business_key:
            self._status.append(status_record(self.settings.topic_status, StatusChange(
                str(business_key), self.authority, kind, now_ms(), str(doc_type) if doc_type else None,
                message_id=mid, attempt=attempt, reasons=reasons)))

    def claims_status(self, claims: Claims) -> list[Outgoing]:
        """The status feed's records of a tick's claims (RESENT, DEAD_LETTERED)."""
        out: list[Outgoing] = []
        for m in claims.resend:
            if m.business_key:
                out.append(status_record(self.settings.topic_status, StatusChange(
                    m.business_key, self.authority, StatusKind.RESENT, now_ms(), m.doc_type, message_id=m.message_id,
                    attempt=m.attempts + 1)))
        for m, why in claims.dead:
            if m.business_key:
                out.append(status_record(self.settings.topic_status, StatusChange(
                    m.business_key, self.authority, StatusKind.DEAD_LETTERED, now_ms(), m.doc_type,
                    message_id=m.message_id, attempt=m.attempts, reasons=(("DEAD_LETTER", why[:500]),))))
        return out

    # --- resend / dead letter ------------------------------------------------------------------------
    def due(self, limit: int = 500, owned: set[tuple[str, int]] | None = None, *, now: int | None = None
            ) -> list[tuple[PendingMessage, str | None]]:
        """A SNAPSHOT of the pending messages past their due time (with ``owned``, only those whose exchange
        partition this instance consumes: N tracker instances share the state file and split the work).
        Nothing may be produced from it before :meth:`claim` re-checks each message."""
        return self.store.due(now_ms() if now is None else now, limit, owned)

    def unproduced_dead_letters(self, owned: set[tuple[str, int]] | None = None) -> list[tuple[PendingMessage, str]]:
        """Messages decided ``dead`` whose dead-letter record is not yet known to be produced (a crash or a
        Kafka failure between the claim and the send): produced again by the next tick."""
        return [(m, f"NACK {nack}" if nack and not is_retriable_nack(nack, self.policy)
                 else f"no receipt after {m.attempts} sends") for m, nack in self.store.unproduced_dead_letters(owned)]

    def is_permanent(self, last_nack: str | None) -> bool:
        return last_nack is not None and not is_retriable_nack(last_nack, self.policy)

    def claim(self, snapshot: Sequence[tuple[PendingMessage, str | None]], *, audit: AuditSink | None = None,
              now: int | None = None) -> Claims:
        """Decide each snapshot message (:func:`decide_message`, ``Stimulus.DUE``) and CLAIM the decision
        with the compare-and-set (:func:`apply_transition`) in ONE state transaction, whose audit events
        (``resent`` / ``dead_lettered``) are appended inside it before it commits (ADR 0400; a failed append
        claims nothing). A message whose state or attempts changed since the snapshot (a receipt was
        committed meanwhile, another instance claimed it) is left alone: only claimed messages may be
        produced (issue 9 item 11)."""
        at = now_ms() if now is None else now
        claims = Claims()
        with transaction(self.conn) as conn:
            for m, nack in snapshot:
                step = decide_message(MessageState.PENDING, m.attempts, Stimulus.DUE, now_ms=at, policy=self.policy,
                                      last_nack=nack, hold_until_ms=self.hold_until(m))  # issue 11: ADR 0601
                if not step.changes_state:
                    continue
                if not apply_transition(conn, m.message_id, expected_state=MessageState.PENDING,
                                        expected_attempts=m.attempts, transition=step, now_ms=at):
                    claims.lost.append(m)
                    continue
                if step.action is Action.AWAIT_EXPIRY:  # issue 11 (ADR 0601): no resend, no dead letter yet
                    claims.awaiting.append(m)
                    continue
                if step.action is Action.RESEND:
                    claims.resend.append(m)
                    claims.events.append(event(self.authority, PROCESS, EventType.RESENT, message_id=m.message_id,
                                               business_key=m.business_key, document_type=m.doc_type,
                                               kafka_topic=m.topic, attempt=m.attempts + 1))
                else:
                    why = step.reason or "dead letter"
                    claims.dead.append((m, why))
                    claims.events.append(event(self.authority, PROCESS, EventType.DEAD_LETTERED,
                                               message_id=m.message_id, business_key=m.business_key,
                                               document_type=m.doc_type,
                                               kafka_topic=self.settings.topic_dead_letter, attempt=m.attempts,
                                               outcome="dead", reason_code=why))
            if audit is not None and claims.events:
                audit(claims.events)
        return claims

    def hold_until(self, m: PendingMessage) -> int | None:
        """Issue 11 item 5 (ADR 0601): the earliest time a message whose sends are exhausted may be
        dead-lettered for "no receipt" -- once no copy of it can be accepted by the receiver any more (its
        envelope's expiry plus twice the clock skew, ENV-8). None: at once (``exchange_dead_letter_after =
        attempts``, or bytes whose header does not parse, which the receiver refuses anyway)."""
        if self.settings.exchange_dead_letter_after != "expiry":
            return None
        header = peek_header(m.data)  # our own committed bytes; only the expiry is read
        if header is None:
            return None
        skew_ms = int(DEFAULT_LIMITS.max_clock_skew.total_seconds() * 1000)
        return dead_letter_horizon_ms(int(header.expires.timestamp() * 1000), skew_ms)

    def dead_letters_produced(self, dead: Sequence[PendingMessage]) -> None:
        self.store.dead_letters_produced((m.message_id for m in dead), now_ms())

    def pending_count(self) -> int:
        return self.store.pending_count()


@dataclass
class Claims:
    """What one tick claimed: resends and dead letters to produce, their audit events, and the snapshot's
    messages whose compare-and-set failed (no longer pending, or claimed by another instance)."""

    resend: list[PendingMessage] = field(default_factory=list)
    dead: list[tuple[PendingMessage, str]] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)
    lost: list[PendingMessage] = field(default_factory=list)
    awaiting: list[PendingMessage] = field(default_factory=list)  # sends exhausted, waiting for expiry (ADR 0601)


def _with_attempt(headers: tuple[tuple[str, bytes], ...], attempt: int) -> tuple[tuple[str, bytes], ...]:
    return (*((k, v) for k, v in headers if k != H_ATTEMPT), (H_ATTEMPT, str(attempt).encode()))


class _Retry(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The fast pass failed on one receipt: roll it back and apply the batch again (``_receipts``)."""


TickHook = Callable[[Claims], Awaitable[None]]


async def _tick(tracker: ReceiptTracker, producer: Any, auditor: Auditor, ops: Ops,
                owned: set[tuple[str, int]] | None = None, *, after_claim: TickHook | None = None) -> Claims:
    """One resend / dead-letter round: snapshot -> claim (CAS + audit, one transaction) -> produce only what
    was claimed -> record the dead letters as produced. ``after_claim`` (tests) runs between claim and send."""
    settings = tracker.settings
    claims = tracker.claim(tracker.due(owned=owned), audit=auditor.append)
    for m in claims.awaiting:  # issue 11 (ADR 0601): logged once per message (its due moves to the horizon)
        log_line(logging.WARNING, "sends exhausted; dead letter only after the envelope expires",
                 message_id=m.message_id, attempts=m.attempts)
    leftover = [(m, why) for m, why in tracker.unproduced_dead_letters(owned)
                if all(m.message_id != d.message_id for d, _ in claims.dead)]
    if after_claim is not None:
        await after_claim(claims)
    dead = claims.dead + leftover
    if not claims.resend and not dead:
        return claims
    futures = []
    with kafka_boundary("resend"):
        for m in claims.resend:  # the SAME bytes, the SAME message id and key, the same topic
            futures.append(await producer.send(m.topic, value=m.data, key=m.key,
                                               headers=list(_with_attempt(m.headers, m.attempts + 1))))
        for m, why in dead:
            reasons = json.dumps({"code": "DEAD_LETTER", "why": why, "attempts": m.attempts,
                                  "message_id": m.message_id, "topic": m.topic})
            out = Outgoing(settings.topic_dead_letter, m.key, m.data, (*m.headers, (H_REASONS, reasons.encode())))
            futures.append(await producer.send(out.topic, value=out.value, key=out.key, headers=list(out.headers)))
        for st in tracker.claims_status(claims):  # the sender's status feed (at least once)
            futures.append(await producer.send(st.topic, value=st.value, key=st.key, headers=list(st.headers)))
        if futures:
            await asyncio.gather(*futures)
    # a crash or a Kafka failure before this line produces the dead letters again at the next tick (the
    # dead-letter topic is at-least-once, keyed by message id); a lost resend is repeated at its next due time
    tracker.dead_letters_produced([m for m, _ in dead])
    ops.count("resent", len(claims.resend))
    ops.count("dead_lettered", len(claims.dead))
    for m in claims.resend:
        log_line(logging.INFO, "resent", message_id=m.message_id, attempt=m.attempts + 1)
    for m, why in claims.dead:
        log_line(logging.ERROR, "dead-lettered", message_id=m.message_id, business_key=m.business_key,
                 attempts=m.attempts, why=why.replace(" ", "_"))
    return claims

async def resend_forever(tracker: ReceiptTracker, producer: Any, auditor: Auditor, ops: Ops, stop: asyncio.Event,
                         *, owned: Callable[[], set[tuple[str, int]]], tick_s: float,
                         on_pending: Callable[[int], None] = lambda n: None,
                         caught_up: Callable[[], bool] = lambda: True) -> None:
    """The tracker's resend / dead-letter task: one :func:`_tick` every ``tick_s`` until ``stop``.

    No tick runs before ``caught_up()`` (the connector: the consumer has joined and read its backlog once),
    so a restarted tracker reads the receipts that arrived while it was down before it decides that any
    message timed out. A Kafka failure is retried at the next tick. Any other failure (state database, audit
    log) stops the whole tracker (``stop`` is set, the error propagates): a tracker that keeps consuming
    receipts while its resend task is dead would silently never resend nor dead-letter again.
    """
    started = False
    try:
        while not stop.is_set():
            try:
                if not started:
                    with kafka_boundary("start producer"):
                        await producer.start()
                    started = True
                if caught_up():
                    await _tick(tracker, producer, auditor, ops, owned())
                on_pending(tracker.pending_count())
            except TransportError as exc:
                log_line(logging.WARNING, "resend tick failed; retrying", code=exc.code)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=tick_s)
    except asyncio.CancelledError:
        raise
    except BaseException:
        logging.getLogger(__name__).exception("resend task failed; stopping the receipt tracker")
        stop.set()
        raise


async def _resend_task(rt: Runtime, processor: Processor) -> None:
    """The tracker's background task beside its consumer loop: resends and dead letters."""
    tracker, ops, loop, auditor = processor, rt.ops, rt.loop, rt.auditor
    if not isinstance(tracker, ReceiptTracker) or ops is None or loop is None or auditor is None:
        raise TypeError("the resend task runs beside a started receipt tracker")
    producer = make_producer(rt.settings.bootstrap, client_id=rt.ident.client_id)
    tick_s = rt.options.tick_s if isinstance(rt.options, ReceiptsOptions) else ReceiptsOptions.tick_s

    def set_pending(n: int) -> None:
        tracker.pending_seen = n
        ops.pending.set(n)

    try:
        await resend_forever(tracker, producer, auditor, ops, rt.stop,
                             owned=lambda: {tp for tp in rt.assigned() if tp[0] in tracker.exchange_topics},
                             tick_s=tick_s, on_pending=set_pending,
                             caught_up=lambda: loop.stats.assigned is not None and loop.stats.empty_polls > 0)
    finally:
        with contextlib.suppress(Exception):
            await producer.stop()


def receipts_spec(authority: str = AUTHORITY) -> ConnectorSpec:
    """The receipt tracker of the sender ``authority``: its exchange topics (what was committed), rejections
    and receipts, at least once with idempotent state updates; resends and dead letters in a background task.
    Run it with ``Settings.for_role(authority, authority)``."""
    from xborder_gateway.connectors.outbound import role_name
    from xborder_gateway.transport import role_topics

    return ConnectorSpec(
        name=role_name("receipts", authority), authority=authority,
        topics=lambda s: (s.topic_exchange, s.topic_exchange_priority, s.topic_receipts, s.topic_rejected),
        guarantee=Guarantee.AT_LEAST_ONCE,
        processor=lambda rt: ReceiptTracker(rt.settings, rt.me, rt.trust, authority),
        started_line="receipt tracker started", background=_resend_task,
        creates=lambda s: role_topics(s, "receipts", authority))


async def run_receipts(settings: Settings, options: ReceiptsOptions, authority: str = AUTHORITY) -> int:
    """Run the receipt tracker of ``authority`` until SIGTERM; returns the exit code."""
    return await run_connector(settings.for_role(authority, authority), receipts_spec(authority), options)
