"""The gate fed by the real status feed: ``DeclarationStatus.v1`` frames as the outbound connector and the
receipt tracker write them (``exchange._status.status_record``), decoded with the project's Avro codec."""

from __future__ import annotations

import pytest

from xborder_gateway import avro
from xborder_gateway.exchange._status import StatusChange, StatusKind, StatusVehicle, status_record
from xborder_gateway.gate import (
    Arrival,
    Colour,
    DeclState,
    Direction,
    GatePolicy,
    GateProcessor,
    GateStore,
    PlateHasher,
    Reason,
    _feed,
    encode_arrival,
)
from xborder_gateway.gate._feed import decode_feed_record, direction_of, from_declaration_status
from xborder_gateway.transport import Incoming

NOW = 1_780_000_000_000
ARR, FEED, OUT = "vn.gate.arrivals", "vn.declarations.status", "vn.gate.decisions"
TOR, GOODS = "910000000001", "300000000001"
PLATE = "12C-345.60"


class Site:
    """Writes the status feed the way outbound (TAKEN_IN + SENT) and the tracker (the rest) do."""

    def __init__(self) -> None:
        self.offsets: dict[str, int] = {}
        self.t = NOW - 600_000

    def _rec(self, topic: str, key: bytes | None, value: bytes) -> Incoming:
        off = self.offsets.get(topic, 0)
        self.offsets[topic] = off + 1
        return Incoming(topic, 0, off, key, value, (), NOW)

    def change(self, number: str, kind: StatusKind, **kw: object) -> Incoming:
        self.t += 1000
        out = status_record(FEED, StatusChange(number, str(kw.pop("authority", "VN")), kind, self.t, **kw))  # type: ignore[arg-type]
        return self._rec(FEED, out.key, out.value)

    def submitted(self, number: str, doc_type: str, vehicle: StatusVehicle | None = None) -> list[Incoming]:
        taken = self.change(number, StatusKind.TAKEN_IN, document_type=doc_type, vehicle=vehicle,
                            intake=("vn.declarations.raw", 0, 1))
        self.t -= 1000  # outbound writes both at one time
        return [taken, self.change(number, StatusKind.SENT, document_type=doc_type, message_id="m-" + number,
                                   attempt=1, vehicle=vehicle)]

    def answered(self, number: str, outcome: str, *reasons: tuple[str, str]) -> list[Incoming]:
        return [self.change(number, StatusKind.DELIVERED, message_id="m-" + number),
                self.change(number, StatusKind.BUSINESS_OUTCOME, message_id="m-" + number,
                            business_status=outcome, reasons=tuple(reasons))]

    def truck(self, goods_outcome: str = "ACCEPTED", *, plate: str = PLATE, perishable: bool = True) -> list[Incoming]:
        vehicle = StatusVehicle(plate, ("CSQU3054383",), (GOODS,), perishable)
        return [*self.submitted(GOODS, "EDA"), *self.submitted(TOR, "TOR", vehicle),
                *self.answered(GOODS, goods_outcome, *([("SPS_PUC_NOT_REGISTERED", "no PUC code")]
                                                       if goods_outcome == "HELD" else [])),
                *self.answered(TOR, "ACCEPTED")]

    def arrival(self, arrival_id: str, plate: str = PLATE, direction: Direction = Direction.EXIT_TO_CN) -> Incoming:
        a = Arrival(arrival_id, "HUU_NGHI", "L1", direction, plate, 0.97, NOW - 500, ("CSQU3054383",))
        return self._rec(ARR, arrival_id.encode(), encode_arrival(a))


def gate(clock: list[int] | None = None) -> tuple[GateProcessor, GateStore]:
    store = GateStore.memory()
    t = clock or [NOW]
    return GateProcessor(store, PlateHasher(b"k" * 32), GatePolicy(), lambda: t[0], arrivals_topic=ARR,
                         decisions_topic=OUT), store


def colours(p: GateProcessor, *records: Incoming) -> list[tuple[Colour, tuple[Reason, ...]]]:
    return [(d.colour, d.reasons) for d in p.handle(list(records)).decisions]


