"""Authority keys, certificates and the trust store (docs/envelope.md §5).

An authority (``VN``, ``CN``) owns one or more key *generations*. A generation is an Ed25519 signing
key, an X25519 encryption key and a self-signed X.509 certificate that binds both (Ed25519 = subject
key; X25519 = SubjectPublicKeyInfo DER in extension ``X25519_EXTENSION_OID``) with a not-before /
not-after window. New messages use the newest valid generation; older ones still open while valid.

On disk, under ``settings.keys_dir(authority)``::

    own/<UTC stamp>-<signing key id, 8 hex>/signing.key.pem      PKCS#8, scrypt + AES-256-CBC, mode 0600
                                             encryption.key.pem   idem
                                             authority.crt.pem    the generation's certificate
    trust/<AUTHORITY>-<certificate SHA-256, 16 hex>.crt.pem      imported counterpart certificates
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.x509.oid import NameOID

from xborder_gateway.config import Settings
from xborder_gateway.envelope._pkcs8 import encrypt_private_key_pem
from xborder_gateway.errors import ConfigError, EnvelopeError

__all__ = [
    "X25519_EXTENSION_OID",
    "AuthorityCertificate",
    "KeyGeneration",
    "KeyInfo",
    "LocalAuthority",
    "TrustStore",
    "export_bundle",
    "import_bundle",
    "init_authority",
    "key_id",
    "list_keys",
    "make_generation",
    "resolve_passphrase",
    "rotate",
    "split_bundle",
]

# 2.25.<UUID as integer> (ITU-T X.667): an OID needing no registration. extnValue = DER SubjectPublicKeyInfo
# of the X25519 key (RFC 8410, algorithm 1.3.101.110).
X25519_EXTENSION_OID = x509.ObjectIdentifier("2.25.295509777803310257264179395960348762878")
DEFAULT_VALIDITY = timedelta(days=365)
EXPIRY_WARNING = timedelta(days=30)
_AUTHORITY = re.compile(r"[A-Z]{2,16}")


def key_id(public_key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    """Key id: SHA-256 of the 32-byte raw public key (RFC 8032 / RFC 7748 encoding)."""
    return hashlib.sha256(public_key.public_bytes_raw()).digest()


def _check_authority(authority: str) -> str:
    if not _AUTHORITY.fullmatch(authority):
        raise ConfigError(f"authority {authority!r} is not 2-16 capital letters", code="KEYS_AUTHORITY",
                          hint="use VN or CN")
    return authority


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AuthorityCertificate:
    """A parsed, self-signature-checked authority certificate (one key generation's public half)."""

    authority: str
    signing_key: Ed25519PublicKey
    encryption_key: X25519PublicKey
    signing_key_id: bytes
    encryption_key_id: bytes
    not_before: datetime
    not_after: datetime
    fingerprint: bytes  # SHA-256 of the certificate DER
    pem: bytes

    def valid_at(self, when: datetime) -> bool:
        return self.not_before <= when <= self.not_after

    @classmethod
    def from_pem(cls, pem: bytes) -> AuthorityCertificate:
        return cls.from_x509(x509.load_pem_x509_certificate(pem))

    @classmethod
    def from_x509(cls, cert: x509.Certificate) -> AuthorityCertificate:
        def bad(why: str) -> ConfigError:
            return ConfigError(f"not an xborder authority certificate: {why}", code="KEYS_CERT_INVALID",
                               hint="import the bundle written by `xborder keys export` on the other side")

        signing = cert.public_key()
        if not isinstance(signing, Ed25519PublicKey):
            raise bad("subject key is not Ed25519")
        if cert.issuer != cert.subject:
            raise bad("not self-signed")
        try:
            cert.verify_directly_issued_by(cert)
        except (InvalidSignature, ValueError, TypeError) as exc:
            raise bad(f"self-signature does not verify ({exc or type(exc).__name__})") from exc
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        authority = str(names[0].value) if len(names) == 1 else ""
        if not _AUTHORITY.fullmatch(authority):
            raise bad("subject CN is not an authority code")
        try:
            ext = cert.extensions.get_extension_for_oid(X25519_EXTENSION_OID).value
        except x509.ExtensionNotFound as exc:
            raise bad("no X25519 encryption-key extension") from exc
        if not isinstance(ext, x509.UnrecognizedExtension):
            raise bad("X25519 extension has an unexpected type")
        try:
            encryption = serialization.load_der_public_key(ext.value)
        except ValueError as exc:
            raise bad("X25519 extension is not a SubjectPublicKeyInfo") from exc
        if not isinstance(encryption, X25519PublicKey):
            raise bad("encryption key is not X25519")
        der = cert.public_bytes(serialization.Encoding.DER)
        return cls(
            authority=authority,
            signing_key=signing,
            encryption_key=encryption,
            signing_key_id=key_id(signing),
            encryption_key_id=key_id(encryption),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            fingerprint=hashlib.sha256(der).digest(),
            pem=cert.public_bytes(serialization.Encoding.PEM),
        )


@dataclass(frozen=True, slots=True)
class KeyGeneration:
    """One of this authority's own key generations, private keys decrypted."""

    certificate: AuthorityCertificate
    signing_private: Ed25519PrivateKey
    encryption_private: X25519PrivateKey


def make_generation(
    authority: str, *, not_before: datetime | None = None, validity: timedelta = DEFAULT_VALIDITY,
    signing_private: Ed25519PrivateKey | None = None, encryption_private: X25519PrivateKey | None = None,
) -> KeyGeneration:
    """Create a key generation in memory (fresh keys unless given) with its self-signed certificate."""
    _check_authority(authority)
    start = (not_before or _utcnow()).replace(microsecond=0)
    sign = signing_private or Ed25519PrivateKey.generate()
    enc = encryption_private or X25519PrivateKey.generate()
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "xborder-gateway"),
        x509.NameAttribute(NameOID.COMMON_NAME, authority),
    ])
    spki = enc.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(sign.public_key())
        .serial_number(secrets.randbits(127) | 1)
        .not_valid_before(start)
        .not_valid_after(start + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier(key_id(sign.public_key())), critical=False)
        .add_extension(x509.UnrecognizedExtension(X25519_EXTENSION_OID, spki), critical=False)
        .sign(sign, algorithm=None)
    )
    return KeyGeneration(AuthorityCertificate.from_x509(cert), sign, enc)


