"""CI validates docs/asyncapi.yaml with @asyncapi/parser (scripts/validate-asyncapi.sh, Node 20).

One run of the script checks the checked-in document and broken copies of it (node start-up and the parser's
load dominate, so they share one process)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "scripts" / "validate-asyncapi.sh"
DOC = ROOT / "docs" / "asyncapi.yaml"
BROKEN = {
    "operation-action": ("action: send", "action: publish"),         # AsyncAPI 2 verb: not in 3.0
    "server-protocol": ("protocol: kafka-secure", "protocol: [kafka]"),  # not a string
    "dangling-ref": ("'#/components/securitySchemes/mtls'", "'#/components/securitySchemes/nope'"),
    "avro-schema": ("type: record", "type: recordz"),                # the Avro schema parser checks payloads
    "channel-address": ("address: xb.vn-cn.exchange\n", "address: [xb.vn-cn.exchange]\n"),
}

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None,
                       reason="node and npm are not installed (CI has them): cannot run @asyncapi/parser"),
]


def test_checked_in_document_is_valid_and_broken_copies_are_not(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    broken = []
    for name, (old, new) in BROKEN.items():
        assert old in text, name
        path = tmp_path / f"{name}.yaml"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        broken.append(path)
    run = subprocess.run([str(SCRIPT), str(DOC), *map(str, broken)], capture_output=True, text=True, check=False,
                         timeout=900)
    lines = dict(line.split(": ", 1) for line in run.stdout.splitlines() if ": " in line)
    assert lines.get(str(DOC), "").startswith("valid AsyncAPI 3.0.0 (10 channels, 20 operations, 2 servers)"), \
        run.stderr[-4000:]
    for path in broken:
        assert lines.get(str(path), "").startswith("INVALID"), f"{path.name} passed validation"
    assert run.returncode == 1  # one invalid file fails the run


def test_the_checked_in_document_alone_passes() -> None:
    run = subprocess.run([str(SCRIPT)], capture_output=True, text=True, check=False, timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
