"""Envelope v1 byte layout: constants, the canonical header, strict parsing (docs/envelope.md §2-§3).

Pure functions over bytes; no keys, no I/O.
"""

from __future__ import annotations

import re
import struct
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from xborder_gateway.envelope._errors import EnvelopeOpenError

__all__ = [
    "DEFAULT_LIMITS",
    "ENC_LEN",
    "HEADER_FIXED_PREFIX",
    "INFO_LABEL",
    "MAGIC",
    "SIG_LABEL",
    "SIG_LEN",
    "SUITE_V1",
    "SUITE_V2",
    "TAG_LEN",
    "VERSION_V1",
    "EnvelopeHeader",
    "EnvelopeLimits",
    "parse_envelope",
]

MAGIC = b"XBGE"
VERSION_V1 = 1
SUITE_V1 = 0x0001  # Ed25519 + HPKE base (KEM 0x0020, KDF 0x0001, AEAD 0x0002)
SUITE_V2 = 0x0002  # batch: Ed25519 over a Merkle root + one HPKE-sealed batch secret (docs/envelope.md §8)
SUITES = (SUITE_V1, SUITE_V2)
HEADER_FIXED_PREFIX = 9  # magic(4) version(1) suite(2) body_len(2)
ENC_LEN = 32  # DHKEM(X25519) encapsulated key
TAG_LEN = 16  # AES-256-GCM tag
SIG_LEN = 64  # Ed25519 signature
KEY_ID_LEN = 32  # SHA-256 of the raw public key
FINGERPRINT_LEN = 8  # Avro single-object encoding: CRC-64-AVRO, as in the frame
AVRO_MAGIC = b"\xc3\x01"
MIN_PAYLOAD = len(AVRO_MAGIC) + FINGERPRINT_LEN
MAX_PRIORITY = 9

SIG_LABEL = b"xborder-gateway/envelope/v1/signature\x00"
INFO_LABEL = b"xbge/v1/info\x00"

_AUTHORITY = re.compile(rb"[A-Z]{2,16}")
_DOC_TYPE = re.compile(rb"[A-Z0-9_]{1,32}")
_U64 = struct.Struct(">QQ")
_PREFIX = struct.Struct(">4sBHH")
_MIN_TAIL = {SUITE_V1: ENC_LEN + SIG_LEN + MIN_PAYLOAD + TAG_LEN,
             SUITE_V2: 16 + ENC_LEN + 48 + 9 + SIG_LEN + MIN_PAYLOAD + TAG_LEN}  # = _batch.V2_MIN_TAIL
_MS_MAX = 253402300799999  # 9999-12-31T23:59:59.999Z


@dataclass(frozen=True, slots=True)
class EnvelopeLimits:
    """Input bounds for opening envelopes (one frozen object; see docs/envelope.md ENV-1, ENV-8)."""

    max_envelope_bytes: int = 1 << 20  # ENV-1
    max_clock_skew: timedelta = timedelta(minutes=5)  # ENV-8
    max_ttl: timedelta = timedelta(days=7)  # ENV-8

    def __post_init__(self) -> None:
        if self.max_envelope_bytes < 256 or self.max_clock_skew < timedelta(0) or self.max_ttl <= timedelta(0):
            raise ValueError("EnvelopeLimits: size >= 256, skew >= 0 and ttl > 0 are required")


DEFAULT_LIMITS = EnvelopeLimits()


def to_ms(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("envelope times must be timezone-aware (UTC)")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class EnvelopeHeader:
    """The v1 header. Its canonical bytes (``encode()``) are what is signed and bound into HPKE ``info``."""

    message_id: uuid.UUID
    sender: str
    recipient: str
    document_type: str
    schema_fingerprint: bytes
    created: datetime
    expires: datetime
    signing_key_id: bytes
    encryption_key_id: bytes
    priority: int = 0
    version: int = VERSION_V1
    suite: int = SUITE_V1
    # the exact header bytes (set by parse_envelope or on first encode); not an init field, so
    # dataclasses.replace() never carries stale bytes into a changed header
    _encoded: bytes = field(default=b"", init=False, repr=False, compare=False)

    def encode(self) -> bytes:
        """The canonical header bytes H (docs/envelope.md §2)."""
        if self._encoded:
            return self._encoded
        encoded = _encode(self)
        object.__setattr__(self, "_encoded", encoded)
        return encoded

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "suite": self.suite,
            "message_id": str(self.message_id),
            "sender": self.sender,
            "recipient": self.recipient,
            "document_type": self.document_type,
            "schema_fingerprint": self.schema_fingerprint.hex(),
            "created": self.created.isoformat().replace("+00:00", "Z"),
            "expires": self.expires.isoformat().replace("+00:00", "Z"),
            "signing_key_id": self.signing_key_id.hex(),
            "encryption_key_id": self.encryption_key_id.hex(),
            "priority": self.priority,
        }


def _ascii_field(name: str, value: str, pattern: re.Pattern[bytes]) -> bytes:
    raw = value.encode("ascii", "strict") if value.isascii() else b""
    if not pattern.fullmatch(raw):
        raise ValueError(f"header field {name}={value!r} does not match {pattern.pattern.decode()}")
    return bytes([len(raw)]) + raw