def _newest_first(certs: Iterable[AuthorityCertificate]) -> list[AuthorityCertificate]:
    return sorted(certs, key=lambda c: (c.not_before, c.not_after, c.signing_key_id), reverse=True)


class LocalAuthority:
    """This side's private keys and certificates. Load once per process; it is immutable."""

    __slots__ = ("_by_enc_kid", "authority", "generations")

    def __init__(self, authority: str, generations: Iterable[KeyGeneration]) -> None:
        self.authority = _check_authority(authority)
        gens = sorted(generations, key=lambda g: (g.certificate.not_before, g.certificate.not_after,
                                                  g.certificate.signing_key_id), reverse=True)
        for gen in gens:
            if gen.certificate.authority != authority:
                raise ConfigError(f"key generation of {gen.certificate.authority} under authority {authority}",
                                  code="KEYS_AUTHORITY_MISMATCH", hint="check the keys directory")
        self.generations: tuple[KeyGeneration, ...] = tuple(gens)
        self._by_enc_kid = {g.certificate.encryption_key_id: g for g in gens}

    @classmethod
    def load(cls, settings: Settings, authority: str, passphrase: bytes) -> LocalAuthority:
        own = settings.keys_dir(_check_authority(authority)) / "own"
        dirs = sorted(p for p in own.iterdir() if p.is_dir()) if own.is_dir() else []
        if not dirs:
            raise ConfigError(f"no keys for authority {authority} under {own}", code="KEYS_MISSING",
                              hint=f"run `xborder keys init --authority {authority}` first")
        gens = [_load_generation(d, passphrase) for d in dirs]
        return cls(authority, gens)

    def current(self, now: datetime | None = None) -> KeyGeneration:
        """The newest generation valid at ``now`` (used for new messages)."""
        when = now or _utcnow()
        for gen in self.generations:
            if gen.certificate.valid_at(when):
                return gen
        raise EnvelopeError(
            f"authority {self.authority} has no key valid at {when.isoformat()}",
            code="ENV-5 NO_VALID_KEY",
            hint=f"run `xborder keys rotate --authority {self.authority}` and export the new bundle",
        )

    def generation_for_encryption_key(self, kid: bytes) -> KeyGeneration | None:
        return self._by_enc_kid.get(kid)

    @property
    def certificates(self) -> list[AuthorityCertificate]:
        return [g.certificate for g in self.generations]


