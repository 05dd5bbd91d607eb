"""``xborder audit …`` end to end on a real SQLite log in a temporary home."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from xborder_gateway._cli import main
from xborder_gateway.audit import AuditLog, Checkpoint, NoteVerifier, merkle
from xborder_gateway.config import Settings


@pytest.fixture
def home(tmp_path: Path, make_event: Any) -> Path:
    settings = Settings(home=tmp_path, audit_url=None, audit_checkpoint_entries=8)
    # no background ticker: it would also sign the tail on close, and the tail must stay uncovered here
    with AuditLog.open(settings, "VN", background_checkpoints=False) as log:
        for start in range(0, 40, 8):
            log.append([make_event(i) for i in range(start, start + 8)])
        log.append([make_event(40), make_event(41)])  # not yet covered by a checkpoint
    return tmp_path


def run(home: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--home", str(home), "audit", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_search_formats(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(home, capsys, "search", "--declaration", "305100000002")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["index", "time", "event_type"]
    assert [line.split()[0] for line in lines[1:]] == ["8", "9", "10", "11"]
    code, out, _ = run(home, capsys, "search", "--declaration", "305100000002", "--type", "sealed", "--format", "json")
    assert [e["index"] for e in json.loads(out)] == [10]
    code, out, _ = run(home, capsys, "search", "--message-id", "msg-000001", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["index"] for r in rows] == ["4", "5", "6", "7"]
    code, out, err = run(home, capsys, "search", "--since", "2026-11-25T08:00:30Z", "--until", "2026-11-25T08:00:32Z",
                         "--format", "json")
    assert [e["index"] for e in json.loads(out)] == [30, 31]
    code, out, err = run(home, capsys, "search", "--declaration", "nothing")
    assert code == 0
    assert "no matching entries" in err


def test_show_and_export_let_a_third_party_recompute_leaf_hashes(home: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(home, capsys, "show", "7")
    assert code == 0
    assert json.loads(out)["index"] == 7
    code, out, err = run(home, capsys, "export", "--jsonl")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 42
    assert "exported 42 entries" in err
    leaves = []
    for i, line in enumerate(lines):
        obj = json.loads(line)
        assert obj["index"] == i
        # docs/audit.md §2: the entry is the JSON object with sorted keys and no whitespace
        entry = json.dumps(obj["entry"], sort_keys=True, separators=(",", ":")).encode()
        assert merkle.leaf_hash(entry).hex() == obj["leaf_hash"]
        leaves.append(bytes.fromhex(obj["leaf_hash"]))
    code, out, _ = run(home, capsys, "consistency", "0", "42", "--json")
    assert json.loads(out)["new_root"] == merkle.root_from_leaf_hashes(leaves).hex()


def test_checkpoint_and_key(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, key_out, _ = run(home, capsys, "key")
    assert code == 0
    verifier = NoteVerifier.parse(key_out.strip())
    code, note, _ = run(home, capsys, "checkpoint")
    assert code == 0
    cp = Checkpoint.open(note, verifier)
    assert cp.size == 40
    code, note, err = run(home, capsys, "checkpoint", "--issue")
    assert Checkpoint.open(note, verifier).size == 42
    assert "signed a new checkpoint" in err


def test_prove_and_consistency_json(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(home, capsys, "prove", "13", "--size", "40", "--json")
    assert code == 0
    proof = json.loads(out)
    assert set(proof) == {"leaf_index", "tree_size", "leaf_hash", "hashes"}
    _, note, _ = run(home, capsys, "checkpoint")
    _, key, _ = run(home, capsys, "key")
    cp = Checkpoint.open(note, NoteVerifier.parse(key.strip()))
    assert merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), 13, 40,
                                   [bytes.fromhex(h) for h in proof["hashes"]], cp.root)
    code, out, _ = run(home, capsys, "consistency", "16", "40", "--json")
    c = json.loads(out)
    assert merkle.verify_consistency(16, 40, bytes.fromhex(c["old_root"]), cp.root,
                                     [bytes.fromhex(h) for h in c["hashes"]])
    code, _, err = run(home, capsys, "prove", "99")
    assert code == 1
    assert "AUDIT_BAD_INDEX" in err


def test_verify_passes_then_names_the_tampered_entry(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, key, _ = run(home, capsys, "key")
    code, out, _ = run(home, capsys, "verify", "--key", key.strip())
    assert code == 0
    assert out.startswith("OK: 42 entries, 5 checkpoints verified")
    conn = sqlite3.connect(home / "audit" / "vn.sqlite")
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute("UPDATE entries SET entry = CAST(replace(entry, '\"kafka_offset\":3,', '\"kafka_offset\":4,') "
                 "AS BLOB) WHERE idx = 3")
    conn.commit()
    conn.close()
    code, out, err = run(home, capsys, "verify", "--key", key.strip())
    assert code == 1
    assert "entry 3" in err
    assert "Traceback" not in err


def test_bundle_and_verify_bundle(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, key, _ = run(home, capsys, "key")
    out_file = tmp_path / "b41.json"
    code, _, _ = run(home, capsys, "bundle", "41", "--out", str(out_file))  # issues the covering checkpoint
    assert code == 0
    key_file = tmp_path / "vn.vkey"
    key_file.write_text(key)
    code, out, err = run(tmp_path / "elsewhere", capsys, "verify-bundle", str(out_file), "--key", str(key_file))
    assert code == 0, err
    assert out.startswith("OK: entry 41")
    code, out, err = run(tmp_path / "elsewhere", capsys, "verify-bundle", str(out_file))
    assert code == 0
    assert "compare it with the published key" in err
    bundle = json.loads(out_file.read_text())
    bundle["inclusion_proof"]["hashes"][0] = "00" * 32
    out_file.write_text(json.dumps(bundle))
    code, out, err = run(tmp_path / "elsewhere", capsys, "verify-bundle", str(out_file), "--key", str(key_file))
    assert code == 1
    assert "BUNDLE_PROOF_INVALID" in err


def test_missing_log_is_a_diagnostic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(tmp_path, capsys, "search", "--authority", "CN")
    assert code == 1
    assert "AUDIT_NO_LOG" in err
    assert "what to do:" in err


def test_serve_verb_end_to_end(home: Path) -> None:
    import re
    import signal
    import subprocess
    import sys
    import urllib.request

    base = [sys.executable, "-m", "xborder_gateway._cli", "--home", str(home), "audit", "serve"]
    refused = subprocess.run([*base, "--port", "0"], capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 1
    assert "AUDIT_NO_TOKENS" in refused.stderr
    made = subprocess.run([*base, "--add-token", "alice"], capture_output=True, text=True, timeout=60, check=True)
    token = made.stdout.strip()
    assert len(token) >= 40
    assert token not in (home / "audit" / "api-tokens.json").read_text(), "only the hash is stored"
    proc = subprocess.Popen([*base, "--port", "0", "--max-lag-entries", "7", "--max-lag-seconds", "60"],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        req = urllib.request.Request(f"http://127.0.0.1:{match.group(1)}/v1/tree",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - local server
            assert json.loads(resp.read())["size"] == 42
        # issue 12 item 5: the console's lag limits come from the flags
        req = urllib.request.Request(f"http://127.0.0.1:{match.group(1)}/v1/status?scope=local",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - local server
            status = json.loads(resp.read())
        assert (status["max_lag_entries"], status["max_lag_seconds"]) == (7, 60.0)
        assert status["logs"][0]["size"] == 42
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        if proc.stderr is not None:
            proc.stderr.close()


# --- issue 9 item 9: out-of-range values are usage errors (exit 2), never tracebacks ------------------
@pytest.mark.parametrize(
    "argv",
    [
        ("show", "9223372036854775808"),
        ("show", "-1"),
        ("bundle", "12345678901234567890"),
        ("search", "--after", "9999999999999999999"),
        ("search", "--since", "0001-01-01T00:00:00+01:00"),
        ("search", "--until", "9999-12-31T23:59:59-01:00"),
        ("search", "--limit", "0"),
        ("search", "--limit", "1001"),
        ("prove", "9223372036854775808"),
        ("consistency", "0", "99999999999999999999"),
        ("token", "create", "alice", "--expires-days", "0"),
        ("serve", "--max-lag-entries", "-1"),
        ("serve", "--max-lag-entries", "99999999999999999999"),
    ],
    ids=" ".join,
)
def test_out_of_range_values_are_usage_errors(home: Path, capsys: pytest.CaptureFixture[str],
                                              argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--home", str(home), "audit", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "error:" in err
    assert any(word in err for word in ("range", "integer", "1..1000", "days")), err


def test_largest_index_is_not_found_not_a_crash(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(home, capsys, "show", "9223372036854775807")
    assert code == 1
    assert "AUDIT_NOT_FOUND" in err
    code, _, err = run(home, capsys, "search", "--after", "9223372036854775807", "--since", "0001-01-02T00:00:00Z")
    assert code == 0
    assert "no matching entries" in err


# --- issue 9 item 10: tokens expire and can be revoked --------------------------------------------
def test_token_create_list_revoke(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from xborder_gateway.audit.http import TokenStore

    code, out, err = run(home, capsys, "token", "create", "alice", "--expires-days", "30")
    assert code == 0
    assert "expires in 30 days" in err
    alice = out.strip()
    code, out, err = run(home, capsys, "token", "create", "robot", "--no-expiry")
    assert code == 0
    assert "never expires" in err
    store = TokenStore(home / "audit" / "api-tokens.json")
    record, state = store.lookup(alice)
    assert state == "active"
    assert record is not None
    assert record.expires is not None
    assert record.created is not None
    assert abs(record.expires - record.created - 30 * 86400) < 1
    code, out, _ = run(home, capsys, "token", "list")
    assert code == 0
    assert [line.split("\t")[:3] for line in out.splitlines()[1:]] == [["alice", "auditor", "active"],
                                                                      ["robot", "auditor", "active"]]
    assert alice not in out
    code, _, err = run(home, capsys, "token", "revoke", "alice")
    assert code == 0
    assert store.role_of(alice) is None
    code, out, _ = run(home, capsys, "token", "list")
    assert "alice\tauditor\trevoked" in out
    code, _, err = run(home, capsys, "token", "revoke", "alice")
    assert code == 1
    assert "AUDIT_NO_SUCH_TOKEN" in err


def test_default_token_expires_in_90_days(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from xborder_gateway.audit.http import TokenStore

    code, out, _ = run(home, capsys, "serve", "--add-token", "carol")
    assert code == 0
    record, _ = TokenStore(home / "audit" / "api-tokens.json").lookup(out.strip())
    assert record is not None
    assert record.expires is not None
    assert record.created is not None
    assert abs(record.expires - record.created - 90 * 86400) < 1
