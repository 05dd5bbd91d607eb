"""Deterministic generator of realistic VNACCS-style documents (valid, or breaking one documented rule)."""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache

from lxml import etree

from xborder_gateway.mapping._transforms import container_check_digit, tax_code_check_digit
from xborder_gateway.samples import _data as data

__all__ = ["INVALID_RULES", "KINDS", "Sample", "generate", "generate_mix"]

KINDS = ("IDA", "EDA", "TIR", "TOR")


@dataclass(frozen=True)
class Sample:
    """One generated document."""

    name: str
    xml: bytes = field(repr=False)
    kind: str
    business_key: str
    broken_rule: str | None
    """None for a valid document, else the rule it breaks (see :data:`INVALID_RULES`)."""
    perishable: bool
    linked_declarations: tuple[str, ...] = ()
    expected_code: str | None = None
    """The error code the gateway must report for ``broken_rule``."""
    expected_holds: tuple[str, ...] = ()
    """The CN rule set's reason codes for this declaration (``exchange._rules_cn``), in its order; empty
    for one it accepts. Set for valid EDA documents (SPS and licence items missing or wrong on purpose)."""
    amendment: bool = False
    """True for an amendment: the same declaration number, supplying what its original lacked."""
    amended_by: Sample | None = field(default=None, repr=False, compare=False)
    """For a declaration with holds: the amendment that releases them (``generate_mix(amendments=True)``)."""


# rule -> (kinds it applies to, expected error code, description)
INVALID_RULES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "missing-mandatory": (KINDS, "XSD_CONTENT", "a mandatory element is left out (kind code / plate)"),
    "unknown-code": (("IDA", "EDA"), "XSD_ENUMERATION", "the declaration kind code is not in the closed list"),
    "too-long": (("IDA", "EDA"), "XSD_LENGTH", "the trader's name is 301 characters (limit 300)"),
    "too-many-lines": (("IDA", "EDA"), "XSD_CONTENT", "51 goods lines (limit 50: split the declaration)"),
    "bad-decimal": (("IDA", "EDA"), "XSD_DIGITS", "the gross weight has 4 decimals (limit 3)"),
    "bad-date": (KINDS, "DATE_INVALID", "a date that is not in the calendar (31 February)"),
    "tax-code-check-digit": (("IDA", "EDA"), "TAX_CODE_CHECK_DIGIT", "the tax code's check digit is wrong"),
    "container-check-digit": (KINDS, "CONTAINER_CHECK_DIGIT", "a container number's ISO 6346 check digit is wrong"),
    "vnd-fraction": (("IDA", "EDA"), "CURRENCY_MINOR_UNITS", "a VND invoice total with decimals (VND has none)"),
    "hs-not-in-nomenclature": (("IDA", "EDA"), "HS_SUBHEADING_UNKNOWN",
                               "a goods line's HS code 85171200 (an HS 2017 subheading, split in HS 2022)"),
    "too-many-drivers": (("TIR", "TOR"), "XSD_CONTENT", "six drivers (limit 5)"),
    "bad-linked-declaration": (("TIR", "TOR"), "XSD_PATTERN", "a linked declaration number of 11 digits"),
    "bad-time": (("TIR", "TOR"), "XSD_PATTERN", "a crossing time of 24:60"),
    "doctype": (KINDS, "XML_ENTITY_FORBIDDEN", "the document carries a DOCTYPE declaring an entity"),
    "truncated": (KINDS, "XML_TRUNCATED", "the document is cut in the middle"),
}

_TWO = Decimal("0.01")
_THREE = Decimal("0.001")


_LINE_SPS_ORDER = ("SPC", "PUC", "PHC", "LIC")
_LICENCE_HS6 = frozenset({"100199", "100590", "100610", "100620", "100630", "100640", "170114", "170199",
                          "520100", "310210"})  # = exchange._rules_cn.DEFAULT_LICENCE_REQUIRED_HS6 (a test checks)


