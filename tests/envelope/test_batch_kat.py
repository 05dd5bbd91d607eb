"""Known-answer tests for suite v2 (docs/envelope.md §8.6): a batch of three, fixed keys and randomness.

The expected bytes were produced once by the independent implementation (``DocImplV2``: pyhpke with an
RFC 9180 DeriveKeyPair ephemeral key, cryptography's HKDF/AES-GCM/Ed25519, hashlib) and are pinned here and in
the document. Our ``BatchSealer`` with the same batch id and secret must produce the same bytes everywhere
except ``enc || sealed secret`` (cryptography's HPKE draws its own ephemeral key), and our opener must open
each pinned envelope alone.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from xborder_gateway.envelope import (
    SUITE_V2,
    BatchCache,
    BatchSealer,
    LocalAuthority,
    TrustStore,
    make_generation,
    open_envelope,
)

KAT_CREATED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
KAT_FP = bytes.fromhex("0102030405060708")
KAT_IDS = [uuid.UUID(f"01936f2a-4b00-7000-8000-00000000000{i}") for i in (1, 2, 3)]
KAT_PAYLOADS = [b"\xc3\x01" + KAT_FP + f"KAT payload {i}".encode() for i in (1, 2, 3)]
KAT_BATCH_ID = bytes(range(0x40, 0x50))
KAT_SECRET = bytes(range(0x50, 0x70))
KAT_EPHEMERAL_IKM = b"xborder-gateway envelope v2 KAT ephemeral"
KAT_ROOT = "627224e5ffda9c6a02c4445db9d52b88c204dcee413eecc8ee18ed55bde77be6"
KAT_SIGNATURE = (
    "422946ea617dff152ee2a8fb5f828c1484f9fbd8e2415a979f21f63475ad22a8"
    "a9fc58fc5e78478cfb5feb598d6e5eaf07f765d04d84354aadff719e3edb820e"
)
KAT_STATEMENT = (
    "78626f726465722d676174657761792f656e76656c6f70652f76322f62617463682d726f6f7400000202564e02434e"
    "404142434445464748494a4b4c4d4e4f00000003627224e5ffda9c6a02c4445db9d52b88c204dcee413eecc8ee18ed55bde77be6"
)
KAT_LEAF_1 = "8d71de76a178f5b8161a1879737975e41d5b3592721d96f2dc649c3e45e108d1"
KAT_KEY_1 = "af030cb11c1d0d24db7669cc11721371612c2037747491014fa7edf8272598fe"
KAT_NONCE_1 = "06d87d95cf5dab77d08ac62f"
KAT_PT_PREFIX_1 = (
    "000000030000000002"
    "b14e7c615cec67117fec42acc11db469011462a99496b6f7ed4a51b241417270"
    "571b8ee025bbdc8c5b2e0b4c6796f9dac41b21ed9495540bae9daff8cc0911e8"
)
KAT_ENC = "ca630318098f7d200c94b54d884b86a1616a5247d1484f72e6e2e9ce0dcb292e"
KAT_SEALED_SECRET = "ebeec8b7a7fcf16360ff23ba0ea1f1e6c57b8a3e368b238a9e57cd39297d5c46b6074530f6674f390bb79cc71a2c1745"
KAT_ENVELOPES_SHA256 = [
    "462cc0a74704994f97398092774ec709d9f20b61122f6d33a0956c7cf5a05de3",
    "495c5fc167ccd0821b437319ceec6e235c8a861c2ec4c0ccdb332eff139551d3",
    "dca3c34310dd2c4b6ac56de272d22aa4e07b81a646cc9c58f7cbeddf18a35798",
]
KAT_ENVELOPE_1 = (
    "58424745010002007301936f2a4b007000800000000000000102564e02434e034944410102030405060708000001a21293b6"
    "00000001a21ce06e0056475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708ca0289810032eb41727"
    "4eebc4a38e6899b935321d53554e32ec6322f0fa1e724e00404142434445464748494a4b4c4d4e4fca630318098f7d200c94"
    "b54d884b86a1616a5247d1484f72e6e2e9ce0dcb292eebeec8b7a7fcf16360ff23ba0ea1f1e6c57b8a3e368b238a9e57cd39"
    "297d5c46b6074530f6674f390bb79cc71a2c17454e1aa9778c9e1eb7e707c34b202054e57ae89967d3ae067e417f7d314cab"
    "977b228c9d445083c8dd6fcdb46c1faee257b0edaeabc3dcb004542f0aef8bd455c1feb69622fff75f479b36e3f1f3cdbacf"
    "b7d6e44b1b277f5d91c1f518b33827ac653d27289299369b8577efd2f6fd5427f121288455b06880970cf087fa311d0dc364"
    "d78e3dc05a93e05d188db40ce8d402db167f0556a5098ade494358c18f32c510889d03adb3c5c421da78c3e23a85"
)


@pytest.fixture(scope="module")
def kat() -> Any:
    vn_sign = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    cn_enc = X25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
    start = KAT_CREATED - timedelta(days=1)
    vn = make_generation("VN", not_before=start, signing_private=vn_sign)
    cn = make_generation("CN", not_before=start, encryption_private=cn_enc)

    class Kat:
        vn_auth = LocalAuthority("VN", [vn])
        cn_auth = LocalAuthority("CN", [cn])
        vn_trust = TrustStore([cn.certificate])
        cn_trust = TrustStore([vn.certificate])
        cn_private = cn_enc
        vn_private = vn_sign

    return Kat


def _doc_envelopes(kat: Any, kit: Any) -> list[bytes]:
    headers = [
        kit.DocHeader(
            message_id=mid.bytes, sender=b"VN", recipient=b"CN", document_type=b"IDA", schema_fingerprint=KAT_FP,
            created_ms=int(KAT_CREATED.timestamp() * 1000),
            expires_ms=int((KAT_CREATED + timedelta(days=2)).timestamp() * 1000),
            signing_key_id=hashlib.sha256(kat.vn_private.public_key().public_bytes_raw()).digest(),
            encryption_key_id=hashlib.sha256(kat.cn_private.public_key().public_bytes_raw()).digest(),
            suite=2,
        )
        for mid in KAT_IDS
    ]
    return kit.DocImplV2.seal_batch(headers, KAT_PAYLOADS, kat.vn_private,
                                    kat.cn_private.public_key().public_bytes_raw(), batch_id=KAT_BATCH_ID,
                                    secret=KAT_SECRET, eph_ikm=KAT_EPHEMERAL_IKM)


def _fixed(*chunks: bytes) -> Any:
    it: Iterator[bytes] = iter(chunks)

    def randomness(n: int) -> bytes:
        value = next(it)
        assert len(value) == n
        return value

    return randomness


def test_independent_implementation_reproduces_the_batch(kat: Any, kit: Any) -> None:
    envelopes = _doc_envelopes(kat, kit)
    for i, data in enumerate(envelopes):
        print(f"\nKAT v2 envelope {i + 1}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    end = 9 + int.from_bytes(envelopes[0][7:9], "big")
    print("KAT v2 enc", envelopes[0][end + 16 : end + 48].hex())
    print("KAT v2 sealed secret", envelopes[0][end + 48 : end + 96].hex())
    print("KAT v2 envelope 1", envelopes[0].hex())
    opened = kit.DocImplV2.open(envelopes[0], kat.cn_private.private_bytes_raw(), kat.vn_private.public_key())
    print("KAT v2 opened fields", opened.fields)
    assert [hashlib.sha256(d).hexdigest() for d in envelopes] == KAT_ENVELOPES_SHA256
    assert envelopes[0].hex() == KAT_ENVELOPE_1
    assert envelopes[0][end + 16 : end + 48].hex() == KAT_ENC
    assert envelopes[0][end + 48 : end + 96].hex() == KAT_SEALED_SECRET


def test_root_and_signature_are_the_known_answer(kat: Any, kit: Any) -> None:
    envelopes = _doc_envelopes(kat, kit)
    leaves = []
    for data, payload in zip(envelopes, KAT_PAYLOADS, strict=True):
        end = 9 + int.from_bytes(data[7:9], "big")
        leaves.append(kit.DocImplV2.leaf(data[:end], payload))
    root = kit.DocImplV2.mth(leaves)
    print("\nKAT v2 root", root.hex())
    assert root.hex() == KAT_ROOT
    fields = {"sender": "VN", "recipient": "CN"}
    assert kit.DocImplV2.statement(fields, KAT_BATCH_ID, 3, root).hex() == KAT_STATEMENT
    sig = kat.vn_private.sign(kit.DocImplV2.statement(fields, KAT_BATCH_ID, 3, root))
    print("KAT v2 signature", sig.hex())
    assert sig.hex() == KAT_SIGNATURE


def test_our_sealer_produces_the_known_bytes_but_its_own_enc(kat: Any) -> None:
    sealer = BatchSealer(sender=kat.vn_auth, recipient="CN", trust=kat.vn_trust, now=KAT_CREATED,
                         randomness=_fixed(KAT_BATCH_ID, KAT_SECRET))
    for mid, payload in zip(KAT_IDS, KAT_PAYLOADS, strict=True):
        sealer.add(payload, document_type="IDA", schema_fingerprint=KAT_FP, message_id=mid)
    ours = sealer.seal()
    pinned = bytes.fromhex(KAT_ENVELOPE_1)
    end = len(ours[0].header.encode())
    assert ours[0].header.suite == SUITE_V2
    assert ours[0].data[: end + 16] == pinned[: end + 16]  # H and batch id
    assert ours[0].data[end + 96 :] == pinned[end + 96 :]  # the AEAD ciphertext: same key, nonce, aad, pt
    assert ours[0].data[end + 16 : end + 48] != pinned[end + 16 : end + 48]  # a fresh HPKE ephemeral key
    assert [e.data[end + 16 : end + 96] for e in ours].count(ours[0].data[end + 16 : end + 96]) == 3


def test_we_open_each_known_envelope_alone(kat: Any, kit: Any) -> None:
    envelopes = _doc_envelopes(kat, kit)
    for i in (2, 0, 1):
        opened = open_envelope(envelopes[i], me=kat.cn_auth, trust=kat.cn_trust, replay=None,
                               now=KAT_CREATED + timedelta(minutes=1), batch_cache=BatchCache())
        assert opened.payload == KAT_PAYLOADS[i]
        assert opened.message_id == KAT_IDS[i]
        assert opened.sha256.hex() == KAT_ENVELOPES_SHA256[i]


def test_intermediate_values_of_envelope_1(kit: Any) -> None:
    """The values docs/envelope.md §8.6 lists for envelope 1: leaf, AEAD key and nonce, proof fields."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data = bytes.fromhex(KAT_ENVELOPE_1)
    h = data[:124]
    assert kit.DocImplV2.leaf(h, KAT_PAYLOADS[0]).hex() == KAT_LEAF_1
    key, nonce = kit.DocImplV2.key_nonce(KAT_SECRET, KAT_BATCH_ID, h, KAT_IDS[0].bytes)
    assert (key.hex(), nonce.hex()) == (KAT_KEY_1, KAT_NONCE_1)
    pt = AESGCM(key).decrypt(nonce, data[124 + 96 :], h + KAT_BATCH_ID)
    assert pt.hex().startswith(KAT_PT_PREFIX_1)
    assert pt[9 + 64 : 9 + 64 + 64].hex() == KAT_SIGNATURE
    assert pt[9 + 128 :] == KAT_PAYLOADS[0]
