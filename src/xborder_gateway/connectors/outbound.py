"""``xborder run outbound --authority A``: intake -> validate -> seal -> exchange topic, exactly once.

One code path for both senders (issue 10 item 3), parameterised by the authority and its intake kind:
VN takes VNACCS-style XML (``translate_xml``: validate, map, Avro-encode); CN takes framed Avro of an agreed
schema (``CnExportDeclaration`` / ``CnRoadManifest``) checked by ``take_cn_avro`` (CNA-1..8) and sealed as
received. Topics are the role's view of the settings (``Settings.for_role``): VN reads
``vn.declarations.raw`` and seals for CN on ``xb.vn-cn.exchange``; CN reads ``cn.declarations.raw`` and seals
for VN on ``xb.cn-vn.exchange``. VN's outbound also records every IDA it takes in (``xbg_imports``, in
the batch's state transaction): VN's inbound mirror checks read them from VN's own site.

One Kafka transaction per batch holds the sealed envelopes, the rejected records and the intake offsets
(:class:`~xborder_gateway.transport.TransactionalBatchLoop`). Per record:

- valid: ``translate_xml`` -> ``seal`` (sign for VN, encrypt to CN) -> ``xb.vn-cn.exchange``, or the
  priority lane ``xb.vn-cn.exchange.priority`` when the document is perishable; key = message id;
- invalid (IntakeError / MappingError / a payload the envelope refuses): the raw bytes go to
  ``vn.declarations.rejected`` with JSON reasons in the ``xbg-reasons`` header. Nothing a sender puts in a
  record can stop the loop: a poison message never blocks its partition;
- a duplicate submission -- the exact bytes of a declaration already taken in from OTHER intake
  coordinates (a sender retrying a send) -- is rejected the same way with ``DUPLICATE_SUBMISSION``; a redo
  of the same coordinates (aborted transaction) is processed again. The check's state
  (``xbg_submissions`` in the VN state database) is committed before the Kafka transaction: ADR 0401.

The batch's audit events (sealed / rejected) are appended durably before its transaction commits. If the
transaction is then redone (crash, broker failure), the redo seals new envelopes under new message ids
and the audit log holds a ``sealed`` event for an envelope that was never committed; the receipt tracker
only tracks what read_committed consumers see (see docs/exchange.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
    H_SOURCE,
    H_TRUNCATED,
    AuditSink,
    ConnectorOptions,
    event,
    log_line,
    now_ms,
)
from xborder_gateway.connectors._crash import crash_in_transaction
from xborder_gateway.connectors._runtime import ConnectorSpec, Guarantee, ProcessResult, run_connector
from xborder_gateway.envelope import BatchSealer, LocalAuthority, TrustStore
from xborder_gateway.errors import EnvelopeError, GatewayError, IntakeError, MappingError
from xborder_gateway.exchange import StatusChange, StatusKind, StatusVehicle, status_record, transaction, unknown_key
from xborder_gateway.exchange._answers import new_batch_sealer, seal_batch
from xborder_gateway.exchange._mirror_store import MIRROR_SENDER_SCHEMA, record_import
from xborder_gateway.exchange._state import (
    VN_SCHEMA,
    IntakeCoordinates,
    PriorSubmission,
    SubmissionDecision,
    connect,
    decide_submission,
    forget_submission_at,
    lookup_submission,
    purge_submissions,
    record_submission,
)
from xborder_gateway.intake import IntakeLimits
from xborder_gateway.transport import (
    INTAKE_MAX_MESSAGE_BYTES,
    Incoming,
    Outgoing,
)

__all__ = ["CN_DOCUMENT_TYPES", "DuplicateSubmissionError", "OutboundOptions", "OutboundProcessor", "outbound_spec",
           "role_name", "run_outbound"]

AUTHORITY = "VN"  # the default sender (today's `run outbound`)
COUNTERPART = "CN"
PROCESS = "outbound"
#: document type in the envelope header of each agreed CN schema (the intake takes nothing else: CNA-3)
CN_DOCUMENT_TYPES = {"CnExportDeclaration": "CN_EXPORT", "CnRoadManifest": "CN_MANIFEST"}


@dataclass(frozen=True)
class OutboundOptions(ConnectorOptions):
    """Options of ``xborder run outbound``. ``crash_after`` (tests, issue 11): die (exit 17) once N records
    were produced inside an open transaction, before its commit -- an aborted transaction on demand."""

    crash_after: int | None = None


#: bounds of what a rejected record copies from its intake record besides the raw bytes, so that it always
#: fits on the rejected topic (a record too large for it would fail its batch's commit again and again)
_REASONS_MAX = 32 * 1024
_COPIED_HEADER_MAX = 256


def _small(value: bytes | None, limit: int = _COPIED_HEADER_MAX) -> bytes | None:
    return value if value is not None and len(value) <= limit else None


def _rejected_record(topic: str, r: Incoming, exc: GatewayError, source: str, published: bytes) -> Outgoing:
    """The rejected topic's record for ``r``: its raw bytes, key and the JSON reasons -- bounded to fit."""
    reasons = json.dumps(_reasons(exc), ensure_ascii=False, default=str)
    if len(reasons.encode()) > _REASONS_MAX:
        reasons = json.dumps({"code": exc.code[:200], "message": exc.message[:2000], "fault": str(exc.fault)[:200],
                              "hint": (exc.hint or "")[:2000], "truncated": True}, ensure_ascii=False, default=str)
    key = r.key  # the intake record fitted with it; it is not copied into a header when long
    value = r.value
    budget = INTAKE_MAX_MESSAGE_BYTES - len(key or b"")
    truncated = None
    if len(value) > budget:  # only from an intake topic created outside the gateway with a larger limit
        truncated = str(len(value))
        value = value[:budget]
    return Outgoing(topic, key, value, Outgoing.make_headers({
        H_REASONS: reasons, H_SOURCE: source, H_RUN: _small(r.header(H_RUN)),
        H_PUBLISHED_MS: _small(published, 32), H_BUSINESS_KEY: _small(r.key), H_TRUNCATED: truncated,
    }))


