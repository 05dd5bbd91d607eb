"""Storage of the audit log: SQLite (default) and PostgreSQL, one contract.

Tables (same shape on both): ``entries`` (index, canonical entry bytes, and copies of the searchable
fields), ``nodes`` (the hash of every complete aligned subtree, level 0 = leaf hashes), ``checkpoints``
(signed notes) and ``meta``. Triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) on all
of them (AUD-3). Writers serialise on the database: ``BEGIN IMMEDIATE`` on SQLite, a transaction-level
advisory lock on PostgreSQL, and read the tree size inside that transaction (AUD-4).
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xborder_gateway._private import enable_wal, prepare_sqlite
from xborder_gateway.audit.merkle import NodeKey
from xborder_gateway.errors import ConfigError, TransportError

__all__ = ["EntryRow", "SearchFilter", "Store", "open_store"]

SCHEMA_VERSION = "1"
ENTRY_COLUMNS = (
    "idx, entry, time_us, authority, process, event_type, message_id, business_key, document_type, outcome"
)

EntryRow = tuple[int, bytes, int, str, str, str, str | None, str | None, str | None, str]
NodeRow = tuple[int, int, bytes]
CheckpointRow = tuple[int, bytes, str, int]


@dataclass(frozen=True)
class SearchFilter:
    message_id: str | None = None
    business_key: str | None = None
    event_type: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    after: int | None = None
    limit: int = 100

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("message_id", self.message_id), ("business_key", self.business_key),
                              ("event_type", self.event_type)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.since_us is not None:
            clauses.append("time_us >= ?")
            params.append(self.since_us)
        if self.until_us is not None:
            clauses.append("time_us < ?")
            params.append(self.until_us)
        if self.after is not None:
            clauses.append("idx > ?")
            params.append(self.after)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class Store(ABC):
    """The operations the log needs; SQL is shared, dialects differ in connection and DDL."""

    #: how the dialect spells a bound parameter
    param = "?"
    prefix = ""

    def _q(self, sql: str) -> str:
        sql = sql.replace("{p}", self.prefix)
        return sql if self.param == "?" else sql.replace("?", self.param)

    @abstractmethod
    def _exec(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def write(self) -> contextlib.AbstractContextManager[None]:
        """An exclusive write transaction."""

    @abstractmethod
    def insert(self, entries: Sequence[EntryRow], nodes: Sequence[NodeRow]) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    description = ""

    # --- reads -----------------------------------------------------------------------------
    def size(self) -> int:
        rows = self._exec(self._q("SELECT MAX(idx) FROM {p}entries"))
        value = rows[0][0] if rows else None
        return 0 if value is None else int(value) + 1

    def nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        out: dict[NodeKey, bytes] = {}
        for start in range(0, len(wanted), 100):
            chunk = wanted[start : start + 100]
            # An OR of primary-key equalities: both SQLite ("MULTI-INDEX OR") and PostgreSQL (BitmapOr)
            # answer it with one index probe per key. (A row-value IN (VALUES …) makes SQLite scan.)
            where = " OR ".join("(level = ? AND idx = ?)" for _ in chunk)
            params = [v for key in chunk for v in key]
            sql = self._q(f"SELECT level, idx, hash FROM {{p}}nodes WHERE {where}")  # noqa: S608 - placeholders only
            for level, idx, h in self._exec(sql, params):
                out[(int(level), int(idx))] = bytes(h)
        return out

    def node_range(self, level: int, lo: int, hi: int) -> dict[int, bytes]:
        rows = self._exec(self._q("SELECT idx, hash FROM {p}nodes WHERE level = ? AND idx >= ? AND idx < ?"),
                          (level, lo, hi))
        return {int(i): bytes(h) for i, h in rows}

    def max_node_level(self) -> int:
        rows = self._exec(self._q("SELECT MAX(level) FROM {p}nodes"))
        return -1 if not rows or rows[0][0] is None else int(rows[0][0])

    def count_nodes(self, level: int) -> int:
        return int(self._exec(self._q("SELECT COUNT(*) FROM {p}nodes WHERE level = ?"), (level,))[0][0])

    def entry(self, index: int) -> EntryRow | None:
        rows = self._exec(self._q(f"SELECT {ENTRY_COLUMNS} FROM {{p}}entries WHERE idx = ?"), (index,))  # noqa: S608
        return _entry_row(rows[0]) if rows else None

    def entries(self, lo: int, hi: int) -> list[EntryRow]:
        sql = f"SELECT {ENTRY_COLUMNS} FROM {{p}}entries WHERE idx >= ? AND idx < ? ORDER BY idx"  # noqa: S608
        rows = self._exec(self._q(sql), (lo, hi))
        return [_entry_row(r) for r in rows]

    def search(self, flt: SearchFilter) -> list[EntryRow]:
        where, params = flt.where()
        # ``where`` holds fixed column names and placeholders only; values are bound
        sql = self._q(f"SELECT {ENTRY_COLUMNS} FROM {{p}}entries{where} ORDER BY idx LIMIT ?")  # noqa: S608
        return [_entry_row(r) for r in self._exec(sql, [*params, flt.limit])]

    def last_checkpoint(self) -> CheckpointRow | None:
        rows = self._exec(self._q("SELECT size, root, note, issued_us FROM {p}checkpoints ORDER BY size DESC LIMIT 1"))
        return _cp_row(rows[0]) if rows else None

    def checkpoint_covering(self, size: int) -> CheckpointRow | None:
        rows = self._exec(self._q(
            "SELECT size, root, note, issued_us FROM {p}checkpoints WHERE size >= ? ORDER BY size LIMIT 1"), (size,))
        return _cp_row(rows[0]) if rows else None

    def checkpoint_at(self, size: int) -> CheckpointRow | None:
        rows = self._exec(self._q("SELECT size, root, note, issued_us FROM {p}checkpoints WHERE size = ?"), (size,))
        return _cp_row(rows[0]) if rows else None

    def checkpoints(self) -> list[CheckpointRow]:
        rows = self._exec(self._q("SELECT size, root, note, issued_us FROM {p}checkpoints ORDER BY size"))
        return [_cp_row(r) for r in rows]

    def insert_checkpoint(self, row: CheckpointRow) -> None:
        self._exec(self._q("INSERT INTO {p}checkpoints (size, root, note, issued_us) VALUES (?, ?, ?, ?)"), row)

    def insert_cosignature(self, size: int, witness: str, line: str, timestamp: int) -> None:
        """Store a (verified) cosignature line of the checkpoint at ``size``; a repeat is a no-op."""
        self._exec(self._q("INSERT INTO {p}cosignatures (size, witness, line, ts) VALUES (?, ?, ?, ?) "
                           "ON CONFLICT DO NOTHING"), (size, witness, line, timestamp))

    def cosignatures(self, size: int | None = None) -> list[tuple[int, str, str, int]]:
        """``(size, witness key, line, timestamp)`` of the checkpoint at ``size`` (or all), in order."""
        if size is None:
            rows = self._exec(self._q("SELECT size, witness, line, ts FROM {p}cosignatures ORDER BY size, ts"))
        else:
            rows = self._exec(self._q("SELECT size, witness, line, ts FROM {p}cosignatures WHERE size = ? "
                                      "ORDER BY ts"), (size,))
        return [(int(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]

    def meta(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self._exec(self._q("SELECT k, v FROM {p}meta"))}

    def init_meta(self, values: dict[str, str]) -> dict[str, str]:
        """Record ``values`` on first use; return what is stored (callers check it matches)."""
        with self.write():
            current = self.meta()
            for key, value in values.items():
                if key not in current:
                    self._exec(self._q("INSERT INTO {p}meta (k, v) VALUES (?, ?)"), (key, value))
                    current[key] = value
        return current


def _entry_row(r: tuple[Any, ...]) -> EntryRow:
    return (int(r[0]), bytes(r[1]), int(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], r[9])


def _cp_row(r: tuple[Any, ...]) -> CheckpointRow:
    return (int(r[0]), bytes(r[1]), str(r[2]), int(r[3]))


# --- SQLite ------------------------------------------------------------------------------------
_SQLITE_DDL = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY CHECK (idx >= 0),
    entry BLOB NOT NULL,
    time_us INTEGER NOT NULL,
    authority TEXT NOT NULL,
    process TEXT NOT NULL,
    event_type TEXT NOT NULL,
    message_id TEXT,
    business_key TEXT,
    document_type TEXT,
    outcome TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS entries_message_id ON entries (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_business_key ON entries (business_key) WHERE business_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_time ON entries (time_us);
CREATE TABLE IF NOT EXISTS nodes (
    level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 63),
    idx INTEGER NOT NULL CHECK (idx >= 0),
    hash BLOB NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY CHECK (size >= 0),
    root BLOB NOT NULL CHECK (length(root) = 32),
    note TEXT NOT NULL,
    issued_us INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS cosignatures (
    size INTEGER NOT NULL CHECK (size >= 0),
    witness TEXT NOT NULL,
    line TEXT NOT NULL,
    ts INTEGER NOT NULL CHECK (ts >= 0),
    PRIMARY KEY (size, line)
) STRICT;
"""


