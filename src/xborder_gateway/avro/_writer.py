"""A binary Avro writer generated per schema when the schema is loaded: the same bytes as fastavro's
``schemaless_writer`` for the records the gateway writes, without its generic per-value dispatch.

Why: fastavro chooses a union's branch by validating the value against each branch (for a nullable record
that validates the whole nested record before writing it again) and looks each field's type up while it
writes. The agreed schemas are records of nullable unions, decimals and timestamps, so ``encode`` spent
most of its time there (issue 13 item 4). Here each record type becomes one straight-line Python function,
written once per schema, that knows every field's type and union branch.

Contract: the generated writer is a *fast path*, never a second opinion. It writes a value only when the
value is exactly of the type it expects (``type(v) is str``, a finite ``Decimal`` at most the schema's
scale, an aware ``datetime`` …), and then the bytes are fastavro's (proven on the golden set and by a
hypothesis property over random records of every agreed schema, tests/documents/test_avro_writer.py).
On anything else — a missing field, an extra field, a wrong type, a number out of range, a naive datetime —
it raises, and :func:`xborder_gateway.avro.encode` hands the record to fastavro, whose result (bytes or
``AVRO_RECORD_INVALID``) is then the answer. A schema with a feature not handled here (maps, ``float``,
unions other than ``[null, T]``, logical types other than ``decimal`` on ``bytes`` and
``timestamp-millis``) gets no writer at all: fastavro writes every record of it.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

__all__ = ["FastWriter", "compile_writer", "long_bytes"]

FastWriter = Callable[[Mapping[str, Any]], bytes]


class _Unsupported(Exception):  # noqa: N818 - internal signal: this schema is left to fastavro
    pass


_LEN = [bytes([n << 1]) for n in range(64)]
"""zig-zag varint of a length 0..63 (one byte)."""

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DOUBLE = struct.Struct("<d").pack


def long_bytes(n: int) -> bytes:
    """Avro ``long``: zig-zag, then base-128 varint, least significant group first."""
    z = (n << 1) ^ (n >> 63)
    if z < 0x80:
        return bytes((z,))
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _decimal_bytes(v: Decimal, precision: int, scale: int) -> bytes:
    """fastavro's ``prepare_bytes_decimal``, for a finite Decimal that fits (raises otherwise), with the
    length prefix. The two's-complement size is computed from the magnitude, as fastavro does.

    The digits and the exponent are read from ``str(v)`` (exact and context-free; without an exponent
    part it is ``[-]DIGITS[.DIGITS]``), which costs a fraction of ``as_tuple``; a string with an exponent
    part (``1E+2``, ``1E-7``) takes ``as_tuple``. NaN and infinities fail ``int()``."""
    text = str(v)
    if "E" in text:
        sign, digits, exp = v.as_tuple()
        if type(exp) is not int:
            raise ValueError("not a finite decimal")
        negative = bool(sign)
        coefficient = int("".join(map(str, digits)))
    else:
        negative = text[0] == "-"
        if negative:
            text = text[1:]
        dot = text.find(".")
        if dot < 0:
            exp, coefficient = 0, int(text)
        else:
            exp, coefficient = dot + 1 - len(text), int(text[:dot] + text[dot + 1:])
    if coefficient >= 10**precision:  # fastavro: more digits than the precision
        raise ValueError("more digits than the schema's precision")
    delta = exp + scale
    if delta < 0:
        raise ValueError("more decimals than the schema's scale")
    unscaled = coefficient * 10**delta if delta else coefficient
    size = (unscaled.bit_length() + 8) // 8
    body = (-unscaled if negative else unscaled).to_bytes(size, byteorder="big", signed=True)
    return _LEN[size] + body if size < 64 else long_bytes(size) + body


def _timestamp_millis(v: Any) -> int:
    """fastavro's ``prepare_timestamp_millis`` for an aware datetime or an int (raises otherwise)."""
    if type(v) is int:
        return v
    if type(v) is not dt.datetime or v.tzinfo is None:
        raise TypeError("not an aware datetime or an int")
    delta = v - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + int(delta.microseconds / 1000)


