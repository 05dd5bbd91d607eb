"""China's side of the same trucks: export declarations and road manifests that mirror VN's IDAs.

``generate_cn_exports(count, seed)`` takes the VN generator's import declarations (``generate("IDA", …)``,
the same seed gives the same IDAs) and writes, for each, what China Customs would have declared for the
same consignment leaving China: the same truck (its plate in Chinese form, 桂F·68941 for VNACCS'
GUIF68941), the same containers, the same consignee tax code (MST; the name spelt without diacritics), the
same goods (HS-6 of the VN HS-8, the CN 10-digit code from the crosswalk), and the differences that are
legitimate: values in CNY at a rate of the day (within 1 % of the table), an FOB price where VN declares
DAP/CIF (the freight and insurance share, 2-8 %), rounding to the fen, and quantities in tonnes where VN
declares kilograms. ``mismatch_ratio`` seeds one real difference into that share of the consignments
(:data:`MISMATCH_KINDS`), and each consignment says which findings the mirror checks must report.
Deterministic per seed.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from xborder_gateway.samples import _data as data
from xborder_gateway.samples._generate import Sample, generate

__all__ = ["MISMATCH_KINDS", "CnConsignment", "generate_cn_exports"]

#: kind of seeded mismatch -> the finding code the mirror checks must report for it
MISMATCH_KINDS: Mapping[str, str] = {
    "hs6": "HS6_MISMATCH",
    "value": "VALUE_MISMATCH",
    "quantity": "QUANTITY_MISMATCH",
    "unit": "QUANTITY_UNIT_MISMATCH",
    "no-import": "NO_IMPORT_DECLARATION",
}

_UNITS_PER_USD = {"USD": Decimal(1), "CNY": Decimal("7.1"), "VND": Decimal(25400)}  # as the VN generator prices
_CN_DESCRIPTIONS = {"07": "新鲜蔬菜", "08": "新鲜水果", "31": "尿素", "84": "履带式挖掘机", "85": "智能手机",
                    "52": "棉制机织物", "72": "热轧钢卷"}
_PROVINCE = {"GUI": "桂"}
_FEN = Decimal("0.01")


@dataclass(frozen=True)
class CnConsignment:
    """One truck's consignment seen from both sides."""

    ida: Sample
    """The VN import declaration (XML), as the VN generator made it."""
    vn_record: Mapping[str, Any] = field(repr=False)
    """The IDA translated (the ``Declaration`` record values VN's site holds)."""
    export: dict[str, Any] = field(repr=False)
    """China's ``CnExportDeclaration`` record (plain values, ready for ``avro.encode``)."""
    manifest: dict[str, Any] = field(repr=False)
    """China's ``CnRoadManifest`` record of the truck."""
    seeded: str | None = None
    """The kind of mismatch seeded (:data:`MISMATCH_KINDS`), None for a clean pair."""
    vn_has_import: bool = True
    """False for ``no-import``: VN never received this IDA (the mirror check must time out)."""

    @property
    def expected_findings(self) -> list[str]:
        """The finding codes the mirror checks must report, sorted: an HS-6 moved to another subheading is
        missing on each side (two findings); every other seeded kind gives one."""
        if self.seeded is None:
            return []
        code = MISMATCH_KINDS[self.seeded]
        return [code, code] if self.seeded == "hs6" else [code]

    def export_frame(self) -> bytes:
        from xborder_gateway import avro

        return avro.encode("CnExportDeclaration", self.export)

    def manifest_frame(self) -> bytes:
        from xborder_gateway import avro

        return avro.encode("CnRoadManifest", self.manifest)


def cn_plate(vn_written: str) -> str:
    """A plate as China writes it: VNACCS' ``GUIF68941`` -> ``桂F·68941``; a VN plate is kept."""
    for latin, han in _PROVINCE.items():
        if vn_written.startswith(latin) and len(vn_written) > len(latin) + 1:
            rest = vn_written[len(latin):]
            return f"{han}{rest[0]}·{rest[1:]}"
    return vn_written


def _ascii_upper(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.replace("Đ", "D").replace("đ", "d"))
    return "".join(c for c in folded if not unicodedata.combining(c)).upper()


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _line(rng: random.Random, i: int, vn: Mapping[str, Any], currency: str, fob: bool) -> dict[str, Any]:
    hs6 = vn["hs6"]
    quantity, unit = vn["quantity"], vn["quantity_unit"]
    net = quantity if unit == "KGM" else quantity * 1000 if unit == "TNE" else None
    if unit == "KGM" and rng.random() < 0.4:  # China declares tonnes: exact, 3 decimals of 24481 kg = 24.481 t
        quantity, unit = (quantity / 1000).quantize(Decimal("0.0001")), "TNE"
    value_vn = vn.get("invoice_value") or Decimal(0)
    usd = value_vn / _UNITS_PER_USD[currency]
    rate_of_the_day = _UNITS_PER_USD["CNY"] * Decimal(str(round(rng.uniform(0.99, 1.01), 4)))
    cny = usd * rate_of_the_day
    if fob:  # China's price leaves out carriage and insurance from the border to the buyer
        cny = cny / (1 + Decimal(str(round(rng.uniform(0.02, 0.08), 3))))
    return {
        "line_number": i, "hs_cn": vn.get("cn_code") or hs6 + "0000", "hs6": hs6,
        "description": _CN_DESCRIPTIONS.get(hs6[:2], "商品") + f" {hs6}",
        "quantity": quantity, "unit": "H87" if unit in ("CHIEC", "C62") else unit,
        "net_weight_kg": net.quantize(Decimal("0.001")) if net is not None else None,
        "gross_weight_kg": None,
        "value": cny.quantize(_FEN, rounding=ROUND_HALF_EVEN), "origin_country": "CN",
    }


