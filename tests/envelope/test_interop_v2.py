"""Interop for suite v2: our code against DocImplV2 (tests/envelope/conftest.py), an implementation of
docs/envelope.md §8 written with pyhpke + cryptography (HKDF, AES-GCM, Ed25519) + hashlib only."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pytest

from xborder_gateway.envelope import BatchCache, BatchSealer, new_message_id, open_envelope


@pytest.mark.parametrize("n", [1, 2, 3, 5, 16, 33])
def test_ours_seal_theirs_open(world: Any, kit: Any, n: int) -> None:
    sealer = BatchSealer(sender=world.vn, recipient="CN", trust=world.vn_trust, now=kit.T0)
    payloads = [kit.avro_payload(bytes([i]) * (i * 37 % 1500)) for i in range(n)]
    for i, p in enumerate(payloads):
        sealer.add(p, document_type="TIR" if i % 2 else "IDA", schema_fingerprint=kit.FP, priority=i % 10)
    sealed = sealer.seal()
    cn_gen, vn_gen = world.cn.generations[0], world.vn.generations[0]
    for i in reversed(range(n)):
        opened = kit.DocImplV2.open(sealed[i].data, cn_gen.encryption_private.private_bytes_raw(),
                                    vn_gen.certificate.signing_key)
        assert opened.payload == payloads[i]
        assert opened.header == sealed[i].header.encode()
        assert opened.fields["message_id"] == sealed[i].message_id
        assert opened.fields["suite"] == 2
        assert opened.fields["leaf_index"] == i
        assert opened.fields["batch_size"] == n
        assert opened.fields["priority"] == i % 10
        assert opened.fields["signing_key_id"] == kit.DocImpl.key_id(vn_gen.certificate.signing_key.public_bytes_raw())


@pytest.mark.parametrize("n", [1, 2, 3, 5, 16, 33])
def test_theirs_seal_ours_open(world: Any, kit: Any, n: int) -> None:
    headers = [world.doc_header(message_id=new_message_id(kit.T0).bytes, priority=i % 10, suite=2)
               for i in range(n)]
    payloads = [kit.avro_payload(b"\xff" * (i * 53 % 2000)) for i in range(n)]
    envelopes = kit.DocImplV2.seal_batch(headers, payloads, world.vn.generations[0].signing_private,
                                         world.cn.generations[0].certificate.encryption_key.public_bytes_raw(),
                                         batch_id=os.urandom(16), secret=os.urandom(32))
    shared = BatchCache()
    for i in reversed(range(n)):
        for cache in (BatchCache(), shared):  # alone, and with its batch-mates' cache
            opened = open_envelope(envelopes[i], me=world.cn, trust=world.cn_trust, replay=None,
                                   now=kit.T0 + timedelta(minutes=1), batch_cache=cache)
            assert opened.payload == payloads[i]
            assert opened.header.encode() == headers[i].encode()
    assert shared.stats.root_misses == 1


def test_theirs_open_refuses_a_batch_for_someone_else(world: Any, kit: Any) -> None:
    """Sanity of the independent side: a wrong private key or signer fails there too (not vacuous)."""
    sealer = BatchSealer(sender=world.vn, recipient="CN", trust=world.vn_trust, now=kit.T0)
    sealer.add(kit.avro_payload(), document_type="IDA", schema_fingerprint=kit.FP)
    (sealed,) = sealer.seal()
    wrong = world.vn.generations[0].encryption_private.private_bytes_raw()
    with pytest.raises(Exception, match=r"(?i)fail|invalid|tag|open"):
        kit.DocImplV2.open(sealed.data, wrong, world.vn.generations[0].certificate.signing_key)
    from cryptography.exceptions import InvalidSignature

    with pytest.raises(InvalidSignature):
        kit.DocImplV2.open(sealed.data, world.cn.generations[0].encryption_private.private_bytes_raw(),
                           world.cn.generations[0].certificate.signing_key)
