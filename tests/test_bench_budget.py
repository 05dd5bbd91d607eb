"""bench/bench_exchange.py prints, every run, the CPU per declaration each unmet issue-13 target leaves (its
"say exactly what bounds it"): the arithmetic, on fixed figures."""

from __future__ import annotations

import math

import pytest
from tests.bench_import import import_bench


def test_budget_of_each_target_from_one_runs_figures() -> None:
    bench = import_bench("bench_exchange")
    v1 = {"outbound": 1430.0, "nanning": 1530.0, "receipts": 1073.0, "broker": 540.0}  # 4,573
    v2 = {"outbound": 1140.0, "nanning": 943.0, "receipts": 637.0, "broker": 443.0}  # 3,163
    raw = {"exchange": 70.0, "endpoint": 50.0, "tracker": 27.0, "broker": 207.0}
    budget = bench.cpu_budget(v1, v2, raw, 4000.0, 2)
    # v1 = v2 + d and v1 / v2 >= 3  <=>  v2 <= d / 2
    assert budget["v2_v1_3x_us"] == pytest.approx((4573 - 3163) / 2)
    assert (budget["v1_us"], budget["v2_us"], budget["raw_same_hops_us"]) == (4573.0, 3163.0, 354.0)
    # 0.5 x 4,000/s = 2,000/s on 2 cores: 1,000 µs of CPU per declaration at the most
    assert budget["half_raw_us"] == pytest.approx(1000.0)
    assert budget["with_broker"] is True


def test_without_our_broker_every_figure_is_the_connectors_alone() -> None:
    bench = import_bench("bench_exchange")
    nan = float("nan")
    v1 = {"outbound": 1400.0, "nanning": 1500.0, "receipts": 1100.0, "broker": nan}
    v2 = {"outbound": 1100.0, "nanning": 900.0, "receipts": 600.0, "broker": nan}
    raw = {"exchange": 70.0, "endpoint": 50.0, "tracker": 30.0}
    budget = bench.cpu_budget(v1, v2, raw, 0.0, 2)
    assert budget["with_broker"] is False
    assert budget["v2_v1_3x_us"] == pytest.approx((4000 - 2600) / 2)
    assert not math.isnan(budget["v2_us"])
    assert budget["raw_same_hops_us"] == 150.0
    assert budget["half_raw_us"] is None  # no raw rate measured: no budget invented
