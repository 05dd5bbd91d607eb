"""Adding a document type is an XSD + a mapping + an Avro schema: no Python (issue 3, item 5)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from xborder_gateway.avro import _codec
from xborder_gateway.documents import _registry, decode_payload, peek_key, translate_xml
from xborder_gateway.mapping import _codelists, mappings

REPO = Path(__file__).resolve().parents[2]

SCHEMA = {
    "type": "record", "name": "CargoNote", "namespace": "int.xborder.v1", "doc": "A toy document type.",
    "fields": [
        {"name": "note_number", "type": "string", "doc": "Note number."},
        {"name": "issued_at", "type": {"type": "long", "logicalType": "timestamp-millis"}, "doc": "Issued."},
        {"name": "weight_kg", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 3},
         "doc": "WCO 131."},
        {"name": "lines", "type": {"type": "array", "items": {
            "type": "record", "name": "NoteLine", "doc": "A line.",
            "fields": [{"name": "hs6", "type": "string", "doc": "HS-6."},
                       {"name": "country", "type": ["null", "string"], "default": None, "doc": "ISO 3166."}]}},
         "doc": "Lines."},
    ],
}
XSD = """<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="urn:test:cnt:1" targetNamespace="urn:test:cnt:1"
           elementFormDefault="qualified">
  <xs:include schemaLocation="common-types.xsd"/>
  <xs:element name="CNT">
    <xs:complexType><xs:sequence>
      <xs:element name="NNO" type="DeclarationNumber"/>
      <xs:element name="DAT" type="Date8"/>
      <xs:element name="GW" type="Weight"/>
      <xs:element name="L" maxOccurs="5"><xs:complexType><xs:sequence>
        <xs:element name="CMD" type="HsCode"/><xs:element name="OR" type="CountryCode" minOccurs="0"/>
      </xs:sequence></xs:complexType></xs:element>
    </xs:sequence></xs:complexType>
  </xs:element>
</xs:schema>
"""
MAPPING = """\
document_type: CNT
root: {namespace: "urn:test:cnt:1", element: CNT}
xsd: vnaccs/CNT.v1.xsd
schema: CargoNote
namespaces: {c: "urn:test:cnt:1"}
outputs:
  business_key: note_number
fields:
  note_number: c:NNO
  issued_at: {xpath: c:DAT, transform: date_vn}
  weight_kg: {xpath: c:GW, transform: decimal}
  lines:
    each: c:L
    fields:
      hs6: {xpath: c:CMD, transform: hs6}
      country: c:OR
"""
DOC = b"""<?xml version="1.0" encoding="UTF-8"?>
<CNT xmlns="urn:test:cnt:1"><NNO>123456789012</NNO><DAT>01062026</DAT><GW>1234.5</GW>
<L><CMD>08106000</CMD><OR>VN</OR></L><L><CMD>08109092</CMD></L></CNT>
"""


def _clear_caches() -> None:
    _codec._registry.cache_clear()
    mappings.cache_clear()
    _registry.document_types.cache_clear()
    _registry.key_pattern.cache_clear()
    _codelists.codelist.cache_clear()


@pytest.fixture
def extended_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    schemas, maps = tmp_path / "schemas", tmp_path / "mappings"
    shutil.copytree(REPO / "schemas", schemas)
    shutil.copytree(REPO / "mappings", maps)
    (schemas / "avro" / "CargoNote.v1.avsc").write_text(json.dumps(SCHEMA))
    (schemas / "vnaccs" / "CNT.v1.xsd").write_text(XSD)
    (maps / "CNT.yaml").write_text(MAPPING)
    monkeypatch.setenv("XBG_SCHEMAS_DIR", str(schemas))
    monkeypatch.setenv("XBG_MAPPINGS_DIR", str(maps))
    _clear_caches()
    yield tmp_path
    monkeypatch.undo()
    _clear_caches()


def test_a_new_document_type_without_python(extended_tree: Path) -> None:
    doc = translate_xml(DOC, source="cnt.xml")
    assert doc.doc_type == "CNT"
    assert doc.schema_name == "CargoNote"
    assert doc.business_key == "123456789012" == peek_key(DOC)
    decoded = decode_payload(doc.payload)
    assert decoded.schema_name == "CargoNote"
    assert decoded.record["weight_kg"] == Decimal("1234.500")
    assert [line["hs6"] for line in decoded.record["lines"]] == ["081060", "081090"]
    assert decoded.record == doc.record.model_dump()
    assert type(doc.record).__name__ == "CargoNote"  # derived from the schema file


def test_a_mapping_whose_root_is_not_in_its_xsd_is_refused_at_load(extended_tree: Path) -> None:
    from xborder_gateway.errors import MappingError

    (extended_tree / "mappings" / "CNT.yaml").write_text(MAPPING.replace("element: CNT}", "element: CargoNote}"))
    _clear_caches()
    with pytest.raises(MappingError) as err:
        translate_xml(DOC)
    assert err.value.code == "MAPPING_DEFINITION"
    assert "CNT.yaml" in err.value.message
