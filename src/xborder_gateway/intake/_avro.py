"""The CN intake: China's export declarations and road manifests arrive as framed Avro of an agreed schema.

China's internal XML is not ours to model: China Customs hands the gateway a single-object Avro frame
(``C3 01`` + fingerprint + body, see ``xborder_gateway.avro``) of ``CnExportDeclaration`` or
``CnRoadManifest``. :func:`take_cn_avro` is the pure check every such frame passes before it is sealed,
bounded like the XML intake (rules cited as ``# CNA-n``, listed in docs/exchange.md "CN → VN"):

CNA-1 size cap before decoding · CNA-2 a well-formed frame of a known schema (the sender's fault, not the
gateway's: ``AVRO_*`` codes as an IntakeError) · CNA-3 only the agreed CN intake schemas · CNA-4 array
lengths (goods lines, containers, seals, drivers, linked declarations) · CNA-5 string lengths, and text
without control characters · CNA-6 numbers in range (decimals within the schema's precision and not
negative, versions and line numbers) · CNA-7 times within a sane window around ``now`` · CNA-8 data rules:
HS-6 = first six digits of the 10-digit CN code, ISO 6346 check digits, the consignee's Vietnamese tax code
(MST) check digit, ISO 4217 / ISO 3166 / Rec 20 / Incoterms codes, consecutive line numbers, total = sum
of the lines.

Every refusal is a :class:`DocumentRejectedError` with a stable code and the path of the field
(``/goods[3]/hs6``); all data-rule failures of a frame are listed (at most ``max_errors``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from xborder_gateway import avro
from xborder_gateway.intake._errors import TOO_MANY_ERRORS, DocumentRejectedError, Reason

__all__ = ["CN_INTAKE_SCHEMAS", "DEFAULT_AVRO_LIMITS", "AvroIntakeLimits", "TakenAvro", "take_cn_avro"]

CN_INTAKE_SCHEMAS: tuple[str, ...] = ("CnExportDeclaration", "CnRoadManifest")
"""The agreed schemas China's side may hand to its outbound connector (CNA-3)."""

INCOTERMS_2020 = frozenset({"EXW", "FCA", "FAS", "FOB", "CFR", "CIF", "CPT", "CIP", "DAP", "DPU", "DDP"})


@dataclass(frozen=True)
class AvroIntakeLimits:
    """Bounds of the CN Avro intake (one frozen object, like :class:`~xborder_gateway.intake.IntakeLimits`)."""

    max_bytes: int = 262_144
    """Frame size cap, checked before decoding (CNA-1). A 50-line declaration is about 8 KB."""
    max_goods_lines: int = 50
    """Most goods lines of one export declaration (CNA-4)."""
    max_items: int = 50
    """Most items of any other array: containers, seals, linked declarations (CNA-4)."""
    max_drivers: int = 5
    max_string_chars: int = 512
    """Longest text field, in characters (CNA-5)."""
    max_version: int = 999
    """Highest declaration / manifest version (CNA-6)."""
    earliest: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    """No time before this (CNA-7)."""
    max_future: timedelta = timedelta(days=30)
    """No time later than ``now`` plus this (CNA-7): pre-arrival data is about the coming days."""
    max_errors: int = 100

    def __post_init__(self) -> None:
        if min(self.max_bytes, self.max_goods_lines, self.max_items, self.max_drivers, self.max_string_chars,
               self.max_version, self.max_errors) < 1:
            raise ValueError("Avro intake limits must be positive")


DEFAULT_AVRO_LIMITS = AvroIntakeLimits()


@dataclass(frozen=True)
class TakenAvro:
    """A CN frame that passed every intake rule: what the outbound connector seals, and what it needs beside."""

    schema_name: str
    version: int
    fingerprint: bytes
    business_key: str
    """Declaration number (export declaration) or manifest number (road manifest)."""
    document_version: int
    payload: bytes = field(repr=False)
    """The frame exactly as received (it is what gets sealed: never re-encoded)."""
    raw_sha256: bytes = field(repr=False)
    record: Mapping[str, Any] = field(repr=False, compare=False)
    vehicle_plate: str
    containers: tuple[str, ...]
    perishable: bool
    """Road manifest: its flag; export declaration: any line of HS chapter 07-08."""
    linked_declarations: tuple[str, ...] = ()


def _reject(code: str, message: str, source: str, path: str | None = None) -> DocumentRejectedError:
    return DocumentRejectedError([Reason(code, message, xpath=path)], source=source,
                                 hint="the sender's Avro record breaks an intake rule of the CN → VN exchange "
                                 "(docs/exchange.md, 'CN → VN'); fix the field named by the path")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HS_CN = re.compile(r"[0-9]{10}")
