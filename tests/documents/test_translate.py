"""translate_xml end to end: golden files, round trips, outputs for the connectors, peek_key, crosswalk."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from pathlib import Path

import pytest

from xborder_gateway import avro
from xborder_gateway.documents import (
    DocumentRejectedError,
    TranslatedDocument,
    cn_crosswalk,
    decode_payload,
    peek_key,
    translate_xml,
)
from xborder_gateway.errors import IntakeError
from xborder_gateway.model import Declaration, VehicleManifest
from xborder_gateway.samples import generate

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("name", ["IDA-golden", "TIR-golden", "EDA-snapshot", "TOR-snapshot"])
def test_golden_xml_maps_to_the_expected_json(name: str) -> None:
    """*-golden: hand-written, every value checked by hand (see the test below); *-snapshot: generated
    (seed 2026) and frozen, a regression guard for the mappings of the other two kinds."""
    doc = translate_xml((GOLDEN / f"{name}.xml").read_bytes(), source=f"{name}.xml")
    expected = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    assert doc.record.model_dump(mode="json") == expected


def test_golden_ida_values_checked_by_hand() -> None:
    doc = translate_xml((GOLDEN / "IDA-golden.xml").read_bytes())
    rec = doc.record
    assert isinstance(rec, Declaration)
    assert doc.doc_type == "IDA"
    assert doc.schema_name == "Declaration"
    assert doc.business_key == "105000000017"
    # 14/05/2026 00:00 in Hanoi (UTC+7) is 13/05/2026 17:00 UTC
    assert rec.declared_on == dt.datetime(2026, 5, 13, 17, 0, tzinfo=dt.UTC)
    # 50,000 lb x 0.45359237 = 22,679.6185 kg -> half-even to grams
    assert rec.gross_weight_kg == Decimal("22679.618") == doc.gross_weight_kg
    assert rec.transport_mode == "3"
    assert rec.national_transport_mode == "4"
    assert rec.goods[0].quantity_unit == "TNE"  # VNACCS TAN -> UN/ECE Rec 20 TNE
    assert rec.goods[0].hs6 == "080810"
    assert rec.goods[0].cn_code == "0808100000"
    assert rec.goods[1].cn_code is None  # documented fallback: no crosswalk entry, the receiver uses hs6
    assert rec.invoice is not None
    assert rec.invoice.total == Decimal("170000.50")
    assert rec.consignee.name == "CÔNG TY TNHH THƯƠNG MẠI XUẤT NHẬP KHẨU HỮU NGHỊ"  # Vietnamese intact
    assert rec.consignor.address == "NO. 18 YOUYI ROAD, PINGXIANG CITY, CHONGZUO, GUANGXI"
    assert rec.cn_trade_mode == "0110"
    assert doc.perishable
    assert rec.perishable
    assert doc.raw_sha256 == hashlib.sha256((GOLDEN / "IDA-golden.xml").read_bytes()).digest()


def test_golden_tir_outputs() -> None:
    doc = translate_xml((GOLDEN / "TIR-golden.xml").read_bytes())
    assert isinstance(doc.record, VehicleManifest)
    assert doc.linked_declarations == ("105000000017", "305000000018")
    assert doc.perishable is True  # PRI = 1
    assert doc.gross_weight_kg is None
    assert doc.record.crossing_at == dt.datetime(2026, 5, 31, 23, 30, tzinfo=dt.UTC)
    assert doc.record.containers[0].full is True
    assert doc.record.containers[0].size_type == "45RT"


@pytest.mark.parametrize("kind", ["IDA", "EDA", "TIR", "TOR"])
def test_round_trip_xml_avro_decode_equals_the_canonical_record(kind: str) -> None:
    for sample in generate(kind, 25, seed=11):
        doc = translate_xml(sample.xml, source=sample.name)
        assert isinstance(doc, TranslatedDocument)
        decoded = decode_payload(doc.payload)
        assert decoded.schema_name == doc.schema_name
        assert decoded.fingerprint == doc.schema_fingerprint == doc.payload[2:10]
        assert decoded.record == doc.record.model_dump()
        assert type(doc.record).model_validate(decoded.record) == doc.record
        assert doc.business_key == sample.business_key
        assert doc.perishable == sample.perishable


def test_old_reader_reads_a_new_declaration() -> None:
    sample = next(generate("IDA", 1, seed=3))
    doc = translate_xml(sample.xml)
    assert doc.schema_version == 4
    old = avro.decode(doc.payload, reader_version=1)
    assert old.version == 4
    assert old.reader_version == 1
    assert "cn_trade_mode" not in old.record
    assert old.record["declaration_number"] == doc.business_key
    v2 = avro.decode(doc.payload, reader_version=2)
    assert "phytosanitary_certificate" not in v2.record
    assert "species_code" not in v2.record["goods"][0]
    assert v2.record["cn_trade_mode"] == doc.values["cn_trade_mode"]
    v3 = avro.decode(doc.payload, reader_version=3)
    assert "version" not in v3.record  # Declaration v4's amendment version (ADR 0404)


def test_peek_key_matches_the_translated_key() -> None:
    for kind in ("IDA", "EDA", "TIR", "TOR"):
        for sample in generate(kind, 5, seed=5):
            assert peek_key(sample.xml) == sample.business_key


PEEK_REFUSED = [
    ("empty", b""),
    ("no key", b"<IDA xmlns='urn:xborder:vnaccs:IDA:1'><ICB>A11</ICB></IDA>"),
    ("doctype", b"<!DOCTYPE x [<!ENTITY a 'b'>]><IDA><ICN>105000000017</ICN></IDA>"),
    ("nul", b"<IDA><ICN>105000000017</ICN>\x00</IDA>"),
    ("oversize", b"<IDA><ICN>105000000017</ICN>" + b" " * 2_000_000 + b"</IDA>"),
]


@pytest.mark.parametrize(("case", "raw"), PEEK_REFUSED, ids=[c[0] for c in PEEK_REFUSED])
def test_peek_key_returns_none_for_unusable_input(case: str, raw: bytes) -> None:
    assert peek_key(raw) is None


def test_cn_crosswalk() -> None:
    assert cn_crosswalk("08106000") == "0810600000"  # durian
    assert cn_crosswalk("08109092") is not None  # dragon fruit
    assert cn_crosswalk("73181510") is None  # not in the table: documented fallback to HS-6


def test_unknown_document_type_is_refused_with_location() -> None:
    with pytest.raises(DocumentRejectedError) as err:
        translate_xml(b"<?xml version='1.0'?>\n<Invoice xmlns='urn:other'/>", source="x.xml")
    assert err.value.code == "XML_UNKNOWN_DOCUMENT"
    assert isinstance(err.value, IntakeError)
    assert err.value.line == 2
    assert err.value.source == "x.xml"
    assert err.value.to_dict()["reasons"][0]["code"] == "XML_UNKNOWN_DOCUMENT"


def test_xsd_error_carries_line_and_xpath() -> None:
    raw = (GOLDEN / "IDA-golden.xml").read_bytes().replace(b"<ICB>A11</ICB>", b"<ICB>Z99</ICB>")
    with pytest.raises(DocumentRejectedError) as err:
        translate_xml(raw, source="bad.xml")
    e = err.value
    assert e.code == "XSD_ENUMERATION"
    assert e.line == 5
    assert e.xpath is not None
    assert e.xpath.endswith("ICB")
    assert e.lines()[0].startswith("bad.xml:5:")
    as_dict = e.to_dict()
    assert set(as_dict) == {"source", "code", "message", "line", "column", "xpath", "reasons"}
    json.dumps(as_dict)  # the rejected topic's structured reasons are JSON-serialisable


DATA_RULES = [
    ("tax code check digit", b"<IMC>0100100079</IMC>", b"<IMC>0100100078</IMC>", "TAX_CODE_CHECK_DIGIT", "IMC"),
    ("container check digit", b"<CNO>CSQU3054383</CNO>", b"<CNO>CSQU3054384</CNO>", "CONTAINER_CHECK_DIGIT", "CNO"),
    ("calendar date", b"<ARR>15052026</ARR>", b"<ARR>30022026</ARR>", "DATE_INVALID", "ARR"),
    ("VND minor units", b"<IP3>CNY</IP3>", b"<IP3>VND</IP3>", "CURRENCY_MINOR_UNITS", "IP4"),
]


@pytest.mark.parametrize(("case", "old", "new", "code", "element"), DATA_RULES, ids=[c[0] for c in DATA_RULES])
def test_data_rules_are_located(case: str, old: bytes, new: bytes, code: str, element: str) -> None:
    raw = (GOLDEN / "IDA-golden.xml").read_bytes()
    assert old in raw
    with pytest.raises(DocumentRejectedError) as err:
        translate_xml(raw.replace(old, new), source="golden.xml")
    assert err.value.code == code
    assert err.value.xpath is not None
    assert err.value.xpath.endswith(element)
    assert err.value.line is not None
    assert err.value.line > 1


def test_a_failing_repeated_value_is_located_at_its_own_element() -> None:
    raw = (GOLDEN / "IDA-golden.xml").read_bytes().replace(
        b"<CNO>CSQU3054383</CNO>", b"<CNO>CSQU3054383</CNO>\n    <CNO>MSKU9070324</CNO>")
    with pytest.raises(DocumentRejectedError) as err:
        translate_xml(raw)
    assert err.value.code == "CONTAINER_CHECK_DIGIT"
    assert err.value.xpath == "/IDA/Containers/CNO[2]"


def test_translate_from_several_threads_gives_the_same_results() -> None:
    from concurrent.futures import ThreadPoolExecutor

    samples = [s.xml for kind in ("IDA", "EDA", "TIR") for s in generate(kind, 15, seed=21)]
    bad = (GOLDEN / "IDA-golden.xml").read_bytes().replace(b"<ICB>A11</ICB>", b"<ICB>Z99</ICB>")

    def run(raw: bytes) -> bytes | str:
        try:
            return translate_xml(raw).payload
        except DocumentRejectedError as exc:
            return exc.code

    sequential = [run(x) for x in [*samples, bad]]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(run, [*samples, bad]))
    assert threaded == sequential
    assert sequential[-1] == "XSD_ENUMERATION"


ENGINE_RULES = [
    ("decimal needing rounding", b"<GW>50000</GW>", b"<GW>50000.0001</GW>", "DECIMAL_SCALE", "/IDA/GW"),
    ("decimal too large", b"<NO>1200</NO>", b"<NO>99999999999999999999</NO>", "INTEGER_RANGE", "/IDA/NO"),
    ("not a decimal", b"<QN1>20</QN1>", b"<QN1>twenty</QN1>", "DECIMAL_INVALID", "/IDA/Goods/Line[1]/QN1"),
]


@pytest.mark.parametrize(("case", "old", "new", "code", "xpath"), ENGINE_RULES, ids=[c[0] for c in ENGINE_RULES])
def test_the_engine_enforces_exactness_even_where_an_xsd_would_not(case: str, old: bytes, new: bytes, code: str,
                                                                   xpath: str) -> None:
    """The mapping applied without XSD validation (as for a future document type with a laxer XSD)."""
    from xborder_gateway.intake import parse_xml
    from xborder_gateway.mapping import mapping_for

    root = parse_xml((GOLDEN / "IDA-golden.xml").read_bytes().replace(old, new))
    with pytest.raises(DocumentRejectedError) as err:
        mapping_for("IDA").apply(root, source="lax.xml")
    assert err.value.code == code
    assert err.value.xpath == xpath
