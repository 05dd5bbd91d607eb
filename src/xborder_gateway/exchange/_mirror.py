"""Mirror checks: China's export declaration against Viet Nam's import declaration (IDA) of the same consignment.

Pure functions over plain records (no I/O, no clock: ``now_ms`` is passed in), table-tested in
tests/exchange/test_mirror.py. What customs administrations exchange export data for: the same goods,
declared on both sides of the border, should agree.

**Matching** (:func:`match_import`): an export and an IDA are the same consignment when the truck's plate
is the same (after :func:`normalise_plate`: 桂A·12345 = GUIA12345 = guia-12345), the consignee's tax code
(MST) is the same (never the name: names are spelt differently on each side), and -- when both name
containers -- they share at least one container. Of several candidates, the one sharing most HS-6
subheadings wins (then the lowest declaration number).

**Comparison** (:func:`compare`), per HS-6 subheading (the lines of each side are summed per HS-6, so a
line split differently on each side is no mismatch):

- ``HS6_MISMATCH``: an HS-6 declared on one side only;
- ``QUANTITY_UNIT_MISMATCH``: quantities in units of different kinds (kg vs pieces; a unit without a
  conversion compares only with itself);
  ``QUANTITY_MISMATCH``: same kind, but after conversion (kg, t, g, lb → kg; pieces; l, m³ → l) the
  relative difference exceeds ``quantity_tolerance``;
- ``VALUE_MISMATCH``: both values converted to USD at the configured rate table, then the **Incoterm
  rule**: E/F terms (EXW, FCA, FAS, FOB) price the goods at the exporter's side, C/D terms (CFR, CIF, CPT,
  CIP, DAP, DPU, DDP) include carriage (and insurance) to Viet Nam. Same group: the values may differ by
  ``value_tolerance`` (relative). An E/F export against a C/D import: the import value may be up to
  ``freight_insurance_allowance`` above the export value (plus the tolerance either way) -- FOB vs CIF is
  not a mismatch, a CIF value far above FOB is. The mirror case (C/D export, E/F import) likewise.
  ``RATE_UNKNOWN`` when a currency is not in the table (nothing is guessed).

**Timeout** (:func:`import_overdue`): an export with no matching IDA is a finding
(``NO_IMPORT_DECLARATION``) only once ``timeout_ms`` has passed since it was first seen.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

__all__ = [
    "DEFAULT_RATES",
    "ExportConsignment",
    "Finding",
    "FindingCode",
    "ImportConsignment",
    "MirrorConfig",
    "MirrorLine",
    "MirrorResult",
    "check_export",
    "compare",
    "import_overdue",
    "match_import",
    "normalise_plate",
]


class FindingCode(StrEnum):
    HS6_MISMATCH = "HS6_MISMATCH"
    VALUE_MISMATCH = "VALUE_MISMATCH"
    QUANTITY_MISMATCH = "QUANTITY_MISMATCH"
    QUANTITY_UNIT_MISMATCH = "QUANTITY_UNIT_MISMATCH"
    RATE_UNKNOWN = "RATE_UNKNOWN"
    NO_IMPORT_DECLARATION = "NO_IMPORT_DECLARATION"


DEFAULT_RATES: Mapping[str, Decimal] = {"USD": Decimal(1), "CNY": Decimal("7.1"), "VND": Decimal(25400)}
"""Units of each currency per US dollar (an illustrative table; production reads the agreed daily table)."""


@dataclass(frozen=True)
class MirrorConfig:
    """The configurable parts of the mirror rules."""

    units_per_usd: Mapping[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_RATES))
    """The rate table: how many units of each currency make one US dollar."""
    value_tolerance: Decimal = Decimal("0.03")
    """Relative difference of values allowed within one Incoterm group (rates of different days, rounding)."""
    freight_insurance_allowance: Decimal = Decimal("0.10")
    """How much (relative to the E/F value) a C/D value may add for carriage and insurance to Viet Nam."""
    quantity_tolerance: Decimal = Decimal("0.005")
    """Relative difference of quantities allowed after unit conversion (rounding of tonnes)."""
    import_timeout_ms: int = 6 * 3_600_000
    """How long after an export is first seen its IDA may still come (NO_IMPORT_DECLARATION after it)."""


@dataclass(frozen=True)
class MirrorLine:
    hs6: str
    quantity: Decimal
    unit: str
    value: Decimal | None
    """In the consignment's currency; None if the declaration gives none for the line."""


