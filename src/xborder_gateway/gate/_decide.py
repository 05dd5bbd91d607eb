"""The decision core: one arrival + a snapshot of the view + the clock -> one decision. No I/O.

Rules (docs/gate.md §Rules; each check cites its rule id):

- GATE-1  inputs are bounded before any work (plate length, container count, confidence range);
- GATE-2  a fuzzy plate match never gives GREEN (PLATE_FUZZY_MATCH is a YELLOW reason);
- GATE-3  a container read counts only with a right ISO 6346 check digit;
- GATE-4  a clearance is used once: a second arrival on the same vehicle declaration is RED;
- GATE-5  GREEN needs an exact plate match, every declaration (vehicle + linked) ACCEPTED by the receiving
          side and no blocking mirror finding; any other state makes it YELLOW or RED as listed in
          :mod:`xborder_gateway.gate._model`;
- GATE-6  a decision is never edited: a changed outcome is a new decision that names the one it supersedes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from xborder_gateway.gate._model import (
    Arrival,
    Colour,
    Decision,
    DeclState,
    MirrorFinding,
    Reason,
    VehicleDeclarationSeen,
    colour_of,
)
from xborder_gateway.gate._plates import (
    PlateError,
    PlateMatch,
    container_valid,
    normalise_container,
    normalise_plate,
)

__all__ = ["DeclRecord", "GatePolicy", "GateView", "decide", "redecide"]

_REASON_ORDER = {r: i for i, r in enumerate(Reason)}
_TERMINAL = frozenset({Reason.CLEARANCE_ALREADY_USED, Reason.ARRIVAL_INVALID})


@dataclass(frozen=True)
class GatePolicy:
    """The tunable part of the rules (settings ``gate_*``)."""

    min_confidence: float = 0.85
    """A plate read below this confidence is YELLOW LOW_CONFIDENCE_READ."""
    grace_ms: int = 600_000
    """How long after a declaration was sent its outstanding answer is AWAITING_COUNTERPART (then OVERDUE)."""
    supersede_window_ms: int = 12 * 3_600_000
    """Arrivals older than this (camera time) are no longer re-decided when the view changes."""


@dataclass(frozen=True, slots=True)
class DeclRecord:
    """What the view holds for one declaration number."""

    state: DeclState
    sent_ms: int
    """When it was first sent (else first seen): the start of the grace period."""


class GateView(Protocol):
    """The read side the core decides from (the SQLite store implements it, tests use ``MemoryView``)."""

    def plate_matches(self, plate: str) -> Sequence[PlateMatch]: ...

    def vehicles(self, plate: str) -> Sequence[VehicleDeclarationSeen]: ...

    def declaration(self, number: str) -> DeclRecord | None: ...

    def findings(self, number: str) -> Sequence[MirrorFinding]: ...

    def clearance_holder(self, vehicle_declaration: str) -> str | None: ...


def _finish(arrival: Arrival, reasons: list[Reason], now_ms: int, *, vehicle: VehicleDeclarationSeen | None,
            score: float, plate_hmac: str, notes: Sequence[str], sequence: int = 1,
            supersedes: str | None = None) -> Decision:
    unique = sorted(set(reasons) or {Reason.PRE_DECLARED_ACCEPTED},
                    key=lambda r: (-colour_of(r), _REASON_ORDER[r]))
    colour = max(colour_of(r) for r in unique)
    if score < 1.0 and colour == Colour.GREEN:  # GATE-2: belt and braces; never reached by the rules
        raise AssertionError("a fuzzy plate match produced GREEN")
    return Decision(
        arrival_id=arrival.arrival_id, sequence=sequence, colour=colour, reasons=tuple(unique),
        gate_id=arrival.gate_id, lane=arrival.lane, direction=arrival.direction, camera_ms=arrival.camera_ms,
        decided_ms=now_ms, priority_lane=bool(vehicle and vehicle.perishable),
        vehicle_declaration=vehicle.number if vehicle else None,
        linked_declarations=vehicle.linked if vehicle else (), match_score=score, plate_hmac=plate_hmac,
        notes=tuple(dict.fromkeys(notes)), supersedes=supersedes)


def _declaration_reasons(numbers: Sequence[str], view: GateView, policy: GatePolicy, now_ms: int,
                         vehicle_number: str) -> list[Reason]:
    reasons: list[Reason] = []
    for number in numbers:
        record = view.declaration(number)
        if record is None:
            if number != vehicle_number:
                reasons.append(Reason.LINKED_DECLARATION_UNKNOWN)
                continue
            # a vehicle declaration we saw but with no status yet: outstanding since... unknown -> awaiting
            reasons.append(Reason.AWAITING_COUNTERPART)
        elif record.state is DeclState.REJECTED:
            reasons.append(Reason.DECLARATION_REJECTED)
        elif record.state is DeclState.DEAD_LETTERED:
            reasons.append(Reason.DECLARATION_DEAD_LETTERED)
        elif record.state is DeclState.CANCELLED:
            reasons.append(Reason.DECLARATION_CANCELLED)
        elif record.state is DeclState.HELD:
            reasons.append(Reason.DECLARATION_HELD)
        elif record.state is not DeclState.ACCEPTED:  # GATE-5: only ACCEPTED lets GREEN through
            within = now_ms - record.sent_ms <= policy.grace_ms
            reasons.append(Reason.AWAITING_COUNTERPART if within else Reason.COUNTERPART_ANSWER_OVERDUE)
        if any(f.blocking for f in view.findings(number)):
            reasons.append(Reason.MIRROR_FINDING)
    return reasons


def _candidates(arrival: Arrival, plate: str, view: GateView
                ) -> tuple[list[tuple[PlateMatch, VehicleDeclarationSeen]], bool]:
    """Vehicle declarations of the arrival's direction whose plate matches (exact ones win over fuzzy
    neighbours), oldest first; and whether cancelled ones matched (they only explain why there is none)."""
    matches = list(view.plate_matches(plate))
    exact = [m for m in matches if m.cost == 0.0]
    if exact:
        matches = exact
    candidates: list[tuple[PlateMatch, VehicleDeclarationSeen]] = []
    cancelled = False
    for m in matches:
        for v in view.vehicles(m.plate):
            if v.direction is not arrival.direction:
                continue
            if v.cancelled:
                cancelled = True
            else:
                candidates.append((m, v))
    return candidates, cancelled


def decide(arrival: Arrival, view: GateView, policy: GatePolicy, now_ms: int, *,
           plate_hmac: str = "", sequence: int = 1, supersedes: str | None = None) -> Decision:
    """The decision for ``arrival`` on ``view`` at ``now_ms`` (pure; see the module docstring)."""
    reasons: list[Reason] = []
    notes: list[str] = []
    if not 0.0 <= arrival.plate_confidence <= 1.0 or arrival.plate_confidence < policy.min_confidence:
        reasons.append(Reason.LOW_CONFIDENCE_READ)
    containers: set[str] = set()
    for read in arrival.containers_read[:4]:  # GATE-1: at most 4 containers on a truck
        number = normalise_container(read)
        if container_valid(number):  # GATE-3
            containers.add(number)
        else:
            notes.append("CONTAINER_READ_INVALID")

    def finish(found: list[Reason], vehicle: VehicleDeclarationSeen | None, score: float) -> Decision:
        return _finish(arrival, found, now_ms, vehicle=vehicle, score=score, plate_hmac=plate_hmac, notes=notes,
                       sequence=sequence, supersedes=supersedes)

    try:
        plate = normalise_plate(arrival.plate_read)
    except PlateError:
        return finish([*reasons, Reason.PLATE_UNREADABLE], None, 0.0)

    candidates, cancelled = _candidates(arrival, plate, view)
    if not candidates:
        reason = Reason.DECLARATION_CANCELLED if cancelled else Reason.NO_PRE_DECLARATION
        return finish([*reasons, reason], None, 0.0)

    # GATE-4: a clearance held by another arrival is used
    free = [(m, v) for m, v in candidates if view.clearance_holder(v.number) in (None, arrival.arrival_id)]
    if not free:
        m, v = candidates[0]
        return finish([*reasons, Reason.CLEARANCE_ALREADY_USED], v, 1.0 - m.cost)
    if containers:  # a valid container read narrows the candidates when it can
        with_box = [(m, v) for m, v in free if containers & set(v.containers)]
        free = with_box or free
    plates = {m.plate for m, _ in free}
    if len(plates) > 1:
        return finish([*reasons, Reason.AMBIGUOUS_PLATE], None, 0.0)
    # one plate: its oldest open declaration (a truck pre-declared for several trips uses them in order)
    m, v = free[0]
    if m.cost > 0.0:
        reasons.append(Reason.PLATE_FUZZY_MATCH)  # GATE-2
    if containers and v.containers and not containers <= set(v.containers):
        reasons.append(Reason.CONTAINER_MISMATCH)
    reasons.extend(_declaration_reasons((v.number, *v.linked), view, policy, now_ms, v.number))
    return finish(reasons, v, round(1.0 - m.cost, 6))


def redecide(previous: Decision, arrival: Arrival, view: GateView, policy: GatePolicy,
             now_ms: int) -> Decision | None:
    """A superseding decision when the view changed the outcome (GATE-6), else None."""
    if previous.primary_reason in _TERMINAL:
        return None
    if now_ms - arrival.camera_ms > policy.supersede_window_ms:
        return None
    fresh = decide(arrival, view, policy, now_ms, plate_hmac=previous.plate_hmac,
                   sequence=previous.sequence + 1, supersedes=previous.decision_id)
    return None if fresh.same_outcome(previous) else fresh
