"""Every command that parses a sender's XML takes its bounds from the settings (XBG_DOCUMENTS_MAX_BYTES,
_MAX_DEPTH, _MAX_ELEMENTS), not from ``DEFAULT_LIMITS`` (issue 9 item 2): validate, map, seal and publish
here; the outbound connector in tests/exchange/test_outbound_limits.py. Each case is also run with the
default settings, under which the same document passes, so the refusal can only come from the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from xborder_gateway._cli import main
from xborder_gateway.config import load_settings

GOLDEN = (Path(__file__).parent / "golden" / "IDA-golden.xml").read_bytes()

#: (setting, value, code): each value is below what the golden IDA needs (about 3 KB, depth 3, 70 elements)
LIMITS = [
    ("XBG_DOCUMENTS_MAX_BYTES", "500", "XML_TOO_LARGE"),
    ("XBG_DOCUMENTS_MAX_DEPTH", "1", "XML_TOO_DEEP"),
    ("XBG_DOCUMENTS_MAX_ELEMENTS", "20", "XML_TOO_MANY_ELEMENTS"),
]
IDS = [c[0].removeprefix("XBG_DOCUMENTS_").lower() for c in LIMITS]


@pytest.fixture
def doc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XBG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XBG_CONFIG", raising=False)
    for name, _value, _code in LIMITS:
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "ida.xml"
    path.write_bytes(GOLDEN)
    return path


def test_the_golden_document_passes_every_command_under_the_defaults(doc: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(doc)]) == 0
    assert main(["map", str(doc), "--format", "json"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("limit", LIMITS, ids=IDS)
def test_validate_takes_the_limits_from_settings(doc: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], limit: tuple[str, str, str]) -> None:
    setting, value, code = limit
    monkeypatch.setenv(setting, value)
    assert main(["validate", str(doc)]) == 1
    assert f" {code} " in capsys.readouterr().out


@pytest.mark.parametrize("limit", LIMITS, ids=IDS)
def test_map_takes_the_limits_from_settings(doc: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], limit: tuple[str, str, str]) -> None:
    setting, value, code = limit
    monkeypatch.setenv(setting, value)
    assert main(["map", str(doc), "--format", "json"]) == 1
    captured = capsys.readouterr()
    assert f" {code} " in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("limit", LIMITS, ids=IDS)
def test_seal_takes_the_limits_from_settings(doc: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], limit: tuple[str, str, str]) -> None:
    setting, value, code = limit
    monkeypatch.setenv(setting, value)  # refused before any key is needed
    assert main(["seal", str(doc), "--to", "CN"]) == 1
    err = capsys.readouterr().err
    assert code in err
    assert "Traceback" not in err
    assert not doc.with_name(doc.name + ".xbge").exists()


def test_publish_peeks_the_key_under_the_limits_from_settings(doc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``xborder publish FILE`` reads the Kafka key with the intake's byte checks and the configured size cap:
    a document over it gets no key (the outbound connector then refuses it with XML_TOO_LARGE)."""
    from xborder_gateway._cli.commands.publish import _files

    assert list(_files([doc], load_settings())) == [("105000000017", GOLDEN)]
    monkeypatch.setenv("XBG_DOCUMENTS_MAX_BYTES", "500")
    assert list(_files([doc], load_settings())) == [(None, GOLDEN)]
