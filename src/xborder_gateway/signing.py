"""Ed25519 signers: a key in software or in a hardware security module over PKCS#11 (issue 13 item 3).

Everything that signs — envelope sealing (so receipts and business responses too) and the audit checkpoint
notes — goes through :class:`Signer`: ``sign(message) -> 64 bytes`` and ``public_key()``, the same two
methods ``cryptography``'s ``Ed25519PrivateKey`` has, so a software key is a signer as it is.

* :class:`SoftwareSigner` wraps an ``Ed25519PrivateKey``;
* :class:`Pkcs11Signer` signs with ``CKM_EDDSA`` by a non-extractable ``CKK_EC_EDWARDS`` private key in a
  token (SoftHSM2 2.6 in tests, any PKCS#11 module in production), found by its label.

PKCS#11 sessions are not thread-safe and a token's login is shared by all sessions of the process, so one
session per token is opened, logged in once, and every call into the module holds one process-wide lock (the
audit checkpoint thread signs concurrently with the connectors' event loop). Configuration: ``XBG_HSM_MODULE``
(the ``.so``), ``XBG_HSM_TOKEN`` (token label), the PIN from ``XBG_HSM_PIN_FILE`` (first line) or
``XBG_HSM_PIN``; SoftHSM2 reads its token directory from ``SOFTHSM2_CONF``.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from xborder_gateway.errors import ConfigError

if TYPE_CHECKING:
    from xborder_gateway.config import Settings

__all__ = [
    "ED25519_OID",
    "HsmConfig",
    "HsmError",
    "Pkcs11Signer",
    "Signer",
    "SoftwareSigner",
    "generate_hsm_key",
    "load_hsm_signer",
    "reset_pkcs11",
    "signer_key_id",
]

ED25519_OID = "1.3.101.112"  # RFC 8410 id-Ed25519, as CKA_EC_PARAMS (a DER OBJECT IDENTIFIER)
SOFTHSM_MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                   "/usr/local/lib/softhsm/libsofthsm2.so")


@runtime_checkable
class Signer(Protocol):
    """An Ed25519 signing key, wherever it lives."""

    def sign(self, data: bytes) -> bytes: ...

    def public_key(self) -> Ed25519PublicKey: ...


def signer_key_id(signer: Signer) -> bytes:
    """SHA-256 of the raw public key (the envelope key id)."""
    return hashlib.sha256(signer.public_key().public_bytes_raw()).digest()


class SoftwareSigner:
    """An Ed25519 key in this process's memory."""

    __slots__ = ("_key", "_public")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self._public = key.public_key()

    @property
    def private_key(self) -> Ed25519PrivateKey:
        return self._key

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def public_key(self) -> Ed25519PublicKey:
        return self._public

    def __repr__(self) -> str:
        return f"SoftwareSigner(key_id={signer_key_id(self).hex()[:16]}…)"


class HsmError(ConfigError):
    """The PKCS#11 module, token, PIN or key is missing or refused an operation."""

    default_code = "HSM_ERROR"
    fault = "hardware security module"


@dataclass(frozen=True)
class HsmConfig:
    """Where the signing keys live: PKCS#11 module, token label, user PIN."""

    module: Path
    token: str
    pin: str = field(repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, module: Path | None = None, token: str | None = None,
                      pin_file: Path | None = None) -> HsmConfig:
        """Module, token and PIN from the arguments, else ``XBG_HSM_MODULE`` / ``XBG_HSM_TOKEN`` / the PIN
        from ``XBG_HSM_PIN_FILE`` or ``XBG_HSM_PIN``; the module defaults to SoftHSM2's where installed."""
        path = module or settings.hsm_module or next((Path(p) for p in SOFTHSM_MODULES if Path(p).exists()), None)
        if path is None:
            raise HsmError("no PKCS#11 module configured", code="HSM_NO_MODULE",
                           hint="set XBG_HSM_MODULE (or --hsm-module) to the module's .so, "
                           "e.g. /usr/lib/softhsm/libsofthsm2.so (apt-get install softhsm2)")
        label = token or settings.hsm_token
        if not label:
            raise HsmError("no token label configured", code="HSM_NO_TOKEN",
                           hint="set XBG_HSM_TOKEN (or --hsm-token) to the token's label")
        source = pin_file or settings.hsm_pin_file
        if source is not None:
            try:
                lines = source.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise HsmError(f"cannot read the PIN file {source}: {exc}", code="HSM_NO_PIN",
                               hint="pass a readable file (first line = user PIN)") from exc
            pin = lines[0] if lines else ""
        else:
            pin = settings.hsm_pin or ""
        if not pin:
            raise HsmError("no HSM user PIN", code="HSM_NO_PIN",
                           hint="set XBG_HSM_PIN_FILE (or --hsm-pin-file FILE) or XBG_HSM_PIN")
        return cls(Path(path), label, pin)