@cache
def _registry() -> dict[tuple[str, str, bool], list[str]]:
    """(kind PUC/PHC, species, active) -> codes of the CN registry (simulated, versioned code list)."""
    from xborder_gateway.mapping import codelist

    out: dict[tuple[str, str, bool], list[str]] = {}
    for code, row in codelist(_SPS_REGISTRY).rows.items():
        for species in row["species"].split(";"):
            out.setdefault((row["kind"], species, row["status"] == "ACTIVE"), []).append(code)
    return out


_SPS_REGISTRY = "cn_sps_registry_2026-11-30"


def _set_line_item(doc: _Doc, line: etree._Element, name: str, value: str) -> None:
    """Set a goods line's SPC/PUC/PHC/LIC item, inserting it at its place in the XSD sequence."""
    tag = f"{{{doc.ns}}}{name}"
    existing = line.find(tag)
    if existing is not None:
        existing.text = value
        return
    later = _LINE_SPS_ORDER[_LINE_SPS_ORDER.index(name) + 1:]
    for other in later:
        found = line.find(f"{{{doc.ns}}}{other}")
        if found is not None:
            new = etree.Element(tag)
            new.text = value
            found.addprevious(new)
            return
    doc.add(line, name, value)


def _rules_for(kind: str) -> list[str]:
    return [name for name, (kinds, _c, _d) in INVALID_RULES.items() if kind in kinds]


