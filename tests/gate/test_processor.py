"""The processor on a real SQLite view: decided once, replay-safe, superseding, plates never in the audit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xborder_gateway.audit import AuditEvent, EventType
from xborder_gateway.gate import (
    Arrival,
    Colour,
    DeclarationStatus,
    DeclRecord,
    DeclState,
    Direction,
    GatePolicy,
    GateProcessor,
    GateStore,
    PlateHasher,
    Reason,
    VehicleDeclarationSeen,
    accepts_status,
    decode_decision,
    encode_arrival,
    encode_view_event,
)
from xborder_gateway.transport import Incoming

NOW = 1_780_000_000_000
ARR, FEED, OUT = "vn.gate.arrivals", "vn.declarations.status", "vn.gate.decisions"
TRUCK = VehicleDeclarationSeen(number="910000000001", direction=Direction.EXIT_TO_CN, plate="12C34560",
                               linked=("300000000001",), perishable=True)


class Feed:
    """Builds Incoming records with increasing offsets per topic."""

    def __init__(self) -> None:
        self.offsets: dict[str, int] = {}

    def rec(self, topic: str, value: bytes, key: bytes | None = None) -> Incoming:
        off = self.offsets.get(topic, 0)
        self.offsets[topic] = off + 1
        return Incoming(topic, 0, off, key, value, (), NOW)

    def view(self, *events: object) -> list[Incoming]:
        return [self.rec(FEED, encode_view_event(e)) for e in events]  # type: ignore[arg-type]

    def arrival(self, arrival_id: str, plate: str = "12C-345.60", confidence: float = 0.97) -> Incoming:
        a = Arrival(arrival_id, "HUU_NGHI", "L1", Direction.EXIT_TO_CN, plate, confidence, NOW - 500)
        return self.rec(ARR, encode_arrival(a), arrival_id.encode())


class Audit:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def __call__(self, events: object) -> None:
        self.events.extend(events)  # type: ignore[call-overload]


def processor(store: GateStore, audit: Audit | None = None, clock: list[int] | None = None) -> GateProcessor:
    t = clock or [NOW]
    return GateProcessor(store, PlateHasher(b"k" * 32), GatePolicy(), lambda: t[0], arrivals_topic=ARR,
                         decisions_topic=OUT, audit=audit)


def accepted(*numbers: str) -> list[DeclarationStatus]:
    return [DeclarationStatus(n, DeclState.ACCEPTED, NOW - 60_000) for n in numbers]


def test_green_then_second_arrival_on_the_same_clearance_is_red() -> None:
    f, store = Feed(), GateStore.memory()
    p = processor(store)
    r = p.handle([*f.view(TRUCK, *accepted(TRUCK.number, *TRUCK.linked)), f.arrival("a1")])
    assert [(d.colour, d.primary_reason, d.priority_lane) for d in r.decisions] == [
        (Colour.GREEN, Reason.PRE_DECLARED_ACCEPTED, True)]
    r2 = p.handle([f.arrival("a2")])
    assert [(d.colour, d.primary_reason) for d in r2.decisions] == [(Colour.RED, Reason.CLEARANCE_ALREADY_USED)]
    assert [decode_decision(o.value).decision_id for o in r.outputs + r2.outputs] == ["a1/1", "a2/1"]


def test_a_redone_batch_re_emits_the_same_decisions_and_decides_nothing_again() -> None:
    f, store, audit = Feed(), GateStore.memory(), Audit()
    p = processor(store, audit)
    batch = [*f.view(TRUCK, *accepted(TRUCK.number, *TRUCK.linked)), f.arrival("a1"), f.arrival("a2")]
    first = p.handle(batch)
    n_events = len(audit.events)
    again = p.handle(batch)  # the Kafka transaction of the first did not commit: same records again
    assert again.decisions == []
    assert [o.value for o in again.outputs] == [o.value for o in first.outputs]
    assert again.replayed == len(batch)
    assert len(audit.events) == n_events  # nothing audited twice
    assert store.query("SELECT count(*) FROM decisions") == [(2,)]


def test_the_same_camera_event_twice_is_one_arrival() -> None:
    f, store = Feed(), GateStore.memory()
    p = processor(store)
    p.handle([*f.view(TRUCK, *accepted(TRUCK.number, *TRUCK.linked)), f.arrival("a1")])
    r = p.handle([f.arrival("a1")])  # new offset, same arrival id
    assert r.decisions == []
    assert store.query("SELECT count(*) FROM decisions WHERE arrival_id='a1'") == [(1,)]


def test_business_response_after_the_truck_supersedes_yellow_with_green() -> None:
    f, store, audit = Feed(), GateStore.memory(), Audit()
    clock = [NOW]
    p = processor(store, audit, clock)
    delivered = DeclarationStatus("300000000001", DeclState.DELIVERED, NOW - 30_000)
    r1 = p.handle([*f.view(TRUCK, *accepted(TRUCK.number), delivered), f.arrival("a1")])
    assert [(d.colour, d.primary_reason) for d in r1.decisions] == [(Colour.YELLOW, Reason.AWAITING_COUNTERPART)]
    clock[0] = NOW + 90_000
    r2 = p.handle(f.view(*accepted("300000000001")))
    assert [(d.colour, d.sequence, d.supersedes) for d in r2.decisions] == [(Colour.GREEN, 2, "a1/1")]
    rows = store.query("SELECT decision_id, colour FROM decisions ORDER BY sequence")
    assert rows == [("a1/1", "YELLOW"), ("a1/2", "GREEN")]  # both kept: never an edit
    gate_events = [e for e in audit.events if e.event_type is EventType.GATE_DECISION]
    assert [(e.message_id, e.outcome) for e in gate_events] == [("a1/1", "yellow"), ("a1/2", "green")]


def test_a_late_vehicle_declaration_supersedes_no_pre_declaration() -> None:
    f, store = Feed(), GateStore.memory()
    p = processor(store)
    r1 = p.handle([f.arrival("a1")])
    assert r1.decisions[0].primary_reason is Reason.NO_PRE_DECLARATION
    r2 = p.handle(f.view(TRUCK, *accepted(TRUCK.number, *TRUCK.linked)))
    assert [(d.colour, d.supersedes) for d in r2.decisions] == [(Colour.GREEN, "a1/1")]


def test_an_undecodable_arrival_is_red_and_its_bytes_are_kept() -> None:
    f, store = Feed(), GateStore.memory()
    r = processor(store).handle([f.rec(ARR, b"\xc3\x01garbage")])
    assert [(d.colour, d.primary_reason) for d in r.decisions] == [(Colour.RED, Reason.ARRIVAL_INVALID)]
    assert store.query("SELECT code, raw FROM invalid_inputs") == [("GATE_ARRIVAL_UNDECODABLE", b"\xc3\x01garbage")]


@pytest.mark.parametrize("camera_ms", [0, -62_135_596_800_000, 253_402_300_799_000, 2**62],
                         ids=["epoch", "year-1", "year-9999", "2^62"])
def test_absurd_camera_times_are_refused_not_crashed_on(camera_ms: int) -> None:
    from xborder_gateway import avro

    frame = avro.encode("GateArrival", {"arrival_id": "t", "gate_id": "HUU_NGHI", "lane": "L1",
                                        "direction": "EXIT_TO_CN", "plate_read": "12C-345.60",
                                        "plate_confidence": 0.9, "containers_read": [], "camera_time": camera_ms})
    f, store = Feed(), GateStore.memory()
    r = processor(store).handle([f.rec(ARR, frame)])
    assert r.decisions[0].primary_reason is Reason.ARRIVAL_INVALID
    assert r.invalid == 1


def test_a_bad_feed_record_is_kept_and_audited_and_the_batch_goes_on() -> None:
    f, store, audit = Feed(), GateStore.memory(), Audit()
    r = processor(store, audit).handle([f.rec(FEED, b"{not json"), f.arrival("a1")])
    assert r.invalid == 1
    assert len(r.decisions) == 1
    assert store.query("SELECT code FROM invalid_inputs") == [("GATE_FEED_UNDECODABLE",)]
    assert any(e.event_type is EventType.REJECTED for e in audit.events)


def test_the_audit_log_gets_the_plates_hmac_never_the_plate() -> None:
    f, store, audit = Feed(), GateStore.memory(), Audit()
    hasher = PlateHasher(b"k" * 32)
    processor(store, audit).handle([*f.view(TRUCK, *accepted(TRUCK.number, *TRUCK.linked)), f.arrival("a1")])
    entries = b"".join(e.canonical_bytes() for e in audit.events)
    for form in (b"12C34560", b"12C-345.60", b"345"):
        assert form not in entries
    decision = next(e for e in audit.events if e.event_type is EventType.GATE_DECISION)
    assert decision.raw_sha256 == hasher.digest("12C34560")
    assert decision.raw_sha256 != PlateHasher(b"x" * 32).digest("12C34560")  # keyed


def test_the_hmac_key_is_created_0600_and_a_readable_one_is_refused(tmp_path: Path) -> None:
    from xborder_gateway.errors import ConfigError

    path = tmp_path / "gate" / "plate-hmac.key"
    h1 = PlateHasher.load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert PlateHasher.load_or_create(path).digest("12C34560") == h1.digest("12C34560")
    path.chmod(0o644)
    with pytest.raises(ConfigError):
        PlateHasher.load_or_create(path)


def test_state_survives_a_restart(tmp_path: Path) -> None:
    f = Feed()
    store = GateStore.open(tmp_path / "gate.sqlite")
    processor(store).handle([*f.view(TRUCK, *accepted(TRUCK.number, *TRUCK.linked)), f.arrival("a1")])
    store.close()
    assert (tmp_path / "gate.sqlite").stat().st_mode & 0o777 == 0o600
    store = GateStore.open(tmp_path / "gate.sqlite")
    r = processor(store).handle([f.arrival("a2")])
    assert r.decisions[0].primary_reason is Reason.CLEARANCE_ALREADY_USED  # the index and clearances came back


def test_a_failed_batch_leaves_nothing_behind() -> None:
    f, store = Feed(), GateStore.memory()

    def broken_audit(events: object) -> None:
        raise OSError("audit disk full")

    batch = [*f.view(TRUCK, *accepted(TRUCK.number, *TRUCK.linked)), f.arrival("a1")]
    with pytest.raises(OSError, match="disk full"):
        processor(store, broken_audit).handle(batch)  # type: ignore[arg-type]
    assert store.query("SELECT count(*) FROM decisions") == [(0,)]
    assert not store.applied(ARR, 0, 0)
    assert processor(store).handle(batch).decisions[0].colour is Colour.GREEN


STATUS = [
    ("first", None, 0, DeclState.SENT, 1, True),
    ("forward", DeclState.SENT, 1, DeclState.DELIVERED, 1, True),
    ("late-sent-after-answer", DeclState.ACCEPTED, 1, DeclState.SENT, 1, False),
    ("late-delivered-after-held", DeclState.HELD, 1, DeclState.DELIVERED, 1, False),
    ("held-released", DeclState.HELD, 1, DeclState.ACCEPTED, 1, True),
    ("same-answer-again", DeclState.ACCEPTED, 1, DeclState.ACCEPTED, 1, False),
    ("amendment", DeclState.REJECTED, 1, DeclState.SENT, 2, True),
    ("old-version", DeclState.SENT, 2, DeclState.ACCEPTED, 1, False),
    ("cancel", DeclState.ACCEPTED, 1, DeclState.CANCELLED, 1, True),
]


@pytest.mark.parametrize(("old", "old_version", "new", "new_version", "applies"),
                         [s[1:] for s in STATUS], ids=[s[0] for s in STATUS])
def test_status_transitions(old: DeclState | None, old_version: int, new: DeclState, new_version: int,
                            applies: bool) -> None:
    record = None if old is None else DeclRecord(old, 0)
    assert accepts_status(record, old_version, DeclarationStatus("n", new, NOW, version=new_version)) is applies


def test_feed_adapter_reads_issue_10_style_records() -> None:
    from xborder_gateway.gate import decode_feed

    raw = {"declaration_number": "910000000001", "event": "BUSINESS_OUTCOME", "business_outcome": "HELD",
           "time": NOW, "document_type": "TOR", "plate": "12C-345.60", "containers": ["CSQU3054383"],
           "linked_declarations": ["300000000001"], "perishable": True, "reasons": ["SPS_PHC_NOT_REGISTERED"]}
    events = decode_feed(json.dumps(raw).encode())
    assert events[0] == VehicleDeclarationSeen("910000000001", Direction.EXIT_TO_CN, "12C34560", ("CSQU3054383",),
                                               ("300000000001",), True)
    assert events[1] == DeclarationStatus("910000000001", DeclState.HELD, NOW, ("SPS_PHC_NOT_REGISTERED",))


def test_compare_and_set_refuses_a_stale_sequence_and_a_taken_clearance() -> None:
    from dataclasses import replace

    from xborder_gateway.gate import Decision, StaleDecisionError

    store = GateStore.memory()
    a1 = Arrival("a1", "HUU_NGHI", "L1", Direction.EXIT_TO_CN, "12C-345.60", 0.97, NOW)
    a2 = replace(a1, arrival_id="a2")
    green = Decision("a1", 1, Colour.GREEN, (Reason.PRE_DECLARED_ACCEPTED,), "HUU_NGHI", "L1", Direction.EXIT_TO_CN,
                     NOW, NOW, vehicle_declaration=TRUCK.number)
    src = (ARR, 0, 0)
    with store.transaction():
        store.record_decision(green, a1, "12C34560", b"r1", src)
    with pytest.raises(StaleDecisionError), store.transaction():  # the same first decision again
        store.record_decision(green, a1, "12C34560", b"r1", src)
    with pytest.raises(StaleDecisionError), store.transaction():  # a sequence that skips one
        store.record_decision(replace(green, sequence=3), a1, "12C34560", b"r3", src)
    with pytest.raises(StaleDecisionError), store.transaction():  # decided on a snapshot where it was free
        store.record_decision(replace(green, arrival_id="a2"), a2, "12C34560", b"r2", src)
    assert store.clearance_holder(TRUCK.number) == "a1"
    assert store.query("SELECT count(*) FROM decisions") == [(1,)]
    red = replace(green, sequence=2, colour=Colour.RED, reasons=(Reason.DECLARATION_REJECTED,), supersedes="a1/1")
    with store.transaction():
        store.record_decision(red, a1, "12C34560", b"r2", src)
    assert store.clearance_holder(TRUCK.number) is None  # a RED truck gives its clearance back
