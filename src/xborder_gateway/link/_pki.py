"""The link's PKI: each site's own ECDSA P-256 link CA and the certificates of its link endpoints.

The authority certificates cannot serve TLS (self-signed Ed25519 with ``cA=FALSE``, and Kafka's PEM store
loads only RSA/DSA/EC keys), so every site has a second, narrow CA just for the link (docs/link.md §PKI).
On disk, under ``settings.keys_dir(<site>) / "link"`` (directory 0700)::

    ca.crt.pem           the site's link CA: ECDSA P-256, cA=TRUE pathLen=0, keyCertSign+cRLSign
    ca.key.pem           its key: PKCS#8, scrypt + AES-256-CBC under the authority key passphrase (0600);
                         read only by Python, when certificates are issued
    broker.p12           the broker's link-listener identity (serverAuth, SAN = the link host) — PKCS#12,
                         PBES2/PBKDF2-HMAC-SHA256/AES-256-CBC, HMAC-SHA256 (Java reads it; it cannot read scrypt)
    client.p12           MirrorMaker's identity towards the counterpart: subject CN=link-<SITE> (clientAuth)
    client.crt.pem       the same client identity for the gateway's own Python clients (`xborder link status`)
    client.key.pem         its key, PKCS#8 encrypted under the client keystore password (0600)
    secrets.properties   0600: the keystore passwords, read by Kafka through FileConfigProvider
    trust.pem            the counterpart's link CA certificate(s), written by :func:`write_truststore`

The counterpart's CA arrives with its trust bundle (``xborder keys export`` appends the link CA after the
authority certificates; ``keys import`` checks its fingerprint with the same ``--expect-fingerprint``
ceremony) and is kept under ``keys/<SITE>/trust/link/``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from xborder_gateway.config import Settings
from xborder_gateway.envelope._pkcs8 import encrypt_private_key_pem
from xborder_gateway.errors import ConfigError

__all__ = [
    "LINK_ORG",
    "LinkCa",
    "LinkFiles",
    "client_principal",
    "init_link_pki",
    "is_link_ca",
    "link_client_ssl_context",
    "link_files",
    "own_link_ca",
    "store_counterpart_ca",
    "trusted_link_cas",
    "write_truststore",
]

LINK_ORG = "xborder-gateway-link"
# The one rule the link listener maps certificate subjects with (LINK-2); no DEFAULT: a subject it does not
# match fails authentication instead of becoming a principal named after the whole DN.
PRINCIPAL_RULE = f"RULE:^CN=(link-[A-Z]{{2,16}}),O={LINK_ORG}$/$1/"


def client_principal(site: str) -> str:
    """The Kafka principal of ``site``'s MirrorMaker at the counterpart's link listener."""
    return f"User:link-{site}"


@dataclass(frozen=True)
class LinkFiles:
    dir: Path
    ca_cert: Path
    ca_key: Path
    broker_p12: Path
    client_p12: Path
    client_cert: Path
    client_key: Path
    secrets: Path
    truststore: Path

    def complete(self) -> bool:
        return all(p.is_file() for p in (self.ca_cert, self.broker_p12, self.client_p12, self.client_cert,
                                           self.client_key, self.secrets))

    def secret(self, name: str) -> str:
        """One value of secrets.properties (``broker.keystore.password``, ``client.keystore.password``)."""
        try:
            lines = self.secrets.read_text(encoding="ascii").splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read {self.secrets}: {exc}", code="LINK_PKI_MISSING",
                              hint="run `xborder link certs`") from exc
        for line in lines:
            key, _, value = line.partition("=")
            if key.strip() == name:
                return value.strip()
        raise ConfigError(f"{self.secrets} has no {name}", code="LINK_PKI_MISSING", hint="run `xborder link certs`")


def link_files(settings: Settings, site: str) -> LinkFiles:
    d = settings.keys_dir(site) / "link"
    return LinkFiles(d, d / "ca.crt.pem", d / "ca.key.pem", d / "broker.p12", d / "client.p12",
                     d / "client.crt.pem", d / "client.key.pem", d / "secrets.properties", d / "trust.pem")


@dataclass(frozen=True)
class LinkCa:
    """A parsed link CA certificate (own or the counterpart's)."""

    site: str
    certificate: x509.Certificate
    fingerprint: bytes  # SHA-256 of the DER

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def from_x509(cls, cert: x509.Certificate) -> LinkCa:
        if not is_link_ca(cert):
            raise ConfigError("not an xborder link CA certificate", code="LINK_CA_INVALID",
                              hint="import the bundle written by `xborder keys export` on the other side")
        cn = str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
        der = cert.public_bytes(serialization.Encoding.DER)
        return cls(cn.removesuffix(" link CA"), cert, hashlib.sha256(der).digest())


def is_link_ca(cert: x509.Certificate) -> bool:
    """An ECDSA P-256 self-signed CA named ``O=xborder-gateway-link, CN=<AUTH> link CA``."""
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        return False
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(orgs) != 1 or orgs[0].value != LINK_ORG or len(cns) != 1:
        return False
    cn = str(cns[0].value)
    if not cn.endswith(" link CA") or not cn.removesuffix(" link CA").isalpha():
        return False
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        cert.verify_directly_issued_by(cert)
    except (x509.ExtensionNotFound, ValueError, TypeError, Exception):  # noqa: BLE001 - any failure: not ours
        return False
    return bool(bc.ca) and cert.issuer == cert.subject


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, LINK_ORG),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(site: str, start: datetime, validity: timedelta) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"{site} link CA")
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(start + validity)
        # LINK-1: the link CA may sign only end-entity certificates (pathLen 0), nothing but certificates/CRLs
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, cn: str, *, server_hosts: list[str] | None,
    start: datetime, validity: timedelta,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    eku = ExtendedKeyUsageOID.SERVER_AUTH if server_hosts is not None else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start)
        .not_valid_after(min(start + validity, ca.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()), critical=False)  # type: ignore[arg-type]
    )
    if server_hosts is not None:
        sans: list[x509.GeneralName] = []
        for host in server_hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _p12(name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, ca: x509.Certificate,
         password: bytes) -> bytes:
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(100_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password)
    )
    return pkcs12.serialize_key_and_certificates(name.encode(), key, cert, [ca], encryption)


