"""Issue 9 items 4-7: the import ceremony, one passphrase source, diagnostics naming the file, a private home."""

from __future__ import annotations

import argparse
import os
import secrets
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.x509.oid import NameOID

from xborder_gateway._cli import main
from xborder_gateway.audit import AuditEvent, AuditLog, EventType
from xborder_gateway.audit._keys import key_paths
from xborder_gateway.config import Settings, load_settings
from xborder_gateway.envelope import (
    X25519_EXTENSION_OID,
    LocalAuthority,
    SqliteReplayStore,
    TrustStore,
    export_bundle,
    import_bundle,
    init_authority,
    key_id,
    make_generation,
)
from xborder_gateway.errors import ConfigError
from xborder_gateway.exchange._state import VN_SCHEMA, connect

PW = b"hardening tests passphrase"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("XBG_KEY_PASSPHRASE", "XBG_KEY_PASSPHRASE_FILE", "XBG_KEY_INSECURE_NO_PASSPHRASE", "XBG_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def _pw_file(tmp_path: Path) -> Path:
    path = tmp_path / "pw"
    path.write_bytes(PW + b"\n")
    path.chmod(0o600)
    return path


def _run(home: Path, *argv: str) -> int:
    return main(["--home", str(home), *argv])


def _cert(authority: str, *, name: x509.Name | None = None, ski: bytes | None = None) -> bytes:
    """A self-signed certificate like `keys init` writes, with the subject or key identifier swapped."""
    sign, enc = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    subject = name or x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "xborder-gateway"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, authority)])
    spki = enc.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    now = datetime.now(UTC).replace(microsecond=0)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(sign.public_key())
            .serial_number(secrets.randbits(120) | 1).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .add_extension(x509.SubjectKeyIdentifier(ski if ski is not None else key_id(sign.public_key())),
                           critical=False)
            .add_extension(x509.UnrecognizedExtension(X25519_EXTENSION_OID, spki), critical=False)
            .sign(sign, algorithm=None))
    return cert.public_bytes(serialization.Encoding.PEM)


# --- item 4: `keys import` is a ceremony -------------------------------------------------------------


@pytest.fixture
def vn_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    """A CN home with its keys, and VN's bundle file; returns (cn_home, bundle, fingerprint)."""
    monkeypatch.setenv("XBG_KEY_PASSPHRASE", PW.decode())
    vn_home, cn_home = tmp_path / "vn", tmp_path / "cn"
    assert _run(vn_home, "keys", "init", "--authority", "VN") == 0
    assert _run(cn_home, "keys", "init", "--authority", "CN") == 0
    bundle = tmp_path / "vn.pem"
    assert _run(vn_home, "keys", "export", "--out", str(bundle)) == 0
    [cert] = x509.load_pem_x509_certificates(bundle.read_bytes())
    import hashlib
    return cn_home, bundle, hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _trusted(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "keys" / "CN" / "trust").glob("*.crt.pem")) if (
        home / "keys" / "CN" / "trust").is_dir() else []


