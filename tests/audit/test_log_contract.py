"""The AuditLog contract, run on every backend (SQLite always; PostgreSQL when XBG_POSTGRES_URL is set).

Fixtures (``settings``, ``make_event``, ``raw_db``) are in this directory's conftest.py.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from xborder_gateway.audit import (
    AuditLog,
    AuditVerificationError,
    Checkpoint,
    EventType,
    NoteSigner,
    merkle,
    verify_bundle,
)
from xborder_gateway.audit.note import sign_note
from xborder_gateway.config import Settings
from xborder_gateway.errors import AuditIntegrityError, ConfigError, GatewayError

T0 = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)


def fill(log: AuditLog, make_event: Any, n: int, batches: tuple[int, ...] = (1, 3, 7, 2)) -> list[bytes]:
    """Append n events in uneven batches; return their entry bytes."""
    entries: list[bytes] = []
    i = 0
    k = 0
    while i < n:
        size = min(batches[k % len(batches)], n - i)
        events = [make_event(j) for j in range(i, i + size)]
        assert log.append(events) == list(range(i, i + size))
        entries += [e.canonical_bytes() for e in events]
        i += size
        k += 1
    return entries


def test_append_returns_indexes_and_root_matches_the_rfc(settings: Settings, make_event: Any) -> None:
    with AuditLog.open(settings, "VN") as log:
        assert log.size() == 0
        assert log.root() == merkle.EMPTY_ROOT
        assert log.append([]) == []
        entries = fill(log, make_event, 37)
        leaves = [merkle.leaf_hash(e) for e in entries]
        assert log.size() == 37
        for size in (1, 2, 5, 16, 17, 37):
            assert log.root(size) == merkle.root_from_leaf_hashes(leaves[:size])
        assert log.get(12).entry == entries[12]
        assert log.get(12).leaf_hash == leaves[12]


def test_every_proof_verifies_against_the_root(settings: Settings, make_event: Any) -> None:
    with AuditLog.open(settings, "VN") as log:
        fill(log, make_event, 33)
        roots = {n: log.root(n) for n in range(34)}
        for size in (1, 2, 3, 8, 13, 32, 33):
            for index in range(size):
                proof = log.inclusion_proof(index, size)
                assert proof.verify(roots[size]), (index, size)
                assert not proof.verify(roots[size - 1]) if size > 1 else True
        for new in (1, 9, 32, 33):
            for old in range(new + 1):
                cproof = log.consistency_proof(old, new)
                assert cproof.verify(), (old, new)
                assert (cproof.old_root, cproof.new_root) == (roots[old], roots[new])
        with pytest.raises(GatewayError) as info:
            log.inclusion_proof(33, 33)
        assert info.value.code == "AUDIT_BAD_INDEX"
        with pytest.raises(GatewayError):
            log.inclusion_proof(0, 34)
        with pytest.raises(GatewayError):
            log.consistency_proof(5, 4)


def test_checkpoints_every_n_entries_are_signed_and_consistent(settings: Settings, make_event: Any) -> None:
    # settings: a checkpoint every 10 entries (and a time window of an hour, so only the count matters)
    with AuditLog.open(settings, "VN") as log:
        for start in range(0, 35, 5):
            log.append([make_event(i) for i in range(start, start + 5)])
        cps = log.checkpoints()
        # the first append signs at once (no checkpoint yet), then every 10 entries
        assert [c.checkpoint.size for c in cps] == [5, 15, 25, 35]
        assert log.verifier is not None
        previous = None
        for signed in cps:
            cp = Checkpoint.open(signed.note, log.verifier)
            assert cp.root == log.root(cp.size)
            if previous is not None:
                assert log.consistency_proof(previous.size, cp.size).verify()
            previous = cp
        latest = log.latest_checkpoint()
        assert latest is not None
        assert latest.checkpoint.size == 35
        assert log.checkpoint_now() is None  # already covers everything
        log.append([make_event(35)])
        issued = log.checkpoint_now()
        assert issued is not None
        assert issued.checkpoint.size == 36


def test_checkpoint_due_by_time(settings_factory: Any, make_event: Any) -> None:
    settings = settings_factory(audit_checkpoint_entries=1000, audit_checkpoint_seconds=0.05)
    with AuditLog.open(settings, "VN", background_checkpoints=False) as log:
        log.append([make_event(0)])
        log.append([make_event(1)])
        assert [c.checkpoint.size for c in log.checkpoints()] == [1]
        import time

        time.sleep(0.06)
        assert log.maybe_checkpoint() is not None
        assert [c.checkpoint.size for c in log.checkpoints()] == [1, 2]


def test_idle_log_gets_its_trailing_entries_checkpointed(settings_factory: Any, make_event: Any) -> None:
    import time

    settings = settings_factory(audit_checkpoint_entries=1000, audit_checkpoint_seconds=0.2)
    with AuditLog.open(settings, "VN") as log:
        log.append([make_event(0)])
        log.append([make_event(1), make_event(2)])  # not due yet: 2 entries, < 0.2 s
        assert [c.checkpoint.size for c in log.checkpoints()] == [1]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(log.checkpoints()) < 2:
            time.sleep(0.05)
        assert [c.checkpoint.size for c in log.checkpoints()] == [1, 3], "the idle ticker signed the tail"


def test_search_filters(settings: Settings, make_event: Any) -> None:
    with AuditLog.open(settings, "VN") as log:
        fill(log, make_event, 40)
        by_msg = log.search(message_id="msg-000003")
        assert [e.index for e in by_msg] == [12, 13, 14, 15]
        by_decl = log.search(business_key="305100000003", event_type="sealed")
        assert [e.index for e in by_decl] == [14]
        assert all(e.event.event_type is EventType.SENT for e in log.search(event_type="sent"))
        window = log.search(since=T0 + timedelta(seconds=10), until=T0 + timedelta(seconds=13))
        assert [e.index for e in window] == [10, 11, 12]
        page1 = log.search(limit=15)
        page2 = log.search(after=page1[-1].index, limit=15)
        assert [e.index for e in page1 + page2] == list(range(30))
        assert log.search(message_id="no-such") == []


def test_bundle_verifies_offline_and_tampered_bundles_do_not(settings: Settings, make_event: Any) -> None:
    with AuditLog.open(settings, "VN") as log:
        fill(log, make_event, 23)
        bundle = log.bundle(17)
        vkey = str(log.verifier)
    text = json.dumps(bundle)
    result = verify_bundle(text, vkey)
    assert result.index == 17
    assert result.key_trusted
    assert result.event.kafka_offset == 17
    assert not verify_bundle(text).key_trusted

    other_key = str(NoteSigner(log.origin, Ed25519PrivateKey.generate()).verifier)

    def mutate(path: list[Any], value: Any) -> dict[str, Any]:
        b = json.loads(text)
        target = b
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value(target[path[-1]]) if callable(value) else value
        return b

    flip = lambda h: ("0" if h[0] != "0" else "1") + h[1:]  # noqa: E731
    hostile = {
        "proof hash changed": mutate(["inclusion_proof", "hashes", 0], flip),
        "proof hash removed": mutate(["inclusion_proof", "hashes"], lambda hs: hs[1:]),
        "leaf index changed": mutate(["inclusion_proof", "leaf_index"], 16),
        "entry index changed": mutate(["entry", "index"], 16),
        "tree size changed": mutate(["inclusion_proof", "tree_size"], lambda n: n + 1),
        "readable entry changed": mutate(["entry", "entry", "business_key"], "305199999999"),
        "entry bytes changed": mutate(["entry", "entry_b64"],
                                      lambda b: __import__("base64").b64encode(
                                          __import__("base64").b64decode(b).replace(b"msg-", b"msh-")).decode()),
        "checkpoint root changed": mutate(["checkpoint"], lambda n: n.replace("\n", "\n", 1)[:40] + "A" + n[41:]),
        "wrong format": mutate(["format"], "other"),
        "leaf hash changed": mutate(["entry", "leaf_hash"], flip),
    }
    accepted = []
    for name, b in hostile.items():
        try:
            verify_bundle(json.dumps(b), vkey)
        except AuditIntegrityError:
            continue
        accepted.append(name)
    assert accepted == [], f"tampered bundles accepted: {accepted}"
    with pytest.raises(AuditIntegrityError) as info:
        verify_bundle(text, other_key)
    assert info.value.code == "NOTE_UNKNOWN_SIGNER"


def test_update_and_delete_are_refused(settings: Settings, make_event: Any, raw_db: Any) -> None:
    with AuditLog.open(settings, "VN") as log:
        fill(log, make_event, 5)
    statements = [
        "UPDATE {p}entries SET business_key = 'x' WHERE idx = 1",
        "DELETE FROM {p}entries WHERE idx = 4",
        "UPDATE {p}nodes SET hash = hash WHERE level = 0 AND idx = 0",
        "DELETE FROM {p}nodes",
        "DELETE FROM {p}checkpoints",
        "UPDATE {p}meta SET v = 'x'",
    ]
    for sql in statements:
        with pytest.raises(Exception, match="append-only"):
            raw_db.run(sql)
    with AuditLog.open(settings, "VN") as log:
        assert log.verify().size == 5


TAMPERING = {
    "entry bytes changed": (
        "UPDATE {p}entries SET entry = ? WHERE idx = 6",
        lambda e: (e[6].replace(b'"kafka_offset":6', b'"kafka_offset":7'),),
        "AUDIT_LEAF_MISMATCH",
    ),
    "searchable column changed": (
        "UPDATE {p}entries SET business_key = '305199999999' WHERE idx = 6", lambda e: (), "AUDIT_COLUMN_MISMATCH"),
    "leaf hash changed": (
        "UPDATE {p}nodes SET hash = ? WHERE level = 0 AND idx = 6", lambda e: (bytes(32),), "AUDIT_LEAF_MISMATCH"),
    "entry deleted": ("DELETE FROM {p}entries WHERE idx = 6", lambda e: (), "AUDIT_ENTRIES_MISSING"),
    "entry replaced by a valid other event": (
        "UPDATE {p}entries SET entry = ? WHERE idx = 6", lambda e: (e[5],), "AUDIT_COLUMN_MISMATCH"),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampering_behind_the_back_is_found_and_the_entry_named(
    case: str, settings: Settings, make_event: Any, raw_db: Any
) -> None:
    with AuditLog.open(settings, "VN") as log:
        entries = fill(log, make_event, 20)
        assert log.verify().size == 20
    sql, params, code = TAMPERING[case]
    raw_db.drop_triggers()
    raw_db.run(sql, *params(entries))
    with AuditLog.open(settings, "VN", read_only=True) as log, pytest.raises(AuditVerificationError) as info:
        log.verify()
    assert info.value.entry_index == 6, info.value
    assert info.value.code == code
    assert "entry 6" in info.value.message


def test_internal_node_tampering_is_found(settings: Settings, make_event: Any, raw_db: Any) -> None:
    with AuditLog.open(settings, "VN") as log:
        fill(log, make_event, 20)
    raw_db.drop_triggers()
    raw_db.run("UPDATE {p}nodes SET hash = ? WHERE level = 2 AND idx = 1", bytes(32))
    with AuditLog.open(settings, "VN", read_only=True) as log, pytest.raises(AuditVerificationError) as info:
        log.verify()
    assert info.value.code == "AUDIT_NODE_MISMATCH"
    assert "entries 4..7" in info.value.message


def test_checkpoint_signed_by_another_key_is_rejected_by_verify(
    settings: Settings, make_event: Any, raw_db: Any
) -> None:
    with AuditLog.open(settings, "VN") as log:
        fill(log, make_event, 12)
        cp = log.latest_checkpoint()
        assert cp is not None
        origin = log.origin
    impostor = NoteSigner(origin, Ed25519PrivateKey.generate())
    forged = sign_note(cp.checkpoint.to_text(), impostor)
    raw_db.drop_triggers()
    raw_db.run("UPDATE {p}checkpoints SET note = ? WHERE size = ?", forged, cp.checkpoint.size)
    with AuditLog.open(settings, "VN", read_only=True) as log, pytest.raises(AuditVerificationError) as info:
        log.verify()
    assert info.value.code == "NOTE_UNKNOWN_SIGNER"
    # and an auditor holding the impostor's key instead of the published one is not fooled either
    with AuditLog.open(settings, "VN", read_only=True) as log, pytest.raises(AuditVerificationError):
        log.verify(impostor.verifier)


def test_an_inconsistent_tree_is_never_signed(settings: Settings, make_event: Any, raw_db: Any) -> None:
    with AuditLog.open(settings, "VN") as log:
        fill(log, make_event, 10, batches=(10,))
        assert [c.checkpoint.size for c in log.checkpoints()] == [10]
    raw_db.drop_triggers()
    raw_db.run("UPDATE {p}nodes SET hash = ? WHERE level = 3 AND idx = 0", bytes(32))  # on the right frontier
    with AuditLog.open(settings, "VN") as log:
        with pytest.raises(AuditIntegrityError) as info:
            log.append([make_event(i) for i in range(10, 20)])
        assert info.value.code == "CHECKPOINT_INCONSISTENT"
        assert log.size() == 10, "the refused append was rolled back"
        assert [c.checkpoint.size for c in log.checkpoints()] == [10]


def test_wrong_authority_and_read_only_are_refused(settings: Settings, make_event: Any) -> None:
    with AuditLog.open(settings, "VN") as log:
        with pytest.raises(ConfigError) as info:
            log.append([make_event(0, authority="CN")])
        assert info.value.code == "AUDIT_WRONG_AUTHORITY"
        log.append([make_event(0)])
    with AuditLog.open(settings, "VN", read_only=True) as log, pytest.raises(ConfigError):
        log.append([make_event(1)])
    with pytest.raises(ConfigError):
        AuditLog.open(settings, "US")


def test_vn_and_cn_logs_are_separate(settings: Settings, make_event: Any) -> None:
    with AuditLog.open(settings, "VN") as vn, AuditLog.open(settings, "CN") as cn:
        vn.append([make_event(i) for i in range(3)])
        cn.append([make_event(i, authority="CN", process="nanning") for i in range(5)])
        assert (vn.size(), cn.size()) == (3, 5)
        assert str(vn.verifier) != str(cn.verifier)
        assert cn.origin.endswith("/cn")


def test_reopen_continues_the_same_tree(settings: Settings, make_event: Any) -> None:
    with AuditLog.open(settings, "VN") as log:
        entries = fill(log, make_event, 9)
    with AuditLog.open(settings, "VN") as log:
        entries += [e.canonical_bytes() for e in (make_event(9), make_event(10))]
        assert log.append([make_event(9), make_event(10)]) == [9, 10]
        assert log.root() == merkle.root_from_leaf_hashes([merkle.leaf_hash(e) for e in entries])
        assert log.verify().size == 11


def test_signing_key_is_private_and_replacing_it_is_detected(settings: Settings, make_event: Any) -> None:
    from xborder_gateway.audit._keys import key_paths

    with AuditLog.open(settings, "VN") as log:
        log.append([make_event(0)])
    key_file, vkey_file = key_paths(settings, "VN")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key_file.unlink()
    vkey_file.unlink()
    with pytest.raises(AuditIntegrityError) as info:
        AuditLog.open(settings, "VN")
    assert info.value.code == "AUDIT_KEY_MISMATCH"


def test_signing_key_encrypted_with_the_passphrase(settings_factory: Any, make_event: Any) -> None:
    from xborder_gateway.audit._keys import key_paths

    settings = settings_factory(key_passphrase="correct horse")
    with AuditLog.open(settings, "VN") as log:
        log.append([make_event(0)])
    key_file, _ = key_paths(settings, "VN")
    assert b"ENCRYPTED PRIVATE KEY" in key_file.read_bytes()
    wrong = settings.model_copy(update={"key_passphrase": "wrong"})
    with pytest.raises(ConfigError) as info:
        AuditLog.open(wrong, "VN")
    assert info.value.code == "KEYS_PASSPHRASE"


WRITER = textwrap.dedent("""
    import sys, time
    from datetime import UTC, datetime
    from xborder_gateway.audit import AuditEvent, AuditLog
    from xborder_gateway.config import Settings
    worker, batches, per, start = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    while time.time() < start:  # every worker opens the fresh log at the same instant
        time.sleep(0.001)
    log = AuditLog.open(Settings(), "VN")
    for b in range(batches):
        log.append([AuditEvent(time=datetime.now(UTC), authority="VN", process=f"w{worker}", event_type="sent",
                               kafka_topic="t", kafka_partition=worker, kafka_offset=b * per + j)
                    for j in range(per)])
    log.close()
