"""ENV-10 on SQLite: durable across restarts, recorded in the caller's transaction, purged after expiry."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from xborder_gateway.envelope import EnvelopeReplayError, SqliteReplayStore, open_envelope, seal


def _sealed(world: Any, kit: Any, **kw: Any) -> Any:
    return seal(kw.pop("payload", kit.avro_payload()), sender=world.vn, recipient="CN", trust=world.vn_trust,
                document_type="IDA", schema_fingerprint=kit.FP, now=kit.T0, **kw)


def test_survives_restart(world: Any, kit: Any, tmp_path: Path) -> None:
    path = tmp_path / "cn.sqlite"
    sealed = _sealed(world, kit)
    with SqliteReplayStore(path) as store:
        opened = open_envelope(sealed.data, me=world.cn, trust=world.cn_trust, replay=store, now=kit.T0)
        store.remember(opened.header, opened.sha256)
    with SqliteReplayStore(path) as store:
        record = store.lookup(sealed.message_id)
        assert record is not None
        assert record.sha256 == sealed.sha256
        assert record.sender == "VN"
        assert record.expires == sealed.header.expires
        with pytest.raises(EnvelopeReplayError) as err:
            open_envelope(sealed.data, me=world.cn, trust=world.cn_trust, replay=store, now=kit.T0)
        assert err.value.code == "ENV-10 REPLAYED"


def test_recorded_with_the_receipt_or_not_at_all(world: Any, kit: Any, tmp_path: Path) -> None:
    """A crash (exception) between storing the receipt and committing loses both: the message stays new."""
    store = SqliteReplayStore(tmp_path / "cn.sqlite")
    store.connection.execute("CREATE TABLE receipts (message_id TEXT PRIMARY KEY, receipt BLOB) STRICT")
    sealed = _sealed(world, kit)
    opened = open_envelope(sealed.data, me=world.cn, trust=world.cn_trust, replay=store, now=kit.T0)

    class CrashError(Exception):
        pass

    def store_receipt_then_crash() -> None:
        with store.transaction() as conn:
            conn.execute("INSERT INTO receipts VALUES (?, ?)", (str(opened.message_id), b"ack"))
            store.remember(opened.header, opened.sha256, conn=conn)
            raise CrashError

    with pytest.raises(CrashError):
        store_receipt_then_crash()
    assert store.lookup(opened.message_id) is None
    assert store.connection.execute("SELECT count(*) FROM receipts").fetchone()[0] == 0
    # the retry goes through and both rows land together
    opened = open_envelope(sealed.data, me=world.cn, trust=world.cn_trust, replay=store, now=kit.T0)
    with store.transaction() as conn:
        conn.execute("INSERT INTO receipts VALUES (?, ?)", (str(opened.message_id), b"ack"))
        store.remember(opened.header, opened.sha256, conn=conn)
    assert store.lookup(opened.message_id) is not None
    assert store.connection.execute("SELECT count(*) FROM receipts").fetchone()[0] == 1
    store.close()


def test_callers_own_connection(world: Any, kit: Any, tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "endpoint.sqlite", isolation_level=None)
    SqliteReplayStore.install(conn)
    sealed = _sealed(world, kit)
    conn.execute("BEGIN")
    SqliteReplayStore.remember_on(conn, sealed.header, sealed.sha256)
    conn.execute("ROLLBACK")
    with SqliteReplayStore(tmp_path / "endpoint.sqlite") as store:
        assert store.lookup(sealed.message_id) is None
    conn.execute("BEGIN")
    SqliteReplayStore.remember_on(conn, sealed.header, sealed.sha256)
    conn.execute("COMMIT")
    with SqliteReplayStore(tmp_path / "endpoint.sqlite") as store:
        assert store.lookup(sealed.message_id) is not None
    conn.close()


def test_remember_twice_conflict(world: Any, kit: Any, tmp_path: Path) -> None:
    a = _sealed(world, kit)
    b = _sealed(world, kit, message_id=a.message_id, payload=kit.avro_payload(b"changed"))
    with SqliteReplayStore(tmp_path / "s.sqlite") as store:
        store.remember(a.header, a.sha256)
        with pytest.raises(EnvelopeReplayError) as err:
            store.remember(b.header, b.sha256)
        assert err.value.code == "ENV-10 MESSAGE_ID_REUSED"
        with pytest.raises(EnvelopeReplayError) as err:
            store.remember(a.header, a.sha256)
        assert err.value.code == "ENV-10 REPLAYED"


def test_purge_after_expiry(world: Any, kit: Any, tmp_path: Path) -> None:
    sealed = _sealed(world, kit, ttl=timedelta(hours=1))
    with SqliteReplayStore(tmp_path / "s.sqlite") as store:
        store.remember(sealed.header, sealed.sha256)
        assert store.purge(kit.T0 + timedelta(minutes=59)) == 0
        assert store.lookup(sealed.message_id) is not None
        assert store.purge(kit.T0 + timedelta(hours=1, minutes=1)) == 1
        assert store.lookup(sealed.message_id) is None