def test_import_without_fingerprint_and_without_a_terminal_is_a_usage_error(
        vn_bundle: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    cn_home, bundle, _fp = vn_bundle
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    capsys.readouterr()
    assert _run(cn_home, "keys", "import", str(bundle)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: KEYS_FINGERPRINT_REQUIRED")
    assert "--expect-fingerprint" in err  # says how
    assert _trusted(cn_home) == []


@pytest.mark.parametrize(("answer", "rc"), [("yes", 0), ("no", 1), ("", 1)])
def test_import_at_a_terminal_shows_the_fingerprint_and_asks(
        vn_bundle: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        answer: str, rc: int) -> None:
    cn_home, bundle, fp = vn_bundle
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    asked: list[str] = []

    def fake_input(prompt: str) -> str:
        asked.append(prompt)
        return answer

    monkeypatch.setattr("builtins.input", fake_input)
    capsys.readouterr()
    assert _run(cn_home, "keys", "import", str(bundle)) == rc
    assert asked, "the operator was not asked"
    assert fp in capsys.readouterr().err  # shown before the question
    assert len(_trusted(cn_home)) == (1 if rc == 0 else 0)


def test_import_with_the_expected_fingerprint_needs_no_terminal(
        vn_bundle: tuple[Path, Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    cn_home, bundle, fp = vn_bundle
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert _run(cn_home, "keys", "import", str(bundle), "--expect-fingerprint", fp) == 0
    assert len(_trusted(cn_home)) == 1


def test_import_refuses_an_authority_the_home_has_no_business_with(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XBG_KEY_PASSPHRASE", PW.decode())
    home = tmp_path / "cn"
    assert _run(home, "keys", "init", "--authority", "CN") == 0
    xx = make_generation("XX").certificate
    bundle = tmp_path / "xx.pem"
    bundle.write_bytes(xx.pem)
    capsys.readouterr()
    assert _run(home, "keys", "import", str(bundle), "--authority", "CN",
                "--expect-fingerprint", xx.fingerprint.hex()) == 1
    assert "KEYS_AUTHORITY_UNEXPECTED" in capsys.readouterr().err
    assert _trusted(home) == []
    assert _run(home, "keys", "import", str(bundle), "--authority", "CN", "--expect-fingerprint",
                xx.fingerprint.hex(), "--allow-other-authority") == 0  # told explicitly
    assert len(_trusted(home)) == 1


@pytest.mark.parametrize(("name", "pem", "code"), [
    ("extra subject attribute", lambda: _cert("VN", name=x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "xborder-gateway"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "VN"),
        x509.NameAttribute(NameOID.COMMON_NAME, "VN")])), "KEYS_CERT_LOOKALIKE"),
    ("other organisation", lambda: _cert("VN", name=x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "xborder-gateway-vn"),
        x509.NameAttribute(NameOID.COMMON_NAME, "VN")])), "KEYS_CERT_LOOKALIKE"),
    ("subject key id of another key", lambda: _cert("VN", ski=b"\x00" * 32), "KEYS_CERT_LOOKALIKE"),
    ("VN bundle smuggling an XX certificate", lambda: _cert("VN") + make_generation("XX").certificate.pem,
     "KEYS_BUNDLE_MIXED"),
])
def test_import_refuses_look_alike_certificates(tmp_path: Path, name: str, pem: object, code: str) -> None:
    settings = Settings(home=tmp_path / "home", key_passphrase=PW.decode())
    init_authority(settings, "CN", PW)
    data = pem() if callable(pem) else pem
    assert isinstance(data, bytes)
    with pytest.raises(ConfigError) as info:
        import_bundle(settings, "CN", data, allow_other_authority=True)
    assert info.value.code == code, name
    assert TrustStore.load(settings, "CN").certificates == []