""")


@pytest.mark.slow
def test_concurrent_writers_in_separate_processes_serialise(settings: Settings) -> None:
    env = {**os.environ, "XBG_HOME": str(settings.home), "XBG_AUDIT_CHECKPOINT_ENTRIES": "100"}
    env.pop("XBG_AUDIT_URL", None)
    if settings.audit_url:
        env["XBG_AUDIT_URL"] = settings.audit_url
        env["XBG_AUDIT_PG_SCHEMA"] = settings.audit_pg_schema
    # a fresh home: the workers also race on creating the key, the schema and the first checkpoint
    workers, batches, per = 4, 15, 40
    import time

    start = time.time() + 2.0  # after every interpreter has started
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(w), str(batches), str(per), str(start)], env=env,
                              stderr=subprocess.PIPE, text=True) for w in range(workers)]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    with AuditLog.open(settings, "VN", read_only=True) as log:
        total = workers * batches * per
        assert log.size() == total
        report = log.verify()
        assert report.size == total
        seen = set()
        after = None
        while True:
            page = log.search(after=after, limit=1000)
            if not page:
                break
            seen |= {(e.event.process, e.event.kafka_offset) for e in page}
            after = page[-1].index
        assert len(seen) == total, "every event exactly once"
        assert report.checkpoints >= total // 100 - workers


def test_a_locked_database_is_a_retriable_transport_error(tmp_path: Any, make_event: Any) -> None:
    import sqlite3

    from xborder_gateway.audit.log import AuditConfig

    settings = Settings(home=tmp_path, audit_url=None)
    log = AuditLog.open(settings, "VN", config=AuditConfig(busy_timeout_s=0.2), background_checkpoints=False)
    log.append([make_event(0)])
    holder = sqlite3.connect(settings.audit_db("VN"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        with pytest.raises(GatewayError) as info:
            log.append([make_event(1)])
        assert info.value.retriable
        assert info.value.code in {"AUDIT_DB_BUSY", "AUDIT_DB_WRITE"}
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert log.append([make_event(1)]) == [1], "the same batch goes through once the lock is free"
    log.close()


def test_closing_a_writable_log_signs_its_tail(settings_factory: Any, make_event: Any) -> None:
    # a connector that stops before the T-seconds tick must not leave its last entries unsigned
    settings = settings_factory(audit_checkpoint_entries=1000, audit_checkpoint_seconds=3600)
    with AuditLog.open(settings, "VN") as log:
        log.append([make_event(0)])
        log.append([make_event(1), make_event(2)])  # not due: 2 entries, well within the hour
        assert [c.checkpoint.size for c in log.checkpoints()] == [1]
    with AuditLog.open(settings, "VN", read_only=True) as log:
        assert [c.checkpoint.size for c in log.checkpoints()] == [1, 3]
        assert log.verify().checkpoints == 2
