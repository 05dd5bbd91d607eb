"""The status feed for senders: one record per state change of a declaration (issue 10 item 4).

A customs system that publishes a declaration learns what became of it from the topic
``<authority>.declarations.status`` (key = declaration number, Avro ``DeclarationStatus``, single-object
framed like every other payload), without reading audit logs. The connectors build the records here and
produce them in the same transaction as the state change they report, so the feed never says more (or
less) than what was committed. The topic never leaves its site.

Pure functions: :func:`status_record` builds the Kafka record of a :class:`StatusChange`,
:func:`read_status` decodes one, :func:`status_partition` says which partition holds a key's history
(Kafka's own murmur2 partitioner), so ``xborder status`` reads one partition, not the whole topic.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from xborder_gateway.avro import decode, encode
from xborder_gateway.transport import Outgoing, partition_for_key

__all__ = [
    "STATUS_SCHEMA",
    "StatusChange",
    "StatusKind",
    "StatusVehicle",
    "normalise_plate",
    "read_status",
    "status_partition",
    "status_record",
    "unknown_key",
]

STATUS_SCHEMA = "DeclarationStatus"
_PLATE_NOISE = re.compile(r"[\s.\-·•_/]+")


class StatusKind(StrEnum):
    TAKEN_IN = "TAKEN_IN"
    REJECTED = "REJECTED"
    SENT = "SENT"
    RESENT = "RESENT"
    DELIVERED = "DELIVERED"
    BUSINESS_OUTCOME = "BUSINESS_OUTCOME"
    DEAD_LETTERED = "DEAD_LETTERED"
    LATE_RECEIPT = "LATE_RECEIPT"


def normalise_plate(plate: str) -> str:
    """Upper case, without spaces, dots, dashes or middle dots: ``29h1-234.56`` -> ``29H123456``,
    ``桂A·12345`` -> ``桂A12345``."""
    return _PLATE_NOISE.sub("", plate).upper()


def unknown_key(raw: bytes) -> str:
    """The key of input refused before its declaration number could be read."""
    return "unknown:" + hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class StatusVehicle:
    plate: str
    containers: tuple[str, ...] = ()
    linked_declarations: tuple[str, ...] = ()
    perishable: bool = False


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One state change, as the feed carries it."""

    declaration_number: str
    authority: str
    kind: StatusKind
    at_ms: int
    document_type: str | None = None
    message_id: str | None = None
    attempt: int | None = None
    business_status: str | None = None
    reasons: tuple[tuple[str, str], ...] = ()
    intake: tuple[str, int, int] | None = None
    vehicle: StatusVehicle | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def to_avro(self) -> dict[str, Any]:
        return {
            "declaration_number": self.declaration_number,
            "authority": self.authority,
            "document_type": self.document_type,
            "state": self.kind.value,
            "at": self.at_ms,
            "message_id": self.message_id,
            "attempt": self.attempt,
            "business_status": self.business_status,
            "reasons": [{"code": c, "text": t} for c, t in self.reasons],
            "intake": None if self.intake is None else {"topic": self.intake[0], "partition": self.intake[1],
                                                        "offset": self.intake[2]},
            "vehicle": None if self.vehicle is None else {
                "plate": normalise_plate(self.vehicle.plate),
                "containers": list(self.vehicle.containers),
                "linked_declarations": list(self.vehicle.linked_declarations),
                "perishable": self.vehicle.perishable,
            },
        }

    def to_json(self) -> dict[str, Any]:
        """The record as ``xborder status --json`` prints it (times as ISO 8601 UTC)."""
        from datetime import UTC, datetime

        out = self.to_avro()
        out["at"] = datetime.fromtimestamp(self.at_ms / 1000, UTC).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z")
        return out


def status_record(topic: str, change: StatusChange) -> Outgoing:
    """The Kafka record for ``change`` on the status topic (key = declaration number)."""
    if change.kind is StatusKind.BUSINESS_OUTCOME and change.business_status is None:
        raise ValueError("a BUSINESS_OUTCOME status change needs its business_status")
    value = encode(STATUS_SCHEMA, change.to_avro())
    headers = Outgoing.make_headers({"xbg-state": change.kind.value, "xbg-message-id": change.message_id})
    return Outgoing(topic, change.declaration_number.encode("utf-8"), value, headers)


def read_status(value: bytes) -> StatusChange:
    """Decode one status record (raises the Avro frame errors of :func:`xborder_gateway.avro.decode`)."""
    rec = decode(value).record
    intake = rec.get("intake")
    vehicle = rec.get("vehicle")
    at = rec["at"]
    at_ms = int(at.timestamp() * 1000) if hasattr(at, "timestamp") else int(at)
    return StatusChange(
        declaration_number=rec["declaration_number"],
        authority=rec["authority"],
        kind=StatusKind(rec["state"]),
        at_ms=at_ms,
        document_type=rec.get("document_type"),
        message_id=rec.get("message_id"),
        attempt=rec.get("attempt"),
        business_status=rec.get("business_status"),
        reasons=tuple((r["code"], r["text"]) for r in rec.get("reasons") or ()),
        intake=None if intake is None else (intake["topic"], int(intake["partition"]), int(intake["offset"])),
        vehicle=None if vehicle is None else StatusVehicle(
            vehicle["plate"], tuple(vehicle["containers"]), tuple(vehicle["linked_declarations"]),
            bool(vehicle["perishable"])),
    )


def status_partition(declaration_number: str, partitions: int) -> int:
    """The partition Kafka's default partitioner puts this key on (murmur2, like the producer)."""
    return partition_for_key(declaration_number.encode("utf-8"), partitions)
