"""Suite v2 tamper table (docs/envelope.md §8.5): every header field, batch field, path element, index, size,
signature and root; paths swapped between batch-mates and between batches; splices, truncations — each refused
with its exact rule code. Forgeries "by a holder of the batch secret" re-encrypt a changed plaintext with the
right AEAD key, so they reach ENV-7: only the root signature stops them. Hypothesis: nothing but
EnvelopeOpenError leaves open_envelope for v2 either."""

from __future__ import annotations

import hashlib
import re
import struct
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xborder_gateway.envelope import (
    BatchCache,
    BatchSealer,
    EnvelopeHeader,
    EnvelopeOpenError,
    LocalAuthority,
    TrustStore,
    _batch,
    make_generation,
    open_envelope,
    seal,
)

CODE = re.compile(r"ENV-(1|2|3|4|5|6|7|8|9|10) [A-Z_]+")
H_LEN = 124  # VN / CN / IDA
BID, ENC, SEALED, CT = H_LEN, H_LEN + 16, H_LEN + 48, H_LEN + 96


def _fixed(*chunks: bytes) -> Callable[[int], bytes]:
    it: Iterator[bytes] = iter(chunks)
    return lambda n: next(it)


@pytest.fixture(scope="module")
def rig(kit: Any) -> Any:
    start = kit.T0 - timedelta(days=10)
    vn1, vn2 = make_generation("VN", not_before=start), make_generation("VN", not_before=kit.T0 - timedelta(days=1))
    cn1, cn2 = make_generation("CN", not_before=start), make_generation("CN", not_before=kit.T0 - timedelta(days=1))

    class Rig:
        vn = LocalAuthority("VN", [vn1, vn2])
        cn = LocalAuthority("CN", [cn1, cn2])
        vn_trust = TrustStore([cn1.certificate, cn2.certificate])
        cn_trust = TrustStore([vn1.certificate, vn2.certificate])
        old_vn, old_cn = vn1, cn1
        secret_a, bid_a = b"\xa5" * 32, b"\xa0" * 16
        secret_b, bid_b = b"\xb5" * 32, b"\xb0" * 16

        @classmethod
        def batch(cls, secret: bytes, bid: bytes, n: int = 5, tag: bytes = b"") -> list[Any]:
            sealer = BatchSealer(sender=cls.vn, recipient="CN", trust=cls.vn_trust, now=kit.T0,
                                 randomness=_fixed(bid, secret))
            for i in range(n):
                sealer.add(kit.avro_payload(tag + f"body {i:02d} ....".encode()), document_type="IDA",
                           schema_fingerprint=kit.FP)
            return sealer.seal()

    Rig.a = Rig.batch(Rig.secret_a, Rig.bid_a)  # type: ignore[attr-defined]
    Rig.b = Rig.batch(Rig.secret_b, Rig.bid_b, tag=b"B")  # type: ignore[attr-defined]
    assert len(Rig.a[1].header.encode()) == H_LEN  # type: ignore[attr-defined]
    return Rig


def _code(rig: Any, kit: Any, data: bytes) -> str:
    with pytest.raises(EnvelopeOpenError) as err:
        open_envelope(data, me=rig.cn, trust=rig.cn_trust, replay=None, now=kit.T0, batch_cache=BatchCache())
    assert err.value.envelope_sha256 == hashlib.sha256(data).digest()
    return err.value.code


def _plain(data: bytes, secret: bytes) -> bytes:
    h, bid = data[:H_LEN], data[BID:ENC]
    key, nonce = _batch.envelope_key(secret, bid, h, h[9:25])
    return AESGCM(key).decrypt(nonce, data[CT:], h + bid)


def _reseal(data: bytes, secret: bytes, pt: bytes, h: bytes | None = None) -> bytes:
    """What a holder of the batch secret can build: any H and plaintext under the right AEAD key."""
    h = h or data[:H_LEN]
    bid = data[BID:ENC]
    key, nonce = _batch.envelope_key(secret, bid, h, h[9:25])
    return h + data[BID:CT] + AESGCM(key).encrypt(nonce, pt, h + bid)


