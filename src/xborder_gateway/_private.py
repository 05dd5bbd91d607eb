"""Private files of the home: directories 0700, files 0600, the key passphrase, private key PEM files.

Every place that creates something under the home goes through here (issue 9 items 5-7):

* :func:`private_dir` creates a directory (and any missing parents) with mode 0700 whatever the umask;
* :func:`write_private` creates a file 0600 atomically (temporary file, fsync, rename or link);
* :func:`prepare_sqlite` creates (or tightens) an SQLite database file 0600 before SQLite opens it; SQLite
  gives its ``-wal``/``-shm``/``-journal`` files the database file's mode, so they are 0600 too;
* :func:`resolve_passphrase` is the one passphrase source of every private key (envelope keys, the audit
  checkpoint key): ``--passphrase-file`` > ``XBG_KEY_PASSPHRASE_FILE`` > ``XBG_KEY_PASSPHRASE``;
* :func:`private_key_pem` / :func:`load_private_key` write and read PKCS#8 PEM keys, encrypted unless the
  explicit ``--insecure-no-passphrase`` (``XBG_KEY_INSECURE_NO_PASSPHRASE``) is set, and tell a damaged
  file from a wrong passphrase.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import sqlite3
import stat
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from xborder_gateway.errors import ConfigError

if TYPE_CHECKING:
    from xborder_gateway.config import Settings

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "load_private_key",
    "prepare_sqlite",
    "private_dir",
    "private_key_pem",
    "resolve_passphrase",
    "write_private",
]

DIR_MODE = 0o700
FILE_MODE = 0o600

PrivateKey = Ed25519PrivateKey | X25519PrivateKey


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents with mode 0700 (umask-independent); return it.

    Existing directories are left as they are (an operator's choice for a parent such as ``/srv``).
    """
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # another process created it first: it chose the same mode
        os.chmod(d, DIR_MODE)  # mkdir's mode is masked by the umask
    return path


def write_private(path: Path, data: bytes, *, exclusive: bool = False) -> bool:
    """Write ``data`` to ``path`` with mode 0600, atomically; return False if ``exclusive`` and it existed.

    ``exclusive`` makes the first writer win (``os.link`` fails if the name exists); otherwise the file is
    replaced (``os.replace``).
    """
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
        else:
            os.replace(tmp, path)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def enable_wal(conn: sqlite3.Connection, timeout_s: float = 30.0) -> None:
    """Put the database in WAL mode (persistent in the file).

    Several processes opening a brand-new file at once (the demo starts its connectors together) can get
    SQLITE_BUSY from the journal-mode change without SQLite calling the busy handler (it would deadlock:
    each holds a shared lock and wants the exclusive one), so the change is retried until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def prepare_sqlite(path: Path) -> Path:
    """Make sure the SQLite database ``path`` exists with mode 0600 in a 0700 directory, before connecting.

    SQLite creates ``-wal``, ``-shm`` and ``-journal`` with the database file's permissions, so fixing the
    main file fixes them. An existing file (a home created by an older version) is tightened to 0600.
    """
    private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_IMODE(side.stat().st_mode) != FILE_MODE:
                side.chmod(FILE_MODE)
    return path


# --- the key passphrase ----------------------------------------------------------------------------


def _read_passphrase_file(path: Path, source: str) -> bytes:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read passphrase file {path} ({source}): {exc.strerror or exc}",
                          code="KEYS_NO_PASSPHRASE", hint=f"pass a readable file to {source}") from exc
    lines = text.splitlines()
    return lines[0] if lines else b""


def resolve_passphrase(settings: Settings, passphrase_file: Path | None = None, *,
                       required: bool = True) -> bytes | None:
    """The one passphrase source of every private key of the home.

    ``passphrase_file`` (``--passphrase-file``, first line) if given, else ``settings.key_passphrase_file``
    (``XBG_KEY_PASSPHRASE_FILE``), else ``settings.key_passphrase`` (``XBG_KEY_PASSPHRASE``). With
    ``required=False``, no passphrase at all is ``None`` (the caller then needs the explicit insecure flag).
    """
    if passphrase_file is not None:
        value = _read_passphrase_file(passphrase_file, "--passphrase-file")
    elif settings.key_passphrase_file is not None:
        value = _read_passphrase_file(settings.key_passphrase_file, "XBG_KEY_PASSPHRASE_FILE")
    else:
        value = (settings.key_passphrase or "").encode("utf-8")
    if value:
        return value
    if not required:
        return None
    raise ConfigError("no key passphrase", code="KEYS_NO_PASSPHRASE",
                      hint="pass --passphrase-file FILE (first line is used) or set XBG_KEY_PASSPHRASE_FILE or "
                      "XBG_KEY_PASSPHRASE")


# --- private key files -----------------------------------------------------------------------------


def private_key_pem(key: PrivateKey, passphrase: bytes | None, *, insecure_no_passphrase: bool = False) -> bytes:
    """PKCS#8 PEM of ``key``: encrypted (PBES2/scrypt, ADR 0201) unless explicitly allowed not to be."""
    if passphrase:
        from xborder_gateway.envelope._pkcs8 import encrypt_private_key_pem

        return encrypt_private_key_pem(key, passphrase)
    if not insecure_no_passphrase:  # issue 9 item 5: never an unencrypted key without the explicit flag
        raise ConfigError("no key passphrase: refusing to write an unencrypted private key", code="KEYS_NO_PASSPHRASE",
                          hint="pass --passphrase-file FILE or set XBG_KEY_PASSPHRASE(_FILE); "
                          "--insecure-no-passphrase / XBG_KEY_INSECURE_NO_PASSPHRASE=1 writes it in the clear")
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END ([A-Z0-9 ]+)-----", re.DOTALL)
_KEY_LABELS = (b"ENCRYPTED PRIVATE KEY", b"PRIVATE KEY")


