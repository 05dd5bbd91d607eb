"""Envelope throughput per core: seal / open beside raw Ed25519 and raw HPKE on the same payloads.

    python bench/bench_envelope.py [--seconds 2] [--sizes 1024,8192,65536] [--json] [--hsm | --hsm-only]

Single process, single thread (= one core). For each payload size it measures, in the same run:
  raw Ed25519 sign, raw Ed25519 verify, raw HPKE seal, raw HPKE open (cryptography, same suite),
  envelope seal, envelope open (no replay store), envelope open + SQLite replay check + remember
  (one transaction per message, WAL, synchronous=FULL, on the temp directory's disk; and batched,
  100 remembers per transaction, as a connector committing per batch would),
  and a receipt round (make_receipt + seal_receipt + open_receipt).
The raw baselines show what the primitives alone cost: seal ~ sign + HPKE seal, open ~ HPKE open + verify.

Suite v2 (batch, docs/envelope.md §8), in the same run and per envelope, at each of ``--batch-sizes``
(default 1,16,64,256): BatchSealer seal, open of the whole batch with one shared BatchCache (one HPKE open
and one verify per batch), and open of one envelope alone (fresh cache: the lost-batch-mates worst case),
beside the raw per-envelope symmetric work (HKDF + AES-256-GCM) and v1 seal/open.
With ``--hsm`` (needs SoftHSM2 + python-pkcs11; a throwaway token in a temporary SOFTHSM2_CONF) it also
measures, in the same run, Ed25519 signing in the PKCS#11 token beside software signing of the same message,
and envelope seal with the signing key in the token beside seal in software (1 KiB payload).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from xborder_gateway.envelope import (
    BatchCache,
    BatchSealer,
    LocalAuthority,
    SqliteReplayStore,
    TrustStore,
    make_generation,
    make_receipt,
    open_envelope,
    open_receipt,
    seal,
    seal_receipt,
)

FP = bytes.fromhex("0102030405060708")
BATCH = 100


def rate(fn: Callable[[], object], seconds: float) -> tuple[float, int]:
    """Calls per second of ``fn`` over about ``seconds`` (after a short warm-up)."""
    for _ in range(20):
        fn()
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    batch = 50
    while True:
        for _ in range(batch):
            fn()
        n += batch
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start), n


def cpu_rate(fn: Callable[[], object], seconds: float) -> tuple[float, int]:
    """Calls per second of this process's **CPU time** (``time.process_time``) over about ``seconds`` of it.

    On a machine shared with other work, wall-clock rates swing with the load; CPU time per call is what one
    core spends and stays comparable between figures of one run (the v2 comparison uses it).
    """
    for _ in range(5):
        fn()
    n, start = 0, time.process_time()
    while True:
        fn()
        n += 1
        used = time.process_time() - start
        if used >= seconds and n >= 10:
            return n / used, n


@dataclass(frozen=True)
class Keys:
    vn: LocalAuthority
    cn: LocalAuthority
    vn_trust: TrustStore
    cn_trust: TrustStore
    suite: hpke.Suite
    sk: Ed25519PrivateKey
    pk: Ed25519PublicKey
    xsk: X25519PrivateKey
    xpk: X25519PublicKey
    info: bytes

    @classmethod
    def make(cls, now: datetime) -> Keys:
        vn_gen = make_generation("VN", not_before=now - timedelta(days=1))
        cn_gen = make_generation("CN", not_before=now - timedelta(days=1))
        return cls(
            LocalAuthority("VN", [vn_gen]), LocalAuthority("CN", [cn_gen]),
            TrustStore([cn_gen.certificate]), TrustStore([vn_gen.certificate]),
            hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
            vn_gen.signing_private, vn_gen.certificate.signing_key,
            cn_gen.encryption_private, cn_gen.certificate.encryption_key,
            b"xbge/v1/info\x00" + bytes(32),
        )


def measure_v2(size: int, k: Keys, seconds: float, batch_sizes: list[int]) -> list[dict[str, object]]:
    """Suite v2 per envelope at each batch size, beside v1 and the raw symmetric work, in this run."""
    vn, cn, vn_trust, cn_trust = k.vn, k.cn, k.vn_trust, k.cn_trust
    payload = b"\xc3\x01" + FP + os.urandom(max(size - 10, 0))
    v1 = seal(payload, sender=vn, recipient="CN", trust=vn_trust, document_type="IDA", schema_fingerprint=FP)
    secret, aad = os.urandom(32), b"h" * 140

    def raw_symmetric() -> None:
        okm = HKDF(algorithm=hashes.SHA256(), length=44, salt=b"b" * 16, info=b"i" * 69).derive(secret)
        AESGCM(okm[:32]).encrypt(okm[32:], payload, aad)

    figures: list[tuple[str, Callable[[], object], int]] = [
        ("v1 seal", lambda: seal(payload, sender=vn, recipient="CN", trust=vn_trust, document_type="IDA",
                                 schema_fingerprint=FP), 1),
        ("v1 open", lambda: open_envelope(v1.data, me=cn, trust=cn_trust, replay=None), 1),
        ("raw HKDF + AES-256-GCM seal (v2 per-envelope floor)", raw_symmetric, 1),
    ]
    from xborder_gateway import avro
    from xborder_gateway.envelope import BusinessDecision, add_receipt

    def v1_round() -> None:
        """One declaration's envelope work today: seal, open, receipt and business response sealed + opened."""
        s1 = seal(payload, sender=vn, recipient="CN", trust=vn_trust, document_type="IDA", schema_fingerprint=FP)
        o = open_envelope(s1.data, me=cn, trust=cn_trust, replay=None)
        r = seal_receipt(make_receipt(o, receiver="CN", outcome="ACK"), me=cn, trust=cn_trust)
        open_receipt(r.data, me=vn, trust=vn_trust, replay=None)
        br = avro.encode("BusinessResponse", {"message_id": str(o.message_id), "business_key": "1", "document_type":
                                              "IDA", "status": "ACCEPTED", "reasons": [],
                                              "responded_at": datetime.now(UTC)})
        b = seal(br, sender=cn, recipient="VN", trust=cn_trust, document_type="BUSINESS_RESPONSE",
                 schema_fingerprint=br[2:10])
        open_envelope(b.data, me=vn, trust=vn_trust, replay=None)

    def v2_round(n: int) -> None:
        """The same for n declarations with suite v2 and Receipt v2 carrying the decision (one answer each)."""
        out = _seal_batch(vn, vn_trust, payload, n)
        cn_cache, vn_cache = BatchCache(), BatchCache()
        answers = BatchSealer(sender=cn, recipient="VN", trust=cn_trust)
        for e in out:
            o = open_envelope(e.data, me=cn, trust=cn_trust, replay=None, batch_cache=cn_cache)
            add_receipt(answers, make_receipt(o, receiver="CN", outcome="ACK", decision=BusinessDecision("ACCEPTED")))
        for r in answers.seal():
            open_receipt(r.data, me=vn, trust=vn_trust, replay=None, batch_cache=vn_cache)

    figures.append(("v1 declaration round (seal, open, receipt + business response)", v1_round, 1))
    for n in batch_sizes:
        figures.append((f"v2 declaration round, batch {n} (Receipt v2 with decision)",
                        lambda n=n: v2_round(n), n))
    for n in batch_sizes:
        def seal_batch(n: int = n) -> list[Any]:
            return _seal_batch(vn, vn_trust, payload, n)

        batch = [e.data for e in _seal_batch(vn, vn_trust, payload, n)]

        def open_batch(batch: list[bytes] = batch) -> None:
            cache = BatchCache()
            for data in batch:
                open_envelope(data, me=cn, trust=cn_trust, replay=None, batch_cache=cache)

        def open_alone(data: bytes = batch[-1]) -> None:
            open_envelope(data, me=cn, trust=cn_trust, replay=None, batch_cache=BatchCache())

        figures += [(f"v2 seal, batch {n}", seal_batch, n), (f"v2 open, batch {n} (shared cache)", open_batch, n),
                    (f"v2 open one alone, batch {n} (fresh cache)", open_alone, 1)]
    print(f"\nsuite v2, payload {size} bytes (per envelope or declaration; rates per second of CPU time)")
    results: list[dict[str, object]] = []
    for name, fn, per_call in figures:
        per_s, calls = cpu_rate(fn, seconds)
        per_s, n_env = per_s * per_call, calls * per_call
        print(f"  {name:62s} {per_s:10,.0f} /s  {1e6 / per_s:8.1f} µs CPU  (n={n_env})")
        results.append({"payload_bytes": size, "figure": name, "per_cpu_second": round(per_s), "n": n_env,
                        "suite": 2 if name.startswith("v2") else 1})
    return results


