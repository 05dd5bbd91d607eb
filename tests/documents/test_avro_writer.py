"""The generated Avro writer (avro/_writer.py) against fastavro's generic one: the same bytes for every
record it writes, and fastavro's own answer (bytes or AVRO_RECORD_INVALID) for every record it declines.

``avro.encode`` = the generated writer, falling back to fastavro on any record it does not take;
``encode_with_fastavro`` = the reference. The property runs random records of every agreed schema, well
typed and hostile (numbers past 2^63, years 1 and 9999, naive datetimes, NaN, lone surrogates, wrong
types, missing and extra fields).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xborder_gateway import avro
from xborder_gateway.avro import _codec
from xborder_gateway.avro._writer import compile_writer, long_bytes
from xborder_gateway.documents import translate_xml
from xborder_gateway.samples import generate

SCHEMAS = avro.known_schemas()
_ZONES = [dt.UTC, dt.timezone(dt.timedelta(hours=7)), dt.timezone(dt.timedelta(hours=-11, minutes=-30))]


def _outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args)
    except avro.AvroFrameError as exc:
        return "error", exc.code


def _reference(info: avro.SchemaInfo, record: Any) -> tuple[str, Any]:
    return _outcome(_codec.encode_with_fastavro, info, record)


def _ours(info: avro.SchemaInfo, record: Any) -> tuple[str, Any]:
    return _outcome(avro.encode, info.name, record, info.version)


# ---- strategies: values of a schema, mostly well typed, sometimes hostile -------------------------
_ODD = st.sampled_from([None, 0, -1, 2**63, -(2**63) - 1, 2**31, "", "x", b"", True, 1.5, float("nan"),
                        Decimal("NaN"), Decimal("Infinity"), Decimal("1E+2"), dt.datetime(2026, 1, 1), [], {}])


def _decimal(precision: int, scale: int) -> st.SearchStrategy[Decimal]:
    exact = st.builds(lambda n, s: Decimal(n).scaleb(-s), st.integers(-(10**precision) + 1, 10**precision - 1),
                      st.integers(0, scale))
    padded = st.builds(lambda n: Decimal(f"{n}.{'0' * (scale + 2)}"), st.integers(-999, 999))  # 1.00000
    wide = st.builds(lambda n, e: Decimal(n).scaleb(e), st.integers(-(10**30), 10**30), st.integers(-30, 30))
    fixed = st.sampled_from([Decimal("-128").scaleb(-scale), Decimal("127").scaleb(-scale), Decimal("-0"),
                             Decimal("0E-10"), Decimal("1E+2"), Decimal("-1E-7"), Decimal("0.0000001"),
                             Decimal(10**precision).scaleb(-scale), Decimal(10**precision - 1).scaleb(-scale)])
    return st.one_of(exact, exact, padded, wide, fixed)


def _timestamp() -> st.SearchStrategy[Any]:
    aware = st.builds(lambda d, z: d.replace(tzinfo=z), st.datetimes(min_value=dt.datetime(1, 1, 2),
                                                                     max_value=dt.datetime(9999, 12, 30)),
                      st.sampled_from(_ZONES))
    extremes = st.sampled_from([dt.datetime(1, 1, 1, tzinfo=dt.UTC), dt.datetime(9999, 12, 31, 23, 59, 59, 999999,
                                                                                tzinfo=dt.UTC),
                                dt.datetime(1969, 12, 31, 23, 59, 59, 999500, tzinfo=dt.UTC)])
    millis = st.integers(-(2**63), 2**63 - 1)
    naive = st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 1, 1))
    return st.one_of(aware, aware, extremes, millis, naive)


def _values(schema: Any, named: Mapping[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:  # noqa: PLR0911
    if isinstance(schema, str):
        if schema in named:
            return _values(named[schema], named, depth)
        return _primitive(schema)
    if isinstance(schema, list):
        return st.one_of(*[_values(b, named, depth) for b in schema])
    kind, logical = schema["type"], schema.get("logicalType")
    if kind == "record":
        return _record(schema, named, depth)
    if kind == "bytes" and logical == "decimal":
        return _decimal(int(schema["precision"]), int(schema.get("scale", 0)))
    if kind == "long" and logical == "timestamp-millis":
        return _timestamp()
    if kind == "enum":
        return st.one_of(st.sampled_from(schema["symbols"]), st.sampled_from(schema["symbols"]), st.text(max_size=3))
    if kind == "fixed":
        return st.one_of(st.binary(min_size=schema["size"], max_size=schema["size"]), st.binary(max_size=40))
    if kind == "array":
        items = _values(schema["items"], named, depth + 1)
        return st.one_of(st.lists(items, max_size=2 if depth else 12), st.lists(items, max_size=2).map(tuple))
    return _primitive(kind)


def _primitive(kind: str) -> st.SearchStrategy[Any]:
    return {
        "string": st.one_of(st.text(max_size=80), st.text(max_size=3).map(lambda t: t + "\ud800")),
        "bytes": st.binary(max_size=80),
        "int": st.one_of(st.integers(-(2**31), 2**31 - 1), st.integers()),
        "long": st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers()),
        "boolean": st.booleans(),
        "double": st.one_of(st.floats(), st.integers(-5, 5)),
        "null": st.none(),
    }[kind]


def _record(schema: Mapping[str, Any], named: Mapping[str, Any], depth: int) -> st.SearchStrategy[Any]:
    fields = {f["name"]: st.one_of(_values(f["type"], named, depth), _values(f["type"], named, depth),
                                   _values(f["type"], named, depth), _ODD)
              for f in schema["fields"]}

    def damage(rec: dict[str, Any], drop: list[bool], extra: bool) -> dict[str, Any]:
        out = {k: v for (k, v), d in zip(rec.items(), drop, strict=False) if not d}
        if extra:
            out["not_a_field"] = 1
        return out
    whole = st.fixed_dictionaries(fields)
    damaged = st.builds(damage, whole, st.lists(st.booleans().map(lambda b: b and False) | st.just(True),
                                                min_size=0, max_size=3), st.booleans())
    return st.one_of(whole, whole, whole, damaged)


def _well_typed(schema: Any, named: Mapping[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:  # noqa: PLR0911
    """Only values the schema holds (what the gateway writes): the generated writer must take them all."""
    if isinstance(schema, str):
        return _well_typed(named[schema], named, depth) if schema in named else {
            "string": st.text(max_size=80), "bytes": st.binary(max_size=80), "int": st.integers(-(2**31), 2**31 - 1),
            "long": st.integers(-(2**63), 2**63 - 1), "boolean": st.booleans(), "null": st.none(),
            "double": st.floats(allow_nan=False)}[schema]
    if isinstance(schema, list):
        return st.one_of(*[_well_typed(b, named, depth) for b in schema])
    kind, logical = schema["type"], schema.get("logicalType")
    if kind == "record":
        return st.fixed_dictionaries({f["name"]: _well_typed(f["type"], named, depth) for f in schema["fields"]})
    if kind == "bytes" and logical == "decimal":
        p, s = int(schema["precision"]), int(schema.get("scale", 0))
        return st.builds(lambda n, k: Decimal(n).scaleb(-k), st.integers(-(10**p) + 1, 10**p - 1), st.integers(0, s))
    if kind == "long" and logical == "timestamp-millis":
        return st.builds(lambda d: d.replace(tzinfo=dt.UTC), st.datetimes(min_value=dt.datetime(1, 1, 1),
                                                                            max_value=dt.datetime(9999, 12, 31)))
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "fixed":
        return st.binary(min_size=schema["size"], max_size=schema["size"])
    if kind == "array":
        return st.lists(_well_typed(schema["items"], named, depth + 1), max_size=2 if depth else 12)
    return _well_typed(kind, named, depth)


def _named(info: avro.SchemaInfo) -> dict[str, Any]:
    named: dict[str, Any] = {}

    def walk(s: Any) -> None:
        if isinstance(s, list):
            for b in s:
                walk(b)
        elif isinstance(s, Mapping):
            if s.get("type") in ("record", "enum", "fixed"):
                named[s["name"]] = s
                named[f"{info.raw.get('namespace', '')}.{s['name']}"] = s
            for f in s.get("fields", ()):
                walk(f["type"])
            if "items" in s:
                walk(s["items"])
    walk(info.raw)
    return named


# ---- the property ---------------------------------------------------------------------------------
_ANY = {i.fingerprint: _values(i.raw, _named(i)) for i in SCHEMAS}
_TYPED = {i.fingerprint: _well_typed(i.raw, _named(i)) for i in SCHEMAS}


@pytest.mark.parametrize("info", SCHEMAS, ids=lambda i: f"{i.name}.v{i.version}")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_any_record_gets_exactly_fastavros_answer(info: avro.SchemaInfo, data: st.DataObject) -> None:
    record = data.draw(_ANY[info.fingerprint])
    assert _ours(info, record) == _reference(info, record)


@pytest.mark.parametrize("info", SCHEMAS, ids=lambda i: f"{i.name}.v{i.version}")
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_well_typed_records_take_the_fast_path_with_fastavros_bytes(info: avro.SchemaInfo,
                                                                     data: st.DataObject) -> None:
    record = data.draw(_TYPED[info.fingerprint])
    writer = _codec._writer_of(info)
    assert writer is not None
    expected = _codec.encode_with_fastavro(info, record)
    assert avro.MAGIC + info.fingerprint + writer(record) == expected  # no fallback: the writer itself


@pytest.mark.parametrize("info", SCHEMAS, ids=lambda i: f"{i.name}.v{i.version}")
def test_every_agreed_schema_has_a_generated_writer(info: avro.SchemaInfo) -> None:
    assert compile_writer(info.parsed) is not None


# ---- named cases: where the two could part ----------------------------------------------------------
def _response(**over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {"message_id": "m", "business_key": "100000000001", "document_type": "EDA",
                           "status": "HELD", "reasons": [{"code": "SPS", "text": "thiếu / 缺少"}],
                           "responded_at": dt.datetime(2026, 5, 17, tzinfo=dt.UTC)}
    rec.update(over)
    return rec


def test_the_named_business_response_is_written_by_the_fast_path() -> None:
    info = avro.schema_info("BusinessResponse")
    writer = _codec._writer_of(info)
    assert writer is not None
    record = _response()
    assert avro.MAGIC + info.fingerprint + writer(record) == _codec.encode_with_fastavro(info, record)
    assert _ours(info, {**record, "status": "UNKNOWN"}) == ("error", "AVRO_RECORD_INVALID")


DECLARATION = avro.schema_info("Declaration")


def _declaration_writer() -> Any:
    writer = _codec._writer_of(DECLARATION)
    assert writer is not None
    return writer


@pytest.mark.parametrize(("case", "value"), [
    ("-128 needs two bytes from the magnitude (fastavro's size rule)", Decimal("-128.000")),
    ("127", Decimal("127")),
    ("minus zero", Decimal("-0.000")),
    ("exponent form", Decimal("1E+2")),
    ("small exponent form", Decimal("1E-3")),
    ("more decimals than the scale", Decimal("0.0001")),
    ("trailing zeros past the scale", Decimal("1.00000")),
    ("past the precision", Decimal(10**12)),
    ("NaN", Decimal("NaN")),
    ("infinity", Decimal("-Infinity")),
    ("a float", 1.5),
    ("a string", "1.5"),
])
def test_decimal_edge_cases_match_fastavro(case: str, value: Any) -> None:
    record = dict(translate_xml(next(iter(generate("IDA", 1, 5))).xml).values)
    record["gross_weight"] = value  # decimal(12,3) or null
    assert _ours(DECLARATION, record) == _reference(DECLARATION, record), case


def test_timestamps_at_year_1_and_9999_and_out_of_range_millis() -> None:
    info = avro.schema_info("BusinessResponse")
    base = _response()
    for when in (dt.datetime(1, 1, 1, tzinfo=dt.UTC), dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
                 dt.datetime(2026, 1, 1, 7, tzinfo=dt.timezone(dt.timedelta(hours=7))), 2**63 - 1, 2**63, -(2**63) - 1,
                 dt.datetime(2026, 1, 1), True):
        record = {**base, "responded_at": when}
        assert _ours(info, record) == _reference(info, record), when
    assert _ours(info, {**base, "responded_at": 2**63})[0] == "error"
    assert _ours(info, base)[0] == "ok"


def test_long_strings_and_arrays_take_multi_byte_lengths() -> None:
    writer = _declaration_writer()
    record = dict(translate_xml(next(iter(generate("IDA", 1, 5))).xml).values)
    record["remarks"] = "ữ" * 5000
    record["transport_documents"] = [f"BL{i}" for i in range(300)]
    assert avro.MAGIC + DECLARATION.fingerprint + writer(record) == _codec.encode_with_fastavro(DECLARATION, record)


def test_the_writer_declines_what_it_does_not_write_exactly() -> None:
    """Each of these raises in the writer, so fastavro decides (and here refuses)."""
    writer = _declaration_writer()
    good = dict(translate_xml(next(iter(generate("IDA", 1, 5))).xml).values)
    writer(good)
    for bad in ({**good, "extra": 1}, {k: v for k, v in good.items() if k != "declaration_number"},
                {**good, "package_count": 2**63}, {**good, "declared_on": dt.datetime(2026, 1, 1)},
                {**good, "document_type": None}, {**good, "remarks": "\ud800"}):
        with pytest.raises(Exception):  # noqa: B017, PT011 - any exception: the fast path declines
            writer(bad)
        assert _ours(DECLARATION, bad) == _reference(DECLARATION, bad)


@pytest.mark.parametrize("schema", [
    {"type": "record", "name": "M", "fields": [{"name": "m", "type": {"type": "map", "values": "string"}}]},
    {"type": "record", "name": "F", "fields": [{"name": "f", "type": "float"}]},
    {"type": "record", "name": "U", "fields": [{"name": "u", "type": ["null", "string", "long"]}]},
    {"type": "record", "name": "D", "fields": [{"name": "d", "type": {"type": "int", "logicalType": "date"}}]},
    {"type": "record", "name": "X", "fields": [{"name": "x", "type": {"type": "fixed", "name": "X8", "size": 8,
                                                                       "logicalType": "decimal", "precision": 4}}]},
])
def test_schemas_with_features_it_does_not_handle_get_no_writer(schema: dict[str, Any]) -> None:
    assert compile_writer(fastavro.parse_schema(schema, named_schemas={})) is None


def test_recursive_records_are_written() -> None:

    parsed = fastavro.parse_schema({"type": "record", "name": "Node", "fields": [
        {"name": "v", "type": "long"}, {"name": "next", "type": ["null", "Node"], "default": None}]},
        named_schemas={})
    writer = compile_writer(parsed)
    assert writer is not None
    record = {"v": 1, "next": {"v": -2, "next": {"v": 2**40}}}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, record, strict_allow_default=True)
    assert writer(record) == buf.getvalue()


@pytest.mark.parametrize("n", [0, 1, -1, 63, -64, 64, -65, 2**31, -(2**31), 2**63 - 1, -(2**63)])
def test_long_bytes_is_avros_zigzag_varint(n: int) -> None:

    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, "long", n)
    assert long_bytes(n) == buf.getvalue()


@pytest.mark.parametrize("union", [["null", "string"], ["string", "null"]])
@pytest.mark.parametrize("value", [None, "", "ữ" * 40])
def test_null_may_be_either_branch_of_the_union(union: list[str], value: str | None) -> None:
    parsed = fastavro.parse_schema({"type": "record", "name": "N", "fields": [{"name": "u", "type": union}]},
                                   named_schemas={})
    writer = compile_writer(parsed)
    assert writer is not None
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, {"u": value}, strict_allow_default=True)
    assert writer({"u": value}) == buf.getvalue()
