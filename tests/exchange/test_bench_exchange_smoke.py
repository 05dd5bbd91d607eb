"""Issue 13 item 4: ``bench/bench_exchange.py --quick --json`` runs end to end on the real broker and its last
line is the JSON object of every figure, with nothing lost and nothing duplicated. A smoke test of the bench's
plumbing (small counts), not a measurement: no figure is compared with a target here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_exchange.py"
KEYS = ("v1_per_s", "v2_per_s", "v2_hsm_per_s", "raw_same_hops_per_s", "raw_one_hop_per_s", "in_process_per_s",
        "p99_ms_at_500", "p99_ms_at_100", "lost", "duplicated")


def test_bench_exchange_quick_json(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = {**os.environ, "XBG_KAFKA_BOOTSTRAP": kafka_bootstrap, "TMPDIR": str(tmp_path)}
    # --no-hsm: the SoftHSM variant adds a third end-to-end run (~1 min of CI); the HSM signing path itself is
    # tested in tests/envelope/test_hsm.py, and `make bench` measures it end to end
    done = subprocess.run([sys.executable, str(BENCH), "--quick", "--json", "--no-hsm"], env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    missing = [k for k in KEYS if k not in figures]
    assert not missing, missing
    assert (figures["lost"], figures["duplicated"]) == (0, 0), figures
    for key in ("v1_per_s", "v2_per_s", "raw_same_hops_per_s", "raw_one_hop_per_s", "in_process_per_s"):
        assert figures[key] > 0, key
    # the HSM variant was skipped on request, and the JSON says so instead of inventing a figure
    assert figures["v2_hsm_per_s"] is None
    assert figures.get("v2_hsm_skipped") == "--no-hsm"
    # the targets' CPU budgets, from the same run's figures (the broker is the test's, not the bench's: connectors
    # and raw clients alone)
    budget = figures["cpu_budget"]
    assert budget["with_broker"] is False
    connectors = {k: sum(v for n, v in figures["cpu_us_per_decl"][k].items() if n != "broker") for k in ("v1", "v2")}
    assert budget["v2_v1_3x_us"] == pytest.approx((connectors["v1"] - connectors["v2"]) / 2)
    assert budget["raw_same_hops_us"] == pytest.approx(sum(figures["raw_same_hops_cpu_us"].values()))
    assert budget["half_raw_us"] == pytest.approx(figures["cores"] * 1e6 / (0.5 * figures["raw_same_hops_per_s"]))
    # each paced run says where its latency came from: p99 by quarter of the run and the two legs (parts of
    # each declaration's whole, so never above the run's slowest one)
    for rate, shape in figures["latency"].items():
        assert shape["p99_ms"] <= shape["max_ms"], (rate, shape)
        assert len(shape["p99_ms_by_quarter"]) == 4, rate
        assert all(0 <= q <= shape["max_ms"] for q in shape["p99_ms_by_quarter"] if q is not None), (rate, shape)
        for leg in ("outbound_leg_ms", "answer_leg_ms"):
            assert 0 <= shape[leg]["p50"] <= shape[leg]["p99"] <= shape["max_ms"], (rate, leg, shape)