def _load_generation(directory: Path, passphrase: bytes) -> KeyGeneration:
    try:
        cert = AuthorityCertificate.from_pem((directory / "authority.crt.pem").read_bytes())
        sign = serialization.load_pem_private_key((directory / "signing.key.pem").read_bytes(), passphrase)
        enc = serialization.load_pem_private_key((directory / "encryption.key.pem").read_bytes(), passphrase)
    except OSError as exc:
        raise ConfigError(f"cannot read key generation {directory}: {exc}", code="KEYS_UNREADABLE",
                          hint="check the files and their permissions") from exc
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cannot decrypt the private keys in {directory}", code="KEYS_PASSPHRASE",
                          hint="check XBG_KEY_PASSPHRASE / --passphrase-file") from exc
    if not isinstance(sign, Ed25519PrivateKey) or not isinstance(enc, X25519PrivateKey):
        raise ConfigError(f"unexpected key types in {directory}", code="KEYS_UNREADABLE",
                          hint="signing.key.pem must be Ed25519 and encryption.key.pem X25519")
    if key_id(sign.public_key()) != cert.signing_key_id or key_id(enc.public_key()) != cert.encryption_key_id:
        raise ConfigError(f"private keys in {directory} do not match its certificate", code="KEYS_MISMATCH",
                          hint="the generation directory was altered; restore it from backup")
    return KeyGeneration(cert, sign, enc)


class TrustStore:
    """The counterparts' certificates this authority trusts. Immutable; lookups are dict hits."""

    __slots__ = ("_by_authority", "_by_enc_kid", "_by_sig_kid")

    def __init__(self, certificates: Iterable[AuthorityCertificate]) -> None:
        certs = _newest_first(certificates)
        # oldest first, so that for a key certified twice (re-issued) the newest certificate wins
        self._by_sig_kid = {c.signing_key_id: c for c in reversed(certs)}
        self._by_enc_kid = {c.encryption_key_id: c for c in reversed(certs)}
        self._by_authority: dict[str, list[AuthorityCertificate]] = {}
        for cert in certs:
            self._by_authority.setdefault(cert.authority, []).append(cert)

    @classmethod
    def load(cls, settings: Settings, authority: str) -> TrustStore:
        trust = settings.keys_dir(_check_authority(authority)) / "trust"
        files = sorted(trust.glob("*.crt.pem")) if trust.is_dir() else []
        return cls(AuthorityCertificate.from_pem(f.read_bytes()) for f in files)

    @property
    def authorities(self) -> list[str]:
        return sorted(self._by_authority)

    @property
    def certificates(self) -> list[AuthorityCertificate]:
        return [c for certs in self._by_authority.values() for c in certs]

    def signing_certificate(self, kid: bytes) -> AuthorityCertificate | None:
        return self._by_sig_kid.get(kid)

    def encryption_certificate(self, kid: bytes) -> AuthorityCertificate | None:
        return self._by_enc_kid.get(kid)

    def recipient_certificate(self, authority: str, now: datetime) -> AuthorityCertificate:
        """The newest certificate of ``authority`` valid at ``now`` (whose X25519 key new messages use)."""
        certs = self._by_authority.get(authority)
        if not certs:
            raise EnvelopeError(f"no trusted keys for recipient {authority}", code="ENV-4 UNKNOWN_RECIPIENT",
                                hint=f"import {authority}'s bundle: `xborder keys import BUNDLE`")
        for cert in certs:
            if cert.valid_at(now):
                return cert
        raise EnvelopeError(f"no key of {authority} is valid at {now.isoformat()}", code="ENV-5 NO_VALID_KEY",
                            hint=f"ask {authority} for a fresh bundle and import it")


