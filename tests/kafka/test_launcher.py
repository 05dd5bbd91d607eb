"""`xborder kafka start|status|stop|logs` on a real broker, run as an operator would (the CLI)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from xborder_gateway.config import load_settings
from xborder_gateway.errors import ConfigError
from xborder_gateway.kafka_local import LocalKafka


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def xborder(home: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xborder_gateway._cli", "--home", str(home), *args],
        capture_output=True, text=True, env=env, timeout=180, check=False,
    )


def broker_pids(home: Path) -> list[int]:
    """Processes whose command line names this home's broker config: the stray-process check."""
    marker = str(home / "kafka" / "server.properties").encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


@pytest.mark.integration
@pytest.mark.slow
def test_start_status_stop_twice_leaves_no_stray_process(tmp_path: Path) -> None:
    env = {**os.environ, "XBG_KAFKA_PORT": str(free_port()), "XBG_KAFKA_CONTROLLER_PORT": str(free_port())}
    env.pop("XBG_KAFKA_BOOTSTRAP", None)
    bootstrap = f"127.0.0.1:{env['XBG_KAFKA_PORT']}"
    for round_ in range(2):
        started = xborder(tmp_path, "kafka", "start", env=env)
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip().splitlines()[-1] == bootstrap
        again = xborder(tmp_path, "kafka", "start", env=env)  # a no-op on a running broker
        assert again.returncode == 0
        assert "already running" in again.stderr
        status = xborder(tmp_path, "kafka", "status", env=env)
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.strip().splitlines()[-1] == bootstrap
        assert len(broker_pids(tmp_path)) == 1, f"round {round_}: expected one broker process"
        logs = xborder(tmp_path, "kafka", "logs", "-n", "500", env=env)
        assert "Kafka Server started" in logs.stdout
        stopped = xborder(tmp_path, "kafka", "stop", env=env)
        assert stopped.returncode == 0, stopped.stderr
        status = xborder(tmp_path, "kafka", "status", env=env)
        assert status.returncode == 1
        assert "not running" in status.stdout
        assert broker_pids(tmp_path) == [], f"round {round_}: a broker process outlived `kafka stop`"


@pytest.mark.integration
def test_port_taken_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        settings = load_settings(home=tmp_path, kafka_port=port, kafka_controller_port=free_port())
        with pytest.raises(ConfigError) as info:
            LocalKafka(settings).start()
    assert info.value.code == "KAFKA_PORT_IN_USE"
    assert str(port) in info.value.message
    assert "XBG_KAFKA_PORT" in (info.value.hint or "")
    assert broker_pids(tmp_path) == []
