"""Durable state of the exchange (SQLite): the VN receipt tracker's table of sent messages and the
Nanning endpoint's answers. Pure SQL over a connection; the connectors own the connections.

VN ``settings.state_db("VN")``::

    xbg_messages   one row per message id the outbound connector COMMITTED to an exchange topic
                   (learnt by consuming those topics read_committed), with the exact envelope bytes for
                   resends, attempts, next due time, state pending|delivered|dead (``MessageState``,
                   changed only by ``apply_transition``), receipt/business info, ``dead_letter_ms`` (when
                   the dead-letter record was produced; NULL while still to produce)
    xbg_rejected   one row per record on the rejected topic (key: its topic/partition/offset)
    xbg_submissions  written by the OUTBOUND connector: one row per (business key, SHA-256 of the raw XML)
                   it sealed, with the intake coordinates that first took it in (duplicate-submission
                   check, ADR 0401); purged after ``exchange_duplicate_window_days``

CN ``settings.state_db("CN")`` (same file as the envelope's replay table ``envelope_replay``)::

    cn_answers       the sealed answers (receipt, business response) sent for each message id, so a
                     duplicate is answered with the ORIGINAL bytes
    cn_declarations  declarations received (for the TIR/TOR checks)
    cn_processed     one row per message id processed (never two: same transaction as envelope_replay)
    cn_duplicates    one row per duplicate copy answered from cn_answers
"""

from __future__ import annotations

import enum
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xborder_gateway._private import enable_wal, prepare_sqlite

__all__ = [
    "CN_SCHEMA",
    "VN_SCHEMA",
    "IntakeCoordinates",
    "PendingMessage",
    "PriorSubmission",
    "RunSummary",
    "SubmissionDecision",
    "connect",
    "decide_submission",
    "decode_headers",
    "encode_headers",
    "forget_submission_at",
    "lookup_submission",
    "purge_submissions",
    "record_submission",
    "summarize_run",
]

VN_SCHEMA = """
CREATE TABLE IF NOT EXISTS xbg_messages (
    message_id     TEXT PRIMARY KEY,
    topic          TEXT,
    part           INTEGER,
    msg_key        BLOB,
    data           BLOB,
    headers        TEXT,
    doc_type       TEXT,
    business_key   TEXT,
    run            TEXT,
    published_ms   INTEGER,
    first_sent_ms  INTEGER,
    attempts       INTEGER NOT NULL DEFAULT 1,
    next_due_ms    INTEGER,
    state          TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    delivered_ms   INTEGER,
    receipts       INTEGER NOT NULL DEFAULT 0,
    business_status TEXT,
    business_reasons TEXT,
    last_nack      TEXT,
    dead_letter_ms INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS xbg_messages_due ON xbg_messages (state, next_due_ms);
CREATE INDEX IF NOT EXISTS xbg_messages_run ON xbg_messages (run);
CREATE TABLE IF NOT EXISTS xbg_rejected (
    topic        TEXT NOT NULL,
    part         INTEGER NOT NULL,
    offs         INTEGER NOT NULL,
    run          TEXT,
    business_key TEXT,
    reason_code  TEXT,
    published_ms INTEGER,
    PRIMARY KEY (topic, part, offs)
) STRICT;
CREATE INDEX IF NOT EXISTS xbg_rejected_run ON xbg_rejected (run);
CREATE TABLE IF NOT EXISTS xbg_submissions (
    business_key  TEXT NOT NULL,
    raw_sha256    BLOB NOT NULL,
    topic         TEXT NOT NULL,
    part          INTEGER NOT NULL,
    offs          INTEGER NOT NULL,
    message_id    TEXT,
    first_seen_ms INTEGER NOT NULL,
    PRIMARY KEY (business_key, raw_sha256)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS xbg_submissions_at ON xbg_submissions (topic, part, offs);
CREATE INDEX IF NOT EXISTS xbg_submissions_seen ON xbg_submissions (first_seen_ms);
"""