# --- operations behind `xborder keys …` -------------------------------------------------------------


def resolve_passphrase(settings: Settings, passphrase_file: Path | None) -> bytes:
    """The key passphrase: ``--passphrase-file`` (first line) if given, else ``XBG_KEY_PASSPHRASE``."""
    if passphrase_file is not None:
        try:
            text = passphrase_file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read passphrase file {passphrase_file}: {exc}", code="KEYS_NO_PASSPHRASE",
                              hint="pass a readable file to --passphrase-file") from exc
        lines = text.splitlines()
        value = lines[0] if lines else b""
    else:
        value = (settings.key_passphrase or "").encode("utf-8")
    if not value:
        raise ConfigError("no key passphrase", code="KEYS_NO_PASSPHRASE",
                          hint="set XBG_KEY_PASSPHRASE or pass --passphrase-file FILE (first line is used)")
    return value


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _store_generation(settings: Settings, gen: KeyGeneration, passphrase: bytes) -> Path:
    own = settings.keys_dir(gen.certificate.authority) / "own"
    own.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert = gen.certificate
    name = f"{cert.not_before:%Y%m%dT%H%M%SZ}-{cert.signing_key_id[:4].hex()}"
    tmp = own / f".{name}.tmp"
    tmp.mkdir(mode=0o700)
    try:
        _write_private(tmp / "signing.key.pem", encrypt_private_key_pem(gen.signing_private, passphrase))
        _write_private(tmp / "encryption.key.pem", encrypt_private_key_pem(gen.encryption_private, passphrase))
        (tmp / "authority.crt.pem").write_bytes(cert.pem)
        final = own / name
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _has_generations(settings: Settings, authority: str) -> bool:
    own = settings.keys_dir(authority) / "own"
    return own.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in own.iterdir())


def init_authority(
    settings: Settings, authority: str, passphrase: bytes, *, validity: timedelta = DEFAULT_VALIDITY,
    now: datetime | None = None,
) -> AuthorityCertificate:
    """Create the authority's first key generation (``xborder keys init``)."""
    _check_authority(authority)
    if _has_generations(settings, authority):
        raise ConfigError(f"authority {authority} already has keys in {settings.keys_dir(authority)}",
                          code="KEYS_EXIST", hint="use `xborder keys rotate` to add a new generation")
    if not passphrase:
        raise ConfigError("empty passphrase", code="KEYS_NO_PASSPHRASE", hint="set XBG_KEY_PASSPHRASE")
    gen = make_generation(authority, not_before=now, validity=validity)
    _store_generation(settings, gen, passphrase)
    return gen.certificate


def rotate(
    settings: Settings, authority: str, passphrase: bytes, *, validity: timedelta = DEFAULT_VALIDITY,
    now: datetime | None = None,
) -> AuthorityCertificate:
    """Add a new generation (valid from ``now``); older ones stay valid until their not-after."""
    existing = LocalAuthority.load(settings, authority, passphrase)  # proves the passphrase is the same
    start = (now or _utcnow()).replace(microsecond=0)
    latest = max(g.certificate.not_before for g in existing.generations)
    # certificate times have one-second resolution: keep "newest" unambiguous
    gen = make_generation(authority, not_before=max(start, latest + timedelta(seconds=1)), validity=validity)
    _store_generation(settings, gen, passphrase)
    return gen.certificate


def _own_certificates(settings: Settings, authority: str) -> list[AuthorityCertificate]:
    own = settings.keys_dir(authority) / "own"
    if not own.is_dir():
        return []
    return _newest_first(
        AuthorityCertificate.from_pem((d / "authority.crt.pem").read_bytes())
        for d in sorted(own.iterdir()) if d.is_dir() and not d.name.startswith(".")
    )


