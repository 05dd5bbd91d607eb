"""The gate's database runs synchronous=NORMAL: a power loss may drop its last commits while Kafka committed
their batch. A restarted gate re-applies that tail before deciding anything (``recover_lost_tail``), so a
clearance used in the lost tail stays used (GATE-4). Real ``run_gate`` on the in-memory transport."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

from xborder_gateway.config import load_settings
from xborder_gateway.gate import (
    Arrival,
    Colour,
    Decision,
    Direction,
    GateStore,
    Reason,
    decode_decision,
    encode_arrival,
)
from xborder_gateway.gate._connector import GateOptions, gate_db, run_gate
from xborder_gateway.transport import ensure_topics, make_consumer, make_producer

from .test_demo_hour import _feed


async def _decisions(settings: Any, want: int, wait_s: float = 30) -> list[Decision]:
    consumer = make_consumer(settings.bootstrap, group_id=None, batch_max=500, topics=(settings.topic_gate_decisions,))
    await consumer.start()
    out: list[Decision] = []
    try:
        deadline = time.monotonic() + wait_s
        while len(out) < want and time.monotonic() < deadline:
            got = await consumer.getmany(timeout_ms=100)
            out += [decode_decision(r.value) for recs in got.values() for r in recs]
    finally:
        await consumer.stop()
    return out


async def _gate_round(settings: Any, arrivals: list[Arrival], want: int) -> list[Decision]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_gate(settings, GateOptions(instance="t"), stop=stop, install_shutdown=False))
    producer = make_producer(settings.bootstrap)
    await producer.start()
    for a in arrivals:
        await producer.send(settings.topic_gate_arrivals, encode_arrival(a), key=a.arrival_id.encode())
    await producer.stop()
    try:
        return await _decisions(settings, want)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _arrival(aid: str, i: int) -> Arrival:
    return Arrival(aid, "HUU_NGHI", "L1", Direction.EXIT_TO_CN, f"12C-{10000 + i}", 0.97, int(time.time() * 1000))


def test_a_lost_tail_of_the_database_is_re_applied_and_its_clearances_stay_used(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, kafka_bootstrap=f"memory://recover-{time.monotonic_ns()}",
                             key_passphrase="recovery test passphrase", topic_gate_feed="vn.declarations.status")
    snapshot = tmp_path / "before.sqlite"

    async def go() -> tuple[list[Decision], list[Decision]]:
        since = int(time.time() * 1000)
        await _feed(settings, since, 12)
        await ensure_topics(settings.bootstrap, (settings.topic_gate_arrivals, settings.topic_gate_decisions), 3)
        await _gate_round(settings, [], 0)  # the view only: this is the state the "power loss" goes back to
        shutil.copy(gate_db(settings), snapshot)
        first = await _gate_round(settings, [_arrival(f"a{i}", i) for i in range(10)], 10)
        shutil.copy(snapshot, gate_db(settings))  # the last commits are gone; Kafka has them
        again = await _gate_round(settings, [_arrival("b0", 0)], 10 + 10 + 1)
        return first, again

    first, everything = asyncio.run(go())
    assert sorted(d.arrival_id for d in first) == [f"a{i}" for i in range(10)]
    second = [d for d in everything if d.arrival_id == "b0"]
    assert [(d.colour, d.primary_reason) for d in second] == [(Colour.RED, Reason.CLEARANCE_ALREADY_USED)]
    store = GateStore.open(gate_db(settings))
    try:
        assert store.query("SELECT count(*) FROM arrivals") == [(11,)]
        assert store.query("SELECT count(*) FROM decisions WHERE sequence = 1") == [(11,)]
    finally:
        store.close()
    # the recovered tail's decisions were produced again with the same decision ids (a reader keeps the first)
    ids = [d.decision_id for d in everything if d.arrival_id.startswith("a")]
    assert sorted(set(ids)) == sorted(f"a{i}/1" for i in range(10))
