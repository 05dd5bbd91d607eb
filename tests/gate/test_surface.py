"""The gate's public surface and CLI verbs."""

from __future__ import annotations

import json

import pytest

from xborder_gateway import gate
from xborder_gateway._cli import build_parser, main
from xborder_gateway.gate import Arrival, Colour, Direction, Reason
from xborder_gateway.gate._decide import _finish


def test_exported_names_are_the_intended_ones() -> None:
    public = {n for n in dir(gate) if not n.startswith("_") and n not in {"annotations"}}
    modules = {n for n in public if type(getattr(gate, n)).__name__ == "module"}
    assert set(gate.__all__) == public - modules


def test_run_gate_and_gate_verbs_are_registered() -> None:
    args = build_parser().parse_args(["run", "gate"])
    assert args.connector == "gate"
    assert build_parser().parse_args(["gate", "board", "--once"]).once is True


def test_simulate_dry_run_counts_a_day(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    assert main(["--home", str(tmp_path), "gate", "simulate", "--day", "2026-01-14", "--hour", "10", "--dry-run",
                 "--count", "300"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["vehicles"] == 300
    assert 0 < out["arrivals"] < 300
    assert out["published"] is False


def test_bad_day_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["gate", "simulate", "--day", "2026-02-31"])
    assert info.value.code == 2


def test_the_green_guard_refuses_a_fuzzy_green() -> None:
    a = Arrival("a", "HUU_NGHI", "L1", Direction.EXIT_TO_CN, "12C-345.60", 0.99, 1_780_000_000_000)
    with pytest.raises(AssertionError, match="fuzzy"):  # GATE-2, belt and braces
        _finish(a, [], 0, vehicle=None, score=0.85, plate_hmac="", notes=())
    assert _finish(a, [], 0, vehicle=None, score=1.0, plate_hmac="", notes=()).colour is Colour.GREEN
    assert _finish(a, [Reason.PLATE_FUZZY_MATCH], 0, vehicle=None, score=0.85, plate_hmac="",
                   notes=()).colour is Colour.YELLOW