def export_bundle(settings: Settings, authority: str, *, now: datetime | None = None) -> bytes:
    """The public trust bundle: PEM certificates of every generation not yet expired, newest first."""
    when = now or _utcnow()
    certs = [c for c in _own_certificates(settings, _check_authority(authority)) if c.not_after >= when]
    if not certs:
        raise ConfigError(f"authority {authority} has no unexpired keys to export", code="KEYS_MISSING",
                          hint=f"run `xborder keys init --authority {authority}` or `xborder keys rotate`")
    bundle = b"".join(c.pem for c in certs)
    link_ca = settings.keys_dir(authority) / "link" / "ca.crt.pem"
    if link_ca.is_file():  # optional: the site's link CA (docs/link.md), after the authority certificates
        bundle += link_ca.read_bytes()
    return bundle


def split_bundle(bundle: bytes) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    """The bundle's authority certificates and its (optional) link CA certificates, each as parsed X.509."""
    from xborder_gateway.link._pki import is_link_ca  # lazy: link imports envelope

    try:
        parsed = x509.load_pem_x509_certificates(bundle)
    except ValueError as exc:
        raise ConfigError(f"not a PEM certificate bundle: {exc}", code="KEYS_BUNDLE_INVALID",
                          hint="pass the file written by `xborder keys export`") from exc
    link = [c for c in parsed if not isinstance(c.public_key(), Ed25519PublicKey) and is_link_ca(c)]
    return [c for c in parsed if not any(c is x for x in link)], link


def import_bundle(settings: Settings, authority: str, bundle: bytes) -> list[AuthorityCertificate]:
    """Trust the certificates in ``bundle`` for the local ``authority``; returns them (idempotent)."""
    from xborder_gateway.link._pki import LinkCa, store_counterpart_ca  # lazy: link imports envelope

    _check_authority(authority)
    parsed, link_cas = split_bundle(bundle)
    certs = [AuthorityCertificate.from_x509(c) for c in parsed]
    for cert in certs:
        if cert.authority == authority:
            raise ConfigError(f"the bundle holds {authority}'s own certificate", code="KEYS_BUNDLE_SELF",
                              hint="import the counterpart's bundle, not this authority's own")
    cas = [LinkCa.from_x509(c) for c in link_cas]
    if any(ca.site == authority for ca in cas):
        raise ConfigError(f"the bundle holds {authority}'s own link CA", code="KEYS_BUNDLE_SELF",
                          hint="import the counterpart's bundle, not this authority's own")
    trust = settings.keys_dir(authority) / "trust"
    trust.mkdir(parents=True, exist_ok=True, mode=0o700)
    for cert in certs:
        path = trust / f"{cert.authority}-{cert.fingerprint[:8].hex()}.crt.pem"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(cert.pem)
            tmp.rename(path)
    for ca in cas:
        store_counterpart_ca(settings, authority, ca)
    return certs


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A row of `xborder keys list`."""

    kind: str  # "own" | "trusted"
    authority: str
    signing_key_id: bytes
    encryption_key_id: bytes
    not_before: datetime
    not_after: datetime
    fingerprint: bytes
    status: str  # "valid" | "expired" | "not yet valid"
    current: bool  # newest valid: used for new messages
    expires_soon: bool


def list_keys(settings: Settings, authority: str, *, now: datetime | None = None,
              warn_within: timedelta = EXPIRY_WARNING) -> list[KeyInfo]:
    """Own generations and trusted certificates with their status (no passphrase needed)."""
    when = now or _utcnow()
    rows: list[KeyInfo] = []
    groups: list[tuple[str, list[AuthorityCertificate]]] = [("own", _own_certificates(settings, authority))]
    trust = TrustStore.load(settings, authority)
    groups += [("trusted", _newest_first(c for c in trust.certificates if c.authority == a))
               for a in trust.authorities]
    for kind, certs in groups:
        current = next((c for c in certs if c.valid_at(when)), None)
        for c in certs:
            status = "valid" if c.valid_at(when) else "expired" if when > c.not_after else "not yet valid"
            rows.append(KeyInfo(kind, c.authority, c.signing_key_id, c.encryption_key_id, c.not_before,
                                c.not_after, c.fingerprint, status, c is current,
                                status == "valid" and c.not_after - when <= warn_within))
    return rows
