"""Every data-rule error of a document is reported, not only the first (bounded by IntakeLimits.max_errors).

The data rules (check digits, dates, minor units, …) run in the mapping after XSD validation; a document
with two bad containers and a bad tax code must give three reasons, in document order, each located,
with the first one as the error's primary code/line/xpath."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from xborder_gateway._cli import main
from xborder_gateway.documents import DocumentRejectedError, IntakeLimits, translate_xml
from xborder_gateway.intake import TOO_MANY_ERRORS, parse_xml
from xborder_gateway.mapping import mapping_for

GOLDEN = Path(__file__).parent / "golden"
IDA = (GOLDEN / "IDA-golden.xml").read_bytes()
TIR = (GOLDEN / "TIR-golden.xml").read_bytes()
LINE = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+): (?P<code>[A-Z0-9_]+) .+ \(at (?P<xpath>/\S+)\)$")


def _edit(raw: bytes, *pairs: tuple[bytes, bytes]) -> bytes:
    for old, new in pairs:
        assert raw.count(old) == 1, old
        raw = raw.replace(old, new)
    return raw


# IMC (line 12) is a wrong MST check digit; both containers (lines 32, 33) have wrong ISO 6346 check digits.
THREE_ERRORS = _edit(IDA, (b"<IMC>0100100079</IMC>", b"<IMC>0100100078</IMC>"),
                     (b"<CNO>CSQU3054383</CNO>", b"<CNO>CSQU3054384</CNO>\n    <CNO>MSKU9070324</CNO>"))
EXPECTED = [
    ("TAX_CODE_CHECK_DIGIT", 12, "/IDA/IMC"),
    ("CONTAINER_CHECK_DIGIT", 32, "/IDA/Containers/CNO[1]"),
    ("CONTAINER_CHECK_DIGIT", 33, "/IDA/Containers/CNO[2]"),
]


def _rejected(raw: bytes, **kwargs: object) -> DocumentRejectedError:
    with pytest.raises(DocumentRejectedError) as err:
        translate_xml(raw, **kwargs)  # type: ignore[arg-type]
    return err.value


def test_two_bad_containers_and_a_bad_tax_code_give_three_reasons_in_document_order() -> None:
    e = _rejected(THREE_ERRORS, source="three.xml")
    assert [(r.code, r.line, r.xpath) for r in e.reasons] == EXPECTED
    assert all(r.column is None for r in e.reasons)  # lxml gives no element column: "not known"
    assert "CSQU3054384" in e.reasons[1].message
    assert "MSKU9070324" in e.reasons[2].message
    # the primary code/line/xpath stay those of the first error
    assert (e.code, e.line, e.xpath, e.column) == ("TAX_CODE_CHECK_DIGIT", 12, "/IDA/IMC", None)
    assert e.message == e.reasons[0].message


def test_to_dict_lists_every_reason_with_code_line_column_and_xpath() -> None:
    data = json.loads(json.dumps(_rejected(THREE_ERRORS, source="three.xml").to_dict()))
    assert (data["code"], data["line"], data["xpath"], data["source"]) == ("TAX_CODE_CHECK_DIGIT", 12, "/IDA/IMC",
                                                                          "three.xml")
    assert [(r["code"], r["line"], r["xpath"]) for r in data["reasons"]] == EXPECTED
    for reason in data["reasons"]:
        assert set(reason) == {"code", "message", "line", "column", "xpath"}


def test_reasons_follow_the_document_not_the_mapping() -> None:
    """The IDA mapping evaluates the root's single-child fields (ARR) before nested records (the importer's
    IMC), so the failures are found in the other order; the report is still in document order."""
    raw = _edit(IDA, (b"<ARR>15052026</ARR>", b"<ARR>30022026</ARR>"),
                (b"<IMC>0100100079</IMC>", b"<IMC>0100100078</IMC>"))
    e = _rejected(raw)
    assert [(r.code, r.xpath) for r in e.reasons] == [("TAX_CODE_CHECK_DIGIT", "/IDA/IMC"),
                                                      ("DATE_INVALID", "/IDA/ARR")]
    assert e.code == "TAX_CODE_CHECK_DIGIT"
    # proof that the mapping meets ARR first: with room for one error, that is the one kept
    first_found = _rejected(raw, limits=IntakeLimits(max_errors=1)).reasons
    assert [r.code for r in first_found] == ["DATE_INVALID", TOO_MANY_ERRORS]


def test_errors_in_repeated_records_are_each_reported() -> None:
    """TIR: containers are records (each: Containers/Container), the crossing date a root field."""
    second = (b"    <Container>\n      <CNO>CSQU3054384</CNO>\n      <EFS>5</EFS>\n      <SIZ>45</SIZ>\n"
              b"      <TYP>RT</TYP>\n    </Container>\n  </Containers>")
    raw = _edit(TIR, (b"<CNO>MSKU9070323</CNO>", b"<CNO>MSKU9070324</CNO>"), (b"</Containers>", second),
                (b"<ADT>01062026</ADT>", b"<ADT>31022026</ADT>"))
    e = _rejected(raw)
    assert [(r.code, r.xpath) for r in e.reasons] == [
        ("DATE_INVALID", "/TIR/ADT"),
        ("CONTAINER_CHECK_DIGIT", "/TIR/Containers/Container[1]/CNO"),
        ("CONTAINER_CHECK_DIGIT", "/TIR/Containers/Container[2]/CNO"),
    ]
    assert [r.line for r in e.reasons] == sorted(r.line or 0 for r in e.reasons)


def test_errors_in_goods_lines_and_the_invoice_are_all_reported() -> None:
    """VND has no minor units: with the invoice currency VND, the invoice total (170000.50) and the second
    goods line's invoice value (10000.50, in the invoice currency) both break the rule; line 1 (160000) not."""
    e = _rejected(_edit(IDA, (b"<IP3>CNY</IP3>", b"<IP3>VND</IP3>")))
    assert [(r.code, r.xpath) for r in e.reasons] == [
        ("CURRENCY_MINOR_UNITS", "/IDA/Invoice/IP4"),
        ("CURRENCY_MINOR_UNITS", "/IDA/Goods/Line[2]/BPR"),
    ]
    assert "10000.50 VND" in e.reasons[1].message


