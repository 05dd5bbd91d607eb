"""Issue 12 item 1: checkpoints and cosignatures travel over Kafka (`xborder run witness`).

One scenario body, run on the in-memory transport (unit) and on a real broker (integration): two homes,
VN and CN, each running its witness role (publish own checkpoints, cosign the other's, collect the other's
cosignatures). Honest rounds: every published checkpoint is cosigned and `verify --require-witness`
passes on both sides. Then VN's operator rewrites one entry and re-signs (the split view of
test_split_view.py): CN's witness refuses over Kafka, the alarm is counted and written to CN's log, and
VN's `verify --require-witness` fails.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from xborder_gateway._cli import main
from xborder_gateway.audit import AuditLog
from xborder_gateway.audit._keys import (
    counterpart_witness_path,
    key_paths,
    load_or_create_witness_signer,
    witness_key_paths,
)
from xborder_gateway.audit._witness_service import (
    STATUS_HEADER,
    WitnessOptions,
    WitnessProcessor,
    run_witness,
    witness_topics,
)
from xborder_gateway.config import Settings

from .test_split_view import Site, grow, rewrite_and_resign


def _settings(home: Path, bootstrap: str, prefix: str) -> Settings:
    return Settings(home=home, audit_url=None, audit_checkpoint_entries=10, audit_checkpoint_seconds=3600.0,
                    kafka_bootstrap=bootstrap, exchange_group_prefix=prefix, exchange_poll_ms=50,
                    topic_partitions=1,
                    topic_vn_audit_checkpoints=f"{prefix}.vn.cp", topic_cn_audit_checkpoints=f"{prefix}.cn.cp",
                    topic_vn_audit_cosignatures=f"{prefix}.vn.cos", topic_cn_audit_cosignatures=f"{prefix}.cn.cos")


def exchange_trust(vn: Site, cn: Site) -> None:
    """What the authorities' trust bundle carries: each log's checkpoint key and each witness's key."""
    for me, other in ((vn, cn), (cn, vn)):
        load_or_create_witness_signer(me.settings, me.authority)
        # the other's log key, so my witness can check its checkpoints
        shutil.copy(key_paths(other.settings, other.authority)[1], key_paths(me.settings, other.authority)[1])
        # my witness's key, so the other can check my cosignatures of its log
        shutil.copy(witness_key_paths(me.settings, me.authority)[1],
                    counterpart_witness_path(other.settings, other.authority))


class Running:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.stop = asyncio.Event()
        self.task: asyncio.Task[int] | None = None

    def start(self) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(run_witness(
            self.site.settings, WitnessOptions(authority=self.site.authority, publish_every_s=0.05),
            stop=self.stop, install_shutdown=False))

    async def halt(self) -> None:
        self.stop.set()
        assert self.task is not None
        assert await asyncio.wait_for(self.task, 60) == 0


