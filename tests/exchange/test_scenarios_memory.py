"""The exchange scenarios (tests/exchange/scenarios.py) on the in-memory Kafka: the unit suite's run of the
same bodies ``test_scenarios_kafka.py`` runs on the real broker, plus the faults only memory can inject
(failed commits, fencing, forced rebalances)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .scenarios import DIRECTIONS, SCENARIOS, Bench, Direction, Scenario


@pytest.fixture(params=DIRECTIONS, ids=[d.name for d in DIRECTIONS])
async def bench(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bench]:
    direction: Direction = request.param
    b = Bench.create(tmp_path / "home", f"memory://{uuid.uuid4().hex}", direction)
    try:
        yield b
    finally:
        await b.stop_all()


@pytest.mark.parametrize("scenario", list(SCENARIOS.values()), ids=list(SCENARIOS))
async def test_scenario_on_memory(bench: Bench, scenario: Scenario) -> None:
    await scenario(bench)