def _sqlite_triggers() -> str:
    out = []
    for table in ("entries", "nodes", "checkpoints", "meta", "cosignatures"):
        for op in ("UPDATE", "DELETE"):
            out.append(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'audit log is append-only: {op} on {table} refused'); END;"
            )
    return "\n".join(out)


class SqliteStore(Store):
    param = "?"

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self.description = f"sqlite:{path}"
        prepare_sqlite(path)  # 0600 in a 0700 directory, -wal/-shm alike (issue 9 item 7)
        try:
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            enable_wal(self._conn, busy_timeout_s)  # persistent in the file
            self._conn.execute("PRAGMA synchronous = FULL")  # AUD-5: durable when append returns
            self._conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: keeps the upper B-tree levels hot
            self._conn.execute("BEGIN IMMEDIATE")
            for statement in (_SQLITE_DDL + _sqlite_triggers()).split(";\n"):
                if statement.strip():
                    self._conn.execute(statement)
            self._conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise TransportError(f"the audit database {path} stayed locked: {exc}", code="AUDIT_DB_BUSY",
                                     hint="another process holds a long write transaction") from exc
            raise ConfigError(f"cannot open the audit database {path}: {exc}", code="AUDIT_DB_OPEN",
                              hint="check the path and its permissions") from exc
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the audit database {path}: {exc}", code="AUDIT_DB_OPEN",
                              hint="check the path and its permissions") from exc

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise TransportError(f"audit database error: {exc}", code="AUDIT_DB_BUSY") from exc

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TransportError(f"audit database is locked: {exc}", code="AUDIT_DB_BUSY") from exc
        try:
            yield
            self._conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:  # locked, disk full, I/O error: infrastructure, retriable
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            raise TransportError(f"audit database write failed: {exc}", code="AUDIT_DB_WRITE",
                                 hint="check the disk and the database file; the batch was not written") from exc
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            raise

    def insert(self, entries: Sequence[EntryRow], nodes: Sequence[NodeRow]) -> None:
        sql = f"INSERT INTO entries ({ENTRY_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)"  # noqa: S608 - constants
        self._conn.executemany(sql, entries)
        self._conn.executemany("INSERT INTO nodes (level, idx, hash) VALUES (?,?,?)", nodes)

    def close(self) -> None:
        self._conn.close()


