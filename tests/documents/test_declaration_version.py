"""Issue 15 item 1 (ADR 0404): the amendment version of a VN declaration -- XML item ``AMV`` (optional, 1..999),
mapped to ``Declaration.version`` (v4, null when absent), written by the generator on amendments."""

from __future__ import annotations

import pytest

from xborder_gateway import avro
from xborder_gateway.documents import DocumentRejectedError, translate_xml
from xborder_gateway.samples import Sample, generate, generate_mix

from .test_schema_evolution import PAIRS


def _amended(kind: str) -> Sample:
    for seed in range(1, 60):
        for s in generate(kind, 40, seed):
            if s.amended_by is not None:
                return s
    raise AssertionError(f"no {kind} with an amendment")


def _with_amv(xml: bytes, value: str) -> bytes:
    assert b"<AMV>" not in xml
    return xml.replace(b"<Goods>", f"<AMV>{value}</AMV><Goods>".encode(), 1)


def test_the_generator_versions_an_amendment_one_above_its_original() -> None:
    original = _amended("EDA")  # only EDAs are amended (the holds an amendment releases are export holds)
    assert original.amended_by is not None
    first, second = translate_xml(original.xml), translate_xml(original.amended_by.xml)
    assert (first.values["version"], second.values["version"]) == (1, 2)
    assert first.business_key == second.business_key
    assert (first.schema_name, first.schema_version) == ("Declaration", 4)
    assert avro.decode(second.payload).record["version"] == 2


def test_a_stream_with_amendments_has_increasing_versions_per_number() -> None:
    seen: dict[str, list[int | None]] = {}
    for s in generate_mix(300, 5, invalid_ratio=0.0, amendments=True):
        if s.kind in ("IDA", "EDA"):
            seen.setdefault(s.business_key, []).append(translate_xml(s.xml).values["version"])
    amended = [v for v in seen.values() if len(v) > 1]
    assert amended, "the seed must include amendments"
    assert all(v == [1, 2] for v in amended)


@pytest.mark.parametrize("kind", ["IDA", "EDA"])
def test_a_declaration_without_amv_maps_to_a_null_version(kind: str) -> None:
    plain = next(s for s in generate(kind, 40, 7) if s.amended_by is None and b"<AMV>" not in s.xml)
    assert translate_xml(plain.xml).values["version"] is None
    assert translate_xml(_with_amv(plain.xml, "999")).values["version"] == 999


@pytest.mark.parametrize("value", ["0", "1000", "01", "+1", "-1", " 2", "9223372036854775808", "1.0", ""])
def test_an_amendment_version_outside_1_to_999_is_refused_by_the_xsd(value: str) -> None:
    plain = next(s for s in generate("IDA", 40, 7) if s.amended_by is None and b"<AMV>" not in s.xml)
    with pytest.raises(DocumentRejectedError) as err:
        translate_xml(_with_amv(plain.xml, value))
    assert err.value.code.startswith("XSD")


def test_declaration_v4_is_evolution_checked_and_an_old_reader_drops_the_version() -> None:
    assert any((old.name, old.version, new.version) == ("Declaration", 3, 4) for old, new in PAIRS)
    field = next(f for f in avro.schema_info("Declaration", 4).raw["fields"] if f["name"] == "version")
    assert field["type"] == ["null", "int"]
    assert field["default"] is None
    assert "VERSION_STALE" in field["doc"]
    doc = translate_xml(_amended("EDA").xml)
    assert "version" not in avro.decode(doc.payload, reader_version=3).record
