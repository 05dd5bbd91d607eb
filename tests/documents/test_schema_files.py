"""The schema files themselves: every Avro field is documented, and the XSDs' closed code lists are the
same as the mapping code lists they are generated from."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from lxml import etree

from xborder_gateway import avro
from xborder_gateway.avro._resources import data_dir
from xborder_gateway.mapping import codelist

XS = "{http://www.w3.org/2001/XMLSchema}"


def _fields(schema: Any, path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if isinstance(schema, list):
        for branch in schema:
            yield from _fields(branch, path)
    elif isinstance(schema, Mapping):
        if schema.get("type") == "record":
            for f in schema["fields"]:
                yield f"{path}.{f['name']}", f
                yield from _fields(f["type"], f"{path}.{f['name']}")
        elif schema.get("type") == "array":
            yield from _fields(schema["items"], path)


@pytest.mark.parametrize("info", avro.known_schemas(), ids=lambda i: f"{i.name}.v{i.version}")
def test_every_avro_field_has_a_doc(info: avro.SchemaInfo) -> None:
    undocumented = [p for p, f in _fields(info.raw, info.name) if not str(f.get("doc", "")).strip()]
    assert undocumented == []


def test_wco_data_model_ids_are_named_where_they_exist() -> None:
    fields = dict(_fields(avro.schema_info("Declaration").raw, "Declaration"))
    for path, wco in [("Declaration.transport_mode", "T022"), ("Declaration.customs_office", "065"),
                      ("Declaration.gross_weight_kg", "131"), ("Declaration.goods.description", "137"),
                      ("Declaration.goods.customs_value", "108"), ("Declaration.containers", "159")]:
        assert f"WCO {wco}" in fields[path]["doc"], path


GENERATED = [
    ("CountryCode", "countries"),
    ("CurrencyCode", "currencies"),
    ("QuantityUnitCode", "units_rec20"),
    ("WeightUnitCode", "weight_units"),
    ("PackageCode", "packages_rec21"),
    ("TransportModeCode", "transport_mode_rec19"),
]


@pytest.mark.parametrize(("simple_type", "table"), GENERATED)
def test_xsd_enumerations_match_the_code_lists(simple_type: str, table: str) -> None:
    tree = etree.parse(str(data_dir("schemas") / "vnaccs" / "common-types.xsd"))
    node = tree.find(f"{XS}simpleType[@name='{simple_type}']")
    assert node is not None
    values = {e.get("value") for e in node.iter(f"{XS}enumeration")}
    assert values == set(codelist(table).rows)


@pytest.mark.parametrize("kind", ["IDA", "EDA"])
def test_kind_codes_match_the_code_list(kind: str) -> None:
    tree = etree.parse(str(data_dir("schemas") / "vnaccs" / f"{kind}.v1.xsd"))
    node = tree.find(f"{XS}simpleType[@name='KindCode']")
    assert node is not None
    values = {e.get("value") for e in node.iter(f"{XS}enumeration")}
    direction = "import" if kind == "IDA" else "export"
    expected = {k for k, row in codelist("kind_codes").rows.items() if row["direction"] in (direction, "both")}
    assert values == expected