# --- the one session per token, behind one lock -------------------------------------------------------

_LOCK = threading.RLock()  # every call into a PKCS#11 module, from any thread
_LIBS: dict[str, Any] = {}
_SESSIONS: dict[tuple[str, str], Any] = {}


def _pkcs11() -> Any:
    try:
        import pkcs11
    except ImportError as exc:
        raise HsmError("python-pkcs11 is not installed", code="HSM_NO_MODULE",
                       hint="pip install 'xborder-gateway[hsm]' (python-pkcs11 >= 0.10.1)") from exc
    return pkcs11


def _session(cfg: HsmConfig) -> Any:
    """The process's logged-in read-write session on ``cfg.token`` (caller holds ``_LOCK``)."""
    pkcs11 = _pkcs11()
    key = (str(cfg.module), cfg.token)
    session = _SESSIONS.get(key)
    if session is not None:
        return session
    try:
        lib = _LIBS.get(str(cfg.module))
        if lib is None:
            lib = pkcs11.lib(str(cfg.module))
            _LIBS[str(cfg.module)] = lib
        token = lib.get_token(token_label=cfg.token)
    except (pkcs11.exceptions.NoSuchToken, pkcs11.exceptions.MultipleTokensReturned) as exc:
        raise HsmError(f"no single token labelled {cfg.token!r} in {cfg.module}", code="HSM_NO_TOKEN",
                       hint="check XBG_HSM_TOKEN; for SoftHSM2 also SOFTHSM2_CONF and "
                       "`softhsm2-util --show-slots`") from exc
    except (RuntimeError, OSError, pkcs11.exceptions.PKCS11Error) as exc:
        raise HsmError(f"cannot load the PKCS#11 module {cfg.module}: {exc!r}", code="HSM_NO_MODULE",
                       hint="check XBG_HSM_MODULE") from exc
    try:
        session = token.open(rw=True, user_pin=cfg.pin)
    except pkcs11.exceptions.PinIncorrect as exc:
        raise HsmError(f"the token {cfg.token!r} refused the PIN", code="HSM_PIN_INCORRECT",
                       hint="check XBG_HSM_PIN_FILE / XBG_HSM_PIN") from exc
    except pkcs11.exceptions.PKCS11Error as exc:
        raise HsmError(f"cannot open a session on token {cfg.token!r}: {exc!r}", code="HSM_SESSION",
                       hint="check the token and its PIN") from exc
    _SESSIONS[key] = session
    return session


def reset_pkcs11() -> None:
    """Close every session and re-initialise the loaded modules (tests: a new ``SOFTHSM2_CONF``)."""
    with _LOCK:
        for session in _SESSIONS.values():
            # a session of a vanished token cannot be closed; forget it
            with contextlib.suppress(Exception):
                session.close()
        _SESSIONS.clear()
        for lib in _LIBS.values():
            lib.reinitialize()


def _public_from_point(point: bytes) -> Ed25519PublicKey:
    # CKA_EC_POINT of an Edwards key: the 32 raw bytes, DER-wrapped as an OCTET STRING (04 20 …) by most modules
    raw = point[2:] if len(point) == 34 and point[:2] == b"\x04\x20" else point
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise HsmError(f"the token's public key is not a 32-byte Ed25519 point ({len(point)} bytes)",
                       code="HSM_KEY_INVALID", hint="the key was not created by `xborder keys init --hsm`") from exc


