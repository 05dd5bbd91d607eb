"""``xborder run outbound`` (VN): intake XML -> validate -> map -> seal -> exchange topic, exactly once.

One Kafka transaction per batch holds the sealed envelopes, the rejected records and the intake offsets
(:class:`~xborder_gateway.transport.TransactionalBatchLoop`). Per record:

- valid: ``translate_xml`` -> ``seal`` (sign for VN, encrypt to CN) -> ``xb.vn-cn.exchange``, or the
  priority lane ``xb.vn-cn.exchange.priority`` when the document is perishable; key = message id;
- invalid (IntakeError / MappingError / a payload the envelope refuses): the raw bytes go to
  ``vn.declarations.rejected`` with JSON reasons in the ``xbg-reasons`` header. Nothing a sender puts in a
  record can stop the loop: a poison message never blocks its partition.

The batch's audit events (sealed / rejected) are appended durably before its transaction commits. If the
transaction is then redone (crash, broker failure), the redo seals new envelopes under new message ids
and the audit log holds a ``sealed`` event for an envelope that was never committed; the receipt tracker
only tracks what read_committed consumers see (see docs/exchange.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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
    Auditor,
    Identity,
    Ops,
    event,
    load_keys,
    log_line,
)
from xborder_gateway.envelope import LocalAuthority, TrustStore, seal
from xborder_gateway.errors import EnvelopeError, GatewayError, IntakeError, MappingError
from xborder_gateway.transport import (
    INTAKE_MAX_MESSAGE_BYTES,
    Incoming,
    LoopConfig,
    Outgoing,
    TransactionalBatchLoop,
    ensure_topics,
    gateway_topic_configs,
    gateway_topics,
    install_shutdown,
)

__all__ = ["OutboundOptions", "OutboundProcessor", "run_outbound"]

AUTHORITY = "VN"
COUNTERPART = "CN"
PROCESS = "outbound"


@dataclass(frozen=True)
class OutboundOptions:
    instance: str = "0"
    passphrase_file: Path | None = None
    metrics_port: int | None = None


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


class OutboundProcessor:
    """The per-batch work, without Kafka: records in, records out plus audit events (testable alone)."""

    def __init__(self, settings: Settings, me: LocalAuthority, trust: TrustStore) -> None:
        self.settings = settings
        self.me = me
        self.trust = trust

    def _translate_and_seal(self, raw: bytes, source: str) -> tuple[Any, Any]:
        from xborder_gateway.documents import translate_xml

        try:
            doc = translate_xml(raw, source=source)
            sealed = seal(doc.payload, sender=self.me, recipient=COUNTERPART, trust=self.trust,
                          document_type=doc.doc_type, schema_fingerprint=doc.schema_fingerprint,
                          priority=1 if doc.perishable else 0)
        except GatewayError:
            raise
        except Exception as exc:  # a bug met by some input must not block the partition (poison message)
            logging.getLogger(__name__).exception("unexpected error translating %s", source)
            raise MappingError(f"unexpected {type(exc).__name__} while translating: {exc}",
                               code="INTERNAL_TRANSLATION_ERROR",
                               hint="a gateway bug; the raw document is kept on the rejected topic") from exc
        return doc, sealed

    def process(self, records: Sequence[Incoming]) -> tuple[list[Outgoing], list[AuditEvent], dict[str, int]]:
        s = self.settings
        outputs: list[Outgoing] = []
        events: list[AuditEvent] = []
        counts = {"sealed": 0, "rejected": 0, "priority": 0}
        for r in records:
            source = f"{r.topic}/{r.partition}@{r.offset}"
            raw_sha = hashlib.sha256(r.value).digest()
            run = r.header(H_RUN)
            published = r.header(H_PUBLISHED_MS) or str(r.timestamp_ms).encode()
            # every step is an audit entry (received -> validated -> sealed, or received -> rejected)
            events.append(event(AUTHORITY, PROCESS, EventType.RECEIVED, raw_sha256=raw_sha,
                                business_key=r.key.decode("utf-8", "replace") if r.key else None,
                                kafka_topic=r.topic, kafka_partition=r.partition, kafka_offset=r.offset))
            try:
                doc, sealed = self._translate_and_seal(r.value, source)
            except (IntakeError, MappingError, EnvelopeError) as exc:
                outputs.append(_rejected_record(s.topic_rejected, r, exc, source, published))
                events.append(event(AUTHORITY, PROCESS, EventType.REJECTED, raw_sha256=raw_sha,
                                    business_key=r.key.decode("utf-8", "replace") if r.key else None,
                                    kafka_topic=r.topic, kafka_partition=r.partition, kafka_offset=r.offset,
                                    outcome="rejected", reason_code=exc.code))
                log_line(logging.INFO, "rejected", source=source, code=exc.code)
                counts["rejected"] += 1
                continue
            mid = str(sealed.message_id)
            payload_sha = hashlib.sha256(doc.payload).digest()
            events.append(event(AUTHORITY, PROCESS, EventType.VALIDATED, business_key=doc.business_key,
                                document_type=doc.doc_type, raw_sha256=raw_sha, payload_sha256=payload_sha,
                                kafka_topic=r.topic, kafka_partition=r.partition, kafka_offset=r.offset))
            topic = s.topic_exchange_priority if doc.perishable else s.topic_exchange
            outputs.append(Outgoing(topic, mid.encode(), sealed.data, Outgoing.make_headers({
                H_MESSAGE_ID: mid, H_DOC_TYPE: doc.doc_type, H_BUSINESS_KEY: doc.business_key,
                H_RUN: _small(run), H_PUBLISHED_MS: _small(published, 32), H_ATTEMPT: "1",
            })))
            events.append(event(AUTHORITY, PROCESS, EventType.SEALED, message_id=mid,
                                business_key=doc.business_key, document_type=doc.doc_type, raw_sha256=raw_sha,
                                payload_sha256=payload_sha, envelope_sha256=sealed.sha256,
                                signing_key_id=sealed.header.signing_key_id.hex(),
                                encryption_key_id=sealed.header.encryption_key_id.hex(),
                                kafka_topic=r.topic, kafka_partition=r.partition, kafka_offset=r.offset))
            log_line(logging.DEBUG, "sealed", message_id=mid, business_key=doc.business_key, topic=topic)
            counts["sealed"] += 1
            counts["priority"] += int(doc.perishable)
        return outputs, events, counts


async def run_outbound(settings: Settings, options: OutboundOptions) -> int:
    """Run the outbound connector until SIGTERM; returns the exit code."""
    me, trust = load_keys(settings, AUTHORITY, options.passphrase_file)
    ident = Identity("outbound", options.instance, settings.exchange_group_prefix)
    await ensure_topics(settings.bootstrap, gateway_topics(settings), settings.topic_partitions,
                        gateway_topic_configs(settings))
    auditor = Auditor(settings, AUTHORITY)
    processor = OutboundProcessor(settings, me, trust)
    stop = asyncio.Event()
    install_shutdown(stop)
    config = LoopConfig(bootstrap=settings.bootstrap, topics=(settings.topic_intake,), group_id=ident.group_id,
                        client_id=ident.client_id, transactional_id=ident.transactional_id,
                        batch_max=settings.exchange_batch_max, poll_ms=settings.exchange_poll_ms,
                        txn_timeout_s=settings.exchange_txn_timeout_s)
    loop: TransactionalBatchLoop | None = None

    def health() -> dict[str, Any]:
        stats = loop.stats if loop else None
        return {"ok": loop is not None and not stop.is_set(), "connector": "outbound", "instance": options.instance,
                "ready": stats is not None and stats.assigned is not None,
                "assigned_partitions": stats.assigned if stats else None,
                "batches": stats.batches if stats else 0, "restarts": stats.restarts if stats else 0,
                "last_error": stats.last_error if stats else None}

    ops = Ops("outbound", options.metrics_port, health)

    async def handler(records: list[Incoming]) -> Sequence[Outgoing]:
        outputs, events, counts = processor.process(records)
        auditor.append(events)  # AUD-5: durable before the transaction commits the intake offsets
        for k, v in counts.items():
            ops.count(k, v)
        ops.batches.labels("outbound").inc()
        return outputs

    loop = TransactionalBatchLoop(config, handler, stop)
    log_line(logging.INFO, "outbound started", instance=options.instance, bootstrap=settings.bootstrap)
    try:
        await loop.run()
    finally:
        ops.close()
        auditor.close()
    log_line(logging.INFO, "outbound stopped", batches=loop.stats.batches, records=loop.stats.records_in)
    return 0
