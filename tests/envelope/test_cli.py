"""``xborder keys …``, ``xborder seal`` and ``xborder open`` end to end in a throwaway home."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from xborder_gateway import avro
from xborder_gateway._cli import main


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XBG_KEY_PASSPHRASE", "cli test passphrase")
    monkeypatch.delenv("XBG_CONFIG", raising=False)
    return tmp_path / "home"


def _run(home: Path, *argv: str) -> int:
    return main(["--home", str(home), *argv])


def _fp(bundle: Path) -> list[str]:
    """``--expect-fingerprint`` for every certificate of ``bundle``: what a script passes (issue 9 item 4)."""
    from xborder_gateway.envelope import parse_bundle

    return [a for c in parse_bundle(bundle.read_bytes()) for a in ("--expect-fingerprint", c.fingerprint.hex())]


def _paired(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for auth in ("VN", "CN"):
        assert _run(home, "keys", "init", "--authority", auth) == 0
    assert _run(home, "keys", "export", "--authority", "VN", "--out", str(tmp_path / "vn.pem")) == 0
    assert _run(home, "keys", "export", "--authority", "CN", "--out", str(tmp_path / "cn.pem")) == 0
    assert _run(home, "keys", "import", str(tmp_path / "vn.pem"), *_fp(tmp_path / "vn.pem"), "--authority", "CN") == 0
    assert _run(home, "keys", "import", str(tmp_path / "cn.pem"), *_fp(tmp_path / "cn.pem"), "--authority", "VN") == 0
    capsys.readouterr()


def _avro_file(tmp_path: Path) -> Path:
    record = {"message_id": "01936f2a-4b00-7000-8000-000000000001", "business_key": "101234567890",
              "document_type": "IDA", "status": "HELD",
              "reasons": [{"code": "PHYTO_CHECK", "text": "kiểm dịch thực vật / 植物检疫"}],
              "responded_at": datetime(2026, 11, 25, 12, tzinfo=UTC)}
    path = tmp_path / "response.avro"
    path.write_bytes(avro.encode("BusinessResponse", record))
    return path


def test_keys_seal_open(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _paired(home, tmp_path, capsys)
    src = _avro_file(tmp_path)
    out = tmp_path / "resp.xbge"
    assert _run(home, "seal", str(src), "--to", "CN", "--out", str(out)) == 0
    sealed = json.loads(capsys.readouterr().out)
    assert sealed["document_type"] == "BUSINESS_RESPONSE"
    assert out.stat().st_size == sealed["bytes"]
    assert _run(home, "open", str(out)) == 0
    opened = json.loads(capsys.readouterr().out)
    assert opened["header"]["message_id"] == sealed["message_id"]
    assert opened["sha256"] == sealed["sha256"]
    assert opened["payload"]["schema"] == "BusinessResponse"
    assert opened["payload"]["record"]["reasons"][0]["text"] == "kiểm dịch thực vật / 植物检疫"


def test_open_refusal_prints_rule_code(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _paired(home, tmp_path, capsys)
    out = tmp_path / "resp.xbge"
    assert _run(home, "seal", str(_avro_file(tmp_path)), "--out", str(out)) == 0
    data = bytearray(out.read_bytes())
    data[-1] ^= 1
    out.write_bytes(bytes(data))
    capsys.readouterr()
    assert _run(home, "open", str(out)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ENV-6 DECRYPT_FAILED")
    assert "Traceback" not in err
    # opening as the wrong authority
    out2 = tmp_path / "ok.xbge"
    assert _run(home, "seal", str(_avro_file(tmp_path)), "--out", str(out2)) == 0
    capsys.readouterr()
    assert _run(home, "open", str(out2), "--authority", "VN") == 1
    assert "ENV-4 WRONG_RECIPIENT" in capsys.readouterr().err


def test_open_with_replay_db(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _paired(home, tmp_path, capsys)
    out = tmp_path / "resp.xbge"
    assert _run(home, "seal", str(_avro_file(tmp_path)), "--out", str(out)) == 0
    db = tmp_path / "seen.sqlite"
    assert _run(home, "open", str(out), "--replay-db", str(db)) == 0
    capsys.readouterr()
    assert _run(home, "open", str(out), "--replay-db", str(db)) == 1
    assert "ENV-10 REPLAYED" in capsys.readouterr().err


def test_import_with_fingerprint_check(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(home, "keys", "init", "--authority", "VN") == 0
    assert _run(home, "keys", "export", "--authority", "VN", "--out", str(tmp_path / "vn.pem")) == 0
    fingerprint = capsys.readouterr().err.split("fingerprint ")[1].split()[0]
    assert _run(home, "keys", "import", str(tmp_path / "vn.pem"), "--authority", "CN",
                "--expect-fingerprint", "00" * 32) == 1
    assert "KEYS_FINGERPRINT_MISMATCH" in capsys.readouterr().err
    assert _run(home, "keys", "import", str(tmp_path / "vn.pem"), "--authority", "CN",
                "--expect-fingerprint", fingerprint) == 0


def test_rotate_and_list(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _paired(home, tmp_path, capsys)
    assert _run(home, "keys", "rotate", "--authority", "VN", "--validity-days", "10") == 0
    capsys.readouterr()
    assert _run(home, "keys", "list", "--authority", "VN", "--json") == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    own = [r for r in rows if r["kind"] == "own"]
    assert len(own) == 2
    assert sum(r["current"] for r in own) == 1  # the new one, or the old one during the new one's first second
    assert own[0]["not_before"] > own[1]["not_before"]
    assert own[0]["not_after"] < own[1]["not_after"]  # 10 days vs 365
    # the older generation outlives the new one by far, so no rotation warning is needed
    assert "warning: own key" not in captured.err
    assert _run(home, "keys", "list", "--authority", "CN") == 0
    text = capsys.readouterr().out
    assert "trusted" in text
    assert "VN" in text


def test_expiry_warning(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(home, "keys", "init", "--authority", "VN", "--validity-days", "5") == 0
    capsys.readouterr()
    assert _run(home, "keys", "list", "--authority", "VN") == 0
    assert "warning: own key of VN expires in" in capsys.readouterr().err


def test_missing_passphrase_is_a_diagnostic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("XBG_KEY_PASSPHRASE", raising=False)
    assert main(["--home", str(tmp_path), "keys", "init", "--authority", "VN"]) == 1
    err = capsys.readouterr().err
    assert "KEYS_NO_PASSPHRASE" in err
    assert "XBG_KEY_PASSPHRASE" in err


@pytest.mark.parametrize("kind", ["IDA", "EDA", "TIR"])
def test_seal_vnaccs_xml(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    from xborder_gateway.samples import generate

    _paired(home, tmp_path, capsys)
    [sample] = list(generate(kind, 1, seed=4))
    src = tmp_path / f"{kind}.xml"
    src.write_bytes(sample.xml)
    assert _run(home, "seal", str(src), "--to", "CN") == 0
    sealed = json.loads(capsys.readouterr().out)
    assert sealed["document_type"] == kind
    assert _run(home, "open", sealed["out"]) == 0
    opened = json.loads(capsys.readouterr().out)
    assert opened["header"]["document_type"] == kind
    assert opened["header"]["priority"] == (1 if sample.perishable else 0)
    assert opened["payload"]["record"]["declaration_number"] == sample.business_key


def test_seal_invalid_xml_is_a_diagnostic(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _paired(home, tmp_path, capsys)
    src = tmp_path / "bad.xml"
    src.write_bytes(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><IDA>&a;</IDA>')
    assert _run(home, "seal", str(src)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "Traceback" not in err


def test_keys_verbs_as_the_issue_writes_them(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`keys export --out BUNDLE`, `keys import BUNDLE`, `keys rotate`, `keys list` without --authority, one
    authority per home (as each customs side runs it)."""
    vn_home, cn_home = tmp_path / "vn", tmp_path / "cn"
    assert _run(vn_home, "keys", "init", "--authority", "VN") == 0
    assert _run(cn_home, "keys", "init", "--authority", "CN") == 0
    assert _run(vn_home, "keys", "export", "--out", str(tmp_path / "vn.pem")) == 0
    assert _run(cn_home, "keys", "import", str(tmp_path / "vn.pem"), *_fp(tmp_path / "vn.pem")) == 0
    assert "trusted by CN" in capsys.readouterr().err
    assert _run(vn_home, "keys", "rotate") == 0
    capsys.readouterr()
    assert _run(vn_home, "keys", "list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["authority"] for r in rows if r["kind"] == "own"] == ["VN", "VN"]
    assert _run(cn_home, "keys", "list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["kind"], r["authority"]) for r in rows} == {("own", "CN"), ("trusted", "VN")}
    # a home's own bundle is still refused, not imported as the other authority's
    assert _run(vn_home, "keys", "import", str(tmp_path / "vn.pem"), *_fp(tmp_path / "vn.pem")) == 1
    assert "KEYS_BUNDLE_SELF" in capsys.readouterr().err


def test_keys_authority_default_needs_one_authority(home: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(home, "keys", "list") == 1
    assert "KEYS_MISSING" in capsys.readouterr().err
    _paired(home, tmp_path, capsys)  # this home holds VN's and CN's keys
    assert _run(home, "keys", "export") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: KEYS_AUTHORITY_AMBIGUOUS")
    assert "--authority" in err
    # ...but an import can only be for the authority that is not the bundle's
    assert _run(home, "keys", "import", str(tmp_path / "vn.pem"), *_fp(tmp_path / "vn.pem")) == 0
    assert "trusted by CN" in capsys.readouterr().err


@pytest.mark.parametrize("verb", ["seal", "export"])
def test_unwritable_out_is_a_usage_error(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         verb: str) -> None:
    _paired(home, tmp_path, capsys)
    target = str(tmp_path / "missing-dir" / "out")
    argv = (["seal", str(_avro_file(tmp_path)), "--out", target] if verb == "seal"
            else ["keys", "export", "--authority", "VN", "--out", target])
    assert _run(home, *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: FILE_UNWRITABLE")
    assert "Traceback" not in err


def test_open_refuses_an_oversize_file_and_an_unusable_replay_db(home: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _paired(home, tmp_path, capsys)
    big = tmp_path / "big.xbge"
    big.write_bytes(b"\x00" * (3 * 1024 * 1024))
    assert _run(home, "open", str(big)) == 1
    assert capsys.readouterr().err.startswith("error: ENV-1 SIZE_EXCEEDED")
    out = tmp_path / "resp.xbge"
    assert _run(home, "seal", str(_avro_file(tmp_path)), "--out", str(out)) == 0
    capsys.readouterr()
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("not a database\n" * 200)
    assert _run(home, "open", str(out), "--replay-db", str(not_a_db)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: REPLAY_DB_UNUSABLE")
    assert "Traceback" not in err


def test_open_prints_the_record_as_map_does_and_says_replay_was_not_checked(
        home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from xborder_gateway.samples import generate

    _paired(home, tmp_path, capsys)
    [sample] = list(generate("IDA", 1, seed=11))
    src = tmp_path / "ida.xml"
    src.write_bytes(sample.xml)
    assert _run(home, "map", str(src), "--format", "json") == 0
    mapped = json.loads(capsys.readouterr().out)
    assert mapped["declared_on"].endswith("Z")
    assert _run(home, "seal", str(src), "--out", str(tmp_path / "ida.xbge")) == 0
    capsys.readouterr()
    assert _run(home, "open", str(tmp_path / "ida.xbge")) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["payload"]["record"] == mapped  # same JSON for the same record
    assert "ENV-10 (replay) was not checked" in captured.err


@pytest.mark.parametrize(("argv", "option"), [
    (["keys", "init", "--authority", "VN", "--validity-days", "0"], "--validity-days"),
    (["keys", "init", "--authority", "VN", "--validity-days", "-3"], "--validity-days"),
    (["keys", "rotate", "--authority", "VN", "--validity-days", "x"], "--validity-days"),
    (["seal", "in.avro", "--ttl-hours", "nan"], "--ttl-hours"),
    (["seal", "in.avro", "--ttl-hours", "inf"], "--ttl-hours"),
    (["seal", "in.avro", "--ttl-hours", "1e300"], "--ttl-hours"),
    (["seal", "in.avro", "--ttl-hours", "0"], "--ttl-hours"),
], ids=["validity 0", "validity negative", "validity not a number", "ttl nan", "ttl inf", "ttl huge", "ttl 0"])
def test_bad_numbers_are_usage_errors(home: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                      option: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        _run(home, *argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert option in err
    assert "Traceback" not in err
    assert not (home / "keys").exists()  # nothing was written


def test_import_reads_a_bounded_amount(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    huge = tmp_path / "huge.pem"
    huge.write_bytes(b"-----BEGIN CERTIFICATE-----\n" + b"A" * (2 << 20))
    assert _run(home, "keys", "import", str(huge), "--authority", "CN") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: KEYS_BUNDLE_INVALID")
    assert "larger than" in err


def test_seal_and_open_default_to_the_homes_authority(home: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Each side runs its own home: `xborder seal FILE` / `xborder open ENVELOPE` need no --authority/--to,
    in both directions (CN answers VN)."""
    vn_home, cn_home = tmp_path / "vn", tmp_path / "cn"
    assert _run(vn_home, "keys", "init", "--authority", "VN") == 0
    assert _run(cn_home, "keys", "init", "--authority", "CN") == 0
    assert _run(vn_home, "keys", "export", "--out", str(tmp_path / "vn.pem")) == 0
    assert _run(cn_home, "keys", "export", "--out", str(tmp_path / "cn.pem")) == 0
    assert _run(cn_home, "keys", "import", str(tmp_path / "vn.pem"), *_fp(tmp_path / "vn.pem")) == 0
    assert _run(vn_home, "keys", "import", str(tmp_path / "cn.pem"), *_fp(tmp_path / "cn.pem")) == 0
    capsys.readouterr()
    src = _avro_file(tmp_path)
    for sender_home, receiver_home, sender, recipient in ((vn_home, cn_home, "VN", "CN"),
                                                          (cn_home, vn_home, "CN", "VN")):
        out = tmp_path / f"{sender}.xbge"
        assert _run(sender_home, "seal", str(src), "--out", str(out)) == 0
        assert json.loads(capsys.readouterr().out)["recipient"] == recipient
        assert _run(receiver_home, "open", str(out)) == 0
        header = json.loads(capsys.readouterr().out)["header"]
        assert (header["sender"], header["recipient"]) == (sender, recipient)


def test_seal_follows_envelope_suite_and_open_reads_both(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _paired(home, tmp_path, capsys)
    for suite in (1, 2):
        monkeypatch.setenv("XBG_ENVELOPE_SUITE", str(suite))
        out = tmp_path / f"resp-{suite}.xbge"
        assert _run(home, "seal", str(_avro_file(tmp_path)), "--to", "CN", "--out", str(out)) == 0
        assert json.loads(capsys.readouterr().out)["suite"] == suite
        assert _run(home, "open", str(out)) == 0
        opened = json.loads(capsys.readouterr().out)
        assert opened["header"]["suite"] == suite
        assert opened["payload"]["schema"] == "BusinessResponse"
    monkeypatch.setenv("XBG_ENVELOPE_SUITE", "3")  # an invalid setting is a diagnostic (exit 1), not a traceback
    assert _run(home, "seal", str(_avro_file(tmp_path)), "--to", "CN") == 1
    err = capsys.readouterr().err
    assert "envelope_suite" in err
    assert "Traceback" not in err