def test_base_batch_opens(rig: Any, kit: Any) -> None:
    cache = BatchCache()
    for s in rig.a + rig.b:
        assert open_envelope(s.data, me=rig.cn, trust=rig.cn_trust, replay=None, now=kit.T0, batch_cache=cache)


# --- every header field changed, re-encoded, spliced onto the original tail -----------------------------------

HEADER_CHANGES: list[tuple[str, dict[str, Any], str]] = [
    ("version 1 -> 2", {"version": 2}, "ENV-3 UNSUPPORTED_VERSION"),
    ("suite 2 -> 1 (downgrade to v1)", {"suite": 1}, "ENV-6 DECRYPT_FAILED"),
    ("suite 2 -> 3", {"suite": 3}, "ENV-3 UNSUPPORTED_SUITE"),
    ("message id -> another UUIDv7", {"message_id": uuid.UUID("01936f2a-4b00-7000-8000-0000000000ff")},
     "ENV-6 DECRYPT_FAILED"),
    ("sender VN -> CN", {"sender": "CN"}, "ENV-5 UNKNOWN_SIGNING_KEY"),
    ("recipient CN -> VN", {"recipient": "VN"}, "ENV-4 WRONG_RECIPIENT"),
    ("document type IDA -> EDA", {"document_type": "EDA"}, "ENV-6 DECRYPT_FAILED"),
    ("schema fingerprint", {"schema_fingerprint": b"\x09" * 8}, "ENV-6 DECRYPT_FAILED"),
    ("created 1 ms earlier", {"created": "-1ms"}, "ENV-6 DECRYPT_FAILED"),
    ("expires 1 day later", {"expires": "+1d"}, "ENV-6 DECRYPT_FAILED"),
    ("signing key id -> VN's other trusted key", {"signing_key_id": "old_vn"}, "ENV-6 DECRYPT_FAILED"),
    ("signing key id -> unknown", {"signing_key_id": b"\x01" * 32}, "ENV-5 UNKNOWN_SIGNING_KEY"),
    ("encryption key id -> CN's other key", {"encryption_key_id": "old_cn"}, "ENV-6 DECRYPT_FAILED"),
    ("encryption key id -> unknown", {"encryption_key_id": b"\x02" * 32}, "ENV-5 UNKNOWN_ENCRYPTION_KEY"),
    ("priority 0 -> 9", {"priority": 9}, "ENV-6 DECRYPT_FAILED"),
]


def _changed_header(rig: Any, header: EnvelopeHeader, changes: dict[str, Any]) -> bytes:
    symbolic = {"-1ms": header.created - timedelta(milliseconds=1), "+1d": header.expires + timedelta(days=1),
                "old_vn": rig.old_vn.certificate.signing_key_id, "old_cn": rig.old_cn.certificate.encryption_key_id}
    resolved = {k: symbolic.get(v, v) if isinstance(v, str) and v in symbolic else v for k, v in changes.items()}
    return replace(header, **resolved).encode()


@pytest.mark.parametrize(("name", "changes", "code"), HEADER_CHANGES, ids=[c[0] for c in HEADER_CHANGES])
def test_header_field_changed(rig: Any, kit: Any, name: str, changes: dict[str, Any], code: str) -> None:
    target = rig.a[1]
    new_h = _changed_header(rig, target.header, changes)
    assert new_h != target.header.encode()
    assert _code(rig, kit, new_h + target.data[H_LEN:]) == code, name


@pytest.mark.parametrize(("name", "changes"), [(c[0], c[1]) for c in HEADER_CHANGES if c[2] == "ENV-6 DECRYPT_FAILED"
                                               and "suite" not in c[1] and "encryption_key_id" not in c[1]],
                         ids=[c[0] for c in HEADER_CHANGES if c[2] == "ENV-6 DECRYPT_FAILED"
                              and "suite" not in c[1] and "encryption_key_id" not in c[1]])
def test_header_changed_by_a_secret_holder_fails_the_signature(rig: Any, kit: Any, name: str,
                                                               changes: dict[str, Any]) -> None:
    """Even with the right AEAD key, a changed header changes the leaf: the signed root no longer matches."""
    target = rig.a[1]
    new_h = _changed_header(rig, target.header, changes)
    forged = _reseal(target.data, rig.secret_a, _plain(target.data, rig.secret_a), h=new_h)
    assert _code(rig, kit, forged) == "ENV-7 SIGNATURE_INVALID", name


