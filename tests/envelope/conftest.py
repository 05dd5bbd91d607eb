"""Fixtures for the envelope tests: fixed clocks, two authorities, and an independent implementation.

``DocImpl`` implements docs/envelope.md with ``pyhpke`` (an HPKE implementation independent of
``cryptography``'s), ``cryptography``'s raw Ed25519 and ``hashlib`` — and nothing from
``xborder_gateway.envelope``: it is how a third party would read the document. Tests use it for interop
and to forge envelopes that our ``seal`` refuses to produce (bad lifetime, wrong signature, …).
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKeyPair

from xborder_gateway.envelope import LocalAuthority, TrustStore, make_generation

# --- constants copied from docs/envelope.md §2 ------------------------------------------------------
DOC_SIG_LABEL = b"xborder-gateway/envelope/v1/signature\x00"
DOC_INFO_LABEL = b"xbge/v1/info\x00"
DOC_MAGIC = b"XBGE"
# --- constants copied from docs/envelope.md §8 (suite v2) --------------------------------------------
DOC_V2_ROOT_LABEL = b"xborder-gateway/envelope/v2/batch-root\x00"
DOC_V2_SECRET_LABEL = b"xbge/v2/batch-secret\x00"
DOC_V2_KEY_LABEL = b"xbge/v2/envelope-key\x00"

T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
FP = bytes.fromhex("0102030405060708")


def avro_payload(body: bytes = b"declaration body", fingerprint: bytes = FP) -> bytes:
    return b"\xc3\x01" + fingerprint + body


@dataclass
class DocHeader:
    """Header fields as docs/envelope.md §3 lists them."""

    message_id: bytes
    sender: bytes
    recipient: bytes
    document_type: bytes
    schema_fingerprint: bytes
    created_ms: int
    expires_ms: int
    signing_key_id: bytes
    encryption_key_id: bytes
    priority: int = 0
    version: int = 1
    suite: int = 1
    body_len: int | None = None  # None = computed

    def encode(self) -> bytes:
        body = (
            self.message_id
            + bytes([len(self.sender)]) + self.sender
            + bytes([len(self.recipient)]) + self.recipient
            + bytes([len(self.document_type)]) + self.document_type
            + self.schema_fingerprint
            + struct.pack(">QQ", self.created_ms, self.expires_ms)
            + self.signing_key_id + self.encryption_key_id + bytes([self.priority])
        )
        n = len(body) if self.body_len is None else self.body_len
        return DOC_MAGIC + bytes([self.version]) + struct.pack(">HH", self.suite, n) + body


@dataclass
class DocOpened:
    header: bytes
    fields: dict[str, object] = field(default_factory=dict)
    payload: bytes = b""


class DocImpl:
    """docs/envelope.md, implemented with pyhpke + raw Ed25519 only."""

    suite = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES256_GCM)

    @staticmethod
    def key_id(raw_public: bytes) -> bytes:
        return hashlib.sha256(raw_public).digest()

    @classmethod
    def seal(cls, header: DocHeader, payload: bytes, signing_key: Ed25519PrivateKey, recipient_x25519_raw: bytes,
             *, pt_override: bytes | None = None, eph_ikm: bytes | None = None) -> bytes:
        h = header.encode()
        sig = signing_key.sign(DOC_SIG_LABEL + h + hashlib.sha256(payload).digest())
        pt = sig + payload if pt_override is None else pt_override
        pkr = cls.suite.kem.deserialize_public_key(recipient_x25519_raw)
        eks: KEMKeyPair | None = cls.suite.kem.derive_key_pair(eph_ikm) if eph_ikm is not None else None
        enc, ctx = cls.suite.create_sender_context(pkr, info=DOC_INFO_LABEL + hashlib.sha256(h).digest(), eks=eks)
        return h + enc + ctx.seal(pt)

    @classmethod
    def open(cls, data: bytes, recipient_x25519_private_raw: bytes, sender_ed25519: Ed25519PublicKey) -> DocOpened:
        assert data[:4] == DOC_MAGIC
        assert data[4] == 1
        suite, body_len = struct.unpack(">HH", data[5:9])
        assert suite == 1
        end = 9 + body_len
        h = data[:end]
        pos = 9
        fields: dict[str, object] = {"message_id": uuid.UUID(bytes=h[pos : pos + 16])}
        pos += 16
        for name in ("sender", "recipient", "document_type"):
            n = h[pos]
            fields[name] = h[pos + 1 : pos + 1 + n].decode("ascii")
            pos += 1 + n
        fields["schema_fingerprint"] = h[pos : pos + 8]
        pos += 8
        fields["created_ms"], fields["expires_ms"] = struct.unpack(">QQ", h[pos : pos + 16])
        pos += 16
        fields["signing_key_id"] = h[pos : pos + 32]
        fields["encryption_key_id"] = h[pos + 32 : pos + 64]
        fields["priority"] = h[pos + 64]
        assert pos + 65 == end
        skr = cls.suite.kem.deserialize_private_key(recipient_x25519_private_raw)
        enc, ct = data[end : end + 32], data[end + 32 :]
        ctx = cls.suite.create_recipient_context(enc, skr, info=DOC_INFO_LABEL + hashlib.sha256(h).digest())
        pt = ctx.open(ct)
        sig, payload = pt[:64], pt[64:]
        sender_ed25519.verify(sig, DOC_SIG_LABEL + h + hashlib.sha256(payload).digest())
        return DocOpened(h, fields, payload)


def _doc_parse_header(data: bytes) -> tuple[bytes, dict[str, object]]:
    """docs/envelope.md §3: H and its fields (asserts instead of error codes: this side is a test oracle)."""
    assert data[:4] == DOC_MAGIC
    assert data[4] == 1
    _suite, body_len = struct.unpack(">HH", data[5:9])
    end = 9 + body_len
    h = data[:end]
    pos = 9
    fields: dict[str, object] = {"suite": _suite, "message_id": uuid.UUID(bytes=h[pos : pos + 16])}
    pos += 16
    for name in ("sender", "recipient", "document_type"):
        n = h[pos]
        fields[name] = h[pos + 1 : pos + 1 + n].decode("ascii")
        pos += 1 + n
    fields["schema_fingerprint"] = h[pos : pos + 8]
    pos += 8
    fields["created_ms"], fields["expires_ms"] = struct.unpack(">QQ", h[pos : pos + 16])
    pos += 16
    fields["signing_key_id"] = h[pos : pos + 32]
    fields["encryption_key_id"] = h[pos + 32 : pos + 64]
    fields["priority"] = h[pos + 64]
    assert pos + 65 == end
    return h, fields


class DocImplV2:
    """docs/envelope.md §8 (suite v2, batches), implemented with pyhpke, cryptography's HKDF, AES-GCM and raw
    Ed25519, and hashlib — written from the document's text, nothing imported from xborder_gateway.envelope."""

    suite = DocImpl.suite

    @staticmethod
    def node(left: bytes, right: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + left + right).digest()

    @classmethod
    def mth(cls, leaves: list[bytes]) -> bytes:
        """RFC 9162 §2.1.1 MTH over leaf hashes (n >= 1)."""
        if len(leaves) == 1:
            return leaves[0]
        k = 1
        while k * 2 < len(leaves):
            k *= 2
        return cls.node(cls.mth(leaves[:k]), cls.mth(leaves[k:]))

    @classmethod
    def path(cls, m: int, leaves: list[bytes]) -> list[bytes]:
        """RFC 9162 §2.1.3.1 PATH(m, D[n]), leaf-to-root order."""
        if len(leaves) == 1:
            return []
        k = 1
        while k * 2 < len(leaves):
            k *= 2
        if m < k:
            return [*cls.path(m, leaves[:k]), cls.mth(leaves[k:])]
        return [*cls.path(m - k, leaves[k:]), cls.mth(leaves[:k])]

    @staticmethod
    def leaf(h: bytes, payload: bytes) -> bytes:
        return hashlib.sha256(b"\x00" + h + hashlib.sha256(payload).digest()).digest()

    @staticmethod
    def statement(h_fields: dict[str, object], batch_id: bytes, size: int, root: bytes) -> bytes:
        sender, recipient = str(h_fields["sender"]).encode(), str(h_fields["recipient"]).encode()
        return (DOC_V2_ROOT_LABEL + struct.pack(">H", 2) + bytes([len(sender)]) + sender
                + bytes([len(recipient)]) + recipient + batch_id + struct.pack(">I", size) + root)

    @staticmethod
    def key_nonce(secret: bytes, batch_id: bytes, h: bytes, message_id: bytes) -> tuple[bytes, bytes]:
        okm = HKDF(algorithm=hashes.SHA256(), length=44, salt=batch_id,
                   info=DOC_V2_KEY_LABEL + message_id + hashlib.sha256(h).digest()).derive(secret)
        return okm[:32], okm[32:]

    @classmethod
    def seal_batch(cls, headers: list[DocHeader], payloads: list[bytes], signing_key: Ed25519PrivateKey,
                   recipient_x25519_raw: bytes, *, batch_id: bytes, secret: bytes,
                   eph_ikm: bytes | None = None) -> list[bytes]:
        hs = [replace(h, suite=2).encode() for h in headers]
        leaves = [cls.leaf(h, p) for h, p in zip(hs, payloads, strict=True)]
        root = cls.mth(leaves)
        _, first = _doc_parse_header(hs[0])
        sig = signing_key.sign(cls.statement(first, batch_id, len(hs), root))
        pkr = cls.suite.kem.deserialize_public_key(recipient_x25519_raw)
        eks = cls.suite.kem.derive_key_pair(eph_ikm) if eph_ikm is not None else None
        enc, ctx = cls.suite.create_sender_context(pkr, info=DOC_V2_SECRET_LABEL + batch_id, eks=eks)
        sealed_secret = ctx.seal(secret)
        out = []
        for m, (h, payload) in enumerate(zip(hs, payloads, strict=True)):
            path = cls.path(m, leaves)
            pt = struct.pack(">IIB", len(hs), m, len(path)) + b"".join(path) + sig + payload
            key, nonce = cls.key_nonce(secret, batch_id, h, h[9:25])
            out.append(h + batch_id + enc + sealed_secret + AESGCM(key).encrypt(nonce, pt, h + batch_id))
        return out

    @classmethod
    def open(cls, data: bytes, recipient_x25519_private_raw: bytes, sender_ed25519: Ed25519PublicKey) -> DocOpened:
        h, fields = _doc_parse_header(data)
        assert fields["suite"] == 2
        end = len(h)
        batch_id, enc, sealed = data[end : end + 16], data[end + 16 : end + 48], data[end + 48 : end + 96]
        skr = cls.suite.kem.deserialize_private_key(recipient_x25519_private_raw)
        secret = cls.suite.create_recipient_context(enc, skr, info=DOC_V2_SECRET_LABEL + batch_id).open(sealed)
        key, nonce = cls.key_nonce(secret, batch_id, h, h[9:25])
        pt = AESGCM(key).decrypt(nonce, data[end + 96 :], h + batch_id)
        size, index, count = struct.unpack(">IIB", pt[:9])
        path = [pt[9 + 32 * i : 9 + 32 * (i + 1)] for i in range(count)]
        sig, payload = pt[9 + 32 * count : 73 + 32 * count], pt[73 + 32 * count :]
        # RFC 9162 §2.1.3.2, computing the root
        fn, sn, r = index, size - 1, cls.leaf(h, payload)
        for p in path:
            assert sn != 0
            if fn & 1 or fn == sn:
                r = cls.node(p, r)
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
            else:
                r = cls.node(r, p)
            fn >>= 1
            sn >>= 1
        assert sn == 0
        sender_ed25519.verify(sig, cls.statement(fields, batch_id, size, r))
        fields.update(batch_id=batch_id, batch_size=size, leaf_index=index, enc=enc)
        return DocOpened(h, fields, payload)


