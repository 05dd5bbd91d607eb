"""Property tests (hypothesis): over generated documents, translation round-trips exactly and the
facts the connectors rely on hold; over arbitrary bytes, the intake never crashes."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xborder_gateway import avro
from xborder_gateway.documents import DocumentRejectedError, peek_key, translate_xml
from xborder_gateway.errors import GatewayError
from xborder_gateway.model import Declaration
from xborder_gateway.samples import generate

_INTAKE_PREFIXES = ("XML_", "XSD_")


def _refusal_code(raw: bytes) -> str | None:
    """None when the bytes translate; the code when the intake refuses them (anything else propagates)."""
    try:
        translate_xml(raw)
    except DocumentRejectedError as exc:
        return exc.code
    return None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["IDA", "EDA", "TIR", "TOR"]), seed=st.integers(min_value=0, max_value=2**32))
def test_generated_documents_round_trip(kind: str, seed: int) -> None:
    sample = next(generate(kind, 1, seed=seed))
    doc = translate_xml(sample.xml)
    decoded = avro.decode(doc.payload)
    assert decoded.record == doc.record.model_dump()
    assert doc.business_key == sample.business_key == peek_key(sample.xml)
    assert doc.perishable == sample.perishable
    if isinstance(doc.record, Declaration):
        assert 1 <= len(doc.record.goods) <= 50
        assert doc.record.perishable == any(g.perishable for g in doc.record.goods)
        assert [g.line_number for g in doc.record.goods] == list(range(1, len(doc.record.goods) + 1))
        for g in doc.record.goods:
            assert g.hs6 == g.hs_national[:6]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["IDA", "EDA", "TIR", "TOR"]), seed=st.integers(min_value=0, max_value=2**32))
def test_every_invalid_document_is_refused_with_its_code(kind: str, seed: int) -> None:
    samples = list(generate(kind, 14, seed=seed, invalid=True))
    for sample in samples:
        with pytest.raises(GatewayError) as err:
            translate_xml(sample.xml)
        assert err.value.code == sample.expected_code, (sample.broken_rule, err.value)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=2048))
def test_arbitrary_bytes_are_refused_cleanly(raw: bytes) -> None:
    code = _refusal_code(raw)
    assert code is None or code.startswith(_INTAKE_PREFIXES)
    peek_key(raw)  # never raises


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(min_value=0, max_value=10_000), seed=st.integers(min_value=0, max_value=1000))
def test_any_prefix_of_a_document_is_refused_or_valid_never_a_crash(cut: int, seed: int) -> None:
    xml = next(generate("EDA", 1, seed=seed)).xml
    prefix = xml[: cut % (len(xml) + 1)]
    code = _refusal_code(prefix)
    assert code is None or code.startswith(_INTAKE_PREFIXES)
