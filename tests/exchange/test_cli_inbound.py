"""``xborder run inbound|outbound|receipts --authority A`` (issue 10 item 1): the roles by authority; fault
flags only with ``--allow-fault-injection``. No broker: the connector itself is replaced where it would start."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from xborder_gateway._cli import main
from xborder_gateway._cli.commands import run
from xborder_gateway.config import Settings
from xborder_gateway.envelope import init_authority

from .conftest import PASSPHRASE, Home


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[argparse.Namespace]:
    calls: list[argparse.Namespace] = []

    def fake(args: argparse.Namespace, _settings: Settings, authority: str = "CN") -> int:
        args.started_for = authority
        calls.append(args)
        return 0

    monkeypatch.setattr(run, "_nanning", fake)
    return calls


@pytest.fixture
def senders(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The (role, authority) the outbound and receipts commands would start."""
    from xborder_gateway import connectors

    calls: list[tuple[str, str]] = []

    async def outbound(_s: Settings, _o: object, authority: str = "VN") -> int:
        calls.append(("outbound", authority))
        return 0

    async def receipts(_s: Settings, _o: object, authority: str = "VN") -> int:
        calls.append(("receipts", authority))
        return 0

    monkeypatch.setattr(connectors, "run_outbound", outbound)
    monkeypatch.setattr(connectors, "run_receipts", receipts)
    return calls


@pytest.mark.parametrize("flag", [["--drop-rate", "0.1"], ["--duplicate-rate", "0.2"], ["--delay-ms", "5"],
                                  ["--reject-rate", "0.1"], ["--crash-after", "3"], ["--offline-for", "1"],
                                  ["--seed", "7"]])
def test_fault_flags_need_allow_fault_injection(home: Home, started: list[argparse.Namespace], flag: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(home.path), "run", "inbound", *flag]) == 2
    assert "FAULTS_NOT_ALLOWED" in capsys.readouterr().err
    assert started == []
    assert main(["--home", str(home.path), "run", "inbound", "--allow-fault-injection", *flag]) == 0
    assert len(started) == 1


def test_home_with_both_authorities_defaults_to_cn(home: Home, started: list[argparse.Namespace]) -> None:
    assert main(["--home", str(home.path), "run", "inbound"]) == 0
    assert main(["--home", str(home.path), "run", "inbound", "--authority", "cn"]) == 0
    assert main(["--home", str(home.path), "run", "inbound", "--authority", "VN"]) == 0
    assert [a.started_for for a in started] == ["CN", "CN", "VN"]


def test_a_single_authority_home_defaults_every_role_to_it(tmp_path: Path, started: list[argparse.Namespace],
                                                           senders: list[tuple[str, str]],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from xborder_gateway.config import load_settings

    init_authority(load_settings(home=tmp_path / "vn"), "VN", PASSPHRASE)  # a VN-only home defaults to VN
    init_authority(load_settings(home=tmp_path / "cn"), "CN", PASSPHRASE)
    assert main(["--home", str(tmp_path / "vn"), "run", "inbound"]) == 0
    assert main(["--home", str(tmp_path / "cn"), "run", "outbound"]) == 0
    assert main(["--home", str(tmp_path / "cn"), "run", "receipts"]) == 0
    assert main(["--home", str(tmp_path / "vn"), "run", "inbound", "--authority", "XX"]) == 2  # usage error
    assert [a.started_for for a in started] == ["VN"]
    assert senders == [("outbound", "CN"), ("receipts", "CN")]


def test_home_with_both_authorities_sends_as_vn_unless_told(home: Home, senders: list[tuple[str, str]]) -> None:
    for role in ("outbound", "receipts"):
        assert main(["--home", str(home.path), "run", role]) == 0
        assert main(["--home", str(home.path), "run", role, "--authority", "CN"]) == 0
    assert senders == [("outbound", "VN"), ("outbound", "CN"), ("receipts", "VN"), ("receipts", "CN")]


def test_nanning_keeps_its_fault_flags_without_the_allow_flag(home: Home, started: list[argparse.Namespace]) -> None:
    assert main(["--home", str(home.path), "run", "nanning", "--drop-rate", "0.3", "--seed", "1"]) == 0
    assert (started[0].drop_rate, started[0].seed) == (0.3, 1)
