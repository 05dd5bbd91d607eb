"""Issue 13 item 3: Ed25519 signing keys in a PKCS#11 token (SoftHSM2, one token directory per test home).

Envelope sealing, receipts and audit checkpoints sign through the token; the private key is non-extractable;
sessions are serialised (the audit checkpoint thread signs concurrently). X25519 keys stay in software.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from xborder_gateway import avro
from xborder_gateway._cli import main
from xborder_gateway.audit import AuditEvent, AuditLog, EventType
from xborder_gateway.audit._keys import key_paths
from xborder_gateway.config import Settings
from xborder_gateway.envelope import (
    LocalAuthority,
    TrustStore,
    export_bundle,
    import_bundle,
    init_authority,
    make_receipt,
    open_envelope,
    open_receipt,
    seal,
    seal_receipt,
)
from xborder_gateway.errors import ConfigError
from xborder_gateway.signing import (
    SOFTHSM_MODULES,
    HsmConfig,
    Pkcs11Signer,
    generate_hsm_key,
    reset_pkcs11,
    signer_key_id,
)

pytestmark = [pytest.mark.integration, pytest.mark.hsm]

MODULE = next((Path(p) for p in SOFTHSM_MODULES if Path(p).exists()), None)
PIN = "87654321"
PW = "hsm tests passphrase"
T0 = datetime.now(UTC).replace(microsecond=0)


def _missing() -> str | None:
    if MODULE is None or shutil.which("softhsm2-util") is None:
        return "softhsm2 is not installed (scripts/softhsm.sh installs it: apt-get install softhsm2)"
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        return "python-pkcs11 is not installed (pip install 'xborder-gateway[hsm]')"
    return None


@dataclass
class Token:
    home: Path
    label: str
    pin_file: Path
    settings: Settings

    @property
    def cfg(self) -> HsmConfig:
        return HsmConfig.from_settings(self.settings)


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Token]:
    """A fresh SoftHSM2 token in the test home's own token directory (its own SOFTHSM2_CONF)."""
    why = _missing()
    if why:
        pytest.skip(why)
    assert MODULE is not None
    home = tmp_path / "home"
    tokens = home / "hsm" / "tokens"
    tokens.mkdir(parents=True)
    conf = home / "hsm" / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    label = "xbg-test"
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", "12345678",
                    "--pin", PIN], check=True, capture_output=True, env={**os.environ, "SOFTHSM2_CONF": str(conf)})
    pin_file = home / "hsm" / "pin"
    pin_file.write_text(PIN + "\n")
    for name in ("XBG_KEY_PASSPHRASE_FILE", "XBG_HSM_PIN", "XBG_HSM_TOKEN", "XBG_HSM_MODULE", "XBG_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XBG_KEY_PASSPHRASE", PW)
    reset_pkcs11()  # the process's PKCS#11 module re-reads SOFTHSM2_CONF
    settings = Settings(home=home, hsm_module=MODULE, hsm_token=label, hsm_pin_file=pin_file, audit_url=None,
                        audit_checkpoint_entries=5, audit_checkpoint_seconds=3600.0)
    try:
        yield Token(home, label, pin_file, settings)
    finally:
        reset_pkcs11()


def _payload() -> bytes:
    record = {"message_id": "01936f2a-4b00-7000-8000-000000000001", "business_key": "101234567890",
              "document_type": "IDA", "status": "ACCEPTED", "reasons": [], "responded_at": T0}
    return avro.encode("BusinessResponse", record)


def _pair_with_hsm(tok: Token) -> tuple[LocalAuthority, TrustStore, LocalAuthority, TrustStore]:
    """VN and CN both sign in the token (two key labels); both encrypt in software."""
    s = tok.settings
    init_authority(s, "VN", PW.encode(), hsm=tok.cfg, hsm_label="vn-sign", now=T0 - timedelta(minutes=1))
    init_authority(s, "CN", PW.encode(), hsm=tok.cfg, hsm_label="cn-sign", now=T0 - timedelta(minutes=1))
    import_bundle(s, "VN", export_bundle(s, "CN"))
    import_bundle(s, "CN", export_bundle(s, "VN"))
    return (LocalAuthority.load(s, "VN", PW.encode()), TrustStore.load(s, "VN"),
            LocalAuthority.load(s, "CN", PW.encode()), TrustStore.load(s, "CN"))


def test_envelopes_and_receipts_are_signed_in_the_token(token: Token) -> None:
    vn, vn_trust, cn, cn_trust = _pair_with_hsm(token)
    gen = vn.generations[0]
    assert gen.signing_private is None
    assert isinstance(gen.hsm_signer, Pkcs11Signer)
    assert signer_key_id(gen.signer) == gen.certificate.signing_key_id  # the certificate certifies the token key
    [gen_dir] = [d for d in (token.settings.keys_dir("VN") / "own").iterdir() if d.is_dir()]
    assert not (gen_dir / "signing.key.pem").exists()  # no software copy of the signing key
    assert (gen_dir / "signing.key.pkcs11").exists()
    assert (gen_dir / "encryption.key.pem").exists()
    payload = _payload()
    sealed = seal(payload, sender=vn, recipient="CN", trust=vn_trust, document_type="BUSINESS_RESPONSE",
                  schema_fingerprint=payload[2:10])
    opened = open_envelope(sealed.data, me=cn, trust=cn_trust, replay=None)
    assert opened.payload == payload
    receipt = seal_receipt(make_receipt(opened, receiver="CN", outcome="ACK"), me=cn, trust=cn_trust)
    _, record = open_receipt(receipt.data, me=vn, trust=vn_trust, replay=None)
    assert record["envelope_sha256"] == sealed.sha256