def test_a_fully_accepted_truck_from_the_real_feed_is_green_on_the_priority_lane() -> None:
    site, (p, store) = Site(), gate()
    r = p.handle([*site.truck(), site.arrival("a1")])
    assert r.invalid == 0
    assert r.ignored == 0
    (d,) = r.decisions
    assert (d.colour, d.reasons, d.priority_lane, d.vehicle_declaration, d.linked_declarations) == (
        Colour.GREEN, (Reason.PRE_DECLARED_ACCEPTED,), True, TOR, (GOODS,))
    assert store.declaration(GOODS) is not None
    assert store.vehicle_plate(TOR) == "12C34560"


def test_a_held_linked_declaration_gives_yellow_and_its_reason_codes_are_read_from_the_records() -> None:
    site, (p, store) = Site(), gate()
    assert colours(p, *site.truck("HELD"), site.arrival("a1")) == [(Colour.YELLOW, (Reason.DECLARATION_HELD,))]
    assert store.query("SELECT reasons FROM declarations WHERE number=?", (GOODS,)) == [('["SPS_PUC_NOT_REGISTERED"]',)]


def test_business_rejected_and_dead_lettered_are_red_and_a_late_receipt_changes_nothing() -> None:
    site, (p, _) = Site(), gate()
    assert colours(p, *site.truck("REJECTED"), site.arrival("a1"))[0][0] is Colour.RED
    site2, (p2, store2) = Site(), gate()
    recs = [*site2.submitted(GOODS, "EDA"), *site2.submitted(TOR, "TOR", StatusVehicle(PLATE, (), (GOODS,))),
            *site2.answered(TOR, "ACCEPTED"),
            site2.change(GOODS, StatusKind.RESENT, message_id="m", attempt=2),
            site2.change(GOODS, StatusKind.DEAD_LETTERED, message_id="m", reasons=(("DEAD_LETTER", "gave up"),)),
            site2.change(GOODS, StatusKind.LATE_RECEIPT, message_id="m")]
    assert colours(p2, *recs, site2.arrival("a1")) == [(Colour.RED, (Reason.DECLARATION_DEAD_LETTERED,))]
    decl = store2.declaration(GOODS)
    assert decl is not None
    assert decl.state is DeclState.DEAD_LETTERED


def test_a_duplicate_submission_refused_at_intake_does_not_overturn_the_accepted_original() -> None:
    # outbound writes REJECTED (DUPLICATE_SUBMISSION) under the same number for a resubmitted copy; the truck
    # of the accepted original must stay GREEN (the rule in accepts_status: a refusal at intake applies only
    # when the view holds nothing for the number)
    site, (p, _) = Site(), gate()
    dup = site.change(GOODS, StatusKind.REJECTED, reasons=(("DUPLICATE_SUBMISSION", "already sent"),),
                      intake=("vn.declarations.raw", 0, 9))
    assert colours(p, *site.truck(), dup, site.arrival("a1")) == [(Colour.GREEN, (Reason.PRE_DECLARED_ACCEPTED,))]


def test_refused_at_intake_alone_is_red_and_a_corrected_resubmission_starts_again() -> None:
    site, (p, store) = Site(), gate()
    refused = site.change(GOODS, StatusKind.REJECTED, reasons=(("XSD_PATTERN", "bad number"),),
                          intake=("vn.declarations.raw", 0, 0))
    vehicle = StatusVehicle(PLATE, (), (GOODS,))
    first = [refused, *site.submitted(TOR, "TOR", vehicle), *site.answered(TOR, "ACCEPTED")]
    assert colours(p, *first, site.arrival("a1")) == [(Colour.RED, (Reason.DECLARATION_REJECTED,))]
    # the corrected declaration is taken in and sent: answer outstanding, then ACCEPTED -> a superseding GREEN
    again = colours(p, *site.submitted(GOODS, "EDA"))
    assert again == [(Colour.YELLOW, (Reason.AWAITING_COUNTERPART,))]
    assert colours(p, *site.answered(GOODS, "ACCEPTED")) == [(Colour.GREEN, (Reason.PRE_DECLARED_ACCEPTED,))]
    assert [s for (s,) in store.query("SELECT sequence FROM decisions ORDER BY sequence")] == [1, 2, 3]


