"""The gate's values: what it reads (view events, arrivals), what it decides (decisions), the reason codes.

The view events are the gate's own small types, not the status feed's schema (issue 10 is still fixing
that): :mod:`xborder_gateway.gate._feed` adapts feed records to them, so when the feed's schema settles
only that adapter changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

__all__ = [
    "RED_REASONS",
    "YELLOW_REASONS",
    "Arrival",
    "Colour",
    "Decision",
    "DeclState",
    "DeclarationStatus",
    "Direction",
    "MirrorFinding",
    "Reason",
    "VehicleDeclarationSeen",
    "ViewEvent",
]


class Direction(StrEnum):
    EXIT_TO_CN = "EXIT_TO_CN"
    ENTRY_FROM_CN = "ENTRY_FROM_CN"


class Colour(IntEnum):
    """Ordered by severity: the decision is the most severe colour any reason calls for."""

    GREEN = 0
    YELLOW = 1
    RED = 2


class Reason(StrEnum):
    """Reason codes (stable: they are on the decisions topic and in the audit log; docs/gate.md)."""

    PRE_DECLARED_ACCEPTED = "PRE_DECLARED_ACCEPTED"
    # YELLOW
    DECLARATION_HELD = "DECLARATION_HELD"
    MIRROR_FINDING = "MIRROR_FINDING"
    LOW_CONFIDENCE_READ = "LOW_CONFIDENCE_READ"
    PLATE_FUZZY_MATCH = "PLATE_FUZZY_MATCH"
    PLATE_UNREADABLE = "PLATE_UNREADABLE"
    AWAITING_COUNTERPART = "AWAITING_COUNTERPART"
    COUNTERPART_ANSWER_OVERDUE = "COUNTERPART_ANSWER_OVERDUE"
    LINKED_DECLARATION_UNKNOWN = "LINKED_DECLARATION_UNKNOWN"
    CONTAINER_MISMATCH = "CONTAINER_MISMATCH"
    # RED
    NO_PRE_DECLARATION = "NO_PRE_DECLARATION"
    DECLARATION_REJECTED = "DECLARATION_REJECTED"
    DECLARATION_DEAD_LETTERED = "DECLARATION_DEAD_LETTERED"
    DECLARATION_CANCELLED = "DECLARATION_CANCELLED"
    AMBIGUOUS_PLATE = "AMBIGUOUS_PLATE"
    CLEARANCE_ALREADY_USED = "CLEARANCE_ALREADY_USED"
    ARRIVAL_INVALID = "ARRIVAL_INVALID"


YELLOW_REASONS = frozenset({
    Reason.DECLARATION_HELD, Reason.MIRROR_FINDING, Reason.LOW_CONFIDENCE_READ, Reason.PLATE_FUZZY_MATCH,
    Reason.PLATE_UNREADABLE, Reason.AWAITING_COUNTERPART, Reason.COUNTERPART_ANSWER_OVERDUE,
    Reason.LINKED_DECLARATION_UNKNOWN, Reason.CONTAINER_MISMATCH,
})
RED_REASONS = frozenset({
    Reason.NO_PRE_DECLARATION, Reason.DECLARATION_REJECTED, Reason.DECLARATION_DEAD_LETTERED,
    Reason.DECLARATION_CANCELLED, Reason.AMBIGUOUS_PLATE, Reason.CLEARANCE_ALREADY_USED, Reason.ARRIVAL_INVALID,
})


def colour_of(reason: Reason) -> Colour:
    if reason in RED_REASONS:
        return Colour.RED
    if reason in YELLOW_REASONS:
        return Colour.YELLOW
    return Colour.GREEN


class DeclState(StrEnum):
    """What the gate knows of one declaration, from the status feed (later states win; see ``rank``)."""

    TAKEN_IN = "TAKEN_IN"
    SENT = "SENT"
    DELIVERED = "DELIVERED"  # signed receipt: the counterpart has it, business answer outstanding
    PENDING = "PENDING"  # counterpart's business answer: waiting for linked declarations (issue 15)
    ACCEPTED = "ACCEPTED"
    HELD = "HELD"
    REJECTED = "REJECTED"  # by the counterpart's business rules, or refused at intake
    DEAD_LETTERED = "DEAD_LETTERED"
    CANCELLED = "CANCELLED"

    @property
    def answered(self) -> bool:
        return self in (DeclState.ACCEPTED, DeclState.HELD, DeclState.REJECTED)


@dataclass(frozen=True, slots=True)
class VehicleDeclarationSeen:
    """A vehicle declaration (TIR/TOR, or CN's road manifest for entries) became known to the site."""

    number: str
    direction: Direction
    plate: str  # canonical form (normalise_plate)
    containers: tuple[str, ...] = ()
    linked: tuple[str, ...] = ()
    perishable: bool = False
    version: int = 1  # amendment counter; a lower version than the one held is ignored
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class DeclarationStatus:
    """A state change of one declaration (goods or vehicle), as the status feed reports it."""

    number: str
    state: DeclState
    at_ms: int
    reasons: tuple[str, ...] = ()
    version: int | None = 1
    """Amendment counter (the JSON form); None on the real feed: the submission the view holds, unless
    ``new_submission`` starts the next one."""
    new_submission: bool = False
    """The record starts a new submission of the number (the real feed's TAKEN_IN): it replaces any state
    the previous submission reached (an amendment of a HELD or REJECTED declaration)."""
    at_intake: bool = False
    """A refusal at intake (nothing was sent): it only applies when the view holds nothing for the number."""


@dataclass(frozen=True, slots=True)
class MirrorFinding:
    """A mirror-check finding on a declaration (issue 10); ``blocking`` findings make the truck YELLOW."""

    number: str
    code: str
    blocking: bool = True


ViewEvent = VehicleDeclarationSeen | DeclarationStatus | MirrorFinding


@dataclass(frozen=True, slots=True)
class Arrival:
    """A decoded, bounded camera event (see ``_codec.decode_arrival``)."""

    arrival_id: str
    gate_id: str
    lane: str
    direction: Direction
    plate_read: str
    plate_confidence: float
    camera_ms: int
    containers_read: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision record; immutable. A superseding decision is a new one with ``sequence + 1``."""

    arrival_id: str
    sequence: int
    colour: Colour
    reasons: tuple[Reason, ...]
    gate_id: str
    lane: str
    direction: Direction
    camera_ms: int
    decided_ms: int
    priority_lane: bool = False
    vehicle_declaration: str | None = None
    linked_declarations: tuple[str, ...] = ()
    match_score: float = 0.0
    plate_hmac: str = ""
    notes: tuple[str, ...] = field(default=())
    supersedes: str | None = None

    @property
    def decision_id(self) -> str:
        return f"{self.arrival_id}/{self.sequence}"

    @property
    def primary_reason(self) -> Reason:
        return self.reasons[0]

    def same_outcome(self, other: Decision) -> bool:
        """Same colour, reasons, match and lane flag: re-deciding to this is not worth a new record."""
        return (self.colour, self.reasons, self.vehicle_declaration, self.priority_lane) == (
            other.colour, other.reasons, other.vehicle_declaration, other.priority_lane)