def _write(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    tmp.rename(path)


def init_link_pki(
    settings: Settings, passphrase: bytes, *, renew: bool = False, now: datetime | None = None,
) -> LinkCa:
    """Create the site's link CA (first time) and (re-)issue the broker and client certificates.

    The CA key is encrypted under the authority key ``passphrase``; an existing CA is reused (its
    fingerprint is what the counterpart trusts), unless ``renew`` asks for a new one.
    """
    site = settings.site
    if not passphrase:
        raise ConfigError("empty passphrase", code="KEYS_NO_PASSPHRASE", hint="set XBG_KEY_PASSPHRASE")
    files = link_files(settings, site)
    files.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(files.dir, 0o700)
    start = (now or datetime.now(UTC)).replace(microsecond=0) - timedelta(minutes=5)  # tolerate small clock skew
    validity = timedelta(days=settings.link_cert_validity_days)
    if files.ca_cert.is_file() and files.ca_key.is_file() and not renew:
        ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
        try:
            loaded = serialization.load_pem_private_key(files.ca_key.read_bytes(), passphrase)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"cannot decrypt the link CA key {files.ca_key}", code="KEYS_PASSPHRASE",
                              hint="the link CA key is encrypted under the authority key passphrase "
                              "(XBG_KEY_PASSPHRASE / --passphrase-file)") from exc
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{files.ca_key} is not an EC key", code="LINK_PKI_INVALID",
                              hint="restore it or run `xborder link certs --renew-ca`")
        ca_key = loaded
    else:
        ca_key, ca = _ca(site, start, validity)
        _write(files.ca_key, encrypt_private_key_pem(ca_key, passphrase))
        _write(files.ca_cert, ca.public_bytes(serialization.Encoding.PEM), 0o644)
    hosts = sorted({settings.kafka_host, "127.0.0.1", "localhost"})
    broker_key, broker_cert = _leaf(ca_key, ca, f"link-{site}-broker", server_hosts=hosts, start=start,
                                    validity=validity)
    client_key, client_cert = _leaf(ca_key, ca, f"link-{site}", server_hosts=None, start=start, validity=validity)
    broker_pw, client_pw = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    _write(files.broker_p12, _p12("broker", broker_key, broker_cert, ca, broker_pw.encode()))
    _write(files.client_p12, _p12("client", client_key, client_cert, ca, client_pw.encode()))
    _write(files.client_key, encrypt_private_key_pem(client_key, client_pw.encode()))
    _write(files.client_cert, client_cert.public_bytes(serialization.Encoding.PEM)
           + ca.public_bytes(serialization.Encoding.PEM), 0o644)
    # LINK-3: passwords reach Kafka only through FileConfigProvider from this 0600 file, never inline
    _write(files.secrets, f"broker.keystore.password={broker_pw}\nclient.keystore.password={client_pw}\n".encode())
    return LinkCa.from_x509(ca)


