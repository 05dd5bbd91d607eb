"""The demo's simulated hour at the gate: the real ``run gate`` (in-process) over status-feed records written
by the connectors' status writers, on the in-memory transport (the real broker: tests/exchange/test_demo.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from xborder_gateway.config import load_settings
from xborder_gateway.exchange._status import StatusChange, StatusKind, StatusVehicle, status_record
from xborder_gateway.gate import GateStore
from xborder_gateway.gate._connector import gate_db
from xborder_gateway.gate._demo import GateHour, gate_hour, gate_hour_text
from xborder_gateway.gate._generate import display_plate, simulate_hour, simulate_hour_marked
from xborder_gateway.gate._model import Direction, VehicleDeclarationSeen
from xborder_gateway.gate._plates import normalise_plate
from xborder_gateway.transport import ensure_topics, make_producer


async def _feed(settings: object, since: int, n: int) -> None:
    s = settings
    await ensure_topics(s.bootstrap, (s.topic_status,), 3)  # type: ignore[attr-defined]
    producer = make_producer(s.bootstrap)  # type: ignore[attr-defined]
    await producer.start()
    try:
        # an older run's vehicle (before since): not a truck of this hour
        old = StatusVehicle("29H123456", (), ())
        changes = [StatusChange("919999999999", "VN", StatusKind.SENT, since - 60_000, "TOR", vehicle=old)]
        for i in range(n):
            tor, goods = f"91{i:010d}", f"30{i:010d}"
            v = StatusVehicle(f"12C-{10000 + i}", (), (goods,), i % 2 == 0)
            changes += [
                StatusChange(goods, "VN", StatusKind.SENT, since + 1, "EDA", message_id="m"),
                StatusChange(tor, "VN", StatusKind.TAKEN_IN, since + 1, "TOR", vehicle=v),
                StatusChange(tor, "VN", StatusKind.SENT, since + 1, "TOR", message_id="m", vehicle=v),
                StatusChange(goods, "VN", StatusKind.BUSINESS_OUTCOME, since + 2, message_id="m",
                             business_status="HELD" if i % 10 == 0 else "ACCEPTED"),
                StatusChange(tor, "VN", StatusKind.BUSINESS_OUTCOME, since + 2, business_status="ACCEPTED",
                             message_id="m")]
        for ch in changes:
            out = status_record(s.topic_status, ch)  # type: ignore[attr-defined]
            await producer.send(out.topic, out.value, key=out.key)
    finally:
        await producer.stop()


def test_the_hour_decides_every_arrival_of_the_runs_own_vehicles(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, kafka_bootstrap=f"memory://hour-{time.monotonic_ns()}",
                             key_passphrase="demo hour test passphrase")
    since = int(time.time() * 1000)

    async def go() -> GateHour:
        await _feed(settings, since, 60)
        return await gate_hour(settings, since_ms=since, seed=3, prefix="t", compress_s=1.0)

    hour = asyncio.run(go())
    g = hour.to_json()
    assert g["vehicles"] == 60  # the older run's vehicle is not among them
    assert g["arrivals"] == g["GREEN"] + g["YELLOW"] + g["RED"] == sum(g["by_reason"].values())
    assert g["arrivals"] >= 60 + 2 + 1  # every vehicle, at least two undeclared trucks, one second arrival
    # at least two trucks without a pre-declaration, never GREEN; two of them read cleanly, so RED
    # NO_PRE_DECLARATION (the others may be read unreadable, low-confidence or OCR-confused: YELLOW first)
    assert g["undeclared"]["arrivals"] >= 2, g["undeclared"]
    assert g["undeclared"]["GREEN"] == 0, g["undeclared"]
    assert g["undeclared"]["RED"] >= 2, g["undeclared"]
    assert g["by_reason"]["NO_PRE_DECLARATION"] >= 2, g["by_reason"]
    assert g["by_reason"]["DECLARATION_HELD"] >= 1
    assert g["GREEN"] > g["YELLOW"]
    assert g["priority_lane"] > 0
    assert g["p50_ms"] is not None
    assert g["p50_ms"] <= g["p99_ms"]
    # each arrival decided once by the real gate, whose durable view holds the decisions
    store = GateStore.open(gate_db(settings))
    try:
        assert store.query("SELECT count(*) FROM arrivals WHERE arrival_id LIKE 't-%'") == [(g["arrivals"],)]
        assert store.query("SELECT count(*) FROM decisions WHERE sequence = 1 AND arrival_id LIKE 't-%'") == [
            (g["arrivals"],)]
    finally:
        store.close()
    text = gate_hour_text(g)
    assert "simulated hour" in text
    assert "DECLARATION_HELD" in text  # why the YELLOW ones stopped
    assert f"no pre-declaration        {g['undeclared']['arrivals']} trucks: GREEN 0," in text
    if g["by_reason"].get("NO_PRE_DECLARATION"):
        assert "NO_PRE_DECLARATION" in text


def test_simulate_hour_has_a_convoy_ocr_errors_undeclared_trucks_and_repeats() -> None:
    vehicles = [VehicleDeclarationSeen(f"91{i:010d}", Direction.EXIT_TO_CN, f"12C{10000 + i}",
                                       containers=("CSQU3054383",), perishable=i % 3 == 0) for i in range(180)]
    start = 1_780_000_000_000
    arrivals = simulate_hour(vehicles, start, 5, prefix="h")
    assert arrivals == simulate_hour(vehicles, start, 5, prefix="h")  # deterministic
    assert all(start <= a.camera_ms < start + 3_600_000 for a in arrivals)
    times = sorted(a.camera_ms for a in arrivals)
    assert max(sum(1 for t in times if s <= t < s + 1000) for s in times) >= 50  # the convoy
    plates = {v.plate for v in vehicles}
    clean = {f"12C-{p[3:6]}.{p[6:]}" for p in plates}
    assert sum(a.plate_read not in clean for a in arrivals) >= 8  # OCR errors, unreadable, undeclared
    assert len({a.arrival_id for a in arrivals}) == len(arrivals)
    assert len(arrivals) >= 180 + 5 + 1
    marked_arrivals, undeclared = simulate_hour_marked(vehicles, start, 5, prefix="h")
    assert marked_arrivals == arrivals
    assert len(undeclared) == round(180 * 0.03)
    by_id = {a.arrival_id: a for a in arrivals}
    assert not {by_id[u].plate_read for u in undeclared} & clean  # none of them is a declared truck's plate
    # two of them always read cleanly (display form, confident), however the seed falls
    for seed in range(40):
        hour, marked = simulate_hour_marked(vehicles[:20], start, seed, prefix="h")
        reads = [a for a in hour if a.arrival_id in marked]
        assert len(reads) == 2
        assert all(a.plate_confidence >= 0.85 and display_plate(normalise_plate(a.plate_read)) == a.plate_read
                   for a in reads), reads
