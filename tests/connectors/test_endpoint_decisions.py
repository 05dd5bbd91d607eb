"""The receiving endpoint's decisions that the scenarios do not reach: its fault flags' bounds, the attempt
header it trusts only as a label, a verified envelope whose payload is not Avro (a permanent NACK, recorded
like an answer), and the rule-set registry (mirrors ``connectors/nanning.py`` and ``exchange/_rules.py``)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from xborder_gateway import avro
from xborder_gateway.connectors import Faults, NanningProcessor
from xborder_gateway.connectors._common import H_ATTEMPT, H_KIND, H_MESSAGE_ID, H_RUN
from xborder_gateway.connectors.nanning import _attempt
from xborder_gateway.envelope import open_receipt, seal
from xborder_gateway.errors import ConfigError
from xborder_gateway.exchange import RuleSet, register_rule_set, rule_set_for
from xborder_gateway.transport import Incoming

from ..exchange.conftest import Home  # noqa: TID252 - tests/ is no package on sys.path (import-mode=importlib)

BAD_FAULTS = [
    ("drop rate above 1", {"drop_rate": 1.01}, "FAULT_RATE"),
    ("negative duplicate rate", {"duplicate_rate": -0.1}, "FAULT_RATE"),
    ("reject rate above 1", {"reject_rate": 2.0}, "FAULT_RATE"),
    ("negative delay", {"delay_ms": -1}, "FAULT_VALUE"),
    ("negative offline time", {"offline_for": -0.5}, "FAULT_VALUE"),
    ("crash after zero envelopes", {"crash_after": 0}, "FAULT_VALUE"),
]


@pytest.mark.parametrize(("case", "kwargs", "code"), BAD_FAULTS, ids=[c[0] for c in BAD_FAULTS])
def test_fault_flags_out_of_bounds_are_config_errors(case: str, kwargs: dict[str, Any], code: str) -> None:
    with pytest.raises(ConfigError) as info:
        Faults(**kwargs)
    assert info.value.code == code


@pytest.mark.parametrize("kwargs", [{"drop_rate": 0.0}, {"drop_rate": 1.0}, {"duplicate_rate": 1.0},
                                    {"delay_ms": 0, "offline_for": 0.0}, {"crash_after": 1}])
def test_fault_flags_at_their_bounds_are_accepted(kwargs: dict[str, Any]) -> None:
    Faults(**kwargs)


ATTEMPTS = [
    ("first send", b"1", 1),
    ("leading zeros", b"007", 7),
    ("six digits", b"999999", 999999),
    ("seven digits (too long to be ours)", b"1000000", None),
    ("negative", b"-1", None),
    ("not a number", b"one", None),
    ("non-ASCII digits", "١٢".encode(), None),
    ("empty", b"", None),
    ("absent", None, None),
]


@pytest.mark.parametrize(("case", "raw", "expected"), ATTEMPTS, ids=[a[0] for a in ATTEMPTS])
def test_attempt_header_is_parsed_only_when_plausible(case: str, raw: bytes | None, expected: int | None) -> None:
    headers = () if raw is None else ((H_ATTEMPT, raw),)
    assert _attempt(Incoming("t", 0, 0, None, b"", headers)) == expected


def _incoming(topic: str, data: bytes, mid: str, offset: int = 0) -> Incoming:
    return Incoming(topic, 0, offset, mid.encode(), data,
                    ((H_MESSAGE_ID, mid.encode()), (H_RUN, b"r1"), (H_ATTEMPT, b"1")),
                    timestamp_ms=int(time.time() * 1000))


def test_verified_envelope_with_a_payload_that_is_not_avro_is_nacked_once_and_recorded(home: Home) -> None:
    """A signed, decryptable envelope whose payload the endpoint cannot decode gets a permanent NACK naming
    the decoder's code; the answer is recorded, so the same bytes again are a duplicate answered with that
    very NACK -- never decoded twice, never silently skipped."""
    payload = b"\xc3\x01" + b"\x00" * 8 + b"not an avro body"
    env = seal(payload, sender=home.vn, recipient="CN", trust=home.vn_trust, document_type="IDA",
               schema_fingerprint=payload[2:10])
    endpoint = NanningProcessor(home.settings, home.cn, home.cn_trust, Faults())
    try:
        first = endpoint.process([_incoming(home.settings.topic_exchange, env.data, str(env.message_id))])
        assert first.counts["processed"] == 1
        assert [o.header(H_KIND) for o in first.outputs] == [b"receipt"], "no business response for it"
        _, receipt = open_receipt(first.outputs[0].value, me=home.vn, trust=home.vn_trust, replay=None)
        assert receipt["outcome"] == "NACK"
        assert str(receipt["reason_code"]).startswith("AVRO"), receipt["reason_code"]
        again = endpoint.process([_incoming(home.settings.topic_exchange, env.data, str(env.message_id), 1)])
        assert again.counts["duplicate"] == 1
        assert again.counts["processed"] == 0
        assert [o.value for o in again.outputs] == [o.value for o in first.outputs], "the original NACK again"
    finally:
        endpoint.close()


def test_rule_set_of_an_unknown_authority_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        rule_set_for("XX")
    assert info.value.code == "RULES_UNKNOWN"
    assert "CN" in (info.value.hint or "")


def test_a_registered_rule_set_is_the_one_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from xborder_gateway.exchange import _rules

    monkeypatch.setattr(_rules, "_FACTORIES", dict(_rules._FACTORIES))
    cn = rule_set_for("CN")
    seen: list[Any] = []

    def factory(settings: Any) -> RuleSet:
        seen.append(settings)
        return cn

    register_rule_set("ZZ", factory)
    assert rule_set_for("ZZ", "the settings") is cn
    assert seen == ["the settings"]


def test_avro_frame_of_the_sample_is_decodable() -> None:
    """Guard of the test above: a real BusinessResponse frame does decode (the garbage one fails for its body)."""
    from datetime import UTC, datetime

    frame = avro.encode("BusinessResponse", {"message_id": "m", "business_key": "k", "document_type": "IDA",
                                             "status": "ACCEPTED", "reasons": [], "responded_at": datetime.now(UTC)})
    assert avro.decode(frame).record["business_key"] == "k"
