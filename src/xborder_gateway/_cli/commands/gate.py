"""``xborder gate board|simulate``: the operator's view of the gate, and a simulated day at the gate."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from xborder_gateway._cli import add_command
from xborder_gateway.config import Settings
from xborder_gateway.errors import ConfigError

if TYPE_CHECKING:
    from xborder_gateway.gate import Arrival, ViewEvent

EXAMPLES = """\
examples:
  xborder gate board                         live view (refreshes every 2 s; Ctrl-C to leave)
  xborder gate board --once                  print one frame and exit (scripts, tests)
  xborder gate board --once --json           the same frame as one JSON object
  xborder gate simulate --day 2026-06-03 --seed 7            publish a fruit-season day to the gate topics
  xborder gate simulate --day 2026-06-03 --hour 10 --dry-run  a simulated hour, counted, not published
exit codes: 0 done, 1 failed (the message says why), 2 usage error
"""


def _board(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.gate._board import board_data, render_board
    from xborder_gateway.gate._connector import gate_db
    from xborder_gateway.gate._store import GateStore

    path = gate_db(settings, args.authority)
    if not path.exists():
        raise ConfigError(f"no gate state at {path}", code="GATE_NO_STATE",
                          hint="start `xborder run gate` with this --home first")
    store = GateStore.open(path)
    try:
        while True:
            data = board_data(store, int(time.time() * 1000), int(args.window_hours * 3_600_000))
            if args.json:
                print(json.dumps(data, ensure_ascii=False, sort_keys=True))
            else:
                if not args.once:
                    sys.stdout.write("\x1b[2J\x1b[H")
                sys.stdout.write(render_board(data))
            sys.stdout.flush()
            if args.once:
                return 0
            time.sleep(args.interval)
    finally:
        store.close()


def _day(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date YYYY-MM-DD") from exc


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from xborder_gateway.gate._generate import DayPlan, simulate_day, simulate_feed, synthetic_vehicles

    vehicles = synthetic_vehicles(args.day, args.seed, args.count)
    plan = DayPlan(start_hour=args.hour)
    arrivals = simulate_day(vehicles, args.day, args.seed, plan)
    first = arrivals[0].camera_ms if arrivals else int(time.time() * 1000)
    before, late = simulate_feed(vehicles, args.seed, first)
    summary = {"vehicles": len(vehicles), "arrivals": len(arrivals), "feed_records": len(before) + len(late),
               "late_feed_records": len(late), "published": not args.dry_run}
    if not args.dry_run:
        asyncio.run(_publish(settings, before, arrivals, late))
    print(json.dumps(summary, sort_keys=True))
    return 0


async def _publish(settings: Settings, before: Sequence[ViewEvent], arrivals: Sequence[Arrival],
                   late: Sequence[ViewEvent]) -> None:
    from xborder_gateway.gate._codec import encode_arrival
    from xborder_gateway.gate._connector import gate_topics
    from xborder_gateway.gate._feed import encode_view_event
    from xborder_gateway.transport import ensure_topics, kafka_boundary, make_producer

    await ensure_topics(settings.bootstrap, gate_topics(settings), settings.topic_partitions)
    producer = make_producer(settings.bootstrap, client_id="xbg-gate-simulate", linger_ms=5)
    with kafka_boundary("start producer"):
        await producer.start()
    try:
        with kafka_boundary("publish"):
            for ev in before:
                await producer.send(settings.topic_gate_feed, encode_view_event(ev), key=ev.number.encode())
            await producer.flush()
            for a in arrivals:
                await producer.send(settings.topic_gate_arrivals, encode_arrival(a), key=a.arrival_id.encode())
            await producer.flush()
            for ev in late:
                await producer.send(settings.topic_gate_feed, encode_view_event(ev), key=ev.number.encode())
            await producer.flush()
    finally:
        await producer.stop()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(sub, "gate", help="the smart gate: operator board, simulated days",
                         description="The smart gate (docs/gate.md): `xborder run gate` decides; these verbs "
                         "show its state and feed it simulated traffic.", epilog=EXAMPLES)
    verbs = parser.add_subparsers(dest="gate_verb", metavar="VERB", required=True)
    p = add_command(verbs, "board", help="live terminal view: trucks waiting per gate, why they stopped",
                    epilog=EXAMPLES)
    p.add_argument("--once", action="store_true", help="print one frame and exit")
    p.add_argument("--json", action="store_true", help="print the frame as JSON (one line per refresh)")
    p.add_argument("--interval", type=float, default=2.0, metavar="S", help="seconds between frames (default 2)")
    p.add_argument("--window-hours", type=float, default=12.0, metavar="H",
                   help="arrivals of the last H hours count as waiting (default 12)")
    p.add_argument("--authority", choices=("VN", "CN"), default="VN", help="whose gate (default VN)")
    p.set_defaults(func=_board)

    p = add_command(verbs, "simulate", help="publish a simulated day (or hour) at the gate: feed, then arrivals",
                    epilog=EXAMPLES)
    p.add_argument("--day", type=_day, default=dt.date(2026, 6, 3), metavar="YYYY-MM-DD",
                   help="the simulated day (season and volume follow from it; default 2026-06-03)")
    p.add_argument("--hour", type=int, choices=range(7, 23), default=None, metavar="H",
                   help="simulate only this local hour (7-22)")
    p.add_argument("--count", type=int, default=None, metavar="N", help="pre-declared vehicles (default: the day's)")
    p.add_argument("--seed", type=int, default=1, help="seed (the same seed gives the same day)")
    p.add_argument("--dry-run", action="store_true", help="generate and count, publish nothing")
    p.set_defaults(func=_simulate)
