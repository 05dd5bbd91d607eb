"""ENV-10: durable replay / de-duplication store (SQLite).

``check`` only reads; ``remember`` records. A receiver records a message id in the same transaction in
which it stores its receipt, so a crash can never leave "recorded but unanswered"::

    store = SqliteReplayStore(settings.state_db("CN"))
    opened = open_envelope(data, me=me, trust=trust, replay=store)       # raises ENV-10 on a duplicate
    with store.transaction() as conn:                                    # BEGIN IMMEDIATE … COMMIT
        conn.execute("INSERT INTO my_receipts …")                        # caller's own tables, same file
        store.remember(opened.header, opened.sha256, conn=conn)

A caller with its own ``sqlite3.Connection`` to any database can instead call
``SqliteReplayStore.install(conn)`` once and ``SqliteReplayStore.remember_on(conn, header, sha)``.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from xborder_gateway._private import enable_wal, prepare_sqlite
from xborder_gateway.envelope._errors import EnvelopeReplayError
from xborder_gateway.envelope._format import EnvelopeHeader, from_ms, to_ms

__all__ = ["MemoryReplayGuard", "ReplayRecord", "SqliteReplayStore"]

TABLE = "envelope_replay"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    message_id   BLOB PRIMARY KEY CHECK (length(message_id) = 16),
    sender       TEXT NOT NULL,
    sha256       BLOB NOT NULL CHECK (length(sha256) = 32),
    expires_ms   INTEGER NOT NULL,
    recorded_ms  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {TABLE}_expires ON {TABLE} (expires_ms);
"""


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    message_id: uuid.UUID
    sender: str
    sha256: bytes
    expires: datetime
    recorded: datetime


def _raise_replay(header: EnvelopeHeader, stored: bytes, received: bytes) -> None:
    if stored == received:
        raise EnvelopeReplayError(
            f"message {header.message_id} was already processed (same envelope bytes)",
            code="ENV-10 REPLAYED", header=header, stored_sha256=stored, envelope_sha256=received,
            hint="answer with the original receipt; do not process again",
        )
    raise EnvelopeReplayError(
        f"message id {header.message_id} was already used for a different envelope",
        code="ENV-10 MESSAGE_ID_REUSED", header=header, stored_sha256=stored, envelope_sha256=received,
        hint="the sender re-sealed a message under an old id, or someone replays a signed id; investigate",
    )


class MemoryReplayGuard:
    """A non-durable guard (tests, benchmarks). Not for production: forgets on restart."""

    def __init__(self) -> None:
        self._seen: dict[uuid.UUID, bytes] = {}

    def check(self, header: EnvelopeHeader, envelope_sha256: bytes) -> None:
        stored = self._seen.get(header.message_id)
        if stored is not None:
            _raise_replay(header, stored, envelope_sha256)

    def remember(self, header: EnvelopeHeader, envelope_sha256: bytes) -> None:
        self._seen.setdefault(header.message_id, envelope_sha256)


class SqliteReplayStore:
    """Durable message-id store in a SQLite file (WAL, ``synchronous=FULL``). One instance per thread."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        prepare_sqlite(self.path)  # 0600 in a 0700 directory, -wal/-shm alike (issue 9 item 7)
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        enable_wal(self._conn)
        self._conn.execute("PRAGMA synchronous=FULL")
        self.install(self._conn)

    @staticmethod
    def install(conn: sqlite3.Connection) -> None:
        """Create the table on a caller's connection (idempotent)."""
        conn.executescript(_SCHEMA)

    @staticmethod
    def remember_on(conn: sqlite3.Connection, header: EnvelopeHeader, envelope_sha256: bytes,
                    now: datetime | None = None) -> None:
        """Record inside the caller's open transaction (no commit). A conflicting row raises ENV-10."""
        when = now or datetime.now(UTC)
        # issue 13: one statement when the id is new (nearly always); the stored digest is read only on a
        # conflict, to raise the same ENV-10 error as before (nothing is inserted either way)
        cur = conn.execute(
            f"INSERT INTO {TABLE} (message_id, sender, sha256, expires_ms, recorded_ms) VALUES (?, ?, ?, ?, ?) "  # noqa: S608
            "ON CONFLICT (message_id) DO NOTHING",
            (header.message_id.bytes, header.sender, envelope_sha256, to_ms(header.expires), to_ms(when)),
        )
        if cur.rowcount == 1:
            return
        row = conn.execute(f"SELECT sha256 FROM {TABLE} WHERE message_id = ?",  # noqa: S608 - constant name
                           (header.message_id.bytes,)).fetchone()
        if row is not None:
            _raise_replay(header, bytes(row[0]), envelope_sha256)
        raise sqlite3.IntegrityError(f"{TABLE}: message id {header.message_id} was neither inserted nor found")

    @property
    def connection(self) -> sqlite3.Connection:
        """The store's own connection (autocommit mode; use :meth:`transaction` to group writes)."""
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error) on the store's connection."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def check(self, header: EnvelopeHeader, envelope_sha256: bytes) -> None:
        record = self.lookup(header.message_id)
        if record is not None:
            _raise_replay(header, record.sha256, envelope_sha256)

    def remember(self, header: EnvelopeHeader, envelope_sha256: bytes, *, conn: sqlite3.Connection | None = None,
                 now: datetime | None = None) -> None:
        """Record the id. With ``conn``: inside that open transaction; without: in its own, committed."""
        if conn is not None:
            self.remember_on(conn, header, envelope_sha256, now)
            return
        with self.transaction() as own:
            self.remember_on(own, header, envelope_sha256, now)

    def lookup(self, message_id: uuid.UUID) -> ReplayRecord | None:
        row = self._conn.execute(
            f"SELECT sender, sha256, expires_ms, recorded_ms FROM {TABLE} WHERE message_id = ?",  # noqa: S608
            (message_id.bytes,),
        ).fetchone()
        if row is None:
            return None
        return ReplayRecord(message_id, str(row[0]), bytes(row[1]), from_ms(int(row[2])), from_ms(int(row[3])))

    def purge(self, before: datetime) -> int:
        """Forget ids whose envelopes expired before ``before`` (pass now − max clock skew); returns how many.

        Safe because ENV-8 refuses such envelopes anyway.
        """
        cur = self._conn.execute(f"DELETE FROM {TABLE} WHERE expires_ms < ?", (to_ms(before),))  # noqa: S608
        return int(cur.rowcount)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> SqliteReplayStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
