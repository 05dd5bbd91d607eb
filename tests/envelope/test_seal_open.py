"""Round trips, rotation, validity windows, recipient and key checks, replay (ENV-4, ENV-5, ENV-8, ENV-10)."""

from __future__ import annotations

import pickle
import uuid
from datetime import timedelta
from typing import Any

import pytest

from xborder_gateway.envelope import (
    EnvelopeHeader,
    EnvelopeOpenError,
    EnvelopeReplayError,
    LocalAuthority,
    MemoryReplayGuard,
    OpenedEnvelope,
    SqliteReplayStore,
    TrustStore,
    make_generation,
    new_message_id,
    open_envelope,
    peek_header,
    seal,
)
from xborder_gateway.errors import EnvelopeError


def _seal(world: Any, kit: Any, **kw: Any) -> Any:
    args: dict[str, Any] = {"sender": world.vn, "recipient": "CN", "trust": world.vn_trust, "document_type": "IDA",
                            "schema_fingerprint": kit.FP, "now": kit.T0}
    args.update(kw)
    return seal(kw.pop("payload", kit.avro_payload()), **{k: v for k, v in args.items() if k != "payload"})


def _open(world: Any, data: bytes, now: Any, **kw: Any) -> OpenedEnvelope:
    return open_envelope(data, me=world.cn, trust=world.cn_trust, replay=kw.pop("replay", None), now=now, **kw)


def test_round_trip_header_and_payload(world: Any, kit: Any) -> None:
    payload = kit.avro_payload(b"x" * 3000)
    sealed = _seal(world, kit, payload=payload, priority=7)
    opened = _open(world, sealed.data, kit.T0 + timedelta(seconds=3))
    assert opened.payload == payload
    assert opened.header == sealed.header
    assert opened.header.priority == 7
    assert opened.sha256 == sealed.sha256
    assert opened.sender == "VN"
    assert opened.message_id.version == 7
    assert opened.signing_key_id == world.vn.generations[0].certificate.signing_key_id
    assert opened.header.expires - opened.header.created == timedelta(days=2)
    assert payload not in sealed.data  # encrypted
    assert opened.header.to_json()["created"] == "2026-11-25T12:00:00Z"


def test_opened_envelope_cannot_be_built_or_changed_outside_open(world: Any, kit: Any) -> None:
    sealed = _seal(world, kit)
    opened = _open(world, sealed.data, kit.T0)
    with pytest.raises(TypeError, match="only by open_envelope"):
        OpenedEnvelope(object(), sealed.header, b"", b"", world.vn.certificates[0])
    with pytest.raises(AttributeError):
        opened.payload = b"other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        pickle.dumps(opened)


def test_each_seal_uses_a_fresh_uuid7_and_ephemeral_key(world: Any, kit: Any) -> None:
    a, b = _seal(world, kit), _seal(world, kit)
    assert a.message_id != b.message_id
    assert a.data != b.data
    mid = new_message_id(kit.T0)
    assert mid.version == 7
    assert mid.variant == uuid.RFC_4122
    assert int.from_bytes(mid.bytes[:6], "big") == int(kit.T0.timestamp() * 1000)


def test_given_message_id_is_kept_for_resends(world: Any, kit: Any) -> None:
    mid = new_message_id(kit.T0)
    assert _seal(world, kit, message_id=mid).message_id == mid


def test_wrong_recipient(world: Any, kit: Any) -> None:
    sealed = _seal(world, kit)
    with pytest.raises(EnvelopeOpenError) as err:
        open_envelope(sealed.data, me=world.vn, trust=world.vn_trust, replay=None, now=kit.T0)
    assert err.value.code == "ENV-4 WRONG_RECIPIENT"
    assert err.value.header is not None
    assert not err.value.header_verified
    assert err.value.envelope_sha256 == sealed.sha256


def test_unknown_recipient_on_seal(world: Any, kit: Any) -> None:
    with pytest.raises(EnvelopeError) as err:
        _seal(world, kit, recipient="LA")
    assert err.value.code == "ENV-4 UNKNOWN_RECIPIENT"


