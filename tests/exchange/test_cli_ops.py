"""The exchange's verbs as an operator meets them: diagnostics without tracebacks, publish, health, metrics."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .harness import new_exchange


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("XBG_KEY_PASSPHRASE", None)
    return subprocess.run([sys.executable, "-m", "xborder_gateway._cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, check=False)


@pytest.mark.parametrize("connector", ["outbound", "nanning", "receipts"])
def test_run_without_passphrase_is_a_diagnostic_not_a_traceback(tmp_path: Path, connector: str) -> None:
    out = _cli("--home", str(tmp_path), "run", connector)
    assert out.returncode == 1
    assert "KEYS_NO_PASSPHRASE" in out.stderr
    assert "what to do" in out.stderr
    assert "Traceback" not in out.stderr


def test_fault_rate_out_of_range_is_a_usage_error(tmp_path: Path) -> None:
    out = _cli("--home", str(tmp_path), "run", "nanning", "--drop-rate", "1.5")
    assert out.returncode == 2
    assert "probability" in out.stderr


@pytest.mark.parametrize(("case", "argv", "says"), [
    ("demo with a negative count", ("demo", "--count", "-1"), "greater than 0"),
    ("demo with no count", ("demo", "--count", "0"), "greater than 0"),
    ("demo with a zero timeout", ("demo", "--timeout", "0"), "greater than 0"),
    ("publish a negative number", ("publish", "--generate", "-3"), "greater than 0"),
    ("publish at a negative rate", ("publish", "--generate", "3", "--rate", "-5"), "greater than 0"),
    ("publish an invalid share above 1", ("publish", "--generate", "3", "--invalid-ratio", "2"), "[0, 1]"),
])
def test_nonsense_counts_are_usage_errors(tmp_path: Path, case: str, argv: tuple[str, ...], says: str) -> None:
    # --count -1 used to run a "demo" of nothing that reported reconciles=true
    out = _cli("--home", str(tmp_path), *argv, env={"XBG_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    assert out.returncode == 2, case
    assert says in out.stderr
    assert "Traceback" not in out.stderr


def test_publish_needs_something_to_publish(tmp_path: Path) -> None:
    out = _cli("--home", str(tmp_path), "publish")
    assert out.returncode == 1
    assert "PUBLISH_NOTHING" in out.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 - http://127.0.0.1 only
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.integration
def test_publish_files_and_generate_then_health_and_metrics(tmp_path: Path, kafka_bootstrap: str,
                                                            topic_prefix: str) -> None:
    from xborder_gateway.samples import generate

    ex = new_exchange(tmp_path, kafka_bootstrap, topic_prefix)
    files = []
    for i, sample in enumerate(generate("IDA", 3, seed=8)):
        path = tmp_path / f"ida{i}.xml"
        path.write_bytes(sample.xml)
        files.append(str(path))
    env = {**ex.env, "XBG_HOME": str(ex.home.path)}
    out = _cli("publish", *files, "--run", "testrun", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"
    out = _cli("publish", "--generate", "20", "--kind", "EDA", "--run", "testrun", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "20"
    assert "publish: 20 documents" in out.stderr

    port = _free_port()
    ex.start("nanning")
    ex.start("receipts")
    ex.start("outbound", "--metrics-port", str(port))
    try:
        ex.wait_for(lambda s: s.delivered == 23, 90, "23 delivered")
        deadline = time.monotonic() + 10
        health: dict[str, object] = {}
        while time.monotonic() < deadline:
            code, body = _get(f"http://127.0.0.1:{port}/healthz")
            health = json.loads(body)
            if code == 200 and health.get("batches"):
                break
            time.sleep(0.3)
        assert health["ok"] is True
        assert health["ready"] is True
        assert health["connector"] == "outbound"
        code, body = _get(f"http://127.0.0.1:{port}/metrics")
        assert code == 200
        text = body.decode()
        assert 'xbg_records_total{connector="outbound",outcome="sealed"} 23.0' in text
        assert _get(f"http://127.0.0.1:{port}/nothing")[0] == 404
    finally:
        ex.stop_all()
