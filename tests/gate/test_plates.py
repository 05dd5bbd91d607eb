"""Plate normalisation, OCR-tolerant matching and ISO 6346 (pure functions, table-driven)."""

from __future__ import annotations

import pytest

from xborder_gateway.gate import (
    PlateError,
    PlateIndex,
    container_check_digit,
    container_valid,
    match_cost,
    normalise_container,
    normalise_plate,
    plate_kind,
)

NORMALISE = [
    ("vn-truck", "12C-345.67", "12C34567", "VN"),
    ("vn-new-series", "29H1-234.56", "29H123456", "VN"),
    ("vn-spaces-lower", " 12c 345 67 ", "12C34567", "VN"),
    ("vn-fullwidth", "１２Ｃ－３４５．６７", "12C34567", "VN"),
    ("cn-middle-dot", "桂A·12345", "桂A12345", "CN"),
    ("cn-katakana-dot", "桂A・12345", "桂A12345", "CN"),
    ("cn-new-energy", "桂AD12345", "桂AD12345", "CN"),
    ("cn-transliterated", "GUIA12345", "桂A12345", "CN"),
    ("cn-yunnan-translit", "YUN-A 12345", "云A12345", "CN"),
    ("other", "ABC1234", "ABC1234", "OTHER"),
    ("no-correction", "12C-345.6O", "12C3456O", "OTHER"),
]


@pytest.mark.parametrize(("read", "canonical", "kind"), [c[1:] for c in NORMALISE], ids=[c[0] for c in NORMALISE])
def test_normalise(read: str, canonical: str, kind: str) -> None:
    assert normalise_plate(read) == canonical
    assert plate_kind(canonical) == kind


BAD = [("empty", ""), ("only-separators", " - . "), ("too-long", "1" * 36), ("huge", "A" * 10_000),
       ("emoji", "12C-🚚"), ("han-not-province", "中A12345"), ("control", "12C\x0034567")]


@pytest.mark.parametrize("read", [b[1] for b in BAD], ids=[b[0] for b in BAD])
def test_what_cannot_be_a_plate_is_refused(read: str) -> None:
    with pytest.raises(PlateError):
        normalise_plate(read)


COST = [
    ("identical", "12C34567", "12C34567", 0.0),
    ("0-for-O", "12C3456O", "12C34560", 0.15),
    ("B-for-8", "12C345B7", "12C34587", 0.15),
    ("I-for-1", "I2C34567", "12C34567", 0.15),
    ("two-confusions", "I2C3456O", "12C34560", 0.3),
    ("missing-char", "12C3457", "12C34567", 0.35),
    ("extra-char", "12C345677", "12C34567", 0.35),
    ("missing-province", "A12345", "桂A12345", 0.35),
    ("missing-plus-confusion", "12C345O", "12C34560", 0.5),
    ("unrelated-digit", "12C34568", "12C34567", None),
    ("two-missing-one-confusion", "2C3450", "12C34560", None),
    ("different", "29H123456", "12C34567", None),
]


@pytest.mark.parametrize(("read", "declared", "cost"), [c[1:] for c in COST], ids=[c[0] for c in COST])
def test_match_cost(read: str, declared: str, cost: float | None) -> None:
    assert match_cost(read, declared) == cost


def test_index_finds_what_match_cost_finds() -> None:
    plates = ["12C34567", "12C34560", "29H123456", "桂A12345", "15C88888", "12C3456"]
    index = PlateIndex()
    for p in plates:
        index.add(p)
    for read in ["12C3456O", "12C345B7", "A12345", "12C34567", "15CBBBBB", "29H12345", "99Z99999"]:
        expected = sorted((match_cost(read, p), p) for p in plates if match_cost(read, p) is not None)
        got = [(m.cost, m.plate) for m in index.lookup(read)]
        assert got == expected, read


def test_index_remove_keeps_counts() -> None:
    index = PlateIndex()
    index.add("12C34567")
    index.add("12C34567")
    index.remove("12C34567")
    assert [m.plate for m in index.lookup("12C34567")] == ["12C34567"]
    index.remove("12C34567")
    assert index.lookup("12C34567") == []


CONTAINERS = [
    ("iso-example", "CSQU3054383", True),  # the standard's own example
    ("spaced", "CSQU 305438-3", True),
    ("wrong-check", "CSQU3054384", False),
    ("bad-category", "CSQX3054383", False),
    ("short", "CSQU305438", False),
    ("lower-case", "csqu3054383", True),
]


@pytest.mark.parametrize(("read", "valid"), [c[1:] for c in CONTAINERS], ids=[c[0] for c in CONTAINERS])
def test_iso6346(read: str, valid: bool) -> None:
    assert container_valid(normalise_container(read)) is valid


def test_check_digit_agrees_with_the_mapping_engine() -> None:
    from xborder_gateway.mapping._transforms import container_check_digit as engine

    for ten in ["CSQU305438", "MSCU123456", "TGHU000000", "ZZZZ999999"]:
        assert container_check_digit(ten) == engine(ten)
