"""The CLI teaches: every verb answers --help with an example, takes --home, and never shows a traceback."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

import xborder_gateway
from xborder_gateway._cli import build_parser
from xborder_gateway.errors import (
    AuditIntegrityError,
    ConfigError,
    EnvelopeError,
    GatewayError,
    IntakeError,
    MappingError,
    TransportError,
)


def leaf_commands() -> list[tuple[str, ...]]:
    """Every runnable command path, e.g. ('kafka', 'start')."""
    found: list[tuple[str, ...]] = []

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found.append(path)
            return
        for action in subs:
            for name, child in action.choices.items():
                walk(child, (*path, name))

    walk(build_parser(), ())
    return found


LEAVES = leaf_commands()


def test_there_are_commands() -> None:
    assert ("kafka", "start") in LEAVES


@pytest.mark.parametrize("path", LEAVES, ids=[" ".join(p) for p in LEAVES])
def test_every_verb_has_help_with_an_example_and_takes_home(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([*path, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "example" in text.lower(), f"`xborder {' '.join(path)} --help` shows no example"
    assert "--home" in text


def test_usage_error_exits_2_without_traceback() -> None:
    out = subprocess.run([sys.executable, "-m", "xborder_gateway._cli", "kafka", "no-such-action"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr


def test_config_error_is_a_diagnostic_not_a_traceback() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "xborder_gateway._cli", "--config", "/nonexistent/x.toml", "kafka", "status"],
        capture_output=True, text=True, check=False,
    )
    assert out.returncode == 1
    assert "CONFIG_FILE" in out.stderr
    assert "what to do:" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("cls", "retriable"),
    [(IntakeError, False), (MappingError, False), (EnvelopeError, False), (TransportError, True),
     (AuditIntegrityError, False), (ConfigError, False)],
)
def test_error_tree_codes_and_retriable(cls: type[GatewayError], retriable: bool) -> None:
    err = cls("boom", code="X_CODE", hint="do this")
    assert isinstance(err, GatewayError)
    assert err.retriable is retriable
    assert str(err) == "X_CODE: boom"
    assert "what to do: do this" in err.diagnostics()
    assert cls("x").code == cls.default_code


def test_public_surface_is_the_intended_one() -> None:
    assert sorted(xborder_gateway.__all__) == sorted([
        "AuditIntegrityError", "ConfigError", "EnvelopeError", "GatewayError", "IntakeError", "MappingError",
        "Settings", "TransportError", "__version__", "load_settings",
    ])
    for name in xborder_gateway.__all__:
        assert hasattr(xborder_gateway, name)


def test_configuration_doc_lists_every_setting() -> None:
    from pathlib import Path

    from xborder_gateway._cli.commands.config import settings_markdown

    doc = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text(encoding="utf-8")
    table = doc.split("<!-- settings-table:start -->\n", 1)[1].split("<!-- settings-table:end -->", 1)[0]
    assert table == settings_markdown(), "docs/configuration.md is stale: regenerate with `xborder config markdown`"


def test_output_to_a_full_device_is_a_diagnostic_not_a_traceback() -> None:
    from pathlib import Path

    if not Path("/dev/full").exists():
        pytest.skip("this system has no /dev/full to simulate a full disk")
    with open("/dev/full", "w") as full:
        out = subprocess.run([sys.executable, "-m", "xborder_gateway._cli", "config", "show"],
                             stdout=full, stderr=subprocess.PIPE, text=True, check=False)
    assert out.returncode == 1
    assert "OS_ERROR" in out.stderr
    assert "Traceback" not in out.stderr
