"""Keys on disk: init, export, import, rotate, list; encryption at rest; certificate checks."""

from __future__ import annotations

import shutil
import stat
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from xborder_gateway.config import Settings, load_settings
from xborder_gateway.envelope import (
    X25519_EXTENSION_OID,
    AuthorityCertificate,
    LocalAuthority,
    TrustStore,
    export_bundle,
    import_bundle,
    init_authority,
    list_keys,
    open_envelope,
    resolve_passphrase,
    rotate,
    seal,
)
from xborder_gateway.errors import ConfigError

PW = b"correct horse battery staple"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home")


def _pair(settings: Settings, kit: Any) -> None:
    init_authority(settings, "VN", PW, now=kit.T0 - timedelta(days=1))
    init_authority(settings, "CN", PW, now=kit.T0 - timedelta(days=1))
    import_bundle(settings, "VN", export_bundle(settings, "CN", now=kit.T0))
    import_bundle(settings, "CN", export_bundle(settings, "VN", now=kit.T0))


def test_init_export_import_seal_open_on_disk(settings: Settings, kit: Any) -> None:
    _pair(settings, kit)
    vn, cn = LocalAuthority.load(settings, "VN", PW), LocalAuthority.load(settings, "CN", PW)
    sealed = seal(kit.avro_payload(), sender=vn, recipient="CN", trust=TrustStore.load(settings, "VN"),
                  document_type="IDA", schema_fingerprint=kit.FP, now=kit.T0)
    opened = open_envelope(sealed.data, me=cn, trust=TrustStore.load(settings, "CN"), replay=None, now=kit.T0)
    assert opened.payload == kit.avro_payload()


def test_private_keys_are_0600_and_encrypted_with_scrypt(settings: Settings) -> None:
    init_authority(settings, "VN", PW)
    [gen] = list((settings.keys_dir("VN") / "own").iterdir())
    for name in ("signing.key.pem", "encryption.key.pem"):
        path = gen / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        pem = path.read_bytes()
        assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        der = serialization.load_pem_private_key  # reading is cryptography's, not ours
        assert der(pem, PW) is not None
        with pytest.raises(ValueError, match=r"(?i)password|decrypt"):
            der(pem, b"wrong")
        assert bytes.fromhex("06092b06010401da47040b") in _pem_der(pem)  # OID 1.3.6.1.4.1.11591.4.11 = scrypt
    assert stat.S_IMODE(gen.stat().st_mode) == 0o700


