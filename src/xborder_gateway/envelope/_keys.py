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
import json
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

from xborder_gateway import _private
from xborder_gateway.config import Settings
from xborder_gateway.errors import ConfigError, EnvelopeError
from xborder_gateway.signing import HsmConfig, Signer, generate_hsm_key, load_hsm_signer

__all__ = [
    "COUNTERPARTS",
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
    "parse_bundle",
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
# issue 9 item 4: the only authority each home has business trusting (its own authority's counterpart)
COUNTERPARTS = {"VN": "CN", "CN": "VN"}
_ORGANIZATION = "xborder-gateway"


def _subject(authority: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
        x509.NameAttribute(NameOID.COMMON_NAME, authority),
    ])


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
    """One of this authority's own key generations, private keys decrypted (or, for signing, in an HSM).

    ``signing_private`` is ``None`` when the signing key lives in a PKCS#11 token (``hsm_signer``); everything
    signs through :attr:`signer` either way.
    """

    certificate: AuthorityCertificate
    signing_private: Ed25519PrivateKey | None
    encryption_private: X25519PrivateKey
    hsm_signer: Signer | None = None

    def __post_init__(self) -> None:
        if (self.signing_private is None) == (self.hsm_signer is None):
            raise ValueError("a key generation has exactly one signing key: in software or in an HSM")

    @property
    def signer(self) -> Signer:
        """The generation's Ed25519 signing key, wherever it lives (issue 13 item 3)."""
        signer: Signer | None = self.hsm_signer or self.signing_private
        if signer is None:  # pragma: no cover - __post_init__ forbids it
            raise ValueError("key generation without a signing key")
        return signer


def _self_sign(builder: x509.CertificateBuilder, signer: Signer) -> x509.Certificate:
    """``builder`` signed by ``signer``; a key outside ``cryptography`` (an HSM) signs the TBS bytes itself."""
    if isinstance(signer, Ed25519PrivateKey):
        return builder.sign(signer, algorithm=None)
    # Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING } (RFC 5280
    # §4.1). A draft signed by a throwaway Ed25519 key has the same TBS and algorithm identifier; an Ed25519
    # signature is always 64 bytes, the draft's last 64 bytes: put the token's signature over the TBS there.
    draft = builder.sign(Ed25519PrivateKey.generate(), algorithm=None)
    der = draft.public_bytes(serialization.Encoding.DER)
    if not der.endswith(draft.signature) or len(draft.signature) != 64:
        raise ConfigError("unexpected certificate encoding", code="KEYS_CERT_INVALID")
    return x509.load_der_x509_certificate(der[:-64] + signer.sign(draft.tbs_certificate_bytes))


def make_generation(
    authority: str, *, not_before: datetime | None = None, validity: timedelta = DEFAULT_VALIDITY,
    signing_private: Ed25519PrivateKey | None = None, encryption_private: X25519PrivateKey | None = None,
    hsm_signer: Signer | None = None,
) -> KeyGeneration:
    """Create a key generation in memory (fresh keys unless given) with its self-signed certificate.

    With ``hsm_signer`` the signing key is that token key (``signing_private`` must be ``None``)."""
    _check_authority(authority)
    start = (not_before or _utcnow()).replace(microsecond=0)
    try:
        end = start + validity
    except OverflowError as exc:  # a not-after past 9999-12-31 cannot be written
        raise ConfigError(f"validity {validity} from {start.isoformat()} ends after year 9999",
                          code="KEYS_VALIDITY", hint="choose a shorter validity") from exc
    if hsm_signer is not None and signing_private is not None:
        raise ValueError("pass signing_private or hsm_signer, not both")
    sign: Ed25519PrivateKey | None = None if hsm_signer is not None else (
        signing_private or Ed25519PrivateKey.generate())
    signer: Signer = hsm_signer if hsm_signer is not None else sign  # type: ignore[assignment]
    enc = encryption_private or X25519PrivateKey.generate()
    name = _subject(authority)
    spki = enc.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(signer.public_key())
        .serial_number(secrets.randbits(127) | 1)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier(key_id(signer.public_key())), critical=False)
        .add_extension(x509.UnrecognizedExtension(X25519_EXTENSION_OID, spki), critical=False)
    )
    return KeyGeneration(AuthorityCertificate.from_x509(_self_sign(cert, signer)), sign, enc, hsm_signer)


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
    def load(cls, settings: Settings, authority: str, passphrase: bytes | None) -> LocalAuthority:
        own = settings.keys_dir(_check_authority(authority)) / "own"
        dirs = sorted(p for p in own.iterdir() if p.is_dir() and not p.name.startswith(".")) if own.is_dir() else []
        if not dirs:
            raise ConfigError(f"no keys for authority {authority} under {own}", code="KEYS_MISSING",
                              hint=f"run `xborder keys init --authority {authority}` first")
        gens = [_load_generation(d, passphrase, settings=settings) for d in dirs]
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