def _reasons(exc: GatewayError) -> dict[str, Any]:
    to_dict = getattr(exc, "to_dict", None)
    if callable(to_dict):
        data = to_dict()
        if isinstance(data, dict):
            data.setdefault("code", exc.code)
            data.setdefault("fault", exc.fault)
            return data
    return {"code": exc.code, "message": exc.message, "fault": exc.fault, "hint": exc.hint}


class DuplicateSubmissionError(IntakeError):
    """The exact bytes of a document already taken in from another intake record (ADR 0401)."""

    default_code = "DUPLICATE_SUBMISSION"

    def __init__(self, business_key: str, raw_sha256: bytes, prior: PriorSubmission) -> None:
        first = f"first taken in at {prior.at}" + (f" as message {prior.message_id}" if prior.message_id else "")
        super().__init__(
            f"declaration {business_key} with these exact bytes (sha256 {raw_sha256.hex()}) was already submitted: "
            f"{first}; it is not sent again",
            hint="nothing to do if the sender retried a send; to change the declaration, publish the amended "
                 "document (other bytes)")
        self.business_key = business_key
        self.raw_sha256 = raw_sha256
        self.prior = prior

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "fault": self.fault, "hint": self.hint,
                "business_key": self.business_key, "raw_sha256": self.raw_sha256.hex(),
                "first_source": str(self.prior.at), "first_message_id": self.prior.message_id,
                "first_seen_ms": self.prior.first_seen_ms}


#: how often the outbound connector purges submissions older than the retention window
_PURGE_EVERY_MS = 3_600_000


@dataclass
class _Taken:
    """One intake record after translate + seal, before the duplicate check decided its fate."""

    r: Incoming
    at: IntakeCoordinates
    raw_sha: bytes
    received: AuditEvent
    doc: Any = None
    sealed: Any = None
    error: GatewayError | None = None


