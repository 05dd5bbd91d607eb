"""Issue 9 item 3: no exception but the documented one leaves ``open_envelope`` / ``open_receipt`` / ``seal``.

The documented ones: ``open_envelope`` and ``open_receipt`` raise only :class:`EnvelopeOpenError` (and its
subclass ``EnvelopeReplayError``); ``seal`` and ``seal_receipt`` raise only ``EnvelopeError``. Before the fix a
trusted certificate with notAfter 9999-12-31T23:59:59Z (RFC 5280 §4.1.2.5 "no well-defined expiration") made
ENV-5 raise ``OverflowError`` (``not_after + skew``), and so did ``expires + skew`` for a header expiring in
year 9999 and ``created + ttl`` in ``seal``.

Certificates with any validity (year 1, year 9999, notBefore after notAfter) are made by re-signing a real
certificate's TBS with patched GeneralizedTime values: ``cryptography``'s builder refuses them, a sender
need not.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from xborder_gateway import avro
from xborder_gateway.envelope import (
    AuthorityCertificate,
    EnvelopeLimits,
    EnvelopeOpenError,
    KeyGeneration,
    LocalAuthority,
    MemoryReplayGuard,
    OpenedEnvelope,
    SealedEnvelope,
    TrustStore,
    make_generation,
    open_envelope,
    open_receipt,
    seal,
    seal_receipt,
)
from xborder_gateway.errors import EnvelopeError

CODE = re.compile(r"ENV-(1|2|3|4|5|6|7|8|9|10|11) [A-Z_]+")
YEAR_1 = datetime(1, 1, 1, tzinfo=UTC)
NO_EXPIRY = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)  # RFC 5280's 99991231235959Z
T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
_PLACEHOLDER_NB, _PLACEHOLDER_NA = datetime(2050, 1, 1, tzinfo=UTC), datetime(2051, 1, 1, tzinfo=UTC)
_MS_MAX = 253402300799999


def _gt(value: datetime) -> bytes:
    return f"{value.year:04d}{value:%m%d%H%M%S}Z".encode("ascii")


def generation_with_validity(authority: str, not_before: datetime, not_after: datetime) -> KeyGeneration:
    """A key generation whose self-signed certificate says exactly ``not_before`` .. ``not_after``."""
    base = make_generation(authority, not_before=_PLACEHOLDER_NB, validity=_PLACEHOLDER_NA - _PLACEHOLDER_NB)
    cert = x509.load_pem_x509_certificate(base.certificate.pem)
    tbs = cert.tbs_certificate_bytes
    new_tbs = tbs.replace(_gt(_PLACEHOLDER_NB), _gt(not_before)).replace(_gt(_PLACEHOLDER_NA), _gt(not_after))
    assert len(new_tbs) == len(tbs)  # both GeneralizedTime (YYYYMMDDHHMMSSZ): lengths unchanged
    der = cert.public_bytes(serialization.Encoding.DER)
    at = der.index(tbs)
    signature = base.signing_private.sign(new_tbs)
    new_der = der[:at] + new_tbs + der[at + len(tbs) : -64] + signature
    patched = AuthorityCertificate.from_x509(x509.load_der_x509_certificate(new_der))
    assert (patched.not_before, patched.not_after) == (not_before, not_after)
    return KeyGeneration(patched, base.signing_private, base.encryption_private)


def _pair(vn_validity: tuple[datetime, datetime], cn_validity: tuple[datetime, datetime]
          ) -> tuple[LocalAuthority, TrustStore, LocalAuthority, TrustStore]:
    vn = LocalAuthority("VN", [generation_with_validity("VN", *vn_validity)])
    cn = LocalAuthority("CN", [generation_with_validity("CN", *cn_validity)])
    return vn, TrustStore(cn.certificates), cn, TrustStore(vn.certificates)


def _payload() -> bytes:
    return b"\xc3\x01" + bytes.fromhex("0102030405060708") + b"declaration"


# --- the reported case, as a plain regression test ----------------------------------------------------


def test_trusted_certificate_without_expiry_opens_instead_of_overflowing() -> None:
    """ENV-5 with notAfter 9999-12-31T23:59:59Z: main raised OverflowError here (before decryption)."""
    vn, vn_trust, cn, cn_trust = _pair((T0 - timedelta(days=1), NO_EXPIRY), (T0 - timedelta(days=1), NO_EXPIRY))
    sealed = seal(_payload(), sender=vn, recipient="CN", trust=vn_trust, document_type="IDA",
                  schema_fingerprint=_payload()[2:10], now=T0)
    opened = open_envelope(sealed.data, me=cn, trust=cn_trust, replay=None, now=T0)
    assert opened.message_id == sealed.message_id


def test_year_one_not_before_and_far_future_header(kit: Any) -> None:
    """notBefore 0001-01-01 and a header expiring at the last representable millisecond: refused, no overflow."""
    vn, _, cn, cn_trust = _pair((YEAR_1, NO_EXPIRY), (YEAR_1, NO_EXPIRY))
    header = kit.DocHeader(
        message_id=uuid.UUID("01936f2a-4b00-7000-8000-000000000001").bytes, sender=b"VN", recipient=b"CN",
        document_type=b"IDA", schema_fingerprint=kit.FP, created_ms=_MS_MAX - 1000, expires_ms=_MS_MAX,
        signing_key_id=vn.generations[0].certificate.signing_key_id,
        encryption_key_id=cn.generations[0].certificate.encryption_key_id)
    data = kit.DocImpl.seal(header, kit.avro_payload(), vn.generations[0].signing_private,
                            cn.generations[0].certificate.encryption_key.public_bytes_raw())
    with pytest.raises(EnvelopeOpenError) as info:
        open_envelope(data, me=cn, trust=cn_trust, replay=None, now=T0)
    assert info.value.code == "ENV-8 NOT_YET_VALID"
    assert open_envelope(data, me=cn, trust=cn_trust, replay=None, now=NO_EXPIRY).header.created.year == 9999
    # ...and at the end of time with the largest skew a timedelta can hold
    limits = EnvelopeLimits(max_clock_skew=timedelta.max)
    opened = open_envelope(data, me=cn, trust=cn_trust, replay=None, now=NO_EXPIRY, limits=limits)
    assert opened.header.expires.year == 9999


def test_seal_near_year_9999_is_an_envelope_error() -> None:
    """``created + ttl`` past 9999-12-31 was an OverflowError out of seal."""
    vn, vn_trust, _, _ = _pair((T0, NO_EXPIRY), (T0, NO_EXPIRY))
    with pytest.raises(EnvelopeError) as info:
        seal(_payload(), sender=vn, recipient="CN", trust=vn_trust, document_type="IDA",
             schema_fingerprint=_payload()[2:10], now=datetime(9999, 12, 31, tzinfo=UTC))
    assert info.value.code == "ENV-8 BAD_LIFETIME"


# --- properties ---------------------------------------------------------------------------------------

_extreme_times = st.sampled_from([YEAR_1, NO_EXPIRY, T0, T0 - timedelta(days=1), datetime(1970, 1, 1, tzinfo=UTC),
                                  datetime(9999, 12, 31, tzinfo=UTC), datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC)])
_times = st.one_of(_extreme_times,
                   st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59),
                                timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0)))
_ms = st.one_of(st.sampled_from([0, 1, _MS_MAX - 1, _MS_MAX, _MS_MAX + 1, 2**63 - 1, 2**63, 2**64 - 1,
                                 int(T0.timestamp() * 1000), int(T0.timestamp() * 1000) + 172_800_000]),
                st.integers(0, 2**64 - 1))
_durations = st.one_of(st.sampled_from([timedelta(0), timedelta(minutes=5), timedelta(days=7), timedelta.max]),
                       st.timedeltas(min_value=timedelta(0), max_value=timedelta.max))
_authorities = st.one_of(st.sampled_from([b"VN", b"CN", b"XX", b"", b"vn", b"V" * 17]), st.binary(max_size=18))
_uuid7 = st.one_of(st.just(uuid.UUID("01936f2a-4b00-7000-8000-000000000001").bytes),
                   st.binary(min_size=16, max_size=16))


@st.composite
def _validity(draw: st.DrawFn) -> tuple[datetime, datetime]:
    return draw(_times), draw(_times)  # notBefore > notAfter is allowed on purpose


@st.composite
def _case(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "vn_validity": draw(_validity()), "cn_validity": draw(_validity()),
        "created_ms": draw(_ms), "expires_ms": draw(_ms), "now": draw(_times),
        "skew": draw(_durations), "ttl": draw(_durations.filter(lambda d: d > timedelta(0))),
        "sender": draw(_authorities), "recipient": draw(st.one_of(st.just(b"CN"), _authorities)),
        "document_type": draw(st.one_of(st.sampled_from([b"IDA", b"RECEIPT"]), st.binary(max_size=33))),
        "message_id": draw(_uuid7), "priority": draw(st.integers(0, 255)),
        "real_signing_kid": draw(st.booleans()), "real_encryption_kid": draw(st.booleans()),
        "random_kid": draw(st.binary(min_size=32, max_size=32)),
        "replay": draw(st.booleans()),
    }


def _outcome(action: Callable[[], object], documented: type[EnvelopeError]) -> str:
    """``"OPENED"`` (or sealed) when ``action`` returns, the code of a documented error; anything else propagates
    and fails the test."""
    try:
        result = action()
    except documented as exc:
        return str(exc.code)
    assert isinstance(result, OpenedEnvelope | tuple | SealedEnvelope)
    return "OPENED"


def _forge(kit: Any, case: dict[str, Any], payload: bytes) -> tuple[bytes, LocalAuthority, TrustStore]:
    vn, _, cn, cn_trust = _pair(case["vn_validity"], case["cn_validity"])
    header = kit.DocHeader(
        message_id=case["message_id"], sender=case["sender"], recipient=case["recipient"],
        document_type=case["document_type"], schema_fingerprint=payload[2:10],
        created_ms=case["created_ms"], expires_ms=case["expires_ms"],
        signing_key_id=vn.generations[0].certificate.signing_key_id if case["real_signing_kid"] else case["random_kid"],
        encryption_key_id=(cn.generations[0].certificate.encryption_key_id if case["real_encryption_kid"]
                           else case["random_kid"]),
        priority=case["priority"])
    data = kit.DocImpl.seal(header, payload, vn.generations[0].signing_private,
                            cn.generations[0].certificate.encryption_key.public_bytes_raw())
    return data, cn, cn_trust


_BASE = {"vn_validity": (T0 - timedelta(days=1), NO_EXPIRY), "cn_validity": (YEAR_1, NO_EXPIRY),
         "created_ms": int(T0.timestamp() * 1000), "expires_ms": int(T0.timestamp() * 1000) + 1000, "now": T0,
         "skew": timedelta(minutes=5), "ttl": timedelta(days=7), "sender": b"VN", "recipient": b"CN",
         "document_type": b"IDA", "message_id": uuid.UUID("01936f2a-4b00-7000-8000-000000000001").bytes,
         "priority": 0, "real_signing_kid": True, "real_encryption_kid": True, "random_kid": b"\x00" * 32,
         "replay": False}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_case())
@example(case=_BASE)
@example(case={**_BASE, "expires_ms": _MS_MAX, "now": NO_EXPIRY, "skew": timedelta.max, "ttl": timedelta.max})
@example(case={**_BASE, "vn_validity": (NO_EXPIRY, YEAR_1), "cn_validity": (NO_EXPIRY, YEAR_1)})
def test_open_envelope_raises_only_envelope_open_error(kit: Any, case: dict[str, Any]) -> None:
    data, cn, cn_trust = _forge(kit, case, kit.avro_payload())
    limits = EnvelopeLimits(max_clock_skew=case["skew"], max_ttl=case["ttl"])
    replay = MemoryReplayGuard() if case["replay"] else None
    outcome = _outcome(lambda: open_envelope(data, me=cn, trust=cn_trust, replay=replay, now=case["now"],
                                             limits=limits), EnvelopeOpenError)
    assert outcome == "OPENED" or CODE.fullmatch(outcome), outcome


def _receipt_payload(kind: int, junk: bytes) -> bytes:
    record = {"message_id": "01936f2a-4b00-7000-8000-000000000001", "envelope_sha256": b"\x01" * 32,
              "outcome": "ACK", "reason_code": None, "reason_text": None, "receiver_authority": "VN",
              "sender_authority": "CN", "received_at": T0, "document_type": "IDA", "business_key": None}
    good = avro.encode("Receipt", record)
    if kind == 0:
        return good
    if kind == 1:
        return good[:10] + junk  # the Receipt fingerprint, a body that does not decode
    return b"\xc3\x01" + junk[:8].ljust(8, b"\x00") + junk[8:]  # an unknown fingerprint


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_case(), kind=st.integers(0, 2), junk=st.binary(max_size=40))
@example(case={**_BASE, "document_type": b"RECEIPT"}, kind=1, junk=b"\xff" * 12)
@example(case={**_BASE, "document_type": b"RECEIPT"}, kind=2, junk=b"\x00" * 12)
@example(case={**_BASE, "document_type": b"RECEIPT"}, kind=0, junk=b"")
def test_open_receipt_raises_only_envelope_open_error(kit: Any, case: dict[str, Any], kind: int, junk: bytes) -> None:
    """``open_receipt`` has the same shape: a signed payload that is not a Receipt is an EnvelopeOpenError."""
    data, cn, cn_trust = _forge(kit, case, _receipt_payload(kind, junk))
    limits = EnvelopeLimits(max_clock_skew=case["skew"], max_ttl=case["ttl"])
    outcome = _outcome(lambda: open_receipt(data, me=cn, trust=cn_trust, replay=None, now=case["now"],
                                            limits=limits), EnvelopeOpenError)
    assert outcome == "OPENED" or CODE.fullmatch(outcome), outcome


@settings(max_examples=50, deadline=None)
@given(vn_validity=_validity(), cn_validity=_validity(), now=_times, ttl=_durations.filter(lambda d: d > timedelta(0)),
       max_ttl=_durations.filter(lambda d: d > timedelta(0)))
@example(vn_validity=(T0, NO_EXPIRY), cn_validity=(T0, NO_EXPIRY), now=NO_EXPIRY, ttl=timedelta(days=2),
         max_ttl=timedelta.max)
@example(vn_validity=(YEAR_1, NO_EXPIRY), cn_validity=(YEAR_1, NO_EXPIRY), now=YEAR_1, ttl=timedelta(days=2),
         max_ttl=timedelta(days=7))
def test_seal_raises_only_envelope_error(vn_validity: tuple[datetime, datetime], cn_validity: tuple[datetime, datetime],
                                         now: datetime, ttl: timedelta, max_ttl: timedelta) -> None:
    vn, vn_trust, cn, cn_trust = _pair(vn_validity, cn_validity)
    limits = EnvelopeLimits(max_ttl=max_ttl)
    outcome = _outcome(lambda: seal(_payload(), sender=vn, recipient="CN", trust=vn_trust, document_type="IDA",
                                    schema_fingerprint=_payload()[2:10], now=now, ttl=ttl, limits=limits),
                       EnvelopeError)
    assert outcome == "OPENED" or CODE.fullmatch(outcome), outcome
    record = {"message_id": "01936f2a-4b00-7000-8000-000000000001", "envelope_sha256": b"\x01" * 32,
              "outcome": "ACK", "reason_code": None, "reason_text": None, "receiver_authority": "CN",
              "sender_authority": "VN", "received_at": T0, "document_type": "IDA", "business_key": None}
    outcome = _outcome(lambda: seal_receipt(record, me=cn, trust=cn_trust, now=now, ttl=ttl), EnvelopeError)
    assert outcome == "OPENED" or CODE.fullmatch(outcome), outcome