@dataclass(frozen=True)
class _Consignment:
    number: str
    vehicle_plate: str
    consignee_tax_code: str | None
    containers: tuple[str, ...]
    incoterm: str | None
    currency: str | None
    lines: tuple[MirrorLine, ...]


@dataclass(frozen=True)
class ExportConsignment(_Consignment):
    """China's side: a ``CnExportDeclaration`` record."""

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> ExportConsignment:
        return cls(number=str(rec["declaration_number"]), vehicle_plate=str(rec["vehicle_plate"]),
                   consignee_tax_code=(rec.get("consignee") or {}).get("identifier"),
                   containers=tuple(rec.get("containers") or ()), incoterm=rec.get("incoterm"),
                   currency=rec.get("currency"),
                   lines=tuple(MirrorLine(g["hs6"], g["quantity"], g["unit"], g["value"]) for g in rec["goods"]))


@dataclass(frozen=True)
class ImportConsignment(_Consignment):
    """Viet Nam's side: a ``Declaration`` record of an IDA (VN's own intake, never read from China's site)."""

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> ImportConsignment:
        invoice = rec.get("invoice") or {}
        currency = invoice.get("currency")
        lines = []
        for g in rec["goods"]:
            value, value_currency = g.get("invoice_value"), g.get("unit_price_currency") or currency
            if currency is None or value_currency != currency:  # no invoice currency, or another one: no value
                value = None
            lines.append(MirrorLine(g["hs6"], g["quantity"], g["quantity_unit"], value))
        return cls(number=str(rec["declaration_number"]), vehicle_plate=str(rec.get("means_of_transport") or ""),
                   consignee_tax_code=(rec.get("consignee") or {}).get("identifier"),
                   containers=tuple(rec.get("containers") or ()), incoterm=invoice.get("incoterm"),
                   currency=currency, lines=tuple(lines))


@dataclass(frozen=True)
class Finding:
    code: FindingCode
    message: str
    hs6: str | None = None


@dataclass(frozen=True)
class MirrorResult:
    """What :func:`check_export` decided: the IDA matched (or None), the findings, and whether the export is
    still waiting for its IDA (unmatched, not yet overdue: no finding yet)."""

    matched: ImportConsignment | None
    findings: tuple[Finding, ...]
    waiting: bool = False

    @property
    def codes(self) -> list[str]:
        return sorted(f.code.value for f in self.findings)


# ---- matching -----------------------------------------------------------------------------------------------

#: province characters of Chinese plates and the Latin letters VNACCS writes them with (ASCII items)
_PROVINCES = {"桂": "GUI", "粤": "YUE", "云": "YUN", "滇": "DIAN", "湘": "XIANG", "琼": "QIONG", "黔": "QIAN",
              "川": "CHUAN", "闽": "MIN", "浙": "ZHE", "沪": "HU", "京": "JING"}
_PLATE_NOISE = re.compile(r"[\s·•.\-_/]+")


def normalise_plate(plate: str) -> str:
    """One spelling of a plate: the province character as VNACCS writes it, separators dropped, capitals."""
    text = _PLATE_NOISE.sub("", plate.strip()).upper()
    if text and text[0] in _PROVINCES:
        text = _PROVINCES[text[0]] + text[1:]
    return text


