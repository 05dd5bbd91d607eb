"""Benchmark of the smart gate: arrival -> decision latency under convoy bursts, beside a bare relay.

    XBG_KAFKA_BOOTSTRAP=127.0.0.1:29222 python bench/bench_gate.py
    python bench/bench_gate.py --bursts 10 --burst-size 50 --feed-rate 200

Both contenders run as their own process on the same broker in the same run, and get the same events:
1. **baseline**: a bare consume -> produce relay on the project's transport (read_committed consumer, one
   Kafka transaction per batch with the offsets, as the gate), forwarding each arrival unchanged;
2. **gate**: ``xborder run gate`` with a view of 1,500 pre-declared vehicles (the feed is read first).
Load: ``--bursts`` convoys of ``--burst-size`` arrivals sent within one second (a convoy released from the
logistics park), while status-feed records arrive at ``--feed-rate`` per second (the exchange's traffic as
the gate sees it). Latency = the time the decision (or relayed record) is read back by a read_committed
consumer minus the time the arrival was sent; p50 / p99 / max per contender.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from xborder_gateway.config import load_settings


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


async def relay(bootstrap: str, source: str, target: str, group: str) -> None:
    """The baseline: consume -> produce each record unchanged, exactly once, on the project's transport."""
    from xborder_gateway.transport import Incoming, LoopConfig, Outgoing, TransactionalBatchLoop, install_shutdown

    stop = asyncio.Event()
    install_shutdown(stop)

    async def handler(records: list[Incoming]) -> list[Outgoing]:
        return [Outgoing(target, r.key, r.value) for r in records]

    config = LoopConfig(bootstrap=bootstrap, topics=(source,), group_id=group, client_id=f"{group}-relay",
                        transactional_id=f"{group}.relay", poll_ms=50)
    await TransactionalBatchLoop(config, handler, stop).run()


async def drive(bootstrap: str, arrivals_topic: str, out_topic: str, feed_topic: str, *, args: argparse.Namespace,
                key_of: str) -> list[float]:
    from xborder_gateway.gate import Arrival, DeclarationStatus, DeclState, Direction, encode_arrival
    from xborder_gateway.gate._feed import encode_view_event
    from xborder_gateway.transport import make_consumer, make_producer

    producer = make_producer(bootstrap, client_id="bench-gate", linger_ms=0)
    consumer = make_consumer(bootstrap, group_id=None, batch_max=1000, topics=(out_topic,))
    await producer.start()
    await consumer.start()
    await consumer.seek_to_end()
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    total = args.bursts * args.burst_size
    stop = asyncio.Event()

    async def read() -> None:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for recs in batch.values():
                for r in recs:
                    key = r.key.decode()
                    if key in sent and key not in seen:
                        seen[key] = now

    async def feed_load() -> None:
        n = 0
        start = time.perf_counter()
        while not stop.is_set():
            number = f"8{n:011d}"
            ev = DeclarationStatus(number, DeclState.ACCEPTED, int(time.time() * 1000))
            await producer.send(feed_topic, encode_view_event(ev), key=number.encode())
            n += 1
            await asyncio.sleep(max(0.0, start + n / args.feed_rate - time.perf_counter()))

    reader = asyncio.create_task(read())
    # warm-up: one arrival answered end to end (group joined, transactions initialised) before measuring
    warm = f"bench-{key_of}-warm"
    sent[warm] = time.perf_counter()
    await producer.send(arrivals_topic, encode_arrival(Arrival(warm, "HUU_NGHI", "L1", Direction.EXIT_TO_CN,
                                                               "12C-100.00", 0.96, int(time.time() * 1000))),
                        key=warm.encode())
    deadline = time.monotonic() + 120
    while warm not in seen and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a dict the reader fills
        await asyncio.sleep(0.1)
    del sent[warm]
    seen.pop(warm, None)
    loader = asyncio.create_task(feed_load()) if args.feed_rate > 0 else None
    await asyncio.sleep(2.0)
    plates = [f"12C{10000 + i:05d}" for i in range(args.vehicles)]
    k = 0
    for b in range(args.bursts):
        t0 = time.perf_counter()
        for i in range(args.burst_size):
            aid = f"bench-{key_of}-{b}-{i}"
            plate = plates[k % len(plates)]
            k += 1
            a = Arrival(aid, "HUU_NGHI", f"L{i % 4 + 1}", Direction.EXIT_TO_CN, f"{plate[:3]}-{plate[3:6]}.{plate[6:]}",
                        0.96, int(time.time() * 1000))
            sent[aid] = time.perf_counter()
            await producer.send(arrivals_topic, encode_arrival(a), key=aid.encode())
            await asyncio.sleep(max(0.0, t0 + (i + 1) / args.burst_size * 0.98 - time.perf_counter()))
        await asyncio.sleep(args.gap)
    deadline = time.monotonic() + 30
    while len(seen) < total and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a dict the reader fills
        await asyncio.sleep(0.1)
    stop.set()
    await reader
    if loader:
        await loader
    await consumer.stop()
    await producer.stop()
    missing = total - len(seen)
    if missing:
        print(f"  WARNING: {missing} of {total} never answered within 30 s", file=sys.stderr)
    return [(seen[k] - sent[k]) * 1000 for k in seen]