CN_SCHEMA = """
CREATE TABLE IF NOT EXISTS cn_answers (
    message_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    topic      TEXT NOT NULL,
    msg_key    BLOB,
    data       BLOB NOT NULL,
    headers    TEXT NOT NULL,
    PRIMARY KEY (message_id, seq)
) STRICT;
CREATE TABLE IF NOT EXISTS cn_declarations (
    business_key    TEXT PRIMARY KEY,
    doc_type        TEXT NOT NULL,
    gross_weight_kg TEXT,
    message_id      TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS cn_processed (
    message_id   TEXT PRIMARY KEY,
    run          TEXT,
    doc_type     TEXT,
    business_key TEXT,
    status       TEXT NOT NULL,
    received_ms  INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS cn_processed_run ON cn_processed (run);
CREATE TABLE IF NOT EXISTS cn_duplicates (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    run        TEXT,
    at_ms      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS cn_duplicates_run ON cn_duplicates (run);
"""


def connect(path: Path, schema: str) -> sqlite3.Connection:
    """Open (create) a state database in WAL mode, autocommit (callers group writes with BEGIN IMMEDIATE)."""
    prepare_sqlite(path)  # 0600 in a 0700 directory, -wal/-shm alike (issue 9 item 7)
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    enable_wal(conn)  # several connectors may create the file at once
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(schema)
    if schema is VN_SCHEMA:  # state files written before the partition column existed
        columns = {row[1] for row in conn.execute("PRAGMA table_info(xbg_messages)")}
        if "part" not in columns:
            conn.execute("ALTER TABLE xbg_messages ADD COLUMN part INTEGER")
        if "dead_letter_ms" not in columns:  # dead rows of older files had their dead letter produced
            conn.execute("ALTER TABLE xbg_messages ADD COLUMN dead_letter_ms INTEGER")
            conn.execute("UPDATE xbg_messages SET dead_letter_ms = 0 WHERE state = 'dead'")
    return conn


# --- duplicate submissions (outbound; ADR 0401) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntakeCoordinates:
    """Where an intake record was taken in: a Kafka topic, partition and offset (unique per record)."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"


@dataclass(frozen=True, slots=True)
class PriorSubmission:
    """The row of ``xbg_submissions`` for one (business key, raw SHA-256): who took these bytes in first."""

    at: IntakeCoordinates
    message_id: str | None
    first_seen_ms: int


class SubmissionDecision(enum.Enum):
    NEW = "new"  # these bytes were never taken in (within the retention window): process, remember
    REDO = "redo"  # the SAME intake record again (its batch's Kafka transaction aborted): process again
    DUPLICATE = "duplicate"  # the same bytes taken in before from ANOTHER intake record: reject


def decide_submission(prior: PriorSubmission | None, here: IntakeCoordinates) -> SubmissionDecision:
    """Pure decision of the duplicate-submission check for a record that validated and sealed.

    Only the intake coordinates tell a redo from a duplicate: a batch whose Kafka transaction aborted (or
    whose process died before the commit) is consumed again from the committed offsets, so its records come
    back at the same coordinates, while a second publication of the same bytes always has other ones.
    """
    if prior is None:
        return SubmissionDecision.NEW
    if prior.at == here:
        return SubmissionDecision.REDO
    return SubmissionDecision.DUPLICATE


def lookup_submission(conn: sqlite3.Connection, business_key: str, raw_sha256: bytes) -> PriorSubmission | None:
    """One primary-key lookup."""
    row = conn.execute("SELECT topic, part, offs, message_id, first_seen_ms FROM xbg_submissions "
                       "WHERE business_key = ? AND raw_sha256 = ?", (business_key, raw_sha256)).fetchone()
    if row is None:
        return None
    return PriorSubmission(IntakeCoordinates(str(row[0]), int(row[1]), int(row[2])),
                           None if row[3] is None else str(row[3]), int(row[4]))


def record_submission(conn: sqlite3.Connection, business_key: str, raw_sha256: bytes, here: IntakeCoordinates, *,
                      message_id: str, now_ms: int) -> None:
    """Remember that ``here`` took these bytes in and sealed them as ``message_id`` (NEW), or -- for a REDO
    of the same coordinates -- replace the message id by the redo's (the aborted one was never seen)."""
    conn.execute("INSERT INTO xbg_submissions (business_key, raw_sha256, topic, part, offs, message_id, "
                 "first_seen_ms) VALUES (?, ?, ?, ?, ?, ?, ?) "
                 "ON CONFLICT (business_key, raw_sha256) DO UPDATE SET message_id = excluded.message_id "
                 "WHERE topic = excluded.topic AND part = excluded.part AND offs = excluded.offs",
                 (business_key, raw_sha256, here.topic, here.partition, here.offset, message_id, now_ms))


