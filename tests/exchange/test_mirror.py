"""Mirror checks (issue 10 item 3): China's export declaration against VN's IDA of the same consignment.

Pure and table-driven: plate normalisation, matching (plate, consignee tax code -- not name --, a shared
container), the per-HS-6 comparison with its Incoterm rule and unit conversion, the timeout with an injected
clock; then the generator's consignments: seeded mismatches are found exactly, clean pairs (which differ only
by Incoterm, rate of the day, rounding and kg vs tonne) raise nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from xborder_gateway.exchange._mirror import (
    ExportConsignment,
    FindingCode,
    ImportConsignment,
    MirrorConfig,
    MirrorLine,
    check_export,
    compare,
    import_overdue,
    match_import,
    normalise_plate,
)
from xborder_gateway.samples import MISMATCH_KINDS, generate_cn_exports

D = Decimal
CONFIG = MirrorConfig()


@pytest.mark.parametrize(("cn", "vn"), [("桂A·12345", "GUIA12345"), ("桂F·68941", "guif-68941"),
                                         ("12C-12345", "12C12345"), (" 粤B 12345 ", "YUEB12345")])
def test_plates_written_either_way_are_the_same(cn: str, vn: str) -> None:
    assert normalise_plate(cn) == normalise_plate(vn)


def test_different_plates_stay_different() -> None:
    assert normalise_plate("桂A·12345") != normalise_plate("GUIA12346")
    assert normalise_plate("桂A·12345") != normalise_plate("YUEA12345")


def _export(lines: list[MirrorLine], *, incoterm: str = "FOB", currency: str = "CNY", plate: str = "桂A·12345",
            tax: str = "0100100079", containers: tuple[str, ...] = ("CSQU3054383",)) -> ExportConsignment:
    return ExportConsignment("720620260000000001", plate, tax, containers, incoterm, currency, tuple(lines))


def _import(lines: list[MirrorLine], *, incoterm: str = "DAP", currency: str = "USD", plate: str = "GUIA12345",
            tax: str = "0100100079", containers: tuple[str, ...] = ("CSQU3054383",),
            number: str = "105000000017") -> ImportConsignment:
    return ImportConsignment(number, plate, tax, containers, incoterm, currency, tuple(lines))


def _l(hs6: str, qty: str, unit: str, value: str | None) -> MirrorLine:
    return MirrorLine(hs6, D(qty), unit, D(value) if value is not None else None)


MATCHING = [
    ("same plate, tax code and container", {}, True),
    ("consignee name is not compared (only the tax code)", {}, True),
    ("other consignee tax code", {"tax": "0100100087"}, False),
    ("other plate", {"plate": "GUIA54321"}, False),
    ("no shared container", {"containers": ("MSKU9070323",)}, False),
    ("the IDA names no container: plate and tax code decide", {"containers": ()}, True),
]


@pytest.mark.parametrize(("case", "change", "matches"), MATCHING, ids=[m[0] for m in MATCHING])
def test_matching(case: str, change: dict[str, Any], matches: bool) -> None:
    exp = _export([_l("081060", "1000", "KGM", "7100")])
    imp = _import([_l("081060", "1000", "KGM", "1000")], **change)
    assert (match_import(exp, [imp]) is imp) is matches, case


def test_of_several_candidates_the_one_sharing_most_hs6_wins() -> None:
    exp = _export([_l("081060", "1", "KGM", "1"), _l("081090", "1", "KGM", "1")])
    one = _import([_l("081060", "1", "KGM", "1")], number="105000000001")
    two = _import([_l("081060", "1", "KGM", "1"), _l("081090", "1", "KGM", "1")], number="105000000002")
    assert match_import(exp, [one, two]) is two


# (case, export lines, export incoterm/currency, import lines, import incoterm/currency, expected codes)
COMPARISONS: list[tuple[str, list[MirrorLine], tuple[str, str], list[MirrorLine], tuple[str, str], list[str]]] = [
    ("identical, converted at the table rate", [_l("081060", "20000", "KGM", "71000.00")], ("DAP", "CNY"),
     [_l("081060", "20000", "KGM", "10000.00")], ("DAP", "USD"), []),
    ("kg vs tonne", [_l("081060", "20.0000", "TNE", "71000")], ("DAP", "CNY"),
     [_l("081060", "20000", "KGM", "10000")], ("DAP", "USD"), []),
    ("tonnes rounded to 4 decimals", [_l("310210", "24.4810", "TNE", "7100")], ("DAP", "CNY"),
     [_l("310210", "24481", "KGM", "1000")], ("DAP", "USD"), []),
    ("FOB export vs CIF import, freight and insurance 8 %", [_l("081060", "1000", "KGM", "7100")], ("FOB", "CNY"),
     [_l("081060", "1000", "KGM", "1080")], ("CIF", "USD"), []),
    ("FOB vs DAP at the edge: allowance + tolerance", [_l("081060", "1000", "KGM", "7100")], ("FOB", "CNY"),
     [_l("081060", "1000", "KGM", "1129")], ("DAP", "USD"), []),
    ("rate of another day (2 %)", [_l("081060", "1000", "KGM", "7242")], ("FCA", "CNY"),
     [_l("081060", "1000", "KGM", "1000")], ("FCA", "USD"), []),
    ("VND and fen rounding", [_l("081060", "1000", "KGM", "7100.01")], ("DAP", "CNY"),
     [_l("081060", "1000", "KGM", "25400000")], ("DAP", "VND"), []),
    ("lines split differently, same totals per HS-6",
     [_l("081060", "600", "KGM", "4260"), _l("081060", "400", "KGM", "2840")], ("DAP", "CNY"),
     [_l("081060", "1000", "KGM", "1000")], ("DAP", "USD"), []),
    ("pieces: H87 vs C62", [_l("842952", "3", "H87", "710000")], ("DAP", "CNY"),
     [_l("842952", "3", "C62", "100000")], ("DAP", "USD"), []),
    ("a unit without conversion compares with itself", [_l("520839", "2000", "MTK", "7100")], ("DAP", "CNY"),
     [_l("520839", "2000", "MTK", "1000")], ("DAP", "USD"), []),
    ("no value on the IDA line: value not compared", [_l("081060", "1000", "KGM", "7100")], ("DAP", "CNY"),
     [_l("081060", "1000", "KGM", None)], ("DAP", "USD"), []),
    # mismatches
    ("HS-6 on one side only", [_l("081090", "1000", "KGM", "7100")], ("DAP", "CNY"),
     [_l("081060", "1000", "KGM", "1000")], ("DAP", "USD"), ["HS6_MISMATCH", "HS6_MISMATCH"]),
    ("an extra export line", [_l("081060", "1000", "KGM", "7100"), _l("070190", "10", "KGM", "71")],
     ("DAP", "CNY"), [_l("081060", "1000", "KGM", "1000")], ("DAP", "USD"), ["HS6_MISMATCH"]),
    ("same Incoterm, value 5 % apart", [_l("081060", "1000", "KGM", "7455")], ("DAP", "CNY"),
     [_l("081060", "1000", "KGM", "1000")], ("DAP", "USD"), ["VALUE_MISMATCH"]),
    ("FOB vs CIF beyond the allowance (20 %)", [_l("081060", "1000", "KGM", "7100")], ("FOB", "CNY"),
     [_l("081060", "1000", "KGM", "1200")], ("CIF", "USD"), ["VALUE_MISMATCH"]),
    ("CIF import below the FOB export", [_l("081060", "1000", "KGM", "7100")], ("FOB", "CNY"),
     [_l("081060", "1000", "KGM", "900")], ("CIF", "USD"), ["VALUE_MISMATCH"]),
    ("CIF export vs FOB import: the mirror case", [_l("081060", "1000", "KGM", "8520")], ("CIF", "CNY"),
     [_l("081060", "1000", "KGM", "1000")], ("FOB", "USD"), ["VALUE_MISMATCH"]),
    ("quantity 1 % apart after conversion", [_l("081060", "20.2", "TNE", "71000")], ("DAP", "CNY"),
     [_l("081060", "20000", "KGM", "10000")], ("DAP", "USD"), ["QUANTITY_MISMATCH"]),
    ("kg vs pieces", [_l("081060", "1000", "H87", "7100")], ("DAP", "CNY"),
     [_l("081060", "1000", "KGM", "1000")], ("DAP", "USD"), ["QUANTITY_UNIT_MISMATCH"]),
    ("currency not in the table", [_l("081060", "1000", "KGM", "7100")], ("DAP", "HKD"),
     [_l("081060", "1000", "KGM", "1000")], ("DAP", "USD"), ["RATE_UNKNOWN"]),
]


@pytest.mark.parametrize("case", [c[0] for c in COMPARISONS])
def test_comparison(case: str) -> None:
    _name, e_lines, (e_term, e_cur), i_lines, (i_term, i_cur), expected = next(c for c in COMPARISONS if c[0] == case)
    findings = compare(_export(e_lines, incoterm=e_term, currency=e_cur), _import(i_lines, incoterm=i_term,
                                                                                   currency=i_cur), CONFIG)
    assert sorted(f.code.value for f in findings) == sorted(expected), [f.message for f in findings]


def test_the_tolerances_are_configurable() -> None:
    exp, imp = _export([_l("081060", "1000", "KGM", "7455")], incoterm="DAP"), _import([_l("081060", "1000", "KGM",
                                                                                          "1000")])
    assert [f.code for f in compare(exp, imp, MirrorConfig(value_tolerance=D("0.06")))] == []
    assert [f.code for f in compare(exp, imp, MirrorConfig(value_tolerance=D("0.04")))] == [FindingCode.VALUE_MISMATCH]
    assert [f.code for f in compare(exp, imp, MirrorConfig(units_per_usd={"CNY": D("7.455"), "USD": D(1)}))] == []


@pytest.mark.parametrize(("now", "first_seen", "timeout", "overdue"), [
    (1_000, 0, 1_000, True), (999, 0, 1_000, False), (0, 0, 0, True), (5, 10, 1, False)])
def test_import_overdue(now: int, first_seen: int, timeout: int, overdue: bool) -> None:
    assert import_overdue(now, first_seen, timeout) is overdue


def test_an_unmatched_export_waits_then_is_a_finding() -> None:
    exp = _export([_l("081060", "1000", "KGM", "7100")])
    config = MirrorConfig(import_timeout_ms=60_000)
    clock = iter([59_999, 60_000])
    waiting = check_export(exp, [], now_ms=next(clock), first_seen_ms=0, config=config)
    assert (waiting.waiting, waiting.findings) == (True, ())
    late = check_export(exp, [], now_ms=next(clock), first_seen_ms=0, config=config)
    assert (late.waiting, late.codes) == (False, ["NO_IMPORT_DECLARATION"])
    assert late.matched is None


def _run(count: int, seed: int, ratio: float) -> list[tuple[Any, list[str]]]:
    consignments = list(generate_cn_exports(count, seed, mismatch_ratio=ratio))
    imports = [ImportConsignment.from_record(c.vn_record) for c in consignments if c.vn_has_import]
    return [(c, check_export(ExportConsignment.from_record(c.export), imports, now_ms=10**12, first_seen_ms=0).codes)
            for c in consignments]


def test_seeded_mismatches_are_found_exactly() -> None:
    results = _run(60, 7, 0.5)
    seeded = {c.seeded for c, _ in results}
    assert seeded >= set(MISMATCH_KINDS), "every kind of mismatch is seeded at least once"
    wrong = [(c.seeded, codes) for c, codes in results if codes != c.expected_findings]
    assert wrong == []


def test_clean_pairs_with_legitimate_differences_raise_nothing() -> None:
    results = _run(150, 3, 0.0)
    consignments = [c for c, _ in results]
    # the legitimate differences are really there
    assert any(c.export["incoterm"] == "FOB" and c.vn_record["invoice"]["incoterm"] != "FOB" for c in consignments)
    assert any(g["unit"] == "TNE" for c in consignments for g in c.export["goods"]
               if any(v["quantity_unit"] == "KGM" and v["hs6"] == g["hs6"] for v in c.vn_record["goods"]))
    assert {c.vn_record["invoice"]["currency"] for c in consignments} >= {"USD", "VND"}
    assert [(c.ida.business_key, codes) for c, codes in results if codes] == []
