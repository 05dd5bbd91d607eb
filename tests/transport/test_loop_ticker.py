"""The transactional loop's ticker (issue 15's grace tick), without a broker: when it ticks (caught up, or
``max_wait_s`` under continuous input), that its outputs go into a transaction with no input offsets, and
that ``committed`` is called only after that transaction committed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest

from xborder_gateway.transport import LoopConfig, Outgoing, TransactionalBatchLoop


class _Ticker:
    interval_s = 0.0
    max_wait_s = 60.0

    def __init__(self, outputs: list[Outgoing]) -> None:
        self.outputs = outputs
        self.ticks = 0
        self.confirmed: list[Sequence[Outgoing]] = []

    def tick(self) -> Sequence[Outgoing]:
        self.ticks += 1
        return self.outputs

    def committed(self, outputs: Sequence[Outgoing]) -> None:
        self.confirmed.append(outputs)


async def _handler(_records: Any) -> list[Outgoing]:
    return []


def _loop(ticker: _Ticker, commits: list[tuple[Sequence[Outgoing], dict[Any, int]]], *, fail: bool = False
          ) -> TransactionalBatchLoop:
    cfg = LoopConfig(bootstrap="127.0.0.1:1", topics=("t",), group_id="g", client_id="c", transactional_id="x")
    loop = TransactionalBatchLoop(cfg, _handler, asyncio.Event(), ticker)

    async def commit(outputs: Sequence[Outgoing], offsets: dict[Any, int]) -> None:
        if fail:
            raise TimeoutError("transaction outcome unknown")
        commits.append((outputs, offsets))

    loop._commit = commit  # type: ignore[method-assign]
    return loop


OUT = [Outgoing("receipts", b"k", b"v", ())]


async def test_ticks_when_caught_up_and_commits_without_offsets() -> None:
    ticker, commits = _Ticker(OUT), []
    loop = _loop(ticker, commits)
    await loop._maybe_tick(caught_up=True)
    assert ticker.ticks == 1
    assert commits == [(OUT, {})], "a tick consumes nothing: no input offsets in its transaction"
    assert ticker.confirmed == [OUT]


async def test_no_tick_while_behind_until_max_wait() -> None:
    ticker, commits = _Ticker(OUT), []
    loop = _loop(ticker, commits)
    await loop._maybe_tick(caught_up=False)
    assert ticker.ticks == 0, "a backlog is read before any tick decides on time"
    loop._last_tick = time.monotonic() - ticker.max_wait_s - 1
    await loop._maybe_tick(caught_up=False)
    assert ticker.ticks == 1, "under continuous input it still ticks after max_wait_s"


async def test_failed_transaction_is_not_confirmed() -> None:
    ticker, commits = _Ticker(OUT), []
    loop = _loop(ticker, commits, fail=True)
    with pytest.raises(TimeoutError):
        await loop._maybe_tick(caught_up=True)
    assert ticker.confirmed == [], "committed() only after the Kafka commit succeeded"


async def test_nothing_to_produce_opens_no_transaction() -> None:
    ticker, commits = _Ticker([]), []
    loop = _loop(ticker, commits)
    await loop._maybe_tick(caught_up=True)
    assert ticker.ticks == 1
    assert commits == []