class _Doc:
    """Builds one document as an lxml tree in the kind's namespace."""

    def __init__(self, kind: str) -> None:
        self.ns = f"urn:xborder:vnaccs:{kind}:1"
        self.root = etree.Element(f"{{{self.ns}}}{kind}", nsmap={None: self.ns})

    def add(self, parent: etree._Element | None, name: str, value: object | None = None) -> etree._Element:
        el = etree.SubElement(self.root if parent is None else parent, f"{{{self.ns}}}{name}")
        if value is not None:
            el.text = str(value)
        return el

    def find(self, path: str) -> etree._Element | None:
        return self.root.find("/".join(f"{{{self.ns}}}{p}" for p in path.split("/")))

    def bytes(self) -> bytes:
        out: bytes = etree.tostring(self.root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
        return out


class _Gen:
    def __init__(self, seed: int | str) -> None:
        self.rng = random.Random(str(seed))  # noqa: S311 - reproducible test data, not secrets
        self.used: set[str] = set()

    # ---- identifiers ------------------------------------------------------------------------
    def number(self, prefix: str) -> str:
        while True:
            value = prefix + "".join(self.rng.choice("0123456789") for _ in range(12 - len(prefix)))
            if value not in self.used:
                self.used.add(value)
                return value

    def tax_code(self) -> str:
        while True:
            nine = f"{self.rng.choice(['01', '02', '03', '04', '49', '60', '82', '03'])}" + "".join(
                self.rng.choice("0123456789") for _ in range(7))
            check = tax_code_check_digit(nine)
            if check is not None:
                code = nine + str(check)
                return code + "001" if self.rng.random() < 0.1 else code

    def container(self) -> str:
        first = self.rng.choice(data.CONTAINER_OWNERS) + "".join(self.rng.choice("0123456789") for _ in range(6))
        return first + str(container_check_digit(first))

    def date8(self, day: dt.date) -> str:
        return day.strftime("%d%m%Y")

    def day(self) -> dt.date:
        # peak fruit season weighted: May-September twice as likely
        month = self.rng.choice([1, 2, 3, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 11, 12])
        return dt.date(2026, month, self.rng.randint(1, 28))

    def vn_company(self) -> tuple[str, str]:
        name = f"{self.rng.choice(data.VN_COMPANY_FORMS)} {self.rng.choice(data.VN_COMPANY_CORES)}"
        ward, district, province = self.rng.choice(data.VN_PLACES)
        street = self.rng.choice(data.VN_STREETS)
        address = f"Số {self.rng.randint(1, 399)} đường {street}, {ward}, {district}, {province}"
        return name, address

    def vn_person(self) -> str:
        return f"{self.rng.choice(data.VN_FAMILY)} {self.rng.choice(data.VN_MIDDLE)} {self.rng.choice(data.VN_GIVEN)}"

    def vn_plate(self) -> str:
        return f"{self.rng.choice(['12C', '12H', '29C', '15C', '51D', '63C'])}-{self.rng.randint(10000, 99999)}"

    def cn_plate(self) -> str:
        return f"GUI{self.rng.choice('AFKNR')}{self.rng.randint(10000, 99999)}"

    # ---- goods ------------------------------------------------------------------------------
    def line_count(self, kind: str, fruit: bool) -> int:
        if kind == "EDA" and fruit:
            return 1 if self.rng.random() < 0.85 else self.rng.randint(2, 3)
        if self.rng.random() < 0.03:
            return 50
        return max(1, min(49, round(self.rng.lognormvariate(math.log(6), 0.7))))

    def declaration(self, kind: str, *, broken: str | None = None,  # noqa: PLR0912, PLR0915
                    fresh: bool | None = None) -> Sample:
        """``fresh``: a consignment of chapter 07-08 produce (default: 70 % of exports, 25 % of imports)."""
        # one statement per element of the document, in document order: kept linear on purpose
        rng = self.rng
        doc = _Doc(kind)
        imp = kind == "IDA"
        if fresh is None:
            fresh = rng.random() < (0.25 if imp else 0.7)
        fruit = (not imp) and fresh
        number = self.number("10" if imp else "30")
        kind_codes = ["A11", "A11", "A12", "A41", "G11", "E31"] if imp else ["B11", "B11", "B11", "G61", "E62"]
        kind_code = rng.choice(kind_codes)
        currency = rng.choice(["USD"] * 6 + ["CNY"] * 3 + ["VND"])
        nlines = 51 if broken == "too-many-lines" else self.line_count(kind, fruit)
        pool = data.IMPORT_GOODS if imp else data.EXPORT_FRUIT + data.EXPORT_OTHER
        catalogue = [g for g in pool if (g[0][:2] in ("07", "08")) == fresh]
        lines = []
        total = Decimal(0)
        net_kg = Decimal(0)
        perishable = False
        rate = {"USD": Decimal(1), "CNY": Decimal("7.1"), "VND": Decimal(25400)}[currency]
        for _ in range(nlines):
            hs, desc, unit, (qlo, qhi), (plo, phi) = rng.choices(
                catalogue, weights=[data.GOODS_WEIGHTS.get(g[0], 1) for g in catalogue])[0]
            qty = Decimal(rng.randint(qlo, qhi)) if nlines < 10 else Decimal(max(1, rng.randint(qlo, qhi) // 10))
            price = (Decimal(str(rng.uniform(plo, phi))) * rate).quantize(Decimal("0.0001"))
            if currency == "VND":
                price = price.quantize(Decimal(1))
            value = (qty * price).quantize(Decimal(1) if currency == "VND" else _TWO, rounding=ROUND_HALF_EVEN)
            total += value
            net_kg += qty * (1000 if unit == "TNE" else 1 if unit == "KGM" else Decimal("2.5"))
            perishable = perishable or hs[:2] in ("07", "08")
            lines.append((hs, desc, unit, qty, price, value))
        cargo_class = "K" if (perishable and rng.random() < 0.3) else None
        day = self.day()
        el = doc.add
        el(None, "ICN" if imp else "ECN", number)
        if broken != "missing-mandatory":
            el(None, "ICB" if imp else "ECB", "Z99" if broken == "unknown-code" else kind_code)
        if cargo_class:
            el(None, "CCC", cargo_class)
        el(None, "MTC", "4")
        if imp:
            el(None, "SKB", "4")
        el(None, "CH", rng.choice(["15BB", "15BC", "15BD", "15E1"]))
        el(None, "CHB", "00")
        el(None, "ICD" if imp else "ECD", self.date8(day - dt.timedelta(days=rng.randint(0, 2))))
        tax = self.tax_code()
        if broken == "tax-code-check-digit":
            tax = tax[:9] + str((int(tax[9]) + 1) % 10) + tax[10:]
        vn_name, vn_address = self.vn_company()
        if broken == "too-long":
            vn_name = (vn_name + " " + "Ư" * 300)[:301]
        trade = rng.choice(["TRADING", "IMPORT AND EXPORT", "FRUIT"])
        cn_name = f"{rng.choice(data.CN_COMPANY_CORES)} {trade} CO., LTD"
        street, city, region = rng.choice(data.CN_PLACES)
        if imp:
            el(None, "IMC", tax)
            el(None, "IMN", vn_name)
            el(None, "IMA", vn_address)
            el(None, "IMT", f"0205{rng.randint(100000, 999999)}")
            el(None, "EPN", cn_name)
            el(None, "EPA", street)
            el(None, "EP3", city)
            el(None, "EP4", region)
            el(None, "EPO", "CN")
            el(None, "BL", f"CMR{rng.randint(1000000, 9999999)}")
        else:
            el(None, "EPC", tax)
            el(None, "EPN", vn_name)
            el(None, "EPA", vn_address)
            el(None, "EPT", f"0205{rng.randint(100000, 999999)}")
            el(None, "CGN", cn_name)
            el(None, "CGA", street)
            el(None, "CAC", city)
            el(None, "CAS", region)
            el(None, "CGK", "CN")
            el(None, "EKN", f"CMR{rng.randint(1000000, 9999999)}")
        gross = (net_kg * Decimal("1.08")).quantize(_THREE)
        packages = max(1, int(net_kg / 18))
        el(None, "NO", packages)
        el(None, "NOT", rng.choice(["CT", "BX", "PK"]) if perishable else rng.choice(["PK", "CS", "BG", "PX"]))
        if rng.random() < 0.1 and broken != "bad-decimal":
            el(None, "GW", (gross / 1000).quantize(_THREE))
            el(None, "GWT", "TNE")
        else:
            el(None, "GW", "123.4567" if broken == "bad-decimal" else gross)
            el(None, "GWT", "KGM")
        if imp:
            el(None, "VSN", self.cn_plate())
            el(None, "ARR", "31022026" if broken == "bad-date" else self.date8(day))
            el(None, "DST", "VNLGS")
            el(None, "PSC", rng.choice(["CNPIN", "CNYYG", "CNNNG"]))
        else:
            el(None, "DSC", rng.choice(["CNPIN", "CNYYG", "CNNNG"]))
            el(None, "PSC", "VNLGS")
            el(None, "VSN", self.vn_plate())
            el(None, "SYM", "31022026" if broken == "bad-date" else self.date8(day))
        ncont = 1 if broken == "container-check-digit" else (rng.choice([0, 0, 1, 1, 2]) if perishable else
                                                             rng.choice([0, 0, 0, 1]))
        if ncont:
            box = el(None, "Containers")
            for i in range(ncont):
                number_c = self.container()
                if broken == "container-check-digit" and i == 0:
                    number_c = number_c[:10] + str((int(number_c[10]) + 1) % 10)
                el(box, "CNO", number_c)
        inv = el(None, "Invoice")
        el(inv, "IV3", f"INV-{day:%Y}-{rng.randint(1000, 99999)}")
        el(inv, "IVD", self.date8(day - dt.timedelta(days=rng.randint(1, 10))))
        el(inv, "IVP", rng.choice(["TTR", "TTR", "LC", "KC", "BIENMAU"]))
        el(inv, "IP2", rng.choice(["DAP", "DAP", "CIF", "FCA", "EXW"]))
        if broken == "vnd-fraction":
            el(inv, "IP3", "VND")
            el(inv, "IP4", "125000000.50")
            currency = "VND"
        else:
            el(inv, "IP3", currency)
            el(inv, "IP4", total)
        el(None, "NT2", rng.choice(["Hàng hóa đóng gói đúng quy cách, bảo quản lạnh", "Giao hàng tại cửa khẩu Hữu Nghị",
                                    "Hàng mới 100%", "Lô hàng thuộc hợp đồng số HĐ-2026/" + str(rng.randint(10, 99))]))
        # SPS and licence items (EDA v2): present on most fruit exports, missing or wrong on a small share;
        # ``fixes`` records what an amendment must supply to release the hold it causes.
        fixes: list[tuple[int | None, str, str]] = []  # (line index or None for PHY, item, right value)
        holds: list[str] = []
        fruit_lines = [i for i, ln_ in enumerate(lines) if not imp and ln_[0] in data.FRUIT_SPECIES]
        if fruit_lines:
            cert = f"{rng.randint(1, 9999):04d}/KDTV-{day:%Y}"
            if rng.random() < 0.97:
                el(None, "PHY", cert)
            else:
                fixes.append((None, "PHY", cert))
        goods = el(None, "Goods")
        for index, (hs, desc, unit, qty, price, value) in enumerate(lines):
            ln = el(goods, "Line")
            el(ln, "CMD", "85171200" if broken == "hs-not-in-nomenclature" and index == 0 else hs)
            el(ln, "CMN", desc)
            el(ln, "OR", "CN" if imp else "VN")
            if imp:
                el(ln, "ORS", rng.choice(["B05", "B05", "B01"]))
            el(ln, "QN1", qty)
            el(ln, "QT1", unit)
            if unit not in ("KGM", "TNE"):
                el(ln, "QN2", (qty * Decimal("2.5")).quantize(_TWO))
                el(ln, "QT2", "KGM")
            if broken != "vnd-fraction":
                el(ln, "BPR", value)
                el(ln, "UPR", price)
                el(ln, "UPC", currency)
            if imp:
                el(ln, "TXA", rng.choice(["0", "5", "10", "8"]))
            if index in fruit_lines:
                holds.extend(self._sps_items(doc, ln, index, data.FRUIT_SPECIES[hs], fixes))
            if not imp and hs[:6] in _LICENCE_HS6:
                licence = f"TRQ-{day:%Y}-{rng.randint(1, 99999):05d}"
                if rng.random() < 0.95:
                    el(ln, "LIC", licence)
                else:
                    fixes.append((index, "LIC", licence))
                    holds.append("LICENCE_REQUIRED")
        if any(item == "PHY" for _i, item, _v in fixes):
            holds.append("SPS_CERTIFICATE_MISSING")
        amv = None
        if fixes and broken is None:  # issue 15 (ADR 0404): the original of an amended declaration is version 1
            amv = etree.Element(f"{{{doc.ns}}}AMV")
            amv.text = "1"
            goods.addprevious(amv)
        xml = doc.bytes()
        amended_by = None
        if fixes and broken is None and amv is not None:
            for index_, item, right in fixes:
                if index_ is None:
                    phy = etree.Element(f"{{{doc.ns}}}PHY")
                    phy.text = right
                    amv.addprevious(phy)  # the XSD order: ... NT2, PHY, AMV, Goods
                else:
                    _set_line_item(doc, goods[index_], item, right)
            amv.text = "2"  # the amendment: one version more, so its order of arrival does not matter
            amended_by = Sample(name=f"{kind}-{number}.amendment", xml=doc.bytes(), kind=kind, business_key=number,
                                broken_rule=None, perishable=perishable or cargo_class == "K", amendment=True)
        xml = _break_bytes(xml, broken)
        return Sample(name=f"{kind}-{number}", xml=xml, kind=kind, business_key=number, broken_rule=broken,
                      perishable=perishable or cargo_class == "K", expected_code=_code(broken),
                      expected_holds=tuple(holds) if broken is None else (), amended_by=amended_by)

    def _sps_items(self, doc: _Doc, line: etree._Element, index: int, species: str,
                   fixes: list[tuple[int | None, str, str]]) -> list[str]:
        """Species, PUC and PHC of one fruit line; returns the hold codes its defects cause."""
        rng = self.rng
        reg = _registry()
        if species == "PSF" or rng.random() < 0.6:  # passion fruit has no national code of its own
            doc.add(line, "SPC", species)
        holds = []
        for item, code in (("PUC", "SPS_PUC_NOT_REGISTERED"), ("PHC", "SPS_PHC_NOT_REGISTERED")):
            right = rng.choice(reg[(item, species, True)])
            draw = rng.random()
            if draw < 0.96:
                doc.add(line, item, right)
                continue
            if draw < 0.98:
                pass  # missing
            elif draw < 0.99 or (item, species, False) not in reg:  # not registered
                doc.add(line, item, f"VN-{species}-{rng.randint(10000, 99999)}" if item == "PUC"
                        else f"VN-PH-{rng.randint(10000, 99999)}")
            else:  # suspended
                doc.add(line, item, rng.choice(reg[(item, species, False)]))
            fixes.append((index, item, right))
            holds.append(code)
        return holds

    def vehicle(self, kind: str, *, linked: tuple[str, ...] = (), perishable: bool = False,  # noqa: PLR0915
                broken: str | None = None) -> Sample:
        rng = self.rng
        doc = _Doc(kind)
        el = doc.add
        arrival = kind == "TIR"
        number = self.number("90" if arrival else "91")
        cn_truck = rng.random() < 0.6
        el(None, "KBN", rng.choice(["9"] * 18 + ["5", "1"]))
        el(None, "AND", number)
        el(None, "ABG", rng.choice(["15BB", "15BC", "15BD"]))
        day = self.day()
        el(None, "ADT" if arrival else "EDT", "31022026" if broken == "bad-date" else self.date8(day))
        el(None, "AMT" if arrival else "EMT", "2460" if broken == "bad-time" else
           f"{rng.randint(5, 22):02d}{rng.randint(0, 59):02d}")
        el(None, "NOD", f"BATCH-{day:%Y%m%d}-{rng.randint(100, 9999)}")
        drivers = el(None, "Drivers")
        for _ in range(6 if broken == "too-many-drivers" else (2 if rng.random() < 0.3 else 1)):
            d = el(drivers, "Driver")
            if cn_truck:
                el(d, "DF", rng.choice(data.CN_DRIVER_NAMES))
                el(d, "DN", "CN")
                el(d, "PR", "F")
                el(d, "BP", f"T{rng.randint(10000000, 99999999)}")
            else:
                el(d, "DF", self.vn_person())
                el(d, "DN", "VN")
                el(d, "PR", "P")
                el(d, "DP", f"C{rng.randint(1000000, 9999999)}")
        el(None, "TTM", "HGV")
        el(None, "LOM", rng.choice(data.BRANDS))
        if broken != "missing-mandatory":
            el(None, "LPN", self.cn_plate() if cn_truck else self.vn_plate())
        el(None, "REC", "CN" if cn_truck else "VN")
        el(None, "CSN", "L" + "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ0123456789") for _ in range(16)))
        el(None, "ESN", f"WP{rng.randint(10000000, 99999999)}")
        el(None, "OMT", rng.choice(data.CN_COMPANY_CORES) + " LOGISTICS" if cn_truck else self.vn_company()[0])
        ncont = 1 if broken == "container-check-digit" else rng.choice([0, 1, 1, 2])
        if ncont:
            boxes = el(None, "Containers")
            for i in range(ncont):
                c = el(boxes, "Container")
                number_c = self.container()
                if broken == "container-check-digit" and i == 0:
                    number_c = number_c[:10] + str((int(number_c[10]) + 1) % 10)
                el(c, "CNO", number_c)
                for _ in range(rng.randint(1, 2)):
                    el(c, "SL", f"{rng.choice(['VN', 'CN'])}{rng.randint(1000000, 9999999)}")
                el(c, "EFS", "5" if linked or rng.random() < 0.8 else "4")
                el(c, "SIZ", rng.choice(["22", "42", "45"]))
                el(c, "TYP", "RT" if perishable else "GP")
        links = linked
        if broken == "bad-linked-declaration":
            links = (*linked, "10512345678")
        if links:
            box = el(None, "LinkedDeclarations")
            for n in links:
                el(box, "LDN", n)
        if perishable:
            el(None, "PRI", "1")
        el(None, "KIJ", rng.choice(["Xe chở hàng qua cửa khẩu Hữu Nghị", "Luồng xanh - hàng nông sản",
                                    "Xe container lạnh", "Hàng quá cảnh"]))
        xml = _break_bytes(doc.bytes(), broken)
        return Sample(name=f"{kind}-{number}", xml=xml, kind=kind, business_key=number, broken_rule=broken,
                      perishable=perishable, linked_declarations=tuple(linked), expected_code=_code(broken))


def _code(broken: str | None) -> str | None:
    return INVALID_RULES[broken][1] if broken else None


def _break_bytes(xml: bytes, broken: str | None) -> bytes:
    if broken == "doctype":
        header, _, body = xml.partition(b"?>\n")
        return header + b'?>\n<!DOCTYPE d [<!ENTITY e "entity">]>\n' + body
    if broken == "truncated":
        return xml[: len(xml) * 2 // 3]
    return xml


def generate(kind: str, count: int, seed: int, *, invalid: bool = False) -> Iterator[Sample]:
    """``count`` documents of ``kind`` (IDA, EDA, TIR, TOR), reproducible from ``seed``.

    With ``invalid=True`` each document breaks exactly one rule, cycling through the rules that apply
    to the kind (:data:`INVALID_RULES`), so ``count >= len(rules)`` covers all of them.
    """
    kind = kind.upper()
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
    if count < 0:
        raise ValueError("count must be >= 0")
    gen = _Gen(f"{seed}:{kind}")
    rules = _rules_for(kind)
    make: Callable[..., Sample] = gen.declaration if kind in ("IDA", "EDA") else gen.vehicle
    for i in range(count):
        broken = rules[i % len(rules)] if invalid else None
        if kind in ("TIR", "TOR"):
            links = tuple(gen.number("10" if kind == "TIR" else "30") for _ in range(gen.rng.randint(1, 3)))
            yield make(kind, linked=links, perishable=gen.rng.random() < 0.55, broken=broken)
        else:
            yield make(kind, broken=broken)


def generate_mix(count: int, seed: int, invalid_ratio: float = 0.05, *,
                 amendments: bool = False) -> Iterator[Sample]:
    """A realistic stream: trucks of 1-3 goods declarations (EDA exports ~65 %, IDA imports ~35 %), each
    followed by the truck's TIR linking them, so a receiver can check the links. About 55 % of trucks carry
    fresh produce (HS 07-08: the priority lane; ../shared/DOMAIN.md: 538 of 898 trucks on a peak day),
    the others general goods. About ``invalid_ratio`` of the documents break one documented rule
    (``Sample.broken_rule``/``expected_code`` say which).

    With ``amendments=True``, about 70 % of the declarations the CN rules would hold (``expected_holds``)
    are followed, after their truck, by an amendment (``Sample.amendment``: the same declaration number)
    that supplies the missing SPS or licence item and so releases the hold."""
    if not 0 <= invalid_ratio <= 1:
        raise ValueError("invalid_ratio must be within [0, 1]")
    gen = _Gen(f"{seed}:mix")
    produced = 0

    def pick_broken(kind: str) -> str | None:
        if gen.rng.random() >= invalid_ratio:
            return None
        return gen.rng.choice(_rules_for(kind))

    while produced < count:
        if count - produced == 1:  # no room for a truck after it: a last declaration alone (never an empty truck)
            kind = "EDA" if gen.rng.random() < 0.65 else "IDA"
            produced += 1
            yield gen.declaration(kind, broken=pick_broken(kind))
            break
        size = min(gen.rng.choice([1, 1, 2, 2, 3]), count - produced - 1)
        linked: list[str] = []
        perishable = False
        fresh = gen.rng.random() < 0.55
        pending: list[Sample] = []
        for _ in range(max(size, 0)):
            kind = "EDA" if gen.rng.random() < 0.65 else "IDA"
            sample = gen.declaration(kind, broken=pick_broken(kind), fresh=fresh)
            linked.append(sample.business_key)
            perishable = perishable or (sample.perishable and sample.broken_rule is None)
            produced += 1
            yield sample
            if amendments and sample.amended_by is not None and gen.rng.random() < 0.7:
                pending.append(sample.amended_by)
        if produced < count:
            produced += 1
            yield gen.vehicle("TIR", linked=tuple(linked), perishable=perishable, broken=pick_broken("TIR"))
        for amendment in pending:
            if produced < count:
                produced += 1
                yield amendment