# --- every region of the clear tail flipped -------------------------------------------------------------------

FLIPS: list[tuple[str, int, str]] = [
    ("batch id first byte", BID, "ENV-6 DECRYPT_FAILED"),
    ("batch id last byte", ENC - 1, "ENV-6 DECRYPT_FAILED"),
    ("enc first byte", ENC, "ENV-6 DECRYPT_FAILED"),
    ("enc last byte", SEALED - 1, "ENV-6 DECRYPT_FAILED"),
    ("sealed secret first byte", SEALED, "ENV-6 DECRYPT_FAILED"),
    ("sealed secret tag byte", CT - 1, "ENV-6 DECRYPT_FAILED"),
    ("ciphertext first byte (batch size)", CT, "ENV-6 DECRYPT_FAILED"),
    ("ciphertext in the path", CT + 20, "ENV-6 DECRYPT_FAILED"),
    ("ciphertext last byte (tag)", -1, "ENV-6 DECRYPT_FAILED"),
]


@pytest.mark.parametrize(("name", "offset", "code"), FLIPS, ids=[f[0] for f in FLIPS])
def test_byte_flipped(rig: Any, kit: Any, name: str, offset: int, code: str) -> None:
    data = bytearray(rig.a[1].data)
    data[offset] ^= 0x01
    assert _code(rig, kit, bytes(data)) == code, name


# --- forged proofs, built with the batch secret (the AEAD passes; ENV-7 must refuse) --------------------------

def _proof(pt: bytes) -> tuple[int, int, list[bytes], bytes, bytes]:
    size, index, count = struct.unpack(">IIB", pt[:9])
    path = [pt[9 + 32 * i : 41 + 32 * i] for i in range(count)]
    rest = pt[9 + 32 * count :]
    return size, index, path, rest[:64], rest[64:]


def _pt(size: int, index: int, path: list[bytes], sig: bytes, payload: bytes, count: int | None = None  # noqa: PLR0917
        ) -> bytes:
    return struct.pack(">IIB", size, index, len(path) if count is None else count) + b"".join(path) + sig + payload


def _flip(b: bytes, i: int = 0) -> bytes:
    return b[:i] + bytes([b[i] ^ 1]) + b[i + 1 :]


