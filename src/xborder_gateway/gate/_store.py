"""The gate's durable view (SQLite): what it knows of declarations and vehicles, the arrivals, the
decisions, the clearances in use and the input offsets already applied -- all in one database, changed in
one transaction per batch, so a restart resumes exactly where the last committed batch ended.

Compare-and-set lives here and only here (:meth:`GateStore.record_decision`): a decision is written only if
the arrival's current sequence is still the one it was decided against, and a clearance is claimed with an
``INSERT`` that a second arrival cannot win (GATE-4, GATE-6).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from xborder_gateway._private import enable_wal
from xborder_gateway.audit import AuditEvent
from xborder_gateway.errors import GatewayError
from xborder_gateway.gate._decide import DeclRecord
from xborder_gateway.gate._model import (
    Arrival,
    Colour,
    Decision,
    DeclarationStatus,
    DeclState,
    Direction,
    MirrorFinding,
    Reason,
    VehicleDeclarationSeen,
    ViewEvent,
)
from xborder_gateway.gate._plates import PlateIndex, PlateMatch

__all__ = ["GateStore", "StaleDecisionError", "accepts_status"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS offsets(topic TEXT NOT NULL, part INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY(topic, part));
CREATE TABLE IF NOT EXISTS vehicles(number TEXT PRIMARY KEY, direction TEXT NOT NULL,
    plate TEXT NOT NULL, containers TEXT NOT NULL, linked TEXT NOT NULL, perishable INTEGER NOT NULL,
    version INTEGER NOT NULL, cancelled INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS vehicles_plate ON vehicles(plate);
CREATE TABLE IF NOT EXISTS links(declaration TEXT NOT NULL, vehicle TEXT NOT NULL, PRIMARY KEY(declaration, vehicle));
CREATE INDEX IF NOT EXISTS links_vehicle ON links(vehicle);
CREATE TABLE IF NOT EXISTS declarations(number TEXT PRIMARY KEY, state TEXT NOT NULL, version INTEGER NOT NULL,
    sent_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, reasons TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS findings(number TEXT NOT NULL, code TEXT NOT NULL, blocking INTEGER NOT NULL,
    PRIMARY KEY(number, code));
CREATE TABLE IF NOT EXISTS arrivals(arrival_id TEXT PRIMARY KEY, gate_id TEXT NOT NULL, lane TEXT NOT NULL,
    direction TEXT NOT NULL, plate_read TEXT NOT NULL, plate TEXT, confidence REAL NOT NULL,
    containers TEXT NOT NULL, camera_ms INTEGER NOT NULL, current_seq INTEGER NOT NULL, colour TEXT NOT NULL,
    reason TEXT NOT NULL, vehicle TEXT, perishable INTEGER NOT NULL, decided_ms INTEGER NOT NULL,
    first_decided_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS arrivals_vehicle ON arrivals(vehicle);
CREATE INDEX IF NOT EXISTS arrivals_plate ON arrivals(plate, reason);
CREATE INDEX IF NOT EXISTS arrivals_camera ON arrivals(camera_ms);
CREATE TABLE IF NOT EXISTS decisions(decision_id TEXT PRIMARY KEY, arrival_id TEXT NOT NULL,
    sequence INTEGER NOT NULL, colour TEXT NOT NULL, reasons TEXT NOT NULL, supersedes TEXT,
    decided_ms INTEGER NOT NULL, src_topic TEXT NOT NULL, src_part INTEGER NOT NULL, src_offset INTEGER NOT NULL,
    record BLOB NOT NULL, UNIQUE(arrival_id, sequence));
CREATE INDEX IF NOT EXISTS decisions_src ON decisions(src_topic, src_part, src_offset);
CREATE INDEX IF NOT EXISTS decisions_time ON decisions(decided_ms);
CREATE TABLE IF NOT EXISTS clearances(vehicle TEXT PRIMARY KEY, arrival_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS timers(arrival_id TEXT PRIMARY KEY, due_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS timers_due ON timers(due_ms);
-- decisions not yet known to be on the decisions topic (gate_delivery=outbox: docs/gate.md, ADR 0701)
CREATE TABLE IF NOT EXISTS outbox(decision_id TEXT PRIMARY KEY);
-- per decisions partition, the offset after this gate's last acknowledged decision: where a restart looks for
-- the decisions of the outbox that reached the topic before the process died
CREATE TABLE IF NOT EXISTS published(topic TEXT NOT NULL, part INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY(topic, part));
-- gate_delivery=outbox: audit events committed with the batch, appended to the audit log after the decisions
-- are sent (ADR 0701 rule 4); a row leaves once the audit log has it
CREATE TABLE IF NOT EXISTS audit_pending(seq INTEGER PRIMARY KEY AUTOINCREMENT, event BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS invalid_inputs(topic TEXT NOT NULL, part INTEGER NOT NULL, off INTEGER NOT NULL,
    code TEXT NOT NULL, raw BLOB NOT NULL, PRIMARY KEY(topic, part, off));
"""