def test_the_bound_stops_the_check_and_says_so() -> None:
    e = _rejected(THREE_ERRORS, limits=IntakeLimits(max_errors=2))
    assert [(r.code, r.xpath) for r in e.reasons[:2]] == [(c, x) for c, _l, x in EXPECTED[:2]]
    assert e.reasons[2].code == TOO_MANY_ERRORS
    assert "more than 2 data-rule error(s)" in e.reasons[2].message
    assert len(e.reasons) == 3
    # exactly at the bound: every error, no marker
    e = _rejected(THREE_ERRORS, limits=IntakeLimits(max_errors=3))
    assert [r.code for r in e.reasons] == [c for c, _l, _x in EXPECTED]


def test_the_default_bound_is_100_and_holds_for_many_bad_values() -> None:
    assert IntakeLimits().max_errors == 100
    many = b"".join(b"    <CNO>MSKU%07d</CNO>\n" % (9070324 + 11 * i) for i in range(150))
    raw = _edit(IDA, (b"    <CNO>CSQU3054383</CNO>\n", many))
    root = parse_xml(raw)  # the IDA XSD caps containers; the engine's bound must hold on its own
    with pytest.raises(DocumentRejectedError) as err:
        mapping_for("IDA").apply(root, source="many.xml")
    reasons = err.value.reasons
    bad = [r for r in reasons if r.code == "CONTAINER_CHECK_DIGIT"]
    assert len(bad) == 100
    assert len(reasons) == 101
    assert reasons[-1].code == TOO_MANY_ERRORS


def test_xsd_errors_are_bounded_too() -> None:
    lines = IDA.split(b"<Goods>", 1)[1].split(b"</Goods>", 1)[0]
    # a bad HS code in every goods line: one XSD error each
    bad_lines = re.sub(rb"<CMD>\d+</CMD>", b"<CMD>X</CMD>", lines)
    raw = IDA.replace(lines, bad_lines)
    all_errors = _rejected(raw).reasons
    assert len(all_errors) >= 2
    assert all(r.code.startswith("XSD_") for r in all_errors)
    capped = _rejected(raw, limits=IntakeLimits(max_errors=1)).reasons
    assert capped[0] == all_errors[0]
    assert capped[1].code == TOO_MANY_ERRORS
    assert capped[1].message.startswith(f"{len(all_errors) - 1} more XSD error(s) not listed")
    assert len(capped) == 2


def test_a_single_error_document_is_reported_as_before() -> None:
    e = _rejected(_edit(IDA, (b"<IMC>0100100079</IMC>", b"<IMC>0100100078</IMC>")), source="one.xml")
    assert [(r.code, r.xpath) for r in e.reasons] == [("TAX_CODE_CHECK_DIGIT", "/IDA/IMC")]
    assert e.lines() == ["one.xml:12:0: TAX_CODE_CHECK_DIGIT tax code 0100100078 has a wrong check digit (at /IDA/IMC)"]


def test_validate_prints_one_line_per_data_rule_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XBG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XBG_CONFIG", raising=False)
    bad = tmp_path / "three.xml"
    bad.write_bytes(THREE_ERRORS)
    assert main(["validate", str(bad)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 3
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    assert [(m["file"], m["code"], int(m["line"]), m["xpath"]) for m in matches if m] == [
        (str(bad), code, line, xpath) for code, line, xpath in EXPECTED]
    assert "0 valid, 1 invalid" in captured.err


def test_a_mapping_fault_after_data_rule_failures_rejects_with_the_failures_found() -> None:
    """Without XSD validation (as for a laxer future XSD): the importer's name (IMN) is missing, which the
    mapping cannot map (MAPPING_REQUIRED_MISSING, the gateway's fault). ARR is mapped before the importer:
    a bad ARR found first is reported as the sender's error, as when the check stopped at the first one."""
    from xborder_gateway.errors import MappingError

    no_name = _edit(IDA, (b"<IMN>", b"<IMX>"), (b"</IMN>", b"</IMX>"))
    with pytest.raises(MappingError) as fault:
        mapping_for("IDA").apply(parse_xml(no_name))
    assert fault.value.code == "MAPPING_REQUIRED_MISSING"
    both = _edit(no_name, (b"<ARR>15052026</ARR>", b"<ARR>30022026</ARR>"))
    with pytest.raises(DocumentRejectedError) as err:
        mapping_for("IDA").apply(parse_xml(both))
    assert [(r.code, r.xpath) for r in err.value.reasons] == [("DATE_INVALID", "/IDA/ARR")]
    assert isinstance(err.value.__cause__, MappingError)
