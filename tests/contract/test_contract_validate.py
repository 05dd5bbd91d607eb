"""CI validates docs/asyncapi.yaml with @asyncapi/parser (scripts/validate-asyncapi.sh, Node 20)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "scripts" / "validate-asyncapi.sh"
DOC = ROOT / "docs" / "asyncapi.yaml"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None,
                       reason="node and npm are not installed (CI has them): cannot run @asyncapi/parser"),
]


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), str(path)], capture_output=True, text=True, check=False, timeout=600)


def test_checked_in_document_is_valid() -> None:
    run = _validate(DOC)
    assert run.returncode == 0, run.stderr
    assert "valid AsyncAPI 3.0.0 (10 channels, 20 operations, 2 servers)" in run.stdout


@pytest.mark.parametrize(("old", "new"), [
    ("action: send", "action: publish"),                  # AsyncAPI 2 verb: not in 3.0
    ("protocol: kafka-secure", "protocol: [kafka]"),       # not a string
    ("'#/components/securitySchemes/mtls'", "'#/components/securitySchemes/nope'"),  # dangling $ref
], ids=["operation-action", "server-protocol", "dangling-ref"])
def test_a_broken_copy_fails(tmp_path: Path, old: str, new: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    assert old in text
    broken = tmp_path / "broken.yaml"
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    run = _validate(broken)
    assert run.returncode == 1, run.stdout
    assert "INVALID" in run.stderr