#: the order in which one version of a declaration moves; an answered state is final for its version
_RANK: Final = {DeclState.TAKEN_IN: 0, DeclState.SENT: 1, DeclState.DELIVERED: 2, DeclState.PENDING: 3,
                DeclState.ACCEPTED: 4, DeclState.HELD: 4, DeclState.REJECTED: 4, DeclState.DEAD_LETTERED: 4,
                DeclState.CANCELLED: 5}


class StaleDecisionError(GatewayError):
    """The arrival's state moved since the decision was computed (compare-and-set failed)."""

    default_code = "GATE_STALE_DECISION"


def accepts_status(old: DeclRecord | None, old_version: int, new: DeclarationStatus) -> bool:
    """Whether a status event changes the view (pure; table-tested).

    A newer version always wins (an amendment releases a hold); within one version the state only moves
    forward, except that a later *answer* replaces an earlier one (HELD -> ACCEPTED by a new business
    response). A late SENT/DELIVERED of an answered version is ignored.
    """
    if new.at_intake and old is not None:  # a refusal at intake never overturns a submission (docs/gate.md)
        return False
    if old is None or new.new_submission:
        return True
    version = old_version if new.version is None else new.version
    if version > old_version:
        return True
    if version < old_version:
        return False
    if _RANK[new.state] == _RANK[old.state] == 4:
        return new.state is not old.state
    return _RANK[new.state] > _RANK[old.state]


@dataclass(frozen=True, slots=True)
class Output:
    key: bytes
    value: bytes
    decision_id: str = ""


#: an input offset applied: the next one to read, never moved back
_MARK_SQL: Final = ("INSERT INTO offsets VALUES (?,?,?) ON CONFLICT(topic, part) DO UPDATE SET "
                    "next_offset=max(next_offset, excluded.next_offset)")