def pure_costs(vehicles: int) -> dict[str, list[float]]:
    """CPU cost of the gate's own work, no Kafka: decide() on the view, and a whole processor batch of 50
    (SQLite view + decisions + audit append with its commit), in ms."""
    from xborder_gateway.connectors._common import Auditor
    from xborder_gateway.gate import (
        Arrival,
        DeclarationStatus,
        DeclState,
        Direction,
        GatePolicy,
        GateProcessor,
        GateStore,
        PlateHasher,
        VehicleDeclarationSeen,
        decide,
        encode_arrival,
    )
    from xborder_gateway.gate._feed import encode_view_event
    from xborder_gateway.transport import Incoming

    home = Path(tempfile.mkdtemp(prefix="xbg-gate-bench-pure-"))
    store = GateStore.open(home / "gate.sqlite")
    auditor = Auditor(load_settings(home=home), "VN")
    proc = GateProcessor(store, PlateHasher(b"b" * 32), GatePolicy(), lambda: int(time.time() * 1000),
                         arrivals_topic="arr", decisions_topic="dec", audit=auditor.append)
    feed: list[Incoming] = []
    for i in range(vehicles):
        v = VehicleDeclarationSeen(f"91{i:010d}", Direction.EXIT_TO_CN, f"12C{10000 + i:05d}", linked=(f"30{i:010d}",))
        for ev in (v, DeclarationStatus(v.number, DeclState.ACCEPTED, 1),
                   DeclarationStatus(v.linked[0], DeclState.ACCEPTED, 1)):
            feed.append(Incoming("feed", 0, len(feed), None, encode_view_event(ev)))
    for i in range(0, len(feed), 500):
        proc.handle(feed[i:i + 500])
    out: dict[str, list[float]] = {"decide() one arrival (exact or OCR-confused read)": [],
                                   "processor batch of 50 arrivals (SQLite + audit)": []}
    for i in range(1000):
        plate = f"12C-{10000 + i % vehicles:05d}"
        read = plate.replace("0", "O", 1) if i % 3 == 0 else plate
        a = Arrival(f"p{i}", "HUU_NGHI", "L1", Direction.EXIT_TO_CN, read, 0.96, int(time.time() * 1000))
        t = time.perf_counter()
        decide(a, store, GatePolicy(), int(time.time() * 1000))
        out["decide() one arrival (exact or OCR-confused read)"].append((time.perf_counter() - t) * 1000)
    for b in range(10):
        batch = [Incoming("arr", 0, b * 50 + i, None, encode_arrival(Arrival(
            f"q{b}-{i}", "HUU_NGHI", "L1", Direction.EXIT_TO_CN, f"12C-{10000 + (b * 50 + i) % vehicles:05d}", 0.96,
            int(time.time() * 1000)))) for i in range(50)]
        t = time.perf_counter()
        proc.handle(batch)
        out["processor batch of 50 arrivals (SQLite + audit)"].append((time.perf_counter() - t) * 1000)
    auditor.close()
    store.close()
    return out


