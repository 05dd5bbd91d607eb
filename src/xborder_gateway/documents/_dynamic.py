"""A canonical model built from an Avro schema, for schemas without a hand-written class.

Adding a document type must not need Python (issue 3): when ``xborder_gateway.model`` has no class for a
mapping's target schema, ``translate_xml`` validates the record with a pydantic model derived here from the
schema file (same fields, types, nullability, defaults, decimal precision/scale)."""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, create_model

from xborder_gateway import avro
from xborder_gateway.mapping._target import TargetType, target_of
from xborder_gateway.model import CanonicalRecord

__all__ = ["model_from_schema"]


def _python_type(t: TargetType, models: dict[str, type[CanonicalRecord]]) -> Any:
    kind = t.kind
    base: Any
    if kind == "record":
        base = models.get(t.name) or _record_model(t, models)
    elif kind == "array" and t.items is not None:
        base = list[_python_type(t.items, models)]  # type: ignore[misc]
    elif kind == "enum":
        base = Literal[t.symbols]
    elif kind == "decimal":
        base = Annotated[Decimal, Field(max_digits=t.precision, decimal_places=t.scale)]
    elif kind == "fixed":
        base = Annotated[bytes, Field(min_length=t.precision, max_length=t.precision)]
    elif kind == "timestamp":
        base = AwareDatetime
    else:
        base = {"string": str, "int": int, "long": int, "boolean": bool, "bytes": bytes, "double": float,
                "float": float}[kind]
    return base | None if t.nullable else base


def _record_model(t: TargetType, models: dict[str, type[CanonicalRecord]]) -> type[CanonicalRecord]:
    fields: dict[str, Any] = {}
    for name, ft in t.fields.items():
        annotation = _python_type(ft, models)
        fields[name] = (annotation, ft.default) if ft.has_default else (annotation, ...)
    model = create_model(t.name, __base__=CanonicalRecord, **fields)
    models[t.name] = model
    return model


@cache
def model_from_schema(schema_name: str, version: int | None = None) -> type[CanonicalRecord]:
    """The pydantic model of an agreed schema, derived from its ``.avsc`` file."""
    return _record_model(target_of(avro.schema_info(schema_name, version).raw), {})
