"""The pure parts of ``xborder demo --sites 2`` (_cli/_demo_sites.py): port layout, per-site settings and
environment, the topic check, the latency statistics and the summary's link/witness sections. The real
run is ``tests/exchange/test_demo.py::test_demo_two_sites_over_the_link``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from xborder_gateway._cli._demo_sites import (
    SITE_ROLES,
    _sections,
    latency_stats,
    site_config,
    site_env,
    site_overrides,
    site_ports,
    sites_lines,
    topic_check,
)
from xborder_gateway._cli.commands.demo import _summary_text
from xborder_gateway.config import Settings, load_settings
from xborder_gateway.errors import ConfigError
from xborder_gateway.link import FlowLag, LinkReport, PartitionLag


def test_default_ports_are_the_issues_per_site_defaults() -> None:
    ports = site_ports(None)
    assert (ports["VN"].kafka, ports["VN"].controller, ports["VN"].link, ports["VN"].rest) == (9092, 9093, 9094, 9095)
    assert (ports["CN"].kafka, ports["CN"].controller, ports["CN"].link, ports["CN"].rest) == (9192, 9193, 9194, 9195)


def test_a_port_base_moves_all_nine_ports_and_no_two_collide() -> None:
    ports = site_ports(31010)
    used = [v for p in ports.values() for v in (p.kafka, p.controller, p.link, p.rest)]
    assert used == [31010, 31011, 31012, 31013, 31015, 31016, 31017, 31018]
    assert len(set(used)) == len(used)


@pytest.mark.parametrize("base", [0, 80, 1023, 65528, 70000])
def test_a_port_base_without_room_is_refused(base: int) -> None:
    with pytest.raises(ConfigError) as exc:
        site_ports(base)
    assert exc.value.code == "DEMO_PORTS"


@pytest.mark.parametrize("value", ["80", "65528"])
def test_the_setting_is_bounded_too(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XBG_DEMO_PORT_BASE", value)
    with pytest.raises(ConfigError):
        load_settings()


def test_each_site_talks_to_its_own_broker_and_reads_the_counterparts_link_listener(tmp_path: Path) -> None:
    ports = site_ports(31010)
    vn, cn = site_overrides(tmp_path, "VN", ports), site_overrides(tmp_path, "CN", ports)
    assert vn["home"] == tmp_path / "vn"
    assert cn["home"] == tmp_path / "cn"
    assert vn["kafka_bootstrap"] == "127.0.0.1:31010"
    assert cn["kafka_bootstrap"] == "127.0.0.1:31015"
    assert vn["link_remote_bootstrap"] == "127.0.0.1:31017"  # CN's link listener
    assert cn["link_remote_bootstrap"] == "127.0.0.1:31012"  # VN's link listener
    # the settings the demo derives are a valid site of each authority
    s = Settings(**dict(cn.items()))
    assert s.site == "CN"
    assert s.link_counterpart == "VN"
    assert s.bootstrap_local == "127.0.0.1:31015"


def test_a_site_child_gets_its_own_settings_over_the_demos_environment(tmp_path: Path) -> None:
    env = site_env(site_overrides(tmp_path, "VN", site_ports(31010)))
    assert env["XBG_KAFKA_PORT"] == "31010"
    assert env["XBG_KAFKA_BOOTSTRAP"] == "127.0.0.1:31010"
    assert env["XBG_SITE_AUTHORITY"] == "VN"
    assert env["XBG_HOME"] == str(tmp_path / "vn")
    assert env["XBG_AUDIT_CHECKPOINT_SECONDS"] == "2"


def test_the_site_config_file_names_the_site_and_its_ports(tmp_path: Path) -> None:
    overrides = site_overrides(tmp_path, "CN", site_ports(31010))
    text = site_config(overrides)
    data = tomllib.loads(text)
    assert data == {"site_authority": "CN", "kafka_port": 31015, "kafka_controller_port": 31016,
                    "kafka_link_port": 31017, "link_rest_port": 31018, "link_remote_bootstrap": "127.0.0.1:31012"}
    (tmp_path / "cn").mkdir()
    (tmp_path / "cn" / "config.toml").write_text(text)
    s = load_settings(home=tmp_path / "cn")
    assert (s.site, s.kafka_port, s.link_remote) == ("CN", 31015, "127.0.0.1:31012")


def test_each_site_runs_only_its_own_roles_and_a_witness() -> None:
    verbs = {site: [v for _, v in roles] for site, roles in SITE_ROLES.items()}
    assert ("witness", "--authority", "VN") in verbs["VN"]
    assert ("witness", "--authority", "CN") in verbs["CN"]
    # VN: VN -> CN sender and CN -> VN receiver; CN: the mirror image; nothing of the other authority
    assert ("outbound", "--authority", "VN") in verbs["VN"]
    assert ("inbound", "--authority", "VN") in verbs["VN"]
    assert ("outbound", "--authority", "CN") in verbs["CN"]
    assert ("nanning",) in verbs["CN"]
    assert not any("CN" in v for v in verbs["VN"])
    assert not any("VN" in v for v in verbs["CN"])
    names = [n for roles in SITE_ROLES.values() for n, _ in roles]
    assert len(names) == len(set(names)), "log file names are unique"


def _site(name: str) -> Settings:
    return Settings(home=Path("/nonexistent") / name.lower(), site_authority=name)


def test_topic_check_flags_a_crossed_site_topic_and_a_missing_incoming_flow() -> None:
    vn, cn = _site("VN"), _site("CN")
    ok = (set(vn.link_topics("VN", "CN")) | set(vn.link_topics("CN", "VN")) | set(vn.site_topics("VN").all())
          | {"__consumer_offsets", "mm2-offsets.CN.internal", "heartbeats"})
    good = topic_check("VN", ok, vn, cn)
    assert good["foreign_site_topics"] == []
    assert good["incoming_missing"] == []
    assert good["other"] == []
    assert "__consumer_offsets" not in good["topics"]
    assert "vn.declarations.raw" in good["topics"]
    assert topic_check("VN", ok | {"vn.gate.arrivals", "vn.gate.decisions"}, vn, cn)["other"] == []
    cn_ok = (ok - set(vn.site_topics("VN").all())) | set(cn.site_topics("CN").all())
    assert topic_check("CN", cn_ok, cn, vn)["foreign_site_topics"] == []
    assert topic_check("CN", cn_ok | {"vn.gate.decisions"}, cn, vn)["foreign_site_topics"] == ["vn.gate.decisions"]
    bad = topic_check("VN", (ok | {"cn.declarations.raw", "cn.exchange.dead-letter"}) - {"xb.cn-vn.receipts"},
                      vn, cn)
    assert bad["foreign_site_topics"] == ["cn.declarations.raw", "cn.exchange.dead-letter"]
    assert bad["incoming_missing"] == ["xb.cn-vn.receipts"]


def test_latency_stats_match_records_seen_at_both_ends() -> None:
    source = {bytes([i]): float(i * 10) for i in range(100)}
    target = {bytes([i]): float(i * 10 + i + 1) for i in range(100)}  # record i took i + 1 ms
    target[b"only-at-target"] = 5.0
    stats = latency_stats(source, target)
    assert stats == {"records": 100, "p50_ms": 50.0, "p99_ms": 99.0, "max_ms": 100.0}
    assert latency_stats(source, {}) == {"records": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    # a record seen at the target in the same poll round as at the source never counts as negative
    assert latency_stats({b"k": 10.0}, {b"k": 9.0})["p50_ms"] == 0.0


def _report(source: str, target: str, *, reachable: bool = True, records: int = 0) -> LinkReport:
    flow = FlowLag("xb.vn-cn.exchange", True, (PartitionLag("xb.vn-cn.exchange", 0, 10, 10 - records, records, 0.5),))
    return LinkReport(source, target, reachable, (flow, FlowLag("xb.vn-cn.receipts", False)),
                      error=None if reachable else "KafkaConnectionError: refused")


def _witness(cosigned: bool) -> dict[str, Any]:
    return {"log_size": 40, "checkpoint_size": 40, "cosigned": cosigned, "cosigned_size": 40 if cosigned else None,
            "witness": "w/cn", "error": None if cosigned else "WITNESS_COSIGNATURE_MISSING: none"}


def _all(*, reachable: bool = True, running: bool = True, cosigned: bool = True,
         crossed: bool = False) -> tuple[dict[str, Any], bool]:
    sites = {"VN": _site("VN"), "CN": _site("CN")}
    topics = {n: set(s.link_topics("VN", "CN")) | set(s.link_topics("CN", "VN")) | set(s.site_topics(n).all())
              for n, s in sites.items()}
    if crossed:
        topics["CN"].add("vn.declarations.status")
    return _sections(sites, reports={"VN": _report("CN", "VN"), "CN": _report("VN", "CN", reachable=reachable)},
                     running={"VN": True, "CN": running}, mirror_start={"VN": 12.34, "CN": None},
                     latencies={"VN->CN": latency_stats({b"a": 1.0}, {b"a": 21.0})},
                     witness={"VN": _witness(True), "CN": _witness(cosigned)}, topics=topics)


def test_the_sections_are_ok_only_when_link_witness_and_isolation_all_hold() -> None:
    extra, ok = _all()
    assert ok
    assert set(extra) == {"sites", "link", "witness"}
    flows = extra["link"]["flows"]
    assert set(flows) == {"CN->VN", "VN->CN"}
    assert flows["CN->VN"]["mirrormaker_start_s"] == 12.3
    assert flows["VN->CN"]["mirrormaker_start_s"] is None
    assert flows["VN->CN"]["latency"]["p50_ms"] == 20.0
    assert flows["CN->VN"]["latency"]["records"] == 0
    assert flows["CN->VN"]["lag"][0] == {"topic": "xb.vn-cn.exchange", "records": 0, "seconds": 0.5, "capped": False}
    assert flows["CN->VN"]["lag"][1]["records"] is None  # not at the source yet: no figure, not zero
    assert "latency_method" in extra["link"]
    json.dumps(extra)  # --json can carry it
    assert not _all(reachable=False)[1], "a link whose source is unreachable is not healthy"
    assert not _all(running=False)[1], "a MirrorMaker that stopped is not a healthy link"
    assert not _all(cosigned=False)[1], "a log without the counterpart's cosignature fails the demo"
    assert not _all(crossed=True)[1], "a site topic at the other site fails the demo"


def test_the_summary_text_shows_the_sites_link_and_witness() -> None:
    extra, _ = _all(cosigned=False)
    lines = "\n".join(sites_lines(extra))
    assert "healthy True" in lines
    assert "started in 12.3s" in lines
    assert "already running" in lines
    assert "p50 20.0 ms, p99 20.0 ms over 1 records" in lines
    assert "lag xb.vn-cn.exchange" in lines
    assert "cosigned by w/cn at size 40 (verified)" in lines
    assert "NOT cosigned: WITNESS_COSIGNATURE_MISSING" in lines
    # the demo's summary carries them when present (two sites) and not otherwise (one site)
    base = {"run": "r", "keys": "k", "logs": "l"}
    assert "witness (each log cosigned" in _summary_text({**base, **_direction(), **extra})
    assert "witness (each log cosigned" not in _summary_text({**base, **_direction()})


def _direction() -> dict[str, Any]:
    return {"published": 1, "rejected": 0, "rejected_by_reason": {}, "delivered": 1, "business": {},
            "resent": 0, "duplicates_eliminated": 0, "dead_lettered": 0, "reconciles": True,
            "throughput_per_s": 1.0, "p50_ms": 1, "p99_ms": 1}


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XBG_")}
    return subprocess.run([sys.executable, "-m", "xborder_gateway._cli", *argv], capture_output=True, text=True,
                          env=env, timeout=60, check=False)


@pytest.mark.parametrize("sites", ["0", "3", "two"])
def test_sites_other_than_1_or_2_is_a_usage_error(tmp_path: Path, sites: str) -> None:
    out = _cli("--home", str(tmp_path), "demo", "--sites", sites)
    assert out.returncode == 2
    assert "--sites" in out.stderr
    assert "Traceback" not in out.stderr


def test_help_shows_the_sites_option_and_the_one_site_example() -> None:
    out = _cli("demo", "--help")
    assert out.returncode == 0
    assert "--sites N" in out.stdout
    assert "xborder demo --sites 1" in out.stdout
    assert "9194" in out.stdout
    assert "XBG_DEMO_PORT_BASE" in out.stdout


def test_cn_count_above_count_is_refused_before_anything_starts(tmp_path: Path) -> None:
    out = _cli("--home", str(tmp_path), "demo", "--count", "5", "--cn-count", "6")
    assert out.returncode == 1
    assert "--cn-count 6 is more than --count 5" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "sites").exists(), "no site home, key or broker before the options are checked"
