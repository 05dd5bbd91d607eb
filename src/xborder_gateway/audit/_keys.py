"""The per-authority checkpoint signing key (Ed25519) under ``<home>/audit/`` (ADR 0301)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from xborder_gateway.audit.cosignature import CosignatureSigner, CosignatureVerifier
from xborder_gateway.audit.note import NoteSigner, NoteVerifier
from xborder_gateway.config import Settings
from xborder_gateway.errors import AuditIntegrityError, ConfigError

__all__ = [
    "counterpart_witness_path",
    "key_paths",
    "load_counterpart_witness",
    "load_or_create_signer",
    "load_or_create_witness_signer",
    "load_verifier",
    "origin_for",
    "witness_key_paths",
    "witness_name",
]


def origin_for(settings: Settings, authority: str) -> str:
    return f"{settings.audit_origin}/{authority.lower()}"


def key_paths(settings: Settings, authority: str) -> tuple[Path, Path]:
    base = settings.home / "audit"
    return base / f"{authority.lower()}.note-key.pem", base / f"{authority.lower()}.vkey"


def _private_pem(key: Ed25519PrivateKey, settings: Settings) -> bytes:
    """PKCS#8 PEM; with a passphrase, PBES2/scrypt as the envelope keystore writes it (ADR 0201, ADR 0301)."""
    if settings.key_passphrase:
        from xborder_gateway.envelope._pkcs8 import encrypt_private_key_pem

        return encrypt_private_key_pem(key, settings.key_passphrase.encode("utf-8"))
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_new(path: Path, data: bytes, mode: int) -> bool:
    """Create ``path`` atomically with ``data``; False if another process created it first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # fails if it exists: the first writer wins
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def load_or_create_signer(settings: Settings, authority: str) -> NoteSigner:
    """Load the authority's note signing key, creating it (0600) on first use."""
    key_file, vkey_file = key_paths(settings, authority)
    name = origin_for(settings, authority)
    if not key_file.exists():
        key = Ed25519PrivateKey.generate()
        _write_new(key_file, _private_pem(key, settings), 0o600)
    try:
        data = key_file.read_bytes()
        password = settings.key_passphrase.encode("utf-8") if settings.key_passphrase else None
        loaded = serialization.load_pem_private_key(data, password=password)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot load the audit signing key {key_file}: {exc}", code="AUDIT_KEY_UNREADABLE",
                          hint="set XBG_KEY_PASSPHRASE to the passphrase the key was created with") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ConfigError(f"{key_file} is not an Ed25519 key", code="AUDIT_KEY_UNREADABLE")
    signer = NoteSigner(name, loaded)
    vkey = str(signer.verifier) + "\n"
    if not vkey_file.exists():
        _write_new(vkey_file, vkey.encode("ascii"), 0o644)
    elif vkey_file.read_text(encoding="ascii") != vkey:
        raise AuditIntegrityError(f"{vkey_file} does not match the signing key {key_file}",
                                  code="AUDIT_KEY_MISMATCH", hint="restore the original key files")
    return signer


def load_verifier(settings: Settings, authority: str) -> NoteVerifier | None:
    """The published verifier key of the authority's log, if the log has one yet."""
    _, vkey_file = key_paths(settings, authority)
    if not vkey_file.exists():
        return None
    return NoteVerifier.parse(vkey_file.read_text(encoding="ascii"))


# --- the witness (issue 12): this site's cosigning key, and the counterpart witness's verifier key ----
def witness_name(settings: Settings, authority: str) -> str:
    """The key name of the witness run by ``authority`` (it witnesses the other authority's log)."""
    return f"{settings.audit_origin}/witness/{authority.lower()}"


def witness_key_paths(settings: Settings, authority: str) -> tuple[Path, Path]:
    base = settings.home / "audit"
    return base / f"witness-{authority.lower()}.cosign-key.pem", base / f"witness-{authority.lower()}.vkey"