async def until(what: str, check: Callable[[], bool], within: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def cosigned(site: Site, size: int) -> bool:
    with AuditLog.open(site.settings, site.authority, read_only=True) as log:
        note = log.cosigned_note(size)
    return note is not None and note.count("\n\u2014 ") >= 2


def cli(home: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--home", str(home), "audit", *argv])
    out, err = capsys.readouterr()
    return code, out, err


async def scenario(tmp_path: Path, bootstrap: str, make_event: Any, capsys: pytest.CaptureFixture[str],
                   caplog: pytest.LogCaptureFixture) -> None:
    prefix = f"w{uuid.uuid4().hex[:8]}"
    vn = Site(_settings(tmp_path / "vn", bootstrap, prefix), "VN",
              AuditLog.open(_settings(tmp_path / "vn", bootstrap, prefix), "VN", background_checkpoints=False))
    cn = Site(_settings(tmp_path / "cn", bootstrap, prefix), "CN",
              AuditLog.open(_settings(tmp_path / "cn", bootstrap, prefix), "CN", background_checkpoints=False))
    exchange_trust(vn, cn)
    rv, rc = Running(vn), Running(cn)
    try:
        rv.start()
        rc.start()
        for rnd in (1, 2):  # honest rounds: checkpoints 10 and 20 of each log, each cosigned by the other
            grow(vn, make_event)
            grow(cn, make_event)
            await until(f"VN checkpoint {10 * rnd} cosigned by CN", lambda r=rnd: cosigned(vn, 10 * r))  # type: ignore[misc]
            await until(f"CN checkpoint {10 * rnd} cosigned by VN", lambda r=rnd: cosigned(cn, 10 * r))  # type: ignore[misc]
        code, out, err = cli(vn.settings.home, capsys, "verify", "--require-witness")
        assert code == 0, err
        assert "witnessed" in out
        code, out, err = cli(cn.settings.home, capsys, "verify", "--authority", "CN", "--require-witness")
        assert code == 0, err
        code, note, _ = cli(vn.settings.home, capsys, "checkpoint", "--cosigned")
        assert code == 0
        assert note.count("\n\u2014 ") == 2, note  # VN's signature and CN's cosignature

        # the dishonest operator stops VN's witness role, rewrites entry 5 and re-signs every checkpoint
        await rv.halt()
        rewrite_and_resign(vn, 5)
        grow(vn, make_event)  # checkpoint 30 of the rewritten tree
        cn_alarm_before = _alarms(cn)
        rv.start()
        await until("CN's witness alarm", lambda: _alarms(cn) > cn_alarm_before)
        await asyncio.sleep(0.5)
        assert not cosigned(vn, 30), "a rewritten log gathered the witness's cosignature"
        assert any("WITNESS ALARM CHECKPOINT_INCONSISTENT" in r.getMessage() and r.levelname == "ERROR"
                   for r in caplog.records)
        evidence = list((cn.settings.home / "audit" / "witness-evidence").glob("*.note"))
        assert evidence, "the offending note is kept as evidence"
        # the honest log keeps collecting cosignatures (its alarm entry included)
        grow(cn, make_event, 9)
        await until("CN checkpoint 30 cosigned by VN", lambda: cosigned(cn, 30))
    finally:
        for r in (rv, rc):
            if r.task is not None and not r.task.done():
                await r.halt()
    code, _, err = cli(vn.settings.home, capsys, "verify", "--require-witness")
    assert code == 1
    assert "WITNESS_COSIGNATURE_INVALID" in err or "WITNESS_COSIGNATURE_MISSING" in err, err
    code, _, err = cli(cn.settings.home, capsys, "verify", "--authority", "CN", "--require-witness")
    assert code == 0, err  # the honest log is still witnessed
    vn.log.close()
    cn.log.close()


def _alarms(site: Site) -> int:
    with AuditLog.open(site.settings, site.authority, read_only=True) as log:
        return len(log.search(event_type="witness_alarm"))


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 240))  # type: ignore[arg-type]


def test_witness_over_the_memory_transport(tmp_path: Path, make_event: Any, capsys: pytest.CaptureFixture[str],
                                           caplog: pytest.LogCaptureFixture) -> None:
    run(lambda: scenario(tmp_path, f"memory://{uuid.uuid4().hex}", make_event, capsys, caplog))


