"""A simulated day through the processor (shares, determinism), and the board's frame."""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from xborder_gateway._cli import main
from xborder_gateway.config import load_settings
from xborder_gateway.gate import (
    Colour,
    GatePolicy,
    GateProcessor,
    GateStore,
    PlateHasher,
    Reason,
    encode_arrival,
    encode_view_event,
)
from xborder_gateway.gate._board import board_data, render_board
from xborder_gateway.gate._connector import gate_db
from xborder_gateway.gate._generate import DayPlan, simulate_day, simulate_feed, synthetic_vehicles
from xborder_gateway.transport import Incoming

DAY = dt.date(2026, 6, 3)


def run_hour(store: GateStore, seed: int = 3) -> tuple[list[Incoming], GateProcessor, int]:
    vehicles = synthetic_vehicles(DAY, seed, 1600)
    arrivals = simulate_day(vehicles, DAY, seed, DayPlan(start_hour=10))
    t0 = arrivals[0].camera_ms
    before, late = simulate_feed(vehicles, seed, t0)
    clock = [t0]
    p = GateProcessor(store, PlateHasher(b"s" * 32), GatePolicy(), lambda: clock[0],
                      arrivals_topic="arr", decisions_topic="dec")
    feed = [Incoming("feed", 0, i, None, encode_view_event(e)) for i, e in enumerate(before)]
    p.handle(feed)
    for i, a in enumerate(arrivals):
        clock[0] = a.camera_ms
        p.handle([Incoming("arr", 0, i, None, encode_arrival(a))])
    clock[0] += 60_000
    late_recs = [Incoming("feed", 0, len(before) + i, None, encode_view_event(e)) for i, e in enumerate(late)]
    p.handle(late_recs)
    return late_recs, p, clock[0]


@dataclass
class Hour:
    store: GateStore
    home: Path
    now: int


@pytest.fixture(scope="module")
def hour(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hour]:
    home = tmp_path_factory.mktemp("gate-hour")
    store = GateStore.open(gate_db(load_settings(home=home)))
    _late, _p, now = run_hour(store)
    yield Hour(store, home, now)
    store.close()


def test_the_generator_is_deterministic_and_realistic() -> None:
    a = simulate_day(synthetic_vehicles(DAY, 9), DAY, 9)
    assert a == simulate_day(synthetic_vehicles(DAY, 9), DAY, 9)
    assert 1500 <= len(a) <= 2000  # fruit season at Lang Son
    winter = simulate_day(synthetic_vehicles(dt.date(2026, 1, 14), 9), dt.date(2026, 1, 14), 9)
    assert 1200 <= len(winter) <= 1600
    times = sorted(x.camera_ms for x in a)
    in_one_second = max(bisect.bisect_left(times, t + 1000) - i for i, t in enumerate(times))
    assert in_one_second >= 50  # a convoy of 50 released from the park reaches the gate within a second
    assert any(x.plate_read == "" for x in a)
    assert any("O" in x.plate_read or "B" in x.plate_read or "I" in x.plate_read for x in a)


def test_a_simulated_hour_decides_every_arrival_once_with_the_expected_shares(hour: Hour) -> None:
    store = hour.store
    n_arrivals = store.query("SELECT count(*) FROM arrivals")[0][0]
    firsts = store.query("SELECT colour, count(*) FROM decisions WHERE sequence=1 GROUP BY colour")
    shares = {str(c): int(n) / int(n_arrivals) for c, n in firsts}  # type: ignore[call-overload]
    assert store.query("SELECT count(DISTINCT arrival_id) FROM decisions WHERE sequence=1") == [(n_arrivals,)]
    assert shares["GREEN"] > 0.6
    assert 0.05 < shares["YELLOW"] < 0.35
    assert 0.02 < shares["RED"] < 0.15
    supers = store.query("SELECT count(*) FROM decisions WHERE supersedes IS NOT NULL")[0][0]
    assert supers > 0  # late business responses turned YELLOW trucks GREEN
    current = dict(store.query("SELECT colour, count(*) FROM arrivals GROUP BY colour"))
    assert current.get("GREEN", 0) > shares["GREEN"] * n_arrivals  # type: ignore[operator]


def test_board_once_shows_waiting_trucks_reasons_and_superseding(hour: Hour) -> None:
    store, now = hour.store, hour.now
    data = board_data(store, now)
    frame = render_board(data)
    assert "HUU_NGHI" in frame
    assert "why the YELLOW/RED ones stopped" in frame
    assert data["why_stopped"]
    assert set(data["why_stopped"]) <= {r.value for r in Reason}
    assert data["superseded"]
    assert "->" in frame
    waiting = sum(g["waiting"] for g in data["gates"].values())
    assert waiting == store.query("SELECT count(*) FROM arrivals WHERE colour IN ('YELLOW','RED')")[0][0]
    assert all(set(w["plate"][3:-2]) <= {"*"} for w in data["oldest_waiting"] if w["plate"] != "(unread)")


def test_cli_board_once(hour: Hour, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(hour.home), "gate", "board", "--once", "--window-hours", "100000"]) == 0
    out = capsys.readouterr().out
    assert "xborder gate board" in out
    assert "decisions per hour" in out
    assert main(["--home", str(tmp_path / "empty"), "gate", "board", "--once"]) == 1


def test_green_share_is_never_from_a_fuzzy_match(hour: Hour) -> None:
    import json

    for (reasons,) in hour.store.query("SELECT reasons FROM decisions WHERE colour=?", (Colour.GREEN.name,)):
        assert json.loads(str(reasons)) == [Reason.PRE_DECLARED_ACCEPTED.value]
