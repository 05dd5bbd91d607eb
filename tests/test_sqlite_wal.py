"""enable_wal: connectors that create one state file at once must all get it in WAL mode (the demo's
connectors start together; one of them failed with ``database is locked`` from the journal-mode change in
CI, where SQLite returns SQLITE_BUSY without calling the busy handler)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from xborder_gateway._private import enable_wal


def test_the_journal_mode_change_is_retried_until_the_other_connection_lets_go(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN")
    holder.execute("SELECT * FROM t").fetchall()  # a shared lock: the switch to WAL must wait for it
    late = sqlite3.connect(db, isolation_level=None, timeout=0, check_same_thread=False)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        late.execute("PRAGMA journal_mode = WAL").fetchone()  # what the connectors met: refused at once
    errors: list[BaseException] = []

    def switch() -> None:
        try:
            enable_wal(late, timeout_s=10)
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)

    worker = threading.Thread(target=switch)
    worker.start()
    time.sleep(0.3)
    assert worker.is_alive(), "enable_wal keeps trying while the lock is held"
    holder.execute("COMMIT")
    worker.join(10)
    assert not errors
    assert late.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    holder.close()
    late.close()


def test_it_gives_up_after_its_timeout_with_the_sqlite_error(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN")
    holder.execute("SELECT * FROM t").fetchall()
    late = sqlite3.connect(db, isolation_level=None, timeout=0)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        enable_wal(late, timeout_s=0.2)
    assert time.monotonic() - started >= 0.2
    holder.execute("ROLLBACK")
    holder.close()
    late.close()


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.sqlite")
    conn.close()
    with pytest.raises(sqlite3.ProgrammingError):
        enable_wal(conn, timeout_s=5)  # a closed connection: raised at once, not after 5 s
