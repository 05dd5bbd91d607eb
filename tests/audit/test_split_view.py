"""Issue 12 item 3: a split view is caught by the counterpart's witness, and by `verify --require-witness`.

Two sites on one machine, each with its own home: VN's log witnessed by CN's witness, CN's log by VN's.
VN's operator then does what a dishonest operator can: rewrites one entry behind the application's
back, rebuilds the tree and re-signs every checkpoint with VN's own key — a forgery `verify` alone
cannot see. CN's witness refuses to cosign (alarm: ERROR log line, audit event in CN's log, metric);
`xborder audit verify --require-witness` fails; CN's honest log keeps collecting cosignatures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from xborder_gateway._cli import main
from xborder_gateway.audit import AuditLog, merkle, verify_bundle
from xborder_gateway.audit._keys import counterpart_witness_path, load_or_create_signer, load_or_create_witness_signer
from xborder_gateway.audit.cosignature import verify_cosignature
from xborder_gateway.audit.log import _Frontier
from xborder_gateway.audit.note import Checkpoint, sign_note
from xborder_gateway.audit.witness import (
    Alarm,
    Cosigned,
    Witness,
    WitnessResult,
    WitnessStore,
    alarm_event,
    report_alarm,
)
from xborder_gateway.config import Settings

from .conftest import RawDb


@dataclass
class Site:
    settings: Settings
    authority: str
    log: AuditLog
    witness: Witness | None = None  # this site's witness of the *other* log

    def reopen(self) -> None:
        self.log.close()
        self.log = AuditLog.open(self.settings, self.authority, background_checkpoints=False)


def _site(tmp_path: Path, authority: str) -> Site:
    settings = Settings(home=tmp_path / authority.lower(), audit_url=None, audit_checkpoint_entries=10,
                        audit_checkpoint_seconds=3600.0)
    return Site(settings, authority, AuditLog.open(settings, authority, background_checkpoints=False))


@pytest.fixture
def sites(tmp_path: Path) -> Any:
    vn, cn = _site(tmp_path, "VN"), _site(tmp_path, "CN")
    for me, other in ((vn, cn), (cn, vn)):
        signer = load_or_create_witness_signer(me.settings, me.authority)
        assert other.log.verifier is not None
        me.witness = Witness(signer, {other.log.origin: other.log.verifier},
                             WitnessStore(me.settings.home / "audit" / "witness.sqlite"))
        # the trust bundle the authorities exchange carries each witness's cosignature/v1 key
        counterpart_witness_path(other.settings, other.authority).write_text(str(signer.verifier) + "\n")
    yield vn, cn
    for s in (vn, cn):
        s.log.close()
        assert s.witness is not None
        s.witness.store.close()


def publish(log: AuditLog, witness: Witness, size: int | None = None) -> WitnessResult:
    """What the checkpoint publisher and the witness shell do (the Kafka transport is wired later)."""
    latest = witness.store.latest(log.origin)
    result = witness.process_submission(log.submission(latest[0] if latest else 0, size))
    if isinstance(result, Cosigned):
        log.add_cosignature(result.size, result.line, witness.signer.verifier)
    return result


def grow(site: Site, make_event: Any, n: int = 10) -> None:
    start = site.log.size()
    proc = "outbound" if site.authority == "VN" else "nanning"
    site.log.append([make_event(i, authority=site.authority, process=proc) for i in range(start, start + n)])


def cli(home: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--home", str(home), "audit", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def rewrite_and_resign(site: Site, index: int) -> None:
    """Behind the application's back: rewrite one entry, rebuild every node, re-sign every checkpoint."""
    site.log.close()
    raw = RawDb(site.settings, site.authority)
    import sqlite3

    conn = sqlite3.connect(site.settings.audit_db(site.authority))
    entries = [bytes(r[0]) for r in conn.execute("SELECT entry FROM entries ORDER BY idx")]
    sizes = [int(r[0]) for r in conn.execute("SELECT size FROM checkpoints ORDER BY size")]
    issued = [int(r[0]) for r in conn.execute("SELECT issued_us FROM checkpoints ORDER BY size")]
    conn.close()
    entries[index] = entries[index].replace(f'"kafka_offset":{index}'.encode(), f'"kafka_offset":{index + 1}'.encode())
    frontier = _Frontier([])
    nodes: list[tuple[int, int, bytes]] = []
    for i, entry in enumerate(entries):
        frontier.push(i, merkle.leaf_hash(entry), nodes)
    signer = load_or_create_signer(site.settings, site.authority)  # VN's own, genuine key
    origin = site.log.origin
    statements: list[tuple[str, tuple[Any, ...]]] = [
        ("UPDATE {p}entries SET entry = ? WHERE idx = ?", (entries[index], index)),
        ("DELETE FROM {p}nodes", ()), ("DELETE FROM {p}checkpoints", ())]
    statements += [("INSERT INTO {p}nodes (level, idx, hash) VALUES (?, ?, ?)", n) for n in nodes]
    for size, at in zip(sizes, issued, strict=True):
        root = merkle.root_from_leaf_hashes([merkle.leaf_hash(e) for e in entries[:size]])
        note = sign_note(Checkpoint(origin, size, root).to_text(), signer)
        statements.append(("INSERT INTO {p}checkpoints (size, root, note, issued_us) VALUES (?, ?, ?, ?)",
                           (size, root, note, at)))
    raw.drop_triggers()
    raw._run(statements)
    site.log = AuditLog.open(site.settings, site.authority, background_checkpoints=False)