def _certificate_file(path: Path) -> AuthorityCertificate:
    """Parse one certificate file; any problem names the file (issue 9 item 6)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read certificate {path}: {exc.strerror or exc}", code="KEYS_UNREADABLE",
                          hint="check the file and its permissions") from exc
    try:
        return AuthorityCertificate.from_pem(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}", code=exc.code,
                          hint=f"remove or restore {path}; {exc.hint or ''}".rstrip("; ")) from exc
    except ValueError as exc:
        raise ConfigError(f"{path} is not a readable PEM certificate (altered or truncated): {exc}",
                          code="KEYS_CERT_INVALID", hint=f"remove {path} and import the counterpart's bundle again"
                          ) from exc


HSM_REFERENCE = "signing.key.pkcs11"  # {"token": …, "label": …}: the signing key is in that token


def _load_hsm_reference(settings: Settings, path: Path) -> Signer:
    try:
        ref = json.loads(path.read_text(encoding="utf-8"))
        token, label = str(ref["token"]), str(ref["label"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a PKCS#11 key reference: {exc}", code="KEYS_CORRUPT",
                          hint="restore the file from backup") from exc
    return load_hsm_signer(HsmConfig.from_settings(settings, token=token), label)


def _load_generation(directory: Path, passphrase: bytes | None, *, settings: Settings) -> KeyGeneration:
    insecure = settings.key_insecure_no_passphrase
    cert = _certificate_file(directory / "authority.crt.pem")
    hsm_signer: Signer | None = None
    sign: object = None
    if (directory / HSM_REFERENCE).exists():
        hsm_signer = _load_hsm_reference(settings, directory / HSM_REFERENCE)
        signing_public = hsm_signer.public_key()
    else:
        sign = _private.load_private_key(directory / "signing.key.pem", passphrase, what="signing key",
                                         insecure_no_passphrase=insecure)
        if not isinstance(sign, Ed25519PrivateKey):
            raise ConfigError(f"unexpected key type in {directory / 'signing.key.pem'}", code="KEYS_UNREADABLE",
                              hint="signing.key.pem must be Ed25519")
        signing_public = sign.public_key()
    enc = _private.load_private_key(directory / "encryption.key.pem", passphrase, what="encryption key",
                                    insecure_no_passphrase=insecure)
    if not isinstance(enc, X25519PrivateKey):
        raise ConfigError(f"unexpected key type in {directory / 'encryption.key.pem'}", code="KEYS_UNREADABLE",
                          hint="encryption.key.pem must be X25519")
    if key_id(signing_public) != cert.signing_key_id or key_id(enc.public_key()) != cert.encryption_key_id:
        raise ConfigError(f"private keys in {directory} do not match its certificate", code="KEYS_MISMATCH",
                          hint="the generation directory was altered (or the HSM key label points at another "
                          "key); restore it from backup")
    return KeyGeneration(cert, sign if isinstance(sign, Ed25519PrivateKey) else None, enc, hsm_signer)


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
        return cls(_certificate_file(f) for f in files)

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


def resolve_passphrase(settings: Settings, passphrase_file: Path | None = None) -> bytes:
    """The key passphrase (one source for every private key: see ``xborder_gateway._private``).

    ``--passphrase-file`` (first line) if given, else ``XBG_KEY_PASSPHRASE_FILE``, else ``XBG_KEY_PASSPHRASE``;
    empty (``b""``) only when ``XBG_KEY_INSECURE_NO_PASSPHRASE`` allows keys in the clear.
    """
    value = _private.resolve_passphrase(settings, passphrase_file,
                                        required=not settings.key_insecure_no_passphrase)
    return value or b""


def _write_private(path: Path, data: bytes) -> None:
    if not _private.write_private(path, data, exclusive=True):
        raise FileExistsError(path)


def _store_generation(settings: Settings, gen: KeyGeneration, passphrase: bytes) -> Path:
    own = _private.private_dir(settings.keys_dir(gen.certificate.authority) / "own")
    cert = gen.certificate
    name = f"{cert.not_before:%Y%m%dT%H%M%SZ}-{cert.signing_key_id[:4].hex()}"
    tmp = _private.private_dir(own / f".{name}.tmp")
    insecure = settings.key_insecure_no_passphrase
    try:
        if gen.signing_private is None:  # in a token: store where to find it, never the key
            hsm = gen.hsm_signer
            ref = {"token": getattr(hsm, "token", None), "label": getattr(hsm, "label", None)}
            _write_private(tmp / HSM_REFERENCE, (json.dumps(ref) + "\n").encode("utf-8"))
        else:
            _write_private(tmp / "signing.key.pem",
                           _private.private_key_pem(gen.signing_private, passphrase, insecure_no_passphrase=insecure))
        _write_private(tmp / "encryption.key.pem",
                       _private.private_key_pem(gen.encryption_private, passphrase, insecure_no_passphrase=insecure))
        _write_private(tmp / "authority.crt.pem", cert.pem)
        final = own / name
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _has_generations(settings: Settings, authority: str) -> bool:
    own = settings.keys_dir(authority) / "own"
    return own.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in own.iterdir())


def _hsm_key(authority: str, hsm: HsmConfig | None, label: str | None, when: datetime) -> Signer | None:
    if hsm is None:
        return None
    return generate_hsm_key(hsm, label or f"xbg-{authority.lower()}-{when:%Y%m%dT%H%M%SZ}")


def init_authority(
    settings: Settings, authority: str, passphrase: bytes, *, validity: timedelta = DEFAULT_VALIDITY,
    now: datetime | None = None, hsm: HsmConfig | None = None, hsm_label: str | None = None,
) -> AuthorityCertificate:
    """Create the authority's first key generation (``xborder keys init``).

    With ``hsm`` the Ed25519 signing key is generated in that PKCS#11 token (label ``hsm_label``, default
    ``xbg-<authority>-<UTC stamp>``) and never leaves it; the X25519 key stays in software (docs/envelope.md §5).
    """
    _check_authority(authority)
    if _has_generations(settings, authority):
        raise ConfigError(f"authority {authority} already has keys in {settings.keys_dir(authority)}",
                          code="KEYS_EXIST", hint="use `xborder keys rotate` to add a new generation")
    if not passphrase and not settings.key_insecure_no_passphrase:
        raise ConfigError("empty passphrase", code="KEYS_NO_PASSPHRASE",
                          hint="pass --passphrase-file FILE or set XBG_KEY_PASSPHRASE(_FILE)")
    gen = make_generation(authority, not_before=now, validity=validity,
                          hsm_signer=_hsm_key(authority, hsm, hsm_label, now or _utcnow()))
    _store_generation(settings, gen, passphrase)
    return gen.certificate


def rotate(
    settings: Settings, authority: str, passphrase: bytes, *, validity: timedelta = DEFAULT_VALIDITY,
    now: datetime | None = None, hsm: HsmConfig | None = None, hsm_label: str | None = None,
) -> AuthorityCertificate:
    """Add a new generation (valid from ``now``); older ones stay valid until their not-after."""
    existing = LocalAuthority.load(settings, authority, passphrase)  # proves the passphrase is the same
    start = (now or _utcnow()).replace(microsecond=0)
    latest = max(g.certificate.not_before for g in existing.generations)
    # certificate times have one-second resolution: keep "newest" unambiguous
    try:
        start = max(start, latest + timedelta(seconds=1))
    except OverflowError as exc:
        raise ConfigError(f"the newest generation of {authority} starts at the end of year 9999",
                          code="KEYS_VALIDITY", hint="the keys directory holds a generation with absurd dates"
                          ) from exc
    gen = make_generation(authority, not_before=start, validity=validity,
                          hsm_signer=_hsm_key(authority, hsm, hsm_label, start))
    _store_generation(settings, gen, passphrase)
    return gen.certificate


def _own_certificates(settings: Settings, authority: str) -> list[AuthorityCertificate]:
    own = settings.keys_dir(authority) / "own"
    if not own.is_dir():
        return []
    return _newest_first(
        _certificate_file(d / "authority.crt.pem")
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


def parse_bundle(bundle: bytes) -> list[AuthorityCertificate]:
    """The authority certificates of a PEM trust bundle (each self-signature checked, none a look-alike), in
    bundle order; a link CA in the bundle is left out (see :func:`split_bundle`)."""
    out: list[AuthorityCertificate] = []
    for cert in split_bundle(bundle)[0]:
        parsed_cert = AuthorityCertificate.from_x509(cert)
        _check_not_lookalike(cert, parsed_cert)
        out.append(parsed_cert)
    return out


def _check_not_lookalike(cert: x509.Certificate, parsed: AuthorityCertificate) -> None:
    """Issue 9 item 4: a certificate must say exactly what ``keys init`` writes for its authority: subject (and
    issuer) O=xborder-gateway, CN=<authority> and nothing else, and a subject key identifier that is the key id."""
    expected = _subject(parsed.authority)
    if cert.subject != expected or cert.issuer != expected:
        raise ConfigError(f"certificate {parsed.fingerprint.hex()} claims authority {parsed.authority} but its subject "
                          f"is {cert.subject.rfc4514_string()!r}, not {expected.rfc4514_string()!r}",
                          code="KEYS_CERT_LOOKALIKE",
                          hint="do not import: this is not a certificate written by `xborder keys init`")
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        ski = b""
    if ski != parsed.signing_key_id:
        raise ConfigError(f"certificate {parsed.fingerprint.hex()} of {parsed.authority}: its subject key identifier "
                          "is not the signing key id", code="KEYS_CERT_LOOKALIKE",
                          hint="do not import: this is not a certificate written by `xborder keys init`")


def import_bundle(settings: Settings, authority: str, bundle: bytes, *,
                  allow_other_authority: bool = False) -> list[AuthorityCertificate]:
    """Trust the certificates in ``bundle`` for the local ``authority``; returns them (idempotent).

    The bundle must name one authority, and (unless ``allow_other_authority``) the counterpart of ``authority``
    (``COUNTERPARTS``); every certificate must carry exactly the subject and key identifier ``keys init`` writes.
    A link CA in the bundle (docs/link.md) is stored too, unless it is ``authority``'s own. Checking who the
    certificates belong to (fingerprints) is the caller's ceremony (``xborder keys import``).
    """
    from xborder_gateway.link._pki import LinkCa, store_counterpart_ca  # lazy: link imports envelope

    _check_authority(authority)
    certs = parse_bundle(bundle)
    if not certs:
        raise ConfigError("the bundle holds no certificate", code="KEYS_BUNDLE_INVALID",
                          hint="pass the file written by `xborder keys export`")
    for cert in certs:
        if cert.authority == authority:
            raise ConfigError(f"the bundle holds {authority}'s own certificate", code="KEYS_BUNDLE_SELF",
                              hint="import the counterpart's bundle, not this authority's own")
    named = sorted({c.authority for c in certs})
    if len(named) != 1:  # a bundle is one authority's generations; a mixed one smuggles a second authority in
        raise ConfigError(f"the bundle mixes certificates of {', '.join(named)}", code="KEYS_BUNDLE_MIXED",
                          hint="import one authority's bundle at a time, as `xborder keys export` writes it")
    claimed = named[0]
    counterpart = COUNTERPARTS.get(authority)
    if claimed != counterpart and not allow_other_authority:  # issue 9 item 4: no business with that authority
        raise ConfigError(f"the bundle is {claimed}'s; {authority} exchanges only with {counterpart or 'no one'}",
                          code="KEYS_AUTHORITY_UNEXPECTED",
                          hint="import the counterpart's bundle; pass --allow-other-authority if trusting "
                          f"{claimed} is intended")
    cas = [LinkCa.from_x509(c) for c in split_bundle(bundle)[1]]
    if any(ca.site == authority for ca in cas):
        raise ConfigError(f"the bundle holds {authority}'s own link CA", code="KEYS_BUNDLE_SELF",
                          hint="import the counterpart's bundle, not this authority's own")
    trust = _private.private_dir(settings.keys_dir(authority) / "trust")
    for cert in certs:
        path = trust / f"{cert.authority}-{cert.fingerprint[:8].hex()}.crt.pem"
        if not path.exists():
            _private.write_private(path, cert.pem, exclusive=True)
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
