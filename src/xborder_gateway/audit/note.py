"""C2SP signed notes (https://c2sp.org/signed-note) and tlog checkpoints (https://c2sp.org/tlog-checkpoint).

Pure functions over text; Ed25519 from ``cryptography``.

* verifier key text: ``<name>+<hex(key hash)>+<base64(0x01 || public key)>``
* key hash: the first 4 bytes of ``SHA-256(name || 0x0A || 0x01 || public key)``
* signed note: ``text`` (UTF-8, ends in ``\\n``), one empty line, then one line per signature
  ``— <name> <base64(key hash || signature)>\\n`` where the signature is over ``text`` exactly.
* checkpoint text: ``<origin>\\n<tree size, decimal>\\n<base64(root hash)>\\n`` then optional
  extension lines.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Final, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from xborder_gateway.audit.merkle import HASH_SIZE
from xborder_gateway.errors import AuditIntegrityError

if TYPE_CHECKING:
    from xborder_gateway.signing import Signer

__all__ = [
    "ALG_ED25519",
    "Checkpoint",
    "NoteSigner",
    "NoteVerifier",
    "open_note",
    "sign_note",
]

ALG_ED25519: Final = 0x01
SIG_PREFIX: Final = "\u2014 "  # em dash + space
MAX_NOTE_BYTES: Final = 64 * 1024  # NOTE-6: bound what we parse
MAX_SIGNATURES: Final = 100

_NAME = re.compile(r"^[^\s+]+$")
_B64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,19})$")


def _b64decode(text: str) -> bytes:
    if not _B64.fullmatch(text) or len(text) % 4:
        raise ValueError("not standard padded base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from exc
    if base64.b64encode(raw).decode("ascii") != text:  # canonical encodings only
        raise ValueError("non-canonical base64")
    return raw


def key_hash(name: str, alg: int, public_raw: bytes) -> bytes:
    """A signed-note key hash: ``SHA-256(name || 0x0A || alg || public key)[:4]`` (alg 0x01 Ed25519 notes,
    0x04 cosignature/v1)."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public_raw).digest()[:4]


def format_vkey(name: str, alg: int, public_raw: bytes) -> str:
    """``<name>+<hex(key hash)>+<base64(alg || public key)>``."""
    encoded = base64.b64encode(bytes([alg]) + public_raw).decode("ascii")
    return f"{name}+{key_hash(name, alg, public_raw).hex()}+{encoded}"


def parse_vkey(vkey: str, alg: int, kind: str) -> tuple[str, bytes]:
    """Parse a verifier key of algorithm ``alg`` into (name, 32-byte public key), checking the key hash
    (NOTE-1); ``kind`` names the algorithm in the error ("an Ed25519 (type 0x01)")."""
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise AuditIntegrityError("a verifier key is <name>+<hex hash>+<base64 key>", code="NOTE_KEY_INVALID")
    name, hash_hex, b64 = parts
    _check_name(name)
    try:
        if not re.fullmatch(r"[0-9a-f]{8}", hash_hex):
            raise ValueError("key hash is not 8 lowercase hex digits")
        raw = _b64decode(b64)
    except ValueError as exc:
        raise AuditIntegrityError(f"malformed verifier key: {exc}", code="NOTE_KEY_INVALID") from exc
    if len(raw) != 33 or raw[0] != alg:
        raise AuditIntegrityError(f"verifier key is not {kind} key", code="NOTE_KEY_INVALID")
    if key_hash(name, alg, raw[1:]).hex() != hash_hex:
        raise AuditIntegrityError("verifier key hash does not match its name and key", code="NOTE_KEY_INVALID")
    return name, raw[1:]


def _check_public_key(public_raw: bytes) -> None:
    if len(public_raw) != 32:
        raise AuditIntegrityError("an Ed25519 public key is 32 bytes", code="NOTE_KEY_INVALID")


def _check_name(name: str) -> None:
    if not name or not _NAME.fullmatch(name) or not name.isprintable():
        raise AuditIntegrityError(f"invalid key name {name!r}", code="NOTE_KEY_INVALID",
                                  hint="a key name is non-empty text without spaces or '+'")


@dataclass(frozen=True)
class NamedKey:
    """A named Ed25519 public key of one signed-note algorithm (``ALG``): its key hash, its verifier-key text
    and the parsing of that text. :class:`NoteVerifier` (0x01) and ``CosignatureVerifier`` (0x04) add how
    they verify."""

    ALG: ClassVar[int]
    KIND: ClassVar[str]

    name: str
    public_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_public_key(self.public_key)

    @property
    def key_hash(self) -> bytes:
        return key_hash(self.name, self.ALG, self.public_key)

    def __str__(self) -> str:
        return format_vkey(self.name, self.ALG, self.public_key)

    @classmethod
    def parse(cls, vkey: str) -> Self:
        """Parse ``<name>+<hash>+<base64(ALG || key)>`` and check that the hash matches (NOTE-1)."""
        return cls(*parse_vkey(vkey, cls.ALG, cls.KIND))


