"""The exchange's stores: the SQL of the receipt tracker's and the endpoint's state, and the one transaction
helper every writer uses. The connectors hold connections and call these; no SQL lives in a connector.

The schemas are :data:`VN_SCHEMA` / :data:`CN_SCHEMA` (``_state``); a tracked message's state changes only
through :func:`~xborder_gateway.exchange._tracking.apply_transition` (the compare-and-set).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from xborder_gateway.exchange._business import KnownDeclaration
from xborder_gateway.exchange._state import PendingMessage, decode_headers, encode_headers
from xborder_gateway.exchange._tracking import MessageState, mark_dead_letter_produced

__all__ = ["EndpointStore", "StoredAnswer", "TrackedMessage", "TrackerStore", "insert_rows", "transaction"]


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` (the write lock first: two writers never both decide on a read) ... ``COMMIT``;
    any exception rolls back and propagates. The connection must be in autocommit mode (``connect``)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@dataclass(frozen=True, slots=True)
class TrackedMessage:
    """What the receipt handler needs of a tracked message (``data`` None: a receipt came first)."""

    state: MessageState
    attempts: int
    data: bytes | None
    published_ms: int | None
    next_due_ms: int | None
    business_key: str | None = None
    doc_type: str | None = None


_MESSAGE_SQL = ("SELECT message_id, state, attempts, data, published_ms, next_due_ms, business_key, doc_type "
                "FROM xbg_messages")
_SENT_HEAD = ("INSERT INTO xbg_messages (message_id, topic, part, msg_key, data, headers, doc_type, business_key, "
              "run, published_ms, first_sent_ms, attempts, next_due_ms, state)")
_SENT_TAIL = ("ON CONFLICT (message_id) DO UPDATE SET topic = excluded.topic, part = excluded.part, "
              "msg_key = excluded.msg_key, "
              "data = excluded.data, headers = excluded.headers, doc_type = excluded.doc_type, "
              "business_key = excluded.business_key, run = excluded.run, published_ms = excluded.published_ms, "
              "first_sent_ms = excluded.first_sent_ms, next_due_ms = excluded.next_due_ms, "
              "attempts = max(xbg_messages.attempts, 1) WHERE data IS NULL")
_PENDING_COLUMNS = "message_id, topic, part, msg_key, data, headers, attempts, business_key, doc_type, last_nack"


def _pending(row: tuple[Any, ...]) -> tuple[PendingMessage, str | None]:
    m, t, p, k, d, h, a, b, dt, nack = row
    return (PendingMessage(str(m), str(t), p, bytes(k) if k is not None else None, bytes(d), decode_headers(h),
                           int(a), b, dt), nack)


class TrackerStore:
    """The VN receipt tracker's table of sent messages (``xbg_messages``) and rejections (``xbg_rejected``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        #: issue 13: rows read ahead by :meth:`prefetch` (None: no row), each handed out once by :meth:`message`
        self._ahead: dict[str, tuple[Any, ...] | None] = {}

    def record_sent_many(self, sent: Sequence[dict[str, Any]]) -> list[bool]:
        """Track a batch's committed envelopes (keyword fields of each, in consumption order; idempotent: a
        replayed record, or one already tracked, changes nothing; a row a receipt created first gets its
        bytes). Issue 13: one query reads which ids are tracked with bytes already, one multi-row upsert per
        100 rows writes them all. An id is newly tracked when it has no row, or a row without bytes (a receipt
        came first), and was not tracked earlier in the same batch -- what each upsert's ``rowcount`` says."""
        if not sent:
            return []
        ids = [str(x["message_id"]) for x in sent]
        known = {str(m): bool(no_data) for m, no_data in self.conn.execute(
            "SELECT message_id, data IS NULL FROM xbg_messages WHERE message_id IN (SELECT value FROM json_each(?))",
            (json.dumps(ids),))}
        tracked = []
        for mid, x in zip(ids, sent, strict=True):
            tracked.append(known.get(mid, True))
            known[mid] = x["data"] is None
        insert_rows(self.conn, _SENT_HEAD, [
            (x["message_id"], x["topic"], x["partition"], x["key"], x["data"], encode_headers(x["headers"]),
             x["doc_type"], x["business_key"], x["run"], x["published_ms"], x["sent_ms"], 1, x["due_ms"], "pending")
            for x in sent], tail=_SENT_TAIL)
        return tracked

    def prefetch(self, message_ids: Iterable[str]) -> None:
        """Issue 13: read the rows of ``message_ids`` with ONE query for the receipts of a batch; each is
        handed out once by :meth:`message` (a second look at an id, after its row changed, reads it again)
        and dropped by any write of this store to it. Call :meth:`forget` when the batch ends."""
        ids = list(dict.fromkeys(message_ids))
        self._ahead = dict.fromkeys(ids)
        if ids:
            for row in self.conn.execute(_MESSAGE_SQL + " WHERE message_id IN (SELECT value FROM json_each(?))",  # noqa: S608
                                         (json.dumps(ids),)):
                self._ahead[str(row[0])] = tuple(row[1:])

    def forget(self) -> None:
        """Drop what :meth:`prefetch` read (the batch's transaction ends)."""
        self._ahead = {}

    def record_rejected(self, *, topic: str, partition: int, offset: int, run: str | None,
                        business_key: str | None, reason_code: str | None, published_ms: int | None) -> int:
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO xbg_rejected (topic, part, offs, run, business_key, reason_code, published_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (topic, partition, offset, run, business_key, reason_code, published_ms))
        return int(cur.rowcount)

    def record_business(self, message_id: str, status: str, reasons: object) -> None:
        # issue 13: one upsert (was an INSERT ... DO NOTHING and an UPDATE): a row is created if none is there
        # (pending, 0 attempts), and the business outcome set either way
        self._ahead.pop(message_id, None)
        self.conn.execute("INSERT INTO xbg_messages (message_id, state, attempts, business_status, business_reasons) "
                          "VALUES (?, 'pending', 0, ?, ?) ON CONFLICT (message_id) DO UPDATE SET "
                          "business_status = excluded.business_status, business_reasons = excluded.business_reasons",
                          (message_id, status, json.dumps(reasons or [])))

    def message(self, message_id: str) -> TrackedMessage:
        """The tracked message; a receipt that overtook our view of the exchange topic creates its row."""
        row: tuple[Any, ...] | None
        if message_id in self._ahead:  # issue 13: read ahead for the batch (prefetch), handed out once
            row = self._ahead.pop(message_id)
        else:
            got = self.conn.execute(_MESSAGE_SQL + " WHERE message_id = ?", (message_id,)).fetchone()
            row = None if got is None else tuple(got[1:])
        if row is None:
            self.conn.execute("INSERT INTO xbg_messages (message_id, state, attempts) VALUES (?, 'pending', 0)",
                              (message_id,))
            return TrackedMessage(MessageState.PENDING, 0, None, None, None)
        return TrackedMessage(MessageState(row[0]), int(row[1]), None if row[2] is None else bytes(row[2]),
                              None if row[3] is None else int(row[3]), None if row[4] is None else int(row[4]),
                              row[5], row[6])

    def due(self, now_ms: int, limit: int, owned: set[tuple[str, int]] | None
            ) -> list[tuple[PendingMessage, str | None]]:
        rows = self.conn.execute(
            f"SELECT {_PENDING_COLUMNS} FROM xbg_messages WHERE state = 'pending' AND data IS NOT NULL "  # noqa: S608
            "AND next_due_ms <= ? ORDER BY next_due_ms LIMIT ?",
            (now_ms, limit * (4 if owned is not None else 1))).fetchall()
        return [(m, nack) for m, nack in map(_pending, rows)
                if owned is None or (m.topic, m.partition) in owned][:limit]

    def unproduced_dead_letters(self, owned: set[tuple[str, int]] | None, limit: int = 500
                                ) -> list[tuple[PendingMessage, str | None]]:
        rows = self.conn.execute(
            f"SELECT {_PENDING_COLUMNS} FROM xbg_messages WHERE state = 'dead' AND dead_letter_ms IS NULL "  # noqa: S608
            "AND data IS NOT NULL LIMIT ?", (limit,)).fetchall()
        return [(m, nack) for m, nack in map(_pending, rows) if owned is None or (m.topic, m.partition) in owned]

    def dead_letters_produced(self, message_ids: Iterable[str], now_ms: int) -> None:
        with transaction(self.conn) as conn:
            for mid in message_ids:
                mark_dead_letter_produced(conn, mid, now_ms)

    def pending_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM xbg_messages WHERE state = 'pending' "
                                     "AND data IS NOT NULL").fetchone()[0])


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """One sealed answer the endpoint sent for a message id (replayed as is to a duplicate)."""

    topic: str
    key: bytes | None
    data: bytes
    headers: tuple[tuple[str, bytes], ...]