def _seed(rng: random.Random, kind: str, export: dict[str, Any]) -> None:
    """One real difference, applied to every line of one HS-6 (the mirror checks compare per HS-6), so that
    exactly the findings of :attr:`CnConsignment.expected_findings` result."""
    goods = export["goods"]
    hs6 = goods[rng.randrange(len(goods))]["hs6"]
    group = [g for g in goods if g["hs6"] == hs6]
    if kind == "hs6":  # another subheading of the same heading that the IDA does not declare
        taken = {g["hs6"] for g in goods}
        other = next(f"{hs6[:4]}{n:02d}" for n in range(99, 0, -1) if f"{hs6[:4]}{n:02d}" not in taken)
        for line in group:
            line["hs6"], line["hs_cn"] = other, other + "0000"
    for line in group:
        if kind == "value":
            line["value"] = (line["value"] * Decimal("1.6")).quantize(_FEN)
        elif kind == "quantity":
            line["quantity"] = (line["quantity"] * Decimal("1.3")).quantize(Decimal("0.0001"))
        elif kind == "unit":
            line["unit"] = "H87" if line["unit"] in ("KGM", "TNE") else "KGM"
    export["total_value"] = sum((g["value"] for g in goods), Decimal(0))


def _consignment(rng: random.Random, ida: Sample, seeded: str | None) -> CnConsignment:
    from xborder_gateway.documents import translate_xml

    vn = translate_xml(ida.xml, source=ida.name).values
    invoice = vn.get("invoice") or {}
    currency = invoice.get("currency") or "USD"
    fob = (invoice.get("incoterm") or "") in ("DAP", "CIF", "CIP", "CPT", "CFR", "DDP", "DPU") and rng.random() < 0.7
    lines = [_line(rng, i, g, currency, fob) for i, g in enumerate(vn["goods"], 1)]
    plate = cn_plate(str(vn.get("means_of_transport") or ""))
    crossing = vn["border_crossing_date"]
    number = "7206" + str(crossing.year) + _digits(rng, 10)
    consignee = vn["consignee"]
    export: dict[str, Any] = {
        "declaration_number": number, "declaration_version": 1,
        "declared_at": crossing - timedelta(hours=rng.randint(6, 30)),
        "customs_office": rng.choice(["7206", "7216", "7201"]), "port_of_exit": vn.get("loading_place") or "CNYYG",
        "trade_mode": rng.choice(["0110", "0110", "4019"]),
        "consignor": {"identifier": "9145" + _digits(rng, 13) + rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY"),
                      "name": vn["consignor"]["name"], "address": vn["consignor"].get("address"), "country": "CN"},
        "consignee": {"identifier": consignee.get("identifier"), "name": _ascii_upper(consignee["name"]),
                      "address": None, "country": "VN"},
        "vehicle_plate": plate, "trailer_plate": None, "containers": list(vn.get("containers") or []),
        "incoterm": "FOB" if fob else (invoice.get("incoterm") or "DAP"), "currency": "CNY",
        "total_value": sum((g["value"] for g in lines), Decimal(0)),
        "gross_weight_kg": vn.get("gross_weight_kg") or Decimal("1.000"), "goods": lines, "remarks": None,
    }
    if seeded is not None and seeded != "no-import":
        _seed(rng, seeded, export)
    perishable = any(g["hs6"][:2] in ("07", "08") for g in lines)
    manifest: dict[str, Any] = {
        "manifest_number": "4519" + _digits(rng, 12), "manifest_version": 1,
        "departure_at": crossing - timedelta(hours=rng.randint(1, 5)), "customs_office": export["customs_office"],
        "port_of_exit": export["port_of_exit"], "vehicle_plate": plate, "trailer_plate": None,
        "vehicle_country": "CN" if plate[:1] in _PROVINCE.values() else "VN",
        "drivers": [{"name": rng.choice(data.CN_DRIVER_NAMES), "document_number": "E" + _digits(rng, 8)}
                    for _ in range(rng.randint(1, 2))],
        "containers": list(export["containers"]), "seals": [f"GX{_digits(rng, 7)}" for _ in export["containers"]],
        "declarations": [number], "gross_weight_kg": export["gross_weight_kg"], "perishable": perishable,
    }
    return CnConsignment(ida=ida, vn_record=vn, export=export, manifest=manifest, seeded=seeded,
                         vn_has_import=seeded != "no-import")


def generate_cn_exports(count: int, seed: int, *, mismatch_ratio: float = 0.0) -> Iterator[CnConsignment]:
    """``count`` consignments: VN's IDA (``generate("IDA", count, seed)``) and China's export declaration and
    road manifest of the same truck. About ``mismatch_ratio`` of them carry one seeded mismatch, cycling
    through :data:`MISMATCH_KINDS`; the others differ only legitimately (Incoterm, rate, rounding, unit)."""
    if not 0 <= mismatch_ratio <= 1:
        raise ValueError("mismatch_ratio must be within [0, 1]")
    rng = random.Random(f"{seed}:cn-exports")  # noqa: S311 - sample data, reproducible by seed
    kinds = list(MISMATCH_KINDS)
    seeded_so_far = 0
    for ida in generate("IDA", count, seed):
        seeded = None
        if rng.random() < mismatch_ratio:
            seeded = kinds[seeded_so_far % len(kinds)]
            seeded_so_far += 1
        yield _consignment(rng, ida, seeded)
