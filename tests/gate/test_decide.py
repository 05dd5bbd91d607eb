"""The decision core, rule by rule, on seeded cases (pure: an in-memory view and a pinned clock)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest

from xborder_gateway.gate import (
    Arrival,
    Colour,
    DeclState,
    Direction,
    GatePolicy,
    MemoryView,
    MirrorFinding,
    Reason,
    VehicleDeclarationSeen,
    decide,
    redecide,
)

NOW = 1_780_000_000_000  # 2026-05-28, fruit season
POLICY = GatePolicy(min_confidence=0.85, grace_ms=600_000)
BOX = "CSQU3054383"
OTHER_BOX = "MSCU1234566"

VEHICLE = VehicleDeclarationSeen(number="910000000001", direction=Direction.EXIT_TO_CN, plate="12C34560",
                                 containers=(BOX,), linked=("300000000001", "300000000002"), perishable=True)
CN_TRUCK = VehicleDeclarationSeen(number="900000000009", direction=Direction.ENTRY_FROM_CN, plate="桂A12345",
                                  linked=("CN0000000001",))


def arrival(plate: str = "12C-345.60", *, confidence: float = 0.97, containers: tuple[str, ...] = (),
            direction: Direction = Direction.EXIT_TO_CN, arrival_id: str = "a1") -> Arrival:
    return Arrival(arrival_id=arrival_id, gate_id="HUU_NGHI", lane="L1", direction=direction, plate_read=plate,
                   plate_confidence=confidence, camera_ms=NOW - 1000, containers_read=containers)


def accepted_view(*vehicles: VehicleDeclarationSeen) -> MemoryView:
    view = MemoryView()
    for v in vehicles or (VEHICLE,):
        view.add_vehicle(v)
        for n in (v.number, *v.linked):
            view.set_state(n, DeclState.ACCEPTED, NOW - 3_600_000)
    return view


@dataclass(frozen=True)
class Case:
    name: str
    change: Callable[[MemoryView], object]
    arrival: Arrival
    colour: Colour
    reason: Reason


def _state(n: str, s: DeclState, sent: int = NOW - 3_600_000) -> Callable[[MemoryView], object]:
    return lambda v: v.set_state(n, s, sent)


CASES = [
    Case("all-accepted", lambda v: None, arrival(), Colour.GREEN, Reason.PRE_DECLARED_ACCEPTED),
    Case("containers-read-and-right", lambda v: None, arrival(containers=(BOX,)), Colour.GREEN,
         Reason.PRE_DECLARED_ACCEPTED),
    Case("bad-check-digit-ignored", lambda v: None, arrival(containers=("CSQU3054384",)), Colour.GREEN,
         Reason.PRE_DECLARED_ACCEPTED),
    Case("cn-entry-accepted", lambda v: v.add_vehicle(CN_TRUCK).set_state(CN_TRUCK.number, DeclState.ACCEPTED)
         .set_state("CN0000000001", DeclState.ACCEPTED),
         arrival("桂A·12345", direction=Direction.ENTRY_FROM_CN), Colour.GREEN, Reason.PRE_DECLARED_ACCEPTED),
    # YELLOW
    Case("linked-held", _state("300000000002", DeclState.HELD), arrival(), Colour.YELLOW, Reason.DECLARATION_HELD),
    Case("mirror-finding", lambda v: v.add_finding(MirrorFinding("300000000001", "HS6_MISMATCH")), arrival(),
         Colour.YELLOW, Reason.MIRROR_FINDING),
    Case("non-blocking-finding", lambda v: v.add_finding(MirrorFinding("300000000001", "ROUNDING", False)),
         arrival(), Colour.GREEN, Reason.PRE_DECLARED_ACCEPTED),
    Case("low-confidence", lambda v: None, arrival(confidence=0.6), Colour.YELLOW, Reason.LOW_CONFIDENCE_READ),
    Case("fuzzy-0-O", lambda v: None, arrival("12C-345.6O"), Colour.YELLOW, Reason.PLATE_FUZZY_MATCH),
    Case("fuzzy-missing-char", lambda v: None, arrival("12C-3456"), Colour.YELLOW, Reason.PLATE_FUZZY_MATCH),
    Case("awaiting-within-grace", _state("300000000001", DeclState.DELIVERED, NOW - 60_000), arrival(),
         Colour.YELLOW, Reason.AWAITING_COUNTERPART),
    Case("pending-within-grace", _state("300000000001", DeclState.PENDING, NOW - 60_000), arrival(),
         Colour.YELLOW, Reason.AWAITING_COUNTERPART),
    Case("overdue-after-grace", _state("300000000001", DeclState.SENT, NOW - 600_001), arrival(),
         Colour.YELLOW, Reason.COUNTERPART_ANSWER_OVERDUE),
    Case("linked-unknown", lambda v: v.states.pop("300000000002"), arrival(), Colour.YELLOW,
         Reason.LINKED_DECLARATION_UNKNOWN),
    Case("wrong-container", lambda v: None, arrival(containers=(OTHER_BOX,)), Colour.YELLOW,
         Reason.CONTAINER_MISMATCH),
    Case("unreadable", lambda v: None, arrival(""), Colour.YELLOW, Reason.PLATE_UNREADABLE),
    # RED
    Case("no-pre-declaration", lambda v: None, arrival("29H1-234.56"), Colour.RED, Reason.NO_PRE_DECLARATION),
    Case("wrong-direction", lambda v: None, arrival(direction=Direction.ENTRY_FROM_CN), Colour.RED,
         Reason.NO_PRE_DECLARATION),
    Case("linked-rejected", _state("300000000001", DeclState.REJECTED), arrival(), Colour.RED,
         Reason.DECLARATION_REJECTED),
    Case("vehicle-rejected", _state(VEHICLE.number, DeclState.REJECTED), arrival(), Colour.RED,
         Reason.DECLARATION_REJECTED),
    Case("dead-lettered", _state("300000000002", DeclState.DEAD_LETTERED), arrival(), Colour.RED,
         Reason.DECLARATION_DEAD_LETTERED),
    Case("rejected-beats-held", lambda v: (v.set_state("300000000001", DeclState.HELD),
                                           v.set_state("300000000002", DeclState.REJECTED)),
         arrival(), Colour.RED, Reason.DECLARATION_REJECTED),
    Case("ambiguous-fuzzy", lambda v: v.add_vehicle(replace(VEHICLE, number="910000000002", plate="12C34S60")),
         arrival("12C-34S.6O"), Colour.RED, Reason.AMBIGUOUS_PLATE),
    Case("clearance-used", lambda v: v.clearances.__setitem__(VEHICLE.number, "a0"), arrival(), Colour.RED,
         Reason.CLEARANCE_ALREADY_USED),
    Case("cancelled", lambda v: (v.by_plate.__setitem__("12C34560", [replace(VEHICLE, cancelled=True)])),
         arrival(), Colour.RED, Reason.DECLARATION_CANCELLED),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rule(case: Case) -> None:
    view = accepted_view()
    case.change(view)
    d = decide(case.arrival, view, POLICY, NOW)
    assert (d.colour, d.primary_reason) == (case.colour, case.reason), d.reasons
    assert d.decided_ms == NOW


def test_perishable_gets_the_priority_lane_and_others_do_not() -> None:
    assert decide(arrival(), accepted_view(), POLICY, NOW).priority_lane is True
    plain = replace(VEHICLE, perishable=False)
    assert decide(arrival(), accepted_view(plain), POLICY, NOW).priority_lane is False


def test_exact_match_wins_over_a_confusable_neighbour() -> None:
    view = accepted_view(VEHICLE, replace(VEHICLE, number="910000000002", plate="12C34580",
                                          linked=("300000000003",)))
    view.set_state("300000000003", DeclState.ACCEPTED)
    d = decide(arrival("12C-345.60"), view, POLICY, NOW)
    assert (d.colour, d.vehicle_declaration) == (Colour.GREEN, VEHICLE.number)


def test_a_second_open_declaration_of_the_same_truck_is_used_after_the_first() -> None:
    second = replace(VEHICLE, number="910000000003", linked=())
    view = accepted_view(VEHICLE, second)
    view.clearances[VEHICLE.number] = "a0"
    d = decide(arrival(), view, POLICY, NOW)
    assert (d.colour, d.vehicle_declaration) == (Colour.GREEN, second.number)


def test_a_container_read_picks_between_two_trucks() -> None:
    other = replace(VEHICLE, number="910000000002", plate="12C34S60", containers=(OTHER_BOX,), linked=())
    view = accepted_view(VEHICLE, other)
    assert decide(arrival("12C-34S.6O"), view, POLICY, NOW).primary_reason is Reason.AMBIGUOUS_PLATE
    d = decide(arrival("12C-34S.6O", containers=(OTHER_BOX,)), view, POLICY, NOW)
    assert d.vehicle_declaration == other.number
    assert d.colour is Colour.YELLOW
    assert Reason.PLATE_FUZZY_MATCH in d.reasons


# ---- GATE-2 on seeded OCR noise: a fuzzy match is never GREEN ------------------------------------------
_CONFUSE = {"0": "O", "O": "0", "8": "B", "B": "8", "1": "I", "I": "1", "5": "S", "2": "Z"}


def _corrupt(rng: random.Random, plate: str) -> str:
    chars = list(plate)
    for _ in range(rng.randint(1, 2)):
        i = rng.randrange(len(chars))
        if rng.random() < 0.3:
            del chars[i]
        elif chars[i] in _CONFUSE:
            chars[i] = _CONFUSE[chars[i]]
    return "".join(chars)


@pytest.mark.parametrize("seed", range(5))
def test_ocr_confused_plates_are_matched_or_yellow_never_green(seed: int) -> None:
    rng = random.Random(seed)
    vehicles = [replace(VEHICLE, number=f"91{i:010d}", plate=f"{rng.choice(['12C', '29H', '15C'])}"
                        f"{rng.randint(10000, 99999)}", linked=()) for i in range(300)]
    view = accepted_view(*vehicles)
    corrupted = right = 0
    for i, v in enumerate(vehicles):
        read = _corrupt(rng, v.plate)
        if read == v.plate:
            continue
        corrupted += 1
        d = decide(arrival(read, arrival_id=f"s{seed}-{i}"), view, POLICY, NOW)
        assert d.colour is not Colour.GREEN, (read, v.plate, d)  # GATE-2
        right += d.vehicle_declaration == v.number and d.primary_reason is Reason.PLATE_FUZZY_MATCH
    assert corrupted > 150
    assert right / corrupted > 0.8  # most noisy reads still find their truck (for an officer to confirm)


# ---- superseding (GATE-6) ------------------------------------------------------------------------------
def test_business_response_after_the_truck_supersedes_yellow_with_green() -> None:
    view = accepted_view()
    view.set_state("300000000002", DeclState.DELIVERED, NOW - 10_000)
    first = decide(arrival(), view, POLICY, NOW)
    assert (first.colour, first.primary_reason) == (Colour.YELLOW, Reason.AWAITING_COUNTERPART)
    assert redecide(first, arrival(), view, POLICY, NOW + 1) is None  # nothing changed: no new record
    view.set_state("300000000002", DeclState.ACCEPTED, NOW - 10_000)
    second = redecide(first, arrival(), view, POLICY, NOW + 5000)
    assert second is not None
    assert (second.colour, second.sequence, second.supersedes) == (Colour.GREEN, 2, first.decision_id)
    assert first.colour is Colour.YELLOW  # the first decision is untouched (frozen)


def test_clearance_used_is_final_and_old_arrivals_are_left_alone() -> None:
    view = accepted_view()
    view.clearances[VEHICLE.number] = "a0"
    used = decide(arrival(), view, POLICY, NOW)
    view.clearances.clear()
    assert redecide(used, arrival(), view, POLICY, NOW) is None
    view.set_state("300000000001", DeclState.HELD)
    held = decide(arrival(), view, POLICY, NOW)
    view.set_state("300000000001", DeclState.ACCEPTED)
    assert redecide(held, arrival(), view, POLICY, NOW + POLICY.supersede_window_ms + 1) is None
