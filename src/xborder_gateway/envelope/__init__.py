"""Envelope: Ed25519 sign-then-HPKE-encrypt between customs authorities (docs/envelope.md).

Seal on the sending side, open on the receiving side::

    me = LocalAuthority.load(settings, "VN", passphrase)
    trust = TrustStore.load(settings, "VN")
    sealed = seal(avro_bytes, sender=me, recipient="CN", trust=trust, document_type="IDA",
                  schema_fingerprint=avro_bytes[2:10])
    # … on CN …
    opened = open_envelope(sealed.data, me=cn, trust=cn_trust, replay=SqliteReplayStore(path))

``open_envelope`` raises :class:`EnvelopeOpenError` (an ``EnvelopeError``) whose ``code`` names the rule
(``ENV-7 SIGNATURE_INVALID``); :class:`EnvelopeReplayError` for ENV-10.
"""

from __future__ import annotations

from xborder_gateway.envelope._batch import DEFAULT_BATCH_CACHE, MAX_BATCH, BatchCache, BatchCacheStats
from xborder_gateway.envelope._batch_seal import BatchSealer
from xborder_gateway.envelope._errors import EnvelopeOpenError, EnvelopeReplayError
from xborder_gateway.envelope._format import DEFAULT_LIMITS, SUITE_V1, SUITE_V2, EnvelopeHeader, EnvelopeLimits
from xborder_gateway.envelope._keys import (
    COUNTERPARTS,
    X25519_EXTENSION_OID,
    AuthorityCertificate,
    KeyGeneration,
    KeyInfo,
    LocalAuthority,
    TrustStore,
    export_bundle,
    import_bundle,
    init_authority,
    key_id,
    list_keys,
    make_generation,
    parse_bundle,
    resolve_passphrase,
    rotate,
    split_bundle,
)
from xborder_gateway.envelope._receipts import (
    NIL_MESSAGE_ID,
    RECEIPT_DOCUMENT_TYPE,
    BusinessDecision,
    add_receipt,
    encode_receipt,
    make_receipt,
    match_receipt,
    open_receipt,
    receipt_decision,
    seal_receipt,
)
from xborder_gateway.envelope._replay import MemoryReplayGuard, ReplayRecord, SqliteReplayStore
from xborder_gateway.envelope._seal import (
    OpenedEnvelope,
    ReplayGuard,
    SealedEnvelope,
    new_message_id,
    open_envelope,
    peek_header,
    seal,
)

__all__ = [
    "COUNTERPARTS",
    "DEFAULT_BATCH_CACHE",
    "DEFAULT_LIMITS",
    "MAX_BATCH",
    "NIL_MESSAGE_ID",
    "RECEIPT_DOCUMENT_TYPE",
    "SUITE_V1",
    "SUITE_V2",
    "X25519_EXTENSION_OID",
    "AuthorityCertificate",
    "BatchCache",
    "BatchCacheStats",
    "BatchSealer",
    "BusinessDecision",
    "EnvelopeHeader",
    "EnvelopeLimits",
    "EnvelopeOpenError",
    "EnvelopeReplayError",
    "KeyGeneration",
    "KeyInfo",
    "LocalAuthority",
    "MemoryReplayGuard",
    "OpenedEnvelope",
    "ReplayGuard",
    "ReplayRecord",
    "SealedEnvelope",
    "SqliteReplayStore",
    "TrustStore",
    "add_receipt",
    "encode_receipt",
    "export_bundle",
    "import_bundle",
    "init_authority",
    "key_id",
    "list_keys",
    "make_generation",
    "make_receipt",
    "match_receipt",
    "new_message_id",
    "open_envelope",
    "open_receipt",
    "parse_bundle",
    "peek_header",
    "receipt_decision",
    "resolve_passphrase",
    "rotate",
    "seal",
    "seal_receipt",
    "split_bundle",
]