PROOF_FORGERIES: list[tuple[str, Callable[[Any, tuple[int, int, list[bytes], bytes, bytes]], bytes]]] = [
    ("path element 0 changed", lambda r, p: _pt(p[0], p[1], [_flip(p[2][0]), *p[2][1:]], p[3], p[4])),
    ("last path element changed", lambda r, p: _pt(p[0], p[1], [*p[2][:-1], _flip(p[2][-1], 31)], p[3], p[4])),
    ("path elements reordered", lambda r, p: _pt(p[0], p[1], list(reversed(p[2])), p[3], p[4])),
    ("path element dropped", lambda r, p: _pt(p[0], p[1], p[2][:-1], p[3], p[4])),
    ("path element added", lambda r, p: _pt(p[0], p[1], [*p[2], b"\x00" * 32], p[3], p[4])),
    ("path count says one more than carried", lambda r, p: _pt(p[0], p[1], p[2], p[3], p[4], count=len(p[2]) + 1)),
    ("path count 255", lambda r, p: _pt(p[0], p[1], p[2], p[3], p[4], count=255)),
    ("leaf index 1 -> 0", lambda r, p: _pt(p[0], 0, p[2], p[3], p[4])),
    ("leaf index 1 -> 3", lambda r, p: _pt(p[0], 3, p[2], p[3], p[4])),
    ("leaf index = batch size", lambda r, p: _pt(p[0], p[0], p[2], p[3], p[4])),
    ("leaf index 2^32 - 1", lambda r, p: _pt(p[0], 2**32 - 1, p[2], p[3], p[4])),
    ("batch size 5 -> 6 (same path length)", lambda r, p: _pt(6, p[1], p[2], p[3], p[4])),
    ("batch size 5 -> 8", lambda r, p: _pt(8, p[1], p[2], p[3], p[4])),
    ("batch size 0", lambda r, p: _pt(0, p[1], p[2], p[3], p[4])),
    ("batch size 2^32 - 1", lambda r, p: _pt(2**32 - 1, p[1], p[2], p[3], p[4])),
    ("batch size 65537 (over the maximum)", lambda r, p: _pt(65_537, p[1], p[2], p[3], p[4])),
    ("signature first byte", lambda r, p: _pt(p[0], p[1], p[2], _flip(p[3]), p[4])),
    ("signature last byte", lambda r, p: _pt(p[0], p[1], p[2], _flip(p[3], 63), p[4])),
    ("signature zeroed", lambda r, p: _pt(p[0], p[1], p[2], b"\x00" * 64, p[4])),
    ("payload changed", lambda r, p: _pt(p[0], p[1], p[2], p[3], p[4] + b"!")),
    ("payload truncated to the path (plaintext ends in the signature)", lambda r, p: _pt(p[0], p[1], p[2], b"", b"")
     + b"\x00" * 74),
    ("path and index of batch-mate 2 (swapped paths)",
     lambda r, p: _pt(p[0], 2, _proof(_plain(r.a[2].data, r.secret_a))[2], p[3], p[4])),
    ("path of batch-mate 0 with own index",
     lambda r, p: _pt(p[0], p[1], _proof(_plain(r.a[0].data, r.secret_a))[2], p[3], p[4])),
    ("path, index, size and signature of batch B",
     lambda r, p: _pt(*_proof(_plain(r.b[1].data, r.secret_b))[:4], p[4])),
    ("signature of batch B, own path",
     lambda r, p: _pt(p[0], p[1], p[2], _proof(_plain(r.b[1].data, r.secret_b))[3], p[4])),
    ("claims a batch of one whose root is this leaf (no path), own signature",
     lambda r, p: _pt(1, 0, [], p[3], p[4])),
]


@pytest.mark.parametrize(("name", "forge"), PROOF_FORGERIES, ids=[f[0] for f in PROOF_FORGERIES])
def test_forged_proof(rig: Any, kit: Any, name: str, forge: Callable[[Any, Any], bytes]) -> None:
    target = rig.a[1]
    pt = forge(rig, _proof(_plain(target.data, rig.secret_a)))
    assert _code(rig, kit, _reseal(target.data, rig.secret_a, pt)) == "ENV-7 SIGNATURE_INVALID", name


def test_an_inner_node_is_not_a_leaf(rig: Any, kit: Any) -> None:
    """Second preimage (RFC 9162 prefixes): a signed inner node can never be presented as a leaf."""
    leaves = [_batch.leaf_hash(s.header.encode(), _proof(_plain(s.data, rig.secret_a))[4]) for s in rig.a]
    root, _ = _batch.root_and_paths(leaves)
    assert root not in leaves


# --- splices between envelopes and batches; truncation ----------------------------------------------------------

SPLICES: list[tuple[str, Callable[[Any], bytes], str]] = [
    ("batch A envelope with batch B's batch id, enc and sealed secret",
     lambda r: r.a[1].data[:BID] + r.b[1].data[BID:CT] + r.a[1].data[CT:], "ENV-6 DECRYPT_FAILED"),
    ("batch A envelope with batch B's batch id only",
     lambda r: r.a[1].data[:BID] + r.b[1].data[BID:ENC] + r.a[1].data[ENC:], "ENV-6 DECRYPT_FAILED"),
    ("batch A envelope with batch B's enc and sealed secret only",
     lambda r: r.a[1].data[:ENC] + r.b[1].data[ENC:CT] + r.a[1].data[CT:], "ENV-6 DECRYPT_FAILED"),
    ("header of batch-mate 0, ciphertext of 1", lambda r: r.a[0].data[:H_LEN] + r.a[1].data[H_LEN:],
     "ENV-6 DECRYPT_FAILED"),
    ("ciphertexts of batch-mates swapped", lambda r: r.a[1].data[:CT] + r.a[2].data[CT:], "ENV-6 DECRYPT_FAILED"),
    ("truncated to H", lambda r: r.a[1].data[:H_LEN], "ENV-2 MALFORMED"),
    ("truncated inside the sealed secret", lambda r: r.a[1].data[: SEALED + 10], "ENV-2 MALFORMED"),
    ("truncated by one byte", lambda r: r.a[1].data[:-1], "ENV-6 DECRYPT_FAILED"),
    ("extended by one byte", lambda r: r.a[1].data + b"\x00", "ENV-6 DECRYPT_FAILED"),
    ("truncated to the shortest v2 length", lambda r: r.a[1].data[: H_LEN + _batch.V2_MIN_TAIL - 1],
     "ENV-2 MALFORMED"),
]