def test_an_amendment_releases_a_hold_and_an_amended_plate_replaces_the_old_one() -> None:
    site, (p, store) = Site(), gate()
    assert colours(p, *site.truck("HELD"), site.arrival("a1"))[0][0] is Colour.YELLOW
    # the amendment: a new submission of the same numbers (TAKEN_IN/SENT later), then the new answer
    decisions = colours(p, *site.submitted(GOODS, "EDA"), *site.answered(GOODS, "ACCEPTED"))
    assert decisions[-1] == (Colour.GREEN, (Reason.PRE_DECLARED_ACCEPTED,))
    p.handle(site.submitted(TOR, "TOR", StatusVehicle("12C-999.99", (), (GOODS,))))
    assert store.vehicle_plate(TOR) == "12C99999"


def test_pending_business_outcome_is_an_outstanding_answer() -> None:
    site, (p, _) = Site(), gate()
    recs = [*site.submitted(GOODS, "EDA"), *site.submitted(TOR, "TOR", StatusVehicle(PLATE, (), (GOODS,))),
            *site.answered(TOR, "ACCEPTED"), *site.answered(GOODS, "PENDING")]
    assert colours(p, *recs, site.arrival("a1")) == [(Colour.YELLOW, (Reason.AWAITING_COUNTERPART,))]


