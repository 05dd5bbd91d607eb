"""ENV-11: signed receipts — ACK and NACK records, sealed back to the sender, matched to what was sent."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from xborder_gateway import avro
from xborder_gateway.envelope import (
    NIL_MESSAGE_ID,
    EnvelopeOpenError,
    make_receipt,
    match_receipt,
    open_envelope,
    open_receipt,
    seal,
    seal_receipt,
)
from xborder_gateway.errors import EnvelopeError


def _declaration(world: Any, kit: Any) -> Any:
    return seal(kit.avro_payload(), sender=world.vn, recipient="CN", trust=world.vn_trust, document_type="IDA",
                schema_fingerprint=kit.FP, now=kit.T0)


def test_ack_round_trip(world: Any, kit: Any) -> None:
    sent = _declaration(world, kit)
    opened = open_envelope(sent.data, me=world.cn, trust=world.cn_trust, replay=None, now=kit.T0)
    record = make_receipt(opened, receiver="CN-7220", outcome="ACK", received_at=kit.T0, business_key="101234567890")
    assert record["reason_code"] is None
    assert record["document_type"] == "IDA"
    receipt = seal_receipt(record, me=world.cn, trust=world.cn_trust, now=kit.T0)
    assert receipt.header.document_type == "RECEIPT"
    assert receipt.header.recipient == "VN"
    assert receipt.header.schema_fingerprint == avro.fingerprint("Receipt", 1)  # no decision: still Receipt v1
    opened_receipt, got = open_receipt(receipt.data, me=world.vn, trust=world.vn_trust, replay=None,
                                       now=kit.T0 + timedelta(seconds=1))
    assert opened_receipt.sender == "CN"
    assert got["outcome"] == "ACK"
    assert got["message_id"] == str(sent.message_id)
    assert got["envelope_sha256"] == sent.sha256
    match_receipt(got, sent)


def test_nack_for_a_refused_envelope_names_id_and_digest(world: Any, kit: Any) -> None:
    sent = _declaration(world, kit)
    tampered = sent.data[:-1] + bytes([sent.data[-1] ^ 1])
    with pytest.raises(EnvelopeOpenError) as err:
        open_envelope(tampered, me=world.cn, trust=world.cn_trust, replay=None, now=kit.T0)
    record = make_receipt(err.value, receiver="CN", outcome="NACK", received_at=kit.T0)
    assert record["message_id"] == str(sent.message_id)  # from the (unverified) header
    assert record["reason_code"] == "ENV-6 DECRYPT_FAILED"
    assert record["document_type"] is None
    receipt = seal_receipt(record, me=world.cn, trust=world.cn_trust, now=kit.T0)
    _, got = open_receipt(receipt.data, me=world.vn, trust=world.vn_trust, replay=None, now=kit.T0)
    assert got["outcome"] == "NACK"
    with pytest.raises(EnvelopeError) as mismatch:
        match_receipt(got, sent)  # CN acknowledged other bytes than VN sent
    assert mismatch.value.code == "ENV-11 RECEIPT_DIGEST_MISMATCH"


def test_nack_when_header_did_not_parse(world: Any, kit: Any) -> None:
    with pytest.raises(EnvelopeOpenError) as err:
        open_envelope(b"garbage", me=world.cn, trust=world.cn_trust, replay=None, now=kit.T0)
    with pytest.raises(ValueError, match="sender="):
        make_receipt(err.value, receiver="CN", outcome="NACK")
    record = make_receipt(err.value, receiver="CN", outcome="NACK", sender="VN")
    assert record["message_id"] == NIL_MESSAGE_ID
    assert record["reason_code"] == "ENV-2 MALFORMED"
    assert avro.decode(avro.encode("Receipt", record)).record["envelope_sha256"] == err.value.envelope_sha256
    with pytest.raises(ValueError, match="NACK"):
        make_receipt(err.value, receiver="CN", outcome="ACK", sender="VN")


def test_receipt_checks(world: Any, kit: Any) -> None:
    sent = _declaration(world, kit)
    other = _declaration(world, kit)
    opened = open_envelope(sent.data, me=world.cn, trust=world.cn_trust, replay=None, now=kit.T0)
    record = make_receipt(opened, receiver="CN", outcome="ACK", received_at=kit.T0)
    with pytest.raises(EnvelopeError) as err:
        match_receipt(record, other)
    assert err.value.code == "ENV-11 RECEIPT_MISMATCH"
    # a declaration envelope is not a receipt
    with pytest.raises(EnvelopeError) as err:
        open_receipt(sent.data, me=world.cn, trust=world.cn_trust, replay=None, now=kit.T0)
    assert err.value.code == "ENV-11 NOT_A_RECEIPT"
    # a receipt claiming another issuer than its signer
    forged = dict(record, receiver_authority="VN")
    receipt = seal_receipt(forged, me=world.cn, trust=world.cn_trust, recipient="VN", now=kit.T0)
    with pytest.raises(EnvelopeError) as err:
        open_receipt(receipt.data, me=world.vn, trust=world.vn_trust, replay=None, now=kit.T0)
    assert err.value.code == "ENV-11 RECEIPT_MISMATCH"


# --- Receipt v2: one answer per declaration (issue 13 item 2) -------------------------------------------------

def _opened_ida(world: Any, kit: Any) -> Any:
    from xborder_gateway.envelope import open_envelope, seal

    sealed = seal(kit.avro_payload(), sender=world.vn, recipient="CN", trust=world.vn_trust, document_type="IDA",
                  schema_fingerprint=kit.FP, now=kit.T0)
    return sealed, open_envelope(sealed.data, me=world.cn, trust=world.cn_trust, replay=None, now=kit.T0)


def test_receipt_without_decision_stays_receipt_v1(world: Any, kit: Any) -> None:
    from xborder_gateway import avro
    from xborder_gateway.envelope import encode_receipt, make_receipt, receipt_decision

    _, opened = _opened_ida(world, kit)
    record = make_receipt(opened, receiver="CN", outcome="ACK", received_at=kit.T0)
    payload = encode_receipt(record)
    assert payload[2:10] == avro.fingerprint("Receipt", 1)  # a v1-only counterpart reads it unchanged
    assert receipt_decision(record) is None


@pytest.mark.parametrize("suite", [1, 2])
def test_immediate_decision_travels_in_the_receipt(world: Any, kit: Any, suite: int) -> None:
    from xborder_gateway import avro
    from xborder_gateway.envelope import (
        BatchCache,
        BatchSealer,
        BusinessDecision,
        add_receipt,
        make_receipt,
        match_receipt,
        open_receipt,
        receipt_decision,
    )

    sent, opened = _opened_ida(world, kit)
    decision = BusinessDecision("HELD", (("PHYSICAL_CONTROL", "kiểm tra thực tế / 查验"),), kit.T0)
    record = make_receipt(opened, receiver="CN-7220", outcome="ACK", received_at=kit.T0, decision=decision,
                          business_key="105123456789")
    sealer = BatchSealer(sender=world.cn, recipient="VN", trust=world.cn_trust, now=kit.T0, suite=suite)
    add_receipt(sealer, record)
    (sealed,) = sealer.seal()
    got_opened, got = open_receipt(sealed.data, me=world.vn, trust=world.vn_trust, replay=None, now=kit.T0,
                                   batch_cache=BatchCache())
    assert got_opened.header.suite == suite
    assert got_opened.payload[2:10] == avro.fingerprint("Receipt", 2)
    match_receipt(got, sent)
    assert receipt_decision(got) == decision
    assert got["outcome"] == "ACK"


def test_v1_receipt_reads_with_no_decision(world: Any, kit: Any) -> None:
    from xborder_gateway.envelope import make_receipt, open_receipt, receipt_decision, seal_receipt

    _, opened = _opened_ida(world, kit)
    record = make_receipt(opened, receiver="CN", outcome="ACK", received_at=kit.T0)
    sealed = seal_receipt(record, me=world.cn, trust=world.cn_trust, now=kit.T0)
    _, got = open_receipt(sealed.data, me=world.vn, trust=world.vn_trust, replay=None, now=kit.T0)
    assert receipt_decision(got) is None
    assert got["business_reasons"] == []


def test_a_decision_only_on_an_ack(world: Any, kit: Any) -> None:
    from xborder_gateway.envelope import BusinessDecision, encode_receipt, make_receipt

    _, opened = _opened_ida(world, kit)
    with pytest.raises(ValueError, match="only an ACK"):
        make_receipt(opened, receiver="CN", outcome="NACK", reason_code="X", decision=BusinessDecision("ACCEPTED"))
    with pytest.raises(ValueError, match="needs at least one reason"):
        BusinessDecision("REJECTED")
    record = make_receipt(opened, receiver="CN", outcome="ACK", received_at=kit.T0)
    record["business_reasons"] = [{"code": "X", "text": "y"}]
    with pytest.raises(ValueError, match="without business_status"):
        encode_receipt(record)


def test_a_nack_with_a_decision_is_refused_on_opening(world: Any, kit: Any) -> None:
    """ENV-11: a counterpart that puts a decision on a NACK is refused, not half-believed."""
    from xborder_gateway import avro
    from xborder_gateway.envelope import make_receipt, open_receipt, seal
    from xborder_gateway.errors import EnvelopeError

    _, opened = _opened_ida(world, kit)
    record = make_receipt(opened, receiver="CN", outcome="NACK", reason_code="ENV-7 SIGNATURE_INVALID",
                          received_at=kit.T0)
    record.update(business_status="ACCEPTED", business_responded_at=kit.T0)
    payload = avro.encode("Receipt", record, version=2)
    sealed = seal(payload, sender=world.cn, recipient="VN", trust=world.cn_trust, document_type="RECEIPT",
                  schema_fingerprint=payload[2:10], now=kit.T0)
    with pytest.raises(EnvelopeError) as err:
        open_receipt(sealed.data, me=world.vn, trust=world.vn_trust, replay=None, now=kit.T0)
    assert err.value.code == "ENV-11 RECEIPT_MISMATCH"