class OutboundProcessor:
    """The per-batch work, without Kafka: records in, records out plus audit events (testable alone).

    It owns a connection to the VN state database (``settings.state_db("VN")``, WAL, shared with the
    receipt tracker) for the duplicate-submission check: one ``BEGIN IMMEDIATE`` transaction per batch,
    committed before :meth:`process` returns, i.e. before the batch's Kafka transaction (ADR 0401).
    """

    def __init__(self, settings: Settings, me: LocalAuthority, trust: TrustStore, authority: str = AUTHORITY
                 ) -> None:
        from xborder_gateway.config import counterpart

        self.settings = settings
        self.me = me
        self.trust = trust
        self.authority = authority
        self.counterpart = counterpart(authority)
        self.db = connect(settings.state_db(authority), VN_SCHEMA + MIRROR_SENDER_SCHEMA)
        self._window_ms = int(settings.exchange_duplicate_window_days * 86_400_000)
        self.limits = IntakeLimits.from_settings(settings)  # XML-1/6/7: the configured bounds, not the defaults
        self._next_purge_ms = 0

    def close(self) -> None:
        self.db.close()

    def _take(self, raw: bytes, source: str) -> Any:
        """The intake of this sender: XML through the mapping (VN), or agreed framed Avro (CN)."""
        if self.authority == "CN":
            from xborder_gateway.intake import take_cn_avro

            return _CnDocument(take_cn_avro(raw, source=source))
        from xborder_gateway.documents import translate_xml

        return translate_xml(raw, source=source, limits=self.limits)

    def _translate_and_seal(self, raw: bytes, source: str, sealer: BatchSealer) -> tuple[Any, Any]:
        try:
            doc = self._take(raw, source)
            # issue 13: queued in this attempt's batch (suite v2: sealed together by seal_batch); every
            # per-envelope refusal (ENV-1/2/8/9) is raised here, so one bad document is rejected alone
            sealed = sealer.add(doc.payload, document_type=doc.doc_type, schema_fingerprint=doc.schema_fingerprint,
                                priority=1 if doc.perishable else 0)
        except GatewayError:
            raise
        except Exception as exc:  # a bug met by some input must not block the partition (poison message)
            logging.getLogger(__name__).exception("unexpected error translating %s", source)
            raise MappingError(f"unexpected {type(exc).__name__} while translating: {exc}",
                               code="INTERNAL_TRANSLATION_ERROR",
                               hint="a gateway bug; the raw document is kept on the rejected topic") from exc
        return doc, sealed

    def _check_submissions(self, taken: Sequence[_Taken]) -> None:
        """The duplicate-submission check of a batch in ONE SQLite transaction (one indexed lookup and one
        insert per sealed record), committed here -- before the audit append and the Kafka commit."""
        now = now_ms()
        with transaction(self.db) as db:  # the write lock first: two instances never both see "new"
            if now >= self._next_purge_ms:  # first: what is older than the window is no duplicate any more
                purged = purge_submissions(db, now - self._window_ms)
                self._next_purge_ms = now + _PURGE_EVERY_MS
                if purged:
                    log_line(logging.INFO, "forgot old submissions", count=purged)
            for t in taken:
                if t.error is not None:  # rejected on this try: it holds no bytes (even if a first try did)
                    forget_submission_at(db, t.at)
                    continue
                key = t.doc.business_key
                prior = lookup_submission(db, key, t.raw_sha)
                decision = decide_submission(prior, t.at)
                if decision is SubmissionDecision.DUPLICATE and prior is not None:
                    t.error = DuplicateSubmissionError(key, t.raw_sha, prior)
                else:  # NEW, or REDO of the same coordinates: the aborted try's envelope was never seen
                    record_submission(db, key, t.raw_sha, t.at, message_id=str(t.sealed.message_id), now_ms=now)
                    if t.doc.doc_type == "IDA":  # the mirror checks' VN side (issue 10 item 3), same transaction
                        record_import(db, t.doc.values, now_ms=now)

    def handle(self, records: Sequence[Incoming], audit: AuditSink) -> ProcessResult:
        """The runtime's entry: process, then append the events (AUD-5: durable before the transaction
        commits the intake offsets)."""
        result = self.process(records)
        audit(result.events)
        return result

    def health(self) -> dict[str, Any]:
        return {}

    def process(self, records: Sequence[Incoming]) -> ProcessResult:
        s = self.settings
        taken: list[_Taken] = []
        sealer = new_batch_sealer(self.me, self.counterpart, self.trust, s.envelope_suite)  # issue 13: per attempt
        for r in records:
            at = IntakeCoordinates(r.topic, r.partition, r.offset)
            raw_sha = hashlib.sha256(r.value).digest()
            # every step is an audit entry (received -> validated -> sealed, or received -> rejected)
            received = event(self.authority, PROCESS, EventType.RECEIVED, raw_sha256=raw_sha,
                             business_key=r.key.decode("utf-8", "replace") if r.key else None,
                             kafka_topic=r.topic, kafka_partition=r.partition, kafka_offset=r.offset)
            t = _Taken(r, at, raw_sha, received)
            try:
                t.doc, t.sealed = self._translate_and_seal(r.value, str(at), sealer)
            except (IntakeError, MappingError, EnvelopeError) as refused:
                t.error = refused
            taken.append(t)
        seal_batch(sealer, taken)  # issue 13: one signature and one HPKE encapsulation for the batch (v2)
        self._check_submissions(taken)

        outputs: list[Outgoing] = []
        events: list[AuditEvent] = []
        counts = {"sealed": 0, "rejected": 0, "priority": 0, "duplicate_submission": 0}
        for t in taken:
            r = t.r
            source = str(t.at)
            run = r.header(H_RUN)
            published = r.header(H_PUBLISHED_MS) or str(r.timestamp_ms).encode()
            events.append(t.received)
            if t.error is not None:
                exc = t.error
                outputs.append(_rejected_record(s.topic_rejected, r, exc, source, published))
                events.append(event(self.authority, PROCESS, EventType.REJECTED, raw_sha256=t.raw_sha,
                                    business_key=r.key.decode("utf-8", "replace") if r.key else None,
                                    kafka_topic=r.topic, kafka_partition=r.partition, kafka_offset=r.offset,
                                    outcome="rejected", reason_code=exc.code))
                # the sender's status feed (issue 10 item 4), committed in the same transaction
                outputs.append(status_record(s.topic_status, StatusChange(
                    _status_key(r), self.authority, StatusKind.REJECTED, now_ms(),
                    reasons=((exc.code, str(exc.message)[:_MAX_STATUS_REASON_TEXT]),),
                    intake=(r.topic, r.partition, r.offset))))
                if isinstance(exc, DuplicateSubmissionError):
                    counts["duplicate_submission"] += 1
                    log_line(logging.WARNING, "duplicate submission rejected", source=source,
                             business_key=exc.business_key, first_source=exc.prior.at,
                             first_message_id=exc.prior.message_id)
                else:
                    log_line(logging.INFO, "rejected", source=source, code=exc.code)
                counts["rejected"] += 1
                continue
            doc, sealed = t.doc, t.sealed
            mid = str(sealed.message_id)
            payload_sha = hashlib.sha256(doc.payload).digest()
            events.append(event(self.authority, PROCESS, EventType.VALIDATED, business_key=doc.business_key,
                                document_type=doc.doc_type, raw_sha256=t.raw_sha, payload_sha256=payload_sha,
                                kafka_topic=r.topic, kafka_partition=r.partition, kafka_offset=r.offset))
            topic = s.topic_exchange_priority if doc.perishable else s.topic_exchange
            outputs.append(Outgoing(topic, mid.encode(), sealed.data, Outgoing.make_headers({
                H_MESSAGE_ID: mid, H_DOC_TYPE: doc.doc_type, H_BUSINESS_KEY: doc.business_key,
                H_RUN: _small(run), H_PUBLISHED_MS: _small(published, 32), H_ATTEMPT: "1",
            })))
            events.append(event(self.authority, PROCESS, EventType.SEALED, message_id=mid,
                                business_key=doc.business_key, document_type=doc.doc_type, raw_sha256=t.raw_sha,
                                payload_sha256=payload_sha, envelope_sha256=sealed.sha256,
                                signing_key_id=sealed.header.signing_key_id.hex(),
                                encryption_key_id=sealed.header.encryption_key_id.hex(),
                                kafka_topic=r.topic, kafka_partition=r.partition, kafka_offset=r.offset))
            at_ms = now_ms()
            vehicle = _vehicle_of(doc)
            outputs.append(status_record(s.topic_status, StatusChange(
                doc.business_key, self.authority, StatusKind.TAKEN_IN, at_ms, doc.doc_type,
                intake=(r.topic, r.partition, r.offset), vehicle=vehicle)))
            outputs.append(status_record(s.topic_status, StatusChange(
                doc.business_key, self.authority, StatusKind.SENT, at_ms, doc.doc_type, message_id=mid, attempt=1,
                vehicle=vehicle)))
            log_line(logging.DEBUG, "sealed", message_id=mid, business_key=doc.business_key, topic=topic)
            counts["sealed"] += 1
            counts["priority"] += int(doc.perishable)
        return ProcessResult(outputs, events, counts)