@pytest.mark.integration
def test_witness_over_a_real_broker(tmp_path: Path, kafka_bootstrap: str, make_event: Any,
                                    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    run(lambda: scenario(tmp_path, kafka_bootstrap, make_event, capsys, caplog))


# --- the processor alone ---------------------------------------------------------------------------------
class _Rec:
    def __init__(self, topic: str, value: bytes, status: str | None = None) -> None:
        self.topic, self.value, self._status = topic, value, status

    def header_str(self, name: str) -> str | None:
        return self._status if name == STATUS_HEADER else None


def _processor(tmp_path: Path, make_event: Any) -> tuple[WitnessProcessor, Site, Site]:
    from xborder_gateway.audit._witness_service import _open

    boot = f"memory://{uuid.uuid4().hex}"
    vn = Site(_settings(tmp_path / "vn", boot, "p"), "VN",
              AuditLog.open(_settings(tmp_path / "vn", boot, "p"), "VN", background_checkpoints=False))
    cn = Site(_settings(tmp_path / "cn", boot, "p"), "CN",
              AuditLog.open(_settings(tmp_path / "cn", boot, "p"), "CN", background_checkpoints=False))
    exchange_trust(vn, cn)
    log, proc = _open(cn.settings, "CN", witness_topics(cn.settings, "CN"))
    cn.log.close()
    cn.log = log
    grow(vn, make_event)
    return proc, vn, cn


def test_a_submission_from_the_wrong_old_size_gets_a_409_with_our_size(tmp_path: Path, make_event: Any) -> None:
    proc, vn, _cn = _processor(tmp_path, make_event)
    t = proc.topics
    out = proc.handle([_Rec(t.their_checkpoints, vn.log.submission(0, 10))])
    assert [o.header(STATUS_HEADER) for o in out] == [b"200"]
    grow(vn, make_event)
    out = proc.handle([_Rec(t.their_checkpoints, vn.log.submission(0, 20))])  # old 0, but we are at 10
    assert [(o.header(STATUS_HEADER), o.value) for o in out] == [(b"409", b"10\n")]
    out = proc.handle([_Rec(t.their_checkpoints, vn.log.submission(10, 20))])
    assert [o.header(STATUS_HEADER) for o in out] == [b"200"]
    assert proc.counts.cosigned == 2
    assert proc.counts.conflicts == 1


def test_a_cosignature_by_another_key_or_of_another_log_is_not_stored(tmp_path: Path, make_event: Any) -> None:
    from xborder_gateway.audit import CosignatureSigner
    from xborder_gateway.audit.cosignature import CosignatureVerifier

    proc, vn, cn = _processor(tmp_path, make_event)
    grow(cn, make_event)
    cp = cn.log.latest_checkpoint()
    assert cp is not None
    text = cp.note.split("\n\n", 1)[0] + "\n"
    assert proc.counterpart_witness is not None
    # a key with the VN witness's name but another key: no line of the pinned key -> not stored
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    impostor = CosignatureSigner(proc.counterpart_witness.name, Ed25519PrivateKey.generate())
    proc.handle([_Rec(proc.topics.their_cosignatures, (text + "\n" + impostor.cosign(text, 1)).encode())])
    assert proc.counts.rejected_cosignatures == 1
    assert cn.log.cosigned_sizes(proc.counterpart_witness) == []
    # a genuine-looking cosignature of VN's log (not ours) -> not stored
    vtext = vn.log.latest_checkpoint().note.split("\n\n", 1)[0] + "\n"  # type: ignore[union-attr]
    proc.handle([_Rec(proc.topics.their_cosignatures, (vtext + "\n" + impostor.cosign(vtext, 1)).encode())])
    assert proc.counts.rejected_cosignatures == 2
    # a malformed 409 answer is counted, not obeyed
    proc.handle([_Rec(proc.topics.their_cosignatures, b"-1\n", "409")])
    assert proc.counts.rejected_cosignatures == 3
    assert isinstance(proc.counterpart_witness, CosignatureVerifier)


def test_a_409_makes_the_next_submission_start_from_the_witness_size(tmp_path: Path, make_event: Any) -> None:
    proc, _vn, cn = _processor(tmp_path, make_event)
    grow(cn, make_event)
    grow(cn, make_event)
    nxt = proc.next_submission()
    assert nxt is not None
    assert nxt[1].startswith(b"old 0\n")
    proc.published(nxt[0])
    assert proc.next_submission() is None  # nothing new
    proc.handle([_Rec(proc.topics.their_cosignatures, b"10\n", "409")])
    again = proc.next_submission()
    assert again is not None
    assert again[0] == 20
    assert again[1].startswith(b"old 10\n")


def test_contract_vectors_carry_the_audit_topic_messages(tmp_path: Path) -> None:
    """The counterpart's implementers get what travels on the audit topics: a submission and a cosigned note."""
    import json

    from xborder_gateway.audit.cosignature import CosignatureVerifier, verify_cosignature
    from xborder_gateway.audit.note import Checkpoint, NoteVerifier
    from xborder_gateway.audit.witness import parse_submission
    from xborder_gateway.contract import MANIFEST_NAME, write_vectors

    write_vectors(tmp_path)
    keys = json.loads((tmp_path / MANIFEST_NAME).read_text())["keys"]
    for site, other in (("vn", "CN"), ("cn", "VN")):
        old, proof, note = parse_submission((tmp_path / f"checkpoints/{site}-submission.txt").read_bytes())
        assert (old, proof) == (0, [])
        assert note == (tmp_path / f"checkpoints/{site}-checkpoint.note").read_text()
        cp = Checkpoint.open(note, NoteVerifier.parse(keys["note_verifier_keys"][site.upper()]))
        cosigned = (tmp_path / f"checkpoints/{site}-cosigned-by-{other.lower()}.note").read_text()
        witness = CosignatureVerifier.parse(keys["cosignature_verifier_keys"][other])
        assert verify_cosignature(cosigned, witness).timestamp == 1_764_000_000
        assert cosigned.startswith(cp.to_text())