def test_split_view_is_detected_and_the_honest_log_keeps_its_cosignatures(
    sites: tuple[Site, Site], make_event: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    vn, cn = sites
    assert vn.witness is not None
    assert cn.witness is not None
    # honest rounds on both sides: every checkpoint is cosigned by the other side's witness
    for _ in range(2):
        grow(vn, make_event)
        grow(cn, make_event)
        assert isinstance(publish(vn.log, cn.witness), Cosigned)
        assert isinstance(publish(cn.log, vn.witness), Cosigned)
    code, out, _ = cli(vn.settings.home, capsys, "verify", "--require-witness")
    assert code == 0, out
    assert "witnessed" in out
    code, note, _ = cli(vn.settings.home, capsys, "checkpoint", "--cosigned")
    assert code == 0
    assert len([line for line in note.splitlines() if line.startswith("\u2014 ")]) == 2
    assert verify_cosignature(note, cn.witness.signer.verifier).timestamp > 0
    code, bundle_text, _ = cli(vn.settings.home, capsys, "bundle", "3")
    witness_key = str(cn.witness.signer.verifier)
    assert verify_bundle(bundle_text, str(vn.log.verifier), witness_key).cosigned_at is not None

    # the dishonest operator: a forgery that the log's own verify cannot see
    rewrite_and_resign(vn, 5)
    assert vn.log.verify().size == 20, "locally the rewritten log is perfect"
    grow(vn, make_event)
    assert vn.log.latest_checkpoint() is not None

    alarms = []
    for size in (None, 20):  # the next checkpoint, and the re-signed old one
        result = publish(vn.log, cn.witness, size)
        assert isinstance(result, Alarm), result
        alarms.append(result.kind)
        report_alarm(result, lambda a: cn.log.append([alarm_event(a, "CN")]))
    assert alarms == ["CHECKPOINT_INCONSISTENT", "CHECKPOINT_FORK"]
    assert cn.witness.store.latest(vn.log.origin)[0] == 20, "the witness's record did not move"  # type: ignore[index]
    assert [e.event.reason_code.split()[0] for e in cn.log.search(event_type="witness_alarm")] == alarms  # type: ignore[union-attr]
    assert sum("WITNESS ALARM" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records) == 2

    # an auditor of VN's log sees it: the stored cosignatures no longer match the re-signed checkpoints
    code, _, err = cli(vn.settings.home, capsys, "verify", "--require-witness")
    assert code == 1
    assert "WITNESS_COSIGNATURE_INVALID" in err
    # ... and if the operator also drops those cosignatures, the newest checkpoint simply has none
    vn.log.close()
    raw = RawDb(vn.settings)
    raw.drop_triggers()
    raw.run("DELETE FROM {p}cosignatures")
    vn.log = AuditLog.open(vn.settings, "VN", background_checkpoints=False)
    code, _, err = cli(vn.settings.home, capsys, "verify", "--require-witness")
    assert code == 1
    assert "WITNESS_COSIGNATURE_MISSING" in err
    # a lag allowance does not hide it either: the checkpoint at 20 is old by entries and is not witnessed
    code, _, err = cli(vn.settings.home, capsys, "verify", "--require-witness", "--max-lag-entries", "10")
    assert code == 1
    assert "WITNESS_COSIGNATURE_MISSING" in err

    # the honest log keeps collecting cosignatures, and passes
    for _ in range(2):
        grow(cn, make_event)
        assert isinstance(publish(cn.log, vn.witness), Cosigned)
    code, out, err = cli(cn.settings.home, capsys, "verify", "--authority", "CN", "--require-witness")
    assert code == 0, err
    assert "witnessed" in out


def test_lag_allows_a_recent_uncosigned_checkpoint(sites: tuple[Site, Site], make_event: Any,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    vn, cn = sites
    assert cn.witness is not None
    grow(vn, make_event)
    assert isinstance(publish(vn.log, cn.witness), Cosigned)
    grow(vn, make_event)  # checkpoint 20: not yet witnessed
    code, _, err = cli(vn.settings.home, capsys, "verify", "--require-witness")
    assert code == 1
    assert "WITNESS_COSIGNATURE_MISSING" in err
    code, out, _ = cli(vn.settings.home, capsys, "verify", "--require-witness", "--max-lag-entries", "5")
    assert code == 0, out  # 20 is 0 entries behind: within the lag; 10 is 10 behind and is cosigned
    code, out, _ = cli(vn.settings.home, capsys, "verify", "--require-witness", "--max-lag-seconds", "3600")
    assert code == 0, out
    assert "no checkpoint is older" in out
    code, _, err = cli(vn.settings.home, capsys, "verify", "--require-witness", "--max-lag-seconds", "0")
    assert code == 1
    code, _, err = cli(vn.settings.home, capsys, "checkpoint", "--cosigned")
    assert "no cosignature yet" in err


def test_verify_require_witness_needs_a_key(tmp_path: Path, make_event: Any,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    site = _site(tmp_path, "VN")
    grow(site, make_event)
    site.log.close()
    code, _, err = cli(site.settings.home, capsys, "verify", "--require-witness")
    assert code == 1
    assert "AUDIT_NO_WITNESS_KEY" in err