@pytest.mark.parametrize(
    ("name", "open_at", "code"),
    [
        ("expired beyond skew", timedelta(days=2, minutes=6), "ENV-8 EXPIRED"),
        ("future-dated beyond skew", -timedelta(minutes=6), "ENV-8 NOT_YET_VALID"),
    ],
)
def test_time_window_refused(world: Any, kit: Any, name: str, open_at: timedelta, code: str) -> None:
    sealed = _seal(world, kit)
    with pytest.raises(EnvelopeOpenError) as err:
        _open(world, sealed.data, kit.T0 + open_at)
    assert err.value.code == code, name
    assert err.value.header_verified


@pytest.mark.parametrize(
    ("name", "open_at"),
    [("expiry within skew", timedelta(days=2, minutes=4)), ("clock behind within skew", -timedelta(minutes=4))],
)
def test_time_window_tolerates_skew(world: Any, kit: Any, name: str, open_at: timedelta) -> None:
    assert _open(world, _seal(world, kit).data, kit.T0 + open_at).payload, name


def test_ttl_bounds_on_seal(world: Any, kit: Any) -> None:
    for ttl in (timedelta(0), timedelta(days=8)):
        with pytest.raises(EnvelopeError) as err:
            _seal(world, kit, ttl=ttl)
        assert err.value.code == "ENV-8 BAD_LIFETIME"


@pytest.mark.parametrize(
    ("name", "changes", "code"),
    [
        ("expires equals created", {"expires_ms": 1795608000000}, "ENV-8 BAD_LIFETIME"),
        ("lifetime of 8 days", {"expires_ms": 1795608000000 + 8 * 86_400_000}, "ENV-8 BAD_LIFETIME"),
        ("created before the signing key's not-before", {"created_ms": 1795608000000 - 2 * 86_400_000},
         "ENV-5 KEY_NOT_VALID"),
        ("payload is not Avro", {"_payload": b"<IDA>xml</IDA>"}, "ENV-9 PAYLOAD_NOT_AVRO"),
        ("payload framed with another schema", {"_payload": b"\xc3\x01" + b"\x09" * 8 + b"body"},
         "ENV-9 SCHEMA_MISMATCH"),
    ],
)
def test_validly_signed_but_refused(world: Any, kit: Any, name: str, changes: dict[str, Any], code: str) -> None:
    payload = changes.pop("_payload", b"")
    data = world.forge(payload, **changes)
    with pytest.raises(EnvelopeOpenError) as err:
        _open(world, data, kit.T0)
    assert err.value.code == code, name


def test_key_expired_at_receive_time(kit: Any) -> None:
    short = kit.make_world(not_before=kit.T0 - timedelta(days=1), validity=timedelta(days=1, hours=1))
    sealed = seal(kit.avro_payload(), sender=short.vn, recipient="CN", trust=short.vn_trust, document_type="IDA",
                  schema_fingerprint=kit.FP, now=kit.T0)
    assert open_envelope(sealed.data, me=short.cn, trust=short.cn_trust, replay=None, now=kit.T0)
    with pytest.raises(EnvelopeOpenError) as err:
        open_envelope(sealed.data, me=short.cn, trust=short.cn_trust, replay=None, now=kit.T0 + timedelta(hours=2))
    assert err.value.code == "ENV-5 KEY_NOT_VALID"


def test_no_valid_own_key_on_seal(kit: Any) -> None:
    old = kit.make_world(not_before=kit.T0 - timedelta(days=30), validity=timedelta(days=10))
    with pytest.raises(EnvelopeError) as err:
        seal(kit.avro_payload(), sender=old.vn, recipient="CN", trust=old.vn_trust, document_type="IDA",
             schema_fingerprint=kit.FP, now=kit.T0)
    assert err.value.code == "ENV-5 NO_VALID_KEY"


