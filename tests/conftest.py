"""Shared test harness: a real Kafka broker for integration tests, unique topics, broker logs on failure.

Where the broker comes from, in order:
1. ``XBG_KAFKA_BOOTSTRAP`` (e.g. set by ``scripts/test.sh`` / ``.ci/run``, which start one broker for the
   whole run); its log file may be named by ``XBG_KAFKA_LOG`` so failures print its tail;
2. the project's own launcher (``xborder_gateway.kafka_local``), started in a throwaway home on free
   ports for this session and stopped at its end;
3. testcontainers' Kafka module, where a Docker engine answers.
If none gives a broker, integration tests fail under ``CI=true`` and skip (saying why) elsewhere.

Under ``CI=true`` a run in which any integration test was skipped fails, and every run prints how many
integration tests were executed.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@dataclass
class Broker:
    bootstrap: str
    source: str
    log_file: Path | None = None

    def log_tail(self, lines: int = 60) -> str:
        if self.log_file is None or not self.log_file.exists():
            return "(broker log not available)"
        text = self.log_file.read_bytes()[-200 * lines :].decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])


_BROKER: Broker | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env().ping()
    except Exception:  # noqa: BLE001 - any failure means "no Docker engine here"
        return False
    return True


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A real Apache Kafka broker for this test session."""
    global _BROKER  # noqa: PLW0603 - the failure hook reads it
    env = os.environ.get("XBG_KAFKA_BOOTSTRAP")
    if env:
        log = os.environ.get("XBG_KAFKA_LOG")
        _BROKER = Broker(env, "XBG_KAFKA_BOOTSTRAP", Path(log) if log else None)
        yield _BROKER
        return

    reasons: list[str] = []
    try:
        from xborder_gateway.config import load_settings
        from xborder_gateway.kafka_local import LocalKafka

        home = tmp_path_factory.mktemp("kafka-home")
        settings = load_settings(home=home, kafka_port=_free_port(), kafka_controller_port=_free_port())
        local = LocalKafka(settings)
        status = local.start()
        _BROKER = Broker(status.bootstrap, "local launcher", status.log_file)
        try:
            yield _BROKER
        finally:
            local.stop()
        return
    except Exception as exc:  # noqa: BLE001 - fall through to the next source, keeping the reason
        reasons.append(f"local launcher: {exc}")

    if _docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as container:
            _BROKER = Broker(container.get_bootstrap_server(), "testcontainers")
            yield _BROKER
            return
    reasons.append("testcontainers: no Docker engine answers")
    message = "no Kafka broker available: " + "; ".join(reasons)
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Broker) -> str:
    """The bootstrap address ("host:port") of the session's real broker."""
    return kafka_broker.bootstrap


@pytest.fixture
def topic_prefix(request: pytest.FixtureRequest) -> str:
    """A prefix unique to this test: topics named with it never collide with another test's."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:40]
    return f"t.{name}.{uuid.uuid4().hex[:8]}"


@pytest.fixture
def unique_topic(topic_prefix: str) -> str:
    """A topic name unique to this test."""
    return topic_prefix


@pytest.fixture
def tmp_home() -> Iterator[Path]:
    """A throwaway gateway home directory."""
    with tempfile.TemporaryDirectory(prefix="xbg-home-") as d:
        yield Path(d)


# --- reporting ---------------------------------------------------------------------------------------
_integration = {"passed": 0, "failed": 0, "skipped": 0}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    is_integration = item.get_closest_marker("integration") is not None
    if is_integration:
        if hasattr(report, "wasxfail"):  # an expected failure, written down with its reason: not a skip
            _integration["xfailed"] = _integration.get("xfailed", 0) + 1
        elif report.when == "call":
            _integration["passed" if report.passed else "failed" if report.failed else "skipped"] += 1
        elif report.skipped:
            _integration["skipped"] += 1
        elif report.failed and report.when == "setup":
            _integration["failed"] += 1
    if report.failed and _BROKER is not None and "kafka_broker" in getattr(item, "fixturenames", ()):
        with contextlib.suppress(Exception):
            report.sections.append(
                (f"kafka broker log ({_BROKER.source}, {_BROKER.bootstrap})", _BROKER.log_tail())
            )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int) -> None:
    executed = _integration["passed"] + _integration["failed"]
    terminalreporter.write_line(
        f"integration tests executed: {executed} "
        f"(passed {_integration['passed']}, failed {_integration['failed']}, skipped {_integration['skipped']}, "
        f"xfailed {_integration.get('xfailed', 0)})"
    )
    if IN_CI and _integration["skipped"]:
        terminalreporter.write_line(
            f"CI=true: {_integration['skipped']} integration test(s) were skipped; this run fails", red=True
        )
    elif IN_CI and executed == 0:
        terminalreporter.write_line("CI=true: no integration test was executed; this run fails", red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not IN_CI or session.exitstatus != 0:
        return
    executed = _integration["passed"] + _integration["failed"]
    if _integration["skipped"] or (executed == 0 and session.testscollected > 0):
        # CI proves behaviour on real services: a run that skipped them, or ran none, did not prove it.
        session.exitstatus = 1