class Pkcs11Signer:
    """An Ed25519 private key in a PKCS#11 token (non-extractable), found by label; signs with CKM_EDDSA."""

    __slots__ = ("_cfg", "_private", "_public", "label")

    def __init__(self, cfg: HsmConfig, label: str) -> None:
        pkcs11 = _pkcs11()
        from pkcs11 import Attribute, KeyType, ObjectClass

        self._cfg = cfg
        self.label = label
        with _LOCK:
            session = _session(cfg)
            try:
                self._private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, key_type=KeyType.EC_EDWARDS,
                                                label=label)
                public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, key_type=KeyType.EC_EDWARDS,
                                         label=label)
                point = bytes(public[Attribute.EC_POINT])
            except (pkcs11.exceptions.NoSuchKey, pkcs11.exceptions.MultipleObjectsReturned) as exc:
                raise HsmError(f"no single Ed25519 key pair labelled {label!r} in token {cfg.token!r}",
                               code="HSM_KEY_MISSING",
                               hint="create it with `xborder keys init --hsm`, or check the key label") from exc
        self._public = _public_from_point(point)

    def sign(self, data: bytes) -> bytes:
        pkcs11 = _pkcs11()
        from pkcs11 import Mechanism

        with _LOCK:  # one call at a time into the module: its sessions are not thread-safe
            try:
                signature = bytes(self._private.sign(data, mechanism=Mechanism.EDDSA))
            except pkcs11.exceptions.PKCS11Error as exc:
                raise HsmError(f"token {self._cfg.token!r} could not sign with {self.label!r}: {exc!r}",
                               code="HSM_SIGN_FAILED", retriable=True, hint="check the HSM") from exc
        if len(signature) != 64:
            raise HsmError(f"the token returned a {len(signature)}-byte signature", code="HSM_SIGN_FAILED")
        return signature

    def public_key(self) -> Ed25519PublicKey:
        return self._public

    @property
    def token(self) -> str:
        return self._cfg.token

    def __repr__(self) -> str:
        return f"Pkcs11Signer(token={self._cfg.token!r}, label={self.label!r})"


def generate_hsm_key(cfg: HsmConfig, label: str) -> Pkcs11Signer:
    """Generate an Ed25519 key pair in the token under ``label`` (refused if the label exists).

    The private key is a token object, private, sensitive and non-extractable (CKA_EXTRACTABLE false): it
    never leaves the HSM.
    """
    pkcs11 = _pkcs11()
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
    from pkcs11.util.ec import encode_named_curve_parameters

    with _LOCK:
        session = _session(cfg)
        existing = list(session.get_objects({Attribute.LABEL: label, Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
        if existing:
            raise HsmError(f"token {cfg.token!r} already holds a key labelled {label!r}", code="HSM_KEY_EXISTS",
                           hint="choose another --hsm-key-label")
        try:
            session.generate_keypair(
                KeyType.EC_EDWARDS, mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN, store=True, label=label,
                public_template={Attribute.EC_PARAMS: encode_named_curve_parameters(ED25519_OID),
                                 Attribute.VERIFY: True, Attribute.TOKEN: True},
                private_template={Attribute.SIGN: True, Attribute.TOKEN: True, Attribute.PRIVATE: True,
                                  Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
            )
        except pkcs11.exceptions.PKCS11Error as exc:
            raise HsmError(f"token {cfg.token!r} cannot generate an Ed25519 key pair: {exc!r}",
                           code="HSM_KEYGEN_FAILED",
                           hint="the module needs CKM_EC_EDWARDS_KEY_PAIR_GEN and CKM_EDDSA (SoftHSM2 >= 2.6)"
                           ) from exc
    return Pkcs11Signer(cfg, label)


def load_hsm_signer(cfg: HsmConfig, label: str) -> Pkcs11Signer:
    return Pkcs11Signer(cfg, label)
