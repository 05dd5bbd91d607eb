"""Tamper-evident audit log of the exchange (issue 6).

Each authority (VN, CN) keeps its own append-only log of :class:`AuditEvent` entries in an RFC 9162
Merkle tree, with C2SP signed checkpoints, inclusion and consistency proofs, offline proof bundles,
an auditor CLI (``xborder audit …``) and a read-only HTTP API. Format: ``docs/audit.md``.

    log = AuditLog.open(settings, "VN")
    indexes = log.append([AuditEvent(...), ...])   # one transaction; durable when it returns
"""

from xborder_gateway.audit.bundle import BundleResult, verify_bundle
from xborder_gateway.audit.cosignature import CosignatureSigner, CosignatureVerifier
from xborder_gateway.audit.errors import AuditNotFoundError, AuditVerificationError
from xborder_gateway.audit.events import AuditEvent, EventType
from xborder_gateway.audit.log import (
    AuditConfig,
    AuditLog,
    ConsistencyProof,
    InclusionProof,
    LogEntry,
    SignedCheckpoint,
    VerifyReport,
    WitnessReport,
)
from xborder_gateway.audit.note import Checkpoint, NoteSigner, NoteVerifier
from xborder_gateway.audit.witness import Alarm, Conflict, Cosigned, Refused, Witness, WitnessStore

__all__ = [
    "Alarm",
    "AuditConfig",
    "AuditEvent",
    "AuditLog",
    "AuditNotFoundError",
    "AuditVerificationError",
    "BundleResult",
    "Checkpoint",
    "Conflict",
    "ConsistencyProof",
    "CosignatureSigner",
    "CosignatureVerifier",
    "Cosigned",
    "EventType",
    "InclusionProof",
    "LogEntry",
    "NoteSigner",
    "NoteVerifier",
    "Refused",
    "SignedCheckpoint",
    "VerifyReport",
    "Witness",
    "WitnessReport",
    "WitnessStore",
    "verify_bundle",
]
