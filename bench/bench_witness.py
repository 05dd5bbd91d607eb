"""Witness cost per checkpoint (issue 12): what cross-witnessing adds to each signed checkpoint.

    python bench/bench_witness.py                    # 200 checkpoints of 100 entries (≈ 20 s)
    python bench/bench_witness.py --checkpoints 50

Measured per checkpoint, on the real code paths: the log's submission (the checkpoint note and a
consistency proof from the witness's last size), the witness's ``process`` (log signature, proof,
compare-and-set on its SQLite record with synchronous=FULL, cosignature), and the log's
``add_cosignature`` (verify + durable insert). Same-run baselines: one Ed25519 sign + verify of the
note (the cryptographic floor of a cosignature) and the log's own checkpoint signing (``checkpoint_now``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from xborder_gateway.audit import AuditEvent, AuditLog, EventType
from xborder_gateway.audit.cosignature import CosignatureSigner
from xborder_gateway.audit.witness import Cosigned, Witness, WitnessStore
from xborder_gateway.config import Settings


def _events(start: int, n: int) -> list[AuditEvent]:
    t0 = datetime(2026, 11, 25, tzinfo=UTC)
    return [AuditEvent(time=t0 + timedelta(milliseconds=i), authority="VN", process="outbound",
                       event_type=EventType.SENT, message_id=f"m{i}", business_key=f"3051{i:08d}",
                       raw_sha256=f"{i:064x}", kafka_topic="vn.declarations.raw", kafka_partition=0,
                       kafka_offset=i) for i in range(start, start + n)]


def _ms(samples: list[float]) -> str:
    p95 = sorted(samples)[int(len(samples) * 0.95)]
    return f"median {statistics.median(samples) * 1e3:7.3f} ms  p95 {p95 * 1e3:7.3f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", type=int, default=200)
    ap.add_argument("--entries", type=int, default=100, help="entries per checkpoint")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="xbg-bench-witness-") as tmp:
        settings = Settings(home=Path(tmp) / "vn", audit_url=None, audit_checkpoint_entries=10**9,
                            audit_checkpoint_seconds=10**6)
        signer = CosignatureSigner("bench/witness", Ed25519PrivateKey.generate())
        baseline_key = Ed25519PrivateKey.generate()
        sign_cp, submit, process, store, floor = [], [], [], [], []
        with AuditLog.open(settings, "VN", background_checkpoints=False) as log:
            assert log.verifier is not None
            witness = Witness(signer, {log.origin: log.verifier}, WitnessStore(Path(tmp) / "witness.sqlite"))
            for k in range(args.checkpoints):
                log.append(_events(k * args.entries, args.entries))
                t = time.perf_counter()
                cp = log.checkpoint_now() or log.latest_checkpoint()  # the very first is signed by append
                sign_cp.append(time.perf_counter() - t)
                assert cp is not None
                latest = witness.store.latest(log.origin)
                t = time.perf_counter()
                body = log.submission(latest[0] if latest else 0)
                submit.append(time.perf_counter() - t)
                t = time.perf_counter()
                result = witness.process_submission(body)
                process.append(time.perf_counter() - t)
                assert isinstance(result, Cosigned), result
                t = time.perf_counter()
                log.add_cosignature(result.size, result.line, signer.verifier)
                store.append(time.perf_counter() - t)
                text = cp.checkpoint.to_text().encode()
                t = time.perf_counter()
                baseline_key.public_key().verify(baseline_key.sign(text), text)
                floor.append(time.perf_counter() - t)
            witness.store.close()
    print(f"{args.checkpoints} checkpoints of {args.entries} entries (log size {args.checkpoints * args.entries})")
    print(f"  baseline Ed25519 sign+verify      {_ms(floor)}")
    print(f"  baseline log checkpoint_now       {_ms(sign_cp)}")
    print(f"  submission (note + proof)         {_ms(submit)}")
    print(f"  witness.process (verify+CAS+sign) {_ms(process)}")
    print(f"  log.add_cosignature               {_ms(store)}")
    total = [a + b + c for a, b, c in zip(submit, process, store, strict=True)]
    print(f"  added per checkpoint (sum)        {_ms(total)}")


if __name__ == "__main__":
    main()
