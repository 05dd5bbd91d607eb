"""The per-authority checkpoint signing key (Ed25519) under ``<home>/audit/`` (ADR 0301)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from xborder_gateway import _private
from xborder_gateway.audit.note import NoteSigner, NoteVerifier
from xborder_gateway.config import Settings
from xborder_gateway.errors import AuditIntegrityError, ConfigError
from xborder_gateway.signing import Signer

__all__ = ["key_paths", "load_or_create_signer", "load_verifier", "origin_for"]


def origin_for(settings: Settings, authority: str) -> str:
    return f"{settings.audit_origin}/{authority.lower()}"


def key_paths(settings: Settings, authority: str) -> tuple[Path, Path]:
    base = settings.home / "audit"
    return base / f"{authority.lower()}.note-key.pem", base / f"{authority.lower()}.vkey"


def load_or_create_signer(settings: Settings, authority: str, passphrase: bytes | None = None) -> NoteSigner:
    """Load the authority's note signing key, creating it (0600) on first use.

    The key is encrypted with the home's one passphrase source (``--passphrase-file`` folded into
    ``settings.key_passphrase_file``, else ``XBG_KEY_PASSPHRASE``; issue 9 item 5), or ``passphrase`` if given;
    it is written in the clear only with ``XBG_KEY_INSECURE_NO_PASSPHRASE``.
    """
    key_file, vkey_file = key_paths(settings, authority)
    name = origin_for(settings, authority)
    if settings.hsm_token is not None:  # the home keeps its signing keys in a PKCS#11 token (issue 13 item 3)
        return _checked(NoteSigner(name, _hsm_signer(settings, authority)), vkey_file, key_file)
    insecure = settings.key_insecure_no_passphrase
    if passphrase is None:
        passphrase = _private.resolve_passphrase(settings, required=not insecure)
    if not key_file.exists():
        pem = _private.private_key_pem(Ed25519PrivateKey.generate(), passphrase, insecure_no_passphrase=insecure)
        _private.write_private(key_file, pem, exclusive=True)  # the first writer wins
    # KEYS_PASSPHRASE / KEYS_CORRUPT / KEYS_UNENCRYPTED, the same codes as the envelope keys
    loaded = _private.load_private_key(key_file, passphrase, what="audit checkpoint key",
                                       insecure_no_passphrase=insecure)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ConfigError(f"{key_file} is not an Ed25519 key", code="AUDIT_KEY_UNREADABLE")
    return _checked(NoteSigner(name, loaded), vkey_file, key_file)


def _hsm_signer(settings: Settings, authority: str) -> Signer:
    """The checkpoint key in the token, labelled ``xbg-audit-<authority>``; generated there on first use."""
    from xborder_gateway.signing import HsmConfig, HsmError, generate_hsm_key, load_hsm_signer

    cfg = HsmConfig.from_settings(settings)
    label = f"xbg-audit-{authority.lower()}"
    lock = _private.private_dir(settings.home / "audit") / f".{authority.lower()}.hsm-key.lock"
    # connectors start together: one process at a time may find-or-create the key, so the label stays unique
    with os.fdopen(os.open(lock, os.O_RDWR | os.O_CREAT, 0o600), "r+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            return load_hsm_signer(cfg, label)
        except HsmError as exc:
            if exc.code != "HSM_KEY_MISSING":
                raise
        return generate_hsm_key(cfg, label)


def _checked(signer: NoteSigner, vkey_file: Path, key_file: Path) -> NoteSigner:
    vkey = str(signer.verifier) + "\n"
    if not vkey_file.exists():
        _private.write_private(vkey_file, vkey.encode("ascii"), exclusive=True)
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