_MAX_STATUS_REASON_TEXT = 500


def _status_key(r: Incoming) -> str:
    """The status feed's key for an intake record: its declaration number, else a digest of its bytes."""
    key = r.key.decode("utf-8", "replace").strip() if r.key else ""
    return key if key and len(key) <= 64 and key.isprintable() else unknown_key(r.value)


def _vehicle_of(doc: Any) -> StatusVehicle | None:
    """Plate, containers and linked declarations of a vehicle declaration (what the smart gate reads)."""
    if isinstance(doc, _CnDocument):
        return doc.vehicle()
    if doc.schema_name != "VehicleManifest":
        return None
    rec = doc.values  # the mapped record that was Avro-encoded (decoding the payload again cost ≈ 60 µs)
    plate = str((rec.get("vehicle") or {}).get("plate") or "")
    containers = tuple(str(c.get("number")) for c in rec.get("containers") or () if c.get("number"))
    return StatusVehicle(plate, containers, tuple(doc.linked_declarations), bool(doc.perishable))


@dataclass(frozen=True)
class _CnDocument:
    """A CN frame taken in (:class:`~xborder_gateway.intake.TakenAvro`) with what the outbound path reads of a
    translated document: it is sealed exactly as received, never re-encoded."""

    taken: Any

    @property
    def payload(self) -> bytes:
        return bytes(self.taken.payload)

    @property
    def doc_type(self) -> str:
        return CN_DOCUMENT_TYPES[self.taken.schema_name]

    @property
    def schema_name(self) -> str:
        return str(self.taken.schema_name)

    @property
    def schema_fingerprint(self) -> bytes:
        return bytes(self.taken.fingerprint)

    @property
    def business_key(self) -> str:
        return str(self.taken.business_key)

    @property
    def perishable(self) -> bool:
        return bool(self.taken.perishable)

    @property
    def linked_declarations(self) -> tuple[str, ...]:
        return tuple(self.taken.linked_declarations)

    def vehicle(self) -> StatusVehicle | None:
        if self.taken.schema_name != "CnRoadManifest":
            return None
        return StatusVehicle(str(self.taken.vehicle_plate), tuple(self.taken.containers),
                             self.linked_declarations, self.perishable)


