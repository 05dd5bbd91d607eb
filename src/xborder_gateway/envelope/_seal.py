"""Seal (sign, then encrypt) and open (decrypt, verify, check) envelopes — docs/envelope.md §3-§4.

Synchronous functions over bytes and loaded keys; the only I/O is the optional replay store.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke

from xborder_gateway.envelope._batch import DEFAULT_BATCH_CACHE, BatchCache, open_batch_body
from xborder_gateway.envelope._errors import EnvelopeOpenError
from xborder_gateway.envelope._format import (
    AVRO_MAGIC,
    DEFAULT_LIMITS,
    FINGERPRINT_LEN,
    INFO_LABEL,
    MIN_PAYLOAD,
    SIG_LABEL,
    SIG_LEN,
    SUITE_V2,
    EnvelopeHeader,
    EnvelopeLimits,
    parse_envelope,
)
from xborder_gateway.envelope._keys import AuthorityCertificate, KeyGeneration, LocalAuthority, TrustStore
from xborder_gateway.errors import EnvelopeError

__all__ = [
    "OpenedEnvelope",
    "ReplayGuard",
    "SealedEnvelope",
    "new_message_id",
    "open_envelope",
    "peek_header",
    "seal",
]

# ENV-3: the one suite v1 allows. Base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM.
_HPKE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_sha256 = hashlib.sha256


class ReplayGuard(Protocol):
    """ENV-10: a durable record of processed message ids.

    ``check`` raises :class:`EnvelopeReplayError` if ``header.message_id`` was already recorded
    (``ENV-10 REPLAYED`` for the same envelope digest, ``ENV-10 MESSAGE_ID_REUSED`` for another).
    It never records: the caller records with ``remember`` once the outcome (receipt) is stored,
    ideally in the same transaction.
    """

    def check(self, header: EnvelopeHeader, envelope_sha256: bytes) -> None: ...


def new_message_id(now: datetime | None = None) -> uuid.UUID:
    """A UUIDv7 (RFC 9562 §5.7): 48-bit Unix milliseconds, version 7, 74 random bits."""
    when = now or datetime.now(UTC)
    ms = int(when.timestamp() * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return uuid.UUID(int=value)


@dataclass(frozen=True, slots=True)
class SealedEnvelope:
    """What ``seal`` returns: the exact envelope bytes to send, their header and SHA-256."""

    header: EnvelopeHeader
    data: bytes
    sha256: bytes

    @property
    def message_id(self) -> uuid.UUID:
        return self.header.message_id


_TOKEN = object()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _us(value: datetime | timedelta) -> int:
    """Microseconds since the epoch (or of a duration) as an unbounded int.

    Issue 9 item 3: every comparison of a time with a skew or ttl is done on these integers, never as
    ``datetime + timedelta``, which overflows at year 9999 (RFC 5280's "no expiry" notAfter) and year 1.
    """
    if isinstance(value, timedelta):
        return value // _US
    return (value - _EPOCH) // _US


def _aware(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (UTC)")
    return now


class OpenedEnvelope:
    """An envelope that passed every check of ENV-1..ENV-10. Only :func:`open_envelope` builds one."""

    __slots__ = ("header", "payload", "sender_certificate", "sha256")

    header: EnvelopeHeader
    payload: bytes
    sha256: bytes
    sender_certificate: AuthorityCertificate

    def __init__(self, token: object, header: EnvelopeHeader, payload: bytes, sha256: bytes,
                 sender_certificate: AuthorityCertificate) -> None:
        if token is not _TOKEN:
            raise TypeError("OpenedEnvelope is constructed only by open_envelope()")
        object.__setattr__(self, "header", header)
        object.__setattr__(self, "payload", payload)
        object.__setattr__(self, "sha256", sha256)
        object.__setattr__(self, "sender_certificate", sender_certificate)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("OpenedEnvelope is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("OpenedEnvelope is immutable")

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("OpenedEnvelope cannot be pickled; pass the envelope bytes and open them again")

    @property
    def message_id(self) -> uuid.UUID:
        return self.header.message_id

    @property
    def sender(self) -> str:
        return self.header.sender

    @property
    def signing_key_id(self) -> bytes:
        return self.header.signing_key_id

    def __repr__(self) -> str:
        return (f"OpenedEnvelope(message_id={self.message_id}, sender={self.sender}, "
                f"document_type={self.header.document_type}, payload={len(self.payload)} bytes)")


def _payload_problem(payload: bytes, fingerprint: bytes) -> tuple[str, str, str] | None:
    """ENV-9: the payload is an Avro single-object encoding whose fingerprint is the header's."""
    if len(payload) < MIN_PAYLOAD or payload[:2] != AVRO_MAGIC:
        return ("payload is not Avro single-object encoded (C3 01 + 8-byte fingerprint)",
                "ENV-9 PAYLOAD_NOT_AVRO", "the payload must be framed Avro bytes")
    if payload[2 : 2 + FINGERPRINT_LEN] != fingerprint:
        return ("the payload's schema fingerprint differs from the header's", "ENV-9 SCHEMA_MISMATCH",
                "header schema_fingerprint must equal bytes 2..9 of the payload")
    return None


def seal(
    payload: bytes,
    *,
    sender: LocalAuthority,
    recipient: str,
    trust: TrustStore,
    document_type: str,
    schema_fingerprint: bytes,
    message_id: uuid.UUID | None = None,
    priority: int = 0,
    ttl: timedelta = timedelta(days=2),
    now: datetime | None = None,
    limits: EnvelopeLimits = DEFAULT_LIMITS,
) -> SealedEnvelope:
    """Sign ``payload`` with the sender's newest valid Ed25519 key, then HPKE-encrypt it to ``recipient``."""
    when = _aware(now)
    problem = _payload_problem(payload, schema_fingerprint)
    if problem is not None:
        raise EnvelopeError(problem[0], code=problem[1], hint=problem[2])
    if not timedelta(0) < ttl <= limits.max_ttl:  # ENV-8: the receiver would refuse it
        raise EnvelopeError(f"ttl {ttl} outside (0, {limits.max_ttl}]", code="ENV-8 BAD_LIFETIME",
                            hint="choose a ttl the counterpart accepts")
    gen = sender.current(when)
    rcpt = trust.recipient_certificate(recipient, when)
    created = when.replace(microsecond=when.microsecond // 1000 * 1000)
    try:
        expires = created + ttl
    except OverflowError as exc:  # issue 9 item 3: never an OverflowError out of seal
        raise EnvelopeError(f"created {created.isoformat()} + ttl {ttl} is past year 9999",
                            code="ENV-8 BAD_LIFETIME", hint="check the clock passed as now") from exc
    header = EnvelopeHeader(
        message_id=message_id or new_message_id(created),
        sender=sender.authority,
        recipient=recipient,
        document_type=document_type,
        schema_fingerprint=bytes(schema_fingerprint),
        created=created,
        expires=expires,
        signing_key_id=gen.certificate.signing_key_id,
        encryption_key_id=rcpt.encryption_key_id,
        priority=priority,
    )
    try:
        h = header.encode()
    except ValueError as exc:
        raise EnvelopeError(f"cannot build the header: {exc}", code="ENV-2 INVALID_HEADER_FIELD",
                            hint="fix the field named in the message") from exc
    # ENV-7: signature over label || H || SHA-256(payload)
    signature = gen.signer.sign(SIG_LABEL + h + _sha256(payload).digest())  # software or PKCS#11 key
    # ENV-6: HPKE base mode to the recipient's X25519 key, info = label || SHA-256(H); output enc || ct
    sealed = _HPKE.encrypt(signature + payload, rcpt.encryption_key, info=INFO_LABEL + _sha256(h).digest())
    data = h + sealed
    if len(data) > limits.max_envelope_bytes:  # ENV-1: never send what the receiver must refuse
        raise EnvelopeError(f"envelope of {len(data)} bytes exceeds {limits.max_envelope_bytes}",
                            code="ENV-1 SIZE_EXCEEDED", hint="split the document")
    return SealedEnvelope(header, data, _sha256(data).digest())


def peek_header(data: bytes, limits: EnvelopeLimits = DEFAULT_LIMITS) -> EnvelopeHeader | None:
    """The **unverified** header, or None if it does not parse. For NACK receipts and logs only."""
    if len(data) > limits.max_envelope_bytes:
        return None
    try:
        return parse_envelope(data)[0]
    except EnvelopeError:
        return None


def open_envelope(
    data: bytes,
    *,
    me: LocalAuthority,
    trust: TrustStore,
    replay: ReplayGuard | None,
    now: datetime | None = None,
    limits: EnvelopeLimits = DEFAULT_LIMITS,
    batch_cache: BatchCache | None = None,
) -> OpenedEnvelope:
    """Open ``data`` following ENV-1..ENV-10 in order; raise :class:`EnvelopeOpenError` on the first failure.

    Suite v1 and v2 envelopes both open here; ``batch_cache`` (v2 only) holds opened batch secrets and
    verified batch roots, the process-wide ``DEFAULT_BATCH_CACHE`` unless given.
    """
    data = bytes(data)
    sha = _sha256(data).digest()
    when = _aware(now)
    # ENV-1: size cap before anything else
    if len(data) > limits.max_envelope_bytes:
        raise EnvelopeOpenError(f"envelope of {len(data)} bytes exceeds {limits.max_envelope_bytes}",
                               code="ENV-1 SIZE_EXCEEDED", hint="the sender must split the document",
                               envelope_sha256=sha)
    # ENV-2 strict parse, ENV-3 version and suite
    header, end = parse_envelope(data, sha)
    h = header.encode()

    def reject(message: str, code: str, hint: str, *, verified: bool = False) -> EnvelopeOpenError:
        return EnvelopeOpenError(message, code=code, hint=hint, header=header, header_verified=verified,
                                envelope_sha256=sha)

    # ENV-4: addressed to this authority, from a trusted authority
    if header.recipient != me.authority:
        raise reject(f"envelope is addressed to {header.recipient}, this is {me.authority}",
                     "ENV-4 WRONG_RECIPIENT", "route the envelope to its recipient")
    sender_cert, gen = _keys_for(header, me=me, trust=trust, when=when, limits=limits, reject=reject)
    # ENV-6, ENV-7: the one place where the suites part (ENV-3 admitted only SUITE_V1 and SUITE_V2)
    if header.suite == SUITE_V2:
        payload = open_batch_body(data, end, header, gen=gen, sender_cert=sender_cert,
                                  cache=DEFAULT_BATCH_CACHE if batch_cache is None else batch_cache, reject=reject)
    else:
        payload = _open_body_v1(data, end, h, gen=gen, sender_cert=sender_cert, reject=reject)
    # ENV-8: time window (the header is authenticated from here on)
    created_us, expires_us, now_us = _us(header.created), _us(header.expires), _us(when)
    skew_us = _us(limits.max_clock_skew)
    if expires_us <= created_us or expires_us - created_us > _us(limits.max_ttl):
        raise reject(f"lifetime {header.expires - header.created} outside (0, {limits.max_ttl}]",
                     "ENV-8 BAD_LIFETIME", "the sender must use a ttl within the agreed maximum", verified=True)
    if created_us > now_us + skew_us:
        raise reject(f"created {header.created.isoformat()} is in the future (now {when.isoformat()})",
                     "ENV-8 NOT_YET_VALID", "check both sides' clocks (NTP)", verified=True)
    if now_us > expires_us + skew_us:
        raise reject(f"expired at {header.expires.isoformat()} (now {when.isoformat()})", "ENV-8 EXPIRED",
                     "the sender must re-send a fresh message", verified=True)
    # ENV-9: payload framing matches the header's schema fingerprint
    problem = _payload_problem(payload, header.schema_fingerprint)
    if problem is not None:
        raise reject(*problem, verified=True)
    # ENV-10: replay, only after everything else passed
    if replay is not None:
        replay.check(header, sha)
    return OpenedEnvelope(_TOKEN, header, payload, sha, sender_cert)


def _open_body_v1(
    data: bytes, end: int, h: bytes, *, gen: KeyGeneration, sender_cert: AuthorityCertificate,
    reject: Callable[[str, str, str], EnvelopeOpenError],
) -> bytes:
    # ENV-6: HPKE open with info = label || SHA-256(H)
    try:
        plain = _HPKE.decrypt(data[end:], gen.encryption_private, info=INFO_LABEL + _sha256(h).digest())
    except (InvalidTag, ValueError) as exc:
        raise reject("HPKE decryption failed (altered header or ciphertext, or wrong key)",
                     "ENV-6 DECRYPT_FAILED", "the envelope was altered in transit or sealed wrongly") from exc
    # |plain| >= SIG_LEN + MIN_PAYLOAD holds: ENV-2 checked |ct| >= SIG_LEN + MIN_PAYLOAD + TAG_LEN
    signature, payload = plain[:SIG_LEN], plain[SIG_LEN:]
    # ENV-7: Ed25519 over label || H || SHA-256(payload), with the sender's key
    try:
        sender_cert.signing_key.verify(signature, SIG_LABEL + h + _sha256(payload).digest())
    except InvalidSignature as exc:
        raise reject("signature does not verify", "ENV-7 SIGNATURE_INVALID",
                     "the envelope was not signed by the named sender key over this header and payload") from exc
    return payload


def _keys_for(
    header: EnvelopeHeader, *, me: LocalAuthority, trust: TrustStore, when: datetime, limits: EnvelopeLimits,
    reject: Callable[[str, str, str], EnvelopeOpenError],
) -> tuple[AuthorityCertificate, KeyGeneration]:
    sender_cert = trust.signing_certificate(header.signing_key_id)
    # ENV-5: both key ids known; the signing key belongs to the named sender; both valid
    if sender_cert is None or sender_cert.authority != header.sender:
        raise reject(f"signing key {header.signing_key_id.hex()[:16]}… of {header.sender} is not trusted",
                     "ENV-5 UNKNOWN_SIGNING_KEY", f"import {header.sender}'s current bundle if it rotated keys")
    gen = me.generation_for_encryption_key(header.encryption_key_id)
    if gen is None:
        raise reject(f"encryption key {header.encryption_key_id.hex()[:16]}… is not one of {me.authority}'s",
                     "ENV-5 UNKNOWN_ENCRYPTION_KEY", "the sender uses an old or foreign bundle of ours; re-export it")
    for role, cert in (("signing", sender_cert), ("encryption", gen.certificate)):
        # integers, not `cert.not_after + skew`: notAfter 9999-12-31T23:59:59Z must not overflow (issue 9 item 3)
        if not cert.valid_at(header.created) or _us(when) > _us(cert.not_after) + _us(limits.max_clock_skew):
            raise reject(f"{role} key of {cert.authority} is valid {cert.not_before.isoformat()} .. "
                         f"{cert.not_after.isoformat()}, message created {header.created.isoformat()}",
                         "ENV-5 KEY_NOT_VALID", "rotate keys and exchange bundles")
    return sender_cert, gen
