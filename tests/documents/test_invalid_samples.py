"""Every --invalid rule of the generator is caught, with the documented code."""

from __future__ import annotations

import pytest

from xborder_gateway.documents import translate_xml
from xborder_gateway.errors import GatewayError, IntakeError
from xborder_gateway.samples import INVALID_RULES, KINDS, generate

CASES = [(kind, rule) for rule, (kinds, _code, _d) in INVALID_RULES.items() for kind in kinds]


def test_every_rule_applies_to_some_kind_and_every_kind_has_rules() -> None:
    assert {k for k, _r in CASES} == set(KINDS)
    assert {r for _k, r in CASES} == set(INVALID_RULES)


@pytest.mark.parametrize(("kind", "rule"), CASES, ids=[f"{k}-{r}" for k, r in CASES])
def test_invalid_rule_is_caught_with_its_code(kind: str, rule: str) -> None:
    rules = [r for r, (kinds, _c, _d) in INVALID_RULES.items() if kind in kinds]
    samples = list(generate(kind, len(rules), seed=99, invalid=True))
    sample = next(s for s in samples if s.broken_rule == rule)
    with pytest.raises(GatewayError) as err:
        translate_xml(sample.xml, source=sample.name)
    assert err.value.code == INVALID_RULES[rule][1] == sample.expected_code
    assert isinstance(err.value, IntakeError)  # the sender's fault, not the gateway's


@pytest.mark.parametrize("kind", KINDS)
def test_the_same_documents_without_the_break_are_valid(kind: str) -> None:
    for sample in generate(kind, 10, seed=99):
        assert sample.broken_rule is None
        translate_xml(sample.xml, source=sample.name)