_DIGITS_18 = re.compile(r"[0-9]{18}")
_CONTAINER = re.compile(r"[A-Z]{3}[UJZ][0-9]{7}")
_MST = re.compile(r"[0-9]{10}(?:[0-9]{3})?")
_PLATE = re.compile(r"[\w·.\- ]{2,16}")


class _Check:
    """Collects data-rule reasons over a decoded record, bounded by ``max_errors``."""

    def __init__(self, limits: AvroIntakeLimits, now: datetime) -> None:
        self.limits = limits
        self.now = now
        self.reasons: list[Reason] = []

    def add(self, code: str, message: str, path: str) -> None:
        if len(self.reasons) < self.limits.max_errors:
            self.reasons.append(Reason(code, message, xpath=path))
        elif len(self.reasons) == self.limits.max_errors:
            self.reasons.append(Reason(TOO_MANY_ERRORS, f"more than {self.limits.max_errors} error(s): the rest of "
                                       "the record was not checked"))

    def text(self, value: Any, path: str, *, pattern: re.Pattern[str] | None = None, what: str = "") -> bool:
        if not isinstance(value, str):
            return value is None
        if len(value) > self.limits.max_string_chars:  # CNA-5
            self.add("AVRO_STRING_TOO_LONG", f"{len(value)} characters, the limit is {self.limits.max_string_chars}",
                     path)
            return False
        if _CONTROL.search(value):
            self.add("AVRO_TEXT_INVALID", "text holds a control character", path)
            return False
        if pattern is not None and not pattern.fullmatch(value):
            self.add("AVRO_FORMAT_INVALID", f"{value[:40]!r} is not {what}", path)
            return False
        return True

    def count(self, items: Any, limit: int, path: str) -> list[Any]:
        seq = list(items or [])
        if len(seq) > limit:  # CNA-4
            self.add("AVRO_TOO_MANY_ITEMS", f"{len(seq)} items, the limit is {limit}", path)
            return seq[:limit]
        return seq

    def decimal(self, value: Any, path: str, precision: int, *, positive: bool = False) -> Decimal | None:
        if value is None:
            return None
        if not isinstance(value, Decimal) or not value.is_finite():
            self.add("AVRO_NUMBER_RANGE", "not a finite decimal", path)
            return None
        digits = len(value.as_tuple().digits)
        exponent = value.as_tuple().exponent
        integer_digits = digits + exponent if isinstance(exponent, int) else digits
        # CNA-6: fastavro reads a decimal of any length; the schema's precision is the bound
        if digits > precision or integer_digits > precision:
            self.add("AVRO_NUMBER_RANGE", f"{digits} digits, the schema allows {precision}", path)
            return None
        if value < 0 or (positive and value == 0):
            self.add("AVRO_NUMBER_RANGE", f"{value} must be {'greater than' if positive else 'at least'} 0", path)
            return None
        return value

    def integer(self, value: Any, path: str, low: int, high: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:  # CNA-6
            self.add("AVRO_NUMBER_RANGE", f"{value!r} is outside {low}..{high}", path)
            return None
        return value

    def time(self, value: Any, path: str) -> None:
        if not isinstance(value, datetime):
            self.add("AVRO_DATE_RANGE", f"{value!r} is not a time", path)
            return
        latest = self.now + self.limits.max_future
        if not self.limits.earliest <= value <= latest:  # CNA-7
            self.add("AVRO_DATE_RANGE", f"{value.isoformat()} is outside {self.limits.earliest.date()} .. "
                     f"{latest.date()}", path)

    def code(self, value: Any, path: str, known: Callable[[str], bool], what: str) -> None:
        if self.text(value, path) and isinstance(value, str) and not known(value):
            self.add("CODE_UNKNOWN", f"{value[:20]!r} is not a known {what}", path)

    def container(self, value: Any, path: str) -> None:
        from xborder_gateway.mapping import container_check_digit

        if self.text(value, path, pattern=_CONTAINER, what="an ISO 6346 container number") and \
                container_check_digit(value[:10]) != int(value[10]):
            self.add("CONTAINER_CHECK_DIGIT", f"container {value} has a wrong ISO 6346 check digit", path)


def _known(list_name: str) -> Callable[[str], bool]:
    from xborder_gateway.mapping import codelist

    rows = codelist(list_name).rows
    return lambda v: v in rows


def _units() -> Callable[[str], bool]:
    from xborder_gateway.mapping import codelist

    rec20 = set(codelist("units_rec20").column("rec20").values())
    return lambda v: v in rec20


def _party(c: _Check, party: Mapping[str, Any], path: str, *, vn_tax_code: bool) -> None:
    from xborder_gateway.mapping import tax_code_check_digit

    c.text(party.get("name"), f"{path}/name")
    c.text(party.get("address"), f"{path}/address")
    c.code(party.get("country"), f"{path}/country", _known("countries"), "ISO 3166 country")
    ident = party.get("identifier")
    if not vn_tax_code:
        c.text(ident, f"{path}/identifier")
        return
    # the consignee is matched by this tax code (mirror checks), so it must be a real MST
    if not c.text(ident, f"{path}/identifier", pattern=_MST, what="a Vietnamese tax code (10 or 13 digits)"):
        return
    if ident is None:
        c.add("TAX_CODE_INVALID", "the Vietnamese consignee's tax code (MST) is missing", f"{path}/identifier")
    elif tax_code_check_digit(ident[:9]) != int(ident[9]):
        c.add("TAX_CODE_CHECK_DIGIT", f"tax code {ident} has a wrong check digit", f"{path}/identifier")


def _transport(c: _Check, rec: Mapping[str, Any]) -> list[str]:
    c.text(rec.get("vehicle_plate"), "/vehicle_plate", pattern=_PLATE, what="a vehicle registration plate")
    c.text(rec.get("trailer_plate"), "/trailer_plate", pattern=_PLATE, what="a vehicle registration plate")
    c.text(rec.get("customs_office"), "/customs_office", pattern=re.compile(r"[0-9]{4}"), what="a GACC office code")
    c.text(rec.get("port_of_exit"), "/port_of_exit", pattern=re.compile(r"CN[A-Z2-9]{3}"),
           what="a UN/LOCODE in China")
    containers = c.count(rec.get("containers"), c.limits.max_items, "/containers")
    for i, number in enumerate(containers, 1):
        c.container(number, f"/containers[{i}]")
    return [n for n in containers if isinstance(n, str)]


def _export(c: _Check, rec: Mapping[str, Any]) -> bool:
    c.text(rec.get("declaration_number"), "/declaration_number", pattern=_DIGITS_18, what="an 18-digit number")
    c.integer(rec.get("declaration_version"), "/declaration_version", 1, c.limits.max_version)
    c.time(rec.get("declared_at"), "/declared_at")
    c.text(rec.get("trade_mode"), "/trade_mode", pattern=re.compile(r"[0-9]{4}"), what="a 4-digit trade mode")
    _party(c, rec.get("consignor") or {}, "/consignor", vn_tax_code=False)
    _party(c, rec.get("consignee") or {}, "/consignee", vn_tax_code=True)
    c.code(rec.get("incoterm"), "/incoterm", INCOTERMS_2020.__contains__, "Incoterms 2020 code")
    c.code(rec.get("currency"), "/currency", _known("currencies"), "ISO 4217 currency")
    c.decimal(rec.get("gross_weight_kg"), "/gross_weight_kg", 15, positive=True)
    c.text(rec.get("remarks"), "/remarks")
    total = c.decimal(rec.get("total_value"), "/total_value", 24)
    lines = c.count(rec.get("goods"), c.limits.max_goods_lines, "/goods")
    if not lines:
        c.add("AVRO_TOO_FEW_ITEMS", "an export declaration has at least one goods line", "/goods")
    units, countries = _units(), _known("countries")
    line_sum, perishable = Decimal(0), False
    for i, line in enumerate(lines, 1):
        p = f"/goods[{i}]"
        if line.get("line_number") != i:
            c.add("AVRO_LINE_NUMBER", f"line {i} is numbered {line.get('line_number')!r}", f"{p}/line_number")
        hs_cn, hs6 = line.get("hs_cn"), line.get("hs6")
        if c.text(hs_cn, f"{p}/hs_cn", pattern=_HS_CN, what="a 10-digit CN commodity code") and \
                isinstance(hs6, str) and hs6 != hs_cn[:6]:
            c.add("HS_CODE_INVALID", f"hs6 {hs6[:10]!r} is not the first six digits of hs_cn {hs_cn}", f"{p}/hs6")
        perishable = perishable or (isinstance(hs6, str) and hs6[:2] in ("07", "08"))
        c.text(line.get("description"), f"{p}/description")
        c.decimal(line.get("quantity"), f"{p}/quantity", 18, positive=True)
        c.code(line.get("unit"), f"{p}/unit", units, "UN/ECE Rec 20 unit")
        c.decimal(line.get("net_weight_kg"), f"{p}/net_weight_kg", 15)
        c.decimal(line.get("gross_weight_kg"), f"{p}/gross_weight_kg", 15)
        c.code(line.get("origin_country"), f"{p}/origin_country", countries, "ISO 3166 country")
        value = c.decimal(line.get("value"), f"{p}/value", 24)
        line_sum += value or 0
    if total is not None and lines and total != line_sum and not c.reasons:
        c.add("VALUE_TOTAL_MISMATCH", f"total_value {total} is not the sum of the lines ({line_sum})",
              "/total_value")
    return perishable


def _manifest(c: _Check, rec: Mapping[str, Any]) -> tuple[str, ...]:
    c.text(rec.get("manifest_number"), "/manifest_number", pattern=re.compile(r"[0-9A-Z]{8,20}"),
           what="a manifest number (8-20 digits or capitals)")
    c.integer(rec.get("manifest_version"), "/manifest_version", 1, c.limits.max_version)
    c.time(rec.get("departure_at"), "/departure_at")
    c.code(rec.get("vehicle_country"), "/vehicle_country", {"CN", "VN"}.__contains__, "country of the truck (CN, VN)")
    drivers = c.count(rec.get("drivers"), c.limits.max_drivers, "/drivers")
    for i, d in enumerate(drivers, 1):
        c.text(d.get("name"), f"/drivers[{i}]/name")
        c.text(d.get("document_number"), f"/drivers[{i}]/document_number")
    for i, seal in enumerate(c.count(rec.get("seals"), c.limits.max_items, "/seals"), 1):
        c.text(seal, f"/seals[{i}]")
    linked = c.count(rec.get("declarations"), c.limits.max_items, "/declarations")
    for i, number in enumerate(linked, 1):
        c.text(number, f"/declarations[{i}]", pattern=_DIGITS_18, what="an 18-digit declaration number")
    c.decimal(rec.get("gross_weight_kg"), "/gross_weight_kg", 15, positive=True)
    return tuple(n for n in linked if isinstance(n, str))


def take_cn_avro(frame: bytes, *, source: str = "<bytes>", limits: AvroIntakeLimits = DEFAULT_AVRO_LIMITS,
                 now: datetime | None = None) -> TakenAvro:
    """Check one framed Avro record from China's side; return it with what the connector needs, or raise
    :class:`DocumentRejectedError` (an IntakeError: the sender's fault) with every reason found.

    ``now`` is the reference time of the date rules (CNA-7); inject it in tests.
    """
    data = bytes(frame)
    if len(data) > limits.max_bytes:  # CNA-1: before anything decodes it
        raise _reject("AVRO_TOO_LARGE", f"frame is {len(data)} bytes, the limit is {limits.max_bytes}", source)
    try:
        decoded = avro.decode(data)  # CNA-2
    except avro.AvroFrameError as exc:
        raise _reject(exc.code, exc.message, source) from exc
    except (OverflowError, ValueError) as exc:  # e.g. a timestamp-millis beyond year 9999
        raise _reject("AVRO_BODY_INVALID", f"the body does not decode: {exc}", source) from exc
    if decoded.schema_name not in CN_INTAKE_SCHEMAS:  # CNA-3
        raise _reject("AVRO_SCHEMA_NOT_ACCEPTED", f"{decoded.schema_name} v{decoded.version} is not a schema the "
                      f"CN intake takes ({', '.join(CN_INTAKE_SCHEMAS)})", source)
    rec = decoded.record
    check = _Check(limits, now or datetime.now(UTC))
    containers = _transport(check, rec)
    linked: tuple[str, ...] = ()
    if decoded.schema_name == "CnExportDeclaration":
        perishable = _export(check, rec)
        key, version = rec.get("declaration_number"), rec.get("declaration_version")
    else:
        linked = _manifest(check, rec)
        perishable = bool(rec.get("perishable"))
        key, version = rec.get("manifest_number"), rec.get("manifest_version")
    if check.reasons:
        raise DocumentRejectedError(check.reasons, source=source)
    return TakenAvro(schema_name=decoded.schema_name, version=decoded.version, fingerprint=decoded.fingerprint,
                     business_key=str(key), document_version=int(version or 0), payload=data,
                     raw_sha256=hashlib.sha256(data).digest(), record=rec, vehicle_plate=str(rec["vehicle_plate"]),
                     containers=tuple(containers), perishable=perishable, linked_declarations=linked)
