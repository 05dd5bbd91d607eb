"""Mappings are checked when loaded: each mistake is an error that names the mapping file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from xborder_gateway.mapping import MappingDefinitionError, compile_mapping, mappings

HEAD = """\
document_type: TIR
root: {namespace: "urn:xborder:vnaccs:TIR:1", element: TIR}
xsd: vnaccs/TIR.v1.xsd
schema: VehicleManifest
namespaces: {v: "urn:xborder:vnaccs:TIR:1"}
fields:
  document_type: {const: TIR}
  direction: {const: ARRIVAL}
  processing_type: {xpath: v:KBN, transform: {codelist: processing_types, column: processing_type}}
  declaration_number: v:AND
  border_gate: v:ABG
  crossing_at: {xpath: v:ADT, transform: {datetime_vn: {time: v:AMT}}}
  vehicle:
    fields:
      plate: v:LPN
      registration_country: v:REC
  drivers:
    each: v:Drivers/v:Driver
    fields:
      name: v:DF
      nationality: v:DN
"""


def test_the_base_mapping_compiles() -> None:
    compiled = compile_mapping(HEAD, Path("m.yaml"))
    assert compiled.schema_name == "VehicleManifest"


BROKEN = [
    ("unknown target field", HEAD + "  colour: v:CTM\n", 22, "unknown target field 'colour'"),
    ("type mismatch: date into a string", HEAD + "  remarks: {xpath: v:KIJ, transform: date_vn}\n", 22,
     "yields timestamp but the schema wants string or null"),
    ("type mismatch: string into a timestamp", HEAD.replace(
        "crossing_at: {xpath: v:ADT, transform: {datetime_vn: {time: v:AMT}}}", "crossing_at: v:ADT"), 12,
     "yields string but the schema wants timestamp"),
    ("unknown transform", HEAD + "  remarks: {xpath: v:KIJ, transform: shout}\n", 22, "unknown transform 'shout'"),
    ("bad XPath", HEAD + "  remarks: {xpath: 'v:KIJ[[', transform: strip}\n", 22, "invalid XPath"),
    ("undeclared prefix", HEAD + "  remarks: x:KIJ\n", 22, "prefix 'x' is not declared"),
    ("unknown code list", HEAD + "  remarks: {xpath: v:KIJ, transform: {codelist: nope}}\n", 22, "nope"),
    ("unknown code-list column", HEAD + "  remarks: {xpath: v:KIJ, transform: {codelist: countries, column: x}}\n",
     22, "has no column 'x'"),
    ("code list outside the enum", HEAD.replace("column: processing_type", "column: name_vi"), 9,
     "not symbols of ProcessingType"),
    ("required field not mapped", HEAD.replace("  declaration_number: v:AND\n", ""), 6,
     "'declaration_number' of VehicleManifest is required"),
    ("array without many", HEAD + "  linked_declarations: v:LinkedDeclarations/v:LDN\n", 22, "add 'many: true'"),
    ("enum constant not a symbol", HEAD.replace("direction: {const: ARRIVAL}", "direction: {const: SIDEWAYS}"), 8,
     "'SIDEWAYS' is not a symbol"),
    ("unknown key in a field", HEAD + "  remarks: {xpath: v:KIJ, trnasform: strip}\n", 22, "unknown key(s) trnasform"),
    ("unknown top-level key", "colour: red\n" + HEAD, 1, "unknown top-level key 'colour'"),
    ("unknown schema", HEAD.replace("schema: VehicleManifest", "schema: Lorry"), 4, "unknown schema 'Lorry'"),
    ("YAML syntax", HEAD + "  remarks: {xpath: [\n", 23, "not valid YAML"),
    ("duplicate key", HEAD + "  declaration_number: v:AND\n", 22, "duplicate key"),
]


@pytest.mark.parametrize(("case", "text", "line", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_mapping_mistake_names_file_and_line(case: str, text: str, line: int, message: str) -> None:
    with pytest.raises(MappingDefinitionError) as err:
        compile_mapping(text, Path("mappings/broken.yaml"))
    assert str(err.value.message).startswith(f"mappings/broken.yaml:{line}:"), err.value.message
    assert message in err.value.message


def test_the_shipped_mappings_cover_the_four_document_types() -> None:
    assert sorted(m.document_type for m in mappings().values()) == ["EDA", "IDA", "TIR", "TOR"]
