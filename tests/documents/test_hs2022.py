"""HS 2022 nomenclature shipped offline (issue 15 item 2): the real list, and a VN HS-8 whose first six
digits are not an HS 2022 subheading refused at intake with HS_SUBHEADING_UNKNOWN."""

from __future__ import annotations

import re

import pytest
from lxml import etree

from xborder_gateway.documents import DocumentRejectedError, translate_xml
from xborder_gateway.mapping import hs_nomenclature
from xborder_gateway.mapping._codelists import codelist
from xborder_gateway.samples import generate


def test_the_list_is_the_hs2022_edition_with_5613_rows() -> None:
    table = codelist("hs2022_subheadings")
    assert len(table.rows) == 5613
    assert table.columns == ("hs6", "heading", "section", "description")
    assert all(re.fullmatch(r"[0-9]{6}", k) and row["heading"] == k[:4] for k, row in table.rows.items())
    # the source's statistical "not specified" code is kept in the file but is no subheading
    assert "999999" in table.rows
    assert len(hs_nomenclature()) == 5612
    assert "999999" not in hs_nomenclature()


@pytest.mark.parametrize(("hs6", "words"), [
    ("081060", "durians"),
    ("081090", "fruits n.e.c."),          # other fresh fruit, dragon fruit among them
    ("851713", "smartphones"),
    ("080711", "watermelons"),
    ("080450", "mangoes"),
    ("100630", "rice"),
    ("847130", "portable"),
])
def test_known_subheadings_are_present(hs6: str, words: str) -> None:
    row = codelist("hs2022_subheadings").rows[hs6]
    assert words in row["description"].lower()
    assert hs6 in hs_nomenclature()


@pytest.mark.parametrize("hs6", [
    "851712",  # HS 2017 "telephones for cellular networks": split into 8517.13/8517.14 in HS 2022
    "081099",  # no such subheading
    "000000",
    "999999",  # statistical code, not a subheading
])
def test_codes_outside_hs2022_are_not_subheadings(hs6: str) -> None:
    assert hs6 not in hs_nomenclature()


def _with_hs(kind: str, hs8: str, seed: int = 4) -> bytes:
    sample = next(generate(kind, 1, seed=seed))
    root = etree.fromstring(sample.xml)
    cmd = root.find(".//{*}Goods/{*}Line/{*}CMD")
    assert cmd is not None
    cmd.text = hs8
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out


@pytest.mark.parametrize("kind", ["EDA", "IDA"])
@pytest.mark.parametrize("hs8", ["85171200", "08109900", "99999999"])
def test_a_national_code_outside_hs2022_is_refused_at_intake(kind: str, hs8: str) -> None:
    with pytest.raises(DocumentRejectedError) as err:
        translate_xml(_with_hs(kind, hs8), source="t")
    assert err.value.code == "HS_SUBHEADING_UNKNOWN"
    assert err.value.xpath is not None
    assert re.search(r"/Goods/Line(\[1\])?/CMD$", err.value.xpath)
    assert hs8[:6] in err.value.reasons[0].message


@pytest.mark.parametrize("kind", ["EDA", "IDA"])
@pytest.mark.parametrize("hs8", ["08106000", "08109092", "85171300"])
def test_a_national_code_extending_an_hs2022_subheading_passes(kind: str, hs8: str) -> None:
    doc = translate_xml(_with_hs(kind, hs8), source="t")
    goods = doc.values["goods"]
    assert goods[0]["hs6"] == hs8[:6]
    assert goods[0]["hs_national"] == hs8


_TIR_MAPPING = """\
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
  border_gate: {xpath: v:ABG, transform: {hs6: {nomenclature: NAME}}}
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


def test_the_nomenclature_is_checked_when_the_mapping_is_loaded() -> None:
    from pathlib import Path

    from xborder_gateway.mapping import MappingDefinitionError, compile_mapping

    compile_mapping(_TIR_MAPPING.replace("NAME", "hs2022_subheadings"), Path("m.yaml"))
    with pytest.raises(MappingDefinitionError, match="CODELIST_MISSING"):
        compile_mapping(_TIR_MAPPING.replace("NAME", "nope"), Path("m.yaml"))
