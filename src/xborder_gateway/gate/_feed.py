"""The adapter between the status feed and the gate's view events (the only place that knows the feed).

The gate reads two forms of ``<authority>.declarations.status`` (key = declaration number):

- **the real feed** -- Avro single-object frames of ``DeclarationStatus.v1`` (``exchange/_status.py``), written
  by the outbound connector (TAKEN_IN, SENT, REJECTED at intake) and the receipt tracker (RESENT, DELIVERED,
  BUSINESS_OUTCOME, DEAD_LETTERED, LATE_RECEIPT), decoded with the project's Avro codec and mapped by
  :func:`from_declaration_status` (table in docs/gate.md "The status feed");
- the gate's own JSON form (:func:`encode_view_event`) that ``gate simulate``, the tests and the bench write
  for synthetic days: ``{"declaration_number": …, "state"|"plate"|"mirror_findings": …}``.

Unknown states (a later schema version, e.g. a new state another site writes first) are not an error: the
record's vehicle part is still applied, its state is not, and :class:`FeedRecord` says so (``ignored``), so
the processor keeps the raw bytes and audits it. Entries from China (``cn.declarations.status``, CN's road
manifests) are one extension point: :func:`direction_of`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from xborder_gateway import avro
from xborder_gateway.gate._codec import GateInputError
from xborder_gateway.gate._model import (
    DeclarationStatus,
    DeclState,
    Direction,
    MirrorFinding,
    VehicleDeclarationSeen,
    ViewEvent,
)
from xborder_gateway.gate._plates import PlateError, normalise_container, normalise_plate

__all__ = ["MAX_FEED_BYTES", "FeedRecord", "decode_feed", "decode_feed_record", "direction_of", "encode_view_event",
           "from_declaration_status", "from_status_record"]

MAX_FEED_BYTES: Final = 262_144

_STATE_ALIASES: Final = {
    "TAKEN_IN": DeclState.TAKEN_IN, "RECEIVED": DeclState.TAKEN_IN, "ACCEPTED_AT_INTAKE": DeclState.TAKEN_IN,
    "SENT": DeclState.SENT, "RESENT": DeclState.SENT, "DELIVERED": DeclState.DELIVERED,
    "PENDING": DeclState.PENDING, "ACCEPTED": DeclState.ACCEPTED, "HELD": DeclState.HELD,
    "REJECTED": DeclState.REJECTED, "REJECTED_AT_INTAKE": DeclState.REJECTED,
    "DEAD_LETTERED": DeclState.DEAD_LETTERED, "CANCELLED": DeclState.CANCELLED,
}


def _text(value: Any, limit: int = 64) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise GateInputError(f"feed field is not a string of 1-{limit} characters", code="GATE_FEED_FIELD")
    return value


def _ms(value: Any) -> int:
    if isinstance(value, datetime):
        value = int(value.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        raise GateInputError("feed time is not a millisecond count", code="GATE_FEED_FIELD")
    return value


def _strings(value: Any, limit: int) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > limit:
        raise GateInputError(f"feed list is not a list of at most {limit}", code="GATE_FEED_FIELD")
    return tuple(_text(v) for v in value)


def _state(raw: Mapping[str, Any]) -> DeclState:
    name = str(raw.get("outcome") or raw.get("state") or raw.get("event") or "").upper()
    if name in ("BUSINESS_OUTCOME", "BUSINESS_RESPONSE"):
        name = str(raw.get("business_outcome") or "").upper()
    try:
        return _STATE_ALIASES[name]
    except KeyError:
        raise GateInputError(f"unknown declaration state {name[:32]!r}", code="GATE_FEED_STATE") from None


def _direction(raw: Mapping[str, Any]) -> Direction:
    value = str(raw.get("direction") or "")
    if value in Direction.__members__:
        return Direction(value)
    # issue 10's authority pair: a VN-sent vehicle declaration is an exit to CN (TOR) unless it is a TIR
    if raw.get("document_type") == "TIR" or raw.get("from_authority") == "CN":
        return Direction.ENTRY_FROM_CN
    return Direction.EXIT_TO_CN


def from_status_record(raw: Mapping[str, Any]) -> list[ViewEvent]:
    """View events of one status-feed record (see the module docstring)."""
    number = _text(raw.get("declaration_number") or raw.get("number"), 35)
    version = int(raw.get("version") or 1)
    events: list[ViewEvent] = []
    plate = raw.get("plate") or raw.get("vehicle_plate")
    if plate:
        try:
            canonical = normalise_plate(_text(plate, 70))
        except PlateError as exc:
            raise GateInputError(f"vehicle declaration {number}: {exc}", code="GATE_FEED_PLATE") from exc
        events.append(VehicleDeclarationSeen(
            number=number, direction=_direction(raw), plate=canonical,
            containers=tuple(normalise_container(c) for c in _strings(raw.get("containers"), 8)),
            linked=_strings(raw.get("linked_declarations"), 100), perishable=bool(raw.get("perishable")),
            version=version, cancelled=str(raw.get("processing_type") or "") == "CANCEL"))
    if raw.get("state") or raw.get("event") or raw.get("outcome"):
        at = raw.get("at_ms", raw.get("time"))
        events.append(DeclarationStatus(number=number, state=_state(raw), at_ms=_ms(at),
                                        reasons=_strings(raw.get("reasons"), 50), version=version))
    for finding in raw.get("mirror_findings") or ():
        if not isinstance(finding, Mapping):
            raise GateInputError("mirror finding is not an object", code="GATE_FEED_FIELD")
        events.append(MirrorFinding(number=number, code=_text(finding.get("code")),
                                    blocking=bool(finding.get("blocking", True))))
    return events


@dataclass(frozen=True, slots=True)
class FeedRecord:
    """What one feed record means to the gate."""

    events: list[ViewEvent] = field(default_factory=list)
    ignored: str | None = None
    """Set (the state's name) when the record's state is not one the gate knows: nothing but its vehicle
    part was applied, and the processor keeps its raw bytes (code ``GATE_FEED_STATE_UNKNOWN``)."""


#: the real feed's states -> the gate's (None: the record changes no declaration state; see docs/gate.md)
_REAL_STATES: Final[dict[str, DeclState | None]] = {
    "TAKEN_IN": DeclState.TAKEN_IN, "SENT": DeclState.SENT, "RESENT": DeclState.SENT,
    "DELIVERED": DeclState.DELIVERED, "DEAD_LETTERED": DeclState.DEAD_LETTERED, "REJECTED": DeclState.REJECTED,
    # a receipt after the dead letter: recorded by the tracker, the outcome stays dead-lettered
    "LATE_RECEIPT": None,
}
_BUSINESS: Final = {"ACCEPTED": DeclState.ACCEPTED, "HELD": DeclState.HELD, "REJECTED": DeclState.REJECTED,
                    "PENDING": DeclState.PENDING}
#: document types of vehicle declarations that announce an entry into Viet Nam (the rest are exits)
_ENTRY_TYPES: Final = frozenset({"TIR"})


def direction_of(authority: str, document_type: str | None) -> Direction:
    """Which way a vehicle declaration's truck crosses, seen from the Vietnamese gate.

    Extension point for entries from China: a vehicle declaration on CN's own feed (``cn.declarations.status``,
    CN's road manifest of a truck leaving for Viet Nam) is an entry; on VN's feed a TIR (arrival) is an
    entry and a TOR (departure) an exit."""
    if authority == "CN" or (document_type or "").upper() in _ENTRY_TYPES:
        return Direction.ENTRY_FROM_CN
    return Direction.EXIT_TO_CN


def from_declaration_status(rec: Mapping[str, Any]) -> FeedRecord:
    """The view events of one decoded ``DeclarationStatus`` record (the real feed; docs/gate.md)."""
    number = _text(rec.get("declaration_number"), 64)
    name = str(rec.get("state") or "")
    at_ms = _ms(rec.get("at"))
    events: list[ViewEvent] = []
    vehicle = rec.get("vehicle")
    if isinstance(vehicle, Mapping) and vehicle.get("plate"):
        try:
            canonical = normalise_plate(_text(vehicle.get("plate"), 70))
        except PlateError as exc:
            raise GateInputError(f"vehicle declaration {number}: {exc}", code="GATE_FEED_PLATE") from exc
        # no version on the feed: the site's decision time orders the records of one key (one partition), so a
        # TAKEN_IN/SENT pair (same time) applies once and an amendment (later) replaces the vehicle
        events.append(VehicleDeclarationSeen(
            number=number, direction=direction_of(str(rec.get("authority") or ""), rec.get("document_type")),
            plate=canonical,
            containers=tuple(normalise_container(c) for c in _strings(vehicle.get("containers"), 8)),
            linked=_strings(vehicle.get("linked_declarations"), 100), perishable=bool(vehicle.get("perishable")),
            version=at_ms))
    if name == "BUSINESS_OUTCOME":
        business = str(rec.get("business_status") or "")
        state: DeclState | None = _BUSINESS.get(business)
        if state is None:
            return FeedRecord(events, ignored=f"BUSINESS_OUTCOME/{business[:24]}")
    elif name in _REAL_STATES:
        state = _REAL_STATES[name]
    else:
        return FeedRecord(events, ignored=name[:32] or "(none)")
    if state is not None:
        reasons = tuple(_text(r.get("code")) for r in rec.get("reasons") or () if isinstance(r, Mapping))
        events.append(DeclarationStatus(
            number=number, state=state, at_ms=at_ms, reasons=reasons[:50], version=None,
            new_submission=name == "TAKEN_IN",
            # a refusal at intake (no message id: nothing was sent) must not overturn what an earlier
            # submission of the same number achieved -- e.g. a DUPLICATE_SUBMISSION of an accepted one
            at_intake=name == "REJECTED"))
    return FeedRecord(events)


def decode_feed_record(value: bytes) -> FeedRecord:
    """What one feed record means; :class:`GateInputError` when it is neither form (or too large)."""
    if len(value) > MAX_FEED_BYTES:
        raise GateInputError(f"feed record of {len(value)} bytes", code="GATE_FEED_TOO_LARGE")
    if value.startswith(avro.MAGIC):
        try:
            decoded = avro.decode(value)
        except (avro.AvroFrameError, ValueError, OverflowError) as exc:
            raise GateInputError(f"feed frame: {exc}", code="GATE_FEED_UNDECODABLE") from exc
        if decoded.schema_name != "DeclarationStatus":
            raise GateInputError(f"a {decoded.schema_name} frame on the status feed", code="GATE_FEED_SCHEMA")
        try:
            return from_declaration_status(decoded.record)
        except (TypeError, ValueError, OverflowError) as exc:
            if isinstance(exc, GateInputError):
                raise
            raise GateInputError(f"feed record: {exc}", code="GATE_FEED_FIELD") from exc
    return FeedRecord(_decode_json(value))


def decode_feed(value: bytes) -> list[ViewEvent]:
    """View events of one feed record (an ignored state gives only its vehicle part)."""
    return decode_feed_record(value).events


def _decode_json(value: bytes) -> list[ViewEvent]:
    try:
        obj = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise GateInputError(f"feed record is neither Avro nor JSON: {exc}", code="GATE_FEED_UNDECODABLE") from exc
    if not isinstance(obj, dict):
        raise GateInputError("feed record is not an object", code="GATE_FEED_UNDECODABLE")
    try:
        return from_status_record(obj)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, GateInputError):
            raise
        raise GateInputError(f"feed record: {exc}", code="GATE_FEED_FIELD") from exc


def encode_view_event(ev: ViewEvent) -> bytes:
    """The provisional JSON form of one view event (generator, demo, tests)."""
    obj: dict[str, Any]
    if isinstance(ev, VehicleDeclarationSeen):
        obj = {"declaration_number": ev.number, "direction": ev.direction.value, "plate": ev.plate,
               "containers": list(ev.containers), "linked_declarations": list(ev.linked),
               "perishable": ev.perishable, "version": ev.version,
               "processing_type": "CANCEL" if ev.cancelled else "REGISTER"}
    elif isinstance(ev, DeclarationStatus):
        obj = {"declaration_number": ev.number, "state": ev.state.value, "at_ms": ev.at_ms,
               "reasons": list(ev.reasons), "version": ev.version}
    else:
        obj = {"declaration_number": ev.number, "mirror_findings": [{"code": ev.code, "blocking": ev.blocking}]}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