def role_name(role: str, authority: str) -> str:
    """A role's connector name (its consumer group and transactional ids): today's names for today's roles
    (``outbound`` and ``receipts`` of VN, ``nanning`` = inbound of CN), ``<role>.<a>`` for the others."""
    defaults = {"outbound": "VN", "receipts": "VN", "nanning": "CN"}
    return role if defaults.get(role) == authority else f"{role}.{authority.lower()}"


def outbound_spec(authority: str = AUTHORITY) -> ConnectorSpec:
    """The outbound role of ``authority``: intake -> sealed envelopes, exactly once (one Kafka transaction per
    batch). Run it with the settings' view :meth:`Settings.for_role(authority, authority)`."""
    from xborder_gateway.transport import role_topics

    return ConnectorSpec(
        name=role_name("outbound", authority), authority=authority, topics=lambda s: (s.topic_intake,),
        guarantee=Guarantee.EXACTLY_ONCE,
        processor=lambda rt: OutboundProcessor(rt.settings, rt.me, rt.trust, authority),
        started_line="outbound started", stopped_line="outbound stopped",
        creates=lambda s: role_topics(s, "outbound", authority),
        before_commit=crash_in_transaction)  # issue 11: `--crash-after` (tests)


async def run_outbound(settings: Settings, options: OutboundOptions, authority: str = AUTHORITY) -> int:
    """Run the outbound connector of ``authority`` until SIGTERM; returns the exit code."""
    return await run_connector(settings.for_role(authority, authority), outbound_spec(authority), options)
