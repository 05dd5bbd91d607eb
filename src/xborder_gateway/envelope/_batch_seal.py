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
    envelope_key,
    leaf_hash,
    root_and_paths,
    secret_info,
    statement,
)
from xborder_gateway.envelope._format import (
    DEFAULT_LIMITS,
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
    payload: bytes
    document_type: str
    schema_fingerprint: bytes
    message_id: uuid.UUID
    priority: int
    ttl: timedelta


class BatchSealer:
    """Collects payloads for one recipient and seals them together; one instance per transaction attempt.

    ``suite`` is ``SUITE_V2`` (batch) or ``SUITE_V1`` (each envelope sealed alone by :func:`seal`, for a
    counterpart that does not speak v2; ``settings.envelope_suite``). All envelopes of a sealer share one
    captured ``now`` (their ``created``), the sender's current key generation and the recipient's current
    certificate. ``randomness`` exists for known-answer tests only.
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
        self._limits, self._max = limits, max_size
        self._random = randomness
        self._items: list[_Item] = []
        self._ids: set[uuid.UUID] = set()
        self._spent = False

    @property
    def recipient(self) -> str:
        return self._recipient

    def __len__(self) -> int:
        return len(self._items)

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
        """Queue one payload; returns its position (= its leaf index in v2). Checks what ``seal`` checks."""
        if self._spent:
            raise RuntimeError("this batch was already sealed: create a new BatchSealer for every attempt")
        if len(self._items) >= self._max:
            raise ValueError(f"a batch holds at most {self._max} envelopes: seal it and start another")
        problem = _payload_problem(payload, schema_fingerprint)  # ENV-9, as in seal()
        if problem is not None:
            raise EnvelopeError(problem[0], code=problem[1], hint=problem[2])
        if not timedelta(0) < ttl <= self._limits.max_ttl:  # ENV-8: the receiver would refuse it
            raise EnvelopeError(f"ttl {ttl} outside (0, {self._limits.max_ttl}]", code="ENV-8 BAD_LIFETIME",
                                hint="choose a ttl the counterpart accepts")
        mid = message_id or new_message_id(self._now)
        if mid in self._ids:  # ENV-10 at the receiver; and in v2 one (secret, id, H) must name one plaintext
            raise EnvelopeError(f"message id {mid} is already in this batch", code="ENV-10 MESSAGE_ID_REUSED",
                                hint="every envelope needs its own message id")
        self._ids.add(mid)
        self._items.append(_Item(bytes(payload), document_type, bytes(schema_fingerprint), mid, priority, ttl))
        return len(self._items) - 1

    def seal(self) -> list[SealedEnvelope]:
        """Seal everything added, in order; the sealer is spent afterwards (also when this raises)."""
        if self._spent:
            raise RuntimeError("this batch was already sealed: create a new BatchSealer for every attempt")
        self._spent = True
        if not self._items:
            return []
        if self.suite == SUITE_V1:
            return [seal(i.payload, sender=self._sender, recipient=self._recipient, trust=self._trust,
                         document_type=i.document_type, schema_fingerprint=i.schema_fingerprint,
                         message_id=i.message_id, priority=i.priority, ttl=i.ttl, now=self._now,
                         limits=self._limits) for i in self._items]
        return self._seal_v2()

    def _seal_v2(self) -> list[SealedEnvelope]:
        when = self._now
        gen = self._sender.current(when)
        rcpt = self._trust.recipient_certificate(self._recipient, when)
        created = when.replace(microsecond=when.microsecond // 1000 * 1000)
        headers: list[EnvelopeHeader] = []
        encoded: list[bytes] = []
        for i in self._items:
            header = EnvelopeHeader(
                message_id=i.message_id, sender=self._sender.authority, recipient=self._recipient,
                document_type=i.document_type, schema_fingerprint=i.schema_fingerprint, created=created,
                expires=created + i.ttl, signing_key_id=gen.certificate.signing_key_id,
                encryption_key_id=rcpt.encryption_key_id, priority=i.priority, suite=SUITE_V2,
            )
            try:
                encoded.append(header.encode())
            except ValueError as exc:
                raise EnvelopeError(f"cannot build the header of {i.message_id}: {exc}",
                                    code="ENV-2 INVALID_HEADER_FIELD", hint="fix the field named in the message"
                                    ) from exc
            headers.append(header)
        n = len(self._items)
        # a fresh batch id and batch secret for this attempt (never reused: the sealer is spent after this)
        batch_id = self._random(BATCH_ID_LEN)
        secret = self._random(SECRET_LEN)
        if len(batch_id) != BATCH_ID_LEN or len(secret) != SECRET_LEN:
            raise ValueError("randomness returned the wrong number of bytes")
        # ENV-6: one HPKE encapsulation of the secret for the whole batch, info = SECRET_INFO_LABEL || batch_id
        enc_sealed = _HPKE.encrypt(secret, rcpt.encryption_key, info=secret_info(batch_id))
        # ENV-7: one signature over the statement binding suite, sender, recipient, batch id, size and root
        root, paths = root_and_paths([leaf_hash(h, i.payload) for h, i in zip(encoded, self._items, strict=True)])
        signature = gen.signing_private.sign(statement(SUITE_V2, self._sender.authority, self._recipient,
                                                       batch_id=batch_id, batch_size=n, root=root))
        out: list[SealedEnvelope] = []
        for index, (header, h, item, path) in enumerate(zip(headers, encoded, self._items, paths, strict=True)):
            key, nonce = envelope_key(secret, batch_id, h, item.message_id.bytes)
            pt = b"".join((n.to_bytes(4, "big"), index.to_bytes(4, "big"), bytes([len(path)]), *path,
                           signature, item.payload))
            data = h + batch_id + enc_sealed + AESGCM(key).encrypt(nonce, pt, h + batch_id)
            if len(data) > self._limits.max_envelope_bytes:  # ENV-1: never send what the receiver must refuse
                raise EnvelopeError(f"envelope of {len(data)} bytes exceeds {self._limits.max_envelope_bytes}",
                                    code="ENV-1 SIZE_EXCEEDED", hint="split the document")
            out.append(SealedEnvelope(header, data, _sha256(data).digest()))
        return out
