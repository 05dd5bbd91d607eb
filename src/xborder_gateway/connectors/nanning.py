"""``xborder run nanning`` (CN): the simulated Nanning Customs endpoint -- a real implementation with its
own keys (``keys/CN``), its own SQLite store (``settings.state_db("CN")``) and its own audit log.

The same code is the receiving endpoint of any authority (``xborder run inbound --authority A``, issue 10):
VN's endpoint opens CN's envelopes from ``xb.cn-vn.exchange`` with VN's keys, store and audit log, answers
on ``xb.vn-cn.receipts`` and runs VN's rule set with its mirror checks (``exchange/_mirror_store.MirrorDesk``:
an export whose IDA VN has not taken in yet gets its business response later, from the re-check tick).

Per envelope, priority lane first: open (ENV-1..ENV-9: decrypt, verify) -> de-duplicate (ENV-10) ->
Avro decode -> business checks (BIZ-1..3) -> a sealed ``Receipt`` (ACK) and a sealed ``BusinessResponse``
on ``xb.cn-vn.receipts``. The message id is recorded in ``envelope_replay`` in the SAME SQLite
transaction that stores those two answers' exact bytes, so:

- a duplicate (same id, same bytes) is answered with the ORIGINAL answers and never processed twice;
- a crash after the SQLite commit but before the Kafka commit replays the batch, which is then all
  duplicates: original answers again, no second processing.

Order per batch (ADR 0400, audit completeness): decide everything inside the open SQLite transaction ->
append the batch's audit events durably -> commit SQLite -> commit the Kafka transaction. A crash (or a
failed SQLite commit) after the audit append rolls the state back, so the redelivered batch is processed
again and its events are appended again -- a recognisable repeat (same message id, event type, Kafka
position and attempt), never a loss. A failed audit append rolls the state back too.

A refused envelope gets a NACK receipt (reason = the ENV rule) and is not recorded, so a corrected resend
is processed. Fault injection (tests, demos): ``--drop-rate --duplicate-rate --delay-ms --reject-rate
--crash-after N --offline-for SECONDS``; see :class:`Faults`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import random
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from xborder_gateway import avro
from xborder_gateway.audit import AuditEvent, EventType
from xborder_gateway.config import Settings
from xborder_gateway.connectors._common import (
    H_ATTEMPT,
    H_BUSINESS_KEY,
    H_DOC_TYPE,
    H_KIND,
    H_MESSAGE_ID,
    H_RUN,
    AuditSink,
    ConnectorOptions,
    event,
    log_line,
    now_ms,
)
from xborder_gateway.connectors._pending_endpoint import ExpiryTicker, PendingEndpoint
from xborder_gateway.connectors._runtime import (
    ConnectorSpec,
    Guarantee,
    Processor,
    ProcessResult,
    Runtime,
    run_connector,
)
from xborder_gateway.envelope import (
    EnvelopeOpenError,
    EnvelopeReplayError,
    LocalAuthority,
    OpenedEnvelope,
    SqliteReplayStore,
    TrustStore,
    make_receipt,
    peek_header,
    seal,
    seal_receipt,
)
from xborder_gateway.errors import ConfigError, GatewayError
from xborder_gateway.exchange import (
    CN_SCHEMA,
    AnswerBatch,
    BusinessDecision,
    EndpointStore,
    RuleSet,
    StoredAnswer,
    immediate_decision,
    rule_set_for,
)
from xborder_gateway.exchange._mirror_store import MirrorDesk, decision_of, mirror_config
from xborder_gateway.transport import (
    Incoming,
    Outgoing,
)

__all__ = ["CRASH_EXIT_CODE", "INTERNAL_ERROR", "Faults", "NanningOptions", "NanningProcessor", "nanning_spec",
           "run_nanning"]

AUTHORITY = "CN"
OFFICE = "CN-7220"  # Youyiguan customs, the receiving office named in receipts
#: the receiving office each authority's endpoint names in its receipts (VN: Huu Nghi border gate, Lang Son)
OFFICES = {"CN": OFFICE, "VN": "VN-HUUNGHI"}
PROCESS = "nanning"
BUSINESS_DOCUMENT_TYPE = "BUSINESS_RESPONSE"
TRANSIENT_NACK = "CN_TEMPORARILY_UNAVAILABLE"
INTERNAL_ERROR = "INTERNAL_ERROR"  # retriable NACK: the endpoint failed unexpectedly (issue 9 item 3)
CRASH_EXIT_CODE = 17
MIRROR_DOCUMENT_TYPE = "CN_EXPORT"  # what VN's mirror checks compare with its IDAs
MANIFEST_DOCUMENT_TYPE = "CN_MANIFEST"  # issue 15: waits at VN's endpoint for the exports it lists
MIRROR_WAITING = "MIRROR_WAITING"  # cn_processed status of an export whose business response is deferred


def mirror_desk_for(authority: str, conn: sqlite3.Connection, settings: Settings) -> MirrorDesk | None:
    """VN's endpoint checks CN's exports against the IDAs VN took in (issue 10 item 3); CN's has no mirror."""
    return MirrorDesk(conn, mirror_config(settings)) if authority == "VN" else None