def _wait_feed(db: Path, topic: str, want: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                with sqlite3.connect(db) as conn:
                    got = conn.execute("SELECT coalesce(sum(next_offset),0) FROM offsets WHERE topic=?",
                                       (topic,)).fetchone()[0]
                if got >= want:
                    return
            except sqlite3.OperationalError:
                pass
        time.sleep(0.3)
    raise SystemExit("the gate did not read the feed in time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bursts", type=int, default=8)
    parser.add_argument("--burst-size", type=int, default=50)
    parser.add_argument("--gap", type=float, default=2.0, help="seconds between bursts")
    parser.add_argument("--feed-rate", type=float, default=200.0, help="status-feed records per second meanwhile")
    parser.add_argument("--vehicles", type=int, default=1500)
    parser.add_argument("--relay", nargs=4, metavar=("BOOTSTRAP", "SOURCE", "TARGET", "GROUP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.relay:
        asyncio.run(relay(*args.relay))
        return 0
    pure = pure_costs(args.vehicles)
    # $XBG_KAFKA_BOOTSTRAP, else the home's local broker (`make bench` starts it with `xborder kafka start`)
    bootstrap = os.environ.get("XBG_KAFKA_BOOTSTRAP") or load_settings().bootstrap
    from xborder_gateway.gate import DeclarationStatus, DeclState, Direction, VehicleDeclarationSeen
    from xborder_gateway.gate._feed import encode_view_event
    from xborder_gateway.transport import ensure_topics, make_producer

    p = f"bench{uuid.uuid4().hex[:6]}"
    home = Path(tempfile.mkdtemp(prefix="xbg-gate-bench-"))
    env = {**os.environ, "XBG_KAFKA_BOOTSTRAP": bootstrap, "XBG_EXCHANGE_GROUP_PREFIX": p,
           "XBG_TOPIC_GATE_ARRIVALS": f"{p}.arrivals", "XBG_TOPIC_GATE_DECISIONS": f"{p}.decisions",
           "XBG_TOPIC_GATE_FEED": f"{p}.status"}
    env.pop("XBG_CONFIG", None)
    settings = load_settings(home=home, kafka_bootstrap=bootstrap, topic_gate_arrivals=f"{p}.arrivals",
                             topic_gate_decisions=f"{p}.decisions", topic_gate_feed=f"{p}.status")
    topics = (f"{p}.status", f"{p}.arrivals", f"{p}.decisions", f"{p}.relay-in", f"{p}.relay-out", f"{p}.status-idle")

    async def setup() -> int:
        await ensure_topics(bootstrap, topics, settings.topic_partitions)
        producer = make_producer(bootstrap, client_id="bench-setup")
        await producer.start()
        n = 0
        for i in range(args.vehicles):
            v = VehicleDeclarationSeen(f"91{i:010d}", Direction.EXIT_TO_CN, f"12C{10000 + i:05d}",
                                       linked=(f"30{i:010d}",), perishable=i % 2 == 0)
            for ev in (v, DeclarationStatus(v.number, DeclState.ACCEPTED, 1),
                       DeclarationStatus(v.linked[0], DeclState.ACCEPTED, 1)):
                await producer.send(settings.topic_gate_feed, encode_view_event(ev), key=v.number.encode())
                n += 1
        await producer.flush()
        await producer.stop()
        return n

    feed_records = asyncio.run(setup())
    results: dict[str, list[float]] = {}
    # 1. baseline relay
    relay_proc = subprocess.Popen([sys.executable, __file__, "--relay", bootstrap, f"{p}.relay-in",
                                   f"{p}.relay-out", p], env=env)
    try:
        results["baseline: bare consume->produce"] = asyncio.run(
            drive(bootstrap, f"{p}.relay-in", f"{p}.relay-out", f"{p}.status-idle", args=args, key_of="relay"))
    finally:
        relay_proc.send_signal(signal.SIGTERM)
        relay_proc.wait(30)
    # 2. the gate
    log = (home / "gate.log").open("wb")
    gate = subprocess.Popen([sys.executable, "-m", "xborder_gateway._cli", "--home", str(home), "run", "gate"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_feed(home / "gate" / "vn.sqlite", settings.topic_gate_feed, feed_records)
        results["gate: xborder run gate"] = asyncio.run(
            drive(bootstrap, settings.topic_gate_arrivals, settings.topic_gate_decisions, settings.topic_gate_feed,
                  args=args, key_of="gate"))
    finally:
        gate.send_signal(signal.SIGTERM)
        gate.wait(30)
    print(f"\nsmart gate, {args.bursts} bursts of {args.burst_size} arrivals within 1 s, feed at "
          f"{args.feed_rate:.0f}/s during the gate run, view of {args.vehicles} vehicles ({dt.date.today()})")
    print(f"{'contender':<36}{'n':>6}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, lat in results.items():
        if lat:
            print(f"{name:<36}{len(lat):>6}{_pct(lat, 0.5):>9.1f}{_pct(lat, 0.99):>9.1f}{max(lat):>9.1f}")
    print("\nthe gate's own CPU work (no Kafka), same run:")
    for name, lat in pure.items():
        print(f"{name:<52}{len(lat):>6}  p50 {_pct(lat, 0.5):.2f} ms  p99 {_pct(lat, 0.99):.2f} ms")
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