# --- PostgreSQL --------------------------------------------------------------------------------
def _pg_ddl(schema: str) -> list[str]:
    p = f"{schema}."
    stmts = [
        f"CREATE SCHEMA IF NOT EXISTS {schema}",
        f"CREATE TABLE IF NOT EXISTS {p}meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS {p}entries (
            idx BIGINT PRIMARY KEY CHECK (idx >= 0), entry BYTEA NOT NULL, time_us BIGINT NOT NULL,
            authority TEXT NOT NULL, process TEXT NOT NULL, event_type TEXT NOT NULL, message_id TEXT,
            business_key TEXT, document_type TEXT, outcome TEXT NOT NULL)""",
        f"CREATE INDEX IF NOT EXISTS entries_message_id ON {p}entries (message_id) WHERE message_id IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS entries_business_key ON {p}entries (business_key) "
        "WHERE business_key IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS entries_time ON {p}entries (time_us)",
        f"""CREATE TABLE IF NOT EXISTS {p}nodes (
            level SMALLINT NOT NULL CHECK (level BETWEEN 0 AND 63), idx BIGINT NOT NULL CHECK (idx >= 0),
            hash BYTEA NOT NULL CHECK (length(hash) = 32), PRIMARY KEY (level, idx))""",
        f"""CREATE TABLE IF NOT EXISTS {p}checkpoints (
            size BIGINT PRIMARY KEY CHECK (size >= 0), root BYTEA NOT NULL CHECK (length(root) = 32),
            note TEXT NOT NULL, issued_us BIGINT NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {p}cosignatures (
            size BIGINT NOT NULL CHECK (size >= 0), witness TEXT NOT NULL, line TEXT NOT NULL,
            ts BIGINT NOT NULL CHECK (ts >= 0), PRIMARY KEY (size, line))""",
        f"""CREATE OR REPLACE FUNCTION {p}append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME; END $$""",
    ]
    for table in ("entries", "nodes", "checkpoints", "meta", "cosignatures"):
        stmts.append(f"CREATE OR REPLACE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {p}{table} "
                     f"FOR EACH ROW EXECUTE FUNCTION {p}append_only()")
        stmts.append(f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {p}{table} "
                     f"FOR EACH STATEMENT EXECUTE FUNCTION {p}append_only()")
    return stmts


class PostgresStore(Store):
    param = "%s"

    def __init__(self, url: str, schema: str) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - psycopg is a declared extra
            raise ConfigError("PostgreSQL audit storage needs psycopg", code="AUDIT_DB_OPEN",
                              hint="pip install 'xborder-gateway[postgres]'") from exc
        self._psycopg = psycopg
        self.schema = schema
        self.prefix = f"{schema}."
        self.description = f"postgresql schema {schema}"
        # one lock id per schema: writers of the same log serialise on it (AUD-4)
        self._lock_id = int.from_bytes(hashlib.sha256(schema.encode()).digest()[:8], "big", signed=True)
        try:
            self._conn = psycopg.connect(url, autocommit=True)
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_id,))
                for stmt in _pg_ddl(schema):
                    self._conn.execute(stmt)
        except psycopg.Error as exc:
            raise ConfigError(f"cannot open the PostgreSQL audit log: {exc}", code="AUDIT_DB_OPEN",
                              hint="check XBG_AUDIT_URL and that the server runs") from exc

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            cur = self._conn.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []
        except self._psycopg.OperationalError as exc:
            raise TransportError(f"audit database error: {exc}", code="AUDIT_DB_UNAVAILABLE") from exc

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        try:
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_id,))
                yield
        except self._psycopg.OperationalError as exc:  # connection lost, server down: retriable
            raise TransportError(f"audit database write failed: {exc}", code="AUDIT_DB_WRITE",
                                 hint="check the PostgreSQL server; the batch was not written") from exc

    def insert(self, entries: Sequence[EntryRow], nodes: Sequence[NodeRow]) -> None:
        with self._conn.cursor() as cur:
            with cur.copy(f"COPY {self.prefix}entries ({ENTRY_COLUMNS}) FROM STDIN") as copy:
                for row in entries:
                    copy.write_row(row)
            with cur.copy(f"COPY {self.prefix}nodes (level, idx, hash) FROM STDIN") as copy:
                for node in nodes:
                    copy.write_row(node)

    def close(self) -> None:
        self._conn.close()


def open_store(*, sqlite_path: Path | None = None, url: str | None = None, schema: str = "xbg_audit",
               busy_timeout_s: float = 30.0) -> Store:
    if url:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"unsupported audit URL {url.split('@')[-1]!r}", code="AUDIT_URL",
                              hint="use postgresql://user@host:port/db, or unset XBG_AUDIT_URL for SQLite")
        return PostgresStore(url, schema)
    if sqlite_path is None:
        raise ConfigError("no audit database configured", code="AUDIT_URL")
    return SqliteStore(sqlite_path, busy_timeout_s=busy_timeout_s)