def forget_submission_at(conn: sqlite3.Connection, here: IntakeCoordinates) -> None:
    """The record at ``here`` was rejected for another reason on a redo (e.g. its keys or mappings changed
    after an aborted try): it did not take its bytes in after all, so a later copy is not a duplicate."""
    conn.execute("DELETE FROM xbg_submissions WHERE topic = ? AND part = ? AND offs = ?",
                 (here.topic, here.partition, here.offset))


def purge_submissions(conn: sqlite3.Connection, before_ms: int) -> int:
    """Forget submissions first seen before ``before_ms`` (the retention window); returns how many."""
    return int(conn.execute("DELETE FROM xbg_submissions WHERE first_seen_ms < ?", (before_ms,)).rowcount)


@dataclass(frozen=True, slots=True)
class PendingMessage:
    message_id: str
    topic: str
    partition: int | None
    key: bytes | None
    data: bytes
    headers: tuple[tuple[str, bytes], ...]
    attempts: int
    business_key: str | None
    doc_type: str | None


def encode_headers(headers: Iterable[tuple[str, bytes]]) -> str:
    return json.dumps([[k, v.decode("latin-1")] for k, v in headers])


def decode_headers(text: str | None) -> tuple[tuple[str, bytes], ...]:
    if not text:
        return ()
    return tuple((str(k), str(v).encode("latin-1")) for k, v in json.loads(text))


def _percentile(sorted_values: Sequence[int], q: float) -> float | None:
    if not sorted_values:
        return None
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return float(sorted_values[idx])


@dataclass(frozen=True)
class RunSummary:
    """What the VN tracker (and, if given, the CN endpoint) know about one demo/test run."""

    run: str
    sent: int
    pending: int
    delivered: int
    dead_lettered: int
    rejected: int
    rejected_by_reason: dict[str, int]
    business: dict[str, int]
    resent: int
    duplicate_receipts: int
    duplicates_eliminated: int | None
    processed_at_endpoint: int | None
    first_published_ms: int | None
    last_settled_ms: int | None
    p50_ms: float | None
    p99_ms: float | None
    #: "HELD SPS_PUC_NOT_REGISTERED" -> count, over the delivered messages' business responses
    business_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def settled(self) -> int:
        return self.delivered + self.dead_lettered + self.rejected

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run, "sent": self.sent, "pending": self.pending, "delivered": self.delivered,
            "dead_lettered": self.dead_lettered, "rejected": self.rejected,
            "rejected_by_reason": self.rejected_by_reason, "business": self.business, "resent": self.resent,
            "duplicate_receipts": self.duplicate_receipts, "duplicates_eliminated": self.duplicates_eliminated,
            "processed_at_endpoint": self.processed_at_endpoint, "p50_ms": self.p50_ms, "p99_ms": self.p99_ms,
        }