@pytest.mark.parametrize(
    ("name", "code"),
    [("signing key not trusted", "ENV-5 UNKNOWN_SIGNING_KEY"),
     ("encryption key not ours", "ENV-5 UNKNOWN_ENCRYPTION_KEY")],
)
def test_unknown_key_ids(world: Any, kit: Any, name: str, code: str) -> None:
    stranger = make_generation("VN", not_before=kit.T0 - timedelta(days=1))
    if code == "ENV-5 UNKNOWN_SIGNING_KEY":
        sender = LocalAuthority("VN", [stranger])  # a VN key CN never imported
        sealed = seal(kit.avro_payload(), sender=sender, recipient="CN", trust=world.vn_trust, document_type="IDA",
                      schema_fingerprint=kit.FP, now=kit.T0)
    else:
        other_cn = make_generation("CN", not_before=kit.T0 - timedelta(days=1))  # VN trusts a CN key CN lacks
        sealed = seal(kit.avro_payload(), sender=world.vn, recipient="CN", trust=TrustStore([other_cn.certificate]),
                      document_type="IDA", schema_fingerprint=kit.FP, now=kit.T0)
    with pytest.raises(EnvelopeOpenError) as err:
        _open(world, sealed.data, kit.T0)
    assert err.value.code == code, name


def test_signing_key_of_another_authority_is_refused(kit: Any) -> None:
    """A key trusted for LA must not sign as VN."""
    world = kit.make_world()
    la = make_generation("LA", not_before=kit.T0 - timedelta(days=1))
    cn_trust = TrustStore([*world.cn_trust.certificates, la.certificate])
    data = world.forge(signer=la.signing_private, signing_key_id=la.certificate.signing_key_id)
    with pytest.raises(EnvelopeOpenError) as err:
        open_envelope(data, me=world.cn, trust=cn_trust, replay=None, now=kit.T0)
    assert err.value.code == "ENV-5 UNKNOWN_SIGNING_KEY"


def test_rotation_newest_used_and_old_still_opens(kit: Any) -> None:
    start = kit.T0 - timedelta(days=100)
    vn1 = make_generation("VN", not_before=start)
    vn2 = make_generation("VN", not_before=kit.T0 - timedelta(days=1))
    cn1 = make_generation("CN", not_before=start)
    cn2 = make_generation("CN", not_before=kit.T0 - timedelta(hours=1))
    vn_old, _cn_old = LocalAuthority("VN", [vn1]), LocalAuthority("CN", [cn1])
    # before rotation: VN seals with vn1 to cn1
    before = seal(kit.avro_payload(), sender=vn_old, recipient="CN", trust=TrustStore([cn1.certificate]),
                  document_type="IDA", schema_fingerprint=kit.FP, now=kit.T0 - timedelta(hours=2))
    vn = LocalAuthority("VN", [vn1, vn2])
    cn = LocalAuthority("CN", [cn2, cn1])
    vn_trust, cn_trust = TrustStore([cn1.certificate, cn2.certificate]), TrustStore([vn2.certificate, vn1.certificate])
    after = seal(kit.avro_payload(), sender=vn, recipient="CN", trust=vn_trust, document_type="IDA",
                 schema_fingerprint=kit.FP, now=kit.T0)
    assert after.header.signing_key_id == vn2.certificate.signing_key_id
    assert after.header.encryption_key_id == cn2.certificate.encryption_key_id
    assert before.header.signing_key_id == vn1.certificate.signing_key_id
    for sealed in (before, after):
        assert open_envelope(sealed.data, me=cn, trust=cn_trust, replay=None, now=kit.T0).payload


def test_peek_header_is_unverified_and_tolerant(world: Any, kit: Any) -> None:
    sealed = _seal(world, kit)
    assert peek_header(sealed.data) == sealed.header
    assert peek_header(b"garbage") is None


def test_header_field_validation_on_seal(world: Any, kit: Any) -> None:
    with pytest.raises(EnvelopeError) as err:
        _seal(world, kit, document_type="ida lower")
    assert err.value.code == "ENV-2 INVALID_HEADER_FIELD"
    with pytest.raises(EnvelopeError) as err:
        _seal(world, kit, priority=10)
    assert err.value.code == "ENV-2 INVALID_HEADER_FIELD"
    with pytest.raises(EnvelopeError) as err:
        _seal(world, kit, message_id=uuid.uuid4())
    assert err.value.code == "ENV-2 INVALID_HEADER_FIELD"


