"""Arrivals and decisions on the wire (Avro single-object frames of GateArrival.v1 / GateDecision.v1)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

from xborder_gateway import avro
from xborder_gateway.errors import IntakeError
from xborder_gateway.gate._model import Arrival, Colour, Decision, Direction, Reason

__all__ = ["GateInputError", "decode_arrival", "decode_decision", "encode_arrival", "encode_decision"]

_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_GATE: Final = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")
_LANE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,15}$")
#: camera times the gate accepts (GATE-1): 2000-01-01 .. 2100-01-01; year 1 or 9999 is a broken clock
_MIN_MS: Final = 946_684_800_000
_MAX_MS: Final = 4_102_444_800_000
MAX_ARRIVAL_BYTES: Final = 4096


class GateInputError(IntakeError):
    """An arrival record the gate cannot use (decided RED ``ARRIVAL_INVALID``, raw bytes kept)."""

    default_code = "GATE_ARRIVAL_INVALID"


def _ms(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value)


def encode_arrival(arrival: Arrival) -> bytes:
    return avro.encode("GateArrival", {
        "arrival_id": arrival.arrival_id, "gate_id": arrival.gate_id, "lane": arrival.lane,
        "direction": arrival.direction.value, "plate_read": arrival.plate_read,
        "plate_confidence": arrival.plate_confidence, "containers_read": list(arrival.containers_read),
        "camera_time": arrival.camera_ms})


def decode_arrival(data: bytes) -> Arrival:
    """A bounded, checked :class:`Arrival`, or :class:`GateInputError` saying what is wrong (GATE-1)."""
    if len(data) > MAX_ARRIVAL_BYTES:
        raise GateInputError(f"arrival record of {len(data)} bytes (limit {MAX_ARRIVAL_BYTES})",
                             code="GATE_ARRIVAL_TOO_LARGE")
    try:
        decoded = avro.decode(data)
    except avro.AvroFrameError as exc:
        raise GateInputError(f"not a GateArrival frame: {exc}", code="GATE_ARRIVAL_UNDECODABLE") from exc
    except (ValueError, OverflowError, OSError) as exc:  # fastavro's datetime conversion of extreme longs
        raise GateInputError(f"arrival time out of range: {exc}", code="GATE_ARRIVAL_TIME") from exc
    if decoded.schema_name != "GateArrival":
        raise GateInputError(f"a {decoded.schema_name} record on the arrivals topic", code="GATE_ARRIVAL_SCHEMA")
    r = decoded.record
    if not _ID.match(r["arrival_id"]):
        raise GateInputError("arrival_id is not 1-64 characters [A-Za-z0-9._:-]", code="GATE_ARRIVAL_ID")
    if not _GATE.match(r["gate_id"]) or not _LANE.match(r["lane"]):
        raise GateInputError("gate_id or lane is not an identifier", code="GATE_ARRIVAL_GATE")
    camera_ms = _ms(r["camera_time"])
    if not _MIN_MS <= camera_ms < _MAX_MS:
        raise GateInputError(f"camera time {camera_ms} ms is outside 2000-2100", code="GATE_ARRIVAL_TIME")
    confidence = float(r["plate_confidence"])
    if not 0.0 <= confidence <= 1.0:  # NaN fails both comparisons
        raise GateInputError(f"plate confidence {confidence} is not in [0, 1]", code="GATE_ARRIVAL_CONFIDENCE")
    containers = tuple(r["containers_read"])
    if len(containers) > 4 or any(len(c) > 20 for c in containers):
        raise GateInputError("more than 4 containers, or a container read over 20 characters",
                             code="GATE_ARRIVAL_CONTAINERS")
    if len(r["plate_read"]) > 70:
        raise GateInputError("plate read over 70 characters", code="GATE_ARRIVAL_PLATE")
    return Arrival(arrival_id=r["arrival_id"], gate_id=r["gate_id"], lane=r["lane"],
                   direction=Direction(r["direction"]), plate_read=r["plate_read"], plate_confidence=confidence,
                   camera_ms=camera_ms, containers_read=containers)


def encode_decision(d: Decision) -> bytes:
    return avro.encode("GateDecision", {
        "decision_id": d.decision_id, "arrival_id": d.arrival_id, "sequence": d.sequence,
        "supersedes": d.supersedes, "gate_id": d.gate_id, "lane": d.lane, "direction": d.direction.value,
        "colour": d.colour.name, "reasons": [r.value for r in d.reasons], "notes": list(d.notes),
        "priority_lane": d.priority_lane, "vehicle_declaration": d.vehicle_declaration,
        "linked_declarations": list(d.linked_declarations), "match_score": d.match_score,
        "plate_hmac": d.plate_hmac, "camera_time": d.camera_ms, "decided_at": d.decided_ms})


def decode_decision(data: bytes) -> Decision:
    r = avro.decode(data).record
    return Decision(
        arrival_id=r["arrival_id"], sequence=r["sequence"], colour=Colour[r["colour"]],
        reasons=tuple(Reason(x) for x in r["reasons"]), gate_id=r["gate_id"], lane=r["lane"],
        direction=Direction(r["direction"]), camera_ms=_ms(r["camera_time"]), decided_ms=_ms(r["decided_at"]),
        priority_lane=r["priority_lane"], vehicle_declaration=r["vehicle_declaration"],
        linked_declarations=tuple(r["linked_declarations"]), match_score=r["match_score"],
        plate_hmac=r["plate_hmac"], notes=tuple(r["notes"]), supersedes=r["supersedes"])


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
