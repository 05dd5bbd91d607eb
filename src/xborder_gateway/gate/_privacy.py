"""Plates are personal data: the audit log and the decisions topic carry only a keyed HMAC of the plate.

The key is 32 random bytes in ``<home>/gate/plate-hmac.key`` (mode 0600, created on first use); without it a
digest cannot be tied back to a plate by trying the (small) space of plates, which a plain hash could be.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import hashes, hmac

from xborder_gateway.errors import ConfigError

__all__ = ["PlateHasher"]

_KEY_BYTES = 32


class PlateHasher:
    """HMAC-SHA256 of canonical plates under the site's key (GATE-7: no plate in the audit log)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise ConfigError("the plate HMAC key must be 32 bytes", code="GATE_HMAC_KEY")
        self._key = key

    @classmethod
    def load_or_create(cls, path: Path) -> PlateHasher:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:  # GATE-7: a key others can read is no key
                raise ConfigError(f"{path} is readable by others (mode {mode:o})", code="GATE_HMAC_KEY_MODE",
                                  hint=f"chmod 600 {path}") from None
            key = path.read_bytes()
        else:
            key = os.urandom(_KEY_BYTES)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key)
        return cls(key)

    def digest(self, canonical_plate: str) -> str:
        if not canonical_plate:
            return ""
        mac = hmac.HMAC(self._key, hashes.SHA256())
        mac.update(canonical_plate.encode("utf-8"))
        return mac.finalize().hex()
