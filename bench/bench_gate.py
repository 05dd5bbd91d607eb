"""Benchmark of the smart gate: arrival -> decision latency under convoy bursts, while the exchange runs,
beside a bare consume -> produce relay of the same events in the same run.

    XBG_KAFKA_BOOTSTRAP=127.0.0.1:29222 python bench/bench_gate.py
    python bench/bench_gate.py --bursts 6 --burst-size 50 --exchange-rate 200
    python bench/bench_gate.py --exchange-nice 10     # the exchange's processes at a lower CPU priority than the gate

What runs, all on the same broker and machine, at the same time:
1. **the exchange**: the real outbound connector, Nanning endpoint and receipt tracker (``xborder run …``,
   one process each), fed generated documents at ``--exchange-rate`` declarations per second for the whole
   measurement; they write the real status feed (``DeclarationStatus.v1``) the gate reads;
2. **gate**: ``xborder run gate`` whose view holds ``--vehicles`` pre-declared vehicles (written on the same
   status feed in its real Avro form before the start) plus everything the running exchange reports;
3. **baseline**: a bare consume -> produce relay on the project's transport (read_committed consumer, one
   Kafka transaction per batch with the offsets, as the gate), forwarding each arrival unchanged.
Load: ``--bursts`` convoys of ``--burst-size`` arrivals within one second (a convoy released from the
logistics park); each arrival is sent to the gate's and the relay's input back to back. Latency = the time
the decision (or relayed record) is read back by a read_committed consumer minus the time the arrival was
sent; p50 / p99 / max per contender, their ratio, the exchange's achieved rate and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from typing import Any

from xborder_gateway.config import load_settings


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


async def relay(bootstrap: str, source: str, target: str, group: str) -> None:
    """The baseline: consume -> produce each record unchanged on the project's transport, delivered the way
    the gate delivers its decisions (``gate_delivery``): ``outbox`` -> an idempotent producer, each batch
    acknowledged before its offsets are committed (the gate's loop minus SQLite and the decision);
    ``transaction`` -> one Kafka transaction per batch with the offsets."""
    from xborder_gateway.transport import (
        AtLeastOnceLoop,
        Incoming,
        LoopConfig,
        Outgoing,
        TransactionalBatchLoop,
        install_shutdown,
        make_producer,
    )

    stop = asyncio.Event()
    install_shutdown(stop)
    settings = load_settings()
    # the gate's own loop settings (poll, fetch wait), so the baseline differs from the gate by the gate alone
    config = LoopConfig(bootstrap=bootstrap, topics=(source,), group_id=group, client_id=f"{group}-relay",
                        transactional_id=f"{group}.relay" if settings.gate_delivery == "transaction" else None,
                        poll_ms=50, fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms)
    if settings.gate_delivery == "transaction":
        async def handler(records: list[Incoming]) -> list[Outgoing]:
            return [Outgoing(target, r.key, r.value) for r in records]

        await TransactionalBatchLoop(config, handler, stop).run()
        return
    producer = make_producer(bootstrap, client_id=f"{group}-relay-out", linger_ms=0)
    await producer.start()

    async def sink(records: list[Incoming]) -> None:
        futures = [await producer.send(target, r.value, key=r.key) for r in records]
        await asyncio.gather(*futures)

    try:
        await AtLeastOnceLoop(config, sink, stop).run()
    finally:
        await producer.stop()


async def drive(bootstrap: str, contenders: dict[str, tuple[str, str]], *, args: argparse.Namespace,
                ) -> dict[str, list[float]]:
    """Send the bursts to every contender's input (back to back); latencies in ms per contender."""
    from xborder_gateway.gate import Arrival, Direction, encode_arrival
    from xborder_gateway.transport import make_consumer, make_producer

    producer = make_producer(bootstrap, client_id="bench-gate", linger_ms=0)
    outs = {out: name for name, (_, out) in contenders.items()}
    # the instrument: a short fetch wait, or its own fetch in flight (one per broker in aiokafka) would add up
    # to Kafka's 500 ms to a decision that landed on another partition
    consumer = make_consumer(bootstrap, group_id=None, batch_max=1000, topics=tuple(outs), fetch_max_wait_ms=5)
    await producer.start()
    await consumer.start()
    while not consumer.assignment():  # noqa: ASYNC110 - aiokafka has no event for it
        await asyncio.sleep(0.05)
    await consumer.seek_to_end()
    sent: dict[str, float] = {}
    seen: dict[tuple[str, str], float] = {}
    stop = asyncio.Event()

    async def read() -> None:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for recs in batch.values():
                for r in recs:
                    key = (outs[r.topic], r.key.decode())
                    if key[1] in sent and key not in seen:
                        seen[key] = now

    async def send(aid: str, plate: str, lane: str) -> None:
        value = encode_arrival(Arrival(aid, "HUU_NGHI", lane, Direction.EXIT_TO_CN, plate, 0.96,
                                       int(time.time() * 1000)))
        sent[aid] = time.perf_counter()
        for source, _ in contenders.values():
            await producer.send(source, value, key=aid.encode())

    reader = asyncio.create_task(read())
    # warm-up: one arrival answered end to end by each (group joined, transactions initialised)
    await send("bench-warm", "12C-100.00", "L1")
    deadline = time.monotonic() + 60
    while not all((n, "bench-warm") in seen for n in contenders) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    del sent["bench-warm"]
    plates = [f"12C{10000 + i:05d}" for i in range(args.vehicles)]
    # unmeasured convoys first: a broker started shortly before spends much of its CPU in the JVM's JIT
    # compilers, and the gate's own first batches load code; both would be charged to the first bursts
    for b in range(args.warmup_bursts):
        for i in range(args.burst_size):
            plate = plates[(b * args.burst_size + i) % len(plates)]
            await send(f"warm-{b}-{i}", f"{plate[:3]}-{plate[3:6]}.{plate[6:]}", f"L{i % 4 + 1}")
            await asyncio.sleep(0.98 / args.burst_size)
        await asyncio.sleep(args.gap)
    warm = [a for a in sent if a.startswith("warm-")]
    deadline = time.monotonic() + 60
    while not all((n, a) in seen for n in contenders for a in warm) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    for a in warm:
        del sent[a]
    k = 0
    for b in range(args.bursts):
        t0 = time.perf_counter()
        for i in range(args.burst_size):
            plate = plates[k % len(plates)]
            k += 1
            await send(f"bench-{b}-{i}", f"{plate[:3]}-{plate[3:6]}.{plate[6:]}", f"L{i % 4 + 1}")
            await asyncio.sleep(max(0.0, t0 + (i + 1) / args.burst_size * 0.98 - time.perf_counter()))
        await asyncio.sleep(args.gap)
    total = args.bursts * args.burst_size
    deadline = time.monotonic() + 30
    while sum(1 for (_, a) in seen if a in sent) < total * len(contenders) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    stop.set()
    await reader
    await consumer.stop()
    await producer.stop()
    out: dict[str, list[float]] = {}
    for name in contenders:
        lat = [(seen[(name, a)] - t) * 1000 for a, t in sent.items() if (name, a) in seen]
        if len(lat) < total:
            print(f"  WARNING: {name}: {total - len(lat)} of {total} never answered within 30 s", file=sys.stderr)
        out[name] = lat
    return out


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
    auditor = Auditor(load_settings(home=home, key_passphrase="bench only, throwaway home"), "VN")  # noqa: S106
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
    # a convoy at 50 arrivals/s reaches the gate as batches of one or two: the per-batch fixed cost counts
    out["processor batch of 1 arrival (SQLite + audit)"] = []
    for i in range(100):
        one = [Incoming("arr", 1, i, None, encode_arrival(Arrival(
            f"s{i}", "HUU_NGHI", "L2", Direction.EXIT_TO_CN, f"12C-{10000 + (7 * i) % vehicles:05d}", 0.96,
            int(time.time() * 1000))))]
        t = time.perf_counter()
        proc.handle(one)
        out["processor batch of 1 arrival (SQLite + audit)"].append((time.perf_counter() - t) * 1000)
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


def main() -> int:  # noqa: PLR0912 - one benchmark run, one report
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bursts", type=int, default=6)
    parser.add_argument("--burst-size", type=int, default=50)
    parser.add_argument("--gap", type=float, default=2.0, help="seconds between bursts")
    parser.add_argument("--exchange-rate", type=float, default=200.0,
                        help="declarations per second through the real exchange meanwhile (0: no exchange)")
    parser.add_argument("--vehicles", type=int, default=1500)
    parser.add_argument("--warmup-bursts", type=int, default=3,
                        help="unmeasured convoys sent first (default 3): a freshly started broker's JIT and the "
                        "gate's first batches would be charged to the first measured ones")
    parser.add_argument("--exchange-nice", type=int, default=0, metavar="N",
                        help="run the exchange's processes (connectors and publisher) at this nice value: an "
                        "operator's choice of the gate first on a shared machine (default 0: same priority)")
    parser.add_argument("--relay", nargs=4, metavar=("BOOTSTRAP", "SOURCE", "TARGET", "GROUP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.relay:
        asyncio.run(relay(*args.relay))
        return 0
    pure = pure_costs(args.vehicles)
    # $XBG_KAFKA_BOOTSTRAP, else the home's local broker (`make bench` starts it with `xborder kafka start`)
    bootstrap = os.environ.get("XBG_KAFKA_BOOTSTRAP") or load_settings().bootstrap
    from xborder_gateway._cli.commands.demo import _connectors, _ensure_keys, _passphrase_file, _wait_ready
    from xborder_gateway.exchange._status import StatusChange, StatusKind, StatusVehicle, status_record
    from xborder_gateway.transport import ensure_topics, make_producer

    p = f"bench{uuid.uuid4().hex[:6]}"
    home = Path(tempfile.mkdtemp(prefix="xbg-gate-bench-"))
    topics = {"XBG_TOPIC_INTAKE": f"{p}.raw", "XBG_TOPIC_REJECTED": f"{p}.rejected",
              "XBG_TOPIC_EXCHANGE": f"{p}.exchange", "XBG_TOPIC_EXCHANGE_PRIORITY": f"{p}.exchange.priority",
              "XBG_TOPIC_RECEIPTS": f"{p}.receipts", "XBG_TOPIC_DEAD_LETTER": f"{p}.dead-letter",
              "XBG_TOPIC_STATUS": f"{p}.status", "XBG_TOPIC_GATE_FEED": f"{p}.status",
              "XBG_TOPIC_GATE_ARRIVALS": f"{p}.arrivals", "XBG_TOPIC_GATE_DECISIONS": f"{p}.decisions"}
    os.environ.update({**topics, "XBG_KAFKA_BOOTSTRAP": bootstrap, "XBG_EXCHANGE_GROUP_PREFIX": p})
    os.environ.pop("XBG_CONFIG", None)
    settings = load_settings(home=home, kafka_bootstrap=bootstrap, exchange_group_prefix=p,
                             **{k.removeprefix("XBG_").lower(): v for k, v in topics.items()})
    passphrase_file = _passphrase_file(home)
    settings = settings.model_copy(update={"key_passphrase_file": passphrase_file})
    os.environ["XBG_KEY_PASSPHRASE_FILE"] = str(passphrase_file)
    _ensure_keys(settings, passphrase_file)
    duration = (args.bursts + args.warmup_bursts) * (1 + args.gap) + 10
    n_docs = int(args.exchange_rate * duration) if args.exchange_rate > 0 else 0

    async def setup() -> int:
        await ensure_topics(bootstrap, sorted({*topics.values(), f"{p}.relay-in", f"{p}.relay-out"}),
                            settings.topic_partitions)
        producer = make_producer(bootstrap, client_id="bench-setup")
        await producer.start()
        n = 0
        for i in range(args.vehicles):  # the real feed's form, as the outbound connector and tracker write it
            tor, goods = f"91{i:010d}", f"30{i:010d}"
            v = StatusVehicle(f"12C{10000 + i:05d}", (), (goods,), i % 2 == 0)
            now = int(time.time() * 1000)
            for ch in (StatusChange(tor, "VN", StatusKind.SENT, now, "TOR", message_id="m", vehicle=v),
                       StatusChange(tor, "VN", StatusKind.BUSINESS_OUTCOME, now, business_status="ACCEPTED"),
                       StatusChange(goods, "VN", StatusKind.SENT, now, "EDA", message_id="m"),
                       StatusChange(goods, "VN", StatusKind.BUSINESS_OUTCOME, now, business_status="ACCEPTED")):
                out = status_record(settings.topic_status, ch)
                await producer.send(out.topic, out.value, key=out.key)
                n += 1
        await producer.flush()
        await producer.stop()
        return n

    feed_records = asyncio.run(setup())
    env = dict(os.environ)
    procs: list[subprocess.Popen[bytes]] = []
    log = (home / "gate.log").open("wb")
    exchange = contextlib.ExitStack()
    try:
        if args.exchange_rate > 0:
            children = exchange.enter_context(_connectors(settings, argparse.Namespace(chaos=False, config=None),
                                                          passphrase_file, bootstrap, home / "logs"))
            _wait_ready(children, 120)
            for child in children:
                os.setpriority(os.PRIO_PROCESS, child.proc.pid, args.exchange_nice)
        procs.append(subprocess.Popen([sys.executable, __file__, "--relay", bootstrap, f"{p}.relay-in",
                                       f"{p}.relay-out", p], env=env))
        procs.append(subprocess.Popen([sys.executable, "-m", "xborder_gateway._cli", "-v", "--home", str(home), "run",
                                       "gate"], env=env, stdout=log, stderr=subprocess.STDOUT))
        _wait_feed(home / "gate" / "vn.sqlite", settings.topic_gate_feed, feed_records)

        # the exchange's documents come from a process of their own (`xborder publish --rate`), so the
        # driver's event loop below does nothing but send arrivals and read decisions
        publisher = subprocess.Popen(
            [sys.executable, "-m", "xborder_gateway._cli", "--home", str(home), "publish", "--generate",
             str(n_docs), "--seed", "7", "--rate", str(args.exchange_rate), "--run", p], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if n_docs else None
        if publisher is not None:
            os.setpriority(os.PRIO_PROCESS, publisher.pid, args.exchange_nice)

        watched = {"relay": procs[0].pid, "gate": procs[1].pid, "driver (this process)": os.getpid()}
        if args.exchange_rate > 0:
            watched.update({c.name: c.proc.pid for c in children})
        if publisher is not None:
            watched["publisher"] = publisher.pid

        async def measure() -> tuple[dict[str, list[float]], float]:
            nonlocal cpu0
            cpu0 = {name: _cpu_seconds(pid) for name, pid in watched.items()}
            t0 = time.perf_counter()
            await asyncio.sleep(3.0 if n_docs else 0)  # the exchange at its rate first
            results = await drive(bootstrap, {"baseline: bare consume->produce": (f"{p}.relay-in", f"{p}.relay-out"),
                                              "gate: xborder run gate": (settings.topic_gate_arrivals,
                                                                         settings.topic_gate_decisions)}, args=args)
            return results, time.perf_counter() - t0

        load_before = os.getloadavg()
        cpu0: dict[str, float] = {}
        results, elapsed = asyncio.run(measure())
        cores = {name: (_cpu_seconds(pid) - cpu0[name]) / elapsed for name, pid in watched.items()}
        if publisher is not None:
            publisher.terminate()
            publisher.wait(30)
        sealed = _settled(settings, p)
        load = os.getloadavg()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
        exchange.close()
    print(f"\nsmart gate, {args.bursts} bursts of {args.burst_size} arrivals within 1 s, the exchange offered "
          f"{args.exchange_rate:.0f} declarations/s meanwhile (settled {sealed} in {elapsed:.0f}s = "
          f"{sealed / elapsed:.0f}/s; exchange processes at nice {args.exchange_nice}), view of {args.vehicles} "
          f"vehicles ({dt.date.today()})")
    print(f"decisions delivered by gate_delivery={settings.gate_delivery} (the baseline relay delivers the same way)")
    print(f"{'contender':<36}{'n':>6}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, lat in results.items():
        if lat:
            print(f"{name:<36}{len(lat):>6}{_pct(lat, 0.5):>9.1f}{_pct(lat, 0.99):>9.1f}{max(lat):>9.1f}")
    base, gate = results["baseline: bare consume->produce"], results["gate: xborder run gate"]
    if base and gate:
        print(f"ratio gate / baseline: p50 {_pct(gate, 0.5) / _pct(base, 0.5):.2f}, "
              f"p99 {_pct(gate, 0.99) / _pct(base, 0.99):.2f}")
    print("\nthe gate's own CPU work (no Kafka), same run:")
    for name, lat in pure.items():
        print(f"{name:<52}{len(lat):>6}  p50 {_pct(lat, 0.5):.2f} ms  p99 {_pct(lat, 0.99):.2f} ms")
    print("CPU used during the measurement, in cores: "
          + ", ".join(f"{name} {share:.2f}" for name, share in sorted(cores.items(), key=lambda kv: -kv[1])))
    print(f"machine: {os.cpu_count()} CPUs, load average before {load_before[0]:.1f}, after {load[0]:.1f} / "
          f"{load[1]:.1f} / {load[2]:.1f}")
    return 0


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far (Linux /proc); NaN once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _settled(settings: Any, run: str) -> int:
    """Declarations of this run the exchange settled (delivered, rejected or dead-lettered) so far."""
    from xborder_gateway.exchange import settled_count

    vn_db = settings.state_db("VN")
    if not vn_db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(vn_db, timeout=10)) as vn:
        try:
            return settled_count(vn, run)
        except sqlite3.OperationalError:
            return 0


if __name__ == "__main__":
    sys.exit(main())
