"""The per-authority checkpoint signing key (Ed25519) under ``<home>/audit/`` (ADR 0301)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from xborder_gateway import _private
from xborder_gateway.audit.cosignature import CosignatureSigner, CosignatureVerifier
from xborder_gateway.audit.note import NoteSigner, NoteVerifier
from xborder_gateway.config import Settings
from xborder_gateway.errors import AuditIntegrityError, ConfigError
from xborder_gateway.signing import Signer

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
    insecure = settings.key_insecure_no_passphrase
    passphrase = _private.resolve_passphrase(settings, required=not insecure)
    if not key_file.exists():
        pem = _private.private_key_pem(Ed25519PrivateKey.generate(), passphrase, insecure_no_passphrase=insecure)
        _private.write_private(key_file, pem, exclusive=True)
    loaded = _private.load_private_key(key_file, passphrase, what="witness cosigning key",
                                       insecure_no_passphrase=insecure)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ConfigError(f"{key_file} is not an Ed25519 key", code="AUDIT_KEY_UNREADABLE")
    signer = CosignatureSigner(witness_name(settings, authority), loaded)
    vkey = str(signer.verifier) + "\n"
    if not vkey_file.exists():
        _private.write_private(vkey_file, vkey.encode("ascii"), exclusive=True)
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
    insecure = settings.key_insecure_no_passphrase
    pem = _private.private_key_pem(key, _private.resolve_passphrase(settings, required=not insecure),
                                   insecure_no_passphrase=insecure)
    if not _private.write_private(path, pem, exclusive=True):
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
    _private.write_private(tmp, (str(new.verifier) + "\n").encode("ascii"))
    os.replace(tmp, vkey_file)


def finish_staged_rotation(settings: Settings, authority: str, announced: NoteVerifier) -> NoteSigner | None:
    """Complete a rotation whose key swap was interrupted: if the staged key is ``announced``, install it."""
    path = _next_path(settings, authority)
    if not path.exists():
        return None
    insecure = settings.key_insecure_no_passphrase
    passphrase = _private.resolve_passphrase(settings, required=not insecure)
    try:
        key = _private.load_private_key(path, passphrase, what="staged checkpoint key",
                                        insecure_no_passphrase=insecure)
    except ConfigError:
        return None
    if not isinstance(key, Ed25519PrivateKey):
        return None
    staged = NoteSigner(announced.name, key)
    if staged.verifier != announced:
        return None
    key_file, _ = key_paths(settings, authority)
    old = _private.load_private_key(key_file, passphrase, what="audit checkpoint key",
                                    insecure_no_passphrase=insecure)
    if not isinstance(old, Ed25519PrivateKey):
        return None
    install_rotated_key(settings, authority, NoteSigner(announced.name, old), staged)
    return staged
