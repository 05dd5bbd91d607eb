"""SQLite statements and CPU per declaration of the endpoint's and the receipt tracker's batch path (issue 13
item 4), in process, no broker.

    python bench/bench_state.py [--count 600] [--batch 100] [--seed 13] [--repeat 5] [--json]

The stream is ``generate_mix(count, seed, invalid_ratio=0)`` (trucks of 1-3 goods declarations and the
TIR linking them), translated and sealed once by the outbound processor (the configured envelope suite:
v2 by default). Then, on fresh state databases, per repetition:

- endpoint: ``NanningProcessor.process`` over the sealed envelopes in batches of ``--batch``;
- tracker: ``ReceiptTracker.consume`` of each batch of sent envelopes (the exchange topic) and then of the
  endpoint's answers to it (the receipts topic).

Statements are counted with ``sqlite3.Connection.set_trace_callback`` on the processor's own connection
(every statement SQLite runs, BEGIN/COMMIT/SAVEPOINT included; an ``executemany`` counts once per row). CPU is
``time.process_time()`` of the batch calls only (the machine is shared: CPU, not wall time), best of
``--repeat``; it includes the envelope work (open, verify, seal), which this change does not touch.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xborder_gateway.config import Settings, load_settings
from xborder_gateway.connectors import Faults, NanningProcessor, OutboundProcessor, ReceiptTracker
from xborder_gateway.envelope import LocalAuthority, TrustStore, export_bundle, import_bundle, init_authority
from xborder_gateway.samples import generate_mix
from xborder_gateway.transport import Incoming, Outgoing

PASSPHRASE = b"bench-state-passphrase"


@dataclass
class Home:
    settings: Settings
    vn: LocalAuthority
    vn_trust: TrustStore
    cn: LocalAuthority
    cn_trust: TrustStore


@dataclass
class Figures:
    """One pass over the stream: declarations, statements and CPU seconds of each role."""

    declarations: int
    endpoint_statements: int
    endpoint_cpu_s: float
    tracker_statements: int
    tracker_cpu_s: float

    def per_declaration(self) -> dict[str, float]:
        n = self.declarations
        return {"endpoint_statements": self.endpoint_statements / n,
                "endpoint_cpu_us": self.endpoint_cpu_s / n * 1e6,
                "tracker_statements": self.tracker_statements / n,
                "tracker_cpu_us": self.tracker_cpu_s / n * 1e6}


def make_home(path: Path) -> Home:
    """A home with both authorities' keys and mutual trust (the exchange tests' home)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    pf = path / "passphrase"
    pf.write_bytes(PASSPHRASE + b"\n")
    pf.chmod(0o600)
    settings = load_settings(home=path, key_passphrase_file=pf)
    for authority in ("VN", "CN"):
        init_authority(settings, authority, PASSPHRASE)
    import_bundle(settings, "VN", export_bundle(settings, "CN"))
    import_bundle(settings, "CN", export_bundle(settings, "VN"))
    return Home(settings, LocalAuthority.load(settings, "VN", PASSPHRASE), TrustStore.load(settings, "VN"),
                LocalAuthority.load(settings, "CN", PASSPHRASE), TrustStore.load(settings, "CN"))


def _incoming(out: Outgoing, offset: int) -> Incoming:
    return Incoming(out.topic, 0, offset, out.key, out.value, out.headers, timestamp_ms=int(time.time() * 1000))


def sealed_stream(home: Home, count: int, seed: int) -> list[Incoming]:
    """The stream's envelopes as the exchange topics deliver them (one partition, consecutive offsets)."""
    s = home.settings
    samples = list(generate_mix(count, seed, invalid_ratio=0.0))
    outbound = OutboundProcessor(s, home.vn, home.vn_trust)
    try:
        res = outbound.process([Incoming(s.topic_intake, 0, i, x.business_key.encode(), x.xml)
                                for i, x in enumerate(samples)])
    finally:
        outbound.close()
    sent = [o for o in res.outputs if o.topic in (s.topic_exchange, s.topic_exchange_priority)]
    return [_incoming(o, i) for i, o in enumerate(sent)]


def fresh_state(settings: Settings) -> None:
    """Remove both state databases (the next processors start empty)."""
    for authority in ("VN", "CN"):
        db = settings.state_db(authority)
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)


class StatementCounter:
    """``set_trace_callback`` target: counts every statement SQLite runs on the connection."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, _sql: str) -> None:
        self.count += 1


def run_once(home: Home, stream: Sequence[Incoming], batch: int) -> Figures:
    """One pass on fresh state: the endpoint over the stream, then the tracker over what was sent and answered."""
    s = home.settings
    fresh_state(s)
    endpoint = NanningProcessor(s, home.cn, home.cn_trust, Faults())
    tracker = ReceiptTracker(s, home.vn, home.vn_trust)
    e_count, t_count = StatementCounter(), StatementCounter()
    endpoint.store.connection.set_trace_callback(e_count)
    tracker.conn.set_trace_callback(t_count)
    answers: list[list[Incoming]] = []
    e_cpu = t_cpu = 0.0
    offset = 0
    try:
        for start in range(0, len(stream), batch):
            chunk = stream[start:start + batch]
            t0 = time.process_time()
            res = endpoint.process(chunk)
            e_cpu += time.process_time() - t0
            got = []
            for o in res.outputs:
                if o.topic == s.topic_receipts:
                    got.append(_incoming(o, offset))
                    offset += 1
            answers.append(got)
        for i, start in enumerate(range(0, len(stream), batch)):
            t0 = time.process_time()
            tracker.consume(stream[start:start + batch])
            tracker.consume(answers[i])
            t_cpu += time.process_time() - t0
        processed = endpoint.processed
    finally:
        endpoint.close()
        tracker.close()
    return Figures(processed, e_count.count, e_cpu, t_count.count, t_cpu)


def best(runs: Sequence[Figures]) -> Figures:
    """The least CPU of each role over the runs (the statements are the same in every run)."""
    return Figures(runs[0].declarations, runs[0].endpoint_statements, min(r.endpoint_cpu_s for r in runs),
                   runs[0].tracker_statements, min(r.tracker_cpu_s for r in runs))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="example: python bench/bench_state.py --count 600 --batch 100 --repeat 5")
    p.add_argument("--count", type=int, default=600, help="documents in the stream (default 600)")
    p.add_argument("--batch", type=int, default=100, help="records per batch (default 100)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--repeat", type=int, default=5, help="passes; the best CPU is reported (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="xbg-bench-state-") as tmp:
        home = make_home(Path(tmp) / "home")
        stream = sealed_stream(home, args.count, args.seed)
        runs = [run_once(home, stream, args.batch) for _ in range(args.repeat)]
    fig = best(runs)
    per = fig.per_declaration()
    result: dict[str, Any] = {"declarations": fig.declarations, "batch": args.batch, "repeat": args.repeat,
                              "suite": home.settings.envelope_suite, **{k: round(v, 2) for k, v in per.items()}}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{fig.declarations} declarations, batches of {args.batch}, envelope suite "
              f"v{home.settings.envelope_suite}, best CPU of {args.repeat}")
        print(f"endpoint: {per['endpoint_statements']:6.2f} statements/declaration  "
              f"{per['endpoint_cpu_us']:8.1f} CPU us/declaration")
        print(f"tracker:  {per['tracker_statements']:6.2f} statements/declaration  "
              f"{per['tracker_cpu_us']:8.1f} CPU us/declaration")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
