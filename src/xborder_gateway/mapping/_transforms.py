"""The transforms a mapping may name. Each declares its input and output kind so that mappings are
type-checked when loaded; data rules (check digits, calendar dates, currency minor units) raise
:class:`DataRuleViolation`, which the engine turns into an IntakeError located at the source element."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree

from xborder_gateway.mapping._codelists import codelist
from xborder_gateway.mapping._paths import Getter, compile_path

__all__ = [
    "TRANSFORMS",
    "CompiledTransform",
    "DataRuleViolation",
    "EvalContext",
    "compile_transform",
    "container_check_digit",
    "hs_nomenclature",
    "tax_code_check_digit",
]

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


class DataRuleViolation(Exception):  # noqa: N818 - internal signal, converted to DocumentRejectedError
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class EvalContext:
    """Where a transform runs: the current context element and the document root (reused, mutable), the
    context element's child index (first child per tag) and the document's cache of absolute paths
    (see :meth:`Getter.text_in`)."""

    __slots__ = ("cache", "element", "index", "root")

    def __init__(self, element: etree._Element, root: etree._Element,
                 index: Mapping[Any, etree._Element] | None = None) -> None:
        self.element = element
        self.root = root
        self.index: Mapping[Any, etree._Element] | None = index
        """The index of ``element`` or None (not indexed: paths are then walked); the engine sets both
        together."""
        self.cache: dict[Getter, str | None] = {}


Fn = Callable[[Any, EvalContext], Any]


@dataclass(frozen=True)
class CompiledTransform:
    name: str
    out_kind: str
    may_be_null: bool
    fn: Fn
    codelist_values: frozenset[str] | None = None
    """For a code-list lookup: every value it can produce (checked against enum targets at load time)."""


@dataclass(frozen=True)
class _Spec:
    in_kind: str
    out_kind: str
    params: frozenset[str]
    required: frozenset[str]
    factory: Callable[[Mapping[str, Any], Mapping[str, str]], tuple[Fn, bool, frozenset[str] | None]]


# ---- check digits ---------------------------------------------------------------------------------
_TAX_WEIGHTS = (31, 29, 23, 19, 17, 13, 7, 5, 3)


def tax_code_check_digit(first_nine: str) -> int | None:
    """Check digit of a Vietnamese tax code (MST): 10 - (sum(d_i * w_i) mod 11); None if that is 10."""
    total = sum(int(d) * w for d, w in zip(first_nine, _TAX_WEIGHTS, strict=True))
    check = 10 - total % 11
    return None if check == 10 else check


_ISO6346_VALUES: dict[str, int] = {}
_v = 10
for _c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    if _v % 11 == 0:
        _v += 1
    _ISO6346_VALUES[_c] = _v
    _v += 1
_ISO6346_VALUES.update({str(d): d for d in range(10)})


def container_check_digit(first_ten: str) -> int:
    """ISO 6346 check digit of the owner code, category and serial number (10 characters)."""
    total = sum(_ISO6346_VALUES[c] * (1 << i) for i, c in enumerate(first_ten))
    return total % 11 % 10


# ---- factories ------------------------------------------------------------------------------------
def _strip(args: Mapping[str, Any], ns: Mapping[str, str]) -> tuple[Fn, bool, None]:
    return (lambda v, _c: v.strip()), False, None


def _token(args: Mapping[str, Any], ns: Mapping[str, str]) -> tuple[Fn, bool, None]:
    return (lambda v, _c: " ".join(v.split())), False, None


def _to_decimal(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise DataRuleViolation("DECIMAL_INVALID", f"{text!r} is not a decimal number") from exc
    if not value.is_finite():
        raise DataRuleViolation("DECIMAL_INVALID", f"{text!r} is not a finite decimal number")
    return value


def _decimal(args: Mapping[str, Any], ns: Mapping[str, str]) -> tuple[Fn, bool, None]:
    return (lambda v, _c: _to_decimal(v)), False, None


def _int(args: Mapping[str, Any], ns: Mapping[str, str]) -> tuple[Fn, bool, None]:
    def fn(v: str, _c: EvalContext) -> int:
        try:
            return int(v.strip())
        except ValueError as exc:
            raise DataRuleViolation("INTEGER_INVALID", f"{v!r} is not an integer") from exc
    return fn, False, None


def _parse_date8(text: str) -> dt.date:
    text = text.strip()
    try:
        return dt.date(int(text[4:8]), int(text[2:4]), int(text[0:2]))
    except ValueError as exc:
        raise DataRuleViolation("DATE_INVALID", f"{text!r} is not a calendar date (DDMMYYYY)") from exc


def _date_vn(args: Mapping[str, Any], ns: Mapping[str, str]) -> tuple[Fn, bool, None]:
    def fn(v: str, _c: EvalContext) -> dt.datetime:
        # local midnight in Viet Nam (UTC+7, no DST) expressed in UTC
        day = _parse_date8(v)
        return dt.datetime(day.year, day.month, day.day, tzinfo=VN_TZ).astimezone(dt.UTC)
    return fn, False, None


def _datetime_vn(args: Mapping[str, Any], ns: Mapping[str, str]) -> tuple[Fn, bool, None]:
    time_path = compile_path(args["time"], ns)

    def fn(v: str, c: EvalContext) -> dt.datetime:
        day = _parse_date8(v)
        hhmm = (time_path.text_in(c.element, c.root, c.index, c.cache) or "0000").strip()
        try:
            local = dt.datetime(day.year, day.month, day.day, int(hhmm[:2]), int(hhmm[2:4]), tzinfo=VN_TZ)
        except ValueError as exc:
            raise DataRuleViolation("TIME_INVALID", f"{hhmm!r} is not a time of day (HHMM)") from exc
        return local.astimezone(dt.UTC)
    return fn, False, None


def _flag(args: Mapping[str, Any], ns: Mapping[str, str]) -> tuple[Fn, bool, None]:
    return (lambda v, _c: v.strip() == "1"), False, None


def _bool(args: Mapping[str, Any], ns: Mapping[str, str]) -> tuple[Fn, bool, None]:
    def fn(v: str, _c: EvalContext) -> bool:
        text = v.strip().lower()
        if text not in ("true", "false"):
            raise DataRuleViolation("BOOLEAN_INVALID", f"{v!r} is not true/false")
        return text == "true"
    return fn, False, None


def _equals(args: Mapping[str, Any], ns: Mapping[str, str]) -> tuple[Fn, bool, None]:
    expected = str(args["value"])
    return (lambda v, _c: v.strip() == expected), False, None


# Row of the HS 2022 list that is a statistical code of the source, not a WCO subheading (NOTICE.hs2022).
_NOT_A_SUBHEADING = frozenset({"999999"})


@cache
def hs_nomenclature(name: str = "hs2022_subheadings") -> frozenset[str]:
    """The six-digit subheadings of an HS nomenclature code list (``mappings/codelists/NAME.csv``),
    without the source's statistical code 999999."""
    return frozenset(codelist(name).rows) - _NOT_A_SUBHEADING


