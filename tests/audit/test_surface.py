"""The audit package's public surface is the intended one; the async wrapper appends durably."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xborder_gateway import audit
from xborder_gateway.audit import AuditLog
from xborder_gateway.config import Settings


def test_public_surface() -> None:
    assert sorted(audit.__all__) == sorted([
        "AuditConfig", "AuditEvent", "AuditLog", "AuditNotFoundError", "AuditVerificationError", "BundleResult",
        "Checkpoint", "ConsistencyProof", "EventType", "InclusionProof", "LogEntry", "NoteSigner", "NoteVerifier",
        "SignedCheckpoint", "VerifyReport", "verify_bundle",
        # issue 12: witness cosignatures
        "Alarm", "Conflict", "CosignatureSigner", "CosignatureVerifier", "Cosigned", "Refused", "Witness",
        "WitnessReport", "WitnessStore",
    ])
    for name in audit.__all__:
        assert hasattr(audit, name), name


async def test_append_async_from_a_connector_loop(tmp_path: Path, make_event: Any) -> None:
    settings = Settings(home=tmp_path, audit_url=None)
    with AuditLog.open(settings, "VN") as log:
        first = await log.append_async([make_event(i) for i in range(5)])
        second = await log.append_async([make_event(i) for i in range(5, 8)])
        assert (first, second) == ([0, 1, 2, 3, 4], [5, 6, 7])
    with AuditLog.open(settings, "VN", read_only=True) as reopened:
        assert reopened.size() == 8
        assert reopened.verify().size == 8
