"""Issue 12 item 7 (ADR 0303): the checkpoint key is rotated by a checkpoint signed by both keys that
announces the new one; verifiers and the witness follow the chain."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from xborder_gateway._cli import main
from xborder_gateway.audit import AuditLog, AuditVerificationError, NoteSigner
from xborder_gateway.audit._keys import key_paths
from xborder_gateway.audit.cosignature import CosignatureSigner
from xborder_gateway.audit.log import next_key_of
from xborder_gateway.audit.note import Checkpoint, sign_note
from xborder_gateway.audit.witness import Cosigned, Refused, Witness, WitnessStore
from xborder_gateway.config import Settings

from .conftest import RawDb


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, audit_url=None, audit_checkpoint_entries=10, audit_checkpoint_seconds=3600.0)


def _publish(log: AuditLog, witness: Witness) -> Any:
    latest = witness.store.latest(log.origin)
    result = witness.process_submission(log.submission(latest[0] if latest else 0))
    if isinstance(result, Cosigned):
        log.add_cosignature(result.size, result.line, witness.signer.verifier)
    return result


def test_rotation_is_announced_followed_and_witnessed(settings: Settings, tmp_path: Path, make_event: Any,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with AuditLog.open(settings, "VN", background_checkpoints=False) as log:
        old = log.verifier
        assert old is not None
        witness = Witness(CosignatureSigner("cn/witness", Ed25519PrivateKey.generate()), {log.origin: old},
                          WitnessStore(tmp_path / "w.sqlite"))
        log.append([make_event(i) for i in range(10)])
        assert isinstance(_publish(log, witness), Cosigned)
        announcement = log.rotate_key()
        new = log.verifier
        assert new is not None
        assert new != old
        assert next_key_of(announcement.checkpoint) == new
        Checkpoint.open(announcement.note, old, origin=log.origin)  # signed by the old key
        Checkpoint.open(announcement.note, new, origin=log.origin)  # and by the new one (possession)
        assert log.get(10).event.event_type.value == "key_rotated"
        assert isinstance(_publish(log, witness), Cosigned), "the witness cosigns the announcement"
        log.append([make_event(i) for i in range(11, 21)])
        latest = log.latest_checkpoint()
        assert latest is not None
        with pytest.raises(Exception, match="not signed by"):
            Checkpoint.open(latest.note, old, origin=log.origin)  # after the announcement: the new key only
        assert isinstance(_publish(log, witness), Cosigned), "the witness follows the chain"
        assert log.key_chain() == [old, new]
    key_file, vkey_file = key_paths(settings, "VN")
    assert vkey_file.read_text().strip() == str(new)
    assert list(key_file.parent.glob("vn.note-key.retired-*.pem")), "the old key is kept, retired"

    # the log reopens (writable and read-only) with the new key although meta names the first one
    with AuditLog.open(settings, "VN", background_checkpoints=False) as log:
        log.append([make_event(i) for i in range(21, 31)])
        for trusted in (old, new):  # an auditor holding either key verifies the whole log
            assert log.verify(trusted).size == 31
        with pytest.raises(AuditVerificationError) as info:
            log.verify(NoteSigner(log.origin, Ed25519PrivateKey.generate()).verifier)
        assert info.value.code == "NOTE_UNKNOWN_SIGNER"
    assert main(["--home", str(settings.home), "audit", "verify", "--key", str(old)]) == 0
    assert main(["--home", str(settings.home), "audit", "rotate-key"]) == 0
    third = capsys.readouterr().out.strip()
    assert third not in (str(old), str(new))
    assert main(["--home", str(settings.home), "audit", "verify", "--key", str(old)]) == 0

    # a checkpoint still signed by the retired key after the announcement is refused by the witness
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    retired_file = next(key_file.parent.glob(f"vn.note-key.retired-{old.key_hash.hex()}.pem"))
    retired_key = load_pem_private_key(retired_file.read_bytes(), password=os.environ["XBG_KEY_PASSPHRASE"].encode())
    assert isinstance(retired_key, Ed25519PrivateKey)
    retired = NoteSigner(old.name, retired_key)
    assert retired.verifier == old
    stale = sign_note(Checkpoint(old.name, 99, bytes(32)).to_text(), retired)
    result = witness.process(stale, 31, [])
    assert isinstance(result, Refused)
    assert result.status == 403


def test_a_forged_announcement_is_refused(settings: Settings, make_event: Any) -> None:
    """Announcing a key that did not sign the announcement breaks the chain (KEY-2)."""
    with AuditLog.open(settings, "VN", background_checkpoints=False) as log:
        log.append([make_event(i) for i in range(10)])
        origin = log.origin
    from xborder_gateway.audit._keys import load_or_create_signer

    signer = load_or_create_signer(settings, "VN")
    stranger = NoteSigner(origin, Ed25519PrivateKey.generate())
    with AuditLog.open(settings, "VN", read_only=True) as log:
        root = log.root(10)
    forged = sign_note(Checkpoint(origin, 10, root, (f"xborder-next-key {stranger.verifier}",)).to_text(), signer)
    raw = RawDb(settings)
    raw.drop_triggers()
    raw.run("UPDATE {p}checkpoints SET note = ? WHERE size = 10", forged)
    with AuditLog.open(settings, "VN", read_only=True) as log, pytest.raises(AuditVerificationError) as info:
        log.verify()
    assert info.value.code == "AUDIT_KEY_CHAIN"


def test_a_crash_between_announcement_and_key_swap_is_finished_on_open(
    settings: Settings, make_event: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xborder_gateway.audit import _keys

    with AuditLog.open(settings, "VN", background_checkpoints=False) as log:
        log.append([make_event(i) for i in range(10)])
        monkeypatch.setattr(_keys, "install_rotated_key", lambda *a: (_ for _ in ()).throw(OSError("crash")))
        with pytest.raises(OSError, match="crash"):
            log.rotate_key()
        monkeypatch.undo()
    # the announcement committed, the home still holds the old key: opening finishes the swap
    with AuditLog.open(settings, "VN", background_checkpoints=False) as log:
        announced = log.key_chain()[-1]
        assert log.verifier == announced
        log.append([make_event(i) for i in range(11, 21)])
        assert log.verify().size == 21
    # without the staged key the writer refuses rather than sign with a retired key
    with AuditLog.open(settings, "VN", read_only=True) as log:
        first = log.key_chain()[0]
    key_file, vkey_file = key_paths(settings, "VN")
    retired = next(key_file.parent.glob("vn.note-key.retired-*.pem"))
    key_file.write_bytes(retired.read_bytes())
    vkey_file.write_text(str(first) + "\n")
    with pytest.raises(Exception, match="announced the checkpoint key") as info:
        AuditLog.open(settings, "VN", background_checkpoints=False)
    assert getattr(info.value, "code", None) == "AUDIT_KEY_MISMATCH"