def _same_consignment(export: ExportConsignment, imp: ImportConsignment) -> bool:
    if not export.consignee_tax_code or export.consignee_tax_code != imp.consignee_tax_code:
        return False
    if normalise_plate(export.vehicle_plate) != normalise_plate(imp.vehicle_plate):
        return False
    if export.containers and imp.containers:
        return bool(set(export.containers) & set(imp.containers))
    return True


def match_import(export: ExportConsignment, imports: Iterable[ImportConsignment]) -> ImportConsignment | None:
    """The IDA of the same consignment (vehicle, consignee tax code, a shared container), or None."""
    candidates = [i for i in imports if _same_consignment(export, i)]
    if not candidates:
        return None
    hs6 = {line.hs6 for line in export.lines}
    return min(candidates, key=lambda i: (-len(hs6 & {line.hs6 for line in i.lines}), i.number))


# ---- comparison ---------------------------------------------------------------------------------------------

#: unit -> (kind, factor to the kind's base unit)
_UNITS: Mapping[str, tuple[str, Decimal]] = {
    "KGM": ("mass", Decimal(1)), "TNE": ("mass", Decimal(1000)), "GRM": ("mass", Decimal("0.001")),
    "LBR": ("mass", Decimal("0.45359237")),
    "H87": ("count", Decimal(1)), "C62": ("count", Decimal(1)), "NAR": ("count", Decimal(1)),
    "PR": ("count", Decimal(2)), "DZN": ("count", Decimal(12)),
    "LTR": ("volume", Decimal(1)), "MTQ": ("volume", Decimal(1000)),
    "MTK": ("area", Decimal(1)),
}
_EF_TERMS = frozenset({"EXW", "FCA", "FAS", "FOB"})
_CD_TERMS = frozenset({"CFR", "CIF", "CPT", "CIP", "DAP", "DPU", "DDP"})


def _group(incoterm: str | None) -> str | None:
    if incoterm in _EF_TERMS:
        return "EF"
    if incoterm in _CD_TERMS:
        return "CD"
    return None


def _relative(a: Decimal, b: Decimal) -> Decimal:
    top = max(abs(a), abs(b))
    return Decimal(0) if top == 0 else abs(a - b) / top


def _value_agrees(export_usd: Decimal, import_usd: Decimal, export_term: str | None, import_term: str | None,
                  config: MirrorConfig) -> bool:
    tol, allowance = config.value_tolerance, config.freight_insurance_allowance
    eg, ig = _group(export_term), _group(import_term)
    if eg == "EF" and ig == "CD":  # the import adds carriage and insurance to the export's price
        return export_usd * (1 - tol) <= import_usd <= export_usd * (1 + allowance + tol)
    if eg == "CD" and ig == "EF":
        return import_usd * (1 - tol) <= export_usd <= import_usd * (1 + allowance + tol)
    return _relative(export_usd, import_usd) <= tol


def _by_hs6(lines: Iterable[MirrorLine]) -> dict[str, list[MirrorLine]]:
    grouped: dict[str, list[MirrorLine]] = {}
    for line in lines:
        grouped.setdefault(line.hs6, []).append(line)
    return grouped


def _unit(code: str) -> tuple[str, Decimal]:
    """(kind, factor to the kind's base unit); a unit without a conversion is a kind of its own (it compares
    only with itself: MTK with MTK, SET with SET)."""
    return _UNITS.get(code) or (code, Decimal(1))


def _quantity(lines: list[MirrorLine]) -> tuple[str, Decimal] | None:
    """(kind, total in the kind's base unit), or None if the lines' units are of different kinds."""
    kinds = {_unit(line.unit)[0] for line in lines}
    if len(kinds) != 1:
        return None
    return kinds.pop(), sum((line.quantity * _unit(line.unit)[1] for line in lines), Decimal(0))


