"""xborder validate / map / samples generate: exit codes and output formats, never a traceback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from xborder_gateway import avro
from xborder_gateway._cli import main

GOLDEN = Path(__file__).parent / "golden"
LINE = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+): (?P<code>[A-Z0-9_]+) .+$")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XBG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XBG_CONFIG", raising=False)
    return tmp_path


def test_samples_then_validate_valid_files(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = home / "ok"
    assert main(["samples", "generate", "--kind", "IDA", "--count", "5", "--seed", "1", "--out", str(out)]) == 0
    files = sorted(out.glob("*.xml"))
    assert len(files) == 5
    capsys.readouterr()
    assert main(["validate", *map(str, files)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "5 valid, 0 invalid" in captured.err


def test_validate_invalid_files_one_line_per_error(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = home / "bad"
    assert main(["samples", "generate", "--kind", "TIR", "--count", "8", "--seed", "2", "--out", str(out),
                 "--invalid"]) == 0
    files = sorted(out.glob("*.xml"))
    assert all(len(f.name.split(".")) == 3 for f in files)  # the broken rule is in the name
    capsys.readouterr()
    assert main(["validate", *map(str, files)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= len(files)
    for line in lines:
        match = LINE.match(line)
        assert match, line
        assert Path(match["file"]) in files
    assert {LINE.match(line)["file"] for line in lines} == {str(f) for f in files}  # type: ignore[index]


def test_validate_mix_of_valid_and_invalid_exits_1(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = home / "bad.xml"
    bad.write_bytes(b"<!DOCTYPE x [<!ENTITY a 'b'>]><x/>")
    assert main(["validate", str(GOLDEN / "IDA-golden.xml"), str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{bad}:1:1: XML_ENTITY_FORBIDDEN document declares an entity declaration (entity expansion); "
                   "DOCTYPE and entities are refused"]


def test_validate_usage_errors_exit_2(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(home / "missing.xml")]) == 2
    err = capsys.readouterr().err
    assert "FILE_UNREADABLE" in err
    assert "Traceback" not in err
    with pytest.raises(SystemExit) as exit_:
        main(["validate"])
    assert exit_.value.code == 2


def test_map_json_and_avro(home: Path, capsys: pytest.CaptureFixture[bytes]) -> None:
    assert main(["map", str(GOLDEN / "IDA-golden.xml"), "--format", "json"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed) == json.loads((GOLDEN / "IDA-golden.json").read_text(encoding="utf-8"))
    target = home / "d.avro"
    assert main(["map", str(GOLDEN / "IDA-golden.xml"), "--format", "avro", "--out", str(target)]) == 0
    decoded = avro.decode(target.read_bytes())
    assert decoded.schema_name == "Declaration"
    assert decoded.record["declaration_number"] == "105000000017"


def test_map_invalid_document_exits_1(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = home / "bad.xml"
    bad.write_bytes((GOLDEN / "IDA-golden.xml").read_bytes().replace(b"<ICB>A11</ICB>", b""))
    assert main(["map", str(bad)]) == 1
    err = capsys.readouterr().err
    assert LINE.match(err.splitlines()[0])
    assert "XSD_CONTENT" in err


def test_every_verb_has_an_example_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["validate", "--help"], ["map", "--help"], ["samples", "generate", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
        assert "examples:" in capsys.readouterr().out


def test_samples_mix_writes_linked_trucks(home: Path) -> None:
    out = home / "mix"
    assert main(["samples", "generate", "--kind", "MIX", "--count", "30", "--seed", "4", "--out", str(out)]) == 0
    names = [p.name for p in out.glob("*.xml")]
    assert len(names) == 30
    assert any(n.startswith("TIR-") for n in names)


def test_validate_refuses_an_oversize_file_without_reading_it_all(home: Path, capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XBG_DOCUMENTS_MAX_BYTES", "4096")
    big = home / "big.xml"
    with big.open("wb") as f:
        f.write(b"<IDA>")
        f.truncate(50 * 1024 * 1024)  # a sparse 50 MiB file
    assert main(["validate", str(big)]) == 1
    assert "XML_TOO_LARGE document is 4097 bytes, the limit is 4096" in capsys.readouterr().out


@pytest.mark.parametrize("ratio", ["2", "-0.1", "nan", "half"])
def test_samples_invalid_ratio_out_of_range_is_a_usage_error(home: Path, capsys: pytest.CaptureFixture[str],
                                                             ratio: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["samples", "generate", "--kind", "MIX", "--count", "3", "--seed", "1", "--out",
              str(home / "mix"), "--invalid-ratio", ratio])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--invalid-ratio" in err
    assert "Traceback" not in err


def test_validate_lines_name_the_element(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue promises errors with file, line, column and XPath: the line ends with the element's XPath."""
    bad = home / "bad.xml"
    bad.write_bytes((GOLDEN / "IDA-golden.xml").read_bytes().replace(b"<ICB>", b"<ICB>Z", 1))
    assert main(["validate", str(bad)]) == 1
    [line] = capsys.readouterr().out.splitlines()
    match = LINE.match(line)
    assert match, line
    assert match["code"] == "XSD_ENUMERATION"
    assert line.endswith(" (at /IDA/ICB)")
