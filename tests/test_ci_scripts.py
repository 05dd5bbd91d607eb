"""The project's shell scripts (CI and helpers) must not fail for nothing.

Under ``set -o pipefail`` a pipe into a reader that exits early (``head``, ``grep -q``, ``grep -m``) makes
the writer die of SIGPIPE whenever it writes after the reader has gone, and the whole pipe fails: that
refused about one CI run in four at ``mvn -v | head -n 1`` (issue 9 item 15). This test finds such pipes
in every script, so the mistake cannot come back in a new one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(
    [ROOT / ".ci" / "run", *(ROOT / "scripts").glob("*.sh")],
)
# a pipe whose reader may exit before the writer is done
EARLY_EXIT_READER = re.compile(r"\|\s*(head\b|grep\s+(-\w*[qm]\w*|--quiet|--max-count)|sed\s+[^|]*\bq\b)")


def _code_lines(path: Path) -> list[tuple[int, str]]:
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        out.append((number, line.split(" #", 1)[0]))
    return out


def test_there_are_scripts() -> None:
    assert ROOT / ".ci" / "run" in SCRIPTS
    assert len(SCRIPTS) >= 3


@pytest.mark.parametrize("path", SCRIPTS, ids=[str(p.relative_to(ROOT)) for p in SCRIPTS])
def test_no_pipe_into_an_early_exiting_reader_under_pipefail(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if "pipefail" not in text:
        pytest.skip(f"{path.name} does not set pipefail: an early-exiting reader cannot fail it")
    bad = [f"{path.name}:{n}: {line.strip()}" for n, line in _code_lines(path) if EARLY_EXIT_READER.search(line)]
    assert not bad, "pipe into an early-exiting reader under pipefail (SIGPIPE fails the run):\n" + "\n".join(bad)


def test_the_pattern_catches_the_historical_mistake() -> None:
    # the check above cannot pass vacuously: it flags exactly what broke CI
    assert EARLY_EXIT_READER.search("mvn -v 2>/dev/null | head -n 1")
    assert EARLY_EXIT_READER.search('psql -tAc "SELECT 1" | grep -q 1')
    assert not EARLY_EXIT_READER.search('scripts/postgres.sh start "$DIR" | tail -n 1')


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.parametrize("path", SCRIPTS, ids=[str(p.relative_to(ROOT)) for p in SCRIPTS])
def test_scripts_parse(path: Path) -> None:
    done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_first_line_helper_survives_a_writer_that_keeps_writing() -> None:
    # the CI's replacement for `| head -n 1`: many runs, never a failure, always the first line
    script = (
        "set -euo pipefail\n"
        + next(line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("first_line()"))
        + "\nfor i in $(seq 10); do first_line seq 1 100000; done\n"
    )
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["1"] * 10