@dataclass
class World:
    """VN and CN with one key generation each, trusting each other; keys valid from T0 - 1 day for a year."""

    vn: LocalAuthority
    cn: LocalAuthority
    vn_trust: TrustStore
    cn_trust: TrustStore

    def doc_header(self, **changes: object) -> DocHeader:
        vn_gen, cn_gen = self.vn.generations[0], self.cn.generations[0]
        base = DocHeader(
            message_id=uuid.UUID("01936f2a-4b00-7000-8000-000000000001").bytes,
            sender=b"VN", recipient=b"CN", document_type=b"IDA", schema_fingerprint=FP,
            created_ms=int(T0.timestamp() * 1000), expires_ms=int((T0 + timedelta(days=2)).timestamp() * 1000),
            signing_key_id=vn_gen.certificate.signing_key_id,
            encryption_key_id=cn_gen.certificate.encryption_key_id,
        )
        return replace(base, **changes)  # type: ignore[arg-type]

    def forge(self, payload: bytes = b"", *, signer: Ed25519PrivateKey | None = None,
              pt_override: bytes | None = None, **changes: object) -> bytes:
        """An envelope built by the independent implementation, signed by VN unless ``signer`` is given."""
        header = self.doc_header(**changes)
        return DocImpl.seal(
            header, payload or avro_payload(), signer or self.vn.generations[0].signing_private,
            self.cn.generations[0].certificate.encryption_key.public_bytes_raw(), pt_override=pt_override,
        )