def _pem_der(pem: bytes) -> bytes:
    import base64

    body = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
    return base64.b64decode(body)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_openssl_reads_our_private_keys(settings: Settings, tmp_path: Path) -> None:
    init_authority(settings, "VN", PW)
    [gen] = list((settings.keys_dir("VN") / "own").iterdir())
    pwfile = tmp_path / "pw"
    pwfile.write_bytes(PW)
    out = subprocess.run(["openssl", "pkey", "-in", str(gen / "signing.key.pem"), "-passin", f"file:{pwfile}",
                          "-noout", "-text"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "ED25519" in out.stdout.upper()


def test_wrong_passphrase(settings: Settings) -> None:
    init_authority(settings, "VN", PW)
    with pytest.raises(ConfigError) as err:
        LocalAuthority.load(settings, "VN", b"nope")
    assert err.value.code == "KEYS_PASSPHRASE"


def test_init_twice_and_missing_keys(settings: Settings) -> None:
    with pytest.raises(ConfigError) as err:
        LocalAuthority.load(settings, "VN", PW)
    assert err.value.code == "KEYS_MISSING"
    init_authority(settings, "VN", PW)
    with pytest.raises(ConfigError) as err:
        init_authority(settings, "VN", PW)
    assert err.value.code == "KEYS_EXIST"


def test_certificate_binds_both_keys(settings: Settings) -> None:
    cert_info = init_authority(settings, "VN", PW)
    cert = x509.load_pem_x509_certificate(cert_info.pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "VN"
    ext = cert.extensions.get_extension_for_oid(X25519_EXTENSION_OID)
    assert not ext.critical
    spki = ext.value.value  # type: ignore[attr-defined]
    assert spki[:12] == bytes.fromhex("302a300506032b656e032100")
    assert spki[12:] == cert_info.encryption_key.public_bytes_raw()
    assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest == cert_info.signing_key_id


def _cert(subject_cn: str, *, x25519: bool = True, self_signed_ok: bool = True) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    key = Ed25519PrivateKey.generate()
    other = Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(1).not_valid_before(__import__("datetime").datetime(2026, 1, 1))
               .not_valid_after(__import__("datetime").datetime(2027, 1, 1)))
    if x25519:
        spki = X25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        builder = builder.add_extension(x509.UnrecognizedExtension(X25519_EXTENSION_OID, spki), critical=False)
    cert = builder.sign(key if self_signed_ok else other, algorithm=None)
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    ("name", "bundle", "code"),
    [
        ("not PEM", b"hello", "KEYS_BUNDLE_INVALID"),
        ("certificate without the X25519 extension", _cert("CN", x25519=False), "KEYS_CERT_INVALID"),
        ("self-signature by another key", _cert("CN", self_signed_ok=False), "KEYS_CERT_INVALID"),
        ("subject is not an authority code", _cert("Nanning Customs"), "KEYS_CERT_INVALID"),
        ("our own certificate", "own", "KEYS_BUNDLE_SELF"),
    ],
)
def test_import_refuses(settings: Settings, name: str, bundle: Any, code: str) -> None:
    init_authority(settings, "VN", PW)
    data = export_bundle(settings, "VN") if bundle == "own" else bundle
    with pytest.raises(ConfigError) as err:
        import_bundle(settings, "VN", data)
    assert err.value.code == code, name
    assert TrustStore.load(settings, "VN").certificates == []


def test_rotate_and_list(settings: Settings, kit: Any) -> None:
    _pair(settings, kit)
    first = LocalAuthority.load(settings, "VN", PW).current(kit.T0)
    new = rotate(settings, "VN", PW, now=kit.T0, validity=timedelta(days=20))
    vn = LocalAuthority.load(settings, "VN", PW)
    assert len(vn.generations) == 2
    assert vn.current(kit.T0 + timedelta(seconds=1)).certificate.signing_key_id == new.signing_key_id
    # a message sealed before the rotation still opens after CN imports the new bundle
    old_env = seal(kit.avro_payload(), sender=LocalAuthority("VN", [first]), recipient="CN",
                   trust=TrustStore.load(settings, "VN"), document_type="IDA", schema_fingerprint=kit.FP,
                   now=kit.T0 - timedelta(minutes=5))
    bundle = export_bundle(settings, "VN", now=kit.T0)
    assert len(x509.load_pem_x509_certificates(bundle)) == 2
    import_bundle(settings, "CN", bundle)
    import_bundle(settings, "CN", bundle)  # idempotent
    cn, cn_trust = LocalAuthority.load(settings, "CN", PW), TrustStore.load(settings, "CN")
    assert len(cn_trust.certificates) == 2
    new_env = seal(kit.avro_payload(), sender=vn, recipient="CN", trust=TrustStore.load(settings, "VN"),
                   document_type="IDA", schema_fingerprint=kit.FP, now=kit.T0 + timedelta(seconds=1))
    for env in (old_env, new_env):
        assert open_envelope(env.data, me=cn, trust=cn_trust, replay=None, now=kit.T0 + timedelta(seconds=2))
    rows = list_keys(settings, "VN", now=kit.T0 + timedelta(seconds=1))
    own = [r for r in rows if r.kind == "own"]
    assert [r.current for r in own] == [True, False]
    assert own[0].expires_soon
    assert not own[1].expires_soon
    assert [r.authority for r in rows if r.kind == "trusted"] == ["CN"]
    later = list_keys(settings, "VN", now=kit.T0 + timedelta(days=25))
    assert [r.status for r in later if r.kind == "own"] == ["expired", "valid"]
    assert [r.current for r in later if r.kind == "own"] == [False, True]


def test_rotate_needs_the_same_passphrase(settings: Settings) -> None:
    init_authority(settings, "VN", PW)
    with pytest.raises(ConfigError) as err:
        rotate(settings, "VN", b"other")
    assert err.value.code == "KEYS_PASSPHRASE"


def test_tampered_generation_is_refused(settings: Settings) -> None:
    init_authority(settings, "VN", PW)
    other = load_settings(home=settings.home.parent / "other")
    init_authority(other, "VN", PW)
    [gen] = list((settings.keys_dir("VN") / "own").iterdir())
    [foreign] = list((other.keys_dir("VN") / "own").iterdir())
    (gen / "authority.crt.pem").write_bytes((foreign / "authority.crt.pem").read_bytes())
    with pytest.raises(ConfigError) as err:
        LocalAuthority.load(settings, "VN", PW)
    assert err.value.code == "KEYS_MISMATCH"


def test_resolve_passphrase(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_passphrase(load_settings(home=tmp_path), None)
    assert err.value.code == "KEYS_NO_PASSPHRASE"
    assert resolve_passphrase(load_settings(home=tmp_path, key_passphrase="s3cret"), None) == b"s3cret"
    pw = tmp_path / "pw"
    pw.write_bytes(b"from-file\nignored\n")
    assert resolve_passphrase(load_settings(home=tmp_path, key_passphrase="s3cret"), pw) == b"from-file"
    pw.write_bytes(b"")
    with pytest.raises(ConfigError):
        resolve_passphrase(load_settings(home=tmp_path), pw)
    with pytest.raises(ConfigError):
        resolve_passphrase(load_settings(home=tmp_path), tmp_path / "missing")


def test_authority_certificate_round_trip(settings: Settings) -> None:
    cert = init_authority(settings, "CN", PW)
    again = AuthorityCertificate.from_pem(cert.pem)
    assert again == cert


def test_reissued_certificate_for_the_same_key_newest_wins(kit: Any) -> None:
    from xborder_gateway.envelope import make_generation

    first = make_generation("CN", not_before=kit.T0 - timedelta(days=10), validity=timedelta(days=5))
    again = make_generation("CN", not_before=kit.T0 - timedelta(days=1), signing_private=first.signing_private,
                            encryption_private=first.encryption_private)
    assert first.certificate.signing_key_id == again.certificate.signing_key_id
    for order in ([first.certificate, again.certificate], [again.certificate, first.certificate]):
        trust = TrustStore(order)
        got = trust.signing_certificate(again.certificate.signing_key_id)
        assert got is not None
        assert got.fingerprint == again.certificate.fingerprint
