"""Offline proof bundles: one entry, its inclusion proof, the signed checkpoint and the verifier key.

:func:`verify_bundle` needs no database: it checks the entry's canonical encoding, recomputes its leaf
hash, opens the checkpoint with the verifier key (preferably one the auditor obtained independently),
and verifies the RFC 9162 inclusion proof against the checkpoint's root. Format: ``docs/audit.md`` §6.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from xborder_gateway.audit import merkle
from xborder_gateway.audit.events import AuditEvent
from xborder_gateway.audit.note import Checkpoint, NoteVerifier
from xborder_gateway.errors import AuditIntegrityError

__all__ = ["BUNDLE_FORMAT", "MAX_BUNDLE_BYTES", "BundleResult", "verify_bundle"]

BUNDLE_FORMAT: Final = "xborder-audit-bundle/v1"
MAX_BUNDLE_BYTES: Final = 256 * 1024  # BND-1: bound what we parse
_HEX32 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class BundleResult:
    index: int
    event: AuditEvent
    checkpoint: Checkpoint
    verifier_key: str
    key_trusted: bool
    cosigned_at: int | None = None  # with witness_key: the witness's cosignature time (POSIX seconds)


def _fail(message: str, code: str = "BUNDLE_INVALID") -> AuditIntegrityError:
    return AuditIntegrityError(message, code=code)


def _hex32(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not _HEX32.fullmatch(value):
        raise _fail(f"{what} is not a 64-digit lowercase hex hash")
    return bytes.fromhex(value)


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _fail(f"{what} is not a non-negative integer")
    return value


def verify_bundle(  # noqa: PLR0912 - one linear checklist, each step a named failure
    data: bytes | str | dict[str, Any], trusted_key: str | None = None, witness_key: str | None = None
) -> BundleResult:
    """Verify a bundle; raise :class:`AuditIntegrityError` saying what failed.

    With ``trusted_key`` the checkpoint must be signed by that key (BND-2); without it the bundle's
    own key is used and the result says ``key_trusted=False``: the caller must compare that key with
    the published one. With ``witness_key`` (a cosignature/v1 key) the checkpoint must also carry a
    valid cosignature by that witness (BND-4).
    """
    if isinstance(data, dict):
        obj: Any = data
    else:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        if len(raw) > MAX_BUNDLE_BYTES:
            raise _fail("bundle is too large")
        try:
            obj = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise _fail(f"bundle is not JSON: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("format") != BUNDLE_FORMAT:
        raise _fail(f"not a {BUNDLE_FORMAT} bundle")
    entry_obj, proof_obj = obj.get("entry"), obj.get("inclusion_proof")
    note, key_text = obj.get("checkpoint"), obj.get("verifier_key")
    if not (isinstance(entry_obj, dict) and isinstance(proof_obj, dict) and isinstance(note, str)
            and isinstance(key_text, str)):
        raise _fail("bundle lacks entry, inclusion_proof, checkpoint or verifier_key")
    try:
        entry = base64.b64decode(entry_obj.get("entry_b64", ""), validate=True)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise _fail("entry_b64 is not base64") from exc
    event = AuditEvent.from_canonical(entry)  # BND-3: only canonical entries
    if event.canonical_dict() != entry_obj.get("entry"):
        raise _fail("the readable entry differs from the hashed entry bytes")
    leaf = merkle.leaf_hash(entry)
    claimed = (_hex32(entry_obj.get("leaf_hash"), "leaf_hash"), _hex32(proof_obj.get("leaf_hash"), "proof leaf"))
    if claimed != (leaf, leaf):
        raise _fail("the leaf hash does not match the entry", code="BUNDLE_LEAF_MISMATCH")
    index = _int(entry_obj.get("index"), "index")
    if _int(proof_obj.get("leaf_index"), "leaf_index") != index:
        raise _fail("the proof is for another entry")
    size = _int(proof_obj.get("tree_size"), "tree_size")
    hashes_obj = proof_obj.get("hashes")
    if not isinstance(hashes_obj, list) or len(hashes_obj) > 64:
        raise _fail("proof hashes are not a list of at most 64 hashes")
    hashes = [_hex32(h, "proof hash") for h in hashes_obj]
    bundled_key = NoteVerifier.parse(key_text)
    verifier = NoteVerifier.parse(trusted_key) if trusted_key else bundled_key
    checkpoint = Checkpoint.open(note, verifier)
    if checkpoint.size != size:
        raise _fail(f"the proof is for size {size}, the checkpoint for {checkpoint.size}")
    if not merkle.verify_inclusion(leaf, index, size, hashes, checkpoint.root):
        raise _fail("the inclusion proof does not lead to the checkpoint's root", code="BUNDLE_PROOF_INVALID")
    cosigned_at = None
    if witness_key is not None:
        from xborder_gateway.audit.cosignature import CosignatureVerifier, verify_cosignature

        cosigned_at = verify_cosignature(note, CosignatureVerifier.parse(witness_key)).timestamp
    return BundleResult(index, event, checkpoint, str(verifier), key_trusted=trusted_key is not None,
                        cosigned_at=cosigned_at)