def make_world(not_before: datetime = T0 - timedelta(days=1), validity: timedelta = timedelta(days=365)) -> World:
    vn = LocalAuthority("VN", [make_generation("VN", not_before=not_before, validity=validity)])
    cn = LocalAuthority("CN", [make_generation("CN", not_before=not_before, validity=validity)])
    return World(vn, cn, TrustStore(cn.certificates), TrustStore(vn.certificates))


@pytest.fixture(scope="module")
def world() -> World:
    return make_world()


@dataclass(frozen=True)
class Kit:
    """What test modules need from here (importlib mode: they cannot import this conftest)."""

    T0: datetime = T0
    FP: bytes = FP
    DocImpl: type[DocImpl] = DocImpl
    DocHeader: type[DocHeader] = DocHeader
    DocImplV2: type[DocImplV2] = DocImplV2
    SIG_LABEL: bytes = DOC_SIG_LABEL
    INFO_LABEL: bytes = DOC_INFO_LABEL

    @staticmethod
    def avro_payload(body: bytes = b"declaration body", fingerprint: bytes = FP) -> bytes:
        return avro_payload(body, fingerprint)

    @staticmethod
    def make_world(not_before: datetime = T0 - timedelta(days=1), validity: timedelta = timedelta(days=365)) -> World:
        return make_world(not_before, validity)


@pytest.fixture(scope="session")
def kit() -> Kit:
    return Kit()