@dataclass(frozen=True)
class NoteVerifier(NamedKey):
    """A named Ed25519 public key that verifies note signatures."""

    ALG: ClassVar[int] = ALG_ED25519
    KIND: ClassVar[str] = "an Ed25519 (type 0x01)"

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class NoteSigner:
    """A named Ed25519 private key that signs notes (in software, or any ``Signer`` such as a PKCS#11 key)."""

    name: str
    private_key: Ed25519PrivateKey | Signer = field(repr=False)

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def verifier(self) -> NoteVerifier:
        raw = self.private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return NoteVerifier(self.name, raw)

    def signature_line(self, text: str) -> str:
        sig = self.private_key.sign(text.encode("utf-8"))
        return f"{SIG_PREFIX}{self.name} {base64.b64encode(self.verifier.key_hash + sig).decode('ascii')}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise AuditIntegrityError("note text must end with a newline", code="NOTE_MALFORMED")
    if any((ord(c) < 0x20 and c != "\n") or ord(c) == 0x7F for c in text):
        raise AuditIntegrityError("note text holds control characters", code="NOTE_MALFORMED")


def sign_note(text: str, signer: NoteSigner) -> str:
    """A signed note: ``text``, a blank line, and ``signer``'s signature line."""
    _check_text(text)
    if "\n\n" in text:
        raise AuditIntegrityError("note text must not contain an empty line", code="NOTE_MALFORMED")
    return text + "\n" + signer.signature_line(text)


def open_note(note: str | bytes, verifier: NoteVerifier) -> str:
    """Return the note's text if it carries a valid signature by ``verifier``; raise otherwise.

    Signatures by other keys are ignored (C2SP signed-note: unknown signers are skipped), a signature
    line with this key's name and hash that does not verify rejects the note (NOTE-3).
    """
    raw = note.encode("utf-8") if isinstance(note, str) else note
    if len(raw) > MAX_NOTE_BYTES:
        raise AuditIntegrityError("note is too large", code="NOTE_MALFORMED")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AuditIntegrityError("note is not UTF-8", code="NOTE_MALFORMED") from exc
    split = decoded.rfind("\n\n")
    if split < 0 or not decoded.endswith("\n"):
        raise AuditIntegrityError("note has no signature block", code="NOTE_MALFORMED")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    _check_text(text)
    lines = block.split("\n")[:-1]
    if not lines or len(lines) > MAX_SIGNATURES:
        raise AuditIntegrityError("note has no (or too many) signature lines", code="NOTE_MALFORMED")
    found = False
    for line in lines:
        if not line.startswith(SIG_PREFIX):
            raise AuditIntegrityError("malformed signature line", code="NOTE_MALFORMED")
        parts = line[len(SIG_PREFIX) :].split(" ")
        if len(parts) != 2 or not parts[0]:
            raise AuditIntegrityError("malformed signature line", code="NOTE_MALFORMED")
        name, b64 = parts
        try:
            blob = _b64decode(b64)
        except ValueError as exc:
            raise AuditIntegrityError(f"malformed signature: {exc}", code="NOTE_MALFORMED") from exc
        if len(blob) < 5:
            raise AuditIntegrityError("signature too short", code="NOTE_MALFORMED")
        if name != verifier.name or blob[:4] != verifier.key_hash:
            continue  # another signer's signature: not ours to judge
        # NOTE-3: a signature claiming to be from our key must verify.
        if len(blob) != 4 + 64 or not verifier.verify(text.encode("utf-8"), blob[4:]):
            raise AuditIntegrityError(f"signature by {verifier.name} does not verify", code="NOTE_SIGNATURE_INVALID",
                                      hint="the checkpoint was altered or signed by another key")
        found = True
    if not found:
        raise AuditIntegrityError(f"note is not signed by {verifier.name}+{verifier.key_hash.hex()}",
                                  code="NOTE_UNKNOWN_SIGNER",
                                  hint="check that you trust the right verifier key (xborder audit key)")
    return text


@dataclass(frozen=True)
class Checkpoint:
    """A C2SP tlog checkpoint body."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def to_text(self) -> str:
        ext = "".join(f"{line}\n" for line in self.extensions)
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode('ascii')}\n{ext}"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body (the text of a verified note) strictly (CP-1)."""
        if not text.endswith("\n"):
            raise AuditIntegrityError("checkpoint must end with a newline", code="CHECKPOINT_MALFORMED")
        lines = text[:-1].split("\n")
        if len(lines) < 3 or not lines[0] or any(not line for line in lines[3:]):
            raise AuditIntegrityError("checkpoint needs origin, size and root lines", code="CHECKPOINT_MALFORMED")
        if not _DECIMAL.fullmatch(lines[1]):
            raise AuditIntegrityError("checkpoint size is not a decimal number", code="CHECKPOINT_MALFORMED")
        try:
            root = _b64decode(lines[2])
        except ValueError as exc:
            raise AuditIntegrityError(f"checkpoint root: {exc}", code="CHECKPOINT_MALFORMED") from exc
        if len(root) != HASH_SIZE:
            raise AuditIntegrityError("checkpoint root is not a SHA-256 hash", code="CHECKPOINT_MALFORMED")
        return cls(lines[0], int(lines[1]), root, tuple(lines[3:]))

    @classmethod
    def open(cls, note: str | bytes, verifier: NoteVerifier, *, origin: str | None = None) -> Checkpoint:
        """Verify a signed checkpoint note and parse it; check the origin when given (CP-2)."""
        cp = cls.parse(open_note(note, verifier))
        expected = origin if origin is not None else verifier.name
        if cp.origin != expected:
            raise AuditIntegrityError(f"checkpoint origin {cp.origin!r} is not {expected!r}",
                                      code="CHECKPOINT_ORIGIN", hint="this checkpoint belongs to another log")
        return cp
