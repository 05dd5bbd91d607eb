"""Schema evolution: every consecutive pair of versions is FULL compatible (old writer -> new reader and
new writer -> old reader), checked statically (added/removed fields need defaults) and by fastavro's
schema resolution on random records. Adding a field without a default makes this test fail."""

from __future__ import annotations

import copy
import io
import random
from collections.abc import Callable, Mapping
from typing import Any

import fastavro
import pytest

from xborder_gateway import avro

PAIRS = [
    (old, new)
    for name in sorted({i.name for i in avro.known_schemas()})
    for old, new in zip(
        [i for i in avro.known_schemas() if i.name == name],
        [i for i in avro.known_schemas() if i.name == name][1:],
        strict=False,
    )
]


def _records(schema: Any, named: dict[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Every record definition in a schema, by name."""
    if isinstance(schema, list):
        for s in schema:
            _records(s, named)
    elif isinstance(schema, Mapping):
        if schema.get("type") == "record":
            named[schema["name"]] = schema
            for f in schema["fields"]:
                _records(f["type"], named)
        elif schema.get("type") == "array":
            _records(schema["items"], named)
        elif isinstance(schema.get("type"), (Mapping, list)):
            _records(schema["type"], named)
    return named


def static_problems(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    problems = []
    old_records, new_records = _records(old, {}), _records(new, {})
    for name, new_rec in new_records.items():
        old_rec = old_records.get(name)
        if old_rec is None:
            continue
        old_fields = {f["name"]: f for f in old_rec["fields"]}
        new_fields = {f["name"]: f for f in new_rec["fields"]}
        problems += [f"{name}.{f} added without a default (old writer -> new reader breaks)"
                     for f in new_fields.keys() - old_fields.keys() if "default" not in new_fields[f]]
        problems += [f"{name}.{f} removed without a default (new writer -> old reader breaks)"
                     for f in old_fields.keys() - new_fields.keys() if "default" not in old_fields[f]]
    return problems


def _resolve(writer: Any, reader: Any, record: Any) -> Any:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(writer, named_schemas={}), record)
    buf.seek(0)
    return fastavro.schemaless_reader(buf, fastavro.parse_schema(writer, named_schemas={}),
                                      fastavro.parse_schema(reader, named_schemas={}))


def _common(value: Any, other: Any) -> Any:
    """``value`` restricted (recursively) to the record fields that ``other`` also has."""
    if isinstance(value, dict) and isinstance(other, dict):
        return {k: _common(v, other[k]) for k, v in value.items() if k in other}
    if isinstance(value, list) and isinstance(other, list):
        return [_common(v, o) for v, o in zip(value, other, strict=False)]
    return value


def test_there_is_a_pair_to_check() -> None:
    assert any(old.name == "Declaration" for old, _new in PAIRS)


@pytest.mark.parametrize(("old", "new"), PAIRS, ids=[f"{o.name}.v{o.version}-v{n.version}" for o, n in PAIRS])
def test_consecutive_versions_are_fully_compatible(old: avro.SchemaInfo, new: avro.SchemaInfo,
                                                  make_random_record: Callable[[Any, random.Random], Any]) -> None:
    assert old.full_name == new.full_name  # resolution matches records by name
    assert static_problems(old.raw, new.raw) == []
    rng = random.Random(f"{old.name}{old.version}")
    for _ in range(50):
        rec_old = make_random_record(copy.deepcopy(old.raw), rng)
        forward = _resolve(old.raw, new.raw, rec_old)  # old writer -> new reader
        assert _common(forward, rec_old) == _common(rec_old, forward)
        rec_new = make_random_record(copy.deepcopy(new.raw), rng)
        backward = _resolve(new.raw, old.raw, rec_new)  # new writer -> old reader
        assert set(backward) == {f["name"] for f in old.raw["fields"]}
        assert _common(backward, rec_new) == _common(rec_new, backward)


def test_the_check_fails_for_a_field_added_without_default(
        make_random_record: Callable[[Any, random.Random], Any]) -> None:
    old = avro.schema_info("Declaration", 1).raw
    bad = copy.deepcopy(dict(old))
    bad["fields"] = [*bad["fields"], {"name": "trade_mode_required", "type": "string"}]
    assert static_problems(old, bad) == ["Declaration.trade_mode_required added without a default "
                                         "(old writer -> new reader breaks)"]
    with pytest.raises(fastavro.read.SchemaResolutionError):
        _resolve(old, bad, make_random_record(copy.deepcopy(dict(old)), random.Random(1)))


def test_the_check_fails_for_a_nested_field_removed_without_default() -> None:
    old = copy.deepcopy(dict(avro.schema_info("Declaration", 2).raw))
    new = copy.deepcopy(old)
    goods = next(f for f in new["fields"] if f["name"] == "goods")
    goods["type"]["items"]["fields"] = [f for f in goods["type"]["items"]["fields"] if f["name"] != "hs6"]
    assert static_problems(old, new) == ["GoodsItem.hs6 removed without a default (new writer -> old reader breaks)"]