def own_link_ca(settings: Settings, site: str) -> LinkCa | None:
    path = link_files(settings, site).ca_cert
    if not path.is_file():
        return None
    return LinkCa.from_x509(x509.load_pem_x509_certificate(path.read_bytes()))


def store_counterpart_ca(settings: Settings, site: str, ca: LinkCa) -> Path:
    """Trust ``ca`` (the counterpart's link CA) for ``site``'s link (idempotent)."""
    if ca.site == site:
        raise ConfigError(f"the bundle holds {site}'s own link CA", code="KEYS_BUNDLE_SELF",
                          hint="import the counterpart's bundle, not this authority's own")
    trust = settings.keys_dir(site) / "trust" / "link"
    trust.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = trust / f"{ca.site}-{ca.fingerprint[:8].hex()}.ca.pem"
    if not path.exists():
        _write(path, ca.pem, 0o644)
    return path


def trusted_link_cas(settings: Settings, site: str, counterpart: str) -> list[LinkCa]:
    trust = settings.keys_dir(site) / "trust" / "link"
    found = []
    for path in sorted(trust.glob(f"{counterpart}-*.ca.pem")) if trust.is_dir() else []:
        ca = LinkCa.from_x509(x509.load_pem_x509_certificate(path.read_bytes()))
        if ca.site == counterpart and ca.certificate.not_valid_after_utc > datetime.now(UTC):
            found.append(ca)
    return found


def write_truststore(settings: Settings) -> Path | None:
    """``trust.pem``: the counterpart's link CAs (and only those — LINK-4); None while none is trusted."""
    site = settings.site
    cas = trusted_link_cas(settings, site, settings.link_counterpart)
    files = link_files(settings, site)
    if not cas:
        files.truststore.unlink(missing_ok=True)
        return None
    _write(files.truststore, b"".join(c.pem for c in cas), 0o644)
    return files.truststore


def link_client_ssl_context(settings: Settings) -> ssl.SSLContext:
    """A TLS context with this site's link client identity, trusting only the counterpart's link CA."""
    site = settings.site
    files = link_files(settings, site)
    trust = write_truststore(settings)
    if trust is None or not files.complete():
        raise ConfigError("the link PKI is incomplete", code="LINK_PKI_MISSING",
                          hint="run `xborder link certs` and import the counterpart's bundle with its link CA")
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(trust))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(files.client_cert), str(files.client_key),
                        password=files.secret("client.keystore.password"))
    return ctx
