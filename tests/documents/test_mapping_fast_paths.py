"""The mapping engine's cheaper reads (issue 13 item 4) give what the plain path walk gives: one-step paths
from the record's child index, absolute paths once per document, the fused decimal field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from lxml import etree

from xborder_gateway.documents import DocumentRejectedError, translate_xml
from xborder_gateway.mapping._engine import _coerce_decimal, _index
from xborder_gateway.mapping._paths import compile_path
from xborder_gateway.mapping._target import TargetType
from xborder_gateway.mapping._transforms import DataRuleViolation
from xborder_gateway.samples import generate

NS = {"v": "urn:x"}
DOC = etree.fromstring(b'<R xmlns="urn:x"><A>first</A><A>second</A><E/><L><C>in line</C></L><C>root</C></R>')


def test_a_one_step_path_reads_the_index_and_the_walk_alike() -> None:
    getter = compile_path("v:A", NS)
    index = _index(DOC)
    assert getter.text_in(DOC, DOC, index, {}) == getter.text(DOC, DOC) == "first"
    assert compile_path("v:E", NS).text_in(DOC, DOC, index, {}) is None  # empty element: no text
    assert compile_path("v:Z", NS).text_in(DOC, DOC, index, {}) is None


def test_without_an_index_a_one_step_path_walks() -> None:
    line = DOC.find("{urn:x}L")
    assert line is not None
    # the root's index would answer "root": with no index of the line, the line itself is read
    assert compile_path("v:C", NS).text_in(line, DOC, None, {}) == "in line"


def test_the_index_is_the_context_elements() -> None:
    """The engine sets element and index together; a wrong index would read another element's child."""
    line = DOC.find("{urn:x}L")
    assert line is not None
    assert compile_path("v:C", NS).text_in(line, DOC, _index(line), {}) == "in line"


def test_an_absolute_path_is_read_once_per_document_cache() -> None:
    getter = compile_path("/v:R/v:C", NS)
    cache: dict[Any, str | None] = {}
    line = DOC.find("{urn:x}L")
    assert line is not None
    assert getter.text_in(line, DOC, None, cache) == "root"
    assert cache == {getter: "root"}
    cache[getter] = "cached"  # a second read takes the cache, whatever the context
    assert getter.text_in(DOC, DOC, None, cache) == "cached"
    assert getter.text_in(DOC, DOC, None, {}) == "root"  # another document: another cache


def test_relative_multi_step_paths_are_not_cached() -> None:
    getter = compile_path("v:L/v:C", NS)
    cache: dict[Any, str | None] = {}
    assert getter.text_in(DOC, DOC, _index(DOC), cache) == "in line"
    assert cache == {}


@pytest.mark.parametrize(("value", "target", "expected"), [
    (Decimal("1.5"), (12, 3), Decimal("1.500")),
    (Decimal("1.5000"), (12, 3), Decimal("1.500")),
    (Decimal("-0"), (12, 3), Decimal("-0.000")),
    (Decimal("999999999.999"), (12, 3), Decimal("999999999.999")),
    (Decimal("1000000000"), (12, 3), "DECIMAL_PRECISION"),
    (Decimal("1.0001"), (12, 3), "DECIMAL_SCALE"),
    (Decimal(2**64), (24, 4), Decimal(2**64)),
    (Decimal(10**20), (24, 4), "DECIMAL_PRECISION"),
    (Decimal("1E+30"), (24, 4), "DECIMAL_PRECISION"),
])
def test_decimal_coercion_is_exact(value: Decimal, target: tuple[int, int], expected: Any) -> None:
    t = TargetType(kind="decimal", precision=target[0], scale=target[1])
    if isinstance(expected, Decimal):
        result = _coerce_decimal(value, t)
        assert result == expected
        assert result.as_tuple().exponent == -target[1]
    else:
        with pytest.raises(DataRuleViolation) as info:
            _coerce_decimal(value, t)
        assert info.value.code == expected


def _ida(**items: str) -> bytes:
    xml = next(iter(generate("IDA", 1, 21))).xml
    root = etree.fromstring(xml)
    for path, text in items.items():
        for el in root.iterfind(path, {"v": "urn:xborder:vnaccs:IDA:1"}):
            el.text = text
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def test_each_goods_line_reads_its_own_currency_and_the_invoice_currency_of_its_document() -> None:
    """money: {currency: v:BPC} (the line's child, from the line's index) and
    {currency: /v:IDA/v:Invoice/v:IP3} (absolute, cached per document)."""
    ok = translate_xml(_ida(**{"v:Invoice/v:IP3": "USD", "v:Goods/v:Line/v:BPC": "USD"}))
    assert ok.values["invoice"]["currency"] == "USD"
    with pytest.raises(DocumentRejectedError) as info:  # VND has no minor units: every line's values refused
        translate_xml(_ida(**{"v:Invoice/v:IP3": "VND", "v:Invoice/v:IP4": "10.5",
                              "v:Goods/v:Line/v:BPR": "10.5", "v:Goods/v:Line/v:BPC": "VND",
                              "v:Goods/v:Line/v:DPR": "10.5"}))
    where = [(r.code, (r.xpath or "").rsplit("/", 1)[-1]) for r in info.value.reasons]
    lines = len(ok.values["goods"])
    assert lines > 1
    assert where.count(("CURRENCY_MINOR_UNITS", "IP4")) == 1
    assert where.count(("CURRENCY_MINOR_UNITS", "BPR")) == lines  # the invoice currency, read by every line
    dpr = [w for w in where if w[1] == "DPR"]  # the line's own currency (BPC), where the line has a DPR
    assert dpr == [("CURRENCY_MINOR_UNITS", "DPR")] * len(dpr)
    usd_lines = translate_xml(_ida(**{"v:Invoice/v:IP3": "VND", "v:Invoice/v:IP4": "10",
                                      "v:Goods/v:Line/v:BPR": "10", "v:Goods/v:Line/v:BPC": "USD",
                                      "v:Goods/v:Line/v:DPR": "10.5"}))
    assert usd_lines.values["goods"][0]["invoice_value"] == Decimal("10")
