"""Signed technical receipts (ENV-11): a ``Receipt`` Avro record, sealed back to the message's sender.

The receipt names the message id and the SHA-256 of the exact envelope bytes received, so the sender
can prove which bytes were acknowledged; sealing it makes it signed by the receiver and readable only by
the sender.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from xborder_gateway import avro
from xborder_gateway.envelope._errors import EnvelopeOpenError
from xborder_gateway.envelope._format import DEFAULT_LIMITS, EnvelopeHeader, EnvelopeLimits
from xborder_gateway.envelope._keys import LocalAuthority, TrustStore
from xborder_gateway.envelope._seal import OpenedEnvelope, ReplayGuard, SealedEnvelope, open_envelope, seal
from xborder_gateway.errors import EnvelopeError, GatewayError

__all__ = [
    "NIL_MESSAGE_ID",
    "RECEIPT_DOCUMENT_TYPE",
    "make_receipt",
    "match_receipt",
    "open_receipt",
    "seal_receipt",
]

RECEIPT_DOCUMENT_TYPE = "RECEIPT"
NIL_MESSAGE_ID = "00000000-0000-0000-0000-000000000000"  # the header did not even parse


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
) -> dict[str, Any]:
    """The ``Receipt`` record for an opened envelope (ACK or NACK) or a refused one (NACK only).

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
    }


def seal_receipt(
    record: dict[str, Any], *, me: LocalAuthority, trust: TrustStore, recipient: str | None = None,
    now: datetime | None = None, ttl: timedelta = timedelta(days=2),
) -> SealedEnvelope:
    """Encode ``record`` as Avro ``Receipt`` and seal it (signed by ``me``) to the message's sender."""
    payload = avro.encode("Receipt", record)
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
    now: datetime | None = None, limits: EnvelopeLimits = DEFAULT_LIMITS,
) -> tuple[OpenedEnvelope, dict[str, Any]]:
    """Open a receipt envelope (ENV-1..ENV-10), then check it is a ``Receipt`` (ENV-11).

    Raises only :class:`EnvelopeOpenError` (and its subclass ``EnvelopeReplayError``), as ``open_envelope``.
    """
    opened = open_envelope(data, me=me, trust=trust, replay=replay, now=now, limits=limits)

    def reject(message: str, code: str, hint: str) -> EnvelopeOpenError:
        return EnvelopeOpenError(message, code=code, hint=hint, header=opened.header, header_verified=True,
                                 envelope_sha256=opened.sha256)

    if opened.header.document_type != RECEIPT_DOCUMENT_TYPE:
        raise reject(f"expected a RECEIPT envelope, got {opened.header.document_type}", "ENV-11 NOT_A_RECEIPT",
                     "route receipts and documents to different topics")
    try:
        decoded = avro.decode(opened.payload)
    except GatewayError as exc:  # a signed payload that is not a decodable Avro record
        raise reject(f"RECEIPT payload does not decode: {exc.message}", "ENV-11 NOT_A_RECEIPT",
                     "the counterpart's receipt encoder is wrong") from exc
    if decoded.schema_name != "Receipt":
        raise reject(f"RECEIPT envelope carries a {decoded.schema_name}", "ENV-11 NOT_A_RECEIPT",
                     "the counterpart's receipt encoder is wrong")
    record = decoded.record
    if not _issued_by(record, opened.header.sender):
        raise reject("receipt's receiver_authority is not the authority that signed it", "ENV-11 RECEIPT_MISMATCH",
                     "a receipt must be signed by its issuer")
    return opened, record


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
