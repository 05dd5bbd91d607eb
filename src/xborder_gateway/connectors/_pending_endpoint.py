"""The receiving endpoint's waiting and release logic (issue 15 items 1-2), called from two small hooks in
``connectors/nanning.py``; the decisions are ``exchange/_pending.py`` (PEN-1..5, VER-1..5, ADR 0404) and
``exchange/_rules_cn.decide_release`` (REL-1..4).

Three paths produce business responses:

1. **In the batch, for the message itself** (:meth:`PendingEndpoint.step`): a vehicle declaration is
   submitted (:func:`submit_vehicle`): decided now, or PENDING -- then its receipt is an ACK whose
   ``reason_text`` starts with ``LINKED_DECLARATION_PENDING:`` and no business response follows yet (PEN-1). A goods
   declaration is judged by version (:func:`register_declaration`: VER-1..5; STALE -> REJECTED
   ``VERSION_STALE``) and decided by the rule set.
2. **In the batch, for other messages** ("later answers"): the vehicles a declaration completes (PEN-2,
   PEN-5) and the HELD declaration an amendment releases (REL-1..4) get a new business response addressed
   to THEIR message id. These are produced in the SAME Kafka transaction as the batch that took the
   decision, and stored as answers of the triggering message too (``cn_answers``), so a crash after the
   SQLite commit and before the Kafka commit, which redelivers the batch as duplicates, replays them
   with the original answers: never lost, never decided twice (the compare-and-set is ``_settle``, PEN-4).
   Only that redelivery (the same Kafka position, ``cn_later_triggers``) repeats them; a resend of the
   triggering message (another offset) gets its own answers only (:meth:`PendingEndpoint.replay`).
   They are also appended to the answered message's own ``cn_answers``, so a later duplicate of it is
   answered with everything it was sent, in order.
At VN's endpoint (issue 15, CN -> VN) only CN's road manifests (``CN_MANIFEST``) take path 1 through
:meth:`PendingEndpoint.manifest`; CN's exports are decided by the mirror desk and then registered here
(:meth:`PendingEndpoint.linked_arrived`) as the manifests' linked declarations, which may complete waiting
manifests (path 2); ``outcome`` (the mirror desk's) applies PEN-6 (``exchange/_pending.py``).

3. **The grace tick** (:class:`ExpiryTicker`, run by the transactional loop between batches, also when no
   input arrives): every PENDING vehicle whose grace period, counted from its **processing** time, is over
   is REJECTED ``LINKED_DECLARATION_UNKNOWN`` (PEN-3). TICK-1: the decision, its answers (in an outbox,
   ``cn_pending_outbox``) and its audit events are committed to SQLite first; the outbox is then produced
   in a Kafka transaction of its own and marked produced only after that commit succeeded. A crash or a
   failed transaction leaves the rows unproduced and the next tick (after a restart: found again in
   SQLite) produces the SAME bytes again. So an expiry is decided exactly once and answered at least once
   with identical bytes -- the tracker's business-response update is an idempotent upsert. The other order
   (Kafka first, SQLite after) would re-decide after a crash and seal a second, different response.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from xborder_gateway import avro
from xborder_gateway.audit import AuditEvent, EventType
from xborder_gateway.config import Settings
from xborder_gateway.connectors._common import (
    H_BUSINESS_KEY,
    H_KIND,
    H_MESSAGE_ID,
    H_RUN,
    AuditSink,
    event,
    log_line,
    now_ms,
)
from xborder_gateway.envelope import LocalAuthority, SqliteReplayStore, TrustStore, seal
from xborder_gateway.exchange._business import BusinessDecision
from xborder_gateway.exchange._pending import (
    LINKED_DECLARATION_PENDING,
    PENDING,
    PENDING_SCHEMA,
    VEHICLE_TYPES,
    DecisionCause,
    Outcome,
    VehicleDecision,
    VersionKind,
    VersionVerdict,
    audit_fields,
    cn_declarations_lookup,
    expire,
    next_expiry_ms,
    next_version,
    register_declaration,
    register_declaration_detail,
    stale_decision,
    submit_vehicle,
    version_of,
)
from xborder_gateway.exchange._rules import RuleSet
from xborder_gateway.exchange._rules_cn import CnRuleSet, ReleaseAction, decide_release
from xborder_gateway.exchange._state import decode_headers, encode_headers
from xborder_gateway.exchange._stores import EndpointStore, StoredAnswer
from xborder_gateway.transport import Outgoing

__all__ = ["HOLD_RELEASED", "PENDING_ENDPOINT_SCHEMA", "ExpiryTicker", "PendingEndpoint", "Step",
           "pending_summary"]

BUSINESS_DOCUMENT_TYPE = "BUSINESS_RESPONSE"
HOLD_RELEASED = "HOLD_RELEASED"  # audit reason code of a release's ACCEPTED response
VERSION_INVALID = "VERSION_INVALID"  # VER-5 at the receiver: a version outside 1..999 in a signed record

PENDING_ENDPOINT_SCHEMA = """
CREATE TABLE IF NOT EXISTS cn_vehicle_messages (
    message_id  TEXT PRIMARY KEY,
    business_key TEXT NOT NULL,
    sender      TEXT NOT NULL,
    run         TEXT,
    pended_ms   INTEGER,
    decided_ms  INTEGER,
    cause       TEXT,
    status      TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS cn_vehicle_messages_run ON cn_vehicle_messages (run);
CREATE TABLE IF NOT EXISTS cn_declaration_outcomes (
    business_key TEXT PRIMARY KEY,
    message_id   TEXT NOT NULL,
    version      INTEGER NOT NULL,
    doc_type     TEXT NOT NULL,
    status       TEXT NOT NULL,
    reasons      TEXT NOT NULL,
    sender       TEXT NOT NULL,
    run          TEXT
) STRICT;
CREATE TABLE IF NOT EXISTS cn_releases (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    business_key         TEXT NOT NULL,
    held_message_id      TEXT NOT NULL,
    amendment_message_id TEXT NOT NULL,
    action               TEXT NOT NULL,
    run                  TEXT,
    at_ms                INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS cn_later_triggers (
    message_id TEXT PRIMARY KEY,
    topic      TEXT NOT NULL,
    part       INTEGER NOT NULL,
    offs       INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS cn_pending_outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    topic       TEXT NOT NULL,
    msg_key     BLOB,
    data        BLOB NOT NULL,
    headers     TEXT NOT NULL,
    produced_ms INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS cn_pending_outbox_open ON cn_pending_outbox (produced_ms);
"""
"""This module's tables, beside ``CN_SCHEMA`` and ``PENDING_SCHEMA`` in the endpoint's state DB."""


@dataclass
class Step:
    """What the endpoint answers for one decoded message: its own decision (``PENDING`` for a waiting
    vehicle: an ACK receipt only, whose ``reason_text`` starts with ``LINKED_DECLARATION_PENDING:`` -- an ACK
    carries no reason code -- signed like every receipt) and the later answers for other messages."""

    decision: BusinessDecision
    receipt_text: str | None = None
    later: list[Outgoing] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        return self.decision.status == PENDING


def _linked(record: Mapping[str, Any]) -> list[str]:
    # VehicleManifest: linked_declarations; CnRoadManifest: declarations
    raw = record.get("linked_declarations")
    if raw is None:
        raw = record.get("declarations")
    return [str(k) for k in raw or ()]


def _reasons_json(decision: BusinessDecision) -> str:
    return json.dumps([[c, t] for c, t in decision.reasons], ensure_ascii=False)


class PendingEndpoint:
    """The endpoint-side wiring of the pending store. Owns no connection: every call gets the caller's
    open transaction (the batch's, or the tick's)."""

    def __init__(self, settings: Settings, me: LocalAuthority, trust: TrustStore, rules: RuleSet,
                 conn: sqlite3.Connection, *, authority: str, process: str,
                 clock: Callable[[], int] = now_ms, outcome: Outcome | None = None) -> None:
        self.settings = settings
        self.outcome = outcome  # PEN-6: VN's endpoint -- the mirror outcome of each linked CN export
        self.me = me
        self.trust = trust
        self.rules = rules
        self.authority = authority
        self.process = process
        self.clock = clock
        conn.executescript(PENDING_SCHEMA + PENDING_ENDPOINT_SCHEMA)

    @property
    def grace_s(self) -> float:
        return float(self.settings.exchange_linked_grace_s)

    # --- path 1 and 2: inside a batch ----------------------------------------------------------------
    def step(self, conn: sqlite3.Connection, doc_type: str, record: Mapping[str, Any], *, business_key: str | None,
             message_id: str, sender: str, run: str | None, events: list[AuditEvent],
             position: tuple[str, int, int] | None = None) -> Step:
        """Decide ``record`` (decoded, verified) inside the batch's transaction; see the module docstring.
        ``position`` is the record's Kafka (topic, partition, offset): see :meth:`replay`."""
        result = self._step(conn, doc_type, record, business_key=business_key, message_id=message_id,
                            sender=sender, run=run, events=events)
        if result.later and position is not None:
            conn.execute("INSERT OR IGNORE INTO cn_later_triggers (message_id, topic, part, offs) VALUES (?, ?, ?, ?)",
                         (message_id, *position))
        return result

    def replay(self, conn: sqlite3.Connection, message_id: str, position: tuple[str, int, int],
               originals: list[StoredAnswer]) -> list[StoredAnswer]:
        """The stored answers a duplicate of ``message_id`` at ``position`` is given (ENV-10): its own answers
        always; the later answers it caused for OTHER messages only when the duplicate is the redelivery of
        the very record that caused them (same Kafka position: the batch's Kafka transaction was lost after
        the SQLite commit). A resend (another offset) does not repeat other messages' responses."""
        row = conn.execute("SELECT topic, part, offs FROM cn_later_triggers WHERE message_id = ?",
                           (message_id,)).fetchone()
        if row is not None and (str(row[0]), int(row[1]), int(row[2])) == position:
            return originals
        mine = message_id.encode()
        return [a for a in originals if dict(a.headers).get(H_MESSAGE_ID, mine) == mine]

    def manifest(self, conn: sqlite3.Connection, doc_type: str, record: Mapping[str, Any], *, business_key: str,
                 message_id: str, sender: str, run: str | None) -> Step:
        """VN's endpoint: CN's road manifest ``record`` (document type ``CN_MANIFEST``) waits for the CN exports
        it lists (PEN-1), decided by BIZ-2/BIZ-3 and PEN-6 once all were processed here."""
        return self._vehicle(conn, doc_type, record, business_key, message_id=message_id, sender=sender, run=run,
                             now=self.clock())

    def linked_arrived(self, conn: sqlite3.Connection, doc_type: str, record: Mapping[str, Any], *,
                       business_key: str, message_id: str, events: list[AuditEvent],
                       position: tuple[str, int, int] | None = None) -> list[Outgoing]:
        """VN's endpoint: register a CN export the mirror desk has just checked (its own answer is the mirror
        desk's) as a linked declaration, by its version (VER-1..5); returns the business responses of the
        manifests it completes (PEN-2, PEN-6). A STALE or repeated version completes nothing."""
        now = self.clock()
        try:
            version = version_of(record)
        except ValueError:  # VER-5: not registered (the mirror desk answered the export; its manifests wait)
            log_line(logging.WARNING, "export version out of range: not registered", message_id=message_id,
                     business_key=business_key)
            return []
        if version is None:
            version = next_version(conn, business_key)
        _verdict, vehicles = register_declaration(
            conn, business_key=business_key, version=version, kind=VersionKind.DECLARATION, document_type=doc_type,
            message_id=message_id, gross_weight_kg=record.get("gross_weight_kg"), now_ms=now, grace_s=self.grace_s,
            outcome=self.outcome)
        later = [self._later_vehicle(conn, d, now, events) for d in vehicles]
        if later and position is not None:
            conn.execute("INSERT OR IGNORE INTO cn_later_triggers (message_id, topic, part, offs) VALUES (?, ?, ?, ?)",
                         (message_id, *position))
        return later

    def _step(self, conn: sqlite3.Connection, doc_type: str, record: Mapping[str, Any], *, business_key: str | None,
              message_id: str, sender: str, run: str | None, events: list[AuditEvent]) -> Step:
        now = self.clock()
        look = cn_declarations_lookup(conn)
        if doc_type in VEHICLE_TYPES and business_key:
            return self._vehicle(conn, doc_type, record, business_key, message_id=message_id, sender=sender,
                                 run=run, now=now)
        decision = self.rules.decide(doc_type, record, lookup=look)
        if not (self.rules.remembers(doc_type) and business_key):
            return Step(decision)
        try:
            version = version_of(record)
        except ValueError as exc:  # VER-5 at the receiver: a signed record's version outside 1..999
            return Step(_invalid_version(exc))
        if version is None:  # ADR 0404: a record without a version (Declaration <= v3, null AMV): arrival order
            version = next_version(conn, business_key)
        kind = VersionKind.CANCELLATION if record.get("cancellation") is True else VersionKind.DECLARATION
        verdict, vehicles, new = register_declaration_detail(
            conn, business_key=business_key, version=version, kind=kind, document_type=doc_type,
            message_id=message_id, gross_weight_kg=record.get("gross_weight_kg"), now_ms=now, grace_s=self.grace_s,
            outcome=None)
        if verdict is VersionVerdict.STALE:  # VER-2 / VER-4: answered, nothing applied
            return Step(stale_decision(conn, business_key, version))
        later: list[Outgoing] = []
        if verdict is VersionVerdict.APPLY:
            # the outcome in force before this version (REL-1..4). Issue 13: read after the registration, which
            # writes no cn_declaration_outcomes row, and not at all for a number new here (an outcome is only
            # ever stored after its version, so a first version has none)
            prior = None if new else conn.execute(
                "SELECT message_id, version, status, reasons, sender, run, doc_type FROM cn_declaration_outcomes "
                "WHERE business_key = ?", (business_key,)).fetchone()
            if prior is not None and str(prior[2]) == "HELD" and isinstance(self.rules, CnRuleSet):
                later += self._release(conn, prior, business_key, record, version=version, message_id=message_id,
                                       now=now, events=events)
            conn.execute(
                "INSERT INTO cn_declaration_outcomes (business_key, message_id, version, doc_type, status, reasons, "
                "sender, run) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (business_key) DO UPDATE SET "
                "message_id = excluded.message_id, version = excluded.version, doc_type = excluded.doc_type, "
                "status = excluded.status, reasons = excluded.reasons, sender = excluded.sender, run = excluded.run "
                "WHERE excluded.version > cn_declaration_outcomes.version",
                (business_key, message_id, version, doc_type, decision.status, _reasons_json(decision), sender, run))
        for d in vehicles:  # PEN-2 / PEN-5: vehicles this declaration completed or changed
            later.append(self._later_vehicle(conn, d, now, events))
        return Step(decision, later=later)

    def _vehicle(self, conn: sqlite3.Connection, doc_type: str, record: Mapping[str, Any], business_key: str, *,
                 message_id: str, sender: str, run: str | None, now: int) -> Step:
        try:
            version = version_of(record)
        except ValueError as exc:  # VER-5 at the receiver: refused, nothing stored
            return Step(_invalid_version(exc))
        if version is None:
            version = next_version(conn, business_key, vehicle=True)
        d = submit_vehicle(conn, business_key=business_key, version=version, document_type=doc_type,
                           message_id=message_id, linked=_linked(record),
                           gross_weight_kg=record.get("gross_weight_kg"), processed_ms=now, grace_s=self.grace_s,
                           outcome=self.outcome)
        conn.execute("INSERT INTO cn_vehicle_messages (message_id, business_key, sender, run, pended_ms, status) "
                     "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING",
                     (message_id, business_key, sender, run, now if d.pending else None, d.decision.status))
        if d.pending and d.cause is DecisionCause.SUBMITTED:  # PEN-1: a receipt now, the decision later
            missing = ", ".join(t.removeprefix("waiting for declaration ") for _c, t in d.decision.reasons)
            return Step(d.decision, receipt_text=f"{LINKED_DECLARATION_PENDING}: received; the business response "
                                                 f"follows when declaration(s) {missing} arrive (at most "
                                                 f"{self.grace_s:g} s)"[:500])
        if d.pending:  # a DUPLICATE version of a vehicle still waiting: say so again, decide nothing
            return Step(d.decision, receipt_text=f"{LINKED_DECLARATION_PENDING}: received; still waiting for its "
                                                 "linked declarations")
        return Step(d.decision)

    def _later_vehicle(self, conn: sqlite3.Connection, d: VehicleDecision, now: int,
                       events: list[AuditEvent]) -> Outgoing:
        meta = conn.execute("SELECT sender, run FROM cn_vehicle_messages WHERE message_id = ?",
                            (d.message_id,)).fetchone()
        sender, run = (str(meta[0]), meta[1]) if meta is not None else ("VN", None)
        out = self._response(d.message_id, d.business_key, d.document_type, d.decision, sender=sender, run=run,
                             now=now)
        conn.execute("UPDATE cn_vehicle_messages SET decided_ms = ?, cause = ?, status = ? WHERE message_id = ?",
                     (now, d.cause.value, d.decision.status, d.message_id))
        _append_answer(conn, d.message_id, out)
        events.append(event(self.authority, self.process, EventType.BUSINESS_RESPONSE, **audit_fields(d)))
        log_line(logging.INFO, "vehicle decided later", message_id=d.message_id, business_key=d.business_key,
                 status=d.decision.status, cause=d.cause.value)
        return out

    def _release(self, conn: sqlite3.Connection, prior: Sequence[Any], business_key: str,
                 record: Mapping[str, Any], *, version: int, message_id: str, now: int,
                 events: list[AuditEvent]) -> list[Outgoing]:
        """REL-1..4: an APPLIED newer version of a HELD declaration -> a new business response to the HELD
        message (RELEASE: ACCEPTED; STILL_HELD / REJECT: the new decision), else nothing."""
        held_mid, held_version, _status, reasons, sender, held_run, held_type = prior
        previous = BusinessDecision("HELD", tuple((str(c), str(t)) for c, t in json.loads(str(reasons))))
        if not isinstance(self.rules, CnRuleSet):
            return []
        rel = decide_release(previous, business_key, record, rules=self.rules,
                             lookup=cn_declarations_lookup(conn), document_type=str(held_type),
                             previous_version=int(held_version), amendment_version=version)
        if rel.action is ReleaseAction.NO_CHANGE or rel.decision is None:
            return []
        out = self._response(str(held_mid), business_key, str(held_type), rel.decision, sender=str(sender),
                             run=held_run, now=now)
        _append_answer(conn, str(held_mid), out)
        conn.execute("INSERT INTO cn_releases (business_key, held_message_id, amendment_message_id, action, run, "
                     "at_ms) VALUES (?, ?, ?, ?, ?, ?)", (business_key, held_mid, message_id, rel.action.value,
                                                          held_run, now))
        code = HOLD_RELEASED if rel.action is ReleaseAction.RELEASE else (
            rel.decision.reasons[0][0] if rel.decision.reasons else None)
        events.append(event(self.authority, self.process, EventType.BUSINESS_RESPONSE, message_id=str(held_mid),
                            business_key=business_key, document_type=str(held_type),
                            outcome=rel.decision.status.lower(), reason_code=code))
        log_line(logging.INFO, "hold answered by amendment", message_id=str(held_mid), business_key=business_key,
                 action=rel.action.value, amendment=message_id)
        return [out]

    def _response(self, message_id: str, business_key: str, doc_type: str, decision: BusinessDecision, *,
                  sender: str, run: str | None, now: int) -> Outgoing:
        # sealed at the wall clock (ENV-8 checks it); ``now`` (the injectable decision clock) is not used here
        del now
        at = datetime.now(UTC)
        response = {"message_id": message_id, "business_key": business_key, "document_type": doc_type,
                    "status": decision.status, "reasons": decision.as_reasons(), "responded_at": at}
        payload = avro.encode("BusinessResponse", response)
        sealed = seal(payload, sender=self.me, recipient=sender, trust=self.trust,
                      document_type=BUSINESS_DOCUMENT_TYPE, schema_fingerprint=payload[2:10], now=at)
        return Outgoing(self.settings.topic_receipts, message_id.encode(), sealed.data, Outgoing.make_headers({
            H_KIND: "business-response", H_MESSAGE_ID: message_id, H_RUN: run, H_BUSINESS_KEY: business_key}))

    # --- path 3: the grace tick ------------------------------------------------------------------------
    def expire_into_outbox(self, conn: sqlite3.Connection, events: list[AuditEvent]) -> int:
        """PEN-3 inside the tick's transaction: decide the expired vehicles, queue their answers (TICK-1)."""
        now = self.clock()
        due = next_expiry_ms(conn, grace_s=self.grace_s)
        if due is None or due > now:
            return 0
        decided = expire(conn, now, grace_s=self.grace_s, outcome=self.outcome)
        for d in decided:
            out = self._later_vehicle(conn, d, now, events)
            conn.execute("INSERT INTO cn_pending_outbox (topic, msg_key, data, headers) VALUES (?, ?, ?, ?)",
                         (out.topic, out.key, out.value, encode_headers(out.headers)))
        return len(decided)

    def outbox(self, conn: sqlite3.Connection) -> list[tuple[int, Outgoing]]:
        rows = conn.execute("SELECT seq, topic, msg_key, data, headers FROM cn_pending_outbox "
                            "WHERE produced_ms IS NULL ORDER BY seq").fetchall()
        return [(int(s), Outgoing(str(t), None if k is None else bytes(k), bytes(d), decode_headers(str(h))))
                for s, t, k, d, h in rows]


def _invalid_version(exc: ValueError) -> BusinessDecision:
    return BusinessDecision("REJECTED", ((VERSION_INVALID, str(exc)[:300]),))


def _append_answer(conn: sqlite3.Connection, message_id: str, out: Outgoing) -> None:
    """Append ``out`` to ``message_id``'s stored answers (a duplicate of it is answered with all of them)."""
    EndpointStore(conn).append_answer(message_id, StoredAnswer(out.topic, out.key, out.value, out.headers))


class ExpiryTicker:
    """The endpoint's grace tick (PEN-3, TICK-1) as a :class:`~xborder_gateway.transport._loop.Ticker`."""

    def __init__(self, endpoint: PendingEndpoint, store: SqliteReplayStore, audit: AuditSink | None) -> None:
        self.endpoint = endpoint
        self.store = store
        self.audit = audit
        self.interval_s = max(0.2, min(1.0, endpoint.grace_s / 10))
        # under continuous input (never caught up), expiries are at most one more grace period late
        self.max_wait_s = endpoint.grace_s
        self.expired = 0
        self._inflight: list[int] = []

    def _idle(self) -> bool:
        """Nothing due and nothing unconfirmed: no write transaction needed (read in autocommit)."""
        conn = self.store.connection
        due = next_expiry_ms(conn, grace_s=self.endpoint.grace_s)
        if due is not None and due <= self.endpoint.clock():
            return False
        return conn.execute("SELECT 1 FROM cn_pending_outbox WHERE produced_ms IS NULL LIMIT 1").fetchone() is None

    def tick(self) -> Sequence[Outgoing]:
        events: list[AuditEvent] = []
        try:
            if self._idle():
                self._inflight = []
                return []
            with self.store.transaction() as conn:
                n = self.endpoint.expire_into_outbox(conn, events)
                if self.audit is not None and events:
                    self.audit(events)  # ADR 0400: audit before the state commit
                rows = self.endpoint.outbox(conn)
        except Exception:  # a failing tick must not stop the endpoint's batches; it is retried next tick
            logging.getLogger(__name__).exception("grace tick failed; retrying at the next tick")
            return []
        self.expired += n
        if n:
            log_line(logging.INFO, "grace period over: vehicles decided", count=n)
        self._inflight = [seq for seq, _o in rows]
        return [o for _s, o in rows]

    def committed(self, outputs: Sequence[Outgoing]) -> None:
        seqs, self._inflight = self._inflight, []
        if not seqs:
            return
        with self.store.transaction() as conn:
            conn.executemany("UPDATE cn_pending_outbox SET produced_ms = ? WHERE seq = ?",
                             [(now_ms(), s) for s in seqs])


def pending_summary(cn: sqlite3.Connection, run: str | None = None) -> dict[str, int]:
    """The demo's ``pending`` figure for ``run`` (all runs when None): vehicles that waited and were then
    decided by a linked declaration, expired after the grace period, still waiting, and releases."""
    where, args = ("WHERE run = ?", (run,)) if run is not None else ("", ())
    rows = dict(cn.execute(
        "SELECT CASE WHEN decided_ms IS NULL THEN 'waiting' WHEN cause = 'GRACE_EXPIRED' THEN 'expired' "  # noqa: S608
        f"ELSE 'decided' END, count(*) FROM cn_vehicle_messages {where} "
        f"{'AND' if where else 'WHERE'} pended_ms IS NOT NULL GROUP BY 1", args).fetchall())
    released = cn.execute(f"SELECT count(*) FROM cn_releases {where} "  # noqa: S608
                          f"{'AND' if where else 'WHERE'} action = 'RELEASE'", args).fetchone()[0]
    return {"pending_then_decided": int(rows.get("decided", 0)), "expired": int(rows.get("expired", 0)),
            "still_pending": int(rows.get("waiting", 0)), "released": int(released)}
