"""``xborder run inbound`` (issue 10 item 1, first slice): the receiving endpoint by authority; fault flags
only with ``--allow-fault-injection``. No broker: the endpoint itself is replaced where it would start."""

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

    def fake(args: argparse.Namespace, _settings: Settings) -> int:
        calls.append(args)
        return 0

    monkeypatch.setattr(run, "_nanning", fake)
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
    assert len(started) == 2


def test_authority_without_an_inbound_role_is_a_usage_error(tmp_path: Path, started: list[argparse.Namespace],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from xborder_gateway.config import load_settings

    init_authority(load_settings(home=tmp_path / "vn"), "VN", PASSPHRASE)  # a VN-only home defaults to VN
    assert main(["--home", str(tmp_path / "vn"), "run", "inbound"]) == 2
    assert main(["--home", str(tmp_path / "vn"), "run", "inbound", "--authority", "XX"]) == 2
    assert "INBOUND_AUTHORITY" in capsys.readouterr().err
    assert started == []


def test_nanning_keeps_its_fault_flags_without_the_allow_flag(home: Home, started: list[argparse.Namespace]) -> None:
    assert main(["--home", str(home.path), "run", "nanning", "--drop-rate", "0.3", "--seed", "1"]) == 0
    assert (started[0].drop_rate, started[0].seed) == (0.3, 1)
