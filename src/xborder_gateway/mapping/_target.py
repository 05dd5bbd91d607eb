"""Target types: the Avro schema of a mapping's target, as the engine checks and coerces against it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = ["TargetType", "target_of"]

_QUANTA = {scale: Decimal(1).scaleb(-scale) for scale in range(0, 19)}
_PRIMITIVE = {"string", "long", "int", "boolean", "bytes", "double", "float", "null"}


@dataclass
class TargetType:
    kind: str
    """string, long, int, boolean, decimal, timestamp, enum, fixed, bytes, array, record, double, float."""
    nullable: bool = False
    has_default: bool = False
    default: Any = None
    precision: int = 0
    scale: int = 0
    symbols: tuple[str, ...] = ()
    items: TargetType | None = None
    fields: dict[str, TargetType] = field(default_factory=dict)
    name: str = ""

    @property
    def quantum(self) -> Decimal:
        """``10 ** -scale`` of a decimal type."""
        return _QUANTA.get(self.scale) or Decimal(1).scaleb(-self.scale)

    def describe(self) -> str:
        base = self.kind
        if self.kind == "decimal":
            base = f"decimal({self.precision},{self.scale})"
        elif self.kind == "array" and self.items is not None:
            base = f"array<{self.items.describe()}>"
        elif self.kind in ("record", "enum"):
            base = f"{self.kind} {self.name}"
        return f"{base} or null" if self.nullable else base


def _resolve(schema: Any, named: dict[str, Any]) -> TargetType:
    if isinstance(schema, str):
        if schema in _PRIMITIVE:
            return TargetType(kind=schema)
        ref = named.get(schema) or named.get(schema.rsplit(".", 1)[-1])
        if ref is None:
            raise ValueError(f"unknown named type {schema!r}")
        return _resolve(ref, named)
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        if len(branches) != 1:
            raise ValueError(f"unions other than [null, T] are not supported by the mapping engine: {schema}")
        inner = _resolve(branches[0], named)
        inner.nullable = "null" in schema
        return inner
    if not isinstance(schema, Mapping):
        raise ValueError(f"unsupported schema {schema!r}")
    return _resolve_complex(schema, named)


def _resolve_record(schema: Mapping[str, Any], named: dict[str, Any]) -> TargetType:
    named[schema["name"]] = schema
    fields: dict[str, TargetType] = {}
    for f in schema["fields"]:
        t = _resolve(f["type"], named)
        if "default" in f:
            t.has_default = True
            t.default = f["default"]
        fields[f["name"]] = t
    return TargetType(kind="record", fields=fields, name=schema["name"])


def _resolve_complex(schema: Mapping[str, Any], named: dict[str, Any]) -> TargetType:
    kind = schema["type"]
    logical = schema.get("logicalType")
    result: TargetType
    if kind == "record":
        result = _resolve_record(schema, named)
    elif kind in ("enum", "fixed"):
        named[schema["name"]] = schema
        result = TargetType(kind=kind, symbols=tuple(schema.get("symbols", ())), name=schema["name"],
                            precision=int(schema.get("size", 0)))
    elif kind == "array":
        result = TargetType(kind="array", items=_resolve(schema["items"], named))
    elif kind == "bytes" and logical == "decimal":
        result = TargetType(kind="decimal", precision=int(schema["precision"]), scale=int(schema.get("scale", 0)))
    elif kind == "long" and logical in ("timestamp-millis", "timestamp-micros"):
        result = TargetType(kind="timestamp")
    elif kind in _PRIMITIVE:
        result = TargetType(kind=str(kind))
    else:
        result = _resolve(kind, named)
    return result


def target_of(raw_schema: Mapping[str, Any]) -> TargetType:
    """The record type of an Avro schema (as written in a ``.avsc`` file)."""
    return _resolve(raw_schema, {})
