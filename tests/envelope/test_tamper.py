"""The named tamper table: every header field changed, every byte region flipped, truncated, extended,
and forged signatures — each refused with its exact rule code (docs/envelope.md §4)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from xborder_gateway.envelope import (
    DEFAULT_LIMITS,
    EnvelopeLimits,
    EnvelopeOpenError,
    LocalAuthority,
    TrustStore,
    make_generation,
    open_envelope,
    seal,
)


@pytest.fixture(scope="module")
def rig(kit: Any) -> Any:
    """VN and CN with two valid generations each (so a header can name *another trusted* key)."""
    start = kit.T0 - timedelta(days=10)
    vn1, vn2 = make_generation("VN", not_before=start), make_generation("VN", not_before=kit.T0 - timedelta(days=1))
    cn1, cn2 = make_generation("CN", not_before=start), make_generation("CN", not_before=kit.T0 - timedelta(days=1))

    class Rig:
        vn = LocalAuthority("VN", [vn1, vn2])
        cn = LocalAuthority("CN", [cn1, cn2])
        vn_trust = TrustStore([cn1.certificate, cn2.certificate])
        cn_trust = TrustStore([vn1.certificate, vn2.certificate])
        old_vn, old_cn = vn1, cn1
        sealed = seal(kit.avro_payload(b"sixteen byte bod"), sender=vn, recipient="CN", trust=vn_trust,
                      document_type="IDA", schema_fingerprint=kit.FP, now=kit.T0)

    assert len(Rig.sealed.header.encode()) == 124  # the offsets below assume VN/CN/IDA
    assert len(Rig.sealed.data) == 124 + 32 + 64 + 26 + 16
    return Rig


def _code(rig: Any, kit: Any, data: bytes, limits: EnvelopeLimits = DEFAULT_LIMITS) -> str:
    with pytest.raises(EnvelopeOpenError) as err:
        open_envelope(data, me=rig.cn, trust=rig.cn_trust, replay=None, now=kit.T0, limits=limits)
    assert err.value.envelope_sha256 == hashlib.sha256(data).digest()
    return err.value.code


def test_base_envelope_opens(rig: Any, kit: Any) -> None:
    assert open_envelope(rig.sealed.data, me=rig.cn, trust=rig.cn_trust, replay=None, now=kit.T0).payload


# --- every header field changed, re-encoded well-formed, spliced onto the original enc || ct -------------------

HEADER_CHANGES: list[tuple[str, dict[str, Any], str]] = [
    ("version 1 -> 2 (upgrade/downgrade)", {"version": 2}, "ENV-3 UNSUPPORTED_VERSION"),
    ("version 1 -> 0", {"version": 0}, "ENV-3 UNSUPPORTED_VERSION"),
    # suite 2 exists (batch, docs/envelope.md §8): this short v1 body cannot hold a v2 tail; a longer one fails
    # ENV-6 (tests/envelope/test_batch_tamper.py)
    ("suite 1 -> 2 (suite swap to batch)", {"suite": 2}, "ENV-2 MALFORMED"),
    ("suite 1 -> 3 (unknown suite)", {"suite": 3}, "ENV-3 UNSUPPORTED_SUITE"),
    ("suite 1 -> 0", {"suite": 0}, "ENV-3 UNSUPPORTED_SUITE"),
    ("message id -> another UUIDv7", {"message_id": uuid.UUID("01936f2a-4b00-7000-8000-0000000000ff")},
     "ENV-6 DECRYPT_FAILED"),
    ("sender VN -> CN", {"sender": "CN"}, "ENV-5 UNKNOWN_SIGNING_KEY"),
    ("sender VN -> VNX", {"sender": "VNX"}, "ENV-5 UNKNOWN_SIGNING_KEY"),
    ("recipient CN -> VN", {"recipient": "VN"}, "ENV-4 WRONG_RECIPIENT"),
    ("document type IDA -> EDA", {"document_type": "EDA"}, "ENV-6 DECRYPT_FAILED"),
    ("schema fingerprint changed", {"schema_fingerprint": b"\x09" * 8}, "ENV-6 DECRYPT_FAILED"),
    ("created 1 ms earlier", {"created": "-1ms"}, "ENV-6 DECRYPT_FAILED"),
    ("expires 1 day later", {"expires": "+1d"}, "ENV-6 DECRYPT_FAILED"),
    ("signing key id -> VN's other trusted key", {"signing_key_id": "old_vn"}, "ENV-6 DECRYPT_FAILED"),
    ("signing key id -> unknown", {"signing_key_id": b"\x01" * 32}, "ENV-5 UNKNOWN_SIGNING_KEY"),
    ("encryption key id -> CN's other key", {"encryption_key_id": "old_cn"}, "ENV-6 DECRYPT_FAILED"),
    ("encryption key id -> unknown", {"encryption_key_id": b"\x02" * 32}, "ENV-5 UNKNOWN_ENCRYPTION_KEY"),
    ("priority 0 -> 9 (jump the priority lane)", {"priority": 9}, "ENV-6 DECRYPT_FAILED"),
]


@pytest.mark.parametrize(("name", "change", "code"), HEADER_CHANGES, ids=[c[0] for c in HEADER_CHANGES])
def test_header_field_changed(rig: Any, kit: Any, name: str, change: dict[str, Any], code: str) -> None:
    header = rig.sealed.header
    values: dict[str, Any] = {}
    for key, value in change.items():
        if value == "-1ms":
            values[key] = header.created - timedelta(milliseconds=1)
        elif value == "+1d":
            values[key] = header.expires + timedelta(days=1)
        elif value == "old_vn":
            values[key] = rig.old_vn.certificate.signing_key_id
        elif value == "old_cn":
            values[key] = rig.old_cn.certificate.encryption_key_id
        else:
            values[key] = value
    changed = replace(header, **values)
    original_h = header.encode()
    new_h = changed.encode()
    assert new_h != original_h
    assert _code(rig, kit, new_h + rig.sealed.data[len(original_h):]) == code, name


# --- every byte region flipped --------------------------------------------------------------------------------
# H: magic 0-3, version 4, suite 5-6, body_len 7-8, message id 9-24, sender 25 (len) 26-27, recipient 28 29-30,
# document type 31 32-34, fingerprint 35-42, created 43-50, expires 51-58, signing kid 59-90,
# encryption kid 91-122, priority 123; enc 124-155; ct 156-261 (signature 156-219, payload 220-245, tag 246-261)

FLIPS: list[tuple[str, int, int, str]] = [
    ("magic first byte", 0, 0x01, "ENV-2 MALFORMED"),
    ("magic last byte", 3, 0x20, "ENV-2 MALFORMED"),
    ("version byte", 4, 0x03, "ENV-3 UNSUPPORTED_VERSION"),
    ("suite high byte", 5, 0x80, "ENV-3 UNSUPPORTED_SUITE"),
    ("suite low byte", 6, 0x01, "ENV-3 UNSUPPORTED_SUITE"),
    ("body length high byte", 7, 0x01, "ENV-2 MALFORMED"),
    ("body length low byte", 8, 0x01, "ENV-2 MALFORMED"),
    ("message id first byte", 9, 0x01, "ENV-6 DECRYPT_FAILED"),
    ("message id version nibble", 15, 0x10, "ENV-2 MALFORMED"),
    ("message id variant bits", 17, 0x40, "ENV-2 MALFORMED"),
    ("message id last byte", 24, 0x01, "ENV-6 DECRYPT_FAILED"),
    ("sender length", 25, 0x01, "ENV-2 MALFORMED"),
    ("sender letter (VN -> WN)", 26, 0x01, "ENV-5 UNKNOWN_SIGNING_KEY"),
    ("sender letter to lower case", 27, 0x20, "ENV-2 MALFORMED"),
    ("recipient length", 28, 0x04, "ENV-2 MALFORMED"),
    ("recipient letter (CN -> BN)", 29, 0x01, "ENV-4 WRONG_RECIPIENT"),
    ("document type length", 31, 0x01, "ENV-2 MALFORMED"),
    ("document type letter", 32, 0x01, "ENV-6 DECRYPT_FAILED"),
    ("document type to a forbidden character", 34, 0x60, "ENV-2 MALFORMED"),
    ("schema fingerprint", 38, 0x01, "ENV-6 DECRYPT_FAILED"),
    ("created high byte (beyond year 9999)", 43, 0x80, "ENV-2 MALFORMED"),
    ("created low byte", 50, 0x01, "ENV-6 DECRYPT_FAILED"),
    ("expires low byte", 58, 0x01, "ENV-6 DECRYPT_FAILED"),
    ("signing key id", 59, 0x01, "ENV-5 UNKNOWN_SIGNING_KEY"),
    ("signing key id last byte", 90, 0x80, "ENV-5 UNKNOWN_SIGNING_KEY"),
    ("encryption key id", 91, 0x01, "ENV-5 UNKNOWN_ENCRYPTION_KEY"),
    ("encryption key id last byte", 122, 0x80, "ENV-5 UNKNOWN_ENCRYPTION_KEY"),
    ("priority 0 -> 1", 123, 0x01, "ENV-6 DECRYPT_FAILED"),
    ("priority 0 -> 16 (out of range)", 123, 0x10, "ENV-2 MALFORMED"),
    ("enc first byte", 124, 0x01, "ENV-6 DECRYPT_FAILED"),
    ("enc last byte", 155, 0x01, "ENV-6 DECRYPT_FAILED"),
    ("ciphertext: signature region", 156, 0x01, "ENV-6 DECRYPT_FAILED"),
    ("ciphertext: payload region", 230, 0x01, "ENV-6 DECRYPT_FAILED"),
    ("tag first byte", 246, 0x01, "ENV-6 DECRYPT_FAILED"),
    ("tag last byte", 261, 0x80, "ENV-6 DECRYPT_FAILED"),
]


@pytest.mark.parametrize("case", FLIPS, ids=[f[0] for f in FLIPS])
def test_byte_flipped(rig: Any, kit: Any, case: tuple[str, int, int, str]) -> None:
    name, offset, mask, code = case
    data = bytearray(rig.sealed.data)
    data[offset] ^= mask
    assert _code(rig, kit, bytes(data)) == code, name


def test_every_single_byte_flip_is_refused(rig: Any, kit: Any) -> None:
    """Exhaustive: no byte of the envelope can change without the envelope being refused."""
    base = rig.sealed.data
    for offset in range(len(base)):
        data = bytearray(base)
        data[offset] ^= 0x01
        with pytest.raises(EnvelopeOpenError):
            open_envelope(bytes(data), me=rig.cn, trust=rig.cn_trust, replay=None, now=kit.T0)


# --- truncated and extended ------------------------------------------------------------------------------------

TRUNCATIONS: list[tuple[str, int, str]] = [
    ("empty", 0, "ENV-2 MALFORMED"),
    ("inside magic", 3, "ENV-2 MALFORMED"),
    ("inside fixed prefix", 8, "ENV-2 MALFORMED"),
    ("fixed prefix only", 9, "ENV-2 MALFORMED"),
    ("inside header body", 60, "ENV-2 MALFORMED"),
    ("header minus one byte", 123, "ENV-2 MALFORMED"),
    ("header only", 124, "ENV-2 MALFORMED"),
    ("header and part of enc", 140, "ENV-2 MALFORMED"),
    ("header and enc", 156, "ENV-2 MALFORMED"),
    ("one byte below the minimal envelope", 245, "ENV-2 MALFORMED"),
    ("tag removed (minimal length)", 246, "ENV-6 DECRYPT_FAILED"),
    ("last byte removed", 261, "ENV-6 DECRYPT_FAILED"),
]


@pytest.mark.parametrize(("name", "length", "code"), TRUNCATIONS, ids=[t[0] for t in TRUNCATIONS])
def test_truncated(rig: Any, kit: Any, name: str, length: int, code: str) -> None:
    assert _code(rig, kit, rig.sealed.data[:length]) == code, name


EXTENSIONS: list[tuple[str, str, str]] = [
    ("one byte appended", "append1", "ENV-6 DECRYPT_FAILED"),
    ("a second tag appended", "append16", "ENV-6 DECRYPT_FAILED"),
    ("one byte prepended", "prepend", "ENV-2 MALFORMED"),
    ("byte inserted between header and enc", "insert124", "ENV-6 DECRYPT_FAILED"),
    ("byte inserted inside the header", "insert30", "ENV-2 MALFORMED"),
    ("envelope doubled", "double", "ENV-6 DECRYPT_FAILED"),
]


@pytest.mark.parametrize(("name", "how", "code"), EXTENSIONS, ids=[e[0] for e in EXTENSIONS])
def test_extended(rig: Any, kit: Any, name: str, how: str, code: str) -> None:
    base = rig.sealed.data
    data = {
        "append1": base + b"\x00",
        "append16": base + base[-16:],
        "prepend": b"X" + base,
        "insert124": base[:124] + b"\x00" + base[124:],
        "insert30": base[:30] + b"N" + base[30:],
        "double": base + base,
    }[how]
    assert _code(rig, kit, data) == code, name


def test_size_cap_before_anything(rig: Any, kit: Any) -> None:
    limits = EnvelopeLimits(max_envelope_bytes=len(rig.sealed.data))
    assert open_envelope(rig.sealed.data, me=rig.cn, trust=rig.cn_trust, replay=None, now=kit.T0, limits=limits)
    assert _code(rig, kit, rig.sealed.data + b"\x00", limits) == "ENV-1 SIZE_EXCEEDED"
    assert _code(rig, kit, b"\x00" * (DEFAULT_LIMITS.max_envelope_bytes + 1)) == "ENV-1 SIZE_EXCEEDED"


# --- forged signatures (decryptable envelopes built by someone holding only public keys) ----------------------

def _forgeries(world: Any, kit: Any) -> dict[str, tuple[bytes, str]]:
    vn_key = world.vn.generations[0].signing_private
    attacker = make_generation("VN").signing_private
    payload_a, payload_b = kit.avro_payload(b"declared value 100"), kit.avro_payload(b"declared value 1")
    h0 = world.doc_header().encode()
    h9 = world.doc_header(priority=9).encode()

    def sig(key: Any, h: bytes, payload: bytes) -> bytes:
        return bytes(key.sign(kit.SIG_LABEL + h + hashlib.sha256(payload).digest()))

    return {
        "signed by an attacker key naming VN's key id": (world.forge(signer=attacker), "ENV-7 SIGNATURE_INVALID"),
        "signature over another payload": (
            world.forge(payload_b, pt_override=sig(vn_key, h0, payload_a) + payload_b), "ENV-7 SIGNATURE_INVALID"),
        "signature over another header (priority 0 signed, 9 sent)": (
            world.forge(payload_a, priority=9, pt_override=sig(vn_key, h0, payload_a) + payload_a),
            "ENV-7 SIGNATURE_INVALID"),
        "signature without the domain label": (
            world.forge(payload_a, pt_override=bytes(vn_key.sign(h0 + hashlib.sha256(payload_a).digest())) + payload_a),
            "ENV-7 SIGNATURE_INVALID"),
        "signature over the bare payload": (
            world.forge(payload_a, pt_override=bytes(vn_key.sign(payload_a)) + payload_a), "ENV-7 SIGNATURE_INVALID"),
        "signature zeroed": (world.forge(payload_a, pt_override=b"\x00" * 64 + payload_a), "ENV-7 SIGNATURE_INVALID"),
        "signature stripped (payload only)": (
            world.forge(payload_a, pt_override=payload_a + b"\x00" * 64), "ENV-7 SIGNATURE_INVALID"),
        "plaintext shorter than a signature": (world.forge(pt_override=b"\x00" * 40), "ENV-2 MALFORMED"),
        "honest control (must open)": (world.forge(payload_a, pt_override=sig(vn_key, h0, payload_a) + payload_a),
                                       "OK"),
        "honest control with priority 9": (
            world.forge(payload_a, priority=9, pt_override=sig(vn_key, h9, payload_a) + payload_a), "OK"),
    }


FORGERY_NAMES = [
    "signed by an attacker key naming VN's key id", "signature over another payload",
    "signature over another header (priority 0 signed, 9 sent)", "signature without the domain label",
    "signature over the bare payload", "signature zeroed", "signature stripped (payload only)",
    "plaintext shorter than a signature", "honest control (must open)", "honest control with priority 9",
]


@pytest.mark.parametrize("name", FORGERY_NAMES)
def test_forged(world: Any, kit: Any, name: str) -> None:
    data, code = _forgeries(world, kit)[name]
    if code == "OK":
        assert open_envelope(data, me=world.cn, trust=world.cn_trust, replay=None, now=kit.T0).payload
        return
    with pytest.raises(EnvelopeOpenError) as err:
        open_envelope(data, me=world.cn, trust=world.cn_trust, replay=None, now=kit.T0)
    assert err.value.code == code
