"""Envelope suite v2 — batch crypto (docs/envelope.md §8): constants, Merkle tree, key schedule, opening.

One Ed25519 signature over the RFC 9162 Merkle root of a batch's leaves and one HPKE encapsulation of a
batch secret serve every envelope of the batch; each envelope still carries everything it needs to open
alone (its leaf index and inclusion path, the signature, ``enc`` and the sealed secret).

This module has no keys at rest and no I/O. Sealing is :class:`xborder_gateway.envelope.BatchSealer`
(``_batch_seal.py``); opening goes through ``open_envelope``, which dispatches here by suite id.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from xborder_gateway.envelope._errors import EnvelopeOpenError
from xborder_gateway.envelope._format import MIN_PAYLOAD, SIG_LEN, TAG_LEN, EnvelopeHeader
from xborder_gateway.envelope._keys import AuthorityCertificate, KeyGeneration

__all__ = [
    "BATCH_ID_LEN",
    "DEFAULT_BATCH_CACHE",
    "KEY_INFO_LABEL",
    "MAX_BATCH",
    "ROOT_SIG_LABEL",
    "SEALED_SECRET_LEN",
    "SECRET_INFO_LABEL",
    "SECRET_LEN",
    "V2_MIN_TAIL",
    "BatchCache",
    "BatchCacheStats",
    "envelope_key",
    "leaf_hash",
    "open_batch_body",
    "path_length",
    "root_and_paths",
    "root_from_path",
    "secret_info",
    "statement",
]

# ENV-7 (v2): the signed statement has its own label, so a v2 root signature can never be taken for a v1
# envelope signature (whose signed bytes start with "xborder-gateway/envelope/v1/signature\0") or vice versa.
ROOT_SIG_LABEL = b"xborder-gateway/envelope/v2/batch-root\x00"
# ENV-6 (v2): HPKE info of the batch secret; HKDF info of each envelope's AEAD key and nonce.
SECRET_INFO_LABEL = b"xbge/v2/batch-secret\x00"
KEY_INFO_LABEL = b"xbge/v2/envelope-key\x00"

BATCH_ID_LEN = 16
ENC_LEN = 32
SECRET_LEN = 32
SEALED_SECRET_LEN = SECRET_LEN + TAG_LEN  # 48
KEY_LEN = 32  # AES-256-GCM
NONCE_LEN = 12
HASH_LEN = 32
MAX_BATCH = 65_536  # so an inclusion path has at most 16 hashes
MAX_PATH = 16
PROOF_FIXED = 4 + 4 + 1  # batch_size, leaf_index, path_count
# ENV-2 (v2): after H at least batch_id, enc, sealed secret and a ciphertext of the fixed proof fields, the
# signature and a minimal Avro payload, plus the tag
V2_MIN_TAIL = BATCH_ID_LEN + ENC_LEN + SEALED_SECRET_LEN + PROOF_FIXED + SIG_LEN + MIN_PAYLOAD + TAG_LEN

_HPKE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_sha256 = hashlib.sha256


# --- RFC 9162 §2.1 Merkle tree over the batch's leaves ------------------------------------------------------

def leaf_hash(header_bytes: bytes, payload: bytes) -> bytes:
    """``SHA-256(0x00 || H || SHA-256(payload))`` — the RFC 9162 leaf prefix 0x00 (no leaf is a node)."""
    return _sha256(b"\x00" + header_bytes + _sha256(payload).digest()).digest()


def _node(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)`` — the RFC 9162 node prefix 0x01."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_and_paths(leaves: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """The tree root and every leaf's inclusion path (RFC 9162 §2.1.3.1, leaf-to-root order).

    One pass of the RFC's recursion: each of the n - 1 inner nodes is hashed once, and the sibling of a
    subtree is appended to the paths of the leaves under it (deepest first, so paths come out leaf-to-root).
    """
    n = len(leaves)
    if not 1 <= n <= MAX_BATCH:
        raise ValueError(f"a batch holds 1..{MAX_BATCH} envelopes, not {n}")
    paths: list[list[bytes]] = [[] for _ in range(n)]

    def mth(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return leaves[lo]
        mid = lo + _split(hi - lo)
        left, right = mth(lo, mid), mth(mid, hi)
        for i in range(lo, mid):
            paths[i].append(right)
        for i in range(mid, hi):
            paths[i].append(left)
        return _node(left, right)

    return mth(0, n), paths


def path_length(index: int, size: int) -> int:
    """How many hashes ``PATH(index, D[size])`` has (the receiver requires exactly this many)."""
    count, lo, hi = 0, 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            hi = lo + k
        else:
            lo += k
        count += 1
    return count


def root_from_path(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2 steps 1-5 computing the root instead of comparing it; None if the path is malformed."""
    if not 0 <= index < size or any(len(p) != HASH_LEN for p in path):  # step 1
        return None
    fn, sn, r = index, size - 1, leaf  # steps 2, 3
    for p in path:  # step 4
        if sn == 0:  # 4a: more hashes than the tree has levels on this path
            return None
        if fn & 1 or fn == sn:  # 4b
            r = _node(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1  # 4c
        sn >>= 1
    return r if sn == 0 else None  # step 5: the path must reach the root exactly


# --- what is signed, and the per-envelope key schedule ------------------------------------------------------

def _name(value: str) -> bytes:
    raw = value.encode("ascii")
    return bytes([len(raw)]) + raw


def statement(suite: int, sender: str, recipient: str, *, batch_id: bytes, batch_size: int, root: bytes) -> bytes:
    """ENV-7 (v2): the signed statement binds suite, sender, recipient, batch id, batch size and root."""
    return (ROOT_SIG_LABEL + suite.to_bytes(2, "big") + _name(sender) + _name(recipient) + batch_id
            + batch_size.to_bytes(4, "big") + root)


def secret_info(batch_id: bytes) -> bytes:
    """HPKE ``info`` of the batch secret: ``SECRET_INFO_LABEL || batch_id`` (37 bytes)."""
    return SECRET_INFO_LABEL + batch_id


def envelope_key(secret: bytes, batch_id: bytes, header_bytes: bytes, message_id: bytes) -> tuple[bytes, bytes]:
    """ENV-6 (v2): AEAD key and nonce = HKDF-SHA256(salt = batch_id, ikm = secret,
    info = KEY_INFO_LABEL || message_id || SHA-256(H), L = 44), split 32 | 12."""
    okm = HKDF(algorithm=hashes.SHA256(), length=KEY_LEN + NONCE_LEN, salt=batch_id,
               info=KEY_INFO_LABEL + message_id + _sha256(header_bytes).digest()).derive(secret)
    return okm[:KEY_LEN], okm[KEY_LEN:]


# --- the receiver's caches -----------------------------------------------------------------------------------

@dataclass
class BatchCacheStats:
    secret_hits: int = 0
    secret_misses: int = 0
    root_hits: int = 0
    root_misses: int = 0


class BatchCache:
    """Bounded LRU caches of opened batch secrets and verified batch roots (thread-safe).

    * secrets are keyed by the exact HPKE inputs ``(encryption key id, batch id, enc, sealed secret)``: a hit
      returns what ``OpenBase`` on the same inputs would, so caching never changes an outcome;
    * verified roots are keyed by ``(signing key id, batch id)`` and hold ``(SHA-256(statement), signature)``;
      a hit needs both equal, so another key, another root/size/sender/recipient, or another signature
      over it is verified afresh. ENV-5 (key trusted and valid) still runs for every envelope before either.
    """

    def __init__(self, max_secrets: int = 1024, max_roots: int = 4096) -> None:
        if max_secrets < 1 or max_roots < 1:
            raise ValueError("cache sizes must be >= 1")
        self._max_secrets, self._max_roots = max_secrets, max_roots
        self._secrets: OrderedDict[tuple[bytes, bytes, bytes, bytes], bytes] = OrderedDict()
        self._roots: OrderedDict[tuple[bytes, bytes], tuple[bytes, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = BatchCacheStats()

    def secret(self, key: tuple[bytes, bytes, bytes, bytes], open_: Callable[[], bytes]) -> bytes:
        with self._lock:
            found = self._secrets.get(key)
            if found is not None:
                self._secrets.move_to_end(key)
                self.stats.secret_hits += 1
                return found
            self.stats.secret_misses += 1
        value = open_()  # raises on failure: nothing is cached
        with self._lock:
            self._secrets[key] = value
            while len(self._secrets) > self._max_secrets:
                self._secrets.popitem(last=False)
        return value

    def root_verified(self, signing_key_id: bytes, batch_id: bytes, stmt_digest: bytes, signature: bytes) -> bool:
        with self._lock:
            found = self._roots.get((signing_key_id, batch_id))
            if found is not None and found == (stmt_digest, signature):
                self._roots.move_to_end((signing_key_id, batch_id))
                self.stats.root_hits += 1
                return True
            self.stats.root_misses += 1
            return False

    def remember_root(self, signing_key_id: bytes, batch_id: bytes, stmt_digest: bytes, signature: bytes) -> None:
        with self._lock:
            self._roots[(signing_key_id, batch_id)] = (stmt_digest, signature)
            self._roots.move_to_end((signing_key_id, batch_id))
            while len(self._roots) > self._max_roots:
                self._roots.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._roots.clear()
            self.stats = BatchCacheStats()


DEFAULT_BATCH_CACHE = BatchCache()
"""The process-wide cache ``open_envelope`` uses unless it is given one."""


# --- opening (ENV-6, ENV-7 for suite v2; the other rules are shared with v1 in open_envelope) -----------------

def open_batch_body(
    data: bytes, end: int, header: EnvelopeHeader, *, gen: KeyGeneration, sender_cert: AuthorityCertificate,
    cache: BatchCache, reject: Callable[[str, str, str], EnvelopeOpenError],
) -> bytes:
    """Decrypt and verify the v2 body after ``H`` (``data[end:]``); return the payload or raise via ``reject``.

    ``parse_envelope`` has checked ``|data| - end >= V2_MIN_TAIL`` (ENV-2).
    """
    h = data[:end]
    pos = end
    batch_id = data[pos : pos + BATCH_ID_LEN]
    pos += BATCH_ID_LEN
    enc = data[pos : pos + ENC_LEN]
    pos += ENC_LEN
    sealed_secret = data[pos : pos + SEALED_SECRET_LEN]
    pos += SEALED_SECRET_LEN
    ct = data[pos:]

    # ENV-6: the batch secret, HPKE base mode to our X25519 key, info = SECRET_INFO_LABEL || batch_id
    def hpke_open() -> bytes:
        secret = _HPKE.decrypt(enc + sealed_secret, gen.encryption_private, info=secret_info(batch_id))
        if len(secret) != SECRET_LEN:
            raise ValueError("batch secret is not 32 bytes")
        return secret

    try:
        secret = cache.secret((header.encryption_key_id, batch_id, enc, sealed_secret), hpke_open)
    except (InvalidTag, ValueError) as exc:
        raise reject("HPKE decryption of the batch secret failed (altered batch id, enc or sealed secret, or "
                     "wrong key)", "ENV-6 DECRYPT_FAILED", "the envelope was altered in transit or sealed wrongly"
                     ) from exc
    # ENV-6: this envelope's AEAD key and nonce from (batch secret, message id, SHA-256(H)); aad = H || batch_id
    key, nonce = envelope_key(secret, batch_id, h, header.message_id.bytes)
    try:
        plain = AESGCM(key).decrypt(nonce, ct, h + batch_id)
    except InvalidTag as exc:
        raise reject("AEAD decryption failed (altered header, batch id or ciphertext)", "ENV-6 DECRYPT_FAILED",
                     "the envelope was altered in transit or sealed wrongly") from exc

    # ENV-7: the inclusion proof leads from this envelope's leaf to a root the sender signed
    def bad_proof(why: str) -> EnvelopeOpenError:
        return reject(f"inclusion proof invalid: {why}", "ENV-7 SIGNATURE_INVALID",
                      "the envelope is not part of a batch the named sender key signed")

    batch_size = int.from_bytes(plain[0:4], "big")
    index = int.from_bytes(plain[4:8], "big")
    count = plain[8]
    if not 1 <= batch_size <= MAX_BATCH or index >= batch_size:
        raise bad_proof(f"leaf index {index} / batch size {batch_size} out of range (size 1..{MAX_BATCH})")
    if count != path_length(index, batch_size):
        raise bad_proof(f"{count} path hashes, leaf {index} of {batch_size} needs {path_length(index, batch_size)}")
    pos = PROOF_FIXED + count * HASH_LEN
    if len(plain) < pos + SIG_LEN:
        raise bad_proof("plaintext ends inside the path or signature")
    path = [plain[PROOF_FIXED + i * HASH_LEN : PROOF_FIXED + (i + 1) * HASH_LEN] for i in range(count)]
    signature, payload = plain[pos : pos + SIG_LEN], plain[pos + SIG_LEN :]
    root = root_from_path(leaf_hash(h, payload), index, batch_size, path)
    if root is None:
        raise bad_proof("the path does not fit the leaf index and batch size")
    stmt = statement(header.suite, header.sender, header.recipient, batch_id=batch_id, batch_size=batch_size, root=root)
    digest = _sha256(stmt).digest()
    # cache keyed by the signing key id (ENV-7): a root verified under one key never vouches for another
    if not cache.root_verified(header.signing_key_id, batch_id, digest, signature):
        try:
            sender_cert.signing_key.verify(signature, stmt)
        except InvalidSignature as exc:
            raise reject("batch root signature does not verify", "ENV-7 SIGNATURE_INVALID",
                         "the envelope was not signed by the named sender key over this batch") from exc
        cache.remember_root(header.signing_key_id, batch_id, digest, signature)
    return payload