def _hs6(args: Mapping[str, Any], ns: Mapping[str, str]) -> tuple[Fn, bool, None]:
    name = args.get("nomenclature")
    if name is None:
        return (lambda v, _c: v.strip()[:6]), False, None
    subheadings = hs_nomenclature(str(name))

    def fn(v: str, _c: EvalContext) -> str:
        code = v.strip()
        hs6 = code[:6]
        # HS-1: a national code must extend a subheading of the shared nomenclature (issue 15 item 2);
        # refused at intake, before anything is sealed or sent.
        if len(hs6) != 6 or not hs6.isdigit() or hs6 not in subheadings:
            raise DataRuleViolation("HS_SUBHEADING_UNKNOWN",
                                    f"HS code {code}: {hs6} is not a subheading of the {name} nomenclature")
        return hs6
    return fn, False, None


_PERISHABLE_CHAPTERS = ("07", "08")


def _hs_perishable(args: Mapping[str, Any], ns: Mapping[str, str]) -> tuple[Fn, bool, None]:
    chapters = tuple(str(c) for c in args.get("chapters", _PERISHABLE_CHAPTERS))
    return (lambda v, _c: v.strip()[:2] in chapters), False, None


def _codelist(args: Mapping[str, Any], ns: Mapping[str, str]) -> tuple[Fn, bool, frozenset[str]]:
    table = codelist(str(args["name"]))
    column = str(args.get("column", table.key))
    if column not in table.columns:
        raise ValueError(f"code list {table.name!r} has no column {column!r} (columns: {', '.join(table.columns)})")
    lookup = table.column(column)
    missing = str(args.get("missing", "error"))
    if missing not in ("error", "null", "keep"):
        raise ValueError("codelist 'missing' must be error, null or keep")

    def fn(v: str, _c: EvalContext) -> str | None:
        key = v.strip()
        found = lookup.get(key)
        if found is not None:
            return found
        if missing == "null":
            return None
        if missing == "keep":
            return key
        raise DataRuleViolation("CODE_UNKNOWN", f"{key!r} is not in code list {table.name} ({column})")
    return fn, missing == "null", frozenset(lookup.values())


def _vn_tax_code(args: Mapping[str, Any], ns: Mapping[str, str]) -> tuple[Fn, bool, None]:
    def fn(v: str, _c: EvalContext) -> str:
        code = v.strip()
        if len(code) not in (10, 13) or not code.isdigit():
            raise DataRuleViolation("TAX_CODE_INVALID", f"{code!r} is not a 10- or 13-digit tax code")
        # the check digit (10th) of a Vietnamese tax code (MST)
        expected = tax_code_check_digit(code[:9])
        if expected is None or int(code[9]) != expected:
            raise DataRuleViolation("TAX_CODE_CHECK_DIGIT", f"tax code {code} has a wrong check digit")
        return code
    return fn, False, None


def _iso6346(args: Mapping[str, Any], ns: Mapping[str, str]) -> tuple[Fn, bool, None]:
    def fn(v: str, _c: EvalContext) -> str:
        number = v.strip()
        if len(number) != 11 or not number[:4].isalpha() or not number[4:].isdigit():
            raise DataRuleViolation("CONTAINER_NUMBER_INVALID", f"{number!r} is not an ISO 6346 container number")
        if container_check_digit(number[:10]) != int(number[10]):
            raise DataRuleViolation("CONTAINER_CHECK_DIGIT", f"container {number} has a wrong ISO 6346 check digit")
        return number
    return fn, False, None


