"""Audit log benchmark: appends/s (batched and single) and proof time as the log grows to 10^7 entries.

    python bench/bench_audit.py                     # SQLite, milestones 10^3 .. 10^7 (≈ 6 min, ≈ 11 GB temp)
    python bench/bench_audit.py --max-size 100000   # quick
    XBG_POSTGRES_URL=postgresql://… python bench/bench_audit.py --postgres --max-size 1000000

Baselines measured in the same run: SHA-256 of the entries alone (hashlib), the same rows inserted into a
bare SQLite table with the same durability (WAL, synchronous=FULL, one transaction per batch), and one
primary-key point read (a proof reads O(log n) of those). The log is built with the real append path
(batches of 250); building is *not* timed as proof time; at each milestone (10^3, 10^4, …) proofs for
random entries at the current size are timed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from xborder_gateway.audit import AuditEvent, AuditLog, EventType, merkle
from xborder_gateway.config import Settings

TYPES = list(EventType)


def event(i: int, authority: str = "VN") -> AuditEvent:
    """A realistic event: ids, three digests, key ids, Kafka coordinates (≈ 560 bytes canonical)."""
    h = hashlib.sha256(i.to_bytes(8, "big")).hexdigest()
    return AuditEvent(
        time=datetime.now(UTC), authority=authority, process="outbound", event_type=TYPES[i % len(TYPES)],
        message_id=str(uuid.UUID(int=i)), business_key=f"{305000000000 + i // 6}", document_type="IDA",
        raw_sha256=h, payload_sha256=h, envelope_sha256=h, signing_key_id=h[:32], encryption_key_id=h[32:],
        kafka_topic="xb.vn-cn.exchange", kafka_partition=i % 3, kafka_offset=i, outcome="ok",
    )


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>10,.0f}/s"


def baselines(events: list[AuditEvent], workdir: Path, batch: int) -> None:
    entries = [e.canonical_bytes() for e in events]
    t = time.perf_counter()
    for e in entries:
        hashlib.sha256(b"\x00" + e).digest()
    print(f"  baseline sha256 of the entries (hashlib)           {rate(len(entries), time.perf_counter() - t)}")
    t = time.perf_counter()
    built = [e.canonical_bytes() for e in events]
    print(f"  baseline canonical encoding (pydantic model → JSON) {rate(len(built), time.perf_counter() - t)}")
    conn = sqlite3.connect(workdir / "baseline.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL) STRICT")
    t = time.perf_counter()
    for start in range(0, len(entries), batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO t VALUES (?, ?)", enumerate(entries[start:start + batch], start))
        conn.execute("COMMIT")
    print(f"  baseline bare SQLite insert, batches of {batch}        {rate(len(entries), time.perf_counter() - t)}")
    t = time.perf_counter()
    n_single = 300
    for i in range(n_single):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?)", (len(entries) + i, entries[i]))
        conn.execute("COMMIT")
    print(f"  baseline bare SQLite insert, 1 row per commit      {rate(n_single, time.perf_counter() - t)}")
    conn.close()


def bench_appends(settings: Settings, events: list[AuditEvent], batch: int) -> None:
    with AuditLog.open(settings, "VN") as log:
        t = time.perf_counter()
        for start in range(0, len(events), batch):
            log.append(events[start:start + batch])
        dt = time.perf_counter() - t
        print(f"  AuditLog.append, batches of {batch} ({len(events):,} events) {rate(len(events), dt)}"
              f"   ({len(log.checkpoints())} checkpoints signed on the way)")
        n_single = 300
        t = time.perf_counter()
        for i in range(n_single):
            log.append([events[i]])
        print(f"  AuditLog.append, 1 event per call                  {rate(n_single, time.perf_counter() - t)}")


def time_proofs(log: AuditLog, size: int, samples: int) -> tuple[float, float, float, float]:
    rng = random.Random(size)
    inc: list[float] = []
    cons: list[float] = []
    nodes = 0
    root = log.root(size)
    for _ in range(samples):
        index = rng.randrange(size)
        t = time.perf_counter()
        proof = log.inclusion_proof(index, size)
        inc.append(time.perf_counter() - t)
        if not proof.verify(root):
            raise SystemExit(f"inclusion proof {index}/{size} does not verify")
        nodes += sum(len(merkle.range_nodes(a, b)) for a, b in merkle.inclusion_ranges(index, size)) + 1
        old = rng.randrange(1, size + 1)
        t = time.perf_counter()
        cp = log.consistency_proof(old, size)
        cons.append(time.perf_counter() - t)
        if not cp.verify():
            raise SystemExit(f"consistency proof {old}->{size} does not verify")
    inc.sort()
    return statistics.median(inc) * 1e6, inc[int(len(inc) * 0.99)] * 1e6, statistics.median(cons) * 1e6, nodes / samples


def point_read_us(settings: Settings, size: int) -> float:
    """Baseline: one primary-key read of a leaf hash (a proof needs O(log n) of them, in one query)."""
    rng = random.Random(1)
    keys = [rng.randrange(size) for _ in range(2000)]
    if settings.audit_url:
        import psycopg

        with psycopg.connect(settings.audit_url, autocommit=True) as pg:
            table = f"{settings.audit_pg_schema}_vn.nodes"
            t = time.perf_counter()
            for k in keys:
                pg.execute(f"SELECT hash FROM {table} WHERE level = 0 AND idx = %s", (k,)).fetchone()  # noqa: S608
            return (time.perf_counter() - t) / len(keys) * 1e6
    conn = sqlite3.connect(settings.audit_db("VN"))
    t = time.perf_counter()
    for k in keys:
        conn.execute("SELECT hash FROM nodes WHERE level = 0 AND idx = ?", (k,)).fetchone()
    conn.close()
    return (time.perf_counter() - t) / len(keys) * 1e6


def bench_growth(settings: Settings, max_size: int, batch: int, samples: int) -> None:
    milestones = [10**k for k in range(3, 9) if 10**k <= max_size]
    print(f"\nproof time as the log grows (inclusion + consistency, {samples} random proofs per size, "
          "times exclude building)")
    print(f"  {'size':>12} {'incl. median':>13} {'incl. p99':>10} {'cons. median':>13} {'nodes/proof':>12} "
          f"{'1 point read':>13} {'built in':>10}")
    build_total = 0.0
    with AuditLog.open(settings, "VN") as log:
        size = log.size()
        for target in milestones:
            t = time.perf_counter()
            while size < target:
                n = min(batch, target - size)
                log.append([event(i) for i in range(size, size + n)])
                size += n
            build_total += time.perf_counter() - t
            med, p99, cmed, nodes = time_proofs(log, size, samples)
            print(f"  {size:>12,} {med:>11.0f}µs {p99:>8.0f}µs {cmed:>11.0f}µs {nodes:>12.1f} "
                  f"{point_read_us(settings, size):>11.1f}µs {build_total:>9.0f}s", flush=True)
        print(f"  (building {size:,} entries through AuditLog.append took {build_total:.0f} s in total, "
              f"{size / build_total:,.0f} events/s including event construction)")
        if size <= 1_000_000:
            t = time.perf_counter()
            report = log.verify()
            print(f"  full verify of {report.size:,} entries: {time.perf_counter() - t:.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-size", type=int, default=10_000_000, help="largest milestone (default 10^7)")
    parser.add_argument("--append-events", type=int, default=50_000, help="events for the append-rate part")
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--samples", type=int, default=500, help="proofs timed per milestone")
    parser.add_argument("--postgres", action="store_true", help="use $XBG_POSTGRES_URL instead of SQLite")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    url = os.environ.get("XBG_POSTGRES_URL") if args.postgres else None
    if args.postgres and not url:
        print("--postgres needs XBG_POSTGRES_URL (scripts/postgres.sh DIR prints one)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-audit-", dir=args.dir) as tmp:
        work = Path(tmp)
        if not url:  # SQLite needs ≈ 1.1 KB per entry (ADR 0302); do not fill the disk
            free = shutil.disk_usage(work).free
            fits = int(free * 0.8 / 1100)
            while args.max_size > 1000 and args.max_size > fits:
                args.max_size //= 10
                print(f"note: {free / 1e9:.1f} GB free in {work.parent}: largest milestone lowered to "
                      f"{args.max_size:,} (use --dir on a larger disk)", file=sys.stderr)
        print(f"audit benchmark — {'PostgreSQL' if url else 'SQLite'}, python {sys.version.split()[0]}, "
              f"{os.cpu_count()} cores")
        events = [event(i) for i in range(args.append_events)]
        print(f"\nappends (canonical entry ≈ {len(events[0].canonical_bytes())} bytes)")
        baselines(events, work, args.batch)

        def settings(name: str) -> Settings:
            schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
            # the checkpoint key is never written in the clear (issue 9 item 5): a throwaway passphrase
            return Settings(home=work / name, audit_url=url, audit_pg_schema=schema,
                            key_passphrase=os.environ.get("XBG_KEY_PASSPHRASE") or "bench-audit")

        bench_appends(settings("appends"), events, args.batch)
        bench_growth(settings("growth"), args.max_size, args.batch, args.samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