class EndpointStore:
    """The receiving endpoint's answers, declarations, processed ids and duplicates (``cn_*`` tables). Its
    connection is the replay store's, so these writes share the ENV-10 record's transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def original_answers(self, message_id: str) -> list[StoredAnswer]:
        rows = self.conn.execute("SELECT topic, msg_key, data, headers FROM cn_answers WHERE message_id = ? "
                                 "ORDER BY seq", (message_id,)).fetchall()
        return [StoredAnswer(str(t), None if k is None else bytes(k), bytes(d), decode_headers(str(h)))
                for t, k, d, h in rows]

    def record_answers(self, message_id: str, answers: Sequence[StoredAnswer]) -> None:
        """The message's own answers, first in its stored sequence. Answers already appended for it in the
        same batch (a later decision about it, e.g. a HELD declaration released by an amendment processed in
        the same batch, whose own answers are stored when the batch's answers are sealed) move behind them,
        so a duplicate of the message is answered in the order the answers were produced."""
        shift = 1 << 40  # two steps: SQLite checks the (message_id, seq) key row by row during an UPDATE
        self.conn.execute("UPDATE cn_answers SET seq = seq + ? WHERE message_id = ?", (shift, message_id))
        for seq, a in enumerate(answers):
            self.conn.execute("INSERT INTO cn_answers (message_id, seq, topic, msg_key, data, headers) "
                              "VALUES (?, ?, ?, ?, ?, ?)",
                              (message_id, seq, a.topic, a.key, a.data, encode_headers(a.headers)))
        self.conn.execute("UPDATE cn_answers SET seq = seq - ? WHERE message_id = ? AND seq >= ?",
                          (shift - len(answers), message_id, shift))

    def record_answers_many(self, items: Sequence[tuple[str, Sequence[StoredAnswer]]]) -> None:
        """Issue 13: :meth:`record_answers` for a whole batch, with the same result. One query finds the
        message ids that already have answers (appended in this batch, e.g. a vehicle decided by a later
        declaration): those take :meth:`record_answers`; the rest (nearly always all) are inserted at seq
        0.. by one multi-row INSERT per 100 rows."""
        if not items:
            return
        mids = [mid for mid, _ in items]
        if len(set(mids)) != len(mids):  # a message id twice (never from the endpoint): one by one, in order
            for mid, answers in items:
                self.record_answers(mid, answers)
            return
        have = {str(m) for (m,) in self.conn.execute(
            "SELECT DISTINCT message_id FROM cn_answers WHERE message_id IN (SELECT value FROM json_each(?))",
            (json.dumps(mids),))}
        rows: list[tuple[Any, ...]] = []
        for mid, answers in items:
            if mid in have:
                self.record_answers(mid, answers)
            else:
                rows.extend((mid, seq, a.topic, a.key, a.data, encode_headers(a.headers))
                            for seq, a in enumerate(answers))
        insert_rows(self.conn, "INSERT INTO cn_answers (message_id, seq, topic, msg_key, data, headers)", rows)

    def append_answer(self, message_id: str, answer: StoredAnswer) -> None:
        """One more answer for ``message_id`` (a business response decided later, issue 10): a duplicate of the
        message is then answered with it too."""
        self.conn.execute("INSERT INTO cn_answers (message_id, seq, topic, msg_key, data, headers) "
                          "SELECT ?, coalesce(max(seq), -1) + 1, ?, ?, ?, ? FROM cn_answers WHERE message_id = ?",
                          (message_id, answer.topic, answer.key, answer.data, encode_headers(answer.headers),
                           message_id))

    def record_duplicate(self, message_id: str, run: str | None, at_ms: int) -> None:
        self.conn.execute("INSERT INTO cn_duplicates (message_id, run, at_ms) VALUES (?, ?, ?)",
                          (message_id, run, at_ms))

    def declaration(self, business_key: str) -> KnownDeclaration | None:
        row = self.conn.execute("SELECT gross_weight_kg FROM cn_declarations WHERE business_key = ?",
                                (business_key,)).fetchone()
        if row is None:
            return None
        return KnownDeclaration(business_key, Decimal(row[0]) if row[0] is not None else None)

    def record_declaration(self, business_key: str, doc_type: str, gross_weight_kg: object,
                           message_id: str) -> None:
        self.conn.execute("INSERT OR IGNORE INTO cn_declarations (business_key, doc_type, gross_weight_kg, "
                          "message_id) VALUES (?, ?, ?, ?)",
                          (business_key, doc_type, None if gross_weight_kg is None else str(gross_weight_kg),
                           message_id))

    def record_processed(self, *, message_id: str, run: str | None, doc_type: str, business_key: str | None,
                         status: str, received_ms: int) -> None:
        self.conn.execute("INSERT INTO cn_processed (message_id, run, doc_type, business_key, status, received_ms) "
                          "VALUES (?, ?, ?, ?, ?, ?)", (message_id, run, doc_type, business_key, status, received_ms))

    def record_processed_many(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Issue 13: :meth:`record_processed` for a batch -- rows of (message_id, run, doc_type, business_key,
        status, received_ms) -- in one multi-row INSERT per 100 rows (a conflict fails it as it fails one)."""
        insert_rows(self.conn, "INSERT INTO cn_processed (message_id, run, doc_type, business_key, status, "
                    "received_ms)", rows)


_ROWS_PER_INSERT = 100


def insert_rows(conn: sqlite3.Connection, head: str, rows: Sequence[tuple[Any, ...]], *, tail: str = "") -> None:
    """``head VALUES (...), (...)``: the rows in one statement per :data:`_ROWS_PER_INSERT` (issue 13: one
    statement per batch instead of one per row; a statement of at most 100 x 6 parameters stays far below
    SQLite's limit of 32,766). Every row must have the same width; ``head`` and ``tail`` (an upsert clause)
    are constants of the caller."""
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start:start + _ROWS_PER_INSERT]
        one = "(" + ", ".join("?" * len(chunk[0])) + ")"
        conn.execute(f"{head} VALUES {', '.join([one] * len(chunk))} {tail}",
                     [v for row in chunk for v in row])
