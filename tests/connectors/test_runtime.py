"""The one connector runtime (``connectors/_runtime.py``) on the in-memory Kafka: what ``run_connector`` does
for every role -- a ``before_start`` that declines, health and metrics on ``--metrics-port``, the counts a
processor returns, and a background task whose failure must stop the connector and surface."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from xborder_gateway.connectors import outbound_spec, receipts_spec, run_connector
from xborder_gateway.connectors._common import ConnectorOptions
from xborder_gateway.connectors._runtime import Processor, Runtime
from xborder_gateway.connectors.receipts import ReceiptsOptions
from xborder_gateway.transport import memory_broker

from ..exchange.scenarios import RUN, BenchHome, bench_home, bench_settings  # noqa: TID252 - tests/ is no package on sys.path (import-mode=importlib)


def _home(tmp_path: Path) -> BenchHome:
    return bench_home(tmp_path / "home", **bench_settings(f"memory://{uuid.uuid4().hex}", "rt"))


def _port() -> int:
    """A free port of this worktree's range (30100-30199), beside the broker's."""
    for port in range(30150, 30200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port in 30150-30199")


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own local endpoint
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


async def test_before_start_that_declines_exits_0_before_touching_kafka(tmp_path: Path) -> None:
    home = _home(tmp_path)
    calls: list[Runtime] = []

    async def decline(rt: Runtime) -> bool:
        calls.append(rt)
        return False

    spec = dataclasses.replace(outbound_spec(), before_start=decline)
    code = await run_connector(home.settings, spec, ConnectorOptions(passphrase_file=home.passphrase_file))
    assert code == 0
    assert len(calls) == 1
    assert memory_broker(home.settings.bootstrap).partitions == {}, "no topic created, nothing consumed"


async def test_health_and_metrics_report_the_role_and_its_counts(tmp_path: Path) -> None:
    from xborder_gateway.connectors import publish_documents
    from xborder_gateway.samples import generate_mix

    home = _home(tmp_path)
    port = _port()
    seen: asyncio.Future[Runtime] = asyncio.get_running_loop().create_future()

    async def capture(rt: Runtime) -> bool:
        seen.set_result(rt)
        return True

    spec = dataclasses.replace(outbound_spec(), before_start=capture)
    task = asyncio.create_task(run_connector(home.settings, spec, ConnectorOptions(
        passphrase_file=home.passphrase_file, metrics_port=port, instance="h1")))
    rt = await asyncio.wait_for(seen, 30)
    samples = [x for x in generate_mix(12, 4) if x.broken_rule is None][:3]
    await publish_documents(home.settings, [(x.business_key, x.xml) for x in samples], run=RUN)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            if rt.loop is not None and rt.loop.stats.batches >= 1:
                break
            await asyncio.sleep(0.05)
        code, body = await asyncio.to_thread(_get, base + "/healthz")
        health = json.loads(body)
        assert code == 200
        assert (health["ok"], health["connector"], health["instance"], health["ready"]) == (True, "outbound", "h1",
                                                                                             True)
        assert health["batches"] >= 1
        assert health["assigned_partitions"] == home.settings.topic_partitions
        code, body = await asyncio.to_thread(_get, base + "/metrics")
        assert code == 200
        text = body.decode()
        assert f'xbg_records_total{{connector="outbound",outcome="sealed"}} {len(samples)}.0' in text
        assert 'xbg_batches_total{connector="outbound"}' in text
        assert (await asyncio.to_thread(_get, base + "/other"))[0] == 404
    finally:
        rt.stop.set()
        assert await asyncio.wait_for(task, 30) == 0
    with pytest.raises(urllib.error.URLError):  # the health server is closed with the connector
        await asyncio.to_thread(_get, base + "/healthz")


async def test_background_task_failure_stops_the_connector_and_is_raised(tmp_path: Path) -> None:
    """The tracker's resend task is its background task: if it dies the connector must not keep consuming
    receipts as if nothing happened -- the loop stops and the failure is the connector's."""
    home = _home(tmp_path)
    started = asyncio.Event()

    async def broken(rt: Runtime, _processor: Processor) -> None:
        started.set()
        await asyncio.sleep(0.2)
        rt.stop.set()  # as resend_forever does before it re-raises
        raise RuntimeError("state database gone")

    spec = dataclasses.replace(receipts_spec(), background=broken)
    with pytest.raises(RuntimeError, match="state database gone"):
        await asyncio.wait_for(run_connector(home.settings, spec, ReceiptsOptions(
            passphrase_file=home.passphrase_file)), 30)
    assert started.is_set()


async def test_processor_is_closed_when_the_loop_ends(tmp_path: Path) -> None:
    home = _home(tmp_path)
    closed: list[Any] = []
    base = outbound_spec()

    def factory(rt: Runtime) -> Processor:
        processor = base.processor(rt)
        original = processor.close

        def close() -> None:
            closed.append(processor)
            original()

        processor.close = close  # type: ignore[method-assign]
        return processor

    async def stop_soon(rt: Runtime) -> bool:
        asyncio.get_running_loop().call_later(0.3, rt.stop.set)
        return True

    spec = dataclasses.replace(base, processor=factory, before_start=stop_soon)
    assert await asyncio.wait_for(run_connector(home.settings, spec, ConnectorOptions(
        passphrase_file=home.passphrase_file)), 30) == 0
    assert len(closed) == 1


class _Loud:
    """A field value that records when it is formatted."""

    formatted = 0

    def __format__(self, spec: str) -> str:
        type(self).formatted += 1
        return "loud"


def test_log_line_formats_nothing_below_the_logged_level(caplog: pytest.LogCaptureFixture) -> None:
    """The connectors write a DEBUG line per record: at INFO it must cost no formatting (issue 13)."""
    from xborder_gateway.connectors._common import log_line

    _Loud.formatted = 0
    with caplog.at_level(logging.INFO, logger="xborder_gateway.connectors"):
        log_line(logging.DEBUG, "sealed", message_id="m1", field=_Loud())
        assert _Loud.formatted == 0
        assert not caplog.records
        log_line(logging.INFO, "sealed", message_id="m1", field=_Loud(), absent=None)
    assert _Loud.formatted == 1
    assert [r.getMessage() for r in caplog.records] == ["sealed message_id=m1 field=loud"]
