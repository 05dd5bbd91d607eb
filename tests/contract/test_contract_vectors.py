"""`xborder contract vectors`: every verdict checked with the project's own open functions; fixed parts fixed."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from xborder_gateway.contract import MANIFEST_NAME, check_vectors, write_vectors

# The verdicts the manifest must promise (written here again, so that a changed expectation in the generator
# and a changed open rule cannot agree silently).
EXPECTED_REFUSALS = {
    "refuse-magic": "ENV-2 MALFORMED",
    "refuse-truncated": "ENV-2 MALFORMED",
    "refuse-version": "ENV-3 UNSUPPORTED_VERSION",
    "refuse-suite": "ENV-3 UNSUPPORTED_SUITE",
    "refuse-wrong-recipient": "ENV-4 WRONG_RECIPIENT",
    "refuse-unknown-signing-key": "ENV-5 UNKNOWN_SIGNING_KEY",
    "refuse-expired-key": "ENV-5 KEY_NOT_VALID",
    "refuse-header-byte": "ENV-6 DECRYPT_FAILED",
    "refuse-ciphertext-byte": "ENV-6 DECRYPT_FAILED",
    "refuse-v2-batch-id-byte": "ENV-6 DECRYPT_FAILED",
    "refuse-signature": "ENV-7 SIGNATURE_INVALID",
    "refuse-v2-signature": "ENV-7 SIGNATURE_INVALID",
    "refuse-expired": "ENV-8 EXPIRED",
    "refuse-not-yet-valid": "ENV-8 NOT_YET_VALID",
    "refuse-replayed": "ENV-10 REPLAYED",
    "refuse-message-id-reused": "ENV-10 MESSAGE_ID_REUSED",
    "refuse-receipt-wrong-issuer": "ENV-11 RECEIPT_MISMATCH",
    "refuse-receipt-not-a-receipt": "ENV-11 NOT_A_RECEIPT",
    "refuse-checkpoint-vn-size": "NOTE_SIGNATURE_INVALID",
    "refuse-checkpoint-cn-size": "NOTE_SIGNATURE_INVALID",
    "refuse-checkpoint-wrong-key": "NOTE_UNKNOWN_SIGNER",
}
ACCEPTED = {"v1-vn-cn-ida", "v1-cn-vn-export", "v2-vn-cn-batch", "v2-vn-cn-batch-alone", "v2-cn-vn-batch",
            "receipt-v1-ack-cn-vn", "receipt-v1-ack-vn-cn", "receipt-v1-nack-cn-vn", "receipt-v2-decision-cn-vn",
            "checkpoint-vn", "checkpoint-cn"}


@pytest.fixture(scope="module")
def vectors(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("vectors")
    return out, write_vectors(out)


def test_every_verdict_holds_with_our_open_functions(vectors: tuple[Path, dict[str, Any]]) -> None:
    out, _ = vectors
    results = check_vectors(out)
    bad = [(r.name, r.step, r.expected, r.got) for r in results if not r.ok]
    assert not bad
    assert len(results) >= 30


def test_manifest_promises_the_expected_verdicts(vectors: tuple[Path, dict[str, Any]]) -> None:
    _, manifest = vectors
    by_name = {v["name"]: v for v in manifest["vectors"]}
    assert set(by_name) == set(EXPECTED_REFUSALS) | ACCEPTED
    for name, code in EXPECTED_REFUSALS.items():
        assert by_name[name]["expected"][-1] == {"result": "refused", "code": code}, name
    for name in ACCEPTED:
        assert all(e["result"] == "ok" for e in by_name[name]["expected"]), name


def test_both_directions_and_both_suites(vectors: tuple[Path, dict[str, Any]]) -> None:
    _, manifest = vectors
    seen = {(v["open_as"], e.get("suite")) for v in manifest["vectors"] if v["kind"] == "envelope"
            for e in v["expected"] if e["result"] == "ok"}
    assert {("CN", 1), ("CN", 2), ("VN", 1), ("VN", 2)} <= seen
    statuses = {e["receipt"]["business_status"] for v in manifest["vectors"] if v["kind"] == "receipt"
                for e in v["expected"] if e["result"] == "ok"}
    assert {None, "HELD", "ACCEPTED"} <= statuses


def test_a_wrong_expectation_is_caught(vectors: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """check_vectors really compares: a manifest that promises the wrong code fails."""
    out, manifest = vectors
    for f in out.rglob("*"):
        if f.is_file():
            target = tmp_path / f.relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f.read_bytes())
    changed = json.loads(json.dumps(manifest))
    for v in changed["vectors"]:
        if v["name"] == "refuse-signature":
            v["expected"] = [{"result": "ok"}]
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(changed), encoding="utf-8")
    bad = [r.name for r in check_vectors(tmp_path) if not r.ok]
    assert bad == ["refuse-signature"]


def _fixed_files(root: Path) -> dict[str, str]:
    keep = [MANIFEST_NAME, "README.md", *(str(p.relative_to(root)) for p in root.glob("payloads/*")),
            *(str(p.relative_to(root)) for p in root.glob("checkpoints/*"))]
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in sorted(keep)}


def test_fixed_parts_are_deterministic(vectors: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, _ = vectors
    write_vectors(tmp_path)
    assert _fixed_files(out) == _fixed_files(tmp_path)
    # envelopes are not: HPKE draws a fresh ephemeral key per seal (recorded in README.md)
    assert (out / "envelopes/v1-vn-cn-ida.bin").read_bytes() != (tmp_path / "envelopes/v1-vn-cn-ida.bin").read_bytes()


def test_keys_are_throwaway_seeds_not_a_home(vectors: tuple[Path, dict[str, Any]]) -> None:
    _, manifest = vectors
    seeds = manifest["keys"]["seeds"]
    assert seeds["VN/signing"] == hashlib.sha256(b"xborder-gateway contract vectors/VN/signing").hexdigest()
    assert set(manifest["keys"]["certificates"]) == {"VN", "CN", "VN-old", "CN-old", "VN-impostor"}


def test_cli_vectors_check(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "xborder_gateway._cli", "--home", str(tmp_path / "home"), "contract",
                          "vectors", "--out", str(tmp_path / "v"), "--check"], capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, run.stderr
    assert "every verdict as expected" in run.stderr
    assert (tmp_path / "v" / "README.md").is_file()
    assert not (tmp_path / "home" / "keys").exists()  # never a home's keys


def test_cli_vectors_out_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    run = subprocess.run([sys.executable, "-m", "xborder_gateway._cli", "--home", str(tmp_path), "contract",
                          "vectors", "--out", str(tmp_path / "f")], capture_output=True, text=True, check=False)
    assert run.returncode == 1
    assert "not a directory" in run.stderr
    assert "Traceback" not in run.stderr