def _encode(h: EnvelopeHeader) -> bytes:
    if h.message_id.version != 7 or h.message_id.variant != uuid.RFC_4122:
        raise ValueError("message_id must be an RFC 9562 UUIDv7")
    if len(h.schema_fingerprint) != FINGERPRINT_LEN:
        raise ValueError(f"schema_fingerprint must be {FINGERPRINT_LEN} bytes")
    if len(h.signing_key_id) != KEY_ID_LEN or len(h.encryption_key_id) != KEY_ID_LEN:
        raise ValueError("key ids must be 32 bytes (SHA-256 of the raw public key)")
    if not 0 <= h.priority <= MAX_PRIORITY:
        raise ValueError(f"priority must be 0..{MAX_PRIORITY}")
    created, expires = to_ms(h.created), to_ms(h.expires)
    if not (0 <= created <= _MS_MAX and 0 <= expires <= _MS_MAX):
        raise ValueError("created/expires out of range")
    body = b"".join(
        (
            h.message_id.bytes,
            _ascii_field("sender", h.sender, _AUTHORITY),
            _ascii_field("recipient", h.recipient, _AUTHORITY),
            _ascii_field("document_type", h.document_type, _DOC_TYPE),
            h.schema_fingerprint,
            _U64.pack(created, expires),
            h.signing_key_id,
            h.encryption_key_id,
            bytes([h.priority]),
        )
    )
    return _PREFIX.pack(MAGIC, h.version, h.suite, len(body)) + body


def _malformed(why: str, sha: bytes | None) -> EnvelopeOpenError:
    return EnvelopeOpenError(
        f"malformed envelope: {why}",
        code="ENV-2 MALFORMED",
        hint="the bytes are not an xborder envelope v1; check the sender's implementation against docs/envelope.md",
        envelope_sha256=sha,
    )


def parse_envelope(data: bytes, sha: bytes | None = None) -> tuple[EnvelopeHeader, int]:
    """Parse the header strictly (ENV-2, ENV-3); return it and the offset where ``enc`` starts.

    The returned header is **unverified**. ``sha`` is only carried into the errors.
    """
    n = len(data)
    # ENV-2: magic and fixed prefix
    if n < HEADER_FIXED_PREFIX or data[:4] != MAGIC:
        raise _malformed("bad magic or shorter than the fixed prefix", sha)
    _, version, suite, body_len = _PREFIX.unpack_from(data, 0)
    # ENV-3: only version 1 / suite 1 (checked before the body is interpreted: a later version may differ)
    if version != VERSION_V1:
        raise EnvelopeOpenError(
            f"envelope version {version} is not supported (this gateway speaks version {VERSION_V1})",
            code="ENV-3 UNSUPPORTED_VERSION",
            hint="both sides must agree on the envelope version; a changed version byte may be a downgrade attempt",
            envelope_sha256=sha,
        )
    if suite not in SUITES:
        raise EnvelopeOpenError(
            f"suite 0x{suite:04x} is not allowed (allowed: 0x{SUITE_V1:04x}, 0x{SUITE_V2:04x})",
            code="ENV-3 UNSUPPORTED_SUITE",
            hint="only suites 0x0001 and 0x0002 (Ed25519 + HPKE X25519/HKDF-SHA256/AES-256-GCM) are accepted",
            envelope_sha256=sha,
        )
    end = HEADER_FIXED_PREFIX + body_len
    # ENV-2: the header must fit, and leave room for the suite's tail (v1: enc, signature, a minimal payload
    # and the tag; v2: batch id, enc, sealed secret, proof fields, signature, a minimal payload and the tag)
    if end + _MIN_TAIL[suite] > n:
        raise _malformed("truncated (header length leaves no room for enc and ciphertext)", sha)
    pos = HEADER_FIXED_PREFIX
    mid = uuid.UUID(bytes=data[pos : pos + 16])
    pos += 16
    if mid.version != 7 or mid.variant != uuid.RFC_4122:
        raise _malformed("message id is not a UUIDv7", sha)
    strings: list[str] = []
    for name, pattern in (("sender", _AUTHORITY), ("recipient", _AUTHORITY), ("document_type", _DOC_TYPE)):
        if pos >= end:
            raise _malformed(f"header ends inside {name}", sha)
        length = data[pos]
        raw = data[pos + 1 : pos + 1 + length]
        pos += 1 + length
        if pos > end or not pattern.fullmatch(raw):
            raise _malformed(f"{name} is not {pattern.pattern.decode()}", sha)
        strings.append(raw.decode("ascii"))
    rest = FINGERPRINT_LEN + 16 + 2 * KEY_ID_LEN + 1
    if end - pos != rest:
        raise _malformed(f"header body length {body_len} does not match its fields", sha)
    fingerprint = data[pos : pos + FINGERPRINT_LEN]
    pos += FINGERPRINT_LEN
    created_ms, expires_ms = _U64.unpack_from(data, pos)
    pos += 16
    if created_ms > _MS_MAX or expires_ms > _MS_MAX:
        raise _malformed("timestamp out of range", sha)
    sig_kid = data[pos : pos + KEY_ID_LEN]
    pos += KEY_ID_LEN
    enc_kid = data[pos : pos + KEY_ID_LEN]
    pos += KEY_ID_LEN
    priority = data[pos]
    if priority > MAX_PRIORITY:
        raise _malformed(f"priority {priority} > {MAX_PRIORITY}", sha)
    header = EnvelopeHeader(
        message_id=mid,
        sender=strings[0],
        recipient=strings[1],
        document_type=strings[2],
        schema_fingerprint=bytes(fingerprint),
        created=from_ms(created_ms),
        expires=from_ms(expires_ms),
        signing_key_id=bytes(sig_kid),
        encryption_key_id=bytes(enc_kid),
        priority=priority,
        version=version,
        suite=suite,
    )
    object.__setattr__(header, "_encoded", bytes(data[:end]))
    return header, end
