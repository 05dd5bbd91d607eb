"""Vehicle declarations arriving before their declarations: outcomes and cost of today's endpoint step
(BIZ-2/3 on arrival, declarations registered with INSERT OR IGNORE) beside the PENDING store
(exchange/_pending.py), on the same arrival order, in the same run.

    python bench/bench_pending.py [--count 500] [--seed 7] [--max-delay-s 60] [--grace-s 600] [--json]

The stream is generate_mix(count, seed) (invalid documents are refused at intake and never arrive). Each
document is created one second after the previous; it arrives after the delay of its partition (one of 6,
drawn per run) plus a jitter, both up to --max-delay-s, so vehicles often overtake their declarations.
Both paths run in one SQLite transaction per 100 arrivals on a file in a temporary directory; the PENDING
path ticks expire() every 10 s of simulated time and drains until every grace period has passed.
Timing: wall time of each whole pass, best of 3, per arrival.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xborder_gateway.documents import translate_xml
from xborder_gateway.errors import GatewayError
from xborder_gateway.exchange import CN_SCHEMA, MANIFEST_TYPES, KnownDeclaration, decide
from xborder_gateway.exchange._pending import PENDING_SCHEMA, expire, register_declaration, submit_vehicle
from xborder_gateway.samples import generate_mix

Arrival = tuple[int, str, str, Mapping[str, Any]]


def _arrivals(count: int, seed: int, max_delay_ms: int) -> list[Arrival]:
    rng = random.Random(seed)
    partition = [rng.randint(0, max_delay_ms) for _ in range(6)]
    out: list[Arrival] = []
    for i, sample in enumerate(generate_mix(count, seed)):
        try:
            doc = translate_xml(sample.xml)
        except GatewayError:
            continue
        at = i * 1000 + partition[rng.randrange(6)] + rng.randint(0, max_delay_ms)
        out.append((at, doc.doc_type, doc.business_key, doc.values))
    out.sort(key=lambda a: a[0])
    return out


def _outcome(status: str, reasons: tuple[tuple[str, str], ...]) -> str:
    return f"{status} {','.join(sorted({c for c, _t in reasons}))}".strip()


def _baseline(conn: sqlite3.Connection, arrivals: list[Arrival]) -> Counter[str]:
    out: Counter[str] = Counter()

    def lookup(key: str) -> KnownDeclaration | None:
        row = conn.execute("SELECT gross_weight_kg FROM cn_declarations WHERE business_key = ?", (key,)).fetchone()
        return None if row is None else KnownDeclaration(key, None if row[0] is None else row[0])

    for n, (_at, doc_type, key, record) in enumerate(arrivals):
        if doc_type in MANIFEST_TYPES:
            d = decide(doc_type, record, lookup=lookup)
            out[_outcome(d.status, d.reasons)] += 1
        else:
            w = record.get("gross_weight_kg")
            conn.execute("INSERT OR IGNORE INTO cn_declarations (business_key, doc_type, gross_weight_kg, message_id) "
                         "VALUES (?, ?, ?, ?)", (key, doc_type, None if w is None else str(w), f"m{n}"))
        if n % 100 == 99:
            conn.commit()
    conn.commit()
    return out


def _pending(conn: sqlite3.Connection, arrivals: list[Arrival], grace_s: float) -> tuple[Counter[str], int]:
    out: Counter[str] = Counter()
    was_pending = 0
    tick = arrivals[0][0] if arrivals else 0
    for n, (at, doc_type, key, record) in enumerate(arrivals):
        while tick <= at:
            out.update(_outcome(d.decision.status, d.decision.reasons) for d in expire(conn, tick, grace_s=grace_s))
            tick += 10_000
        if doc_type in MANIFEST_TYPES:
            v = submit_vehicle(conn, business_key=key, version=1, document_type=doc_type, message_id=f"m{n}",
                               linked=[str(k) for k in record.get("linked_declarations") or ()],
                               gross_weight_kg=record.get("gross_weight_kg"), processed_ms=at, grace_s=grace_s)
            if v.pending:
                was_pending += 1
            else:
                out[_outcome(v.decision.status, v.decision.reasons)] += 1
        else:
            _v, ds = register_declaration(conn, business_key=key, version=1, document_type=doc_type,
                                          message_id=f"m{n}", gross_weight_kg=record.get("gross_weight_kg"),
                                          now_ms=at, grace_s=grace_s)
            out.update(_outcome(d.decision.status, d.decision.reasons) for d in ds)
        if n % 100 == 99:
            conn.commit()
    end = (arrivals[-1][0] if arrivals else 0) + int(grace_s * 1000)
    out.update(_outcome(d.decision.status, d.decision.reasons) for d in expire(conn, end, grace_s=grace_s))
    conn.commit()
    return out, was_pending


def _db(tmp: Path, name: str) -> sqlite3.Connection:
    conn = sqlite3.connect(tmp / name)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(CN_SCHEMA + PENDING_SCHEMA)
    return conn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-delay-s", type=float, default=60.0)
    parser.add_argument("--grace-s", type=float, default=600.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    arrivals = _arrivals(args.count, args.seed, int(args.max_delay_s * 1000))
    vehicles = sum(1 for a in arrivals if a[1] in MANIFEST_TYPES)
    best_base = best_pend = float("inf")
    base: Counter[str] = Counter()
    pend: Counter[str] = Counter()
    was_pending = 0
    for run in range(3):
        with tempfile.TemporaryDirectory(prefix="xbg-bench-pending-") as d:
            c1, c2 = _db(Path(d), f"base{run}.db"), _db(Path(d), f"pend{run}.db")
            t = time.perf_counter()
            base = _baseline(c1, arrivals)
            best_base = min(best_base, time.perf_counter() - t)
            t = time.perf_counter()
            pend, was_pending = _pending(c2, arrivals, args.grace_s)
            best_pend = min(best_pend, time.perf_counter() - t)
            c1.close()
            c2.close()
    n = max(len(arrivals), 1)
    result = {
        "arrivals": len(arrivals), "vehicles": vehicles, "count": args.count, "seed": args.seed,
        "max_delay_s": args.max_delay_s, "grace_s": args.grace_s,
        "baseline_vehicle_outcomes": dict(sorted(base.items())),
        "pending_vehicle_outcomes": dict(sorted(pend.items())),
        "vehicles_pending_at_arrival": was_pending,
        "us_per_arrival_baseline": round(best_base / n * 1e6, 1),
        "us_per_arrival_pending": round(best_pend / n * 1e6, 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{len(arrivals)} arrivals ({vehicles} vehicle declarations) of generate_mix({args.count}, "
          f"seed={args.seed}), delays up to {args.max_delay_s} s, grace {args.grace_s} s")
    for name in ("baseline_vehicle_outcomes", "pending_vehicle_outcomes"):
        print(f"  {name}:")
        for outcome, k in result[name].items():  # type: ignore[attr-defined]
            print(f"    {k:5d}  {outcome}")
    print(f"  vehicles PENDING when they arrived: {was_pending}")
    print(f"  per arrival: baseline {result['us_per_arrival_baseline']} µs, PENDING store "
          f"{result['us_per_arrival_pending']} µs")


if __name__ == "__main__":
    main()
