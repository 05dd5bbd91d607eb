"""The witness core: cosign only what extends the record; alarms for older, forked, inconsistent checkpoints."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from xborder_gateway.audit import AuditLog, NoteSigner, merkle
from xborder_gateway.audit.cosignature import CosignatureSigner, verify_cosignature
from xborder_gateway.audit.cosignature import add_signature_lines as add_lines
from xborder_gateway.audit.note import Checkpoint, sign_note
from xborder_gateway.audit.witness import (
    Alarm,
    Conflict,
    Cosigned,
    Refused,
    Witness,
    WitnessStore,
    alarm_event,
    format_submission,
    parse_submission,
    report_alarm,
)
from xborder_gateway.config import Settings

ORIGIN = "vn.example/audit/vn"


class Log:
    """A tiny in-memory log with a real signing key: checkpoints and proofs from the project's merkle code."""

    def __init__(self) -> None:
        self.signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
        self.leaves: list[bytes] = []

    def grow(self, n: int) -> None:
        self.leaves += [merkle.leaf_hash(f"entry {len(self.leaves) + i}".encode()) for i in range(n)]

    def root(self, size: int | None = None) -> bytes:
        return merkle.root_from_leaf_hashes(self.leaves[: len(self.leaves) if size is None else size])

    def note(self, size: int | None = None, root: bytes | None = None) -> str:
        size = len(self.leaves) if size is None else size
        return sign_note(Checkpoint(ORIGIN, size, root or self.root(size)).to_text(), self.signer)

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        new = len(self.leaves) if new is None else new
        if not old:
            return []
        return [merkle.root_from_leaf_hashes(self.leaves[a:b]) for a, b in merkle.consistency_ranges(old, new)]


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def store(tmp_path: Path) -> WitnessStore:
    return WitnessStore(tmp_path / "witness.sqlite")


@pytest.fixture
def witness(log: Log, store: WitnessStore) -> Witness:
    return Witness(CosignatureSigner("cn.example/witness/cn", Ed25519PrivateKey.generate()),
                   {ORIGIN: log.signer.verifier}, store, clock=lambda: 1_800_000_000.0)


def test_first_then_next_checkpoint_is_cosigned_and_recorded(log: Log, witness: Witness) -> None:
    log.grow(5)
    first = witness.process(log.note(), 0, [])
    assert isinstance(first, Cosigned), first
    assert (first.size, first.timestamp) == (5, 1_800_000_000)
    cosigned = add_lines(log.note(), [first.line])
    assert verify_cosignature(cosigned, witness.signer.verifier).timestamp == 1_800_000_000
    log.grow(8)
    second = witness.process(log.note(), 5, log.proof(5))
    assert isinstance(second, Cosigned), second
    assert witness.store.latest(ORIGIN) == (13, log.root())
    again = witness.process(log.note(), 13, [])  # the same checkpoint again: same size, same root
    assert isinstance(again, Cosigned)


def test_a_submission_round_trips(log: Log, witness: Witness) -> None:
    log.grow(3)
    assert isinstance(witness.process_submission(format_submission(0, [], log.note())), Cosigned)
    log.grow(4)
    body = format_submission(3, log.proof(3), log.note())
    assert parse_submission(body) == (3, log.proof(3), log.note())
    assert isinstance(witness.process_submission(body), Cosigned)
    for bad in (b"", b"old 01\n\n" + log.note().encode(), b"old 3\nnot-base64\n\n" + log.note().encode(),
                b"old 3\n" + b"AAAA\n" + b"\n" + log.note().encode(), b"\xff\xfe"):
        result = witness.process_submission(bad)
        assert isinstance(result, Refused), bad
        assert result.status == 400


def test_old_size_not_ours_is_a_conflict_with_our_size(log: Log, witness: Witness) -> None:
    log.grow(5)
    witness.process(log.note(), 0, [])
    log.grow(5)
    result = witness.process(log.note(), 3, log.proof(3))
    assert result == Conflict(ORIGIN, 5)
    assert witness.store.latest(ORIGIN) == (5, log.root(5)), "a conflict changes nothing"


@pytest.mark.parametrize("case", ["older", "fork", "inconsistent", "inconsistent from zero"])
def test_contradicting_checkpoints_are_alarms_and_never_cosigned(case: str, log: Log, witness: Witness) -> None:
    log.grow(10)
    assert isinstance(witness.process(log.note(), 0, []), Cosigned)
    recorded = witness.store.latest(ORIGIN)
    if case == "older":
        result, kind = witness.process(log.note(6), 0, []), "CHECKPOINT_OLDER"
    elif case == "fork":
        result, kind = witness.process(log.note(10, root=bytes(32)), 10, []), "CHECKPOINT_FORK"
    elif case == "inconsistent":
        forked = Log()
        forked.signer = log.signer  # the dishonest operator signs with the real key
        forked.leaves = [*log.leaves[:3], merkle.leaf_hash(b"rewritten"), *log.leaves[4:]]
        forked.grow(5)
        result, kind = witness.process(forked.note(), 10, forked.proof(10)), "CHECKPOINT_INCONSISTENT"
    else:
        log.grow(2)
        result, kind = witness.process(log.note(), 10, [bytes(32)]), "CHECKPOINT_INCONSISTENT"
    assert isinstance(result, Alarm), result
    assert result.kind == kind
    assert result.latest_size == 10
    assert witness.store.latest(ORIGIN) == recorded, "nothing was recorded"
    assert "WITNESS ALARM" in result.log_line()


