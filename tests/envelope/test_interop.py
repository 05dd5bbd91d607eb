"""Interop: our code against an independent implementation of docs/envelope.md (pyhpke + raw Ed25519).

``DocImpl`` (tests/envelope/conftest.py) knows only the document: its constants, offsets and rules.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from xborder_gateway.envelope import new_message_id, open_envelope, seal


@pytest.mark.parametrize("size", [0, 1, 1500, 60_000])
def test_ours_seal_theirs_open(world: Any, kit: Any, size: int) -> None:
    payload = kit.avro_payload(bytes(range(256)) * (size // 256) + b"z" * (size % 256))
    sealed = seal(payload, sender=world.vn, recipient="CN", trust=world.vn_trust, document_type="IDA",
                  schema_fingerprint=kit.FP, priority=3, now=kit.T0)
    cn_gen = world.cn.generations[0]
    opened = kit.DocImpl.open(sealed.data, cn_gen.encryption_private.private_bytes_raw(),
                              world.vn.generations[0].certificate.signing_key)
    assert opened.payload == payload
    assert opened.header == sealed.header.encode()
    assert opened.fields["message_id"] == sealed.message_id
    assert opened.fields["sender"] == "VN"
    assert opened.fields["recipient"] == "CN"
    assert opened.fields["document_type"] == "IDA"
    assert opened.fields["priority"] == 3
    assert opened.fields["schema_fingerprint"] == kit.FP
    assert opened.fields["created_ms"] == int(kit.T0.timestamp() * 1000)
    assert opened.fields["expires_ms"] == int((kit.T0 + timedelta(days=2)).timestamp() * 1000)
    assert opened.fields["signing_key_id"] == kit.DocImpl.key_id(
        world.vn.generations[0].certificate.signing_key.public_bytes_raw())
    assert opened.fields["encryption_key_id"] == kit.DocImpl.key_id(
        cn_gen.certificate.encryption_key.public_bytes_raw())


@pytest.mark.parametrize("size", [0, 1, 1500, 60_000])
def test_theirs_seal_ours_open(world: Any, kit: Any, size: int) -> None:
    payload = kit.avro_payload(b"\xff" * size)
    mid = new_message_id(kit.T0)
    header = world.doc_header(message_id=mid.bytes, priority=5, document_type=b"TIR")
    data = kit.DocImpl.seal(header, payload, world.vn.generations[0].signing_private,
                            world.cn.generations[0].certificate.encryption_key.public_bytes_raw())
    opened = open_envelope(data, me=world.cn, trust=world.cn_trust, replay=None, now=kit.T0 + timedelta(minutes=1))
    assert opened.payload == payload
    assert opened.message_id == mid
    assert opened.header.document_type == "TIR"
    assert opened.header.priority == 5
    assert opened.header.encode() == header.encode()


def test_theirs_open_refuses_our_envelope_for_someone_else(world: Any, kit: Any) -> None:
    """Sanity of the independent side: a wrong private key fails there too (the interop is not vacuous)."""
    sealed = seal(kit.avro_payload(), sender=world.vn, recipient="CN", trust=world.vn_trust, document_type="IDA",
                  schema_fingerprint=kit.FP, now=kit.T0)
    wrong = world.vn.generations[0].encryption_private.private_bytes_raw()
    with pytest.raises(Exception, match=r"(?i)fail|invalid|tag|open"):
        kit.DocImpl.open(sealed.data, wrong, world.vn.generations[0].certificate.signing_key)
