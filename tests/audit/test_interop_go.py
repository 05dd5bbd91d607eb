"""Issue 12: an independent verifier, written in Go from the C2SP specs with none of our code
(tests/audit/interop_go, on golang.org/x/mod/sumdb/note and transparency-dev/formats/note's
NewVerifierForCosignatureV1), accepts our cosigned checkpoints and rejects tampered ones."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from xborder_gateway.audit import AuditLog
from xborder_gateway.audit.cosignature import CosignatureSigner, add_signature_lines
from xborder_gateway.audit.witness import Cosigned, Witness, WitnessStore
from xborder_gateway.config import Settings

pytestmark = pytest.mark.integration  # builds Go code; the first build fetches modules from the Go proxy

SOURCE = Path(__file__).parent / "interop_go"


@pytest.fixture(scope="module")
def verifier_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        pytest.skip("`go` is not installed (CI has it): the independent Go verifier cannot be built")
    out = tmp_path_factory.mktemp("go") / "cosigverify"
    env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    build = subprocess.run([go, "build", "-o", str(out), "."], cwd=SOURCE, env=env, capture_output=True,
                           text=True, timeout=600, check=False)
    assert build.returncode == 0, build.stderr
    return out


def _run(binary: Path, note: str, log_key: str, witness_key: str, tmp_path: Path) -> tuple[int, str]:
    path = tmp_path / "note.txt"
    path.write_text(note, encoding="utf-8")
    done = subprocess.run([str(binary), str(path), log_key, witness_key], capture_output=True, text=True,
                          timeout=60, check=False)
    return done.returncode, done.stdout + done.stderr


def test_go_verifier_accepts_ours_and_rejects_tampering(verifier_binary: Path, tmp_path: Path,
                                                        make_event: object) -> None:
    settings = Settings(home=tmp_path / "vn", audit_url=None, audit_checkpoint_entries=10)
    witness_signer = CosignatureSigner("xborder-gateway.local/audit/witness/cn", Ed25519PrivateKey.generate())
    with AuditLog.open(settings, "VN", background_checkpoints=False) as log:
        assert log.verifier is not None
        witness = Witness(witness_signer, {log.origin: log.verifier}, WitnessStore(tmp_path / "w.sqlite"))
        log.append([make_event(i) for i in range(10)])  # type: ignore[operator]
        result = witness.process_submission(log.submission(0))
        assert isinstance(result, Cosigned)
        log.add_cosignature(result.size, result.line, witness_signer.verifier)
        note = log.cosigned_note()
        log_key = str(log.verifier)
    assert note is not None
    wkey = str(witness_signer.verifier)

    code, out = _run(verifier_binary, note, log_key, wkey, tmp_path)
    assert code == 0, out
    assert out.startswith(f"OK {log.origin} 10 {result.timestamp}"), out

    tampered_checkpoint = note.replace("\n10\n", "\n11\n", 1)
    assert tampered_checkpoint != note
    code, out = _run(verifier_binary, tampered_checkpoint, log_key, wkey, tmp_path)
    assert code == 1, out
    assert out.startswith("REJECT"), out

    head, _, b64 = result.line.rstrip("\n").rpartition(" ")
    blob = bytearray(base64.b64decode(b64))
    blob[-1] ^= 0x01  # one bit of the Ed25519 signature
    bad_line = f"{head} {base64.b64encode(bytes(blob)).decode()}\n"
    tampered_cosignature = note.replace(result.line, bad_line)
    code, out = _run(verifier_binary, tampered_cosignature, log_key, wkey, tmp_path)
    assert code == 1, out
    assert out.startswith("REJECT"), out

    blob = bytearray(base64.b64decode(b64))
    blob[5] ^= 0x01  # the cosignature's timestamp, which is signed
    code, out = _run(verifier_binary, note.replace(result.line, f"{head} {base64.b64encode(bytes(blob)).decode()}\n"),
                     log_key, wkey, tmp_path)
    assert code == 1, out

    log_only = note.replace(result.line, "")
    code, out = _run(verifier_binary, log_only, log_key, wkey, tmp_path)
    assert code == 1, out
    assert "no valid witness cosignature" in out

    other_witness = CosignatureSigner("xborder-gateway.local/audit/witness/cn", Ed25519PrivateKey.generate())
    forged = add_signature_lines(log_only, [other_witness.cosign(note.split("\n\n")[0] + "\n", result.timestamp)])
    code, out = _run(verifier_binary, forged, log_key, wkey, tmp_path)
    assert code == 1, out