@pytest.mark.parametrize(("name", "build", "code"), SPLICES, ids=[s[0] for s in SPLICES])
def test_splice(rig: Any, kit: Any, name: str, build: Callable[[Any], bytes], code: str) -> None:
    assert _code(rig, kit, build(rig)) == code, name


def test_a_v1_envelope_relabelled_as_v2_does_not_open(rig: Any, kit: Any) -> None:
    v1 = seal(kit.avro_payload(b"x" * 200), sender=rig.vn, recipient="CN", trust=rig.vn_trust, document_type="IDA",
              schema_fingerprint=kit.FP, now=kit.T0).data
    relabelled = v1[:5] + b"\x00\x02" + v1[7:]
    assert _code(rig, kit, relabelled) == "ENV-6 DECRYPT_FAILED"


def test_a_cached_root_does_not_admit_a_forged_batch_mate(rig: Any, kit: Any) -> None:
    """The root cache is consulted with the root *computed* from this envelope's leaf and path."""
    cache = BatchCache()
    open_envelope(rig.a[0].data, me=rig.cn, trust=rig.cn_trust, replay=None, now=kit.T0, batch_cache=cache)
    size, index, path, sig, payload = _proof(_plain(rig.a[1].data, rig.secret_a))
    forged = _reseal(rig.a[1].data, rig.secret_a, _pt(size, index, path, sig, payload + b"!"))
    with pytest.raises(EnvelopeOpenError) as err:
        open_envelope(forged, me=rig.cn, trust=rig.cn_trust, replay=None, now=kit.T0, batch_cache=cache)
    assert err.value.code == "ENV-7 SIGNATURE_INVALID"


# --- properties ---------------------------------------------------------------------------------------------------

def _outcome(rig: Any, kit: Any, data: bytes) -> str:
    try:
        open_envelope(data, me=rig.cn, trust=rig.cn_trust, replay=None, now=kit.T0, batch_cache=BatchCache())
    except EnvelopeOpenError as exc:
        digest, code = exc.envelope_sha256, exc.code
    else:
        return "OPENED"
    assert digest is not None
    return code


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=4),
       cut=st.integers(0, 10_000), tail=st.binary(max_size=40))
def test_mutated_v2_envelopes(rig: Any, kit: Any, edits: list[tuple[int, int]], cut: int, tail: bytes) -> None:
    base = rig.a[3].data
    data = bytearray(base)
    for offset, mask in edits:
        data[offset % len(data)] ^= mask
    mutated = bytes(data[: cut % (len(data) + 1)] if cut < len(data) else data) + tail
    result = _outcome(rig, kit, mutated)
    if mutated == base:
        assert result == "OPENED"
    else:
        assert CODE.fullmatch(result), result


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pt=st.binary(min_size=83, max_size=700), size=st.integers(0, 2**32 - 1), index=st.integers(0, 2**32 - 1),
       count=st.integers(0, 255), use_fields=st.booleans())
def test_any_plaintext_under_the_right_key(rig: Any, kit: Any, pt: bytes, size: int, index: int,  # noqa: PLR0917
                                           count: int, use_fields: bool) -> None:
    """A holder of the batch secret sends arbitrary plaintext: the proof parser refuses with ENV-7, never crashes."""
    if use_fields:
        pt = struct.pack(">IIB", size, index, count) + pt[9:]
    result = _outcome(rig, kit, _reseal(rig.a[1].data, rig.secret_a, pt))
    assert result == "ENV-7 SIGNATURE_INVALID", result