def load_or_create_witness_signer(settings: Settings, authority: str) -> CosignatureSigner:
    """Load the cosigning key of the witness run by ``authority``, creating it (0600) on first use.

    Same passphrase rule as the checkpoint key; the verifier key (type 0x04) is written beside it
    for the trust bundle the authorities exchange."""
    key_file, vkey_file = witness_key_paths(settings, authority)
    if not key_file.exists():
        _write_new(key_file, _private_pem(Ed25519PrivateKey.generate(), settings), 0o600)
    try:
        password = settings.key_passphrase.encode("utf-8") if settings.key_passphrase else None
        loaded = serialization.load_pem_private_key(key_file.read_bytes(), password=password)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot load the witness key {key_file}: {exc}", code="AUDIT_KEY_UNREADABLE",
                          hint="set XBG_KEY_PASSPHRASE to the passphrase the key was created with") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ConfigError(f"{key_file} is not an Ed25519 key", code="AUDIT_KEY_UNREADABLE")
    signer = CosignatureSigner(witness_name(settings, authority), loaded)
    vkey = str(signer.verifier) + "\n"
    if not vkey_file.exists():
        _write_new(vkey_file, vkey.encode("ascii"), 0o644)
    elif vkey_file.read_text(encoding="ascii") != vkey:
        raise AuditIntegrityError(f"{vkey_file} does not match the witness key {key_file}",
                                  code="AUDIT_KEY_MISMATCH", hint="restore the original key files")
    return signer


def counterpart_witness_path(settings: Settings, authority: str) -> Path:
    """Where the verifier key of the witness that cosigns ``authority``'s log is kept."""
    return settings.home / "audit" / f"{authority.lower()}.witness.vkey"


def load_counterpart_witness(settings: Settings, authority: str) -> CosignatureVerifier | None:
    path = counterpart_witness_path(settings, authority)
    if not path.exists():
        return None
    return CosignatureVerifier.parse(path.read_text(encoding="ascii"))


# --- checkpoint key rotation (ADR 0303) ---------------------------------------------------------
def _next_path(settings: Settings, authority: str) -> Path:
    key_file, _ = key_paths(settings, authority)
    return key_file.with_name(key_file.name.replace(".note-key.pem", ".note-key.next.pem"))


def stage_next_key(settings: Settings, authority: str, key: Ed25519PrivateKey) -> None:
    """Write the next key beside the current one (0600) before the log announces it (KEY-3)."""
    path = _next_path(settings, authority)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    if not _write_new(path, _private_pem(key, settings), 0o600):
        raise ConfigError(f"{path} appeared while staging", code="AUDIT_KEY_ROTATION")


def install_rotated_key(settings: Settings, authority: str, old: NoteSigner, new: NoteSigner) -> None:
    """After the announcement committed: keep the old key as retired, make the staged key current."""
    key_file, vkey_file = key_paths(settings, authority)
    retired = key_file.with_name(key_file.name.replace(".note-key.pem",
                                                      f".note-key.retired-{old.verifier.key_hash.hex()}.pem"))
    with contextlib.suppress(FileExistsError):
        os.link(key_file, retired)
    os.replace(_next_path(settings, authority), key_file)
    tmp = vkey_file.with_suffix(".vkey.tmp")
    tmp.write_text(str(new.verifier) + "\n", encoding="ascii")
    os.replace(tmp, vkey_file)


def finish_staged_rotation(settings: Settings, authority: str, announced: NoteVerifier) -> NoteSigner | None:
    """Complete a rotation whose key swap was interrupted: if the staged key is ``announced``, install it."""
    path = _next_path(settings, authority)
    if not path.exists():
        return None
    try:
        password = settings.key_passphrase.encode("utf-8") if settings.key_passphrase else None
        key = serialization.load_pem_private_key(path.read_bytes(), password=password)
    except (TypeError, ValueError):
        return None
    if not isinstance(key, Ed25519PrivateKey):
        return None
    staged = NoteSigner(announced.name, key)
    if staged.verifier != announced:
        return None
    key_file, _ = key_paths(settings, authority)
    old = serialization.load_pem_private_key(key_file.read_bytes(), password=password)
    if not isinstance(old, Ed25519PrivateKey):
        return None
    install_rotated_key(settings, authority, NoteSigner(announced.name, old), staged)
    return staged
