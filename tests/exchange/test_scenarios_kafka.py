"""The exchange scenarios (tests/exchange/scenarios.py) on the real Kafka broker: the same bodies the unit
suite runs on memory, with the three roles in-process on the session's broker. The faults only memory can
inject stay in ``test_scenarios_memory.py``; ``kill -9`` and a broker restart stay in
``test_exchange_e2e.py`` (real processes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .scenarios import DIRECTIONS, SCENARIOS, Bench, Direction, Scenario

pytestmark = [pytest.mark.integration]

#: the scenarios whose behaviour depends on the broker (timeouts, redelivery, group joins)
ON_BROKER = ("happy path", "drop 30% + duplicate 30%", "crash after 30", "endpoint offline")


@pytest.fixture(params=DIRECTIONS, ids=[d.name for d in DIRECTIONS])
async def bench(request: pytest.FixtureRequest, tmp_path: Path, kafka_bootstrap: str,
                topic_prefix: str) -> AsyncIterator[Bench]:
    direction: Direction = request.param
    b = Bench.create(tmp_path / "home", kafka_bootstrap, direction, prefix=topic_prefix)
    try:
        yield b
    finally:
        await b.stop_all()


@pytest.mark.parametrize("scenario", [SCENARIOS[n] for n in ON_BROKER], ids=list(ON_BROKER))
async def test_scenario_on_kafka(bench: Bench, scenario: Scenario) -> None:
    await scenario(bench)
