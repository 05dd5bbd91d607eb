"""Waiting, not rejecting (issue 15 item 1): PENDING vehicle declarations, versions per declaration, the grace
period from the processing time. Pure decisions table-tested; the store on real SQLite files, with the clock
injected; a seeded simulation of vehicles arriving before their declarations (other partitions, delays)."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from xborder_gateway.config import load_settings
from xborder_gateway.errors import ConfigError
from xborder_gateway.exchange import CN_SCHEMA, KnownDeclaration, StatusKind, read_status, status_record
from xborder_gateway.exchange._pending import (
    LINKED_DECLARATION_CANCELLED,
    LINKED_DECLARATION_PENDING,
    LINKED_DECLARATION_UNKNOWN,
    PENDING,
    PENDING_SCHEMA,
    VERSION_STALE,
    DecisionCause,
    VehicleDecision,
    VersionKind,
    VersionVerdict,
    _row,
    _settle,
    accept_version,
    cn_declarations_lookup,
    decide_vehicle,
    expire,
    judge_version,
    known_version,
    next_expiry_ms,
    on_declaration,
    pending_status_change,
    pending_vehicles,
    register_declaration,
    submit_vehicle,
    vehicle_status_change,
)

D = Decimal
DECL = VersionKind.DECLARATION
CANC = VersionKind.CANCELLATION
GRACE_S = 600.0
GRACE_MS = 600_000
T0 = 1_790_000_000_000  # 2026-09-21, the endpoint's clock in ms


def open_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.executescript(CN_SCHEMA + PENDING_SCHEMA)
    return conn


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = open_db(tmp_path / "cn.db")
    yield c
    c.close()


def decl(conn: sqlite3.Connection, number: str, now: int, *, version: int = 1, kind: VersionKind = DECL,
         weight: str | None = None) -> tuple[VersionVerdict, list[VehicleDecision]]:
    return register_declaration(conn, business_key=number, version=version, kind=kind, document_type="EDA",
                                message_id=f"m-{number}-{version}-{kind}", gross_weight_kg=weight, now_ms=now,
                                grace_s=GRACE_S)


def vehicle(conn: sqlite3.Connection, number: str, links: list[str], now: int, *, version: int = 1,
            weight: str | None = None, created: int | None = None, doc_type: str = "TIR") -> VehicleDecision:
    return submit_vehicle(conn, business_key=number, version=version, document_type=doc_type,
                          message_id=f"v-{number}-{version}", linked=links, gross_weight_kg=weight,
                          processed_ms=now, grace_s=GRACE_S, created_ms=created)


# ---- VER-1..5: versions (pure) -----------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "known", "version", "kind", "expected"), [
    ("first ever", None, 1, DECL, VersionVerdict.APPLY),
    ("amendment first (overtook its original)", None, 3, DECL, VersionVerdict.APPLY),
    ("amendment after original", (1, DECL), 2, DECL, VersionVerdict.APPLY),
    ("original after its amendment", (2, DECL), 1, DECL, VersionVerdict.STALE),
    ("same version again", (2, DECL), 2, DECL, VersionVerdict.DUPLICATE),
    ("cancellation of the version in force", (2, DECL), 2, CANC, VersionVerdict.APPLY),
    ("cancellation at a newer version", (2, DECL), 3, CANC, VersionVerdict.APPLY),
    ("cancellation older than an amendment", (3, DECL), 2, CANC, VersionVerdict.STALE),
    ("original after its cancellation", (2, CANC), 1, DECL, VersionVerdict.STALE),
    ("amendment after cancellation (final)", (2, CANC), 5, DECL, VersionVerdict.STALE),
    ("cancellation repeated", (2, CANC), 2, CANC, VersionVerdict.DUPLICATE),
    ("older cancellation after cancellation", (2, CANC), 1, CANC, VersionVerdict.STALE),
])
def test_judge_version(name: str, known: tuple[int, VersionKind] | None, version: int, kind: VersionKind,
                       expected: VersionVerdict) -> None:
    assert judge_version(known, version, kind) is expected, name


@pytest.mark.parametrize("version", [0, -1, 1000, 2**63, 2**64 + 1, True, "2", 1.0, None])
def test_version_outside_1_to_999_is_refused_before_any_sql(conn: sqlite3.Connection, version: object) -> None:
    with pytest.raises(ValueError, match=r"not an integer in 1\.\.999"):
        accept_version(conn, "300000000001", version, DECL)  # type: ignore[arg-type]
    assert known_version(conn, "300000000001") is None
    with pytest.raises(ValueError, match="not an integer"):
        vehicle(conn, "T1", ["A"], T0, version=version)  # type: ignore[arg-type]
    assert pending_vehicles(conn) == []


def test_accept_version_records_only_what_applies(conn: sqlite3.Connection) -> None:
    assert accept_version(conn, "A", 2, DECL, now_ms=T0) is VersionVerdict.APPLY
    assert accept_version(conn, "A", 1, DECL, now_ms=T0 + 1) is VersionVerdict.STALE
    assert known_version(conn, "A") == (2, DECL)
    assert accept_version(conn, "A", 2, "DECLARATION") is VersionVerdict.DUPLICATE
    assert accept_version(conn, "A", 2, CANC) is VersionVerdict.APPLY
    assert known_version(conn, "A") == (2, CANC)
    assert accept_version(conn, "A", 3, DECL) is VersionVerdict.STALE
    assert known_version(conn, "A") == (2, CANC)
    with pytest.raises(ValueError, match="number is required"):
        accept_version(conn, "", 1, DECL)


# ---- PEN-1/3/5, BIZ-2/3: the vehicle decision (pure) -----------------------------------------------------
KNOWN = {"A": KnownDeclaration("A", D("400")), "B": KnownDeclaration("B", D("300")), "C": KnownDeclaration("C", None)}


@pytest.mark.parametrize(("name", "links", "weight", "cancelled", "age_ms", "status", "codes"), [
    ("all known", ["A", "B"], None, set(), 0, "ACCEPTED", []),
    ("no links at all", [], None, set(), 0, "ACCEPTED", []),
    ("one unknown, just processed", ["A", "X"], None, set(), 0, PENDING, [LINKED_DECLARATION_PENDING]),
    ("one unknown, 1 ms before the grace ends", ["A", "X"], None, set(), GRACE_MS - 1, PENDING,
     [LINKED_DECLARATION_PENDING]),
    ("one unknown, grace ended exactly", ["A", "X"], None, set(), GRACE_MS, "REJECTED", [LINKED_DECLARATION_UNKNOWN]),
    ("two unknown after the grace", ["X", "Y"], None, set(), GRACE_MS * 10, "REJECTED",
     [LINKED_DECLARATION_UNKNOWN, LINKED_DECLARATION_UNKNOWN]),
    ("weights within the manifest", ["A", "B", "C"], "700", set(), 0, "ACCEPTED", []),
    ("weights above the manifest (BIZ-3)", ["A", "B"], "699.999", set(), 0, "HELD", ["GROSS_WEIGHT_EXCEEDS_MANIFEST"]),
    ("weight checked only once all are known", ["A", "X"], "1", set(), 0, PENDING, [LINKED_DECLARATION_PENDING]),
    ("a cancelled link holds at once, within the grace", ["A", "X"], None, {"A"}, 0, "HELD",
     [LINKED_DECLARATION_CANCELLED]),
    ("cancelled beats unknown after the grace", ["A", "X"], None, {"A"}, GRACE_MS, "HELD",
     [LINKED_DECLARATION_CANCELLED]),
])
def test_decide_vehicle(name: str, links: list[str], weight: str | None, cancelled: set[str], age_ms: int,  # noqa: PLR0917
                        status: str, codes: list[str]) -> None:
    d = decide_vehicle("TIR", links, gross_weight_kg=None if weight is None else D(weight), lookup=KNOWN.get,
                       cancelled=cancelled.__contains__, processed_ms=T0, now_ms=T0 + age_ms, grace_ms=GRACE_MS)
    assert (d.status, [c for c, _t in d.reasons]) == (status, codes), name


def test_decide_vehicle_names_the_missing_declarations() -> None:
    d = decide_vehicle("TOR", ["A", "X", "Y"], gross_weight_kg=None, lookup=KNOWN.get, cancelled=lambda _k: False,
                       processed_ms=T0, now_ms=T0, grace_ms=GRACE_MS)
    assert [t for _c, t in d.reasons] == ["waiting for declaration X", "waiting for declaration Y"]


# ---- the store: PEN-2 re-evaluation as declarations arrive -------------------------------------------------
def test_vehicle_before_its_declarations_is_pending_then_accepted_once(conn: sqlite3.Connection) -> None:
    v = vehicle(conn, "T1", ["A", "B"], T0, weight="1000")
    assert v.pending
    assert v.cause is DecisionCause.SUBMITTED
    assert [t for _c, t in v.decision.reasons] == ["waiting for declaration A", "waiting for declaration B"]
    assert decl(conn, "A", T0 + 5_000, weight="300") == (VersionVerdict.APPLY, [])  # still waiting for B
    assert pending_vehicles(conn) == [("T1", 1, ("A", "B"), T0)]
    verdict, decided = decl(conn, "B", T0 + 9_000, weight="200")
    assert verdict is VersionVerdict.APPLY
    assert [(d.business_key, d.message_id, d.decision.status, d.cause) for d in decided] == [
        ("T1", "v-T1-1", "ACCEPTED", DecisionCause.LINKED_ARRIVED)]
    assert pending_vehicles(conn) == []
    # the same declaration again (a duplicate) and the tick long after: nothing more to answer
    assert decl(conn, "B", T0 + 10_000, weight="200") == (VersionVerdict.DUPLICATE, [])
    assert expire(conn, T0 + 10 * GRACE_MS, grace_s=GRACE_S) == []


def test_vehicle_after_its_declarations_is_decided_at_once(conn: sqlite3.Connection) -> None:
    decl(conn, "A", T0, weight="900")
    v = vehicle(conn, "T1", ["A"], T0 + 1, weight="500")
    assert (v.decision.status, v.decision.reasons[0][0]) == ("HELD", "GROSS_WEIGHT_EXCEEDS_MANIFEST")
    assert pending_vehicles(conn) == []


def test_one_declaration_decides_every_vehicle_waiting_for_it(conn: sqlite3.Connection) -> None:
    for i in range(3):
        assert vehicle(conn, f"T{i}", ["A"], T0 + i).pending
    vehicle(conn, "T9", ["A", "Z"], T0)
    _v, decided = decl(conn, "A", T0 + 100)
    assert [d.business_key for d in decided] == ["T0", "T1", "T2"]  # oldest processed first; T9 waits for Z
    assert [k for k, *_ in pending_vehicles(conn)] == ["T9"]


# ---- PEN-3: the grace period, from the processing time -----------------------------------------------------
def test_grace_expiry_with_an_injected_clock(conn: sqlite3.Connection) -> None:
    vehicle(conn, "T1", ["A", "X"], T0)
    decl(conn, "A", T0 + 1_000)
    assert next_expiry_ms(conn, grace_s=GRACE_S) == T0 + GRACE_MS
    assert expire(conn, T0 + GRACE_MS - 1, grace_s=GRACE_S) == []  # 1 ms early: still waiting
    [d] = expire(conn, T0 + GRACE_MS, grace_s=GRACE_S)
    assert (d.business_key, d.decision.status, d.cause) == ("T1", "REJECTED", DecisionCause.GRACE_EXPIRED)
    assert d.decision.reasons == ((LINKED_DECLARATION_UNKNOWN, "declaration X was not received"),)
    assert expire(conn, T0 + 2 * GRACE_MS, grace_s=GRACE_S) == []  # PEN-4: decided once
    assert next_expiry_ms(conn, grace_s=GRACE_S) is None
    # X arriving after the rejection does not revive the vehicle: its sender resubmits a new version
    assert decl(conn, "X", T0 + GRACE_MS + 1) == (VersionVerdict.APPLY, [])
    v2 = vehicle(conn, "T1", ["A", "X"], T0 + GRACE_MS + 2, version=2)
    assert v2.decision.status == "ACCEPTED"


def test_the_grace_setting_shortens_the_wait(conn: sqlite3.Connection) -> None:
    vehicle(conn, "T1", ["X"], T0)
    assert expire(conn, T0 + 2_000, grace_s=5) == []
    assert [d.decision.status for d in expire(conn, T0 + 5_000, grace_s=5)] == ["REJECTED"]
    with pytest.raises(ValueError, match="not positive"):
        expire(conn, T0, grace_s=0)


def test_catch_up_after_an_outage_counts_from_processing_not_creation(conn: sqlite3.Connection) -> None:
    """The endpoint was down three hours; the backlog holds vehicles created long before (created_ms) whose
    declarations are right behind them. None is rejected: the grace runs from when it was processed."""
    outage_ms = 3 * 3600 * 1000
    back = T0 + outage_ms
    for i in range(5):
        assert vehicle(conn, f"T{i}", [f"D{i}"], back + i, created=T0 + i).pending
    assert expire(conn, back + 1_000, grace_s=GRACE_S) == []  # creation + grace is long past: no matter
    decided = [d for i in range(5) for d in decl(conn, f"D{i}", back + 2_000 + i)[1]]
    assert [(d.business_key, d.decision.status) for d in decided] == [(f"T{i}", "ACCEPTED") for i in range(5)]


# ---- VER-2: amendments decide by version, not arrival order ------------------------------------------------
def test_amendment_overtaking_its_original_stays_in_force(conn: sqlite3.Connection) -> None:
    vehicle(conn, "T1", ["A"], T0, weight="500")
    verdict, decided = decl(conn, "A", T0 + 1, version=2, weight="450")  # the amendment arrives first
    assert verdict is VersionVerdict.APPLY
    assert [(d.decision.status, d.cause) for d in decided] == [("ACCEPTED", DecisionCause.LINKED_AMENDED)]
    assert decl(conn, "A", T0 + 2, version=1, weight="9000") == (VersionVerdict.STALE, [])  # not applied
    assert cn_declarations_lookup(conn)("A") == KnownDeclaration("A", D("450"))
    from xborder_gateway.exchange._pending import stale_decision
    stale = stale_decision(conn, "A", 1)
    assert stale.status == "REJECTED"
    assert stale.reasons[0][0] == VERSION_STALE
    assert "older than version 2" in stale.reasons[0][1]


def test_amendment_of_a_linked_declaration_re_decides_a_vehicle_only_when_the_outcome_changes(
        conn: sqlite3.Connection) -> None:
    decl(conn, "A", T0, weight="100")
    assert vehicle(conn, "T1", ["A"], T0 + 1, weight="500").decision.status == "ACCEPTED"
    _v, d2 = decl(conn, "A", T0 + 2, version=2, weight="900")
    assert [(d.decision.status, d.decision.reasons[0][0]) for d in d2] == [("HELD", "GROSS_WEIGHT_EXCEEDS_MANIFEST")]
    _v, d3 = decl(conn, "A", T0 + 3, version=3, weight="901")  # still HELD: the new weights are said
    assert [(d.decision.status, d.decision.reasons[0][1]) for d in d3] == [
        ("HELD", "linked declarations 901 kg > manifest 500 kg")]
    _v, d4 = decl(conn, "A", T0 + 4, version=4, weight="100")
    assert [(d.decision.status, d.cause) for d in d4] == [("ACCEPTED", DecisionCause.LINKED_AMENDED)]
    assert decl(conn, "A", T0 + 5, version=5, weight="99")[1] == []  # ACCEPTED again: nothing new to say


# ---- PEN-5 / VER-4: cancellation ------------------------------------------------------------------------------
def test_cancellation_re_evaluates_decided_and_pending_vehicles(conn: sqlite3.Connection) -> None:
    decl(conn, "A", T0)
    assert vehicle(conn, "T1", ["A"], T0 + 1).decision.status == "ACCEPTED"
    assert vehicle(conn, "T2", ["A", "X"], T0 + 2).pending
    verdict, decided = decl(conn, "A", T0 + 3, kind=CANC)
    assert verdict is VersionVerdict.APPLY
    assert [(d.business_key, d.decision.status, d.decision.reasons[0][0], d.cause) for d in decided] == [
        ("T1", "HELD", LINKED_DECLARATION_CANCELLED, DecisionCause.LINKED_CANCELLED),
        ("T2", "HELD", LINKED_DECLARATION_CANCELLED, DecisionCause.LINKED_CANCELLED)]
    assert cn_declarations_lookup(conn)("A") is None  # a cancelled declaration is not a known one
    assert decl(conn, "A", T0 + 4) == (VersionVerdict.STALE, [])  # the late original does not revive it
    assert decl(conn, "A", T0 + 5, version=2) == (VersionVerdict.STALE, [])  # cancelled is final
    assert pending_vehicles(conn) == []
    assert expire(conn, T0 + 10 * GRACE_MS, grace_s=GRACE_S) == []
    # an amended vehicle declaration without the cancelled declaration is decided afresh
    assert vehicle(conn, "T1", [], T0 + 6, version=2).decision.status == "ACCEPTED"


def test_a_vehicle_linking_an_already_cancelled_declaration_is_held_not_pending(conn: sqlite3.Connection) -> None:
    decl(conn, "A", T0, kind=CANC)  # the cancellation overtook the declaration itself
    v = vehicle(conn, "T1", ["A"], T0 + 1)
    assert (v.decision.status, v.decision.reasons[0][0]) == ("HELD", LINKED_DECLARATION_CANCELLED)


def test_a_rejected_vehicle_is_not_revived_by_a_cancellation(conn: sqlite3.Connection) -> None:
    vehicle(conn, "T1", ["A", "X"], T0)
    decl(conn, "A", T0 + 1)
    assert [d.decision.status for d in expire(conn, T0 + GRACE_MS, grace_s=GRACE_S)] == ["REJECTED"]
    assert decl(conn, "A", T0 + GRACE_MS + 1, kind=CANC) == (VersionVerdict.APPLY, [])


# ---- vehicle declarations have versions too ------------------------------------------------------------------
def test_vehicle_versions_newer_replaces_older_is_stale_same_is_duplicate(conn: sqlite3.Connection) -> None:
    v2 = vehicle(conn, "T1", ["A"], T0, version=2)  # the amended TIR overtook the first one
    assert v2.pending
    v1 = vehicle(conn, "T1", ["A", "B"], T0 + 1, version=1)
    assert (v1.decision.status, v1.decision.reasons[0][0], v1.cause) == ("REJECTED", VERSION_STALE, DecisionCause.STALE)
    assert pending_vehicles(conn) == [("T1", 2, ("A",), T0)]  # v1's links were not applied
    again = vehicle(conn, "T1", ["A"], T0 + 2, version=2)
    assert (again.cause, again.decision.status, again.message_id) == (DecisionCause.DUPLICATE, PENDING, "v-T1-2")
    v3 = vehicle(conn, "T1", ["B"], T0 + 3, version=3)  # v3 links B only: A no longer decides it
    assert v3.pending
    assert decl(conn, "A", T0 + 4) == (VersionVerdict.APPLY, [])
    assert [(d.version, d.message_id, d.decision.status) for d in decl(conn, "B", T0 + 5)[1]] == [
        (3, "v-T1-3", "ACCEPTED")]
    # and the grace of v3 runs from v3's processing time
    vehicle(conn, "T2", ["X"], T0, version=1)
    vehicle(conn, "T2", ["X"], T0 + GRACE_MS - 10, version=2)
    assert expire(conn, T0 + GRACE_MS, grace_s=GRACE_S) == []


def test_vehicle_numbers_and_declaration_numbers_do_not_share_versions(conn: sqlite3.Connection) -> None:
    decl(conn, "N1", T0, version=5)
    assert vehicle(conn, "N1", [], T0 + 1, version=1).decision.status == "ACCEPTED"


def test_cn_road_manifest_is_decided_like_a_tir(conn: sqlite3.Connection) -> None:
    v = vehicle(conn, "GM1", ["E1"], T0, weight="10", doc_type="CnRoadManifest")
    assert v.pending
    [d] = decl(conn, "E1", T0 + 1, weight="11")[1]
    assert (d.document_type, d.decision.status) == ("CnRoadManifest", "HELD")


# ---- durability: the caller's transaction, and restarts --------------------------------------------------------
def test_store_functions_write_inside_the_callers_transaction(conn: sqlite3.Connection) -> None:
    vehicle(conn, "T1", ["A"], T0)
    conn.commit()
    assert [d.business_key for d in decl(conn, "A", T0 + 1)[1]] == ["T1"]
    conn.rollback()  # the batch failed: the arrival never happened, the vehicle still waits
    assert pending_vehicles(conn) == [("T1", 1, ("A",), T0)]
    assert known_version(conn, "A") is None
    assert [d.business_key for d in decl(conn, "A", T0 + 2)[1]] == ["T1"]  # the redelivered batch decides it


def test_restart_keeps_pending_vehicles(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    c1 = open_db(db)
    vehicle(c1, "T1", ["A", "B"], T0)
    decl(c1, "A", T0 + 1)
    c1.commit()
    c1.close()
    c2 = open_db(db)  # reopened (the DDL is idempotent)
    try:
        assert pending_vehicles(c2) == [("T1", 1, ("A", "B"), T0)]
        assert next_expiry_ms(c2, grace_s=GRACE_S) == T0 + GRACE_MS
        assert [d.decision.status for d in decl(c2, "B", T0 + 2)[1]] == ["ACCEPTED"]
    finally:
        c2.close()


def test_settle_refuses_a_stale_snapshot(conn: sqlite3.Connection) -> None:
    """PEN-4: a decision taken on a snapshot is re-checked on the row before it acts."""
    from xborder_gateway.exchange._business import BusinessDecision
    from xborder_gateway.exchange._pending import _ROW_SQL

    vehicle(conn, "T1", ["A"], T0)
    snapshot = _row(conn.execute(_ROW_SQL + " WHERE business_key = 'T1'").fetchone())
    assert decl(conn, "A", T0 + 1)[1]  # someone else decided it meanwhile
    assert _settle(conn, snapshot, BusinessDecision("REJECTED", (("X", "x"),)), T0 + 2) is False
    assert conn.execute("SELECT status FROM cn_vehicles").fetchone() == ("ACCEPTED",)
    fresh = _row(conn.execute(_ROW_SQL + " WHERE business_key = 'T1'").fetchone())
    assert _settle(conn, fresh, BusinessDecision("HELD", (("X", "x"),)), T0 + 3) is True


def test_on_declaration_for_an_unlinked_number_changes_nothing(conn: sqlite3.Connection) -> None:
    vehicle(conn, "T1", ["A"], T0)
    assert on_declaration(conn, "Q", 1, T0 + 1, grace_s=GRACE_S) == []
    assert pending_vehicles(conn) == [("T1", 1, ("A",), T0)]


# ---- seeded: vehicles before their declarations, on other partitions, with delays ------------------------------
@dataclass
class _Truck:
    number: str
    links: list[str]
    weight: Decimal
    decl_weights: dict[str, Decimal] = field(default_factory=dict)


def _scenario(seed: int, *, trucks: int = 40, lost: float = 0.0
              ) -> tuple[list[_Truck], list[tuple[int, int, str, str]], set[str]]:
    """Events (arrival_ms, tie-break, kind, number): each document's arrival is its creation plus the delay of
    its partition and a jitter; vehicle declarations are created first and often travel faster."""
    rng = random.Random(seed)
    partition_delay = [rng.randint(0, 120_000) for _ in range(6)]
    events: list[tuple[int, int, str, str]] = []
    out: list[_Truck] = []
    missing: set[str] = set()
    for i in range(trucks):
        created = T0 + i * 7_000
        links = [f"{seed}-{i}-{k}" for k in range(rng.randint(1, 4))]
        weights = {k: D(rng.randint(100, 900)) for k in links}
        total = sum(weights.values(), D(0))
        weight = total + D(rng.choice([0, 50, 500])) if rng.random() < 0.85 else total - D(1)
        out.append(_Truck(f"T{seed}-{i}", links, weight, weights))
        events.append((created + rng.randint(0, 2_000), rng.randrange(10**6), "V", f"T{seed}-{i}"))
        for k in links:
            if rng.random() < lost:
                missing.add(k)
                continue
            p = rng.randrange(6)
            events.append((created + 1_000 + partition_delay[p] + rng.randint(0, 60_000), rng.randrange(10**6),
                           "D", k))
    events.sort()
    return out, events, missing


def _run(conn: sqlite3.Connection, trucks: list[_Truck], events: list[tuple[int, int, str, str]], *,
         tick_ms: int = 10_000, horizon_ms: int = 0) -> dict[str, list[tuple[int, VehicleDecision]]]:
    by_number = {t.number: t for t in trucks}
    weight_of = {k: w for t in trucks for k, w in t.decl_weights.items()}
    answers: dict[str, list[tuple[int, VehicleDecision]]] = {t.number: [] for t in trucks}
    processed: dict[str, int] = {}
    next_tick = events[0][0]
    end = events[-1][0] + horizon_ms

    def record(now: int, ds: list[VehicleDecision]) -> None:
        for d in ds:
            assert not d.pending
            answers[d.business_key].append((now, d))

    for at, _tie, kind, number in [*events, (end, 0, "END", "")]:
        while next_tick <= at:
            record(next_tick, expire(conn, next_tick, grace_s=GRACE_S))
            next_tick += tick_ms
        if kind == "V":
            t = by_number[number]
            v = vehicle(conn, number, t.links, at, weight=str(t.weight), created=at - 3_600_000)
            processed[number] = at
            if not v.pending:
                record(at, [v])
        elif kind == "D":
            record(at, decl(conn, number, at, weight=str(weight_of[number]))[1])
    return answers


@pytest.mark.parametrize("seed", range(6))
def test_seeded_vehicles_before_their_declarations_are_decided_correctly_none_rejected(
        conn: sqlite3.Connection, seed: int) -> None:
    trucks, events, _missing = _scenario(seed)
    firsts = sum(1 for t in trucks for at, _x, k, n in events if k == "V" and n == t.number
                 if any(a > at for a, _y, kk, nn in events if kk == "D" and nn in t.links))
    assert firsts >= len(trucks) // 2, "the scenario must put most vehicles before some of their declarations"
    answers = _run(conn, trucks, events, horizon_ms=2 * GRACE_MS)
    for t in trucks:
        [(_at, d)] = answers[t.number]  # exactly one business response per vehicle
        expected = "ACCEPTED" if sum(t.decl_weights.values(), D(0)) <= t.weight else "HELD"
        assert d.decision.status == expected, (t.number, d.decision)
    assert pending_vehicles(conn) == []


@pytest.mark.parametrize("seed", range(3))
def test_seeded_lost_declarations_reject_exactly_those_vehicles_after_the_grace(
        conn: sqlite3.Connection, seed: int) -> None:
    trucks, events, missing = _scenario(100 + seed, lost=0.1)
    assert missing
    processed = {n: at for at, _x, k, n in events if k == "V"}
    answers = _run(conn, trucks, events, horizon_ms=2 * GRACE_MS)
    for t in trucks:
        [(at, d)] = answers[t.number]
        gone = [k for k in t.links if k in missing]
        if gone:
            assert d.decision.status == "REJECTED"
            assert d.cause is DecisionCause.GRACE_EXPIRED
            assert {r for _c, r in d.decision.reasons} == {f"declaration {k} was not received" for k in gone}
            assert at >= processed[t.number] + GRACE_MS
        else:
            assert d.decision.status in ("ACCEPTED", "HELD")


# ---- status feed and the setting --------------------------------------------------------------------------------
def test_pending_status_change_is_a_business_outcome_pending_on_the_feed(conn: sqlite3.Connection) -> None:
    v = vehicle(conn, "T1", ["A"], T0)
    change = pending_status_change(v, authority="CN", at_ms=T0)
    assert (change.kind, change.business_status, change.declaration_number, change.message_id) == (
        StatusKind.BUSINESS_OUTCOME, "PENDING", "T1", "v-T1-1")
    back = read_status(status_record("cn.declarations.status", change).value)
    assert (back.business_status, back.reasons) == ("PENDING", ((LINKED_DECLARATION_PENDING,
                                                                 "waiting for declaration A"),))
    [d] = decl(conn, "A", T0 + 1)[1]
    with pytest.raises(ValueError, match="not PENDING"):
        pending_status_change(d, authority="CN", at_ms=T0 + 1)
    assert read_status(status_record("s", vehicle_status_change(d, authority="CN", at_ms=T0 + 1)).value
                       ).business_status == "ACCEPTED"


def test_grace_setting_defaults_to_ten_minutes(tmp_path: Path) -> None:
    assert load_settings(home=tmp_path).exchange_linked_grace_s == 600.0
    assert load_settings(home=tmp_path, exchange_linked_grace_s=5).exchange_linked_grace_s == 5.0
    with pytest.raises(ConfigError, match="exchange_linked_grace_s: Input should be greater than 0"):
        load_settings(home=tmp_path, exchange_linked_grace_s=0)


# ---- where versions come from (ADR 0404) ------------------------------------------------------------------------
@pytest.mark.parametrize(("record", "expected"), [
    ({"declaration_number": "1", "declaration_version": 3}, 3),  # CnExportDeclaration
    ({"manifest_number": "1", "manifest_version": 2}, 2),  # CnRoadManifest
    ({"declaration_number": "1", "version": 4}, 4),  # the proposed Declaration v4 / VehicleManifest v2 field
    ({"declaration_number": "1"}, None),  # Declaration <= v3, VehicleManifest v1: no version
])
def test_version_of(record: dict[str, object], expected: int | None) -> None:
    from xborder_gateway.exchange._pending import version_of
    assert version_of(record) == expected


def test_version_of_refuses_a_hostile_version() -> None:
    from xborder_gateway.exchange._pending import version_of
    with pytest.raises(ValueError, match="not an integer"):
        version_of({"declaration_version": 2**63})


def test_next_version_falls_back_to_arrival_order(conn: sqlite3.Connection) -> None:
    from xborder_gateway.exchange._pending import next_version
    assert next_version(conn, "A") == 1
    decl(conn, "A", T0, version=1)
    assert next_version(conn, "A") == 2
    assert decl(conn, "A", T0 + 1, version=next_version(conn, "A"))[0] is VersionVerdict.APPLY
    assert next_version(conn, "T1", vehicle=True) == 1
    vehicle(conn, "T1", [], T0, version=7)
    assert next_version(conn, "T1", vehicle=True) == 8
    assert next_version(conn, "A", vehicle=True) == 1  # separate numbering for vehicles


def test_audit_fields_make_a_valid_business_response_event(conn: sqlite3.Connection) -> None:
    from xborder_gateway.audit import EventType
    from xborder_gateway.connectors._common import event
    from xborder_gateway.exchange._pending import audit_fields

    v = vehicle(conn, "T1", ["A"], T0)
    e = event("CN", "nanning", EventType.BUSINESS_RESPONSE, **audit_fields(v))
    assert (e.outcome, e.reason_code, e.business_key, e.message_id) == ("pending", LINKED_DECLARATION_PENDING,
                                                                        "T1", "v-T1-1")
    [d] = expire(conn, T0 + GRACE_MS, grace_s=GRACE_S)
    assert event("CN", "nanning", EventType.BUSINESS_RESPONSE, **audit_fields(d)).outcome == "rejected"
    stale = vehicle(conn, "T1", ["A"], T0 + 1, version=1)
    assert stale.cause is DecisionCause.DUPLICATE
    assert audit_fields(stale)["outcome"] == "duplicate"