def _money(args: Mapping[str, Any], ns: Mapping[str, str]) -> tuple[Fn, bool, None]:
    currency_path = compile_path(args["currency"], ns)
    minor = {k: int(v) for k, v in codelist("currencies").column("minor_units").items()}

    def fn(v: str, c: EvalContext) -> Decimal:
        value = _to_decimal(v)
        currency = (currency_path.text_in(c.element, c.root, c.index, c.cache) or "").strip()
        places = minor.get(currency)
        exponent = value.as_tuple().exponent
        if places is not None and isinstance(exponent, int) and -exponent > places and value != value.to_integral():
            raise DataRuleViolation("CURRENCY_MINOR_UNITS",
                                    f"{v.strip()} {currency} has more decimals than {currency} allows ({places})")
        return value
    return fn, False, None


_KG = Decimal("0.001")


def _weight_kg(args: Mapping[str, Any], ns: Mapping[str, str]) -> tuple[Fn, bool, None]:
    unit_path = compile_path(args["unit"], ns)
    factors = {k: Decimal(v) for k, v in codelist("weight_units").column("kg_factor").items()}

    def fn(v: str, c: EvalContext) -> Decimal:
        unit = (unit_path.text_in(c.element, c.root, c.index, c.cache) or "KGM").strip()
        factor = factors.get(unit)
        if factor is None:
            raise DataRuleViolation("CODE_UNKNOWN", f"{unit!r} is not a weight unit (weight_units)")
        return (_to_decimal(v) * factor).quantize(_KG, rounding=ROUND_HALF_EVEN)
    return fn, False, None


TRANSFORMS: dict[str, _Spec] = {
    "strip": _Spec("string", "string", frozenset(), frozenset(), _strip),
    "token": _Spec("string", "string", frozenset(), frozenset(), _token),
    "decimal": _Spec("string", "decimal", frozenset(), frozenset(), _decimal),
    "int": _Spec("string", "int", frozenset(), frozenset(), _int),
    "date_vn": _Spec("string", "timestamp", frozenset(), frozenset(), _date_vn),
    "datetime_vn": _Spec("string", "timestamp", frozenset({"time"}), frozenset({"time"}), _datetime_vn),
    "flag": _Spec("string", "bool", frozenset(), frozenset(), _flag),
    "bool": _Spec("string", "bool", frozenset(), frozenset(), _bool),
    "equals": _Spec("string", "bool", frozenset({"value"}), frozenset({"value"}), _equals),
    "hs6": _Spec("string", "string", frozenset({"nomenclature"}), frozenset(), _hs6),
    "hs_perishable": _Spec("string", "bool", frozenset({"chapters"}), frozenset(), _hs_perishable),
    "codelist": _Spec("string", "string", frozenset({"name", "column", "missing"}), frozenset({"name"}), _codelist),
    "vn_tax_code": _Spec("string", "string", frozenset(), frozenset(), _vn_tax_code),
    "iso6346": _Spec("string", "string", frozenset(), frozenset(), _iso6346),
    "money": _Spec("string", "decimal", frozenset({"currency"}), frozenset({"currency"}), _money),
    "weight_kg": _Spec("string", "decimal", frozenset({"unit"}), frozenset({"unit"}), _weight_kg),
}


def compile_transform(spec: Any, ns: Mapping[str, str], in_kind: str) -> CompiledTransform:
    """``spec`` is a name, or ``{name: {params}}``, or ``{codelist: NAME, column: C, missing: M}``."""
    if isinstance(spec, str):
        name, args = spec, {}
    elif isinstance(spec, Mapping) and "codelist" in spec:
        name = "codelist"
        args = {"name": spec["codelist"], **{k: v for k, v in spec.items() if k != "codelist"}}
    elif isinstance(spec, Mapping) and len(spec) == 1:
        name, raw_args = next(iter(spec.items()))
        args = dict(raw_args) if isinstance(raw_args, Mapping) else {"value": raw_args}
    else:
        raise ValueError(f"a transform is a name or a one-key mapping, got {spec!r}")
    known = TRANSFORMS.get(name)
    if known is None:
        raise ValueError(f"unknown transform {name!r} (known: {', '.join(sorted(TRANSFORMS))})")
    if in_kind != known.in_kind:
        raise ValueError(f"transform {name!r} takes {known.in_kind}, but receives {in_kind}")
    unknown = set(args) - known.params
    if unknown:
        raise ValueError(f"transform {name!r} has no parameter(s) {', '.join(sorted(unknown))}")
    missing = known.required - set(args)
    if missing:
        raise ValueError(f"transform {name!r} needs parameter(s) {', '.join(sorted(missing))}")
    fn, may_be_null, values = known.factory(args, ns)
    return CompiledTransform(name=name, out_kind=known.out_kind, may_be_null=may_be_null, fn=fn,
                             codelist_values=values)