def test_a_proof_from_zero_is_refused_when_not_empty(log: Log, witness: Witness) -> None:
    log.grow(4)
    result = witness.process(log.note(), 0, [bytes(32)])
    assert isinstance(result, Alarm)
    assert witness.store.latest(ORIGIN) is None


@pytest.mark.parametrize(("case", "status", "code"), [
    ("unknown origin", 404, "WITNESS_UNKNOWN_LOG"),
    ("signed by another key", 403, "WITNESS_BAD_SIGNATURE"),
    ("old size beyond the checkpoint", 400, "WITNESS_BAD_REQUEST"),
    ("not a checkpoint", 400, "WITNESS_BAD_REQUEST"),
])
def test_refusals(case: str, status: int, code: str, log: Log, witness: Witness) -> None:
    log.grow(4)
    if case == "unknown origin":
        note = sign_note(Checkpoint("other.example/log", 4, log.root()).to_text(), log.signer)
        result = witness.process(note, 0, [])
    elif case == "signed by another key":
        note = sign_note(Checkpoint(ORIGIN, 4, log.root()).to_text(), NoteSigner(ORIGIN, Ed25519PrivateKey.generate()))
        result = witness.process(note, 0, [])
    elif case == "old size beyond the checkpoint":
        result = witness.process(log.note(), 9, [])
    else:
        result = witness.process("hello\n\n\u2014 x AAAA\n", 0, [])
    assert isinstance(result, Refused), result
    assert (result.status, result.code) == (status, code)
    assert witness.store.latest(ORIGIN) is None


def test_the_record_is_durable(log: Log, witness: Witness, tmp_path: Path) -> None:
    log.grow(7)
    witness.process(log.note(), 0, [])
    witness.store.close()
    reopened = WitnessStore(tmp_path / "witness.sqlite")
    assert reopened.latest(ORIGIN) == (7, log.root())
    again = Witness(witness.signer, witness.logs, reopened)
    assert isinstance(again.process(log.note(6), 0, []), Alarm), "an older one is still refused after a restart"


def test_compare_and_set_lets_one_of_two_racing_witnesses_advance(log: Log, tmp_path: Path) -> None:
    """WIT-3: two witness processes on one store, both deciding from size 5, to different roots."""
    path = tmp_path / "shared.sqlite"
    log.grow(5)
    a = WitnessStore(path)
    b = WitnessStore(path)
    base = (5, log.root())
    assert a.advance(ORIGIN, None, base, log.note())
    assert not b.advance(ORIGIN, None, (5, bytes(32)), "x"), "a second first-time insert loses"
    results: list[bool] = []
    barrier = threading.Barrier(2)

    def race(store: WitnessStore, root: bytes) -> None:
        barrier.wait()
        results.append(store.advance(ORIGIN, base, (9, root), "note"))

    threads = [threading.Thread(target=race, args=(a, b"\x01" * 32)),
               threading.Thread(target=race, args=(b, b"\x02" * 32))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, True]
    assert a.latest(ORIGIN) == b.latest(ORIGIN)
    assert a.latest(ORIGIN) in ((9, b"\x01" * 32), (9, b"\x02" * 32))


def test_stale_decision_is_rechecked_before_cosigning(log: Log, witness: Witness, store: WitnessStore,
                                                      tmp_path: Path) -> None:
    """A witness that read the record, then lost the race, answers Conflict and signs nothing."""
    log.grow(5)
    witness.process(log.note(), 0, [])
    log.grow(3)
    other = WitnessStore(store.path)
    real_latest = store.latest

    def latest_then_someone_else_advances(origin: str) -> Any:
        seen = real_latest(origin)
        other.advance(ORIGIN, seen, (8, log.root()), log.note())
        return seen

    store.latest = latest_then_someone_else_advances  # type: ignore[method-assign]
    result = witness.process(log.note(), 5, log.proof(5))
    assert isinstance(result, Conflict)


def test_report_alarm_logs_error_counts_and_audits(log: Log, witness: Witness, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture, make_event: Any) -> None:
    from prometheus_client import REGISTRY

    log.grow(4)
    witness.process(log.note(), 0, [])
    alarm = witness.process(log.note(3), 0, [])
    assert isinstance(alarm, Alarm)
    settings = Settings(home=tmp_path / "cn", audit_url=None)
    before = REGISTRY.get_sample_value("xbg_witness_alarms_total", {"origin": ORIGIN, "kind": "CHECKPOINT_OLDER"})
    with AuditLog.open(settings, "CN", background_checkpoints=False) as own_log:
        report_alarm(alarm, lambda a: own_log.append([alarm_event(a, "CN")]))
        entry = own_log.get(0)
    assert entry.event.event_type.value == "witness_alarm"
    assert entry.event.reason_code is not None
    assert entry.event.reason_code.startswith("CHECKPOINT_OLDER")
    assert any(r.levelname == "ERROR" and "WITNESS ALARM" in r.getMessage() for r in caplog.records)
    after = REGISTRY.get_sample_value("xbg_witness_alarms_total", {"origin": ORIGIN, "kind": "CHECKPOINT_OLDER"})
    assert after == (before or 0) + 1