@dataclass(frozen=True)
class Faults:
    """Fault injection. Rates are per envelope copy and drawn from ``random.Random(seed)``.

    drop_rate       the envelope is lost: no processing, no answer (the VN side must resend)
    duplicate_rate  the envelope arrives twice (the second copy must be answered with the original receipt)
    delay_ms        every answer waits this long (applied once per batch, before answering)
    reject_rate     the endpoint answers a transient NACK (``CN_TEMPORARILY_UNAVAILABLE``) without processing
    crash_after     the process dies (exit 17) once it has processed N envelopes, after its audit append
                    and SQLite commit and before its Kafka commit -- the worst moment for duplicates
    offline_for     the endpoint does not consume for its first SECONDS seconds
    """

    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    delay_ms: int = 0
    reject_rate: float = 0.0
    crash_after: int | None = None
    offline_for: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("drop_rate", "duplicate_rate", "reject_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"--{name.replace('_', '-')} {value} is not within [0, 1]", code="FAULT_RATE",
                                  hint="give a probability, e.g. 0.3")
        if self.delay_ms < 0 or self.offline_for < 0 or (self.crash_after is not None and self.crash_after < 1):
            raise ConfigError("fault durations must be >= 0 and --crash-after >= 1", code="FAULT_VALUE",
                              hint="fix the fault flag")


@dataclass(frozen=True)
class NanningOptions(ConnectorOptions):
    faults: Faults = Faults()


