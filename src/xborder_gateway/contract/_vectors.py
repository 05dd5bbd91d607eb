"""Test vectors a counterpart's implementation checks itself against (``xborder contract vectors``).

Everything is built from **fixed throwaway keys** derived from fixed seed strings (never a home's keys)
and a fixed reference time, so a counterpart can reproduce every verdict. What is fixed and what is not:

* fixed: the private keys, the message ids, the Avro payloads, the checkpoint notes (Ed25519 is
  deterministic), the manifest (inputs, keys, expected verdicts);
* not fixed: the certificates (their serial number is random, as ``make_generation`` draws it) and the
  envelopes (HPKE draws a fresh ephemeral key for every seal, as RFC 9180 requires of a sender). The bytes
  of those differ between two runs; their verdicts do not. The byte-exact known answers of both suites
  are in docs/envelope.md §6 and §8.6.

Expected verdicts are written here, independently of the open functions; ``check_vectors`` runs the
project's own ``open_envelope`` / ``open_receipt`` / ``Checkpoint.open`` over the files and compares.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from xborder_gateway import avro
from xborder_gateway.audit import Checkpoint, NoteSigner, NoteVerifier
from xborder_gateway.audit.merkle import leaf_hash, root_from_leaf_hashes
from xborder_gateway.audit.note import sign_note
from xborder_gateway.envelope import (
    SUITE_V1,
    SUITE_V2,
    BatchCache,
    BatchSealer,
    BusinessDecision,
    EnvelopeOpenError,
    KeyGeneration,
    LocalAuthority,
    MemoryReplayGuard,
    SealedEnvelope,
    TrustStore,
    add_receipt,
    make_generation,
    make_receipt,
    open_envelope,
    open_receipt,
    seal,
    seal_receipt,
)
from xborder_gateway.errors import GatewayError

__all__ = ["MANIFEST_NAME", "REFERENCE_TIME", "VectorResult", "check_vectors", "write_vectors"]

MANIFEST_NAME = "manifest.json"
REFERENCE_TIME = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
"""The "now" every vector is checked at (the manifest's ``reference_time``)."""
_KEY_START = datetime(2026, 11, 1, tzinfo=UTC)
_OLD_KEY_START = datetime(2025, 1, 1, tzinfo=UTC)
_SEED_PREFIX = "xborder-gateway contract vectors/"
_AUDIT_ORIGIN = "xborder-gateway.example/audit"


def _seed(label: str) -> bytes:
    """32 bytes = SHA-256(ASCII ``xborder-gateway contract vectors/<label>``)."""
    return hashlib.sha256((_SEED_PREFIX + label).encode("ascii")).digest()


def _raw(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def _mid(n: int) -> uuid.UUID:
    return uuid.UUID(f"01936f2a-4b00-7000-8000-{n:012x}")


@dataclass
class _Keys:
    gens: dict[str, KeyGeneration]
    seeds: dict[str, str] = field(default_factory=dict)

    def me(self, authority: str) -> LocalAuthority:
        """``authority``'s own keys: its current and its expired generation (older messages still open)."""
        return LocalAuthority(authority, [self.gens[authority], self.gens[f"{authority}-old"]])

    def trust(self, authority: str) -> TrustStore:
        """What ``authority`` trusts: the counterpart's current and expired generations."""
        other = "CN" if authority == "VN" else "VN"
        return TrustStore([self.gens[other].certificate, self.gens[f"{other}-old"].certificate])


def _keys() -> _Keys:
    gens: dict[str, KeyGeneration] = {}
    seeds: dict[str, str] = {}
    for name, start, validity in (("VN", _KEY_START, 365), ("CN", _KEY_START, 365),
                                  ("VN-old", _OLD_KEY_START, 180), ("CN-old", _OLD_KEY_START, 180),
                                  ("VN-impostor", _KEY_START, 365)):
        authority = name.split("-")[0]
        s_label, e_label = f"{name}/signing", f"{name}/encryption"
        sign = Ed25519PrivateKey.from_private_bytes(_seed(s_label))
        enc = X25519PrivateKey.from_private_bytes(_seed(e_label))
        gens[name] = make_generation(authority, not_before=start, validity=timedelta(days=validity),
                                     signing_private=sign, encryption_private=enc)
        seeds[s_label], seeds[e_label] = _seed(s_label).hex(), _seed(e_label).hex()
    return _Keys(gens, seeds)


def _payloads() -> dict[str, bytes]:
    from xborder_gateway.documents import translate_xml
    from xborder_gateway.samples import generate, generate_cn_exports

    ida = next(generate("IDA", 1, seed=6011))
    cons = next(generate_cn_exports(1, seed=6011))
    return {
        "vn-ida": translate_xml(ida.xml).payload,
        "cn-export": avro.encode("CnExportDeclaration", cons.export),
        "cn-manifest": avro.encode("CnRoadManifest", cons.manifest),
    }


@dataclass
class _Writer:
    out: Path
    vectors: list[dict[str, Any]] = field(default_factory=list)

    def file(self, name: str, data: bytes) -> str:
        path = self.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return name

    def add(self, name: str, kind: str, open_as: str, description: str,  # noqa: PLR0917 - one manifest row
            inputs: list[str], expected: list[dict[str, Any]]) -> None:
        self.vectors.append({"name": name, "kind": kind, "open_as": open_as, "description": description,
                             "inputs": inputs, "expected": expected})


def _ok(mid: uuid.UUID, document_type: str, payload: str, **extra: Any) -> dict[str, Any]:
    return {"result": "ok", "message_id": str(mid), "document_type": document_type, "payload_file": payload,
            **extra}


def _refused(code: str) -> dict[str, Any]:
    return {"result": "refused", "code": code}


def _flip(data: bytes, index: int) -> bytes:
    b = bytearray(data)
    b[index] ^= 0x01
    return bytes(b)


def _header_end(data: bytes) -> int:
    """Offset just past the clear header H (docs/envelope.md §3: 9 + body_len)."""
    return 9 + int.from_bytes(data[7:9], "big")


def _seal1(keys: _Keys, gen: str, recipient: str, payload: bytes, *, doc: str, mid: uuid.UUID,
           now: datetime = REFERENCE_TIME, ttl: timedelta = timedelta(days=2),
           gen_override: KeyGeneration | None = None) -> SealedEnvelope:
    sender = LocalAuthority(gen.split("-", maxsplit=1)[0], [gen_override or keys.gens[gen]])
    return seal(payload, sender=sender, recipient=recipient, trust=keys.trust(gen.split("-", maxsplit=1)[0]),
                document_type=doc, schema_fingerprint=payload[2:10], message_id=mid, now=now, ttl=ttl)


def _fixed_random(label: str) -> Callable[[int], bytes]:
    """Batch id and batch secret from a seed: fine for throwaway vectors, never for real batches (§8.4)."""
    state = {"n": 0}

    def draw(n: int) -> bytes:
        state["n"] += 1
        return hashlib.sha256(f"{_SEED_PREFIX}{label}/{state['n']}".encode()).digest()[:n]

    return draw


def _envelopes(w: _Writer, keys: _Keys, payloads: dict[str, bytes]) -> dict[str, SealedEnvelope]:
    sealed: dict[str, SealedEnvelope] = {}
    p_ida, p_exp, p_man = (w.file(f"payloads/{n}.avro", payloads[n]) for n in ("vn-ida", "cn-export", "cn-manifest"))
    # --- suite v1, both ways ---
    a = sealed["v1-vn-cn"] = _seal1(keys, "VN", "CN", payloads["vn-ida"], doc="IDA", mid=_mid(1))
    w.add("v1-vn-cn-ida", "envelope", "CN", "suite v1 VN -> CN, an IDA declaration",
          [w.file("envelopes/v1-vn-cn-ida.bin", a.data)],
          [_ok(_mid(1), "IDA", p_ida, suite=SUITE_V1)])
    b = sealed["v1-cn-vn"] = _seal1(keys, "CN", "VN", payloads["cn-export"], doc="CN_EXPORT", mid=_mid(2))
    w.add("v1-cn-vn-export", "envelope", "VN", "suite v1 CN -> VN, a CN export declaration",
          [w.file("envelopes/v1-cn-vn-export.bin", b.data)], [_ok(_mid(2), "CN_EXPORT", p_exp, suite=SUITE_V1)])
    # --- suite v2, a batch of three VN -> CN and two CN -> VN ---
    vn_batch = BatchSealer(sender=keys.me("VN"), recipient="CN", trust=keys.trust("VN"), suite=SUITE_V2,
                           now=REFERENCE_TIME, randomness=_fixed_random("v2-vn-cn"))
    for i in (11, 12, 13):
        vn_batch.add(payloads["vn-ida"], document_type="IDA", schema_fingerprint=payloads["vn-ida"][2:10],
                     message_id=_mid(i))
    v2 = vn_batch.seal()
    files = [w.file(f"envelopes/v2-vn-cn-batch-{k}.bin", e.data) for k, e in enumerate(v2, 1)]
    sealed["v2-vn-cn-1"] = v2[0]
    w.add("v2-vn-cn-batch", "envelope", "CN", "suite v2 VN -> CN, a batch of three, in order", files,
          [_ok(_mid(i), "IDA", p_ida, suite=SUITE_V2) for i in (11, 12, 13)])
    w.add("v2-vn-cn-batch-alone", "envelope", "CN", "suite v2: the third envelope opens alone, then the first "
          "(the second was lost)", [files[2], files[0]], [_ok(_mid(13), "IDA", p_ida, suite=SUITE_V2),
                                                         _ok(_mid(11), "IDA", p_ida, suite=SUITE_V2)])
    cn_batch = BatchSealer(sender=keys.me("CN"), recipient="VN", trust=keys.trust("CN"), suite=SUITE_V2,
                           now=REFERENCE_TIME, randomness=_fixed_random("v2-cn-vn"))
    cn_batch.add(payloads["cn-export"], document_type="CN_EXPORT", schema_fingerprint=payloads["cn-export"][2:10],
                 message_id=_mid(21))
    cn_batch.add(payloads["cn-manifest"], document_type="CN_MANIFEST", schema_fingerprint=payloads["cn-manifest"][2:10],
                 message_id=_mid(22))
    v2c = cn_batch.seal()
    sealed["v2-cn-vn-1"] = v2c[0]
    w.add("v2-cn-vn-batch", "envelope", "VN", "suite v2 CN -> VN, a batch of two (export declaration, manifest)",
          [w.file(f"envelopes/v2-cn-vn-batch-{k}.bin", e.data) for k, e in enumerate(v2c, 1)],
          [_ok(_mid(21), "CN_EXPORT", p_exp, suite=SUITE_V2), _ok(_mid(22), "CN_MANIFEST", p_man, suite=SUITE_V2)])
    # --- refusals (each opened with a fresh replay store) ---
    refusals: list[tuple[str, str, bytes, str, str]] = [
        ("magic", "the magic XBGE changed to XBGF", _flip(a.data, 3), "CN", "ENV-2 MALFORMED"),
        ("truncated", "the envelope cut after 100 bytes", a.data[:100], "CN", "ENV-2 MALFORMED"),
        ("version", "version byte 0x01 -> 0x00", _flip(a.data, 4), "CN", "ENV-3 UNSUPPORTED_VERSION"),
        ("suite", "suite 0x0001 -> 0x0003 (unknown)", a.data[:5] + b"\x00\x03" + a.data[7:], "CN",
         "ENV-3 UNSUPPORTED_SUITE"),
        ("wrong-recipient", "a VN -> CN envelope given to VN", a.data, "VN", "ENV-4 WRONG_RECIPIENT"),
        ("header-byte", "the priority byte (last header byte) 0 -> 1: HPKE info no longer matches",
         _flip(a.data, _header_end(a.data) - 1), "CN",
         "ENV-6 DECRYPT_FAILED"),
        ("ciphertext-byte", "the last byte (AEAD tag) flipped", _flip(a.data, len(a.data) - 1), "CN",
         "ENV-6 DECRYPT_FAILED"),
        ("v2-batch-id-byte", "suite v2: a byte of the batch id flipped",
         _flip(v2[0].data, _header_end(v2[0].data)), "CN",
         "ENV-6 DECRYPT_FAILED"),
    ]
    for name, desc, data, open_as, code in refusals:
        w.add(f"refuse-{name}", "envelope", open_as, desc, [w.file(f"envelopes/refuse-{name}.bin", data)],
              [_refused(code)])
    forged_gen = KeyGeneration(keys.gens["VN"].certificate, keys.gens["VN-impostor"].signing_private,
                               keys.gens["VN"].encryption_private)
    forged = _seal1(keys, "VN", "CN", payloads["vn-ida"], doc="IDA", mid=_mid(31), gen_override=forged_gen)
    w.add("refuse-signature", "envelope", "CN", "names VN's signing key id but is signed by another key "
          "(decrypts: anyone can encrypt to CN)", [w.file("envelopes/refuse-signature.bin", forged.data)],
          [_refused("ENV-7 SIGNATURE_INVALID")])
    forged2 = BatchSealer(sender=LocalAuthority("VN", [forged_gen]), recipient="CN", trust=keys.trust("VN"),
                          suite=SUITE_V2, now=REFERENCE_TIME, randomness=_fixed_random("v2-forged"))
    forged2.add(payloads["vn-ida"], document_type="IDA", schema_fingerprint=payloads["vn-ida"][2:10],
                message_id=_mid(32))
    w.add("refuse-v2-signature", "envelope", "CN", "suite v2: the batch statement signed by another key than the "
          "one named", [w.file("envelopes/refuse-v2-signature.bin", forged2.seal()[0].data)],
          [_refused("ENV-7 SIGNATURE_INVALID")])
    imp = _seal1(keys, "VN-impostor", "CN", payloads["vn-ida"], doc="IDA", mid=_mid(33))
    w.add("refuse-unknown-signing-key", "envelope", "CN", "signed by a VN key CN does not trust",
          [w.file("envelopes/refuse-unknown-signing-key.bin", imp.data)], [_refused("ENV-5 UNKNOWN_SIGNING_KEY")])
    old_when = _OLD_KEY_START + timedelta(days=30)
    old = _seal1(keys, "VN-old", "CN", payloads["vn-ida"], doc="IDA", mid=_mid(34), now=old_when)
    w.add("refuse-expired-key", "envelope", "CN", "sealed in 2025 with a VN key generation that expired "
          "before the reference time", [w.file("envelopes/refuse-expired-key.bin", old.data)],
          [_refused("ENV-5 KEY_NOT_VALID")])
    exp = _seal1(keys, "VN", "CN", payloads["vn-ida"], doc="IDA", mid=_mid(35), now=REFERENCE_TIME - timedelta(days=3))
    w.add("refuse-expired", "envelope", "CN", "created three days before the reference time with a ttl of two",
          [w.file("envelopes/refuse-expired.bin", exp.data)], [_refused("ENV-8 EXPIRED")])
    fut = _seal1(keys, "VN", "CN", payloads["vn-ida"], doc="IDA", mid=_mid(36), now=REFERENCE_TIME + timedelta(hours=1))
    w.add("refuse-not-yet-valid", "envelope", "CN", "created one hour after the reference time (skew is 5 min)",
          [w.file("envelopes/refuse-not-yet-valid.bin", fut.data)], [_refused("ENV-8 NOT_YET_VALID")])
    again = _seal1(keys, "VN", "CN", payloads["vn-ida"], doc="IDA", mid=_mid(1))
    w.add("refuse-message-id-reused", "envelope", "CN", "a second, different envelope with the message id of "
          "envelopes/v1-vn-cn-ida.bin after that one", ["envelopes/v1-vn-cn-ida.bin",
                                                        w.file("envelopes/refuse-message-id-reused.bin", again.data)],
          [_ok(_mid(1), "IDA", p_ida, suite=SUITE_V1), _refused("ENV-10 MESSAGE_ID_REUSED")])
    w.add("refuse-replayed", "envelope", "CN", "the same envelope twice: the second is a replay",
          ["envelopes/v1-vn-cn-ida.bin", "envelopes/v1-vn-cn-ida.bin"],
          [_ok(_mid(1), "IDA", p_ida, suite=SUITE_V1), _refused("ENV-10 REPLAYED")])
    return sealed


def _opened(keys: _Keys, data: bytes, authority: str) -> Any:
    return open_envelope(data, me=keys.me(authority), trust=keys.trust(authority), replay=None,
                         now=REFERENCE_TIME, batch_cache=BatchCache())


def _receipt_expect(mid: uuid.UUID, answers: str, outcome: str, *, reason: str | None = None,
                    business_status: str | None = None) -> dict[str, Any]:
    return {"result": "ok", "document_type": "RECEIPT", "receipt": {
        "message_id": str(mid), "envelope_sha256_of": answers, "outcome": outcome, "reason_code": reason,
        "business_status": business_status}}


def _receipts(w: _Writer, keys: _Keys, sealed: dict[str, SealedEnvelope]) -> None:
    at = REFERENCE_TIME + timedelta(seconds=1)
    ack = make_receipt(_opened(keys, sealed["v1-vn-cn"].data, "CN"), receiver="CN", outcome="ACK", received_at=at)
    w.add("receipt-v1-ack-cn-vn", "receipt", "VN", "CN's ACK (Receipt v1, suite v1) of envelopes/v1-vn-cn-ida.bin",
          [w.file("receipts/v1-ack-cn-vn.bin", seal_receipt(ack, me=keys.me("CN"), trust=keys.trust("CN"),
                                                             now=at).data)],
          [_receipt_expect(_ack_mid(ack), "envelopes/v1-vn-cn-ida.bin", "ACK")])
    tampered = (w.out / "envelopes/refuse-signature.bin").read_bytes()
    try:
        _opened(keys, tampered, "CN")
    except EnvelopeOpenError as refused:
        nack = make_receipt(refused, receiver="CN", outcome="NACK", reason_code=refused.code, received_at=at)
    else:  # pragma: no cover - the forged vector must be refused
        raise AssertionError("the forged envelope opened")
    w.add("receipt-v1-nack-cn-vn", "receipt", "VN", "CN's NACK of envelopes/refuse-signature.bin (ENV-7)",
          [w.file("receipts/v1-nack-cn-vn.bin", seal_receipt(nack, me=keys.me("CN"), trust=keys.trust("CN"),
                                                              now=at).data)],
          [_receipt_expect(_mid(31), "envelopes/refuse-signature.bin", "NACK", reason="ENV-7 SIGNATURE_INVALID")])
    vack = make_receipt(_opened(keys, sealed["v1-cn-vn"].data, "VN"), receiver="VN", outcome="ACK", received_at=at)
    w.add("receipt-v1-ack-vn-cn", "receipt", "CN", "VN's ACK (Receipt v1, suite v1) of envelopes/v1-cn-vn-export.bin",
          [w.file("receipts/v1-ack-vn-cn.bin", seal_receipt(vack, me=keys.me("VN"), trust=keys.trust("VN"),
                                                             now=at).data)],
          [_receipt_expect(_mid(2), "envelopes/v1-cn-vn-export.bin", "ACK")])
    # Receipt v2 with an immediate decision, in a suite v2 batch of answers (issue 13 item 2)
    sealer = BatchSealer(sender=keys.me("CN"), recipient="VN", trust=keys.trust("CN"), suite=SUITE_V2, now=at,
                         randomness=_fixed_random("v2-receipts"))
    held = make_receipt(_opened(keys, sealed["v2-vn-cn-1"].data, "CN"), receiver="CN", outcome="ACK", received_at=at,
                        decision=BusinessDecision("HELD", (("PHYSICAL_CONTROL", "selected for physical control"),),
                                                  responded_at=at))
    accepted = make_receipt(_opened(keys, sealed["v1-vn-cn"].data, "CN"), receiver="CN", outcome="ACK",
                            received_at=at, decision=BusinessDecision("ACCEPTED", (), responded_at=at))
    add_receipt(sealer, held)
    add_receipt(sealer, accepted)
    answers = sealer.seal()
    w.add("receipt-v2-decision-cn-vn", "receipt", "VN", "CN's Receipt v2 with an immediate decision (HELD, then "
          "ACCEPTED), one v2 batch of answers",
          [w.file(f"receipts/v2-decision-cn-vn-{k}.bin", e.data) for k, e in enumerate(answers, 1)],
          [_receipt_expect(_mid(11), "envelopes/v2-vn-cn-batch-1.bin", "ACK", business_status="HELD"),
           _receipt_expect(_mid(1), "envelopes/v1-vn-cn-ida.bin", "ACK", business_status="ACCEPTED")])
    forged_issuer = make_receipt(_opened(keys, sealed["v1-cn-vn"].data, "VN"), receiver="CN", outcome="ACK",
                                 received_at=at)
    w.add("refuse-receipt-wrong-issuer", "receipt", "CN", "a receipt naming CN as its issuer but signed by VN",
          [w.file("receipts/refuse-wrong-issuer.bin", seal_receipt(forged_issuer, me=keys.me("VN"),
                                                                   trust=keys.trust("VN"), now=at).data)],
          [_refused("ENV-11 RECEIPT_MISMATCH")])
    w.add("refuse-receipt-not-a-receipt", "receipt", "VN", "a CN declaration envelope read as a receipt",
          ["envelopes/v1-cn-vn-export.bin"], [_refused("ENV-11 NOT_A_RECEIPT")])


def _ack_mid(record: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(str(record["message_id"]))


def _checkpoints(w: _Writer, keys: _Keys) -> dict[str, str]:
    vkeys: dict[str, str] = {}
    for site in ("VN", "CN"):
        origin = f"{_AUDIT_ORIGIN}/{site.lower()}"
        label = f"{site}/audit-checkpoint"
        signer = NoteSigner(origin, Ed25519PrivateKey.from_private_bytes(_seed(label)))
        keys.seeds[label] = _seed(label).hex()
        vkeys[site] = str(signer.verifier)
        leaves = [leaf_hash(f"{site} audit entry {i}".encode()) for i in range(5)]
        cp = Checkpoint(origin, len(leaves), root_from_leaf_hashes(leaves))
        note = sign_note(cp.to_text(), signer)
        name = f"checkpoints/{site.lower()}-checkpoint.note"
        w.file(name, note.encode("utf-8"))
        other = "CN" if site == "VN" else "VN"
        w.add(f"checkpoint-{site.lower()}", "checkpoint", other, f"{site}'s signed checkpoint (size 5), as "
              f"{other}'s witness reads it", [name],
              [{"result": "ok", "origin": origin, "size": 5, "root_base64": base64.b64encode(cp.root).decode()}])
        w.vectors[-1]["verifier"] = site
        _witness_files(w, keys, site, other, note)
        bad = note.replace("\n5\n", "\n6\n", 1)
        w.add(f"refuse-checkpoint-{site.lower()}-size", "checkpoint", other, "the checkpoint's size changed "
              "after signing", [w.file(f"checkpoints/refuse-{site.lower()}-size.note", bad.encode())],
              [_refused("NOTE_SIGNATURE_INVALID")])
        w.vectors[-1]["verifier"] = site
    w.add("refuse-checkpoint-wrong-key", "checkpoint", "CN", "CN's checkpoint checked with VN's log verifier "
          "key instead of CN's", ["checkpoints/cn-checkpoint.note"],
          [_refused("NOTE_UNKNOWN_SIGNER")])
    w.vectors[-1]["verifier"] = "VN"
    return vkeys


#: the fixed cosignature time of the witness files (POSIX seconds, 2025-11-24T16:00:00Z)
WITNESS_TIME = 1_764_000_000


def _witness_signer(authority: str) -> Any:
    from xborder_gateway.audit.cosignature import CosignatureSigner

    return CosignatureSigner(f"{_AUDIT_ORIGIN}/witness/{authority.lower()}",
                             Ed25519PrivateKey.from_private_bytes(_seed(f"{authority}/witness")))


def _witness_files(w: _Writer, keys: _Keys, site: str, other: str, note: str) -> None:
    """What travels on the audit topics (issue 12): the add-checkpoint body published on
    ``xb.<site>.audit.checkpoints`` and the other witness's cosigned note on ``xb.<other>.audit.cosignatures``."""
    from xborder_gateway.audit.witness import format_submission

    w.file(f"checkpoints/{site.lower()}-submission.txt", format_submission(0, [], note))
    keys.seeds[f"{other}/witness"] = _seed(f"{other}/witness").hex()
    witness = _witness_signer(other)
    text = note.split("\n\n", 1)[0] + "\n"
    w.file(f"checkpoints/{site.lower()}-cosigned-by-{other.lower()}.note",
           (text + "\n" + witness.cosign(text, WITNESS_TIME)).encode("utf-8"))


def _key_material(w: _Writer, keys: _Keys, vkeys: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"seed_rule": f"SHA-256(ASCII '{_SEED_PREFIX}<label>')",
                           "seeds": dict(sorted(keys.seeds.items())),
                           "certificates": {}, "note_verifier_keys": dict(sorted(vkeys.items())),
                           # issue 12: each site's witness key (C2SP cosignature/v1, type 0x04)
                           "cosignature_verifier_keys": {a: str(_witness_signer(a).verifier) for a in ("CN", "VN")}}
    for name in sorted(keys.gens):
        cert = keys.gens[name].certificate
        out["certificates"][name] = {"file": w.file(f"keys/{name}.pem", cert.pem),
                                     "not_before": cert.not_before.isoformat(), "not_after": cert.not_after.isoformat()}
    return out


def write_vectors(out: Path) -> dict[str, Any]:
    """Write every vector, the keys and ``manifest.json`` under ``out``; return the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    w = _Writer(out)
    keys = _keys()
    sealed = _envelopes(w, keys, _payloads())
    _receipts(w, keys, sealed)
    vkeys = _checkpoints(w, keys)
    manifest = {
        "format": "xborder-gateway contract vectors",
        "version": 1,
        "reference_time": REFERENCE_TIME.isoformat().replace("+00:00", "Z"),
        "skew_seconds": 300,
        "max_envelope_bytes": 1_048_576,
        "rules": "docs/envelope.md (ENV-1..ENV-11), docs/audit.md (NOTE-*, CP-*)",
        "open_as": "the authority that opens the inputs: its private keys are keys/<it>.pem's generation (seeds), "
                   "it trusts the other authority's current and -old certificates",
        "keys": _key_material(w, keys, vkeys),
        "vectors": sorted(w.vectors, key=lambda v: str(v["name"])),
    }
    (out / "README.md").write_text(_README.format(n=len(w.vectors), when=manifest["reference_time"]),
                                   encoding="utf-8")
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


_README = """\
# xborder-gateway contract test vectors

Generated by `xborder contract vectors --out DIR`; see docs/contract.md of xborder-gateway. {n} vectors.
**Throwaway keys only**: every private key is derived from a public seed string; never trust them.

## Layout
- `manifest.json`: every vector (`name`, `kind` envelope | receipt | checkpoint, `open_as` = the authority that
  opens the inputs, `inputs` = files opened **in order with one fresh replay store per vector**, `expected` =
  one verdict per input), the key material (`keys`) and the reference time.
- `keys/<NAME>.pem`: the self-signed authority certificates (docs/envelope.md §5); `keys.seeds` in the
  manifest gives each private key: 32 bytes = SHA-256(ASCII `xborder-gateway contract vectors/<label>`),
  used as the Ed25519 seed (`<NAME>/signing`) or the X25519 private key (`<NAME>/encryption`).
  `VN`, `CN`: current generations; `VN-old`, `CN-old`: generations that expired in 2025; `VN-impostor`: a key
  pair nobody trusts. An authority owns its current and -old generation and trusts the other authority's
  current and -old certificates.
- `payloads/*.avro`: the Avro single-object frames inside the envelopes.
- `envelopes/`, `receipts/`: sealed envelopes (suite v1 `0x0001`, suite v2 `0x0002` batches).
- `checkpoints/*.note`: C2SP signed checkpoint notes; the verifier keys are in `keys.note_verifier_keys`,
  a vector's `verifier` names the one to use.
- `checkpoints/<site>-submission.txt`: what `xborder run witness` publishes on `xb.<site>.audit.checkpoints`
  (C2SP tlog-witness add-checkpoint body: `old 0`, no proof lines, an empty line, the signed note).
- `checkpoints/<site>-cosigned-by-<other>.note`: what the other site's witness answers on
  `xb.<other>.audit.cosignatures`: the checkpoint with its cosignature/v1 line (time 1764000000, key
  `keys.cosignature_verifier_keys["<OTHER>"]`, type 0x04). The log's own signature line is not repeated.

## How to check an implementation
Check every input at the reference time **{when}** (skew 5 minutes). An envelope verdict is either
`ok` (the opened header's `message_id`, `document_type`, `suite`, and the payload equal to `payload_file`)
or `refused` with the first failing rule's code (docs/envelope.md §4, §8.5: `ENV-2 MALFORMED`,
`ENV-6 DECRYPT_FAILED`, `ENV-7 SIGNATURE_INVALID` …). A receipt vector also checks the Receipt record
(`outcome`, `reason_code`, `business_status`; `envelope_sha256_of` names the file whose SHA-256 it carries).
After an `ok`, record the message id as processed (ENV-10) before the next input.

## What is fixed
Keys, message ids, payloads, checkpoint notes and the manifest are the same on every run. Certificates
(random serial numbers) and envelopes (a fresh HPKE ephemeral key per seal) differ between runs; their
verdicts do not. Byte-exact known answers for both suites are in docs/envelope.md §6 and §8.6.
Witness files are fixed too (Ed25519 is deterministic, the cosignature time is fixed).
Not covered yet: ENV-1 (a 1 MiB file) and ENV-9 (the sealer refuses to make one).
"""


@dataclass(frozen=True)
class VectorResult:
    name: str
    step: int
    expected: dict[str, Any]
    got: dict[str, Any]

    @property
    def ok(self) -> bool:
        return all(self.got.get(k) == v for k, v in self.expected.items())


def _verdict_envelope(data: bytes, me: LocalAuthority, trust: TrustStore, *, replay: MemoryReplayGuard,
                      cache: BatchCache, root: Path, exp: dict[str, Any]) -> dict[str, Any]:
    try:
        opened = open_envelope(data, me=me, trust=trust, replay=replay, now=REFERENCE_TIME, batch_cache=cache)
    except GatewayError as exc:
        return {"result": "refused", "code": exc.code}
    replay.remember(opened.header, opened.sha256)  # the receiver records the id once it has answered
    got: dict[str, Any] = {"result": "ok", "message_id": str(opened.message_id),
                           "document_type": opened.header.document_type, "suite": opened.header.suite}
    if "payload_file" in exp:
        got["payload_file"] = exp["payload_file"] if (root / exp["payload_file"]).read_bytes() == opened.payload \
            else "<different payload>"
    return got


def _verdict_receipt(data: bytes, me: LocalAuthority, trust: TrustStore, *, replay: MemoryReplayGuard,
                     cache: BatchCache, root: Path, exp: dict[str, Any]) -> dict[str, Any]:
    try:
        opened, record = open_receipt(data, me=me, trust=trust, replay=replay, now=REFERENCE_TIME, batch_cache=cache)
    except GatewayError as exc:
        return {"result": "refused", "code": exc.code}
    replay.remember(opened.header, opened.sha256)
    want = exp.get("receipt", {})
    answered = want.get("envelope_sha256_of")
    digest = hashlib.sha256((root / answered).read_bytes()).digest() if answered else None
    return {"result": "ok", "message_id": str(opened.message_id), "document_type": opened.header.document_type,
            "receipt": {"message_id": record["message_id"], "outcome": record["outcome"],
                        "reason_code": record.get("reason_code"), "business_status": record.get("business_status"),
                        "envelope_sha256_of": answered if record["envelope_sha256"] == digest else "<other digest>"}}


def check_vectors(root: Path) -> list[VectorResult]:
    """Check every vector under ``root`` against ``manifest.json`` with the project's own open functions."""
    manifest = json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))
    keys = _keys()
    vkeys = {site: NoteVerifier.parse(v) for site, v in manifest["keys"]["note_verifier_keys"].items()}
    results: list[VectorResult] = []
    for vec in manifest["vectors"]:
        me, trust = keys.me(vec["open_as"]), keys.trust(vec["open_as"])
        replay, cache = MemoryReplayGuard(), BatchCache()
        for step, (name, exp) in enumerate(zip(vec["inputs"], vec["expected"], strict=True)):
            data = (root / name).read_bytes()
            if vec["kind"] == "envelope":
                got = _verdict_envelope(data, me, trust, replay=replay, cache=cache, root=root, exp=exp)
            elif vec["kind"] == "receipt":
                got = _verdict_receipt(data, me, trust, replay=replay, cache=cache, root=root, exp=exp)
            else:
                try:
                    cp = Checkpoint.open(data, vkeys[vec["verifier"]])
                except GatewayError as exc:
                    got = {"result": "refused", "code": exc.code}
                else:
                    got = {"result": "ok", "origin": cp.origin, "size": cp.size,
                           "root_base64": base64.b64encode(cp.root).decode()}
            results.append(VectorResult(vec["name"], step, exp, got))
    return results
