"""Issue 9 item 13: ``audit verify`` names each kind of checkpoint tampering with its own stable code.

Each case edits the database behind the application's back (triggers dropped, as an insider with
database access can) on both backends, then expects one code. Together with
``test_log_contract.py::TAMPERING`` these kill the mutations that inverted or deleted a check in
``AuditLog._verify`` and still passed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from xborder_gateway.audit import AuditLog, AuditVerificationError, Checkpoint, merkle
from xborder_gateway.audit._keys import load_or_create_signer
from xborder_gateway.audit.log import _Frontier
from xborder_gateway.audit.note import sign_note
from xborder_gateway.config import Settings

from .conftest import RawDb

N = 30  # checkpoints at 10, 20, 30 (audit_checkpoint_entries=10 in the settings fixture)


def _fill(settings: Settings, make_event: Any) -> list[bytes]:
    with AuditLog.open(settings, "VN", background_checkpoints=False) as log:
        events = [make_event(i) for i in range(N)]
        for start in range(0, N, 10):
            log.append(events[start:start + 10])
        assert [c.checkpoint.size for c in log.checkpoints()] == [10, 20, 30]
        assert log.verify().size == N
    return [e.canonical_bytes() for e in events]


def _rebuild_nodes(raw_db: RawDb, entries: list[bytes]) -> None:
    """Recompute every stored tree node from ``entries``: what a careful forger does after a rewrite."""
    frontier = _Frontier([])
    nodes: list[tuple[int, int, bytes]] = []
    for index, entry in enumerate(entries):
        frontier.push(index, merkle.leaf_hash(entry), nodes)
    raw_db._run([("DELETE FROM {p}nodes", ())] +
                [("INSERT INTO {p}nodes (level, idx, hash) VALUES (?, ?, ?)", n) for n in nodes])


def _stored_size_changed(raw_db: RawDb, settings: Settings, entries: list[bytes]) -> None:
    raw_db.run("UPDATE {p}checkpoints SET size = 15 WHERE size = 20")


def _stored_size_beyond_the_log(raw_db: RawDb, settings: Settings, entries: list[bytes]) -> None:
    # on main this was reported as "entries were deleted": the forged size was trusted before its note
    raw_db.run("UPDATE {p}checkpoints SET size = 99 WHERE size = 30")


def _stored_root_changed(raw_db: RawDb, settings: Settings, entries: list[bytes]) -> None:
    raw_db.run("UPDATE {p}checkpoints SET root = ? WHERE size = 20", bytes(32))


def _entry_rewritten_with_all_hashes(raw_db: RawDb, settings: Settings, entries: list[bytes]) -> None:
    forged = entries[12].replace(b'"kafka_offset":12', b'"kafka_offset":13')
    assert forged != entries[12]
    raw_db.run("UPDATE {p}entries SET entry = ? WHERE idx = 12", forged)
    _rebuild_nodes(raw_db, [*entries[:12], forged, *entries[13:]])


def _tail_deleted(raw_db: RawDb, settings: Settings, entries: list[bytes]) -> None:
    raw_db.run("DELETE FROM {p}entries WHERE idx >= 25")
    _rebuild_nodes(raw_db, entries[:25])  # nodes made to agree with what is left


def _note_of_another_origin(raw_db: RawDb, settings: Settings, entries: list[bytes]) -> None:
    signer = load_or_create_signer(settings, "VN")  # the log's own key: the signature is valid
    root = merkle.root_from_leaf_hashes([merkle.leaf_hash(e) for e in entries])
    other = Checkpoint("another.example/audit/vn", N, root)  # (opening the log here would restore the triggers)
    raw_db.run("UPDATE {p}checkpoints SET note = ? WHERE size = ?", sign_note(other.to_text(), signer), N)


CASES: dict[str, tuple[Callable[[RawDb, Settings, list[bytes]], None], str]] = {
    "stored checkpoint size differs from its note": (_stored_size_changed, "CHECKPOINT_TAMPERED"),
    "stored checkpoint size beyond the log": (_stored_size_beyond_the_log, "CHECKPOINT_TAMPERED"),
    "stored checkpoint root differs from its note": (_stored_root_changed, "CHECKPOINT_TAMPERED"),
    "signed root differs from the recomputed one": (_entry_rewritten_with_all_hashes, "CHECKPOINT_ROOT_MISMATCH"),
    "checkpointed tail deleted": (_tail_deleted, "AUDIT_TAIL_DELETED"),
    "validly signed note of another origin": (_note_of_another_origin, "CHECKPOINT_ORIGIN"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_verify_names_each_checkpoint_tampering(case: str, settings: Settings, make_event: Any,
                                                raw_db: RawDb) -> None:
    entries = _fill(settings, make_event)
    tamper, code = CASES[case]
    raw_db.drop_triggers()
    tamper(raw_db, settings, entries)
    with AuditLog.open(settings, "VN", read_only=True) as log, pytest.raises(AuditVerificationError) as info:
        log.verify()
    assert info.value.code == code, info.value


def test_the_codes_are_distinct_per_kind() -> None:
    kinds = {"size/root vs note": "CHECKPOINT_TAMPERED", "root vs tree": "CHECKPOINT_ROOT_MISMATCH",
             "tail": "AUDIT_TAIL_DELETED", "origin": "CHECKPOINT_ORIGIN", "gap": "AUDIT_ENTRIES_MISSING"}
    assert len(set(kinds.values())) == len(kinds)
    assert {code for _, code in CASES.values()} == set(kinds.values()) - {"AUDIT_ENTRIES_MISSING"}


def test_rewritten_entry_names_the_range(settings: Settings, make_event: Any, raw_db: RawDb) -> None:
    entries = _fill(settings, make_event)
    raw_db.drop_triggers()
    _entry_rewritten_with_all_hashes(raw_db, settings, entries)
    with AuditLog.open(settings, "VN", read_only=True) as log, pytest.raises(AuditVerificationError) as info:
        log.verify()
    assert info.value.entry_index == 10  # the first checkpoint after the good one at 10
    assert "10..19" in info.value.message


def test_tail_deleted_names_the_first_missing_entry(settings: Settings, make_event: Any, raw_db: RawDb) -> None:
    entries = _fill(settings, make_event)
    raw_db.drop_triggers()
    _tail_deleted(raw_db, settings, entries)
    with AuditLog.open(settings, "VN", read_only=True) as log, pytest.raises(AuditVerificationError) as info:
        log.verify()
    assert info.value.entry_index == 25
    assert "25..29" in info.value.message


@pytest.mark.parametrize("backend", ["sqlite"])  # the CLI reads the home's SQLite log; PostgreSQL is covered above
def test_cli_verify_exits_1_with_the_code(settings: Settings, make_event: Any, raw_db: RawDb,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from xborder_gateway._cli import main

    entries = _fill(settings, make_event)
    raw_db.drop_triggers()
    _tail_deleted(raw_db, settings, entries)
    assert main(["--home", str(settings.home), "audit", "verify"]) == 1
    assert "AUDIT_TAIL_DELETED" in capsys.readouterr().err
