"""Audit events and their canonical byte encoding (the Merkle leaf input).

An :class:`AuditEvent` records *that* something happened to a message and the identifiers and
digests needed to find and check it; it never holds document content. Every text field is
restricted to printable ASCII identifiers (no spaces except in ``reason_code``), which keeps
names, addresses and free text out of the log by construction (AUD-1).

Canonical encoding (``docs/audit.md`` §2): a JSON object holding *every* field (absent = ``null``)
plus ``"v": 1``, keys sorted, no insignificant whitespace, integers in decimal, time as
``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC, microseconds). Because all strings are printable ASCII this is
also the RFC 8785 (JCS) form of the object.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from json.encoder import encode_basestring_ascii
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from xborder_gateway.errors import AuditIntegrityError

__all__ = ["ENTRY_VERSION", "AuditEvent", "EventType", "format_time"]

ENTRY_VERSION: Final = 1

_IDENT = r"^[A-Za-z0-9][A-Za-z0-9._:/+=@#-]{0,127}$"
_HEX_DIGEST = r"^[0-9a-f]{64}$"
_KEY_ID = r"^[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}$"
_REASON = r"^[A-Za-z0-9][A-Za-z0-9._:/+=@ -]{0,95}$"

Ident = Annotated[str, Field(pattern=_IDENT)]
Digest = Annotated[str, Field(pattern=_HEX_DIGEST)]


class EventType(StrEnum):
    """What happened. Values are stable: they are part of the signed log."""

    RECEIVED = "received"
    REJECTED = "rejected"
    VALIDATED = "validated"
    MAPPED = "mapped"
    SEALED = "sealed"
    SENT = "sent"
    RESENT = "resent"
    RECEIPT_RECEIVED = "receipt_received"
    RECEIPT_SENT = "receipt_sent"
    DELIVERED = "delivered"
    DEAD_LETTERED = "dead_lettered"
    OPENED = "opened"
    VERIFIED = "verified"
    DUPLICATE = "duplicate"
    BUSINESS_RESPONSE = "business_response"
    GATE_DECISION = "gate_decision"
    WITNESS_ALARM = "witness_alarm"  # the witness refused a counterpart checkpoint as split-view evidence
    KEY_ROTATED = "key_rotated"  # the checkpoint key was replaced; the new key is announced in a checkpoint


def canonical_json(obj: dict[str, Any]) -> bytes:
    """The reference canonical encoding of an entry's fields (``docs/audit.md`` §2)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def format_time(value: datetime) -> str:
    """The canonical time text: UTC, four-digit year, microseconds, ``Z`` (``docs/audit.md`` §2).

    Written with ``isoformat``: the ``strftime("%Y-...")`` used before writes years below 1000 with fewer
    digits on glibc (year 1 as ``1-01-01T...``), an entry :meth:`AuditEvent.from_canonical` then refused to
    read back; for years 1000-9999 the two texts are the same."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


class AuditEvent(BaseModel):
    """One step of one message on one side. Frozen; build it, append it, never change it."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    time: datetime = Field(description="when the step happened (timezone-aware; stored as UTC)")
    authority: Literal["VN", "CN"]
    process: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$", description="outbound, nanning, receipts …")
    event_type: EventType
    message_id: Ident | None = None
    business_key: Ident | None = Field(default=None, description="the declaration number")
    document_type: Ident | None = None
    raw_sha256: Digest | None = Field(default=None, description="SHA-256 of the raw XML (hex)")
    payload_sha256: Digest | None = Field(default=None, description="SHA-256 of the Avro payload (hex)")
    envelope_sha256: Digest | None = Field(default=None, description="SHA-256 of the sealed envelope (hex)")
    signing_key_id: Annotated[str, Field(pattern=_KEY_ID)] | None = None
    encryption_key_id: Annotated[str, Field(pattern=_KEY_ID)] | None = None
    kafka_topic: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")] | None = None
    kafka_partition: Annotated[int, Field(ge=0, lt=2**31)] | None = None
    kafka_offset: Annotated[int, Field(ge=0, lt=2**63)] | None = None
    attempt: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    outcome: str = Field(default="ok", pattern=r"^[a-z][a-z_]{0,31}$")
    reason_code: Annotated[str, Field(pattern=_REASON)] | None = None

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("time must be timezone-aware (UTC)")
        return value.astimezone(UTC)

    @field_validator("raw_sha256", "payload_sha256", "envelope_sha256", mode="before")
    @classmethod
    def _digest_bytes(cls, value: object) -> object:
        if isinstance(value, bytes | bytearray | memoryview):
            raw = bytes(value)
            if len(raw) != 32:
                raise ValueError("a SHA-256 digest is 32 bytes")
            return raw.hex()
        return value

    def canonical_dict(self) -> dict[str, Any]:
        return {
            "v": ENTRY_VERSION,
            "time": format_time(self.time),
            "authority": self.authority,
            "process": self.process,
            "event_type": self.event_type.value,
            "message_id": self.message_id,
            "business_key": self.business_key,
            "document_type": self.document_type,
            "raw_sha256": self.raw_sha256,
            "payload_sha256": self.payload_sha256,
            "envelope_sha256": self.envelope_sha256,
            "signing_key_id": self.signing_key_id,
            "encryption_key_id": self.encryption_key_id,
            "kafka_topic": self.kafka_topic,
            "kafka_partition": self.kafka_partition,
            "kafka_offset": self.kafka_offset,
            "attempt": self.attempt,
            "outcome": self.outcome,
            "reason_code": self.reason_code,
        }

    def canonical_bytes(self) -> bytes:
        """The entry bytes that are hashed into the tree (``docs/audit.md`` §2).

        Exactly ``json.dumps(canonical_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)``
        (:func:`canonical_json`), written out directly: every connector appends three or four events per
        declaration, and the generic encoder's key sort and type dispatch were a third of an append's cost.
        Strings go through the same escaping function ``json.dumps`` uses; a value of any type but
        ``str``, ``int`` and ``None`` falls back to ``json.dumps`` itself (tests: the two agree on any event).
        """
        d = self.canonical_dict()
        parts: list[str] = []
        for key in _SORTED_KEYS:
            value = d[key]
            if value is None:
                text = "null"
            elif type(value) is str:
                text = encode_basestring_ascii(value)
            elif type(value) is int:
                text = int.__repr__(value)
            else:
                return canonical_json(d)
            parts.append(f'"{key}":{text}')
        return ("{" + ",".join(parts) + "}").encode("ascii")

    @classmethod
    def from_canonical(cls, entry: bytes) -> AuditEvent:
        """Decode entry bytes; refuse anything that is not exactly the canonical encoding (AUD-2)."""
        try:
            obj = json.loads(entry.decode("ascii"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise AuditIntegrityError(f"entry is not canonical JSON: {exc}", code="AUDIT_ENTRY_ENCODING") from exc
        if not isinstance(obj, dict) or obj.get("v") != ENTRY_VERSION:
            raise AuditIntegrityError("entry has no supported version field", code="AUDIT_ENTRY_ENCODING")
        fields = {k: v for k, v in obj.items() if k != "v"}
        try:
            event = cls.model_validate(fields)
        except ValidationError as exc:
            raise AuditIntegrityError(f"entry fields are invalid: {exc.errors()[0]['msg']}",
                                      code="AUDIT_ENTRY_ENCODING") from exc
        if event.canonical_bytes() != entry:
            raise AuditIntegrityError("entry bytes are not in canonical form", code="AUDIT_ENTRY_ENCODING")
        return event


#: the canonical object's keys in the order ``sort_keys`` writes them (plain str order)
_SORTED_KEYS: Final = tuple(sorted(["v", *AuditEvent.model_fields]))