class NanningProcessor:
    """The endpoint's per-batch work over its SQLite store; no Kafka here."""

    def __init__(self, settings: Settings, me: LocalAuthority, trust: TrustStore, faults: Faults,  # noqa: PLR0917
                 rules: RuleSet | None = None, authority: str = AUTHORITY) -> None:
        from xborder_gateway.config import counterpart

        self.settings = settings
        self.authority = authority
        self.office = OFFICES[authority]
        self.counterpart = counterpart(authority)
        self.me = me
        self.trust = trust
        self.faults = faults
        self.rng = random.Random(faults.seed)  # noqa: S311 - fault injection, not security
        self.store = SqliteReplayStore(settings.state_db(authority))
        self.store.connection.executescript(CN_SCHEMA)
        self.answers = EndpointStore(self.store.connection)
        # the receiving authority's rules (CN: exchange/_rules_cn.py, configured from the settings)
        self.rules = rules if rules is not None else rule_set_for(authority, settings)
        self.processed = 0
        # issue 10: VN's mirror checks of CN's exports (None at CN's endpoint)
        self.mirror = mirror_desk_for(authority, self.store.connection, settings)
        # issue 15: PENDING vehicles, versions, later answers, releases (connectors/_pending_endpoint.py); at
        # VN's endpoint for CN's road manifests only (PEN-6: they follow the mirror outcomes of their exports),
        # CN's exports being decided by its mirror checks
        self.pending: PendingEndpoint | None = PendingEndpoint(
            settings, me, trust, self.rules, self.store.connection, authority=authority, process=PROCESS,
            outcome=self.mirror.outcome if self.mirror is not None else None)
        self._batch = self._new_answers()  # issue 13: replaced per batch (per transaction attempt)
        #: issue 13: the fast pass's cn_processed rows, written per batch (None: written per envelope)
        self._processed_rows: list[tuple[Any, ...]] | None = None
        self._answer_rows: list[tuple[str, list[StoredAnswer]]] = []  # issue 13: the batch's answers

    def _new_answers(self) -> AnswerBatch:
        """Issue 13: this attempt's answers, sealed together in the configured suite (exchange/_answers.py)."""
        return AnswerBatch(self.me, self.trust, suite=self.settings.envelope_suite)

    def close(self) -> None:
        self.store.close()

    # --- one batch ---------------------------------------------------------------------------------
    def handle(self, records: Sequence[Incoming], audit: AuditSink) -> ProcessResult:
        return self.process(records, audit=audit)

    def health(self) -> dict[str, Any]:
        return {"processed": self.processed}

    def process(self, records: Sequence[Incoming], *, audit: AuditSink | None = None) -> ProcessResult:
        """Handle one batch in ONE SQLite transaction; returns the answers, the audit events and counts.

        With ``audit`` (the connector passes :meth:`Auditor.append`), the events are appended durably
        INSIDE the still-open transaction, just before it commits: if the append fails the state rolls
        back (nothing is recorded as processed without its events); if the process dies after the append
        and before the commit, the redelivered batch is processed again and audited again (a repeat,
        never a loss). Without ``audit`` (unit tests) the caller gets the events after the commit.
        """
        outputs: list[Outgoing] = []
        events: list[AuditEvent] = []
        counts = {"processed": 0, "duplicate": 0, "refused": 0, "dropped": 0, "transient_nack": 0}
        # Within a batch, goods declarations are registered before the vehicle declarations that link them
        # (the priority lane stays first among equals: the sort is stable).
        ordered = sorted(records, key=lambda x: self.rules.batch_order(x.header_str(H_DOC_TYPE)))
        with self.store.transaction() as conn:
            outputs.extend(self._attempts(conn, ordered, events, counts))
            if audit is not None and events:
                # Audit before the state commit (ADR 0400): held write lock order is state -> audit, and
                # no writer of the CN audit log ever waits for this state file, so this cannot deadlock.
                audit(events)
        # committed: the message ids, their answers and (with ``audit``) their audit events are durable
        self.processed += counts["processed"]
        return ProcessResult(outputs, events, counts)

    def _attempts(self, conn: sqlite3.Connection, ordered: Sequence[Incoming], events: list[AuditEvent],
                  counts: dict[str, int]) -> list[Outgoing]:
        """The batch's envelopes inside the open transaction: poison isolation paid for by a failure only.

        Issue 13 item 4: the fast pass runs every envelope under ONE batch savepoint, its ``cn_processed``
        rows written per batch. An unexpected error on one envelope (what :meth:`_guarded` turns into an
        ``INTERNAL_ERROR`` NACK) rolls the pass back to that savepoint -- SQLite state and the in-memory
        events, counts, answers and fault draws alike (the generator's state is restored, so every draw
        repeats) -- and the batch runs again: an envelope that failed is answered from its recorded error
        without running it again, every other one runs again. So one bad envelope never fails its
        batch-mates (a921b26: poison messages never block a partition), as with a savepoint per envelope,
        which a healthy batch no longer pays for. An error outside every envelope (the batch's own writes)
        runs the batch once more as before issue 13 (``guarded``: a savepoint per envelope, immediate
        writes), where it fails the batch as it did then."""
        f = self.faults
        failed: dict[int, Exception] = {}  # copy number in the batch -> what the fast pass raised on it
        events_mark, counts0, rng0 = len(events), dict(counts), self.rng.getstate()
        guarded = False
        while True:
            self._batch = self._new_answers()  # issue 13: a fresh batch (secret) per attempt
            self._processed_rows = None if guarded else []
            conn.execute("SAVEPOINT batch")
            outputs: list[Outgoing] = []
            n = 0
            try:
                for r in ordered:
                    if f.drop_rate and self.rng.random() < f.drop_rate:
                        counts["dropped"] += 1
                        log_line(logging.INFO, "fault: dropped", message_id=r.header_str(H_MESSAGE_ID))
                        continue
                    for _ in range(2 if f.duplicate_rate and self.rng.random() < f.duplicate_rate else 1):
                        n += 1
                        if n in failed:
                            outputs.extend(self._failed(r, failed[n], events, counts))
                        elif guarded:
                            outputs.extend(self._guarded(conn, r, events, counts))
                        else:
                            try:
                                outputs.extend(self._one(conn, r, events, counts))
                            except Exception as exc:
                                failed[n] = exc
                                raise _Retry from exc
                if self._processed_rows:  # issue 13: the batch's cn_processed rows in one statement
                    self.answers.record_processed_many(self._processed_rows)
                self._answer_rows = []
                outputs.extend(self._batch.finish())  # issue 13: seal the batch's answers, store their bytes
                self.answers.record_answers_many(self._answer_rows)  # issue 13: per batch, not per message
            except Exception as exc:
                conn.execute("ROLLBACK TO batch")
                conn.execute("RELEASE batch")
                del events[events_mark:]
                counts.clear()
                counts.update(counts0)
                self.rng.setstate(rng0)
                if guarded:
                    raise
                guarded = not isinstance(exc, _Retry)  # the batch's own writes failed: once more as before
                continue
            conn.execute("RELEASE batch")
            return outputs

    def _failed(self, r: Incoming, exc: Exception, events: list[AuditEvent], counts: dict[str, int]
                ) -> list[Outgoing]:
        """An envelope the fast pass failed on: logged, audited and NACKed ``INTERNAL_ERROR``, nothing stored."""
        counts["failed"] = counts.get("failed", 0) + 1
        logging.getLogger(__name__).error("unexpected error on %s/%d@%d message_id=%s", r.topic, r.partition,
                                          r.offset, r.header_str(H_MESSAGE_ID), exc_info=exc)
        return self._internal_error(r, exc, events)

    def _guarded(self, conn: sqlite3.Connection, r: Incoming, events: list[AuditEvent],
                 counts: dict[str, int]) -> list[Outgoing]:
        """One envelope inside a savepoint: an unexpected error (anything but the documented
        ``EnvelopeOpenError`` / ``GatewayError`` paths) undoes only this envelope's writes, is logged, audited
        and answered with a NACK carrying the retriable code ``INTERNAL_ERROR`` (the tracker resends it) --
        never a silent skip, and a poison envelope never blocks the partition. (Issue 13: only the fallback
        pass of :meth:`_attempts` pays for this savepoint.)"""
        conn.execute("SAVEPOINT one")
        mark = len(events)
        answers_mark = self._batch.mark()
        try:
            out = self._one(conn, r, events, counts)
        except Exception as exc:  # noqa: BLE001 - logged with its traceback by _failed
            self._batch.rollback(answers_mark)
            conn.execute("ROLLBACK TO one")
            conn.execute("RELEASE one")
            del events[mark:]
            return self._failed(r, exc, events, counts)
        conn.execute("RELEASE one")
        return out

    def _internal_error(self, r: Incoming, exc: Exception, events: list[AuditEvent]) -> list[Outgoing]:
        """Issue 9 item 3: audit the failure and NACK it with ``INTERNAL_ERROR`` (retriable). Nothing is
        recorded for the message id, so the resend is processed. The receipt names the message id of the
        (unverified) header and the digest of the bytes received: the sender's tracker acts on it only if
        that digest is the one of the bytes it sent (ENV-11), so a forged envelope cannot steer it."""
        sha = _sha(r.value)
        header = peek_header(r.value)
        mid = str(header.message_id) if header is not None else r.header_str(H_MESSAGE_ID)
        events.append(event(self.authority, PROCESS, EventType.RECEIPT_SENT, message_id=mid, envelope_sha256=sha,
                            kafka_topic=r.topic, kafka_partition=r.partition, kafka_offset=r.offset,
                            attempt=_attempt(r), outcome="nack", reason_code=INTERNAL_ERROR))
        refusal = EnvelopeOpenError(f"unexpected {type(exc).__name__} at the endpoint", code=INTERNAL_ERROR,
                                    header=header, envelope_sha256=sha)
        sender = header.sender if header is not None and header.sender in self.trust.authorities else self.counterpart
        try:
            record = make_receipt(refusal, receiver=self.office, outcome="NACK", sender=sender,
                                  reason_text="the endpoint failed on this envelope; resend it later")
            sealed = seal_receipt(record, me=self.me, trust=self.trust, recipient=sender)
        except Exception:  # nobody to answer to, or answering fails too: the audit event and the log remain
            logging.getLogger(__name__).exception("cannot answer INTERNAL_ERROR message_id=%s", mid)
            return []
        return [self._answer(str(record["message_id"]), "receipt", sealed.data, mid=str(record["message_id"]),
                             run=r.header_str(H_RUN), business_key=None)]

    def _answer(self, topic_key: str, kind: str, data: bytes, *, mid: str, run: str | None,
                business_key: str | None) -> Outgoing:
        return Outgoing(self.settings.topic_receipts, topic_key.encode(), data, Outgoing.make_headers({
            H_KIND: kind, H_MESSAGE_ID: mid, H_RUN: run, H_BUSINESS_KEY: business_key}))

    def _one(self, conn: sqlite3.Connection, r: Incoming, events: list[AuditEvent],
             counts: dict[str, int]) -> list[Outgoing]:
        run = r.header_str(H_RUN)
        try:
            opened = open_envelope_checked(r.value, self.me, self.trust, self.store)
        except EnvelopeReplayError as exc:
            mid = str(exc.header.message_id) if exc.header is not None else "?"
            if exc.same_bytes:  # ENV-10: answer with the ORIGINAL answers, do not process again
                originals = self.answers.original_answers(mid)
                if not originals and self._batch.pending(mid):  # issue 13: a copy met in the same batch
                    self._batch.repeat(mid)
                # issue 15 hook: other messages' later answers only on the crash replay of the same record
                if self.pending is not None:
                    originals = self.pending.replay(conn, mid, (r.topic, r.partition, r.offset), originals)
                self.answers.record_duplicate(mid, run, now_ms())
                events.append(event(self.authority, PROCESS, EventType.DUPLICATE, message_id=mid,
                                    envelope_sha256=exc.envelope_sha256, kafka_topic=r.topic,
                                    kafka_partition=r.partition, kafka_offset=r.offset, attempt=_attempt(r),
                                    outcome="duplicate", reason_code=exc.code))
                counts["duplicate"] += 1
                log_line(logging.INFO, "duplicate answered with original receipt", message_id=mid)
                return [Outgoing(a.topic, a.key, a.data, a.headers) for a in originals]
            log_line(logging.ERROR, "message id reused for other bytes", message_id=mid, code=exc.code)
            return self._refuse(exc, r, run, events, counts)
        except EnvelopeOpenError as exc:
            return self._refuse(exc, r, run, events, counts)

        mid = str(opened.message_id)
        # decrypted and signature-checked (ENV-1..ENV-10): the opened step, with the envelope's key ids
        events.append(event(self.authority, PROCESS, EventType.OPENED, message_id=mid,
                            document_type=opened.header.document_type, envelope_sha256=opened.sha256,
                            signing_key_id=opened.header.signing_key_id.hex(),
                            encryption_key_id=opened.header.encryption_key_id.hex(),
                            kafka_topic=r.topic, kafka_partition=r.partition, kafka_offset=r.offset,
                            attempt=_attempt(r)))
        f = self.faults
        if f.reject_rate and self.rng.random() < f.reject_rate:
            record = make_receipt(opened, receiver=self.office, outcome="NACK", reason_code=TRANSIENT_NACK,
                                  reason_text="simulated rejection (--reject-rate): resend later")
            counts["transient_nack"] += 1
            sealed_nack = seal_receipt(record, me=self.me, trust=self.trust)
            # every step the endpoint takes is in its audit log, the (not recorded) transient NACK included
            events.append(event(self.authority, PROCESS, EventType.RECEIPT_SENT, message_id=mid,
                                document_type=opened.header.document_type, envelope_sha256=opened.sha256,
                                kafka_topic=r.topic, kafka_partition=r.partition, kafka_offset=r.offset,
                                attempt=_attempt(r), outcome="nack", reason_code=TRANSIENT_NACK))
            return [self._answer(mid, "receipt", sealed_nack.data, mid=mid, run=run, business_key=None)]
        return self._process(conn, opened, r, run=run, events=events, counts=counts)

    def _refuse(self, exc: EnvelopeOpenError, r: Incoming, run: str | None, events: list[AuditEvent],
                counts: dict[str, int]) -> list[Outgoing]:
        counts["refused"] += 1
        header = exc.header
        sender = header.sender if header is not None and header.sender in self.trust.authorities else self.counterpart
        record = make_receipt(exc, receiver=self.office, outcome="NACK", sender=sender)
        mid = str(record["message_id"])
        events.append(event(self.authority, PROCESS, EventType.REJECTED, message_id=mid,
                            envelope_sha256=exc.envelope_sha256, kafka_topic=r.topic, kafka_partition=r.partition,
                            kafka_offset=r.offset, attempt=_attempt(r), outcome="refused", reason_code=exc.code))
        log_line(logging.WARNING, "envelope refused", message_id=mid, code=exc.code)
        try:
            sealed = seal_receipt(record, me=self.me, trust=self.trust, recipient=sender)
        except GatewayError as seal_exc:  # nobody to answer to (untrusted sender): the audit event remains
            log_line(logging.ERROR, "cannot answer refused envelope", message_id=mid, code=seal_exc.code)
            return []
        return [self._answer(mid, "receipt", sealed.data, mid=mid, run=run, business_key=None)]

    def business_response(self, mid: str, business_key: str | None, doc_type: str, decision: BusinessDecision, *,
                          recipient: str, now: datetime) -> bytes:
        """The sealed ``BusinessResponse`` for message ``mid`` (sealed to ``recipient``, its sender)."""
        response = {"message_id": mid, "business_key": business_key or "", "document_type": doc_type,
                    "status": decision.status, "reasons": decision.as_reasons(), "responded_at": now}
        payload = avro.encode("BusinessResponse", response)
        return seal(payload, sender=self.me, recipient=recipient, trust=self.trust,
                    document_type=BUSINESS_DOCUMENT_TYPE, schema_fingerprint=payload[2:10], now=now).data

    def _decide(self, conn: sqlite3.Connection, doc_type: str, schema_name: str, record: dict[str, Any], *,
                business_key: str | None, mid: str, sender: str, run: str | None, events: list[AuditEvent],
                position: tuple[str, int, int]) -> tuple[BusinessDecision | None, list[Outgoing], bool, str | None]:
        """The receiving authority's decision on one verified, decoded document: (decision or None when it is
        answered later by the mirror re-check, the later answers for OTHER messages it causes, whether it is a
        PENDING vehicle, the receipt's reason text)."""
        if (self.pending is not None and self.mirror is not None and doc_type == MANIFEST_DOCUMENT_TYPE
                and schema_name == "CnRoadManifest" and business_key):  # issue 15 at VN: waits for its exports
            step = self.pending.manifest(conn, doc_type, record, business_key=business_key, message_id=mid,
                                         sender=sender, run=run)
            return step.decision, list(step.later), step.pending, step.receipt_text
        if self.pending is None or self.mirror is not None:  # issue 10: VN's endpoint -- mirror checks
            later: list[Outgoing] = []
            decision: BusinessDecision | None = self.rules.decide(doc_type, record, lookup=self.answers.declaration)
            if doc_type == MIRROR_DOCUMENT_TYPE and self.mirror is not None:
                if schema_name != "CnExportDeclaration":  # MIR-2: only an export declaration is compared
                    decision = BusinessDecision("REJECTED", (("DOCUMENT_SCHEMA_MISMATCH", f"a {doc_type} must carry "
                                                              f"a CnExportDeclaration, not {schema_name}"),))
                else:
                    checked = self.mirror.check(mid, run, record, now_ms=now_ms())
                    decision = None if checked.waiting else decision_of(checked)  # None: the re-check answers
                    if self.pending is not None and business_key:  # issue 15: the manifests it completes
                        later = self.pending.linked_arrived(conn, doc_type, record, business_key=business_key,
                                                            message_id=mid, events=events, position=position)
            if self.rules.remembers(doc_type) and business_key:
                self.answers.record_declaration(business_key, doc_type, record.get("gross_weight_kg"), mid)
            return decision, later, False, None
        # issue 15 hook: the decision by version, PENDING for a waiting vehicle, and the later answers (other
        # messages' business responses) this message causes -- connectors/_pending_endpoint.py
        step = self.pending.step(conn, doc_type, record, business_key=business_key, message_id=mid, sender=sender,
                                 run=run, events=events, position=position)
        return step.decision, list(step.later), step.pending, step.receipt_text

    def _process(self, conn: sqlite3.Connection, opened: OpenedEnvelope, r: Incoming, *, run: str | None,
                 events: list[AuditEvent], counts: dict[str, int]) -> list[Outgoing]:
        header = opened.header
        mid = str(header.message_id)
        doc_type = header.document_type
        now = datetime.now(UTC)
        try:
            decoded = avro.decode(opened.payload)
            record: dict[str, Any] = dict(decoded.record)
        except GatewayError as exc:  # verified but undecodable: a permanent NACK, recorded like an answer
            business_key = None
            receipt = make_receipt(opened, receiver=self.office, outcome="NACK", reason_code=exc.code,
                                   reason_text=exc.message[:300])
            answers = [("receipt", self._batch.receipt(receipt))]
            status = "NACK"
            later: list[Outgoing] = []
        else:
            business_key = str(record.get("declaration_number") or record.get("manifest_number") or "") or None
            decision, later, pending_vehicle, receipt_text = self._decide(
                conn, doc_type, decoded.schema_name, record, business_key=business_key, mid=mid,
                sender=header.sender, run=run, events=events, position=(r.topic, r.partition, r.offset))
            # issue 13: an immediate decision rides in the Receipt v2 (one answer per declaration); a PENDING
            # vehicle's (PEN-1) or a waiting export's receipt carries none: its business response comes later
            carried = None if decision is None or pending_vehicle else immediate_decision(
                decision.status, decision.reasons, receipt_version=self.settings.envelope_receipt_version, at=now)
            receipt = make_receipt(opened, receiver=self.office, outcome="ACK", business_key=business_key,
                                   received_at=now, reason_text=receipt_text, decision=carried)
            answers = [("receipt", self._batch.receipt(receipt))]
            if decision is None:  # deferred: the receipt now, the business response once the mirror decides
                status = MIRROR_WAITING
            else:
                if carried is None and not pending_vehicle:
                    response = {"message_id": mid, "business_key": business_key or "", "document_type": doc_type,
                                "status": decision.status, "reasons": decision.as_reasons(), "responded_at": now}
                    payload = avro.encode("BusinessResponse", response)
                    answers.append(("business-response", self._batch.document(
                        payload, recipient=header.sender, document_type=BUSINESS_DOCUMENT_TYPE)))
                status = decision.status
                events.append(event(self.authority, PROCESS, EventType.BUSINESS_RESPONSE, message_id=mid,
                                    business_key=business_key, document_type=doc_type, kafka_topic=r.topic,
                                    kafka_partition=r.partition, kafka_offset=r.offset, attempt=_attempt(r),
                                    outcome=status.lower(),
                                    reason_code=decision.reasons[0][0] if decision.reasons else None))

        def finish(get: Any) -> list[Outgoing]:  # issue 13: once the batch's answers are sealed
            outputs = [self._answer(mid, kind, get(slot).data, mid=mid, run=run, business_key=business_key)
                       for kind, slot in answers]
            outputs += later  # issue 15: in this batch's transaction, and replayed with this message's answers
            # issue 13: stored with the batch's other answers (EndpointStore.record_answers_many)
            self._answer_rows.append((mid, [StoredAnswer(o.topic, o.key, o.value, o.headers) for o in outputs]))
            return outputs

        self._batch.then(mid, finish)
        processed = (mid, run, doc_type, business_key, status, now_ms())
        if self._processed_rows is not None:  # issue 13: the fast pass writes them per batch
            self._processed_rows.append(processed)
        else:
            self.answers.record_processed(message_id=mid, run=run, doc_type=doc_type, business_key=business_key,
                                          status=status, received_ms=processed[-1])
        # ENV-10: recorded in the same transaction as the answers
        SqliteReplayStore.remember_on(conn, header, opened.sha256, now)
        events.append(event(self.authority, PROCESS, EventType.VERIFIED, message_id=mid, business_key=business_key,
                            document_type=doc_type, envelope_sha256=opened.sha256,
                            payload_sha256=_sha(opened.payload), signing_key_id=header.signing_key_id.hex(),
                            kafka_topic=r.topic, kafka_partition=r.partition, kafka_offset=r.offset,
                            attempt=_attempt(r)))
        events.append(event(self.authority, PROCESS, EventType.RECEIPT_SENT, message_id=mid, business_key=business_key,
                            document_type=doc_type, outcome="ack" if status != "NACK" else "nack",
                            kafka_topic=self.settings.topic_receipts, attempt=_attempt(r)))
        counts["processed"] += 1
        log_line(logging.DEBUG, "processed", message_id=mid, business_key=business_key, status=status)
        return []