def test_library_import_refuses_a_foreign_authority_by_default(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", key_passphrase=PW.decode())
    with pytest.raises(ConfigError) as info:
        import_bundle(settings, "CN", make_generation("XX").certificate.pem)
    assert info.value.code == "KEYS_AUTHORITY_UNEXPECTED"
    assert import_bundle(settings, "CN", make_generation("VN").certificate.pem)  # the counterpart is fine


# --- item 5: one passphrase source, never a key in the clear without the flag -------------------------


def _event(i: int) -> AuditEvent:
    return AuditEvent(time=datetime(2026, 11, 25, tzinfo=UTC) + timedelta(seconds=i), authority="VN",
                      process="outbound", event_type=EventType.RECEIVED, message_id=f"m-{i}",
                      business_key="305100000001", document_type="IDA", raw_sha256=f"{i:064x}",
                      kafka_topic="vn.declarations.raw", kafka_partition=0, kafka_offset=i)


def test_audit_key_uses_the_passphrase_file_alone(tmp_path: Path) -> None:
    """The checkpoint key is encrypted with --passphrase-file's passphrase, and opens with only that file."""
    settings = load_settings(home=tmp_path / "home", key_passphrase_file=_pw_file(tmp_path), audit_url=None)
    assert settings.key_passphrase is None
    with AuditLog.open(settings, "VN", background_checkpoints=False) as log:
        log.append([_event(0)])
        log.checkpoint_now()
    key_file, _ = key_paths(settings, "VN")
    assert key_file.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    serialization.load_pem_private_key(key_file.read_bytes(), PW)  # the same passphrase as the envelope keys
    with AuditLog.open(settings, "VN", background_checkpoints=False) as log:  # reopened with only the file
        assert log.verify().size == 1


def test_cli_passphrase_file_is_the_source_of_every_key(tmp_path: Path) -> None:
    """`--passphrase-file` is folded into the settings every key loader reads (envelope keys, audit key)."""
    from xborder_gateway._cli import _with_key_flags

    pf = _pw_file(tmp_path)
    base = load_settings(home=tmp_path / "home", key_passphrase="another one")
    folded = _with_key_flags(base, argparse.Namespace(passphrase_file=pf))
    assert folded.key_passphrase_file == pf
    from xborder_gateway._private import resolve_passphrase
    assert resolve_passphrase(folded) == PW  # the file wins over XBG_KEY_PASSPHRASE
    with AuditLog.open(folded, "VN", background_checkpoints=False) as log:
        log.append([_event(0)])
    serialization.load_pem_private_key(key_paths(folded, "VN")[0].read_bytes(), PW)


def test_no_private_key_is_written_in_the_clear_without_the_flag(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(home=tmp_path / "home", audit_url=None)
    with pytest.raises(ConfigError) as info:
        AuditLog.open(settings, "VN", background_checkpoints=False)
    assert info.value.code == "KEYS_NO_PASSPHRASE"
    assert not key_paths(settings, "VN")[0].exists()
    assert _run(tmp_path / "home", "keys", "init", "--authority", "VN") == 1
    assert "KEYS_NO_PASSPHRASE" in capsys.readouterr().err
    assert not (tmp_path / "home" / "keys" / "VN" / "own").exists() or not any(
        (tmp_path / "home" / "keys" / "VN" / "own").iterdir())
    # the explicit flag writes them in the clear, and only the flag reads them back
    assert _run(tmp_path / "home", "keys", "init", "--authority", "VN", "--insecure-no-passphrase") == 0
    insecure = settings.model_copy(update={"key_insecure_no_passphrase": True})
    with AuditLog.open(insecure, "VN", background_checkpoints=False) as log:
        log.append([_event(0)])
    assert key_paths(settings, "VN")[0].read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert LocalAuthority.load(insecure, "VN", None).authority == "VN"
    with pytest.raises(ConfigError) as info:
        LocalAuthority.load(settings.model_copy(update={"key_passphrase": "x"}), "VN", b"x")
    assert info.value.code == "KEYS_UNENCRYPTED"
    with pytest.raises(ConfigError) as info:
        AuditLog.open(settings.model_copy(update={"key_passphrase": "x"}), "VN", background_checkpoints=False)
    assert info.value.code == "KEYS_UNENCRYPTED"


# --- item 6: diagnostics name the file, damage is not a wrong passphrase ------------------------------


def _paired(tmp_path: Path) -> Settings:
    settings = Settings(home=tmp_path / "home", key_passphrase=PW.decode())
    init_authority(settings, "VN", PW)
    init_authority(settings, "CN", PW)
    import_bundle(settings, "CN", export_bundle(settings, "VN"))
    import_bundle(settings, "VN", export_bundle(settings, "CN"))
    return settings


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "base64 altered"])
def test_one_tampered_trust_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    settings = _paired(tmp_path)
    [trust_file] = sorted((settings.keys_dir("CN") / "trust").glob("*.crt.pem"))
    pem = trust_file.read_bytes()
    trust_file.write_bytes({"garbage": b"\x00\xffnot a certificate\n", "truncated": pem[: len(pem) // 2],
                            "empty": b"", "base64 altered": pem[:80] + b"!!!!" + pem[84:]}[damage])
    with pytest.raises(ConfigError) as info:
        TrustStore.load(settings, "CN")
    assert str(trust_file) in info.value.message
    monkeypatch.setenv("XBG_KEY_PASSPHRASE", PW.decode())
    capsys.readouterr()
    assert _run(settings.home, "keys", "list", "--authority", "CN") == 1
    assert trust_file.name in capsys.readouterr().err
    envelope = tmp_path / "x.xbge"
    envelope.write_bytes(b"XBGE")
    assert _run(settings.home, "open", str(envelope), "--authority", "CN") == 1
    err = capsys.readouterr().err
    assert trust_file.name in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("damage", "code"), [
    ("truncated", "KEYS_CORRUPT"), ("garbage", "KEYS_CORRUPT"), ("empty", "KEYS_CORRUPT"),
    ("cut inside the base64", "KEYS_CORRUPT"), ("wrong passphrase", "KEYS_PASSPHRASE"),
])
def test_damaged_private_key_is_not_a_wrong_passphrase(tmp_path: Path, damage: str, code: str) -> None:
    settings = _paired(tmp_path)
    [gen_dir] = [d for d in (settings.keys_dir("VN") / "own").iterdir() if d.is_dir()]
    key_file = gen_dir / "signing.key.pem"
    pem = key_file.read_bytes()
    lines = pem.splitlines(keepends=True)
    damaged = {"truncated": pem[: len(pem) // 2], "garbage": os.urandom(200), "empty": b"",
               "cut inside the base64": lines[0] + lines[1][:30] + b"\n" + lines[-1],
               "wrong passphrase": pem}[damage]
    key_file.write_bytes(damaged)
    passphrase = b"not the passphrase" if damage == "wrong passphrase" else PW
    with pytest.raises(ConfigError) as info:
        LocalAuthority.load(settings, "VN", passphrase)
    assert info.value.code == code
    assert str(key_file) in info.value.message


def test_damaged_audit_key_is_not_a_wrong_passphrase(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", key_passphrase=PW.decode(), audit_url=None)
    with AuditLog.open(settings, "VN", background_checkpoints=False) as log:
        log.append([_event(0)])
    key_file, _ = key_paths(settings, "VN")
    key_file.write_bytes(key_file.read_bytes()[:100])
    with pytest.raises(ConfigError) as info:
        AuditLog.open(settings, "VN", background_checkpoints=False)
    assert info.value.code == "KEYS_CORRUPT"


# --- item 7: the home is 0700, its files 0600, whatever the umask -----------------------------------


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)  # the worst case: everything the code does not restrict itself is world-writable
    try:
        yield
    finally:
        os.umask(old)


def test_home_is_private_whatever_the_umask(tmp_path: Path, permissive_umask: None) -> None:
    home = tmp_path / "fresh" / "home"
    settings = Settings(home=home, key_passphrase=PW.decode(), audit_url=None)
    init_authority(settings, "VN", PW)
    init_authority(settings, "CN", PW)
    import_bundle(settings, "CN", export_bundle(settings, "VN"))
    with AuditLog.open(settings, "VN", background_checkpoints=False) as log:
        log.append([_event(0)])
        log.checkpoint_now()
    state = connect(settings.state_db("VN"), VN_SCHEMA)
    replay = SqliteReplayStore(home / "state" / "cn-replay.sqlite")
    try:
        state.execute("CREATE TABLE IF NOT EXISTS t (x)")
        state.execute("INSERT INTO t VALUES (1)")
        files = sorted(p for p in home.rglob("*") if p.is_file())
        assert any(p.name.endswith("-wal") for p in files), "WAL files must be covered too"
        assert {p.name for p in files} >= {"vn.sqlite", "vn.sqlite-wal", "vn.sqlite-shm", "signing.key.pem",
                                           "authority.crt.pem", "vn.note-key.pem", "vn.vkey"}
        bad = [f"{p.relative_to(home)} {stat.S_IMODE(p.stat().st_mode):o}" for p in files
               if stat.S_IMODE(p.stat().st_mode) != 0o600]
        bad += [f"{p.relative_to(home)}/ {stat.S_IMODE(p.stat().st_mode):o}" for p in [home, *home.rglob("*")]
                if p.is_dir() and stat.S_IMODE(p.stat().st_mode) != 0o700]
        assert bad == []
    finally:
        state.close()
        replay.close()


def test_an_old_homes_world_readable_database_is_tightened(tmp_path: Path) -> None:
    db = tmp_path / "state" / "vn.sqlite"
    db.parent.mkdir(mode=0o755)
    sqlite3.connect(db).close()
    db.chmod(0o644)
    connect(db, VN_SCHEMA).close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
