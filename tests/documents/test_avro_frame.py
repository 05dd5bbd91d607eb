"""Avro single-object framing: fingerprints, round trips, and every frame error with its code."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from decimal import Decimal
from typing import Any

import fastavro
import pytest

from xborder_gateway import avro


def _rabin_crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO written from the Avro specification, independent of fastavro's implementation."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_independent_crc64_matches_the_specification_vector() -> None:
    # Avro share/test/data/schema-tests.txt: "null" -> 7195948357588979594
    assert _rabin_crc64_avro(b'"null"') == 7195948357588979594


@pytest.mark.parametrize("info", avro.known_schemas(), ids=lambda i: f"{i.name}.v{i.version}")
def test_fingerprint_is_le_crc64_of_the_parsing_canonical_form(info: avro.SchemaInfo) -> None:
    expected = _rabin_crc64_avro(info.canonical_form.encode("utf-8")).to_bytes(8, "little")
    assert info.fingerprint == expected
    assert avro.fingerprint(info.name, info.version) == expected


def test_the_four_agreed_schemas_exist() -> None:
    names = {i.name for i in avro.known_schemas()}
    assert {"Declaration", "VehicleManifest", "Receipt", "BusinessResponse"} <= names
    assert avro.schema_info("Declaration").version >= 2  # evolution has a pair to check


def _receipt(**over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "message_id": str(uuid.uuid4()),
        "envelope_sha256": bytes(range(32)),
        "outcome": "NACK",
        "reason_code": "ENV-7",
        "reason_text": "chữ ký không hợp lệ / 签名无效",
        "receiver_authority": "CN-7220",
        "sender_authority": "VN",
        "received_at": dt.datetime(2026, 5, 17, 3, 4, 5, 678000, tzinfo=dt.UTC),
        "document_type": "IDA",
        "business_key": "105123456789",
    }
    rec.update(over)
    return rec


def test_receipt_round_trip_and_frame_layout() -> None:
    rec = _receipt()
    frame = avro.encode("Receipt", rec, version=1)
    assert frame[:2] == b"\xc3\x01"
    assert frame[2:10] == avro.fingerprint("Receipt", 1)
    decoded = avro.decode(frame)
    assert (decoded.schema_name, decoded.version) == ("Receipt", 1)
    assert decoded.record == rec
    # the body is plain Avro binary: any library decodes it with the schema file alone
    v1 = json.loads(avro.schema_info("Receipt", 1).path.read_text())
    body = fastavro.schemaless_reader(io.BytesIO(frame[10:]), fastavro.parse_schema(v1))
    assert body == rec


def test_business_response_round_trip() -> None:
    rec = {
        "message_id": str(uuid.uuid4()),
        "business_key": "305123456789",
        "document_type": "EDA",
        "status": "REJECTED",
        "reasons": [{"code": "HS_NOT_IN_CROSSWALK", "text": "Sầu riêng tươi 0810.60"}],
        "responded_at": dt.datetime(2026, 5, 17, 3, 4, 5, tzinfo=dt.UTC),
    }
    assert avro.decode(avro.encode("BusinessResponse", rec)).record == rec


def test_decimal_is_exact() -> None:
    # a minimal v1 declaration is enough to show decimals survive without float
    info = avro.schema_info("Declaration", 1)
    goods_schema = next(f for f in info.raw["fields"] if f["name"] == "goods")
    assert goods_schema["type"]["items"]["name"] == "GoodsItem"
    value = Decimal("12345678901234567890.1234")
    schema = {"type": "bytes", "logicalType": "decimal", "precision": 24, "scale": 4}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, value)
    buf.seek(0)
    assert fastavro.schemaless_reader(buf, schema) == value


_GOOD = avro.encode("Receipt", _receipt())

FRAME_ERRORS = [
    ("empty", b"", "AVRO_TRUNCATED"),
    ("one marker byte", b"\xc3", "AVRO_TRUNCATED"),
    ("wrong marker", b"\x4f\x62\x6a\x01" + _GOOD[4:], "AVRO_BAD_MAGIC"),
    ("confluent wire format", b"\x00\x00\x00\x00\x01" + _GOOD[10:], "AVRO_BAD_MAGIC"),
    ("header cut", _GOOD[:7], "AVRO_TRUNCATED"),
    ("unknown fingerprint", b"\xc3\x01" + b"\x00" * 8 + _GOOD[10:], "AVRO_UNKNOWN_FINGERPRINT"),
    ("body cut", _GOOD[:-5], "AVRO_TRUNCATED"),
    ("trailing byte", _GOOD + b"\x00", "AVRO_TRAILING_BYTES"),
    # header 10 + uuid (1 length byte + 36) + digest 32 = offset 79 is the outcome enum index
    ("enum index out of range", _GOOD[:79] + b"\x7e" + _GOOD[80:], "AVRO_BODY_INVALID"),
]


@pytest.mark.parametrize(("case", "data", "code"), FRAME_ERRORS, ids=[c[0] for c in FRAME_ERRORS])
def test_frame_errors_have_stable_codes(case: str, data: bytes, code: str) -> None:
    with pytest.raises(avro.AvroFrameError) as err:
        avro.decode(data)
    assert err.value.code == code
    assert err.value.hint


RECORD_ERRORS = [
    ("unknown field", {"surprise": 1}, "AVRO_RECORD_INVALID"),
    ("bad enum", {"outcome": "MAYBE"}, "AVRO_RECORD_INVALID"),
    ("digest too short", {"envelope_sha256": b"\x00" * 31}, "AVRO_RECORD_INVALID"),
    ("wrong type", {"receiver_authority": 7220}, "AVRO_RECORD_INVALID"),
]


@pytest.mark.parametrize(("case", "over", "code"), RECORD_ERRORS, ids=[c[0] for c in RECORD_ERRORS])
def test_encode_refuses_records_that_do_not_fit(case: str, over: dict[str, Any], code: str) -> None:
    with pytest.raises(avro.AvroFrameError) as err:
        avro.encode("Receipt", _receipt(**over))
    assert err.value.code == code


def test_missing_required_field_is_refused() -> None:
    rec = _receipt()
    del rec["sender_authority"]
    with pytest.raises(avro.AvroFrameError, match="sender_authority"):
        avro.encode("Receipt", rec)


def test_unknown_schema_and_version() -> None:
    with pytest.raises(avro.AvroFrameError) as err:
        avro.encode("Nope", {})
    assert err.value.code == "AVRO_UNKNOWN_SCHEMA"
    with pytest.raises(avro.AvroFrameError) as err:
        avro.fingerprint("Receipt", 99)
    assert err.value.code == "AVRO_UNKNOWN_SCHEMA"
