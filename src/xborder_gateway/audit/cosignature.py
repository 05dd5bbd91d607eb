"""C2SP ``cosignature/v1`` (https://c2sp.org/tlog-cosignature), Ed25519: sign and verify.

* verifier key text: ``<name>+<hex(key id)>+<base64(0x04 || 32-byte public key)>`` (signed-note vkey, type 0x04)
* key id: ``SHA-256(name || 0x0A || 0x04 || public key)[:4]``
* signature line: ``— <name> base64(key id || u64 big-endian timestamp || Ed25519 signature)``
* signed message: ``cosignature/v1\\n`` ``time <timestamp>\\n`` then the whole checkpoint body (the note text,
  extension lines included, final newline included, no signature lines)

A cosignature says: as of ``timestamp`` (POSIX seconds), the largest consistent tree the cosigner has
seen for this origin has this root (COSIG-1). Pure functions over text; keys from ``cryptography``.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field
from typing import ClassVar, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from xborder_gateway.audit.note import (
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    SIG_PREFIX,
    NamedKey,
    _b64decode,
    _check_name,
    _check_text,
)
from xborder_gateway.errors import AuditIntegrityError

__all__ = [
    "ALG_COSIGNATURE_V1",
    "Cosignature",
    "CosignatureSigner",
    "CosignatureVerifier",
    "add_signature_lines",
    "split_note",
    "verify_cosignature",
]

ALG_COSIGNATURE_V1: Final = 0x04
MAX_TIMESTAMP: Final = 2**63 - 1  # COSIG-2: the spec's bound
_HEADER: Final = "cosignature/v1\n"


def signed_message(checkpoint_text: str, timestamp: int) -> bytes:
    """The bytes a cosignature/v1 signs (COSIG-1)."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise AuditIntegrityError("cosignature timestamp out of range", code="COSIGNATURE_MALFORMED")
    return f"{_HEADER}time {timestamp}\n{checkpoint_text}".encode()


@dataclass(frozen=True)
class CosignatureVerifier(NamedKey):
    """A witness's named Ed25519 public key for cosignature/v1."""

    ALG: ClassVar[int] = ALG_COSIGNATURE_V1
    KIND: ClassVar[str] = "a cosignature/v1 (type 0x04)"

    def verify(self, checkpoint_text: str, timestamp: int, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature,
                                                                       signed_message(checkpoint_text, timestamp))
        except (InvalidSignature, ValueError, AuditIntegrityError):
            return False
        return True


@dataclass(frozen=True)
class CosignatureSigner:
    """A witness's named Ed25519 private key."""

    name: str
    private_key: Ed25519PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def verifier(self) -> CosignatureVerifier:
        raw = self.private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return CosignatureVerifier(self.name, raw)

    def cosign(self, checkpoint_text: str, timestamp: int) -> str:
        """The signature line (ending in ``\\n``) cosigning ``checkpoint_text`` at ``timestamp``."""
        _check_text(checkpoint_text)
        sig = self.private_key.sign(signed_message(checkpoint_text, timestamp))
        blob = self.verifier.key_hash + struct.pack(">Q", timestamp) + sig
        return f"{SIG_PREFIX}{self.name} {base64.b64encode(blob).decode('ascii')}\n"


@dataclass(frozen=True)
class Cosignature:
    """A verified cosignature: who, when, and its signature line verbatim."""

    witness: str  # the verifier key text
    timestamp: int
    line: str


def split_note(note: str) -> tuple[str, list[tuple[str, bytes, str]]]:
    """A signed note's text and its signature lines as ``(name, blob, line)``; raises on malformed notes."""
    if len(note.encode("utf-8")) > MAX_NOTE_BYTES:
        raise AuditIntegrityError("note is too large", code="NOTE_MALFORMED")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise AuditIntegrityError("note has no signature block", code="NOTE_MALFORMED")
    text, block = note[: split + 1], note[split + 2 :]
    _check_text(text)
    lines = block.split("\n")[:-1]
    if not lines or len(lines) > MAX_SIGNATURES:
        raise AuditIntegrityError("note has no (or too many) signature lines", code="NOTE_MALFORMED")
    out: list[tuple[str, bytes, str]] = []
    for line in lines:
        parts = line[len(SIG_PREFIX):].split(" ") if line.startswith(SIG_PREFIX) else []
        if len(parts) != 2 or not parts[0]:
            raise AuditIntegrityError("malformed signature line", code="NOTE_MALFORMED")
        try:
            blob = _b64decode(parts[1])
        except ValueError as exc:
            raise AuditIntegrityError(f"malformed signature: {exc}", code="NOTE_MALFORMED") from exc
        if len(blob) < 5:
            raise AuditIntegrityError("signature too short", code="NOTE_MALFORMED")
        out.append((parts[0], blob, line + "\n"))
    return text, out


def verify_cosignature(note: str, verifier: CosignatureVerifier, *, now: int | None = None,
                       max_future_s: int = 300) -> Cosignature:
    """The valid cosignature by ``verifier`` in ``note``; raise if there is none or it does not verify.

    Lines of other keys are skipped (signed-note); a line with this key's name and id that does not
    verify rejects the note (NOTE-3). With ``now``, a timestamp more than ``max_future_s`` ahead is refused.
    """
    text, sigs = split_note(note)
    found: Cosignature | None = None
    for name, blob, line in sigs:
        if name != verifier.name or blob[:4] != verifier.key_hash:
            continue
        if len(blob) != 4 + 8 + 64:
            raise AuditIntegrityError(f"cosignature by {name} has the wrong length", code="COSIGNATURE_INVALID")
        (timestamp,) = struct.unpack(">Q", blob[4:12])
        if timestamp > MAX_TIMESTAMP or not verifier.verify(text, timestamp, blob[12:]):
            raise AuditIntegrityError(f"cosignature by {name} does not verify", code="COSIGNATURE_INVALID",
                                      hint="the checkpoint or the cosignature was altered")
        if now is not None and timestamp > now + max_future_s:
            raise AuditIntegrityError(f"cosignature by {name} is dated in the future", code="COSIGNATURE_INVALID")
        found = Cosignature(str(verifier), timestamp, line)
    if found is None:
        raise AuditIntegrityError(f"no cosignature by {verifier.name}+{verifier.key_hash.hex()}",
                                  code="COSIGNATURE_MISSING")
    return found


def add_signature_lines(note: str, lines: list[str]) -> str:
    """``note`` with extra signature lines appended (each ``— …\\n``), skipping ones already present."""
    _, existing = split_note(note)
    have = {line for _, _, line in existing}
    extra = ""
    for line in lines:
        if not line.startswith(SIG_PREFIX) or not line.endswith("\n") or line.count("\n") != 1:
            raise AuditIntegrityError("malformed signature line", code="NOTE_MALFORMED")
        if line not in have:
            extra += line
            have.add(line)
    split_note(note + extra)  # every added line must parse as a signature line (name, base64 blob)
    return note + extra
