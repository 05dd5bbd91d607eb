"""The canonical model and the Avro schemas agree field by field (one source of truth: the schema files).

For every model class and the newest version of its schema: the same fields in the same order; the
same type (string, int/long, boolean, decimal with precision and scale, timestamp, enum symbols,
fixed size, arrays, nested records); the same nullability; the same defaults."""

from __future__ import annotations

import datetime as dt
import types
import typing
from decimal import Decimal
from typing import Any

import annotated_types
import pytest
from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo

from xborder_gateway import avro
from xborder_gateway.mapping._target import TargetType, target_of
from xborder_gateway.model import model_for

SCHEMAS = sorted({i.name for i in avro.known_schemas()})


def _describe_model_field(annotation: Any, metadata: list[Any]) -> dict[str, Any]:
    nullable = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        assert len(args) == 1, annotation
        annotation = args[0]
        origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        metadata = [*metadata, *extra]
        annotation = base
        origin = typing.get_origin(annotation)
    desc: dict[str, Any] = {"nullable": nullable}
    constraints: dict[str, Any] = {}
    for m in metadata:
        if isinstance(m, FieldInfo):
            for inner in m.metadata:
                constraints.update({k: getattr(inner, k) for k in ("max_digits", "decimal_places", "min_length",
                                                                   "max_length") if hasattr(inner, k)})
        elif isinstance(m, (annotated_types.MinLen, annotated_types.MaxLen)):
            constraints["min_length" if isinstance(m, annotated_types.MinLen) else "max_length"] = (
                m.min_length if isinstance(m, annotated_types.MinLen) else m.max_length)
        else:
            constraints.update({k: getattr(m, k) for k in ("max_digits", "decimal_places") if hasattr(m, k)})
    if origin is list:
        (item,) = typing.get_args(annotation)
        desc.update(kind="array", items=_describe_model_field(item, []))
    elif origin is typing.Literal:
        desc.update(kind="enum", symbols=tuple(typing.get_args(annotation)))
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        desc.update(kind="record", fields=_describe_model(annotation))
    elif annotation is Decimal:
        desc.update(kind="decimal", precision=constraints.get("max_digits"), scale=constraints.get("decimal_places"))
    elif annotation is bytes:
        desc.update(kind="fixed", size=constraints.get("max_length"))
        assert constraints.get("min_length") == constraints.get("max_length")
    elif annotation is AwareDatetime or (isinstance(annotation, type) and issubclass(annotation, dt.datetime)):
        desc.update(kind="timestamp")
    else:
        desc.update(kind={str: "string", int: "int", bool: "boolean", float: "double"}[annotation])
    return desc


def _describe_model(model: type[BaseModel]) -> dict[str, Any]:
    out = {}
    for name, info in model.model_fields.items():
        d = _describe_model_field(info.annotation, list(info.metadata))
        d["required"] = info.is_required()
        if not info.is_required():
            d["default"] = info.get_default(call_default_factory=True)
        out[name] = d
    return out


def _describe_avro(t: TargetType) -> dict[str, Any]:
    desc: dict[str, Any] = {"nullable": t.nullable}
    kind = "int" if t.kind in ("int", "long") else t.kind
    desc["kind"] = kind
    if kind == "array" and t.items is not None:
        desc["items"] = _describe_avro(t.items)
    elif kind == "enum":
        desc["symbols"] = t.symbols
    elif kind == "record":
        desc["fields"] = {n: _describe_avro_field(f) for n, f in t.fields.items()}
    elif kind == "decimal":
        desc.update(precision=t.precision, scale=t.scale)
    elif kind == "fixed":
        desc["size"] = t.precision
    return desc


def _describe_avro_field(t: TargetType) -> dict[str, Any]:
    d = _describe_avro(t)
    d["required"] = not t.has_default
    if t.has_default:
        d["default"] = t.default
    return d


@pytest.mark.parametrize("name", SCHEMAS)
def test_model_agrees_with_the_newest_schema(name: str) -> None:
    model = model_for(name)
    assert model is not None, f"schema {name} has no canonical model"
    avro_side = {n: _describe_avro_field(f) for n, f in target_of(avro.schema_info(name).raw).fields.items()}
    model_side = _describe_model(model)
    assert list(model_side) == list(avro_side)  # same fields, same order
    for field_name, expected in avro_side.items():
        assert model_side[field_name] == expected, field_name


@pytest.mark.parametrize("name", SCHEMAS)
def test_a_model_derived_from_the_schema_agrees_too(name: str) -> None:
    """Schemas without a hand-written class get one derived from the .avsc (adding a type needs no Python)."""
    from xborder_gateway.documents._dynamic import model_from_schema

    derived = _describe_model(model_from_schema(name))
    assert derived == _describe_model(model_for(name))  # type: ignore[arg-type]


def test_the_comparison_can_fail() -> None:
    class Wrong(BaseModel):
        message_id: int

    assert _describe_model(Wrong)["message_id"] != _describe_avro_field(
        target_of(avro.schema_info("Receipt").raw).fields["message_id"])