class _Gen:
    """Writes the Python source of one function per named record type."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        self.named = named
        self.env: dict[str, Any] = {"_LEN": _LEN, "_long": long_bytes, "_dec": _decimal_bytes,
                                    "_ts": _timestamp_millis, "_dbl": _DOUBLE, "_Decimal": Decimal}
        self.functions: dict[str, str] = {}  # record full name -> function name
        self.sources: list[str] = []
        self._n = 0

    def const(self, value: Any) -> str:
        """An expression for ``value``: a literal where Python has one (bytes, str, numbers, None, bools:
        LOAD_CONST, no name lookup), else a name bound in the generated module."""
        if value is None or type(value) in (bytes, str, int, bool):
            return repr(value)
        self._n += 1
        name = f"_c{self._n}"
        self.env[name] = value
        return name

    def record_function(self, schema: Mapping[str, Any]) -> str:
        full = str(schema["name"])
        if full in self.functions:
            return self.functions[full]
        fname = f"_w{len(self.functions)}"
        self.functions[full] = fname  # before the body: a recursive record calls itself
        fields = schema["fields"]
        lines = [f"def {fname}(r, o, {_LOCALS}):",
                 "    if type(r) is not dict or not r.keys() <= " + self.const(frozenset(f["name"] for f in fields))
                 + ": raise TypeError",]
        for f in fields:
            name = f["name"]
            if "default" in f:  # a missing field is written as its default, as fastavro does
                lines.extend([f"    try: v = r[{name!r}]", f"    except KeyError: v = {self.const(f['default'])}"])
            else:
                lines.append(f"    v = r[{name!r}]")
            lines.extend(self.value(f["type"], "v", 1, 0))
        self.sources.append("\n".join(lines))
        return fname

    def value(self, schema: Any, var: str, indent: int, depth: int) -> list[str]:  # noqa: PLR0911, PLR0912
        """Statements writing ``var`` (of ``schema``) to ``o``; they raise on a value they do not take."""
        pad = "    " * indent
        if isinstance(schema, str):
            if schema in self.named:
                return self.value(self.named[schema], var, indent, depth)
            return self.primitive(schema, var, pad)
        if isinstance(schema, list):
            if len(schema) != 2 or schema.count("null") != 1:
                raise _Unsupported(f"union {schema}")
            null_at = schema.index("null")
            other = schema[1 - null_at]
            lines = [f"{pad}if {var} is None: o += {self.const(long_bytes(null_at))}",
                     f"{pad}else:",
                     f"{pad}    o += {self.const(long_bytes(1 - null_at))}"]
            return lines + self.value(other, var, indent + 1, depth)
        if not isinstance(schema, Mapping):
            raise _Unsupported(repr(schema))
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if kind == "record":
            return [f"{pad}{self.record_function(schema)}({var}, o)"]
        if kind == "bytes" and logical == "decimal":
            precision, scale = int(schema["precision"]), int(schema.get("scale", 0))
            return [f"{pad}if type({var}) is not _Decimal: raise TypeError",
                    f"{pad}o += _dec({var}, {precision}, {scale})"]
        if kind == "long" and logical == "timestamp-millis":
            t = f"t{depth}"
            return [f"{pad}{t} = _ts({var})",
                    f"{pad}if not {_LONG_MIN} <= {t} <= {_LONG_MAX}: raise OverflowError",
                    f"{pad}o += _long({t})"]
        if logical is not None:
            raise _Unsupported(f"logical type {logical}")
        if kind == "enum":
            index = {s: long_bytes(i) for i, s in enumerate(schema["symbols"])}
            return [f"{pad}if type({var}) is not str: raise TypeError",
                    f"{pad}o += {self.const(index)}[{var}]"]
        if kind == "fixed":
            size = int(schema["size"])
            return [f"{pad}if type({var}) is not bytes or len({var}) != {size}: raise TypeError",
                    f"{pad}o += {var}"]
        if kind == "array":
            item = f"i{depth}"
            return [f"{pad}if type({var}) is not list: raise TypeError",
                    f"{pad}if {var}:",
                    f"{pad}    o += _long(len({var}))",
                    f"{pad}    for {item} in {var}:",
                    *self.value(schema["items"], item, indent + 2, depth + 1),
                    f"{pad}o += b'\\x00'"]
        if isinstance(kind, str) and logical is None and kind in _PRIMITIVES:
            return self.primitive(kind, var, pad)
        raise _Unsupported(f"type {kind}")

    def primitive(self, kind: str, var: str, pad: str) -> list[str]:
        if kind == "string":
            return [f"{pad}if type({var}) is not str: raise TypeError",
                    f"{pad}b = {var}.encode()",
                    f"{pad}n = len(b)",
                    f"{pad}o += _LEN[n] if n < 64 else _long(n)",
                    f"{pad}o += b"]
        if kind == "bytes":
            return [f"{pad}if type({var}) is not bytes: raise TypeError",
                    f"{pad}n = len({var})",
                    f"{pad}o += _LEN[n] if n < 64 else _long(n)",
                    f"{pad}o += {var}"]
        if kind in ("int", "long"):
            low, high = (_INT_MIN, _INT_MAX) if kind == "int" else (_LONG_MIN, _LONG_MAX)
            return [f"{pad}if type({var}) is not int or not {low} <= {var} <= {high}: raise TypeError",
                    f"{pad}o += _long({var})"]
        if kind == "boolean":
            return [f"{pad}if {var} is True: o += b'\\x01'",
                    f"{pad}elif {var} is False: o += b'\\x00'",
                    f"{pad}else: raise TypeError"]
        if kind == "null":
            return [f"{pad}if {var} is not None: raise TypeError"]
        if kind == "double":
            return [f"{pad}if type({var}) is not float: raise TypeError",
                    f"{pad}o += _dbl({var})"]
        raise _Unsupported(f"type {kind}")


_PRIMITIVES = frozenset({"string", "bytes", "int", "long", "boolean", "null", "double"})
_LOCALS = ", ".join(f"{n}={n}" for n in ("type", "str", "int", "bytes", "list", "dict", "len", "TypeError",
                                          "OverflowError", "KeyError", "_LEN", "_long", "_dec", "_ts", "_dbl",
                                          "_Decimal"))
"""Names every generated function binds as default arguments: local (fast) lookups instead of global and
builtin ones. The functions are called with two arguments only."""


def compile_writer(parsed: Mapping[str, Any]) -> FastWriter | None:
    """The generated writer of a schema parsed by fastavro (``SchemaInfo.parsed``), or None when the
    schema uses a feature this writer leaves to fastavro. The writer returns the Avro body of a record
    or raises (any exception) when the record is not one it writes exactly as fastavro would."""
    if not isinstance(parsed, Mapping) or parsed.get("type") != "record":
        return None
    named = parsed.get("__named_schemas") or {}
    gen = _Gen(named)
    try:
        root = gen.record_function(parsed)
    except _Unsupported:
        return None
    source = "\n\n".join(gen.sources) + (f"\n\n\ndef _write(r):\n    o = bytearray()\n    {root}(r, o)\n"
                                         "    return bytes(o)\n")
    exec(compile(source, f"<avro writer {parsed['name']}>", "exec"), gen.env)  # noqa: S102 - our own code
    writer: FastWriter = gen.env["_write"]
    return writer
