"""Signed technical receipts (ENV-11): a ``Receipt`` Avro record, sealed back to the message's sender.

The receipt names the message id and the SHA-256 of the exact envelope bytes received, so the sender
can prove which bytes were acknowledged; sealing it makes it signed by the receiver and readable only by
the sender.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from xborder_gateway import avro
from xborder_gateway.envelope._batch import BatchCache
from xborder_gateway.envelope._errors import EnvelopeOpenError
from xborder_gateway.envelope._format import DEFAULT_LIMITS, EnvelopeHeader, EnvelopeLimits
from xborder_gateway.envelope._keys import LocalAuthority, TrustStore
from xborder_gateway.envelope._seal import OpenedEnvelope, ReplayGuard, SealedEnvelope, open_envelope, seal
from xborder_gateway.errors import EnvelopeError, GatewayError

if TYPE_CHECKING:
    from xborder_gateway.envelope._batch_seal import BatchSealer

__all__ = [
    "NIL_MESSAGE_ID",
    "RECEIPT_DOCUMENT_TYPE",
    "BusinessDecision",
    "add_receipt",
    "encode_receipt",
    "make_receipt",
    "match_receipt",
    "open_receipt",
    "receipt_decision",
    "seal_receipt",
]

RECEIPT_DOCUMENT_TYPE = "RECEIPT"
NIL_MESSAGE_ID = "00000000-0000-0000-0000-000000000000"  # the header did not even parse
_DECISION_FIELDS = ("business_status", "business_reasons", "business_responded_at")
_STATUSES = ("ACCEPTED", "HELD", "REJECTED")


@dataclass(frozen=True, slots=True)
class BusinessDecision:
    """An immediate business decision carried by a Receipt v2 (one answer per declaration, ENV-11).

    ``reasons`` are ``(code, text)`` pairs, as in ``BusinessResponse.reasons``. A later decision (a HELD
    released) is still its own ``BusinessResponse``.
    """

    status: Literal["ACCEPTED", "HELD", "REJECTED"]
    reasons: tuple[tuple[str, str], ...] = ()
    responded_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.status not in _STATUSES:
            raise ValueError(f"business status must be one of {_STATUSES}")
        if self.status != "ACCEPTED" and not self.reasons:
            raise ValueError(f"a {self.status} decision needs at least one reason")


def make_receipt(
    source: OpenedEnvelope | EnvelopeOpenError,
    *,
    receiver: str,
    outcome: Literal["ACK", "NACK"],
    reason_code: str | None = None,
    reason_text: str | None = None,
    sender: str | None = None,
    received_at: datetime | None = None,
    business_key: str | None = None,
    decision: BusinessDecision | None = None,
) -> dict[str, Any]:
    """The ``Receipt`` record for an opened envelope (ACK or NACK) or a refused one (NACK only).

    ``decision`` (ACK only) is the immediate business decision: the record then needs Receipt v2.

    For a refusal, the message id and sender come from the (unverified) header if it parsed; otherwise the
    message id is the nil UUID and ``sender`` must name the counterpart. ``envelope_sha256`` is always the
    digest of the bytes received.
    """
    header: EnvelopeHeader | None
    if isinstance(source, OpenedEnvelope):
        header = source.header
        sha = source.sha256
        document_type: str | None = header.document_type
    else:
        if outcome != "NACK":
            raise ValueError("a refused envelope can only be answered with NACK")
        if source.envelope_sha256 is None:
            raise ValueError("the refusal carries no envelope digest (not raised by open_envelope?)")
        header = source.header
        sha = source.envelope_sha256
        document_type = header.document_type if header is not None and source.header_verified else None
        reason_code = reason_code or source.code
        reason_text = reason_text or source.message
    if outcome == "NACK" and not reason_code:
        raise ValueError("a NACK needs a reason_code")
    if decision is not None and outcome != "ACK":
        raise ValueError("only an ACK can carry a business decision (a NACK'd message was not processed)")
    from_authority = header.sender if header is not None else sender
    if from_authority is None:
        raise ValueError("the header did not parse: pass sender= (the counterpart authority)")
    return {
        "message_id": str(header.message_id) if header is not None else NIL_MESSAGE_ID,
        "envelope_sha256": sha,
        "outcome": outcome,
        "reason_code": reason_code if outcome == "NACK" else None,
        "reason_text": reason_text,
        "receiver_authority": receiver,
        "sender_authority": from_authority,
        "received_at": received_at or datetime.now(UTC),
        "document_type": document_type,
        "business_key": business_key,
        "business_status": decision.status if decision is not None else None,
        "business_reasons": [{"code": c, "text": t} for c, t in decision.reasons] if decision is not None else [],
        "business_responded_at": (decision.responded_at or datetime.now(UTC)) if decision is not None else None,
    }


def receipt_decision(record: dict[str, Any]) -> BusinessDecision | None:
    """The immediate business decision a (decoded) receipt carries, or None (Receipt v1, or none taken yet)."""
    status = record.get("business_status")
    if status is None:
        return None
    reasons = tuple((str(r["code"]), str(r["text"])) for r in record.get("business_reasons") or [])
    return BusinessDecision(status, reasons, record.get("business_responded_at"))


def encode_receipt(record: dict[str, Any]) -> bytes:
    """Avro-encode a receipt: Receipt v1 when it carries no decision (the bytes a v1 counterpart reads),
    Receipt v2 when it does."""
    if record.get("business_status") is None:
        if record.get("business_reasons") or record.get("business_responded_at") is not None:
            raise ValueError("business_reasons / business_responded_at without business_status")
        return avro.encode("Receipt", {k: v for k, v in record.items() if k not in _DECISION_FIELDS}, version=1)
    return avro.encode("Receipt", record, version=2)


def add_receipt(sealer: BatchSealer, record: dict[str, Any], *, ttl: timedelta = timedelta(days=2)) -> int:
    """Queue a receipt in a :class:`BatchSealer` addressed to the message's sender (one batch of answers)."""
    if sealer.recipient != record["sender_authority"]:
        raise ValueError(f"receipt for {record['sender_authority']} added to a batch for {sealer.recipient}")
    payload = encode_receipt(record)
    return sealer.add(payload, document_type=RECEIPT_DOCUMENT_TYPE, schema_fingerprint=payload[2:10], ttl=ttl)