def _seal_batch(vn: LocalAuthority, vn_trust: TrustStore, payload: bytes, n: int) -> list[Any]:
    sealer = BatchSealer(sender=vn, recipient="CN", trust=vn_trust)
    for _ in range(n):
        sealer.add(payload, document_type="IDA", schema_fingerprint=FP)
    return list(sealer.seal())


def measure_size(size: int, k: Keys, seconds: float, tmp: Path) -> list[dict[str, object]]:
    """All figures for one payload size (closures bind this call's locals)."""
    vn, cn, vn_trust, cn_trust = k.vn, k.cn, k.vn_trust, k.cn_trust
    suite, sk, pk, xsk, xpk, info = k.suite, k.sk, k.pk, k.xsk, k.xpk, k.info
    results: list[dict[str, object]] = []
    payload = b"\xc3\x01" + FP + os.urandom(max(size - 10, 0))
    msg = b"x" * 38 + b"h" * 124 + hashlib.sha256(payload).digest()
    sig = sk.sign(msg)
    raw_ct = suite.encrypt(sig + payload, xpk, info=info)
    sealed = seal(payload, sender=vn, recipient="CN", trust=vn_trust, document_type="IDA",
                  schema_fingerprint=FP)
    store = SqliteReplayStore(tmp / f"replay-{size}.sqlite")

    def open_with_replay() -> None:
        s = seal(payload, sender=vn, recipient="CN", trust=vn_trust, document_type="IDA", schema_fingerprint=FP)
        opened = open_envelope(s.data, me=cn, trust=cn_trust, replay=store)
        store.remember(opened.header, opened.sha256)

    def batch_with_replay() -> None:
        opened = []
        for _ in range(BATCH):
            s = seal(payload, sender=vn, recipient="CN", trust=vn_trust, document_type="IDA", schema_fingerprint=FP)
            opened.append(open_envelope(s.data, me=cn, trust=cn_trust, replay=store))
        with store.transaction() as conn:
            for o in opened:
                store.remember(o.header, o.sha256, conn=conn)

    opened_once = open_envelope(sealed.data, me=cn, trust=cn_trust, replay=None)

    def receipt_round() -> None:
        record = make_receipt(opened_once, receiver="CN", outcome="ACK")
        r = seal_receipt(record, me=cn, trust=cn_trust)
        open_receipt(r.data, me=vn, trust=vn_trust, replay=None)

    figures = {
        "raw Ed25519 sign (label+H+SHA-256(payload))": lambda: sk.sign(
            msg[:-32] + hashlib.sha256(payload).digest()),
        "raw Ed25519 verify": lambda: pk.verify(sig, msg[:-32] + hashlib.sha256(payload).digest()),
        "raw HPKE seal (sig+payload)": lambda: suite.encrypt(sig + payload, xpk, info=info),
        "raw HPKE open": lambda: suite.decrypt(raw_ct, xsk, info=info),
        "envelope seal": lambda: seal(payload, sender=vn, recipient="CN", trust=vn_trust, document_type="IDA",
                                      schema_fingerprint=FP),
        "envelope open (no replay store)": lambda: open_envelope(sealed.data, me=cn, trust=cn_trust, replay=None),
        "envelope seal + open + SQLite replay check/remember": open_with_replay,
        f"  same, remembered {BATCH} per SQLite transaction": batch_with_replay,
        "receipt: make + seal + open": receipt_round,
    }
    print(f"\npayload {size} bytes (envelope {len(sealed.data)} bytes)")
    for name, fn in figures.items():
        per_s, n = rate(fn, seconds)
        if name.startswith("  same"):
            per_s, n = per_s * BATCH, n * BATCH
        print(f"  {name:55s} {per_s:10,.0f} /s  {1e6 / per_s:8.1f} µs  (n={n})")
        results.append({"payload_bytes": size, "figure": name, "per_second": round(per_s), "n": n})
    store.close()
    return results


