"""Waiting, not rejecting (issue 15 item 1): vehicle declarations whose linked declarations have not all
arrived are PENDING, decided by version rather than arrival order, durable in the endpoint's state DB.

Two parts, as elsewhere in ``exchange``:

- pure decisions with the clock as a parameter: :func:`judge_version` (which version of a declaration
  counts) and :func:`decide_vehicle` (PENDING, or the BIZ-2/BIZ-3 decision of :func:`_business.decide`);
- a store (:data:`PENDING_SCHEMA`) whose functions take the caller's open ``sqlite3.Connection`` and
  never commit, so they run inside the endpoint's per-batch transaction with its answers and its
  replay record (ENV-10), like the other stores in this package.

Rules:

- PEN-1 a vehicle declaration (TIR/TOR, CN's road manifest) naming a declaration the endpoint does not
  know is PENDING, not REJECTED: the linked declarations travel on other partitions and may be behind it.
- PEN-2 it is re-evaluated when each of its linked declarations arrives (:func:`on_declaration`) and
  decided by BIZ-2/BIZ-3 once all are known.
- PEN-3 it is REJECTED ``LINKED_DECLARATION_UNKNOWN`` only once the grace period
  (``exchange_linked_grace_s``) has passed since the endpoint **processed** it (``processed_ms``, the
  endpoint's clock), never since the sender created it, so catching up after an outage rejects nothing
  whose declarations are right behind it (:func:`expire`). Only the tick rejects: an arriving
  declaration re-evaluates a vehicle as at its processing time, so it never rejects it for another
  declaration still missing (after an outage both may be in the same backlog).
- PEN-4 a vehicle is decided once per version: the PENDING -> DECIDED step is one compare-and-set
  (:func:`_settle`), re-checked on the row, so a tick and an arrival cannot both answer it.
- PEN-5 a linked declaration that is cancelled makes every vehicle linking it re-evaluate: HELD
  ``LINKED_DECLARATION_CANCELLED`` (the truck may not cross with it until an amended vehicle declaration
  drops it); an amendment of a linked declaration re-evaluates decided vehicles too (BIZ-3 weights), and a
  new business response is sent only when the decision changes.
- PEN-6 (VN's endpoint, CN's road manifest) ``outcome`` gives each linked declaration's own outcome at the
  endpoint (VN: the mirror check of the CN export). Once all links are known and BIZ-2/BIZ-3 did not
  reject, a link whose outcome is HELD, or still open (``WAITING``: the mirror check waits for VN's IDA),
  makes the vehicle HELD ``LINKED_DECLARATION_HELD`` (conservative: the truck is inspected; a mirror check
  that concludes later does not re-decide the manifest); a REJECTED link makes it REJECTED
  ``LINKED_DECLARATION_REJECTED``. Without ``outcome`` (CN's endpoint) nothing changes.
- VER-1 each declaration number has one latest version; a higher version is applied (APPLY).
- VER-2 a lower version is STALE: answered (receipt, and its business response says why), never applied,
  so an amendment that overtook its original (they travel under different message ids) stays in force.
- VER-3 the same version again is a DUPLICATE (nothing to apply); a cancellation at the version it
  cancels is applied (the sender cancels the version it knows).
- VER-4 a cancellation is final: every later message for that number is STALE.
- VER-5 versions are integers 1..999 (CNA-6); anything else is refused with ``ValueError`` before any
  SQL (no bool, no 2**63).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from xborder_gateway.exchange._business import MANIFEST_TYPES, BusinessDecision, KnownDeclaration
from xborder_gateway.exchange._business import decide as _decide_manifest
from xborder_gateway.exchange._status import StatusChange, StatusKind, StatusVehicle
from xborder_gateway.exchange._stores import insert_rows

__all__ = [
    "LINKED_DECLARATION_CANCELLED",
    "LINKED_DECLARATION_HELD",
    "LINKED_DECLARATION_PENDING",
    "LINKED_DECLARATION_REJECTED",
    "LINKED_DECLARATION_UNKNOWN",
    "MAX_VERSION",
    "PENDING",
    "PENDING_SCHEMA",
    "VEHICLE_TYPES",
    "VERSION_FIELDS",
    "VERSION_STALE",
    "DecisionCause",
    "Outcome",
    "VehicleDecision",
    "VersionKind",
    "VersionVerdict",
    "accept_version",
    "audit_fields",
    "cn_declarations_lookup",
    "decide_vehicle",
    "expire",
    "judge_version",
    "known_version",
    "next_expiry_ms",
    "next_version",
    "on_declaration",
    "pending_status_change",
    "pending_vehicles",
    "register_declaration",
    "register_declaration_detail",
    "stale_decision",
    "submit_vehicle",
    "vehicle_status_change",
    "version_of",
]

PENDING = "PENDING"
LINKED_DECLARATION_UNKNOWN = "LINKED_DECLARATION_UNKNOWN"  # BIZ-2's code, after the grace period
LINKED_DECLARATION_PENDING = "LINKED_DECLARATION_PENDING"  # reason of a PENDING decision (status feed only)
LINKED_DECLARATION_CANCELLED = "LINKED_DECLARATION_CANCELLED"
LINKED_DECLARATION_HELD = "LINKED_DECLARATION_HELD"  # PEN-6
LINKED_DECLARATION_REJECTED = "LINKED_DECLARATION_REJECTED"  # PEN-6
VERSION_STALE = "VERSION_STALE"
MAX_VERSION = 999
# TIR/TOR (VN's vehicle declarations) and China's road manifest, whichever way the truck goes.
VEHICLE_TYPES = MANIFEST_TYPES | frozenset({"CnRoadManifest"})
_MAX_REASONS = 10
#: PEN-6: a linked declaration's own outcome at the endpoint (ACCEPTED, HELD, REJECTED, WAITING) or None
Outcome = Callable[[str], str | None]

PENDING_SCHEMA = """
CREATE TABLE IF NOT EXISTS cn_declaration_versions (
    business_key TEXT PRIMARY KEY,
    version      INTEGER NOT NULL CHECK (version BETWEEN 1 AND 999),
    kind         TEXT NOT NULL CHECK (kind IN ('DECLARATION', 'CANCELLATION')),
    updated_ms   INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS cn_vehicles (
    business_key    TEXT PRIMARY KEY,
    version         INTEGER NOT NULL CHECK (version BETWEEN 1 AND 999),
    doc_type        TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    linked          TEXT NOT NULL,
    gross_weight_kg TEXT,
    created_ms      INTEGER,
    processed_ms    INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('PENDING', 'DECIDED')),
    status          TEXT NOT NULL,
    reasons         TEXT NOT NULL,
    decided_ms      INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS cn_vehicles_pending ON cn_vehicles (state, processed_ms);
CREATE TABLE IF NOT EXISTS cn_vehicle_links (
    vehicle_key        TEXT NOT NULL,
    declaration_number TEXT NOT NULL,
    PRIMARY KEY (vehicle_key, declaration_number)
) STRICT;
CREATE INDEX IF NOT EXISTS cn_vehicle_links_declaration ON cn_vehicle_links (declaration_number);
"""
"""DDL of the store; run it with ``executescript`` beside ``CN_SCHEMA`` on the endpoint's state DB.
``created_ms`` is informational (the sender's time): no rule reads it (PEN-3)."""


# ---- versions (pure) ---------------------------------------------------------------------------------
class VersionKind(StrEnum):
    DECLARATION = "DECLARATION"    # the original (version 1) or an amendment (a higher version)
    CANCELLATION = "CANCELLATION"


class VersionVerdict(StrEnum):
    APPLY = "APPLY"          # newer than anything known: apply it (register/replace, re-evaluate vehicles)
    STALE = "STALE"          # older than what is known (or after a cancellation): answer, do not apply
    DUPLICATE = "DUPLICATE"  # the version already in force: nothing to apply


def _check_version(version: object) -> int:
    # VER-5: integers 1..999 only (CNA-6); bool is an int in Python and is refused too
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise ValueError(f"declaration version {version!r} is not an integer in 1..{MAX_VERSION}")
    return version


def judge_version(known: tuple[int, VersionKind] | None, version: int, kind: VersionKind) -> VersionVerdict:
    """Which verdict a message of ``version``/``kind`` gets against the ``known`` latest (pure)."""
    _check_version(version)
    if known is None:
        return VersionVerdict.APPLY  # VER-1: the first we hear of it, whatever its version
    known_version, known_kind = known
    if known_kind is VersionKind.CANCELLATION:
        # VER-4: cancelled is final (a repeat of the cancellation itself is a duplicate)
        same = kind is VersionKind.CANCELLATION and version == known_version
        verdict = VersionVerdict.DUPLICATE if same else VersionVerdict.STALE
    elif version > known_version:
        verdict = VersionVerdict.APPLY  # VER-1
    elif version < known_version:
        verdict = VersionVerdict.STALE  # VER-2: an amendment overtook it
    elif kind is VersionKind.CANCELLATION:
        verdict = VersionVerdict.APPLY  # VER-3: cancels the version the sender knows
    else:
        verdict = VersionVerdict.DUPLICATE  # VER-3
    return verdict


VERSION_FIELDS = ("version", "declaration_version", "manifest_version")
"""Where a record carries its version: ``CnExportDeclaration.declaration_version``,
``CnRoadManifest.manifest_version``, ``Declaration.version`` (v4, XML item ``AMV``; null when the sender gives
none). Declaration <= v3 and VehicleManifest v1 carry none (ADR 0404)."""


def version_of(record: Mapping[str, Any]) -> int | None:
    """The record's own version (VER-5 checked), or None when its schema has no version field."""
    for name in VERSION_FIELDS:
        if record.get(name) is not None:
            return _check_version(record[name])
    return None


def next_version(conn: sqlite3.Connection, number: str, *, vehicle: bool = False) -> int:
    """Fallback for records without a version (ADR 0404): one more than the version known here, i.e.
    arrival order -- each new message id for a number counts as its next amendment. Capped at 999."""
    if vehicle:
        row = conn.execute("SELECT version FROM cn_vehicles WHERE business_key = ?", (number,)).fetchone()
        known = None if row is None else int(row[0])
    else:
        kv = known_version(conn, number)
        known = None if kv is None else kv[0]
    return 1 if known is None else min(known + 1, MAX_VERSION)


def known_version(conn: sqlite3.Connection, number: str) -> tuple[int, VersionKind] | None:
    row = conn.execute("SELECT version, kind FROM cn_declaration_versions WHERE business_key = ?",
                       (number,)).fetchone()
    return None if row is None else (int(row[0]), VersionKind(row[1]))


def accept_version(conn: sqlite3.Connection, number: str, version: int, kind: VersionKind | str, *,
                   now_ms: int = 0) -> VersionVerdict:
    """Judge and, for APPLY, record ``version`` as the latest of ``number`` -- one compare-and-set inside the
    caller's transaction: the UPDATE repeats the verdict's condition, so a concurrent writer (another
    connection) that got there first turns this APPLY into what it is against the newer row."""
    return _accept_version(conn, number, version, kind, now_ms=now_ms)[0]


def _accept_version(conn: sqlite3.Connection, number: str, version: int, kind: VersionKind | str, *,
                    now_ms: int) -> tuple[VersionVerdict, bool]:
    """:func:`accept_version`, and whether the number was new here (its first version, just inserted)."""
    kind = VersionKind(kind)
    if not number:
        raise ValueError("a declaration number is required")
    _check_version(version)  # VER-5, before any SQL
    # issue 13: the first version of a number (nearly always) is one statement. VER-1: nothing known -> APPLY,
    # so the insert IS the compare-and-set; a row already there (rowcount 0) is judged as before
    cur = conn.execute("INSERT INTO cn_declaration_versions (business_key, version, kind, updated_ms) "
                       "VALUES (?, ?, ?, ?) ON CONFLICT (business_key) DO NOTHING",
                       (number, version, kind.value, now_ms))
    if cur.rowcount == 1:
        return VersionVerdict.APPLY, True
    known = known_version(conn, number)
    verdict = judge_version(known, version, kind)
    if verdict is not VersionVerdict.APPLY:
        return verdict, False
    if known is None:  # deleted since the insert found it: judge again against what is there now
        return _accept_version(conn, number, version, kind, now_ms=now_ms)
    cur = conn.execute("UPDATE cn_declaration_versions SET version = ?, kind = ?, updated_ms = ? "
                       "WHERE business_key = ? AND version = ? AND kind = ?",
                       (version, kind.value, now_ms, number, known[0], known[1].value))
    if cur.rowcount != 1:  # the row moved under us: judge again against what is there now
        return _accept_version(conn, number, version, kind, now_ms=now_ms)
    return VersionVerdict.APPLY, False


# ---- the vehicle decision (pure) ------------------------------------------------------------------------
def decide_vehicle(document_type: str, linked: Sequence[str], *, gross_weight_kg: Decimal | None,
                   lookup: Callable[[str], KnownDeclaration | None], cancelled: Callable[[str], bool],
                   processed_ms: int, now_ms: int, grace_ms: int,
                   outcome: Outcome | None = None) -> BusinessDecision:
    """PENDING, or the business decision of a vehicle declaration (pure; the clock is ``now_ms``).

    ``lookup`` finds received declarations (as for :func:`_business.decide`), ``cancelled`` says whether a
    number was cancelled. Order: a cancelled link holds (PEN-5); an unknown link waits until
    ``processed_ms + grace_ms`` (PEN-1, PEN-3), then BIZ-2 rejects; all known -> BIZ-2/BIZ-3.
    """
    gone = [k for k in linked if cancelled(k)]
    if gone:  # PEN-5
        return BusinessDecision("HELD", tuple(
            (LINKED_DECLARATION_CANCELLED, f"declaration {k} was cancelled; amend the vehicle declaration")
            for k in gone[:_MAX_REASONS]))
    unknown = [k for k in linked if lookup(k) is None]
    if unknown and now_ms - processed_ms < grace_ms:  # PEN-1 / PEN-3: waiting, from the processing time
        return BusinessDecision(PENDING, tuple(
            (LINKED_DECLARATION_PENDING, f"waiting for declaration {k}")
            for k in unknown[:_MAX_REASONS]))
    record: dict[str, Any] = {"linked_declarations": list(linked), "gross_weight_kg": gross_weight_kg}
    doc = document_type if document_type in MANIFEST_TYPES else "TIR"  # same BIZ-2/BIZ-3 for CN's manifest
    decided = _decide_manifest(doc, record, lookup=lookup)  # BIZ-2 (past the grace period) / BIZ-3
    if outcome is None or unknown or decided.status == "REJECTED":
        return decided
    return _follow_links(decided, linked, outcome)


def _follow_links(decided: BusinessDecision, linked: Sequence[str], outcome: Outcome) -> BusinessDecision:
    """PEN-6: the vehicle follows the worst own outcome of its linked declarations."""
    seen = [(k, outcome(k)) for k in linked]
    rejected = [k for k, o in seen if o == "REJECTED"]
    if rejected:
        return BusinessDecision("REJECTED", tuple(
            (LINKED_DECLARATION_REJECTED, f"declaration {k} was rejected") for k in rejected[:_MAX_REASONS]))
    held = [(k, o) for k, o in seen if o in ("HELD", "WAITING")]
    if not held:
        return decided
    reasons = tuple((LINKED_DECLARATION_HELD, f"declaration {k} is held" if o == "HELD" else
                     f"the check of declaration {k} has not concluded") for k, o in held[:_MAX_REASONS])
    return BusinessDecision("HELD", (reasons + decided.reasons)[:_MAX_REASONS])


# ---- the store ------------------------------------------------------------------------------------------
class DecisionCause(StrEnum):
    SUBMITTED = "SUBMITTED"        # decided (or pending) when the vehicle declaration itself was processed
    LINKED_ARRIVED = "LINKED_ARRIVED"
    LINKED_AMENDED = "LINKED_AMENDED"
    LINKED_CANCELLED = "LINKED_CANCELLED"
    GRACE_EXPIRED = "GRACE_EXPIRED"
    STALE = "STALE"                # an older version of a vehicle declaration: answered, not applied
    DUPLICATE = "DUPLICATE"


@dataclass(frozen=True, slots=True)
class VehicleDecision:
    """What to answer for one vehicle declaration: a business response (status ACCEPTED/HELD/REJECTED) to
    the sender of ``message_id``, or, for PENDING, only the status feed (no business response yet)."""

    business_key: str
    version: int
    document_type: str
    message_id: str
    decision: BusinessDecision
    cause: DecisionCause
    linked: tuple[str, ...] = ()

    @property
    def pending(self) -> bool:
        return self.decision.status == PENDING


def cn_declarations_lookup(conn: sqlite3.Connection) -> Callable[[str], KnownDeclaration | None]:
    """The endpoint's known declarations (``cn_declarations``, the same query as its BIZ-2 lookup), minus
    cancelled ones (a cancelled declaration is not a known one)."""
    def lookup(key: str) -> KnownDeclaration | None:
        known = known_version(conn, key)
        if known is not None and known[1] is VersionKind.CANCELLATION:
            return None
        row = conn.execute("SELECT gross_weight_kg FROM cn_declarations WHERE business_key = ?",
                           (key,)).fetchone()
        if row is None:
            return None
        return KnownDeclaration(key, _decimal(row[0]))
    return lookup


_LINKS_SQL = ("SELECT j.value, v.kind, d.business_key IS NOT NULL, d.gross_weight_kg FROM json_each(?) AS j "
              "LEFT JOIN cn_declaration_versions AS v ON v.business_key = j.value "
              "LEFT JOIN cn_declarations AS d ON d.business_key = j.value")


def _links_view(conn: sqlite3.Connection, keys: Sequence[str]
                ) -> tuple[Callable[[str], KnownDeclaration | None], Callable[[str], bool]]:
    """Issue 13: :func:`cn_declarations_lookup` and :func:`_cancelled` for one decision on a vehicle's linked
    declarations, read by ONE query (the per-key functions ran two or three statements per link, each
    asked up to three times). A view of the state as it is now: build it right before the decision and
    drop it after (no write may come in between); a key outside ``keys`` is asked of the database."""
    seen: dict[str, tuple[str | None, bool, object]] = {}
    if keys:
        for key, kind, present, weight in conn.execute(_LINKS_SQL, (json.dumps(list(keys)),)):
            seen[str(key)] = (kind, bool(present), weight)
    lookup_db, cancelled_db = cn_declarations_lookup(conn), _cancelled(conn)

    def lookup(key: str) -> KnownDeclaration | None:
        got = seen.get(key)
        if got is None:
            return lookup_db(key)
        kind, present, weight = got
        if kind == VersionKind.CANCELLATION.value or not present:  # a cancelled declaration is not a known one
            return None
        return KnownDeclaration(key, _decimal(weight))

    def cancelled(key: str) -> bool:
        got = seen.get(key)
        return cancelled_db(key) if got is None else got[0] == VersionKind.CANCELLATION.value

    return lookup, cancelled


def _decimal(value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"gross weight {value!r} is not a decimal number") from None


def _cancelled(conn: sqlite3.Connection) -> Callable[[str], bool]:
    def cancelled(key: str) -> bool:
        known = known_version(conn, key)
        return known is not None and known[1] is VersionKind.CANCELLATION
    return cancelled


def _reasons_json(decision: BusinessDecision) -> str:
    return json.dumps([[c, t] for c, t in decision.reasons], ensure_ascii=False)


def _reasons_from(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(c), str(t)) for c, t in json.loads(text))


@dataclass(frozen=True, slots=True)
class _Row:
    business_key: str
    version: int
    doc_type: str
    message_id: str
    linked: tuple[str, ...]
    gross_weight_kg: Decimal | None
    processed_ms: int
    state: str
    decision: BusinessDecision


_ROW_SQL = ("SELECT business_key, version, doc_type, message_id, linked, gross_weight_kg, processed_ms, state, "
            "status, reasons FROM cn_vehicles")

_LINKING_SQL = (_ROW_SQL + " WHERE business_key IN (SELECT vehicle_key FROM cn_vehicle_links "  # noqa: S608 - constant
                "WHERE declaration_number = ?) ORDER BY processed_ms, business_key")


def _row(r: Sequence[Any]) -> _Row:
    return _Row(str(r[0]), int(r[1]), str(r[2]), str(r[3]), tuple(json.loads(r[4])), _decimal(r[5]), int(r[6]),
                str(r[7]), BusinessDecision(str(r[8]), _reasons_from(str(r[9]))))


def _settle(conn: sqlite3.Connection, row: _Row, decision: BusinessDecision, now_ms: int) -> bool:
    """PEN-4: the one compare-and-set of a vehicle's state. Applies ``decision`` only if the row is still the
    snapshot it was taken on (same version, state and status); False means someone else moved it."""
    state = "PENDING" if decision.status == PENDING else "DECIDED"
    cur = conn.execute(
        "UPDATE cn_vehicles SET state = ?, status = ?, reasons = ?, decided_ms = ? "
        "WHERE business_key = ? AND version = ? AND state = ? AND status = ? AND reasons = ?",
        (state, decision.status, _reasons_json(decision), None if state == "PENDING" else now_ms,
         row.business_key, row.version, row.state, row.decision.status, _reasons_json(row.decision)))
    return cur.rowcount == 1


def submit_vehicle(conn: sqlite3.Connection, *, business_key: str, version: int, document_type: str,
                   message_id: str, linked: Iterable[str], gross_weight_kg: Decimal | str | None,
                   processed_ms: int, grace_s: float, created_ms: int | None = None,
                   lookup: Callable[[str], KnownDeclaration | None] | None = None,
                   outcome: Outcome | None = None) -> VehicleDecision:
    """Register a vehicle declaration processed at ``processed_ms`` (the endpoint's clock) and decide it.

    Returns PENDING (answer the receipt and the status feed only; keep waiting), a decision to answer now,
    or -- for a version older than the stored one -- a STALE answer (REJECTED ``VERSION_STALE``, nothing
    stored). Vehicles are versioned by the same VER-1..3 rules as declarations, in their own table (a
    vehicle number and a declaration number never share a version).
    """
    links = tuple(dict.fromkeys(str(k) for k in linked))  # order kept, repeats dropped
    weight = _decimal(gross_weight_kg)
    _check_version(version)  # VER-5
    if not business_key:
        raise ValueError("a vehicle declaration number is required")
    existing = conn.execute(_ROW_SQL + " WHERE business_key = ?", (business_key,)).fetchone()
    if existing is not None:
        r = _row(existing)
        verdict = judge_version((r.version, VersionKind.DECLARATION), version, VersionKind.DECLARATION)
        if verdict is VersionVerdict.DUPLICATE:  # VER-3: answer what was decided (or that it is pending)
            return VehicleDecision(business_key, r.version, r.doc_type, r.message_id, r.decision,
                                   DecisionCause.DUPLICATE, r.linked)
        if verdict is VersionVerdict.STALE:  # VER-2
            text = f"version {version} of {business_key} is older than version {r.version} in force; not applied"
            return VehicleDecision(business_key, version, document_type, message_id,
                                   BusinessDecision("REJECTED", ((VERSION_STALE, text),)), DecisionCause.STALE, links)
    view, cancelled = _links_view(conn, links)  # issue 13: one query for the links
    decision = decide_vehicle(document_type, links, gross_weight_kg=weight, lookup=lookup or view,
                              cancelled=cancelled, processed_ms=processed_ms, now_ms=processed_ms,
                              grace_ms=_grace_ms(grace_s), outcome=outcome)
    state = "PENDING" if decision.status == PENDING else "DECIDED"
    # a newer version replaces the older one and its links (VER-1); the old one is not answered again
    cur = conn.execute(
        "INSERT INTO cn_vehicles (business_key, version, doc_type, message_id, linked, gross_weight_kg, "
        "created_ms, processed_ms, state, status, reasons, decided_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (business_key) DO UPDATE SET version = excluded.version, doc_type = excluded.doc_type, "
        "message_id = excluded.message_id, linked = excluded.linked, gross_weight_kg = excluded.gross_weight_kg, "
        "created_ms = excluded.created_ms, processed_ms = excluded.processed_ms, state = excluded.state, "
        "status = excluded.status, reasons = excluded.reasons, decided_ms = excluded.decided_ms "
        "WHERE excluded.version > cn_vehicles.version",  # VER-1 compare-and-set: only a newer version replaces
        (business_key, version, document_type, message_id, json.dumps(list(links)),
         None if weight is None else str(weight), created_ms, processed_ms, state, decision.status,
         _reasons_json(decision), None if state == "PENDING" else processed_ms))
    if cur.rowcount != 1:  # PEN-4: the row moved since it was read; judge again against what is there
        return submit_vehicle(conn, business_key=business_key, version=version, document_type=document_type,
                              message_id=message_id, linked=links, gross_weight_kg=weight,
                              processed_ms=processed_ms, grace_s=grace_s, created_ms=created_ms, lookup=lookup,
                              outcome=outcome)
    conn.execute("DELETE FROM cn_vehicle_links WHERE vehicle_key = ?", (business_key,))
    # issue 13: one multi-row statement, not one per link
    insert_rows(conn, "INSERT OR IGNORE INTO cn_vehicle_links (vehicle_key, declaration_number)",
                [(business_key, k) for k in links])
    return VehicleDecision(business_key, version, document_type, message_id, decision, DecisionCause.SUBMITTED,
                           links)


def _grace_ms(grace_s: float) -> int:
    if not grace_s > 0:
        raise ValueError(f"grace period {grace_s!r} s is not positive")
    return int(grace_s * 1000)


def on_declaration(conn: sqlite3.Connection, declaration_number: str, version: int, now_ms: int, *,
                   grace_s: float, kind: VersionKind | str = VersionKind.DECLARATION,
                   lookup: Callable[[str], KnownDeclaration | None] | None = None,
                   outcome: Outcome | None = None) -> list[VehicleDecision]:
    """Call after a linked declaration's version was APPLIED (:func:`accept_version`) and registered in
    ``cn_declarations``: the vehicles linking it that can now be decided, or whose decision changed.

    A PENDING vehicle whose links are now all known is decided (PEN-2); with ``kind=CANCELLATION``, or an
    amendment (``version > 1``), decided vehicles are re-evaluated too and returned only if their decision
    changed (PEN-5). A vehicle still waiting for another declaration is not returned.
    """
    kind = VersionKind(kind)
    _check_version(version)
    grace_ms = _grace_ms(grace_s)
    rows = [_row(r) for r in conn.execute(_LINKING_SQL, (declaration_number,)).fetchall()]
    if kind is VersionKind.CANCELLATION:
        cause = DecisionCause.LINKED_CANCELLED
    elif version > 1:
        cause = DecisionCause.LINKED_AMENDED
    else:
        cause = DecisionCause.LINKED_ARRIVED
    out = []
    for row in rows:
        if row.state == "DECIDED" and (cause is DecisionCause.LINKED_ARRIVED or row.decision.status == "REJECTED"):
            # a first version cannot change a decision taken with it known; a REJECTED vehicle stays rejected
            # (its sender resubmits a new version of the vehicle declaration)
            continue
        # PEN-3: an arrival never rejects -- only the tick (``expire``) does, once the endpoint has caught up
        # with its input; judged as at processing time, a vehicle still missing another declaration waits
        # (after an outage, its other declarations may be in the same backlog, right behind this one)
        view, cancelled = _links_view(conn, row.linked)  # issue 13: one query per vehicle, after _settle's writes
        decision = decide_vehicle(row.doc_type, row.linked, gross_weight_kg=row.gross_weight_kg,
                                  lookup=lookup or view, cancelled=cancelled, processed_ms=row.processed_ms,
                                  now_ms=row.processed_ms,
                                  grace_ms=grace_ms, outcome=outcome)
        if decision == row.decision:
            continue  # still pending with the same reasons, or the same outcome: nothing new to answer
        if decision.status == PENDING and row.state == "DECIDED":
            continue  # a decided vehicle never goes back to waiting
        if decision.status == PENDING:
            _settle(conn, row, decision, now_ms)  # fewer links to wait for: kept, not answered
            continue
        if _settle(conn, row, decision, now_ms):
            out.append(VehicleDecision(row.business_key, row.version, row.doc_type, row.message_id, decision,
                                       cause, row.linked))
    return out


def register_declaration(conn: sqlite3.Connection, *, business_key: str, version: int,
                         kind: VersionKind | str = VersionKind.DECLARATION, document_type: str, message_id: str,
                         gross_weight_kg: Decimal | str | None, now_ms: int, grace_s: float,
                         outcome: Outcome | None = None) -> tuple[VersionVerdict, list[VehicleDecision]]:
    """The endpoint's whole step for a goods declaration (IDA/EDA, CN export declaration), in the caller's
    transaction: judge its version (VER-1..5); on APPLY, register it in ``cn_declarations`` (an amendment
    replaces the weight; a cancellation removes the row) and re-evaluate the vehicles linking it (PEN-2,
    PEN-5). A STALE or DUPLICATE version changes nothing and re-evaluates nothing."""
    verdict, vehicles, _new = register_declaration_detail(
        conn, business_key=business_key, version=version, kind=kind, document_type=document_type,
        message_id=message_id, gross_weight_kg=gross_weight_kg, now_ms=now_ms, grace_s=grace_s, outcome=outcome)
    return verdict, vehicles


def register_declaration_detail(conn: sqlite3.Connection, *, business_key: str, version: int, kind: VersionKind | str,
                          document_type: str, message_id: str, gross_weight_kg: Decimal | str | None, now_ms: int,
                          grace_s: float, outcome: Outcome | None
                          ) -> tuple[VersionVerdict, list[VehicleDecision], bool]:
    """:func:`register_declaration`, and whether the number was new here (no version of it was stored
    before: issue 13, the endpoint then knows it has no stored outcome either, and skips that lookup)."""
    kind = VersionKind(kind)
    weight = _decimal(gross_weight_kg)
    verdict, new = _accept_version(conn, business_key, version, kind, now_ms=now_ms)
    if verdict is not VersionVerdict.APPLY:
        return verdict, [], new
    if kind is VersionKind.CANCELLATION:
        conn.execute("DELETE FROM cn_declarations WHERE business_key = ?", (business_key,))
    else:
        conn.execute("INSERT INTO cn_declarations (business_key, doc_type, gross_weight_kg, message_id) "
                     "VALUES (?, ?, ?, ?) ON CONFLICT (business_key) DO UPDATE SET doc_type = excluded.doc_type, "
                     "gross_weight_kg = excluded.gross_weight_kg, message_id = excluded.message_id",
                     (business_key, document_type, None if weight is None else str(weight), message_id))
    return verdict, on_declaration(conn, business_key, version, now_ms, grace_s=grace_s, kind=kind,
                                   outcome=outcome), new


def stale_decision(conn: sqlite3.Connection, number: str, version: int) -> BusinessDecision:
    """The business response for a STALE version (VER-2/VER-4): REJECTED ``VERSION_STALE``, saying which
    version is in force; the stored state is untouched."""
    known = known_version(conn, number)
    if known is None:
        return BusinessDecision("REJECTED", ((VERSION_STALE, f"version {version} of {number} is stale"),))
    if known[1] is VersionKind.CANCELLATION:
        text = f"{number} was cancelled at version {known[0]}; version {version} is not applied"
    else:
        text = f"version {version} of {number} is older than version {known[0]} in force; not applied"
    return BusinessDecision("REJECTED", ((VERSION_STALE, text),))


def expire(conn: sqlite3.Connection, now_ms: int, *, grace_s: float,
           lookup: Callable[[str], KnownDeclaration | None] | None = None,
           outcome: Outcome | None = None) -> list[VehicleDecision]:
    """The tick: every PENDING vehicle processed at least ``grace_s`` before ``now_ms`` is decided now --
    REJECTED ``LINKED_DECLARATION_UNKNOWN`` for the links still missing (PEN-3), each once (PEN-4)."""
    grace_ms = _grace_ms(grace_s)
    out = []
    rows = [_row(r) for r in conn.execute(
        _ROW_SQL + " WHERE state = 'PENDING' AND processed_ms <= ? ORDER BY processed_ms, business_key",
        (now_ms - grace_ms,)).fetchall()]
    for row in rows:
        view, cancelled = _links_view(conn, row.linked)  # issue 13: one query per vehicle
        decision = decide_vehicle(row.doc_type, row.linked, gross_weight_kg=row.gross_weight_kg,
                                  lookup=lookup or view, cancelled=cancelled, processed_ms=row.processed_ms,
                                  now_ms=now_ms,
                                  grace_ms=grace_ms, outcome=outcome)
        if decision.status != PENDING and _settle(conn, row, decision, now_ms):
            out.append(VehicleDecision(row.business_key, row.version, row.doc_type, row.message_id, decision,
                                       DecisionCause.GRACE_EXPIRED, row.linked))
    return out


def next_expiry_ms(conn: sqlite3.Connection, *, grace_s: float) -> int | None:
    """When the next PENDING vehicle's grace period ends (for the tick's sleep), None if none waits."""
    row = conn.execute("SELECT MIN(processed_ms) FROM cn_vehicles WHERE state = 'PENDING'").fetchone()
    return None if row is None or row[0] is None else int(row[0]) + _grace_ms(grace_s)


def pending_vehicles(conn: sqlite3.Connection) -> list[tuple[str, int, tuple[str, ...], int]]:
    """(vehicle number, version, links, processed_ms) of every PENDING vehicle, oldest first."""
    return [(r.business_key, r.version, r.linked, r.processed_ms) for r in (_row(x) for x in conn.execute(
        _ROW_SQL + " WHERE state = 'PENDING' ORDER BY processed_ms, business_key").fetchall())]


# ---- status feed ---------------------------------------------------------------------------------------
def vehicle_status_change(d: VehicleDecision, *, authority: str, at_ms: int,
                          vehicle: StatusVehicle | None = None) -> StatusChange:
    """The BUSINESS_OUTCOME status change for ``d`` (business_status PENDING, ACCEPTED, HELD or REJECTED)."""
    return StatusChange(declaration_number=d.business_key, authority=authority, kind=StatusKind.BUSINESS_OUTCOME,
                        at_ms=at_ms, document_type=d.document_type, message_id=d.message_id,
                        business_status=d.decision.status, reasons=d.decision.reasons, vehicle=vehicle)


def pending_status_change(d: VehicleDecision, *, authority: str, at_ms: int,
                          vehicle: StatusVehicle | None = None) -> StatusChange:
    """The status change saying ``d`` is PENDING (reasons: one ``LINKED_DECLARATION_PENDING`` per missing
    declaration). Raises ``ValueError`` for a decision that is not PENDING."""
    if not d.pending:
        raise ValueError(f"{d.business_key} is {d.decision.status}, not PENDING")
    return vehicle_status_change(d, authority=authority, at_ms=at_ms, vehicle=vehicle)


# ---- audit log -----------------------------------------------------------------------------------------
_OUTCOMES = {DecisionCause.STALE: "stale", DecisionCause.DUPLICATE: "duplicate"}


def audit_fields(d: VehicleDecision) -> dict[str, Any]:
    """The fields of the ``business_response`` audit event for ``d`` (pass them to ``connectors._common.event``
    with ``EventType.BUSINESS_RESPONSE``): outcome ``pending`` / ``accepted`` / ``held`` / ``rejected`` (or
    ``stale`` / ``duplicate``), the first reason code. Every PENDING, every later decision and every
    expiry is one event, so the log shows a vehicle waiting and then decided."""
    return {"message_id": d.message_id, "business_key": d.business_key, "document_type": d.document_type,
            "outcome": _OUTCOMES.get(d.cause, d.decision.status.lower()),
            "reason_code": d.decision.reasons[0][0] if d.decision.reasons else None}
