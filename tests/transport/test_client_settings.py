"""The Kafka client settings that bound latency (issue 14): fetch wait, the CONCURRENT_TRANSACTIONS retry."""

from __future__ import annotations

import asyncio
import pstats
from pathlib import Path

import pytest

from xborder_gateway.config import Settings, load_settings
from xborder_gateway.transport import LoopConfig, make_consumer


def _fetch_wait(consumer: object) -> int:
    value = vars(consumer).get("_fetch_max_wait_ms")
    assert isinstance(value, int), sorted(vars(consumer))
    return value


def test_make_consumer_passes_the_fetch_wait_to_aiokafka() -> None:
    async def build() -> tuple[int, int]:
        short = make_consumer("127.0.0.1:1", group_id=None, batch_max=5, fetch_max_wait_ms=50)
        default = make_consumer("127.0.0.1:1", group_id=None, batch_max=5)
        return _fetch_wait(short), _fetch_wait(default)

    assert asyncio.run(build()) == (50, 500)


def test_the_connectors_loop_takes_the_fetch_wait_from_settings(tmp_path: Path) -> None:
    from xborder_gateway.connectors._common import Identity
    from xborder_gateway.connectors._runtime import _loop_config
    from xborder_gateway.connectors.outbound import outbound_spec

    settings = load_settings(home=tmp_path, kafka_fetch_max_wait_ms=37)
    spec = outbound_spec()
    config = _loop_config(settings, spec, Identity(spec.name, "0", settings.exchange_group_prefix))
    assert config.fetch_max_wait_ms == 37


def test_default_fetch_wait_is_short_and_the_loop_default_is_kafkas() -> None:
    assert Settings().kafka_fetch_max_wait_ms == 50
    assert LoopConfig(bootstrap="x", topics=("t",), group_id="g", client_id="c").fetch_max_wait_ms == 500


def test_the_concurrent_transactions_retry_is_shortened() -> None:
    from aiokafka.producer import sender

    from xborder_gateway.transport._clients import CONCURRENT_TRANSACTIONS_BACKOFF_S

    assert CONCURRENT_TRANSACTIONS_BACKOFF_S == 0.005
    assert sender.BACKOFF_OVERRIDE == CONCURRENT_TRANSACTIONS_BACKOFF_S


def test_xbg_profile_dir_writes_a_profile_of_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from xborder_gateway._cli import main

    monkeypatch.setenv("XBG_PROFILE_DIR", str(tmp_path / "prof"))
    assert main(["--home", str(tmp_path / "home"), "config", "show"]) == 0
    files = list((tmp_path / "prof").glob("config-*.prof"))
    assert len(files) == 1
    stats = pstats.Stats(str(files[0]))
    assert stats.total_calls > 0  # type: ignore[attr-defined]