def _usd(lines: list[MirrorLine], currency: str | None, config: MirrorConfig) -> Decimal | None:
    if any(line.value is None for line in lines):
        return None
    rate = config.units_per_usd.get(currency or "")
    if rate is None or rate <= 0:
        raise LookupError(currency)
    return sum((line.value or Decimal(0) for line in lines), Decimal(0)) / rate


def compare(export: ExportConsignment, imp: ImportConsignment, config: MirrorConfig) -> tuple[Finding, ...]:
    """Every difference between a matched export and IDA, per HS-6 (see the module docstring for the rules)."""
    findings: list[Finding] = []
    exp, vn = _by_hs6(export.lines), _by_hs6(imp.lines)
    for hs6 in sorted(exp.keys() - vn.keys()):
        findings.append(Finding(FindingCode.HS6_MISMATCH, f"HS-6 {hs6} is exported by China but not in the IDA "
                                f"{imp.number}", hs6))
    for hs6 in sorted(vn.keys() - exp.keys()):
        findings.append(Finding(FindingCode.HS6_MISMATCH, f"HS-6 {hs6} is in the IDA {imp.number} but not in "
                                f"China's export {export.number}", hs6))
    for hs6 in sorted(exp.keys() & vn.keys()):
        eq, iq = _quantity(exp[hs6]), _quantity(vn[hs6])
        if eq is None or iq is None or eq[0] != iq[0]:
            units = sorted({line.unit for line in exp[hs6]}), sorted({line.unit for line in vn[hs6]})
            findings.append(Finding(FindingCode.QUANTITY_UNIT_MISMATCH, f"HS-6 {hs6}: quantities in {units[0]} "
                                    f"(China) and {units[1]} (Viet Nam) cannot be compared", hs6))
        elif _relative(eq[1], iq[1]) > config.quantity_tolerance:
            findings.append(Finding(FindingCode.QUANTITY_MISMATCH, f"HS-6 {hs6}: {eq[1].normalize()} vs "
                                    f"{iq[1].normalize()} ({eq[0]}, base unit)", hs6))
        try:
            ev, iv = _usd(exp[hs6], export.currency, config), _usd(vn[hs6], imp.currency, config)
        except LookupError as missing:
            findings.append(Finding(FindingCode.RATE_UNKNOWN, f"no rate for currency {missing.args[0]!r}", hs6))
            continue
        if ev is not None and iv is not None and not _value_agrees(ev, iv, export.incoterm, imp.incoterm, config):
            findings.append(Finding(FindingCode.VALUE_MISMATCH, f"HS-6 {hs6}: USD {ev:.2f} ({export.incoterm}, "
                                    f"China) vs USD {iv:.2f} ({imp.incoterm}, Viet Nam)", hs6))
    return tuple(findings)


def import_overdue(now_ms: int, first_seen_ms: int, timeout_ms: int) -> bool:
    """True once ``timeout_ms`` has passed since the export was first seen (the clock is the caller's)."""
    return now_ms - first_seen_ms >= timeout_ms


def check_export(export: ExportConsignment, imports: Iterable[ImportConsignment], *, now_ms: int,
                 first_seen_ms: int, config: MirrorConfig | None = None) -> MirrorResult:
    """Match an export against VN's IDAs and compare; unmatched -> waiting, or NO_IMPORT_DECLARATION once overdue."""
    config = config or MirrorConfig()
    imp = match_import(export, imports)
    if imp is not None:
        return MirrorResult(imp, compare(export, imp, config))
    if import_overdue(now_ms, first_seen_ms, config.import_timeout_ms):
        return MirrorResult(None, (Finding(FindingCode.NO_IMPORT_DECLARATION,
                                           f"no VN import declaration matches China's export {export.number} "
                                           f"(plate {export.vehicle_plate}, consignee {export.consignee_tax_code}) "
                                           f"{(now_ms - first_seen_ms) // 60_000} min after it was first seen"),))
    return MirrorResult(None, (), waiting=True)
