"""Fixtures of the documents tests."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest


def random_record(schema: Any, rng: random.Random, named: dict[str, Any] | None = None) -> Any:  # noqa: PLR0911
    named = {} if named is None else named
    if isinstance(schema, str):
        if schema in named:
            return random_record(named[schema], rng, named)
        return _primitive(schema, rng)
    if isinstance(schema, list):
        branch = rng.choice(schema)
        return random_record(branch, rng, named)
    kind = schema["type"]
    if kind == "record":
        named[schema["name"]] = schema
        return {f["name"]: random_record(f["type"], rng, named) for f in schema["fields"]}
    if kind == "enum":
        named[schema["name"]] = schema
        return rng.choice(schema["symbols"])
    if kind == "fixed":
        named[schema["name"]] = schema
        return rng.randbytes(schema["size"])
    if kind == "array":
        return [random_record(schema["items"], rng, named) for _ in range(rng.randint(0, 3))]
    if kind == "bytes" and schema.get("logicalType") == "decimal":
        scale, precision = schema.get("scale", 0), schema["precision"]
        digits = rng.randint(1, precision)
        return Decimal(rng.randint(0, 10**digits - 1)).scaleb(-scale)
    if kind == "long" and schema.get("logicalType") == "timestamp-millis":
        return dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=rng.randint(0, 10**10))
    return random_record(kind, rng, named)


def _primitive(kind: str, rng: random.Random) -> Any:
    if kind == "null":
        return None
    if kind == "string":
        return "".join(rng.choice("abcÂăĐđêôơưÁẢẠ0123456789 ") for _ in range(rng.randint(0, 12)))
    if kind in ("int", "long"):
        return rng.randint(-(2**31), 2**31 - 1)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "bytes":
        return rng.randbytes(rng.randint(0, 8))
    if kind in ("float", "double"):
        return rng.random()
    raise ValueError(kind)


@pytest.fixture
def make_random_record() -> Callable[[Any, random.Random], Any]:
    """``make_random_record(avro_schema, rng)``: a random record fitting the schema."""
    return random_record
