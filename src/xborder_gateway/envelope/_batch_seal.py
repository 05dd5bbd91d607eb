"""Sealing a batch of envelopes: suite v2 (one signature, one HPKE encapsulation per batch) or v1 (one each).

A :class:`BatchSealer` is created **per transaction attempt**::

    sealer = BatchSealer(sender=vn, recipient="CN", trust=vn_trust, suite=settings.envelope_suite)
    for record in batch:
        sealer.add(record.payload, document_type="IDA", schema_fingerprint=record.payload[2:10],
                   message_id=record.message_id)
    envelopes = sealer.seal()          # list[SealedEnvelope], in add() order; the sealer is spent

If the transaction aborts, the redo builds a **new** sealer: a fresh batch secret and batch id, so no AEAD key
and nonce is ever used with two plaintexts, even when the redo reuses the message ids (docs/envelope.md §8).
Resending an envelope that *was* committed re-sends its stored bytes, as in v1.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from xborder_gateway.envelope._batch import (
    BATCH_ID_LEN,
    MAX_BATCH,
    SECRET_LEN,
    V2_MIN_TAIL,
    envelope_key,
    leaf_hash,
    root_and_paths,
    secret_info,
    statement,
)
from xborder_gateway.envelope._format import (
    DEFAULT_LIMITS,
    MIN_PAYLOAD,
    SUITE_V1,
    SUITE_V2,
    EnvelopeHeader,
    EnvelopeLimits,
)
from xborder_gateway.envelope._keys import LocalAuthority, TrustStore
from xborder_gateway.envelope._seal import SealedEnvelope, _aware, _payload_problem, new_message_id, seal
from xborder_gateway.errors import EnvelopeError

__all__ = ["BatchSealer"]

_HPKE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_sha256 = hashlib.sha256


@dataclass(frozen=True, slots=True)
class _Item:
    header: EnvelopeHeader
    encoded: bytes
    payload: bytes


def _proof_bound(max_size: int) -> int:
    """The longest inclusion path in a tree of at most ``max_size`` leaves (ceil(log2(max_size)))."""
    return (max_size - 1).bit_length()


class BatchSealer:
    """Collects payloads for one recipient and seals them together; one instance per transaction attempt.

    ``suite`` is ``SUITE_V2`` (batch) or ``SUITE_V1`` (each envelope sealed alone by :func:`seal` as it is
    added, for a counterpart that does not speak v2; ``settings.envelope_suite``). All envelopes of a sealer
    share one captured ``now`` (their ``created``), the sender's current key generation and the recipient's
    current certificate (resolved here: ENV-4 / ENV-5 errors are raised by the constructor).

    Every per-envelope error (ENV-9 framing, ENV-8 ttl, ENV-2 header field, ENV-1 size, a message id twice)
    is raised by :meth:`add`, which then queues nothing — so one bad document is rejected alone and
    :meth:`seal` only does the crypto. ``randomness`` exists for known-answer tests only.
    """

    def __init__(
        self,
        *,
        sender: LocalAuthority,
        recipient: str,
        trust: TrustStore,
        suite: int = SUITE_V2,
        now: datetime | None = None,
        limits: EnvelopeLimits = DEFAULT_LIMITS,
        max_size: int = MAX_BATCH,
        randomness: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if suite not in (SUITE_V1, SUITE_V2):
            raise EnvelopeError(f"suite {suite} is not one this gateway seals (1 or 2)", code="ENV-3 UNSUPPORTED_SUITE",
                                hint="set envelope_suite to 1 or 2")
        if not 1 <= max_size <= MAX_BATCH:
            raise ValueError(f"max_size must be 1..{MAX_BATCH}")
        self.suite = suite
        self._sender, self._recipient, self._trust = sender, recipient, trust
        self._now = _aware(now)
        self._created = self._now.replace(microsecond=self._now.microsecond // 1000 * 1000)
        self._gen = sender.current(self._now)
        self._rcpt = trust.recipient_certificate(recipient, self._now)
        self._limits, self._max = limits, max_size
        self._random = randomness
        self._items: list[_Item] = []
        self._v1: list[SealedEnvelope] = []
        self._ids: set[uuid.UUID] = set()
        self._spent = False

    @property
    def recipient(self) -> str:
        return self._recipient

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def spent(self) -> bool:
        """True once :meth:`seal` ran (or failed): a redo needs a new sealer."""
        return self._spent

    def add(
        self,
        payload: bytes,
        *,
        document_type: str,
        schema_fingerprint: bytes,
        message_id: uuid.UUID | None = None,
        priority: int = 0,
        ttl: timedelta = timedelta(days=2),
    ) -> int:
        """Queue one payload; returns its position (= its leaf index in v2). Raises what ``seal()`` would."""
        if self._spent:
            raise RuntimeError("this batch was already sealed: create a new BatchSealer for every attempt")
        if len(self._ids) >= self._max:
            raise ValueError(f"a batch holds at most {self._max} envelopes: seal it and start another")
        mid = message_id or new_message_id(self._now)
        if mid in self._ids:  # ENV-10 at the receiver; and in v2 one (secret, id, H) must name one plaintext
            raise EnvelopeError(f"message id {mid} is already in this batch", code="ENV-10 MESSAGE_ID_REUSED",
                                hint="every envelope needs its own message id")
        if self.suite == SUITE_V1:
            self._v1.append(seal(payload, sender=self._sender, recipient=self._recipient, trust=self._trust,
                                 document_type=document_type, schema_fingerprint=schema_fingerprint, message_id=mid,
                                 priority=priority, ttl=ttl, now=self._now, limits=self._limits))
            self._ids.add(mid)
            return len(self._v1) - 1
        problem = _payload_problem(payload, schema_fingerprint)  # ENV-9, as in seal()
        if problem is not None:
            raise EnvelopeError(problem[0], code=problem[1], hint=problem[2])
        if not timedelta(0) < ttl <= self._limits.max_ttl:  # ENV-8: the receiver would refuse it
            raise EnvelopeError(f"ttl {ttl} outside (0, {self._limits.max_ttl}]", code="ENV-8 BAD_LIFETIME",
                                hint="choose a ttl the counterpart accepts")
        header = EnvelopeHeader(
            message_id=mid, sender=self._sender.authority, recipient=self._recipient, document_type=document_type,
            schema_fingerprint=bytes(schema_fingerprint), created=self._created, expires=self._created + ttl,
            signing_key_id=self._gen.certificate.signing_key_id, encryption_key_id=self._rcpt.encryption_key_id,
            priority=priority, suite=SUITE_V2,
        )
        try:
            h = header.encode()
        except ValueError as exc:
            raise EnvelopeError(f"cannot build the header: {exc}", code="ENV-2 INVALID_HEADER_FIELD",
                                hint="fix the field named in the message") from exc
        # ENV-1: never send what the receiver must refuse; bounded with the longest path this sealer can need
        size = len(h) + V2_MIN_TAIL - MIN_PAYLOAD + 32 * _proof_bound(self._max) + len(payload)
        if size > self._limits.max_envelope_bytes:
            raise EnvelopeError(f"envelope of up to {size} bytes exceeds {self._limits.max_envelope_bytes}",
                                code="ENV-1 SIZE_EXCEEDED", hint="split the document")
        self._ids.add(mid)
        self._items.append(_Item(header, h, bytes(payload)))
        return len(self._items) - 1

    def seal(self) -> list[SealedEnvelope]:
        """Seal everything added, in order; the sealer is spent afterwards."""
        if self._spent:
            raise RuntimeError("this batch was already sealed: create a new BatchSealer for every attempt")
        self._spent = True
        if self.suite == SUITE_V1:
            return list(self._v1)
        if not self._items:
            return []
        return self._seal_v2()

    def _seal_v2(self) -> list[SealedEnvelope]:
        items = self._items
        n = len(items)
        # a fresh batch id and batch secret for this attempt (never reused: the sealer is spent after this)
        batch_id = self._random(BATCH_ID_LEN)
        secret = self._random(SECRET_LEN)
        if len(batch_id) != BATCH_ID_LEN or len(secret) != SECRET_LEN:
            raise ValueError("randomness returned the wrong number of bytes")
        # ENV-6: one HPKE encapsulation of the secret for the whole batch, info = SECRET_INFO_LABEL || batch_id
        enc_sealed = _HPKE.encrypt(secret, self._rcpt.encryption_key, info=secret_info(batch_id))
        # ENV-7: one signature over the statement binding suite, sender, recipient, batch id, size and root
        root, paths = root_and_paths([leaf_hash(i.encoded, i.payload) for i in items])
        signature = self._gen.signer.sign(statement(SUITE_V2, self._sender.authority, self._recipient,
                                                      batch_id=batch_id, batch_size=n, root=root))
        out: list[SealedEnvelope] = []
        for index, (item, path) in enumerate(zip(items, paths, strict=True)):
            h = item.encoded
            key, nonce = envelope_key(secret, batch_id, h, item.header.message_id.bytes)
            pt = b"".join((n.to_bytes(4, "big"), index.to_bytes(4, "big"), bytes([len(path)]), *path,
                           signature, item.payload))
            data = h + batch_id + enc_sealed + AESGCM(key).encrypt(nonce, pt, h + batch_id)
            out.append(SealedEnvelope(item.header, data, _sha256(data).digest()))
        self._items = []
        return out