def settled_count(vn: sqlite3.Connection, run: str) -> int:
    """``summarize_run(vn, run).settled`` from two indexed counts, for a caller that polls until a run has
    settled (the summary reads every row of the run)."""
    row = vn.execute("SELECT (SELECT count(*) FROM xbg_messages WHERE run = ? AND data IS NOT NULL "
                     "AND state IN ('delivered', 'dead')) + (SELECT count(*) FROM xbg_rejected WHERE run = ?)",
                     (run, run)).fetchone()
    return int(row[0])


def summarize_run(vn: sqlite3.Connection, run: str, cn: sqlite3.Connection | None = None) -> RunSummary:
    """Counts for one run id, read from the VN tracker's state (and the CN endpoint's, when given)."""
    states = dict(vn.execute("SELECT state, count(*) FROM xbg_messages WHERE run = ? AND data IS NOT NULL "
                             "GROUP BY state", (run,)).fetchall())
    resent, dup_receipts = vn.execute(
        "SELECT coalesce(sum(attempts - 1), 0), coalesce(sum(max(receipts - 1, 0)), 0) FROM xbg_messages "
        "WHERE run = ?", (run,)).fetchone()
    business = dict(vn.execute("SELECT coalesce(business_status, 'NONE'), count(*) FROM xbg_messages "
                               "WHERE run = ? AND state = 'delivered' GROUP BY 1", (run,)).fetchall())
    by_reason: dict[str, int] = {}
    for status, reasons in vn.execute("SELECT business_status, business_reasons FROM xbg_messages WHERE run = ? "
                                      "AND state = 'delivered' AND business_status IN ('HELD', 'REJECTED')", (run,)):
        try:
            codes = {str(r.get("code")) for r in json.loads(reasons or "[]") if isinstance(r, dict)}
        except ValueError:
            codes = {"?"}
        for code in sorted(codes) or ["?"]:
            by_reason[f"{status} {code}"] = by_reason.get(f"{status} {code}", 0) + 1
    rejected_by = dict(vn.execute("SELECT coalesce(reason_code, '?'), count(*) FROM xbg_rejected WHERE run = ? "
                                  "GROUP BY 1", (run,)).fetchall())
    lat = [int(r[0]) for r in vn.execute(
        "SELECT delivered_ms - published_ms FROM xbg_messages WHERE run = ? AND state = 'delivered' "
        "AND published_ms IS NOT NULL AND delivered_ms IS NOT NULL ORDER BY 1", (run,))]
    first_pub = vn.execute(
        "SELECT min(p) FROM (SELECT min(published_ms) AS p FROM xbg_messages WHERE run = ? "
        "UNION ALL SELECT min(published_ms) FROM xbg_rejected WHERE run = ?)", (run, run)).fetchone()[0]
    last = vn.execute("SELECT max(delivered_ms) FROM xbg_messages WHERE run = ?", (run,)).fetchone()[0]
    dups = processed = None
    if cn is not None:
        dups = int(cn.execute("SELECT count(*) FROM cn_duplicates WHERE run = ?", (run,)).fetchone()[0])
        processed = int(cn.execute("SELECT count(*) FROM cn_processed WHERE run = ?", (run,)).fetchone()[0])
    return RunSummary(
        run=run,
        sent=sum(int(v) for v in states.values()),
        pending=int(states.get("pending", 0)),
        delivered=int(states.get("delivered", 0)),
        dead_lettered=int(states.get("dead", 0)),
        rejected=sum(int(v) for v in rejected_by.values()),
        rejected_by_reason={str(k): int(v) for k, v in rejected_by.items()},
        business={str(k): int(v) for k, v in business.items()},
        resent=int(resent),
        duplicate_receipts=int(dup_receipts),
        duplicates_eliminated=dups,
        processed_at_endpoint=processed,
        first_published_ms=int(first_pub) if first_pub is not None else None,
        last_settled_ms=int(last) if last is not None else None,
        p50_ms=_percentile(lat, 0.50),
        business_by_reason=dict(sorted(by_reason.items())),
        p99_ms=_percentile(lat, 0.99),
    )