def measure_hsm(seconds: float, now: datetime) -> list[dict[str, object]]:
    """HSM (PKCS#11, SoftHSM2) signing beside software signing, and seal with each, same message and payload."""
    import shutil
    import subprocess

    from xborder_gateway.signing import SOFTHSM_MODULES, HsmConfig, generate_hsm_key

    module = next((m for m in SOFTHSM_MODULES if Path(m).exists()), None)
    if module is None or shutil.which("softhsm2-util") is None:
        print("\nHSM: softhsm2 is not installed (scripts/softhsm.sh); skipped", file=sys.stderr)
        return []
    tmp = Path(tempfile.mkdtemp(prefix="xbg-bench-hsm-"))
    (tmp / "tokens").mkdir()
    conf = tmp / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # before the module is loaded: it reads it in C_Initialize
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "bench", "--so-pin", "12345678",
                    "--pin", "87654321"], check=True, capture_output=True)
    cfg = HsmConfig(Path(module), "bench", "87654321")
    hsm_signer = generate_hsm_key(cfg, "bench-sign")
    software = Ed25519PrivateKey.generate()
    vn_hsm = make_generation("VN", not_before=now - timedelta(days=1), hsm_signer=hsm_signer)
    vn_sw = make_generation("VN", not_before=now - timedelta(days=1))
    cn_gen = make_generation("CN", not_before=now - timedelta(days=1))
    vn_trust = TrustStore([cn_gen.certificate])
    me_hsm, me_sw = LocalAuthority("VN", [vn_hsm]), LocalAuthority("VN", [vn_sw])
    payload = b"\xc3\x01" + FP + os.urandom(1014)
    msg = b"x" * 38 + b"h" * 124 + hashlib.sha256(payload).digest()
    figures = {
        "Ed25519 sign in software (cryptography)": lambda: software.sign(msg),
        "Ed25519 sign in the PKCS#11 token (SoftHSM2, CKM_EDDSA)": lambda: hsm_signer.sign(msg),
        "envelope seal, signing key in software": lambda: seal(
            payload, sender=me_sw, recipient="CN", trust=vn_trust, document_type="IDA", schema_fingerprint=FP),
        "envelope seal, signing key in the token": lambda: seal(
            payload, sender=me_hsm, recipient="CN", trust=vn_trust, document_type="IDA", schema_fingerprint=FP),
    }
    print(f"\nHSM vs software signing ({module}), payload 1024 bytes")
    results: list[dict[str, object]] = []
    rates: dict[str, float] = {}
    for name, fn in figures.items():
        per_s, n = rate(fn, seconds)
        rates[name] = per_s
        print(f"  {name:55s} {per_s:10,.0f} /s  {1e6 / per_s:8.1f} µs  (n={n})")
        results.append({"payload_bytes": 1024, "figure": name, "per_second": round(per_s), "n": n})
    names = list(figures)
    print(f"  token sign / software sign: {rates[names[1]] / rates[names[0]]:.3f} of the rate; "
          f"seal with the token / seal in software: {rates[names[3]] / rates[names[2]]:.3f}")
    shutil.rmtree(tmp, ignore_errors=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per figure")
    parser.add_argument("--sizes", default="1024,8192,65536", help="payload sizes in bytes (comma-separated)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument("--batch-sizes", default="1,16,64,256", help="suite v2 batch sizes (comma-separated)")
    parser.add_argument("--v2-only", action="store_true", help="only the suite v2 comparison (with v1 beside it)")
    parser.add_argument("--hsm", action="store_true", help="also measure signing in a SoftHSM2 token")
    parser.add_argument("--hsm-only", action="store_true", help="only the HSM vs software figures")
    args = parser.parse_args()

    now = datetime.now(UTC)
    keys = Keys.make(now)

    print(f"# envelope benchmark  python {platform.python_version()}  {platform.machine()}  "
          f"cpus={os.cpu_count()}  one thread  {args.seconds:.1f} s per figure", file=sys.stderr)
    results: list[dict[str, object]] = []
    tmp = Path(tempfile.mkdtemp(prefix="xbg-bench-env-"))
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    if not args.hsm_only:
        for size in (int(s) for s in args.sizes.split(",")):
            if not args.v2_only:
                results += measure_size(size, keys, args.seconds, tmp)
            results += measure_v2(size, keys, args.seconds, batch_sizes)
    if args.hsm or args.hsm_only:
        results += measure_hsm(args.seconds, now)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