def test_unknown_state_is_kept_audited_and_ignored_but_its_vehicle_part_is_applied(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a state this gate does not know (a newer feed): simulated by forgetting TAKEN_IN and DELIVERED
    monkeypatch.delitem(_feed._REAL_STATES, "TAKEN_IN")
    monkeypatch.delitem(_feed._REAL_STATES, "DELIVERED")
    site, (p, store) = Site(), gate()
    r = p.handle(site.submitted(TOR, "TOR", StatusVehicle(PLATE, (), ())))
    assert (r.ignored, r.invalid) == (1, 0)
    assert [e.outcome for e in r.events] == ["ignored"]
    assert store.vehicle_plate(TOR) == "12C34560"  # from the ignored TAKEN_IN's vehicle part
    assert store.query("SELECT code, length(raw) > 0 FROM invalid_inputs") == [("GATE_FEED_STATE_UNKNOWN", 1)]
    rec = from_declaration_status({"declaration_number": TOR, "state": "WITHDRAWN", "at": NOW})
    assert (rec.events, rec.ignored) == ([], "WITHDRAWN")


def test_another_schema_on_the_feed_and_broken_fields_are_refused_with_a_code() -> None:
    from xborder_gateway.gate import GateInputError

    arrival = encode_arrival(Arrival("a", "HUU_NGHI", "L1", Direction.EXIT_TO_CN, PLATE, 0.9, NOW))
    with pytest.raises(GateInputError) as info:
        decode_feed_record(arrival)
    assert info.value.code == "GATE_FEED_SCHEMA"
    for bad in ({"declaration_number": "", "state": "SENT", "at": NOW},
                {"declaration_number": TOR, "state": "SENT", "at": -1},
                {"declaration_number": TOR, "state": "SENT", "at": 2**63},
                {"declaration_number": TOR, "state": "SENT", "at": NOW, "vehicle": {"plate": "@@@"}}):
        with pytest.raises(GateInputError):
            from_declaration_status(bad)
    # through the processor: kept with its bytes, audited as rejected, no state change
    site, (p, store) = Site(), gate()
    r = p.handle([site._rec(FEED, b"k", avro.MAGIC + b"\x00" * 12)])
    assert r.invalid == 1
    assert store.query("SELECT count(*) FROM declarations") == [(0,)]


@pytest.mark.parametrize(("authority", "doc_type", "direction"), [
    ("VN", "TOR", Direction.EXIT_TO_CN), ("VN", "TIR", Direction.ENTRY_FROM_CN), ("VN", None, Direction.EXIT_TO_CN),
    ("CN", "CN_ROAD_MANIFEST", Direction.ENTRY_FROM_CN)])
def test_direction_of_a_vehicle_declaration(authority: str, doc_type: str | None, direction: Direction) -> None:
    assert direction_of(authority, doc_type) is direction


# ---- item 4: time-driven re-decisions (injected clock) ------------------------------------------------------
def _awaiting(site: Site) -> list[Incoming]:
    vehicle = StatusVehicle(PLATE, (), (GOODS,))
    return [*site.submitted(GOODS, "EDA"), *site.submitted(TOR, "TOR", vehicle), *site.answered(TOR, "ACCEPTED"),
            site.change(GOODS, StatusKind.DELIVERED, message_id="m-" + GOODS)]


def test_an_answer_outstanding_past_its_grace_period_is_re_decided_overdue_by_a_superseding_record() -> None:
    clock = [NOW]
    site, (p, store) = Site(), gate(clock)
    site.t = NOW - 60_000  # sent a minute ago: within the 600 s grace
    first = p.handle([*_awaiting(site), site.arrival("a1")]).decisions
    assert [(d.colour, d.reasons) for d in first] == [(Colour.YELLOW, (Reason.AWAITING_COUNTERPART,))]
    sent = store.declaration(GOODS)
    assert sent is not None
    # the grace has not passed yet: nothing changes with the next batch
    clock[0] = sent.sent_ms + GatePolicy().grace_ms
    assert p.handle([site.arrival("b1", plate="29H1-234.56")]).decisions[0].arrival_id == "b1"
    # one millisecond later it has: the next batch (any record) carries the superseding decision
    clock[0] += 1
    later = p.handle([site.arrival("b2", plate="29H1-234.57")]).decisions
    (over,) = [d for d in later if d.arrival_id == "a1"]
    assert (over.colour, over.reasons, over.sequence, over.supersedes) == (
        Colour.YELLOW, (Reason.COUNTERPART_ANSWER_OVERDUE,), 2, "a1/1")
    # decided once: no further re-decision by time, and a replay of that batch re-emits it, never re-decides
    assert [d.arrival_id for d in p.handle([site.arrival("b3", plate="29H1-234.58")]).decisions] == ["b3"]
    assert store.query("SELECT count(*) FROM timers") == [(0,)]
    # the answer then arrives: GREEN supersedes the overdue decision
    green = p.handle([site.change(GOODS, StatusKind.BUSINESS_OUTCOME, message_id="m", business_status="ACCEPTED")])
    assert [(d.arrival_id, d.colour, d.supersedes) for d in green.decisions] == [("a1", Colour.GREEN, "a1/2")]


def test_an_answer_within_the_grace_period_cancels_the_timer() -> None:
    clock = [NOW]
    site, (p, store) = Site(), gate(clock)
    site.t = NOW - 60_000
    p.handle([*_awaiting(site), site.arrival("a1")])
    assert store.query("SELECT count(*) FROM timers") == [(1,)]
    green = p.handle([site.change(GOODS, StatusKind.BUSINESS_OUTCOME, message_id="m", business_status="ACCEPTED")])
    assert [d.colour for d in green.decisions] == [Colour.GREEN]
    clock[0] += 3_600_000
    assert [d.arrival_id for d in p.handle([site.arrival("b1", plate="29H1-234.56")]).decisions] == ["b1"]


def test_a_time_driven_decision_is_re_emitted_when_its_batch_is_replayed() -> None:
    clock = [NOW]
    site, (p, _) = Site(), gate(clock)
    site.t = NOW - 60_000
    p.handle([*_awaiting(site), site.arrival("a1")])
    clock[0] += 3_600_000
    batch = [site.arrival("b1", plate="29H1-234.56")]
    first = p.handle(batch)
    again = p.handle(batch)  # the Kafka transaction of the first did not commit
    assert again.replayed == 1
    assert sorted(o.value for o in again.outputs) == sorted(o.value for o in first.outputs)
    assert len(first.outputs) == 2