def test_the_private_key_cannot_leave_the_token(token: Token) -> None:
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    generate_hsm_key(token.cfg, "probe")
    lib = pkcs11.lib(str(MODULE))
    # the process is logged in already (PKCS#11 login state is per application): a second session shares it
    with lib.get_token(token_label=token.label).open() as session:
        [key] = list(session.get_objects({Attribute.LABEL: "probe", Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
        assert key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.SENSITIVE] is True
        assert key[Attribute.NEVER_EXTRACTABLE] is True
        with pytest.raises(pkcs11.exceptions.PKCS11Error):
            key[Attribute.VALUE]


def test_audit_checkpoints_are_signed_in_the_token(token: Token) -> None:
    events = [AuditEvent(time=T0 + timedelta(seconds=i), authority="VN", process="outbound",
                         event_type=EventType.RECEIVED, message_id=f"m-{i}", business_key="305100000001",
                         document_type="IDA", raw_sha256=f"{i:064x}", kafka_topic="vn.declarations.raw",
                         kafka_partition=0, kafka_offset=i) for i in range(12)]
    with AuditLog.open(token.settings, "VN") as log:
        log.append(events)
        log.checkpoint_now()
        assert log.verify().checkpoints >= 1
    key_file, vkey_file = key_paths(token.settings, "VN")
    assert not key_file.exists()
    assert vkey_file.exists()
    with AuditLog.open(token.settings, "VN", background_checkpoints=False) as log:  # reopened: same key
        log.append(events[:1])
        log.checkpoint_now()
        assert log.verify().size == 13


def test_signing_is_serialised_across_threads(token: Token) -> None:
    """The audit checkpoint thread and the connectors sign at once: every signature must still verify."""
    signer = generate_hsm_key(token.cfg, "threads")
    public = signer.public_key()
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(40):
                msg = f"{n}-{i}".encode()
                public.verify(signer.sign(msg), msg)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_wrong_pin_and_unknown_token_are_named(token: Token) -> None:
    bad = token.home / "hsm" / "bad-pin"
    bad.write_text("00000000\n")
    with pytest.raises(ConfigError) as info:
        generate_hsm_key(HsmConfig.from_settings(token.settings, pin_file=bad), "x")
    assert info.value.code == "HSM_PIN_INCORRECT"
    with pytest.raises(ConfigError) as info:
        generate_hsm_key(HsmConfig.from_settings(token.settings, token="no-such-token"), "x")
    assert info.value.code == "HSM_NO_TOKEN"
    with pytest.raises(ConfigError) as info:
        Pkcs11Signer(token.cfg, "never-created")
    assert info.value.code == "HSM_KEY_MISSING"


def test_cli_keys_init_hsm_then_seal_and_open_in_other_processes(token: Token, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """`keys init --hsm` as the issue writes it; `seal`/`open` run as separate processes read the same token."""
    home = str(token.home)
    assert main(["--home", home, "keys", "init", "--authority", "VN", "--hsm", "--hsm-token", token.label,
                 "--hsm-pin-file", str(token.pin_file), "--hsm-module", str(MODULE)]) == 0
    assert main(["--home", home, "keys", "init", "--authority", "CN"]) == 0
    for a, b in (("VN", "CN"), ("CN", "VN")):
        import_bundle(token.settings, b, export_bundle(token.settings, a))
    assert "non-extractable" in capsys.readouterr().err
    env = {**os.environ, "XBG_HSM_TOKEN": token.label, "XBG_HSM_PIN_FILE": str(token.pin_file),
           "XBG_HSM_MODULE": str(MODULE)}
    src = tmp_path / "resp.avro"
    src.write_bytes(_payload())
    out = tmp_path / "resp.xbge"
    xborder = [sys.executable, "-m", "xborder_gateway._cli"]
    done = subprocess.run([*xborder, "--home", home, "seal", str(src), "--authority", "VN", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([*xborder, "--home", home, "open", str(out), "--authority", "CN"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    # without the token's PIN the VN keys cannot be used, and the message says why
    env.pop("XBG_HSM_PIN_FILE")
    done = subprocess.run([*xborder, "--home", home, "seal", str(src), "--authority", "VN", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert "HSM_NO_PIN" in done.stderr
    assert "Traceback" not in done.stderr
    assert hashlib.sha256(out.read_bytes()).digest()  # the first envelope is still there
