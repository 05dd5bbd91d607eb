"""The demo's simulated hour at the gate (``xborder demo``'s last step, issue 14 item 5).

Over the demo's own documents: the vehicle declarations its outbound connector wrote on the real status
feed (``settings.topic_status``, ``DeclarationStatus.v1``) since the run started become the trucks of one
hour (:func:`~xborder_gateway.gate._generate.simulate_hour_marked`: OCR errors, low-confidence reads, a few trucks
with no pre-declaration, a second arrival on a used clearance, a convoy of 50 within one second). The real
``run gate`` (:func:`~xborder_gateway.gate._connector.run_gate`, in this process) builds its view from that
feed, decides the arrivals published on the real arrivals topic and commits its decisions; this module
reads them back (read_committed) and counts them.

The hour is compressed into ``compress_s`` seconds of wall time: the gate's clock is the simulated one
(it starts at the run's settle time and runs ``3600 / compress_s`` times faster), so grace periods and camera
times stay coherent, while the latencies reported are real (arrival sent -> decision read back).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xborder_gateway.config import Settings
from xborder_gateway.errors import GatewayError
from xborder_gateway.gate._codec import decode_decision, encode_arrival
from xborder_gateway.gate._connector import GateOptions, run_gate
from xborder_gateway.gate._feed import decode_feed_record
from xborder_gateway.gate._generate import DayPlan, simulate_hour_marked
from xborder_gateway.gate._model import Arrival, Decision, VehicleDeclarationSeen
from xborder_gateway.transport import (
    ensure_topics,
    kafka_boundary,
    make_consumer,
    make_producer,
    to_incoming,
    wait_for_assignment,
)

__all__ = ["GateHour", "GateHourError", "demo_gate_hour", "gate_hour", "gate_hour_text"]

log = logging.getLogger(__name__)


class GateHourError(GatewayError):
    default_code = "GATE_DEMO_FAILED"
    fault = "demo gate hour"


@dataclass
class GateHour:
    """What the simulated hour produced (``to_json`` is ``demo --json``'s ``gate``)."""

    arrivals: int = 0
    vehicles: int = 0
    colours: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    first_colours: Counter[str] = field(default_factory=Counter)
    undeclared: Counter[str] = field(default_factory=Counter)
    """Final colours of the arrivals of trucks with no pre-declaration (never GREEN)."""
    superseded: int = 0
    priority_lane: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    def _pct(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        values = sorted(self.latencies_ms)
        return round(values[min(len(values) - 1, round(q * (len(values) - 1)))], 1)

    def to_json(self) -> dict[str, Any]:
        return {"arrivals": self.arrivals, "GREEN": self.colours["GREEN"], "YELLOW": self.colours["YELLOW"],
                "RED": self.colours["RED"], "by_reason": dict(sorted(self.by_reason.items())),
                "vehicles": self.vehicles, "superseded": self.superseded, "priority_lane": self.priority_lane,
                "first": {c: self.first_colours[c] for c in ("GREEN", "YELLOW", "RED")},
                "undeclared": {"arrivals": sum(self.undeclared.values()),
                               **{c: self.undeclared[c] for c in ("GREEN", "YELLOW", "RED")}},
                "p50_ms": self._pct(0.5), "p99_ms": self._pct(0.99), "seconds": round(self.wall_s, 1)}


def gate_hour_text(g: dict[str, Any]) -> str:
    """The lines ``xborder demo`` prints for the hour (from :meth:`GateHour.to_json`)."""
    n = max(1, g["arrivals"])
    lines = [f"  gate: a simulated hour      {g['arrivals']} arrivals ({g['vehicles']} pre-declared vehicles "
             f"of this run, a convoy of up to 50 within 1 s, {g['seconds']} s)"]
    for colour in ("GREEN", "YELLOW", "RED"):
        lines.append(f"    {colour:<25} {g[colour]:>4}  ({100 * g[colour] / n:.1f} %)")
    lines += [f"      {reason:<38} {count}" for reason, count in g["by_reason"].items()
              if reason != "PRE_DECLARED_ACCEPTED"]
    u = g["undeclared"]
    lines.append(f"    no pre-declaration        {u['arrivals']} trucks: GREEN {u['GREEN']}, YELLOW {u['YELLOW']}, "
                 f"RED {u['RED']}")
    lines.append(f"    superseding decisions     {g['superseded']}; priority lane (perishables) {g['priority_lane']}")
    lines.append(f"    arrival -> decision       p50 {g['p50_ms']} ms, p99 {g['p99_ms']} ms")
    return "\n".join(lines)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
            return bool(json.loads(resp.read()).get("ready"))
    except (OSError, ValueError):
        return False


async def _vehicles_since(settings: Settings, since_ms: int, timeout_s: float) -> list[VehicleDeclarationSeen]:
    """The vehicle declarations on the status feed written at or after ``since_ms`` (this run's)."""
    consumer = make_consumer(settings.bootstrap, group_id=None, batch_max=1000, client_id="xbg-demo-gate-feed",
                             topics=(settings.topic_status,))
    found: dict[str, VehicleDeclarationSeen] = {}
    with kafka_boundary("demo gate: reading the status feed"):
        await consumer.start()
        try:
            deadline = time.monotonic() + timeout_s
            await wait_for_assignment(consumer, deadline)
            parts = list(consumer.assignment())
            end = await consumer.end_offsets(parts)
            while time.monotonic() < deadline:
                behind = [tp for tp in parts if await consumer.position(tp) < end[tp]]
                if not behind:
                    break
                got = await consumer.getmany(*behind, timeout_ms=500, max_records=1000)
                for recs in got.values():
                    for r in recs:
                        rec = to_incoming(r)
                        if rec.timestamp_ms and rec.timestamp_ms < since_ms:
                            continue
                        try:
                            feed = decode_feed_record(rec.value)
                        except GatewayError:
                            continue  # the gate keeps and audits it; not a truck of this hour
                        for ev in feed.events:
                            if isinstance(ev, VehicleDeclarationSeen) and ev.version >= since_ms:
                                found[ev.number] = ev
        finally:
            await consumer.stop()
    return sorted(found.values(), key=lambda v: v.number)


async def gate_hour(settings: Settings, *, since_ms: int, seed: int | str, prefix: str, compress_s: float = 5.0,
                    timeout_s: float = 90.0, plan: DayPlan | None = None,
                    say: Callable[[str], None] = lambda _: None) -> GateHour:
    """Run the simulated hour (module docstring) on ``settings``' broker and topics; see :class:`GateHour`."""
    t_start = time.monotonic()
    settings = settings.model_copy(update={"topic_gate_feed": settings.topic_status})
    vehicles = await _vehicles_since(settings, since_ms, timeout_s)
    start_ms = int(time.time() * 1000)
    arrivals, undeclared = simulate_hour_marked(vehicles, start_ms, seed, prefix=prefix, plan=plan)
    result = GateHour(arrivals=len(arrivals), vehicles=len(vehicles))
    speed = 3_600_000 / (compress_s * 1000)  # simulated ms per wall ms
    began: list[float] = []  # wall-clock start of the compressed hour, once publishing begins

    def sim_clock() -> int:
        if not began:
            return start_ms
        return start_ms + int((time.monotonic() - began[0]) * 1000 * speed)

    await ensure_topics(settings.bootstrap, (settings.topic_gate_arrivals, settings.topic_gate_decisions),
                        settings.topic_partitions)
    port = _free_port()
    stop = asyncio.Event()
    gate = asyncio.create_task(run_gate(settings, GateOptions(instance="demo", metrics_port=port), stop=stop,
                                        clock=sim_clock, install_shutdown=False))
    try:
        deadline = time.monotonic() + timeout_s
        while not await asyncio.to_thread(_ready, port):
            if gate.done():
                gate.result()
                raise GateHourError("the gate stopped before it was ready")
            if time.monotonic() > deadline:
                raise GateHourError(f"the gate was not ready after {timeout_s:.0f}s")
            await asyncio.sleep(0.1)
        say(f"demo: gate ready (view from {settings.topic_status}); a simulated hour of {len(arrivals)} "
            f"arrivals in {compress_s:.0f}s")
        decided = await _publish_and_collect(settings, arrivals, began=began, speed=speed, start_ms=start_ms,
                                             deadline=deadline, gate=gate)
    finally:
        stop.set()
        try:
            await asyncio.wait_for(gate, 30)
        except TimeoutError:
            log.warning("demo gate did not stop within 30 s")
    for aid, (sent_ms, decisions) in decided.items():
        first = min(decisions, key=lambda d: d[0].sequence)
        final = max(decisions, key=lambda d: d[0].sequence)[0]
        result.first_colours[first[0].colour.name] += 1
        result.colours[final.colour.name] += 1
        result.by_reason[final.primary_reason.value] += 1
        result.superseded += len(decisions) - 1
        result.priority_lane += int(final.priority_lane)
        result.latencies_ms.append(max(0.0, first[1] - sent_ms))
        if aid in undeclared:
            result.undeclared[final.colour.name] += 1
    result.wall_s = time.monotonic() - t_start
    return result


async def _publish_and_collect(settings: Settings, arrivals: list[Arrival], *, began: list[float], speed: float,
                               start_ms: int, deadline: float, gate: asyncio.Task[int],
                               ) -> dict[str, tuple[float, list[tuple[Decision, float]]]]:
    """Publish the arrivals at their compressed camera times; read every decision on them back."""
    consumer = make_consumer(settings.bootstrap, group_id=None, batch_max=500, client_id="xbg-demo-gate-decisions",
                             topics=(settings.topic_gate_decisions,))
    producer = make_producer(settings.bootstrap, client_id="xbg-demo-gate-cameras", linger_ms=0)
    sent: dict[str, float] = {}
    seen: dict[str, list[tuple[Decision, float]]] = {}
    with kafka_boundary("demo gate hour"):
        await consumer.start()
        await producer.start()
        try:
            await wait_for_assignment(consumer, deadline)
            parts = list(consumer.assignment())
            for tp, off in (await consumer.end_offsets(parts)).items():  # only what this hour produces
                consumer.seek(tp, off)

            async def cameras() -> None:
                began.append(time.monotonic())
                pending = []
                for a in arrivals:
                    due = began[0] + (a.camera_ms - start_ms) / speed / 1000
                    if (wait := due - time.monotonic()) > 0:
                        await asyncio.sleep(wait)
                    sent[a.arrival_id] = time.time() * 1000
                    pending.append(await producer.send(settings.topic_gate_arrivals, encode_arrival(a),
                                                       key=a.arrival_id.encode()))
                await asyncio.gather(*pending)

            publisher = asyncio.create_task(cameras())
            wanted = {a.arrival_id for a in arrivals}
            while time.monotonic() < deadline and not (publisher.done() and wanted <= seen.keys()):
                if gate.done():
                    gate.result()
                    raise GateHourError("the gate stopped during the hour")
                got = await consumer.getmany(timeout_ms=200, max_records=500)
                now = time.time() * 1000
                for recs in got.values():
                    for r in recs:
                        d = decode_decision(r.value)
                        if d.arrival_id in wanted:
                            seen.setdefault(d.arrival_id, []).append((d, now))
            await publisher
            if not wanted <= seen.keys():
                raise GateHourError(f"{len(wanted - seen.keys())} of {len(wanted)} arrivals got no decision in time")
        finally:
            await producer.stop()
            await consumer.stop()
    return {aid: (sent[aid], seen[aid]) for aid in seen}


def demo_gate_hour(settings: Settings, *, run: str, since_ms: int, seed: int,
                   say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """``xborder demo``'s hook: the hour over this run's documents, as ``--json``'s ``gate`` object."""
    hour = asyncio.run(gate_hour(settings, since_ms=since_ms, seed=seed, prefix=f"demo-{run}", say=say))
    return hour.to_json()