class _Retry(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The fast pass failed on one envelope: roll it back and run the batch again (``_attempts``)."""


def _attempt(r: Incoming) -> int | None:
    """The copy's ``xbg-attempt`` header (1 = first send), as the sender labelled it (it is not signed);
    with the message id and the Kafka position it makes a repeated audit event recognisable."""
    value = r.header_str(H_ATTEMPT)
    return int(value) if value and len(value) <= 6 and value.isascii() and value.isdigit() else None


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def open_envelope_checked(data: bytes, me: LocalAuthority, trust: TrustStore, store: SqliteReplayStore
                          ) -> OpenedEnvelope:
    from xborder_gateway.envelope import open_envelope

    return open_envelope(data, me=me, trust=trust, replay=store)


async def _offline(rt: Runtime) -> bool:
    """``--offline-for``: do not consume for the first SECONDS (False: stopped meanwhile, exit 0)."""
    faults = _faults(rt)
    if faults.offline_for:
        log_line(logging.WARNING, "fault: offline", seconds=faults.offline_for)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rt.stop.wait(), timeout=faults.offline_for)
    return not rt.stop.is_set()


async def _delay(rt: Runtime) -> None:
    if _faults(rt).delay_ms:
        await asyncio.sleep(_faults(rt).delay_ms / 1000)


def _crash_after(rt: Runtime, processor: Processor, _result: ProcessResult) -> None:
    crash_after = _faults(rt).crash_after
    processed = processor.health()["processed"]
    if crash_after is not None and processed >= crash_after:
        log_line(logging.ERROR, "fault: crashing (--crash-after)", processed=processed)
        logging.shutdown()
        os._exit(CRASH_EXIT_CODE)  # no cleanup on purpose: the Kafka transaction stays open


def _faults(rt: Runtime) -> Faults:
    return rt.options.faults if isinstance(rt.options, NanningOptions) else Faults()


def nanning_spec(authority: str = AUTHORITY) -> ConnectorSpec:
    """The receiving endpoint of ``authority`` (default CN, ``run nanning``): the counterpart's exchange topics
    (priority lane first) -> sealed answers, exactly once. Run it with ``Settings.for_role(authority,
    counterpart)``. VN's endpoint also runs the mirror re-check tick beside its loop."""
    from xborder_gateway.connectors._mirror_tick import mirror_tick_task
    from xborder_gateway.transport import role_topics

    return ConnectorSpec(
        name="nanning" if authority == "CN" else f"inbound.{authority.lower()}", authority=authority,
        topics=lambda s: (s.topic_exchange_priority, s.topic_exchange),
        priority_topics=lambda s: frozenset({s.topic_exchange_priority}), guarantee=Guarantee.EXACTLY_ONCE,
        processor=lambda rt: NanningProcessor(rt.settings, rt.me, rt.trust, _faults(rt), authority=authority),
        started_line="nanning endpoint started" if authority == "CN" else f"{authority} inbound endpoint started",
        before_start=_offline, before_batch=_delay, after_batch=_crash_after,
        background=mirror_tick_task if authority == "VN" else None,
        creates=lambda s: role_topics(s, "inbound", authority), ticker=_grace_ticker)


def _grace_ticker(rt: Runtime, processor: Processor) -> ExpiryTicker | None:
    """Issue 15: the grace-period tick (PEN-3), produced by the loop between batches (both endpoints: at VN's
    it expires CN's road manifests)."""
    if not isinstance(processor, NanningProcessor) or processor.pending is None:
        return None
    return ExpiryTicker(processor.pending, processor.store, rt.auditor.append if rt.auditor else None)


async def run_nanning(settings: Settings, options: NanningOptions, authority: str = AUTHORITY) -> int:
    """Run the receiving endpoint of ``authority`` until SIGTERM (or ``--crash-after``); returns the exit code."""
    from xborder_gateway.config import counterpart

    return await run_connector(settings.for_role(authority, counterpart(authority)), nanning_spec(authority),
                               options)
