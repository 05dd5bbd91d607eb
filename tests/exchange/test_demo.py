"""`xborder demo --json`, the README's main command, run as a user runs it (on the session's broker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REQUIRED = {"published", "rejected", "delivered", "dead_lettered", "duplicates_eliminated", "resent",
            "throughput_per_s", "p50_ms", "p99_ms"}


def test_demo_json_reconciles(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str) -> None:
    env = {**os.environ, "XBG_KAFKA_BOOTSTRAP": kafka_bootstrap, "XBG_EXCHANGE_GROUP_PREFIX": topic_prefix,
           "XBG_TOPIC_INTAKE": f"{topic_prefix}.raw", "XBG_TOPIC_REJECTED": f"{topic_prefix}.rejected",
           "XBG_TOPIC_EXCHANGE": f"{topic_prefix}.exchange",
           "XBG_TOPIC_EXCHANGE_PRIORITY": f"{topic_prefix}.exchange.priority",
           "XBG_TOPIC_RECEIPTS": f"{topic_prefix}.receipts", "XBG_TOPIC_DEAD_LETTER": f"{topic_prefix}.dead-letter",
           # the CN -> VN direction and CN's site topics, per test too
           "XBG_TOPIC_CN_VN_EXCHANGE": f"{topic_prefix}.cn-vn.exchange",
           "XBG_TOPIC_CN_VN_EXCHANGE_PRIORITY": f"{topic_prefix}.cn-vn.exchange.priority",
           "XBG_TOPIC_CN_VN_RECEIPTS": f"{topic_prefix}.vn-cn.receipts",
           "XBG_TOPIC_CN_INTAKE": f"{topic_prefix}.cn.raw",
           "XBG_TOPIC_CN_REJECTED": f"{topic_prefix}.cn.rejected", "XBG_TOPIC_CN_STATUS": f"{topic_prefix}.cn.status",
           "XBG_TOPIC_CN_DEAD_LETTER": f"{topic_prefix}.cn.dead-letter"}
    # the gate's hour (issue 14): its own status feed, arrivals and decisions topics
    env.update({"XBG_TOPIC_STATUS": f"{topic_prefix}.status", "XBG_TOPIC_GATE_ARRIVALS": f"{topic_prefix}.arrivals",
                "XBG_TOPIC_GATE_DECISIONS": f"{topic_prefix}.decisions"})
    env.pop("XBG_CONFIG", None)
    home = tmp_path / "home"
    out = subprocess.run([sys.executable, "-m", "xborder_gateway._cli", "--home", str(home), "demo", "--sites", "1",
                          "--count", "200", "--seed", "4", "--json"], capture_output=True, text=True, env=env,
                         timeout=240, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result) >= REQUIRED
    assert result["published"] == 200
    assert result["published"] == result["rejected"] + result["delivered"] + result["dead_lettered"]
    assert result["rejected"] > 0, "about 5% of generated documents are invalid"
    assert result["delivered"] > 150
    assert result["throughput_per_s"] > 0
    assert result["p50_ms"] <= result["p99_ms"]
    # the simulated hour at the gate over the run's own vehicle declarations (issue 14 item 5)
    gate = result["gate"]
    assert gate["vehicles"] > 0
    assert gate["arrivals"] == gate["GREEN"] + gate["YELLOW"] + gate["RED"] == sum(gate["by_reason"].values())
    assert gate["GREEN"] > 0
    assert gate["by_reason"]["NO_PRE_DECLARATION"] >= 2
    assert "simulated hour" in out.stdout
    # keys and trust were created, the passphrase file is private, progress went to stderr
    assert (home / "keys" / "VN" / "own").is_dir()
    assert (home / "keys" / "CN" / "own").is_dir()
    assert (home / "demo-passphrase").stat().st_mode & 0o077 == 0
    assert "demo-passphrase" in out.stdout
    assert "settled" in out.stderr
    # issue 10 item 5: both directions; the top-level keys stay VN -> CN
    directions = result["directions"]
    assert set(directions) == {"VN-CN", "CN-VN"}
    assert directions["VN-CN"] == {k: result[k] for k in directions["VN-CN"]}
    cn_vn = directions["CN-VN"]
    assert set(cn_vn) >= REQUIRED
    assert cn_vn["published"] == 2 * 40, "a fifth of --count trucks: an export declaration and a road manifest each"
    assert cn_vn["reconciles"]
    assert cn_vn["published"] == cn_vn["rejected"] + cn_vn["delivered"] + cn_vn["dead_lettered"]
    assert "business_by_reason" in result
    mirror = result["mirror_findings"]
    assert mirror["checked"] == 40
    assert mirror["found"] == mirror["expected"], "the mirror checks find exactly the seeded mismatches"
    assert mirror["seeded"] > 0
    assert mirror["reconciles"]
    assert "CN -> VN" in out.stdout
    assert "mirror checks" in out.stdout
