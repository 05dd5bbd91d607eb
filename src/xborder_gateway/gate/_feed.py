"""The adapter between the status feed and the gate's view events (the only place that knows the feed).

Issue 10 is defining the status feed ``<a>.declarations.status`` (Avro, key = declaration number, one
record per state change) while this is written, so the gate reads two forms:

- an Avro single-object frame of a schema the project knows: mapped by :func:`from_status_record`, which
  reads the field names issue 10 announces (``declaration_number``, ``state``/``event``, ``outcome``,
  ``reasons``, ``plate``, ``containers``, ``linked_declarations``, ``perishable`` …) and ignores the rest;
- the gate's provisional JSON form (:func:`encode_view_event`), which the generator, the demo and the tests
  write until the feed exists: ``{"kind": "vehicle"|"status"|"finding", …}``.

When the feed's schema is fixed, only :func:`from_status_record` needs revisiting (and its tests).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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

__all__ = ["MAX_FEED_BYTES", "decode_feed", "encode_view_event", "from_status_record"]

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
        return int(value.timestamp() * 1000)
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


def decode_feed(value: bytes) -> list[ViewEvent]:
    """View events of one feed record; :class:`GateInputError` when it is neither form."""
    if len(value) > MAX_FEED_BYTES:
        raise GateInputError(f"feed record of {len(value)} bytes", code="GATE_FEED_TOO_LARGE")
    if value.startswith(avro.MAGIC):
        try:
            return from_status_record(avro.decode(value).record)
        except (avro.AvroFrameError, ValueError, OverflowError) as exc:
            raise GateInputError(f"feed frame: {exc}", code="GATE_FEED_UNDECODABLE") from exc
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