def _der_complete(der: bytes) -> bool:
    """True if ``der`` is exactly one DER SEQUENCE whose length octets match the data (no truncation)."""
    if len(der) < 2 or der[0] != 0x30:
        return False
    first = der[1]
    if first < 0x80:
        return 2 + first == len(der)
    n = first & 0x7F
    if n == 0 or n > 4 or len(der) < 2 + n:
        return False
    return 2 + n + int.from_bytes(der[2 : 2 + n], "big") == len(der)


def _pem_problem(data: bytes) -> tuple[str, bytes] | str:  # noqa: PLR0911 - one return per kind of damage
    """``(label, der)`` of a structurally sound PEM private key, or why it is damaged."""
    if not data.strip():
        return "the file is empty"
    match = _PEM.search(data)
    if match is None:
        if b"-----BEGIN" in data:
            return "the file is truncated (no END line)"
        return "the file is not a PEM private key"
    label, body, end = match.group(1), match.group(2), match.group(3)
    if label != end:
        return f"the PEM BEGIN/END labels differ ({label.decode()} / {end.decode()})"
    if label not in _KEY_LABELS:
        return f"the PEM block is a {label.decode()}, not a private key"
    try:
        der = base64.b64decode(b"".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        return "the PEM body is not valid base64 (the file was altered)"
    if not _der_complete(der):
        return "the key data is truncated or altered (DER length does not match)"
    return label.decode(), der


def load_private_key(path: Path, passphrase: bytes | None, *, what: str,
                     insecure_no_passphrase: bool = False) -> PrivateKey:
    """Read the private key at ``path``; a damaged file, a wrong passphrase and an unencrypted key each get
    their own code (``KEYS_CORRUPT``, ``KEYS_PASSPHRASE``, ``KEYS_UNENCRYPTED``) naming the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}", code="KEYS_UNREADABLE",
                          hint="check the file and its permissions") from exc
    shape = _pem_problem(data)
    if isinstance(shape, str):  # issue 9 item 6: a damaged file is not a wrong passphrase
        raise ConfigError(f"{what} {path} is damaged: {shape}", code="KEYS_CORRUPT",
                          hint="restore the file from backup")
    label, _der = shape
    encrypted = label == "ENCRYPTED PRIVATE KEY"
    if not encrypted and not insecure_no_passphrase:
        raise ConfigError(f"{what} {path} is stored unencrypted", code="KEYS_UNENCRYPTED",
                          hint="re-encrypt it (`openssl pkcs8 -topk8 -v2 aes-256-cbc -scrypt`) or allow it "
                          "explicitly with --insecure-no-passphrase / XBG_KEY_INSECURE_NO_PASSPHRASE=1")
    if encrypted and not passphrase:
        raise ConfigError(f"{what} {path} is encrypted and no passphrase was given", code="KEYS_NO_PASSPHRASE",
                          hint="pass --passphrase-file FILE or set XBG_KEY_PASSPHRASE(_FILE)")
    try:
        key = serialization.load_pem_private_key(data, passphrase if encrypted else None)
    except (ValueError, TypeError) as exc:
        if encrypted:
            raise ConfigError(f"cannot decrypt {what} {path}: wrong passphrase (or the ciphertext was altered)",
                              code="KEYS_PASSPHRASE",
                              hint="check --passphrase-file / XBG_KEY_PASSPHRASE(_FILE)") from exc
        raise ConfigError(f"{what} {path} is damaged: {exc}", code="KEYS_CORRUPT",
                          hint="restore the file from backup") from exc
    except UnsupportedAlgorithm as exc:
        raise ConfigError(f"{what} {path} is not a supported private key: {exc}", code="KEYS_CORRUPT",
                          hint="restore the file from backup") from exc
    if not isinstance(key, Ed25519PrivateKey | X25519PrivateKey):
        raise ConfigError(f"{what} {path} holds a {type(key).__name__}", code="KEYS_UNREADABLE",
                          hint="expected an Ed25519 or X25519 key")
    return key
