"""Known-answer tests for the v1 construction (docs/envelope.md §6).

Inputs are fixed; the expected bytes were produced once by the independent implementation (pyhpke with an
RFC 9180 DeriveKeyPair ephemeral key) and are pinned here. Our encoder must produce the same header, our
signer the same (deterministic) Ed25519 signature, and our opener must open the pinned envelope.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from xborder_gateway.envelope import (
    EnvelopeHeader,
    LocalAuthority,
    TrustStore,
    make_generation,
    open_envelope,
    seal,
)

KAT_MESSAGE_ID = uuid.UUID("01936f2a-4b00-7000-8000-000000000001")
KAT_CREATED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
KAT_FP = bytes.fromhex("0102030405060708")
KAT_PAYLOAD = b"\xc3\x01" + KAT_FP + b"KAT payload"
KAT_EPHEMERAL_IKM = b"xborder-gateway envelope v1 KAT ephemeral"
KAT_HEADER = bytes.fromhex(
    "58424745010001007301936f2a4b007000800000000000000102564e02434e034944410102030405060708000001a21293b600"
    "000001a21ce06e0056475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708ca0289810032eb417274e"
    "ebc4a38e6899b935321d53554e32ec6322f0fa1e724e00"
)
KAT_SIGNATURE = bytes.fromhex(
    "f745d452901c706f4dcca63b63700006333b686421808a8a0473b0410714ae84e907cf5f57b7de4337ce714aee43b4e7366f"
    "8b075f8c4fc55ed79988b0e3ca01"
)
KAT_ENC = bytes.fromhex("e843fda416e9d92cb4824a2948e92ada85c4faa7708493b6977693900078d204")
KAT_ENVELOPE = bytes.fromhex(
    "58424745010001007301936f2a4b007000800000000000000102564e02434e034944410102030405060708000001a21293b600"
    "000001a21ce06e0056475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708ca0289810032eb417274e"
    "ebc4a38e6899b935321d53554e32ec6322f0fa1e724e00e843fda416e9d92cb4824a2948e92ada85c4faa7708493b6977693"
    "900078d20421b215f80a0e718e049a64c6c024fef3de23880c6044ebdb2225ac6762ad8656fcc01e6c815a0af0e49787a8fb"
    "a668fa90d864a1e0604ca86544cd512180ab3e310bd091912acd0e6dff1c577f43dd6e8c6f3b9c627fe47bedf106612fc416"
    "71364127568d"
)
KAT_ENVELOPE_SHA256 = "ff984f88b00915d78124a7816d9dcee1547cb75e7659f9072f6375a2b9d5fde7"


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
        header = EnvelopeHeader(
            message_id=KAT_MESSAGE_ID, sender="VN", recipient="CN", document_type="IDA", schema_fingerprint=KAT_FP,
            created=KAT_CREATED, expires=KAT_CREATED + timedelta(days=2),
            signing_key_id=vn.certificate.signing_key_id, encryption_key_id=cn.certificate.encryption_key_id,
        )
        cn_private = cn_enc
        vn_private = vn_sign

    return Kat


def test_pinned_envelope_digest() -> None:
    assert hashlib.sha256(KAT_ENVELOPE).hexdigest() == KAT_ENVELOPE_SHA256
    assert KAT_ENVELOPE.startswith(KAT_HEADER + KAT_ENC)


def test_header_encoding(kat: Any) -> None:
    print("\nKAT header", kat.header.encode().hex())
    assert kat.header.encode() == KAT_HEADER
    assert len(KAT_HEADER) == 9 + int.from_bytes(KAT_HEADER[7:9], "big")


def test_our_signature_is_the_known_answer(kat: Any, kit: Any) -> None:
    assert kat.vn_private.sign(kit.SIG_LABEL + KAT_HEADER + hashlib.sha256(KAT_PAYLOAD).digest()) == KAT_SIGNATURE
    # and the signature our seal() puts inside the ciphertext (decrypted with the raw HPKE primitive)
    sealed = seal(KAT_PAYLOAD, sender=kat.vn_auth, recipient="CN", trust=kat.vn_trust, document_type="IDA",
                  schema_fingerprint=KAT_FP, message_id=KAT_MESSAGE_ID, now=KAT_CREATED)
    assert sealed.data[: len(KAT_HEADER)] == KAT_HEADER
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    plain = suite.decrypt(sealed.data[len(KAT_HEADER) :], kat.cn_private,
                          info=kit.INFO_LABEL + hashlib.sha256(KAT_HEADER).digest())
    assert plain == KAT_SIGNATURE + KAT_PAYLOAD
    print("KAT signature", KAT_SIGNATURE.hex())


def test_independent_implementation_reproduces_the_envelope(kat: Any, kit: Any) -> None:
    header = kit.DocHeader(
        message_id=KAT_MESSAGE_ID.bytes, sender=b"VN", recipient=b"CN", document_type=b"IDA", schema_fingerprint=KAT_FP,
        created_ms=int(KAT_CREATED.timestamp() * 1000),
        expires_ms=int((KAT_CREATED + timedelta(days=2)).timestamp() * 1000),
        signing_key_id=kit.DocImpl.key_id(kat.vn_private.public_key().public_bytes_raw()),
        encryption_key_id=kit.DocImpl.key_id(kat.cn_private.public_key().public_bytes_raw()),
    )
    data = kit.DocImpl.seal(header, KAT_PAYLOAD, kat.vn_private, kat.cn_private.public_key().public_bytes_raw(),
                            eph_ikm=KAT_EPHEMERAL_IKM)
    print("KAT envelope sha256", hashlib.sha256(data).hexdigest())
    assert data == KAT_ENVELOPE


def test_we_open_the_known_envelope(kat: Any) -> None:
    opened = open_envelope(KAT_ENVELOPE, me=kat.cn_auth, trust=kat.cn_trust, replay=None,
                           now=KAT_CREATED + timedelta(minutes=1))
    assert opened.payload == KAT_PAYLOAD
    assert opened.header == kat.header
    assert opened.sha256.hex() == KAT_ENVELOPE_SHA256
