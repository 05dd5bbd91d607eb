"""The generator's distributions follow ../shared/DOMAIN.md, and its identifiers carry valid check digits."""

from __future__ import annotations

import statistics
from collections import Counter

import pytest
from lxml import etree

from xborder_gateway.documents import translate_xml
from xborder_gateway.mapping import container_check_digit, tax_code_check_digit
from xborder_gateway.model import Declaration, VehicleManifest
from xborder_gateway.samples import generate, generate_mix


def _lines(xml: bytes) -> int:
    return len(etree.fromstring(xml).findall(".//{*}Goods/{*}Line"))


def test_import_lines_median_about_six_with_some_at_the_cap() -> None:
    counts = [_lines(s.xml) for s in generate("IDA", 600, seed=1)]
    assert 5 <= statistics.median(counts) <= 7
    assert max(counts) == 50
    assert 0.01 <= counts.count(50) / len(counts) <= 0.06


def test_fruit_exports_are_mostly_one_line() -> None:
    docs = [translate_xml(s.xml).record for s in generate("EDA", 300, seed=2)]
    fruit = [d for d in docs if isinstance(d, Declaration) and all(g.hs_national.startswith("08") for g in d.goods)]
    assert len(fruit) > 100
    assert sum(len(d.goods) == 1 for d in fruit) / len(fruit) > 0.75
    hs = Counter(g.hs_national for d in fruit for g in d.goods)
    assert hs["08106000"] > 0  # durian
    assert hs["08109092"] > 0  # dragon fruit


def test_identifiers_have_valid_check_digits_and_text_keeps_diacritics() -> None:
    for sample in generate("EDA", 50, seed=3):
        rec = translate_xml(sample.xml).record
        assert isinstance(rec, Declaration)
        tax = rec.consignor.identifier
        assert tax is not None
        assert tax_code_check_digit(tax[:9]) == int(tax[9])
        for container in rec.containers:
            assert container_check_digit(container[:10]) == int(container[10])
        assert any(ch in rec.consignor.name for ch in "ÔƠƯĂĐÊÂÁẠẢ")


def test_generation_is_reproducible() -> None:
    assert [s.xml for s in generate("TIR", 5, seed=9)] == [s.xml for s in generate("TIR", 5, seed=9)]
    assert [s.xml for s in generate("TIR", 5, seed=9)] != [s.xml for s in generate("TIR", 5, seed=10)]


def test_mix_links_trucks_to_declarations_of_the_same_run() -> None:
    samples = list(generate_mix(500, seed=5, invalid_ratio=0.05))
    assert len(samples) == 500
    kinds = Counter(s.kind for s in samples)
    assert set(kinds) == {"IDA", "EDA", "TIR"}
    keys = {s.business_key for s in samples if s.kind in ("IDA", "EDA")}
    trucks = [s for s in samples if s.kind == "TIR"]
    for truck in trucks:
        assert truck.linked_declarations
        assert set(truck.linked_declarations) <= keys
    valid = [s for s in samples if s.broken_rule is None]
    for sample in valid[:200]:
        doc = translate_xml(sample.xml)
        if sample.kind == "TIR":
            assert isinstance(doc.record, VehicleManifest)
            assert doc.linked_declarations == sample.linked_declarations
    invalid_share = 1 - len(valid) / len(samples)
    assert 0.02 <= invalid_share <= 0.09
    assert any(s.perishable for s in trucks)


@pytest.mark.parametrize("kind", ["ida", "TOR"])
def test_kind_is_case_insensitive_and_unknown_kinds_fail(kind: str) -> None:
    assert next(generate(kind, 1, seed=1)).kind == kind.upper()
    with pytest.raises(ValueError, match="unknown kind"):
        next(generate("CMR", 1, seed=1))
