"""Hostile bytes never crash the opener: only EnvelopeOpenError, with an ENV code (property tests)."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xborder_gateway.envelope as envelope_pkg
from xborder_gateway.envelope import EnvelopeOpenError, open_envelope, seal

CODE = re.compile(r"ENV-(1|2|3|4|5|6|7|8|9|10) [A-Z_]+")


def _refused(world: Any, kit: Any, data: bytes) -> str:
    try:
        open_envelope(data, me=world.cn, trust=world.cn_trust, replay=None, now=kit.T0)
    except EnvelopeOpenError as exc:
        digest = exc.envelope_sha256
        code = exc.code
    else:
        return "OPENED"
    assert digest is not None
    return code


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600))
def test_random_bytes(world: Any, kit: Any, data: bytes) -> None:
    assert CODE.fullmatch(_refused(world, kit, data))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=4),
       cut=st.integers(0, 10_000), tail=st.binary(max_size=40))
def test_mutated_envelopes(world: Any, kit: Any, edits: list[tuple[int, int]], cut: int, tail: bytes) -> None:
    base = seal(kit.avro_payload(), sender=world.vn, recipient="CN", trust=world.vn_trust, document_type="IDA",
                schema_fingerprint=kit.FP, now=kit.T0).data
    data = bytearray(base)
    for offset, mask in edits:
        data[offset % len(data)] ^= mask
    mutated = bytes(data[: max(cut % (len(data) + 1), 0)] if cut < len(data) else data) + tail
    result = _refused(world, kit, mutated)
    if mutated == base:
        assert result == "OPENED"
    else:
        assert CODE.fullmatch(result), result


def test_public_surface() -> None:
    """The package exports exactly what docs and connectors use (httpx-style check)."""
    assert sorted(envelope_pkg.__all__) == sorted(
        name for name in dir(envelope_pkg) if not name.startswith("_") and name not in {"annotations"}
    )
    for name in ("seal", "open_envelope", "LocalAuthority", "TrustStore", "SqliteReplayStore", "ReplayGuard",
                 "EnvelopeOpenError", "EnvelopeReplayError", "make_receipt", "seal_receipt", "open_receipt",
                 "init_authority", "export_bundle", "import_bundle", "rotate", "list_keys", "resolve_passphrase"):
        assert name in envelope_pkg.__all__