class GateStore:
    """The SQLite state of one site's gate (``<home>/gate/<authority>.sqlite``, mode 0600: it holds plates)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._db = conn
        self._index = PlateIndex()
        #: inside :meth:`transaction`: the next offset of each (topic, partition) read once and kept here, the
        #: marks written by one statement before the COMMIT (the feed brings hundreds of records per batch)
        self._offsets: dict[tuple[str, int], int] | None = None
        self._marked: set[tuple[str, int]] = set()
        #: record each decision in the outbox (gate_delivery=outbox); off when Kafka transactions deliver them
        self.keep_outbox = True
        for (plate,) in conn.execute("SELECT plate FROM vehicles"):
            self._index.add(plate)

    @classmethod
    def open(cls, path: Path) -> GateStore:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        try:
            enable_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return cls(conn)

    @classmethod
    def memory(cls) -> GateStore:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.executescript(_SCHEMA)
        return cls(conn)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        self._offsets, self._marked = {}, set()
        try:
            yield
            self._flush_marks()
        except BaseException:
            self._offsets, self._marked = None, set()
            self._db.execute("ROLLBACK")
            raise
        self._offsets, self._marked = None, set()
        self._db.execute("COMMIT")

    def _flush_marks(self) -> None:
        if self._offsets is not None and self._marked:
            self._db.executemany(
                _MARK_SQL,
                [(t, p, self._offsets[(t, p)]) for t, p in sorted(self._marked)])
            self._marked = set()

    # ---- input offsets (catch-up) ---------------------------------------------------------------------
    def applied(self, topic: str, part: int, offset: int) -> bool:
        return offset < self.next_offset(topic, part)

    def _stored_next(self, topic: str, part: int) -> int:
        row = self._db.execute("SELECT next_offset FROM offsets WHERE topic=? AND part=?", (topic, part)).fetchone()
        return 0 if row is None else int(row[0])

    def next_offset(self, topic: str, part: int) -> int:
        """The first offset of ``topic``/``part`` not applied yet (0 when none was), marks of the open
        transaction included."""
        cache = self._offsets
        if cache is None:
            return self._stored_next(topic, part)
        key = (topic, part)
        if key not in cache:
            cache[key] = self._stored_next(topic, part)
        return cache[key]

    def mark(self, topic: str, part: int, offset: int) -> None:
        cache = self._offsets
        if cache is None:
            self._db.execute(_MARK_SQL, (topic, part, offset + 1))
            return
        key = (topic, part)
        cache[key] = max(self.next_offset(topic, part), offset + 1)  # written once, before the COMMIT
        self._marked.add(key)

    def outputs_of(self, topic: str, part: int, offset: int) -> list[Output]:
        """The decisions an already-applied input record produced (re-sent when its batch is redone)."""
        rows = self._db.execute("SELECT arrival_id, record, decision_id FROM decisions WHERE src_topic=? AND "
                                "src_part=? AND src_offset=? ORDER BY rowid", (topic, part, offset))
        return [Output(a.encode(), bytes(r), i) for a, r, i in rows]

    # ---- the outbox (gate_delivery=outbox) ---------------------------------------------------------------
    def unpublished(self, decision_ids: Sequence[str]) -> set[str]:
        """Which of ``decision_ids`` are still in the outbox (not yet acknowledged by the decisions topic)."""
        if not decision_ids:
            return set()
        rows = self._db.execute("SELECT decision_id FROM outbox WHERE decision_id IN (SELECT value FROM "
                                "json_each(?))", (json.dumps(list(decision_ids)),))
        return {str(r[0]) for r in rows}

    def outbox(self) -> list[Output]:
        """Every decision of the outbox, in the order it was decided."""
        rows = self._db.execute("SELECT d.arrival_id, d.record, d.decision_id FROM outbox o JOIN decisions d "
                                "USING (decision_id) ORDER BY d.rowid")
        return [Output(a.encode(), bytes(r), i) for a, r, i in rows]

    def defer_audit(self, events: Sequence[AuditEvent]) -> None:
        """Keep ``events`` (their canonical bytes) with the open transaction, for :meth:`pending_audit`."""
        self._db.executemany("INSERT INTO audit_pending(event) VALUES (?)", [(e.canonical_bytes(),) for e in events])

    def pending_audit(self, limit: int = 1000) -> tuple[int, list[AuditEvent]]:
        """The oldest deferred audit events (at most ``limit``) and the sequence number of the last one (0 if
        none); :meth:`audit_appended` with that number takes them out."""
        rows = self._db.execute("SELECT seq, event FROM audit_pending ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return (int(rows[-1][0]) if rows else 0), [AuditEvent.from_canonical(bytes(r[1])) for r in rows]

    def audit_appended(self, upto: int) -> None:
        self._db.execute("DELETE FROM audit_pending WHERE seq <= ?", (upto,))

    def published_offsets(self, topic: str) -> dict[int, int]:
        """Per partition of ``topic``: the offset after the last decision of this gate acknowledged there."""
        rows = self._db.execute("SELECT part, next_offset FROM published WHERE topic=?", (topic,))
        return {int(p): int(o) for p, o in rows}

    def mark_published(self, decision_ids: Sequence[str], positions: Sequence[tuple[str, int, int]] = ()) -> None:
        """The decisions ``decision_ids`` are on the topic (acknowledged, or found there by a restart); each of
        ``positions`` (topic, partition, offset) is where one of them landed. One SQLite transaction."""
        with self.transaction():
            self._db.execute("DELETE FROM outbox WHERE decision_id IN (SELECT value FROM json_each(?))",
                             (json.dumps(list(decision_ids)),))
            self._db.executemany(
                "INSERT INTO published VALUES (?,?,?) ON CONFLICT(topic, part) DO UPDATE SET "
                "next_offset=max(next_offset, excluded.next_offset)",
                [(t, p, o + 1) for t, p, o in positions])

    def keep_invalid(self, topic: str, part: int, offset: int, code: str, raw: bytes) -> None:
        self._db.execute("INSERT OR IGNORE INTO invalid_inputs VALUES (?,?,?,?,?)", (topic, part, offset, code, raw))

    # ---- view events ----------------------------------------------------------------------------------
    def apply(self, ev: ViewEvent, now_ms: int) -> set[str]:
        """Apply one view event; returns the numbers of the declarations whose view changed."""
        if isinstance(ev, VehicleDeclarationSeen):
            return self._apply_vehicle(ev)
        if isinstance(ev, DeclarationStatus):
            return self._apply_status(ev, now_ms)
        return self._apply_finding(ev)

    def _apply_vehicle(self, ev: VehicleDeclarationSeen) -> set[str]:
        row = self._db.execute("SELECT version, plate FROM vehicles WHERE number=?", (ev.number,)).fetchone()
        if row is not None and ev.version <= row[0]:
            return set()
        self._db.execute(
            "INSERT INTO vehicles VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(number) DO UPDATE SET "
            "direction=excluded.direction, plate=excluded.plate, containers=excluded.containers, "
            "linked=excluded.linked, perishable=excluded.perishable, version=excluded.version, "
            "cancelled=excluded.cancelled",
            (ev.number, ev.direction.value, ev.plate, json.dumps(list(ev.containers)),
             json.dumps(list(ev.linked)), int(ev.perishable), ev.version, int(ev.cancelled)))
        self._db.execute("DELETE FROM links WHERE vehicle=?", (ev.number,))
        self._db.executemany("INSERT OR IGNORE INTO links VALUES (?,?)",
                             [(n, ev.number) for n in (ev.number, *ev.linked)])
        if row is not None:
            self._index.remove(row[1])
        # an index entry left by a rolled-back batch only adds a candidate plate with no vehicle: harmless
        self._index.add(ev.plate)
        return {ev.number}

    def _apply_status(self, ev: DeclarationStatus, now_ms: int) -> set[str]:
        row = self._db.execute("SELECT state, version, sent_ms FROM declarations WHERE number=?",
                               (ev.number,)).fetchone()
        old = None if row is None else DeclRecord(DeclState(row[0]), row[2])
        if not accepts_status(old, 0 if row is None else row[1], ev):
            return set()
        # the version this state belongs to: a new submission is the next one, None is the one held
        version = (row[1] + 1 if row is not None else 1) if ev.new_submission else \
            (ev.version if ev.version is not None else (row[1] if row is not None else 1))
        if ev.new_submission and row is not None:
            old = None  # its grace period starts again
        sent_ms = ev.at_ms if (old is None or (ev.state is DeclState.SENT and old.state is DeclState.TAKEN_IN)) \
            else old.sent_ms
        self._db.execute("INSERT INTO declarations VALUES (?,?,?,?,?,?) ON CONFLICT(number) DO UPDATE SET "
                         "state=excluded.state, version=excluded.version, sent_ms=excluded.sent_ms, "
                         "updated_ms=excluded.updated_ms, reasons=excluded.reasons",
                         (ev.number, ev.state.value, version, sent_ms, now_ms, json.dumps(list(ev.reasons))))
        return {ev.number}

    def _apply_finding(self, ev: MirrorFinding) -> set[str]:
        cur = self._db.execute("INSERT OR REPLACE INTO findings VALUES (?,?,?)",
                               (ev.number, ev.code, int(ev.blocking)))
        return {ev.number} if cur.rowcount else set()

    # ---- GateView -------------------------------------------------------------------------------------
    def plate_matches(self, plate: str) -> Sequence[PlateMatch]:
        return self._index.lookup(plate)

    def vehicles(self, plate: str) -> Sequence[VehicleDeclarationSeen]:
        rows = self._db.execute("SELECT number, direction, plate, containers, linked, perishable, version, "
                                "cancelled FROM vehicles WHERE plate=? ORDER BY rowid", (plate,))
        return [VehicleDeclarationSeen(number=r[0], direction=Direction(r[1]), plate=r[2],
                                       containers=tuple(json.loads(r[3])), linked=tuple(json.loads(r[4])),
                                       perishable=bool(r[5]), version=r[6], cancelled=bool(r[7])) for r in rows]

    def declaration(self, number: str) -> DeclRecord | None:
        row = self._db.execute("SELECT state, sent_ms FROM declarations WHERE number=?", (number,)).fetchone()
        return None if row is None else DeclRecord(DeclState(row[0]), row[1])

    def findings(self, number: str) -> Sequence[MirrorFinding]:
        rows = self._db.execute("SELECT code, blocking FROM findings WHERE number=?", (number,))
        return [MirrorFinding(number, c, bool(b)) for c, b in rows]

    def clearance_holder(self, vehicle_declaration: str) -> str | None:
        row = self._db.execute("SELECT arrival_id FROM clearances WHERE vehicle=?", (vehicle_declaration,)).fetchone()
        return None if row is None else str(row[0])

    # ---- arrivals and decisions -----------------------------------------------------------------------
    def current_sequence(self, arrival_id: str) -> int:
        row = self._db.execute("SELECT current_seq FROM arrivals WHERE arrival_id=?", (arrival_id,)).fetchone()
        return 0 if row is None else int(row[0])

    def arrival(self, arrival_id: str) -> Arrival | None:
        row = self._db.execute("SELECT gate_id, lane, direction, plate_read, confidence, containers, camera_ms "
                               "FROM arrivals WHERE arrival_id=?", (arrival_id,)).fetchone()
        if row is None:
            return None
        return Arrival(arrival_id, row[0], row[1], Direction(row[2]), row[3], row[4], row[6],
                       tuple(json.loads(row[5])))

    def current_decision(self, arrival_id: str) -> Decision | None:
        from xborder_gateway.gate._codec import decode_decision

        row = self._db.execute("SELECT d.record FROM arrivals a JOIN decisions d ON d.arrival_id=a.arrival_id AND "
                               "d.sequence=a.current_seq WHERE a.arrival_id=?", (arrival_id,)).fetchone()
        return None if row is None else decode_decision(bytes(row[0]))

    def arrivals_to_review(self, numbers: set[str], plates: set[str], since_ms: int) -> list[str]:
        """Arrivals (camera time >= since) whose decision may change: those on a vehicle declaration linked
        to one of ``numbers``, and those RED NO_PRE_DECLARATION whose plate is in ``plates``."""
        found: dict[str, None] = {}
        if numbers:  # one query for the batch's numbers, in the order one query per number gave
            rows = self._db.execute(
                "SELECT l.declaration, a.camera_ms, a.arrival_id FROM links l JOIN arrivals a ON a.vehicle=l.vehicle "
                "WHERE l.declaration IN (SELECT value FROM json_each(?)) AND a.camera_ms>=?",
                (json.dumps(sorted(numbers)), since_ms)).fetchall()
            for _, _, aid in sorted(rows):
                found[aid] = None
        for plate in sorted(plates):
            for (aid,) in self._db.execute(
                    "SELECT arrival_id FROM arrivals WHERE plate=? AND reason=? AND camera_ms>=? ORDER BY camera_ms",
                    (plate, Reason.NO_PRE_DECLARATION.value, since_ms)):
                found[aid] = None
        return list(found)

    def vehicle_plate(self, number: str) -> str | None:
        row = self._db.execute("SELECT plate FROM vehicles WHERE number=?", (number,)).fetchone()
        return None if row is None else str(row[0])

    def due_arrivals(self, now_ms: int) -> list[str]:
        """Arrivals whose decision waits on a grace period that has passed (time-driven re-decisions)."""
        return [str(a) for (a,) in self._db.execute(
            "SELECT arrival_id FROM timers WHERE due_ms < ? ORDER BY due_ms, arrival_id", (now_ms,))]

    def clear_timer(self, arrival_id: str) -> None:
        self._db.execute("DELETE FROM timers WHERE arrival_id=?", (arrival_id,))

    def record_decision(self, d: Decision, arrival: Arrival, plate: str | None, record: bytes,
                        source: tuple[str, int, int], *, due_ms: int | None = None) -> None:
        """Write ``d`` if the arrival is still at ``d.sequence - 1`` (compare-and-set), claim or release the
        vehicle declaration's clearance; :class:`StaleDecisionError` if either check fails (GATE-4, GATE-6)."""
        db = self._db
        if d.sequence == 1:
            cur = db.execute(
                "INSERT OR IGNORE INTO arrivals VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (arrival.arrival_id, arrival.gate_id, arrival.lane, arrival.direction.value, arrival.plate_read,
                 plate, arrival.plate_confidence, json.dumps(list(arrival.containers_read)), arrival.camera_ms,
                 1, d.colour.name, d.primary_reason.value, d.vehicle_declaration, int(d.priority_lane),
                 d.decided_ms, d.decided_ms))
        else:
            cur = db.execute(
                "UPDATE arrivals SET current_seq=?, colour=?, reason=?, vehicle=?, perishable=?, decided_ms=? "
                "WHERE arrival_id=? AND current_seq=?",
                (d.sequence, d.colour.name, d.primary_reason.value, d.vehicle_declaration, int(d.priority_lane),
                 d.decided_ms, arrival.arrival_id, d.sequence - 1))
        if cur.rowcount != 1:
            raise StaleDecisionError(f"arrival {arrival.arrival_id} is no longer at sequence {d.sequence - 1}")
        # clearances: held while the truck is let through or held (GREEN/YELLOW), given back when RED
        db.execute("DELETE FROM clearances WHERE arrival_id=? AND vehicle IS NOT ?",
                   (arrival.arrival_id, d.vehicle_declaration if d.colour is not Colour.RED else None))
        if d.vehicle_declaration is not None and d.colour is not Colour.RED:
            db.execute("INSERT OR IGNORE INTO clearances VALUES (?,?)", (d.vehicle_declaration, arrival.arrival_id))
            if self.clearance_holder(d.vehicle_declaration) != arrival.arrival_id:
                raise StaleDecisionError(f"clearance {d.vehicle_declaration} was taken by another arrival")
        elif d.vehicle_declaration is not None:
            db.execute("DELETE FROM clearances WHERE vehicle=? AND arrival_id=?",
                       (d.vehicle_declaration, arrival.arrival_id))
        # the time at which the outcome changes by itself (AWAITING_COUNTERPART -> ..._OVERDUE), if any
        if due_ms is None:
            db.execute("DELETE FROM timers WHERE arrival_id=?", (arrival.arrival_id,))
        else:
            db.execute("INSERT OR REPLACE INTO timers VALUES (?,?)", (arrival.arrival_id, due_ms))
        db.execute("INSERT INTO decisions VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                   (d.decision_id, d.arrival_id, d.sequence, d.colour.name, json.dumps([r.value for r in d.reasons]),
                    d.supersedes, d.decided_ms, source[0], source[1], source[2], record))
        if self.keep_outbox:
            db.execute("INSERT INTO outbox VALUES (?)", (d.decision_id,))

    # ---- board ----------------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        return [tuple(r) for r in self._db.execute(sql, params)]