def test_seal_refuses_non_avro_payload(world: Any, kit: Any) -> None:
    with pytest.raises(EnvelopeError) as err:
        _seal(world, kit, payload=b"<xml/>")
    assert err.value.code == "ENV-9 PAYLOAD_NOT_AVRO"
    with pytest.raises(EnvelopeError) as err:
        _seal(world, kit, schema_fingerprint=b"\x00" * 8)
    assert err.value.code == "ENV-9 SCHEMA_MISMATCH"


# --- ENV-10 replay --------------------------------------------------------------------------------------------


def _replay_guards(tmp_path: Any) -> list[Any]:
    return [MemoryReplayGuard(), SqliteReplayStore(tmp_path / "state" / "cn.sqlite")]


@pytest.mark.parametrize("kind", [0, 1], ids=["memory", "sqlite"])
def test_replayed_same_bytes(world: Any, kit: Any, tmp_path: Any, kind: int) -> None:
    guard = _replay_guards(tmp_path)[kind]
    sealed = _seal(world, kit)
    opened = _open(world, sealed.data, kit.T0, replay=guard)
    guard.remember(opened.header, opened.sha256)
    with pytest.raises(EnvelopeReplayError) as err:
        _open(world, sealed.data, kit.T0, replay=guard)
    assert err.value.code == "ENV-10 REPLAYED"
    assert err.value.same_bytes
    assert err.value.stored_sha256 == sealed.sha256
    assert err.value.header == sealed.header
    assert err.value.header_verified


@pytest.mark.parametrize("kind", [0, 1], ids=["memory", "sqlite"])
def test_message_id_reused_with_other_bytes(world: Any, kit: Any, tmp_path: Any, kind: int) -> None:
    guard = _replay_guards(tmp_path)[kind]
    mid = new_message_id(kit.T0)
    first = _seal(world, kit, message_id=mid)
    second = _seal(world, kit, message_id=mid, payload=kit.avro_payload(b"other"))
    opened = _open(world, first.data, kit.T0, replay=guard)
    guard.remember(opened.header, opened.sha256)
    with pytest.raises(EnvelopeReplayError) as err:
        _open(world, second.data, kit.T0, replay=guard)
    assert err.value.code == "ENV-10 MESSAGE_ID_REUSED"
    assert not err.value.same_bytes
    assert err.value.stored_sha256 == first.sha256


def test_replay_checked_only_after_signature(world: Any, kit: Any) -> None:
    """A forged envelope reusing a processed id fails ENV-7, not ENV-10 (ids cannot be burnt or probed)."""
    guard = MemoryReplayGuard()
    sealed = _seal(world, kit)
    opened = _open(world, sealed.data, kit.T0, replay=guard)
    guard.remember(opened.header, opened.sha256)
    attacker = make_generation("VN").signing_private
    forged = world.forge(signer=attacker, message_id=sealed.message_id.bytes,
                         created_ms=int(kit.T0.timestamp() * 1000))
    with pytest.raises(EnvelopeOpenError) as err:
        _open(world, forged, kit.T0, replay=guard)
    assert err.value.code == "ENV-7 SIGNATURE_INVALID"
    assert not isinstance(err.value, EnvelopeReplayError)


def test_header_type_is_exported(world: Any, kit: Any) -> None:
    assert isinstance(_seal(world, kit).header, EnvelopeHeader)


def test_replace_on_a_parsed_header_re_encodes(world: Any, kit: Any) -> None:
    """dataclasses.replace() must not carry the parsed bytes of the original into a changed header."""
    import dataclasses

    parsed = peek_header(_seal(world, kit).data)
    assert parsed is not None
    changed = dataclasses.replace(parsed, priority=9)
    assert changed.encode() != parsed.encode()
    assert changed.encode()[-1] == 9


def test_naive_clock_is_a_programming_error(world: Any, kit: Any) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _seal(world, kit, now=kit.T0.replace(tzinfo=None))
    with pytest.raises(ValueError, match="timezone-aware"):
        _open(world, _seal(world, kit).data, kit.T0.replace(tzinfo=None))
