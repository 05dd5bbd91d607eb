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
    # trucks with no pre-declaration are never GREEN; two of them read cleanly, so RED NO_PRE_DECLARATION
    assert gate["undeclared"]["arrivals"] >= 2, gate["undeclared"]
    assert gate["undeclared"]["GREEN"] == 0, gate["undeclared"]
    assert gate["undeclared"]["RED"] >= 2, gate["undeclared"]
    assert gate["by_reason"]["NO_PRE_DECLARATION"] >= 2, gate["by_reason"]
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


# --- issue 11 item 4 / issue 12: the default, two sites linked by MirrorMaker 2 (the one test that runs it) ---
def _free_port_base() -> int:
    """Nine consecutive free ports (VN B..B+3, CN B+5..B+8): ``XBG_TEST_DEMO_PORT_BASE`` or a free block."""
    import random
    import socket

    if os.environ.get("XBG_TEST_DEMO_PORT_BASE"):
        return int(os.environ["XBG_TEST_DEMO_PORT_BASE"])
    rng = random.Random()
    for _ in range(100):
        base = rng.randrange(20_000, 28_000)
        try:
            for port in range(base, base + 9):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no block of 9 free ports found")


@pytest.mark.timeout(480)
def test_demo_two_sites_over_the_link(tmp_path: Path) -> None:
    """`xborder demo` as `make demo` runs it (two sites), small: both directions reconcile over the link; each
    site's cluster holds its own topics and the allow-lists, never the other site's; each log is cosigned by
    the counterpart's witness (checked again here with `audit verify --require-witness`); link lag present."""
    from xborder_gateway.config import load_settings
    from xborder_gateway.kafka_local import LocalKafka
    from xborder_gateway.link import LinkMirror

    base = _free_port_base()
    # XBG_KAFKA_BOOTSTRAP (the session's broker) stays set on purpose: two sites must not use it
    env = {**os.environ, "XBG_DEMO_PORT_BASE": str(base), "XBG_KAFKA_HEAP": "384m", "XBG_LINK_HEAP": "320m",
           # orphan vehicles (their declaration refused at intake) are decided after 5 s, not the demo's 20 s
           "XBG_EXCHANGE_LINKED_GRACE_S": "5"}
    env.pop("XBG_CONFIG", None)
    home = tmp_path / "home"
    out = subprocess.run([sys.executable, "-m", "xborder_gateway._cli", "--home", str(home), "demo", "--count",
                          "60", "--seed", "5", "--json"], capture_output=True, text=True, env=env, timeout=420,
                         check=False)
    assert out.returncode == 0, out.stdout + out.stderr[-6000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # both directions, every existing key kept
    assert set(result) >= REQUIRED | {"directions", "mirror_findings", "gate", "sites", "link", "witness"}
    for name, d in result["directions"].items():
        assert d["reconciles"], name
        assert d["published"] == d["rejected"] + d["delivered"] + d["dead_lettered"]
        assert d["delivered"] > 0, name
    assert result["directions"]["CN-VN"]["published"] == 2 * 12
    assert result["mirror_findings"]["reconciles"]
    # sites isolated: the other site's own topics never appear; what arrives is the allow-list
    sites = result["sites"]
    assert set(sites) == {"VN", "CN"}
    for name, other in (("VN", "CN"), ("CN", "VN")):
        site = sites[name]
        assert site["home"] == str(home / "sites" / name.lower())
        assert site["foreign_site_topics"] == []
        assert site["incoming_missing"] == []
        assert site["other"] == [], f"unexpected topics at {name}: {site['other']}"
        assert not any(t.startswith(f"{other.lower()}.") for t in site["topics"]), site["topics"]
        # each home holds only its own authority's private keys
        assert (home / "sites" / name.lower() / "keys" / name / "own").is_dir()
        assert not (home / "sites" / name.lower() / "keys" / other / "own").exists()
        assert not (home / "sites" / name.lower() / "audit" / f"{other.lower()}.note-key.pem").exists()
    # the link: healthy, per-flow lag (records and seconds) settled to nothing, MirrorMaker start and latency
    link = result["link"]
    assert link["healthy"]
    assert set(link["flows"]) == {"VN->CN", "CN->VN"}
    for flow in link["flows"].values():
        assert flow["running"]
        assert flow["reachable"]
        assert flow["mirrormaker_start_s"] is None or 0 < flow["mirrormaker_start_s"] < 300
        assert flow["lag"], "per-flow lag is reported"
        assert all(t["records"] in (0, None) for t in flow["lag"]), flow["lag"]
        lat = flow["latency"]
        assert lat["records"] > 0, lat
        assert 0 <= lat["p50_ms"] <= lat["p99_ms"] < 60_000, lat
    # the witness over the link: each log's latest checkpoint carries the counterpart's valid cosignature
    for name in ("VN", "CN"):
        w = result["witness"][name]
        assert w["cosigned"], w
        assert w["cosigned_size"] == w["checkpoint_size"] == w["log_size"] > 0, w
        assert w["witness"].endswith(f"/witness/{'cn' if name == 'VN' else 'vn'}")
        verify = subprocess.run([sys.executable, "-m", "xborder_gateway._cli", "--home",
                                 str(home / "sites" / name.lower()), "audit", "verify", "--authority", name,
                                 "--require-witness"], capture_output=True, text=True, env=env, timeout=120,
                                check=False)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "witnessed" in verify.stdout
    assert "witness (each log cosigned" in out.stdout
    assert "link (MirrorMaker 2" in out.stdout
    # everything it started is stopped: both brokers and both MirrorMakers (the site's config.toml names it)
    for name in ("vn", "cn"):
        s = load_settings(home=home / "sites" / name)
        assert s.site == name.upper()
        assert not LocalKafka(s).status().running
        assert not LinkMirror(s).status().running
