"""AuditEvent: the canonical entry encoding (golden bytes), strict decoding, no free text."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from xborder_gateway.audit import AuditEvent, EventType, merkle
from xborder_gateway.errors import AuditIntegrityError

GOLDEN = (
    b'{"attempt":null,"authority":"VN","business_key":"305123456789","document_type":"IDA",'
    b'"encryption_key_id":null,"envelope_sha256":null,"event_type":"sent","kafka_offset":42,'
    b'"kafka_partition":1,"kafka_topic":"xb.vn-cn.exchange","message_id":"018f3a4e-0000-7000-8000-000000000001",'
    b'"outcome":"ok","payload_sha256":"' + b"ab" * 32 + b'","process":"outbound","raw_sha256":null,'
    b'"reason_code":null,"signing_key_id":null,"time":"2026-11-25T01:02:03.000004Z","v":1}'
)


def golden_event(**overrides: Any) -> AuditEvent:
    fields: dict[str, Any] = {
        "time": datetime(2026, 11, 25, 8, 2, 3, 4, tzinfo=timezone(timedelta(hours=7))),  # Ha Noi time
        "authority": "VN", "process": "outbound", "event_type": EventType.SENT,
        "message_id": "018f3a4e-0000-7000-8000-000000000001", "business_key": "305123456789",
        "document_type": "IDA", "payload_sha256": bytes.fromhex("ab" * 32), "kafka_topic": "xb.vn-cn.exchange",
        "kafka_partition": 1, "kafka_offset": 42,
    }
    fields.update(overrides)
    return AuditEvent(**fields)


def test_canonical_bytes_are_the_documented_golden_bytes() -> None:
    assert golden_event().canonical_bytes() == GOLDEN
    # the leaf hash printed in docs/audit.md §2
    assert merkle.leaf_hash(GOLDEN).hex() == "57c3bfb03f856e476b685b83f30261808d158e71d320c02102f6f8bad6054eee"


def test_round_trip() -> None:
    event = AuditEvent.from_canonical(GOLDEN)
    assert event == golden_event()
    assert event.time.tzinfo == UTC


@pytest.mark.parametrize(
    ("name", "entry"),
    [
        ("pretty printed", json.dumps(json.loads(GOLDEN), indent=1).encode()),
        ("keys not sorted", GOLDEN.replace(b'{"attempt":null,', b"{")[:-1] + b',"attempt":null}'),
        ("extra field", GOLDEN[:-1] + b',"x":1}'),
        ("missing v", GOLDEN.replace(b',"v":1}', b"}")),
        ("v 2", GOLDEN.replace(b'"v":1', b'"v":2')),
        ("time without microseconds", GOLDEN.replace(b"03.000004Z", b"03Z")),
        ("time with offset", GOLDEN.replace(b".000004Z", b".000004+00:00")),
        ("uppercase hex digest", GOLDEN.replace(b"ab" * 32, b"AB" * 32)),
        ("not json", b"\x00\x01"),
        ("non-ascii", GOLDEN.replace(b"IDA", "IĐA".encode())),
        ("a list", b"[]"),
    ],
)
def test_non_canonical_entries_are_refused(name: str, entry: bytes) -> None:
    assert entry != GOLDEN, name
    with pytest.raises(AuditIntegrityError) as info:
        AuditEvent.from_canonical(entry)
    assert info.value.code == "AUDIT_ENTRY_ENCODING"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("business_key", "Nguyễn Văn A"),  # a person's name is not an identifier
        ("message_id", "msg with spaces"),
        ("document_type", "IDA\n"),
        ("reason_code", "importer phone +84 912 345 678 / Trần Thị B"),
        ("raw_sha256", "ab" * 31),
        ("raw_sha256", b"\x00" * 31),
        ("process", "Outbound"),
        ("authority", "US"),
        ("kafka_partition", -1),
        ("outcome", "OK!"),
        ("time", datetime(2026, 11, 25, 8, 0, 0)),  # naive: refused
        ("unknown_field", "x"),
    ],
)
def test_free_text_and_bad_values_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        golden_event(**{field: value})


def test_events_are_frozen() -> None:
    with pytest.raises(ValidationError):
        golden_event().message_id = "other"  # type: ignore[misc]


# --- the direct canonical writer agrees with json.dumps (issue 13: the audit event's cost) ----------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from xborder_gateway.audit.events import canonical_json, format_time  # noqa: E402

_ident = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:/+=@#-]{0,20}\Z")
_digest = st.binary(min_size=32, max_size=32).map(bytes.hex)
_times = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                      timezones=st.sampled_from([UTC, timezone(timedelta(hours=7)), timezone(timedelta(hours=-11))]))


@settings(max_examples=300, deadline=None)
@given(time=_times, event_type=st.sampled_from(list(EventType)), message_id=st.none() | _ident,
       business_key=st.none() | _ident, digest=st.none() | _digest, partition=st.none() | st.integers(0, 2**31 - 1),
       offset=st.none() | st.integers(0, 2**63 - 1), attempt=st.none() | st.integers(0, 1_000_000),
       reason=st.none() | st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:/+=@ -]{0,30}\Z"))
def test_canonical_bytes_equal_the_reference_json_encoding(*, time: datetime, event_type: EventType,
                                                          message_id: str | None, business_key: str | None,
                                                          digest: str | None, partition: int | None,
                                                          offset: int | None, attempt: int | None,
                                                          reason: str | None) -> None:
    event = AuditEvent(time=time, authority="CN", process="nanning", event_type=event_type, message_id=message_id,
                       business_key=business_key, payload_sha256=digest, kafka_topic="vn.exchange",
                       kafka_partition=partition, kafka_offset=offset, attempt=attempt, reason_code=reason)
    assert event.canonical_bytes() == canonical_json(event.canonical_dict())
    assert AuditEvent.from_canonical(event.canonical_bytes()) == event


@pytest.mark.parametrize("when", [datetime(1, 1, 1, tzinfo=UTC), datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                                  datetime(1000, 1, 1, tzinfo=UTC), datetime(2026, 12, 2, 1, 2, 3, tzinfo=UTC),
                                  datetime(2026, 12, 2, 8, 0, tzinfo=timezone(timedelta(hours=7))),
                                  datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)])
def test_format_time_has_four_year_digits_and_reads_back(when: datetime) -> None:
    text = format_time(when)
    assert len(text) == len("YYYY-MM-DDTHH:MM:SS.ffffffZ")
    assert text.endswith("Z")
    assert datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC) == when
    if when.astimezone(UTC).year >= 1000:  # the log's text for every year it could hold so far
        assert text == when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    event = AuditEvent(time=when, authority="VN", process="outbound", event_type=EventType.SENT)
    assert AuditEvent.from_canonical(event.canonical_bytes()) == event  # year 1 was refused on read


def test_a_value_of_another_type_falls_back_to_json_dumps() -> None:
    """Only str, int and None are written directly; anything else (a bool, say) goes through json.dumps."""
    event = AuditEvent(time=datetime(2026, 12, 2, tzinfo=UTC), authority="VN", process="outbound",
                       event_type=EventType.SENT, attempt=1)
    d = event.canonical_dict()
    d["attempt"] = True
    object.__setattr__(event, "canonical_dict", lambda: d)  # a frozen model: patch this one instance only
    assert event.canonical_bytes() == canonical_json(d) == json.dumps(
        d, sort_keys=True, separators=(",", ":")).encode()
    assert b'"attempt":true' in event.canonical_bytes()