def seal_receipt(
    record: dict[str, Any], *, me: LocalAuthority, trust: TrustStore, recipient: str | None = None,
    now: datetime | None = None, ttl: timedelta = timedelta(days=2),
) -> SealedEnvelope:
    """Encode ``record`` as Avro ``Receipt`` (v1, or v2 with a decision) and seal it (signed by ``me``) to the
    message's sender, suite v1. For suite v2 batches use :func:`add_receipt`."""
    payload = encode_receipt(record)
    return seal(
        payload,
        sender=me,
        recipient=recipient or str(record["sender_authority"]),
        trust=trust,
        document_type=RECEIPT_DOCUMENT_TYPE,
        schema_fingerprint=payload[2:10],
        now=now,
        ttl=ttl,
    )


def open_receipt(
    data: bytes, *, me: LocalAuthority, trust: TrustStore, replay: ReplayGuard | None,
    now: datetime | None = None, limits: EnvelopeLimits = DEFAULT_LIMITS, batch_cache: BatchCache | None = None,
) -> tuple[OpenedEnvelope, dict[str, Any]]:
    """Open a receipt envelope (suite v1 or v2; ENV-1..ENV-10), then check it is a ``Receipt`` (ENV-11).

    The record has the v2 fields whichever version wrote it (decoded with reader version 2; a v1 receipt reads
    with ``business_status`` None): :func:`receipt_decision` gives the decision. Raises only
    :class:`EnvelopeOpenError` (and its subclass ``EnvelopeReplayError``), as ``open_envelope``.
    """
    opened = open_envelope(data, me=me, trust=trust, replay=replay, now=now, limits=limits, batch_cache=batch_cache)

    def reject(message: str, code: str, hint: str) -> EnvelopeOpenError:
        return EnvelopeOpenError(message, code=code, hint=hint, header=opened.header, header_verified=True,
                                 envelope_sha256=opened.sha256)

    if opened.header.document_type != RECEIPT_DOCUMENT_TYPE:
        raise reject(f"expected a RECEIPT envelope, got {opened.header.document_type}", "ENV-11 NOT_A_RECEIPT",
                     "route receipts and documents to different topics")
    try:
        # a Receipt of either version reads as v2 (v1 fields plus the decision, null when absent)
        decoded = avro.decode(opened.payload,
                              reader_version=_RECEIPT_READER if _is_receipt(opened.payload) else None)
    except GatewayError as exc:  # a signed payload that is not a decodable Avro record
        raise reject(f"RECEIPT payload does not decode: {exc.message}", "ENV-11 NOT_A_RECEIPT",
                     "the counterpart's receipt encoder is wrong") from exc
    if decoded.schema_name != "Receipt":
        raise reject(f"RECEIPT envelope carries a {decoded.schema_name}", "ENV-11 NOT_A_RECEIPT",
                     "the counterpart's receipt encoder is wrong")
    record = decoded.record
    if record.get("outcome") != "ACK" and record.get("business_status") is not None:
        raise reject("a NACK receipt carries a business decision", "ENV-11 RECEIPT_MISMATCH",
                     "the counterpart's receipt encoder is wrong: only an ACK carries a decision")
    if not _issued_by(record, opened.header.sender):
        raise reject("receipt's receiver_authority is not the authority that signed it", "ENV-11 RECEIPT_MISMATCH",
                     "a receipt must be signed by its issuer")
    return opened, record


_RECEIPT_READER = 2


def _is_receipt(payload: bytes) -> bool:
    return payload[2:10] in {avro.fingerprint("Receipt", v) for v in (1, 2)}


def match_receipt(record: dict[str, Any], sent: SealedEnvelope) -> None:
    """ENV-11: the receipt acknowledges exactly the envelope ``sent`` (id and bytes), issued by its recipient."""
    if record.get("message_id") != str(sent.message_id):
        raise EnvelopeError(f"receipt names {record.get('message_id')}, not {sent.message_id}",
                            code="ENV-11 RECEIPT_MISMATCH", hint="match receipts by message id first")
    if record.get("envelope_sha256") != sent.sha256:
        raise EnvelopeError(f"receipt for {sent.message_id} acknowledges other bytes than were sent",
                            code="ENV-11 RECEIPT_DIGEST_MISMATCH",
                            hint="the receiver got altered bytes, or the id was reused; resend and investigate")
    if not _issued_by(record, sent.header.recipient):
        raise EnvelopeError("receipt issued by another authority than the recipient",
                            code="ENV-11 RECEIPT_MISMATCH", hint="check the trust store")


def _issued_by(record: dict[str, Any], authority: str) -> bool:
    """``receiver_authority`` is the authority itself or one of its offices (``CN`` or ``CN-7220``)."""
    issuer = str(record.get("receiver_authority", ""))
    return issuer == authority or issuer.startswith(authority + "-")
