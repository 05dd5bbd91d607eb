"""The mirror checks' state at VN's site (issue 10 item 3): the IDAs VN's outbound took in, and the exports
VN's inbound is checking.

Both tables live in VN's own state database (``settings.state_db("VN")``); nothing is ever read from
China's site:

- ``xbg_imports``: written by VN's OUTBOUND connector in its batch transaction, one row per IDA it sealed
  (the translated ``Declaration`` record reduced to what the mirror compares; an amendment replaces it);
- ``xbg_mirror``: written by VN's INBOUND endpoint, one row per CN export declaration it processed: waiting
  for its IDA, or decided (the finding codes, and the sealed business response once the decision was
  deferred). :class:`MirrorDesk` decides; the endpoint re-checks the waiting rows on a tick, so an export
  whose IDA is taken in later is matched then, and one with no IDA gets ``NO_IMPORT_DECLARATION`` only after
  ``mirror_import_timeout_s`` (MIR-4).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from xborder_gateway.exchange._business import BusinessDecision
from xborder_gateway.exchange._mirror import (
    ExportConsignment,
    ImportConsignment,
    MirrorConfig,
    MirrorLine,
    MirrorResult,
    check_export,
    normalise_plate,
)

__all__ = ["MIRROR_RECEIVER_SCHEMA", "MIRROR_SENDER_SCHEMA", "Deferred", "MirrorDesk", "decision_of",
           "load_imports", "mirror_config", "mirror_summary", "record_import"]

MIRROR_SENDER_SCHEMA = """
CREATE TABLE IF NOT EXISTS xbg_imports (
    declaration_number TEXT PRIMARY KEY,
    plate              TEXT NOT NULL,
    consignment        TEXT NOT NULL,
    taken_ms           INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS xbg_imports_plate ON xbg_imports (plate);
"""

MIRROR_RECEIVER_SCHEMA = """
CREATE TABLE IF NOT EXISTS xbg_mirror (
    message_id     TEXT PRIMARY KEY,
    export_number  TEXT NOT NULL,
    run            TEXT,
    consignment    TEXT NOT NULL,
    first_seen_ms  INTEGER NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('waiting', 'decided')),
    matched        TEXT,
    codes          TEXT,
    decided_ms     INTEGER,
    response       BLOB,
    response_key   BLOB,
    response_headers TEXT,
    produced_ms    INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS xbg_mirror_state ON xbg_mirror (state);
CREATE INDEX IF NOT EXISTS xbg_mirror_run ON xbg_mirror (run);
"""


def mirror_config(settings: Any | None) -> MirrorConfig:
    """The mirror rules configured from the settings (``mirror_*``), else the defaults."""
    if settings is None:
        return MirrorConfig()
    rates: dict[str, Decimal] = {}
    for item in str(settings.mirror_rates).split(","):
        if item.strip():
            code, _, rate = item.strip().partition("=")
            rates[code.strip().upper()] = Decimal(rate.strip())
    return MirrorConfig(units_per_usd=rates, value_tolerance=Decimal(str(settings.mirror_value_tolerance)),
                        freight_insurance_allowance=Decimal(str(settings.mirror_freight_insurance_allowance)),
                        quantity_tolerance=Decimal(str(settings.mirror_quantity_tolerance)),
                        import_timeout_ms=int(settings.mirror_import_timeout_s * 1000))


# ---- (de)serialising a consignment -------------------------------------------------------------------------
def _dump(c: ExportConsignment | ImportConsignment) -> str:
    return json.dumps({"number": c.number, "vehicle_plate": c.vehicle_plate, "consignee_tax_code": c.consignee_tax_code,
                       "containers": list(c.containers), "incoterm": c.incoterm, "currency": c.currency,
                       "lines": [[ln.hs6, str(ln.quantity), ln.unit, None if ln.value is None else str(ln.value)]
                                 for ln in c.lines]}, ensure_ascii=False, sort_keys=True)


_C = TypeVar("_C", ExportConsignment, ImportConsignment)


def _load(cls: type[_C], text: str) -> _C:
    d = json.loads(text)
    return cls(number=d["number"], vehicle_plate=d["vehicle_plate"], consignee_tax_code=d["consignee_tax_code"],
               containers=tuple(d["containers"]), incoterm=d["incoterm"], currency=d["currency"],
               lines=tuple(MirrorLine(h, Decimal(q), u, None if v is None else Decimal(v))
                           for h, q, u, v in d["lines"]))


def record_import(conn: sqlite3.Connection, values: Mapping[str, Any], *, now_ms: int) -> None:
    """Record one IDA VN's outbound took in (its translated record); a later version replaces it."""
    imp = ImportConsignment.from_record(values)
    conn.execute("INSERT INTO xbg_imports (declaration_number, plate, consignment, taken_ms) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT (declaration_number) DO UPDATE SET plate = excluded.plate, "
                 "consignment = excluded.consignment, taken_ms = excluded.taken_ms",
                 (imp.number, normalise_plate(imp.vehicle_plate), _dump(imp), now_ms))


def load_imports(conn: sqlite3.Connection, plate: str) -> list[ImportConsignment]:
    """The IDAs taken in for this truck (plate compared after :func:`normalise_plate`)."""
    rows = conn.execute("SELECT consignment FROM xbg_imports WHERE plate = ? ORDER BY declaration_number",
                        (normalise_plate(plate),)).fetchall()
    return [_load(ImportConsignment, str(r[0])) for r in rows]


def decision_of(result: MirrorResult) -> BusinessDecision:
    """The business decision for a decided export: ACCEPTED when the IDA agrees, else HELD with one reason per
    finding (the truck is flagged for inspection at the border gate)."""
    if not result.findings:
        return BusinessDecision("ACCEPTED")
    return BusinessDecision("HELD", tuple((f.code.value, f.message[:300]) for f in result.findings[:20]))


@dataclass(frozen=True)
class Deferred:
    """A waiting export decided on a re-check: what the endpoint answers it with."""

    message_id: str
    export_number: str
    run: str | None
    result: MirrorResult
    decision: BusinessDecision


class MirrorDesk:
    """VN's mirror checks at the receiving endpoint, over the endpoint's own connection (VN's state database).

    :meth:`check` is called for each CN export inside the endpoint's batch transaction; :meth:`recheck` by the
    endpoint's tick inside a transaction of its own. Both only write ``xbg_mirror``; a row moves
    ``waiting -> decided`` once (compare-and-set on the state), never back.
    """

    def __init__(self, conn: sqlite3.Connection, config: MirrorConfig) -> None:
        self.conn = conn
        self.config = config
        conn.executescript(MIRROR_SENDER_SCHEMA + MIRROR_RECEIVER_SCHEMA)

    def check(self, message_id: str, run: str | None, record: Mapping[str, Any], *, now_ms: int) -> MirrorResult:
        """Check a CN export now; the result is recorded (waiting, or decided with its codes)."""
        export = ExportConsignment.from_record(record)
        result = check_export(export, load_imports(self.conn, export.vehicle_plate), now_ms=now_ms,
                              first_seen_ms=now_ms, config=self.config)
        self.conn.execute(
            "INSERT INTO xbg_mirror (message_id, export_number, run, consignment, first_seen_ms, state, matched, "
            "codes, decided_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING",
            (message_id, export.number, run, _dump(export), now_ms, "waiting" if result.waiting else "decided",
             result.matched.number if result.matched else None, None if result.waiting else ",".join(result.codes),
             None if result.waiting else now_ms))
        return result

    def recheck(self, *, now_ms: int, limit: int = 500) -> list[Deferred]:
        """Re-check the waiting exports (a new IDA, or the timeout passed); returns those decided now."""
        rows = self.conn.execute("SELECT message_id, export_number, run, consignment, first_seen_ms FROM xbg_mirror "
                                 "WHERE state = 'waiting' ORDER BY first_seen_ms LIMIT ?", (limit,)).fetchall()
        decided: list[Deferred] = []
        for mid, number, run, text, first_seen in rows:
            export = _load(ExportConsignment, str(text))
            result = check_export(export, load_imports(self.conn, export.vehicle_plate), now_ms=now_ms,
                                  first_seen_ms=int(first_seen), config=self.config)
            if result.waiting:
                continue
            cur = self.conn.execute(  # compare-and-set: only a row still waiting is decided
                "UPDATE xbg_mirror SET state = 'decided', matched = ?, codes = ?, decided_ms = ? "
                "WHERE message_id = ? AND state = 'waiting'",
                (result.matched.number if result.matched else None, ",".join(result.codes), now_ms, mid))
            if cur.rowcount == 1:
                decided.append(Deferred(str(mid), str(number), run, result, decision_of(result)))
        return decided

    def keep_response(self, message_id: str, key: bytes, data: bytes, headers: str) -> None:
        self.conn.execute("UPDATE xbg_mirror SET response = ?, response_key = ?, response_headers = ? "
                          "WHERE message_id = ?", (data, key, headers, message_id))

    def unproduced(self, limit: int = 500) -> list[tuple[str, bytes, bytes, str]]:
        """Deferred business responses decided but not yet known to be produced (a crash in between)."""
        rows = self.conn.execute("SELECT message_id, response_key, response, response_headers FROM xbg_mirror "
                                 "WHERE response IS NOT NULL AND produced_ms IS NULL LIMIT ?", (limit,)).fetchall()
        return [(str(m), bytes(k), bytes(d), str(h)) for m, k, d, h in rows]

    def produced(self, message_ids: list[str], now_ms: int) -> None:
        self.conn.executemany("UPDATE xbg_mirror SET produced_ms = ? WHERE message_id = ?",
                              [(now_ms, m) for m in message_ids])

    def outcome(self, export_number: str) -> str | None:
        """Issue 15 PEN-6: the own outcome of CN export ``export_number`` here (its latest check): ``WAITING``
        while the check waits, ``ACCEPTED`` without findings, ``HELD`` with findings; None if never checked."""
        row = self.conn.execute("SELECT state, codes FROM xbg_mirror WHERE export_number = ? "
                                "ORDER BY first_seen_ms DESC, message_id DESC LIMIT 1", (export_number,)).fetchone()
        if row is None:
            return None
        if row[0] == "waiting":
            return "WAITING"
        return "HELD" if row[1] else "ACCEPTED"

    def waiting_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM xbg_mirror WHERE state = 'waiting'").fetchone()[0])


def mirror_summary(conn: sqlite3.Connection, run: str) -> dict[str, Any]:
    """The mirror findings of a run: exports checked, waiting, and counts by finding code."""
    rows = conn.execute("SELECT state, codes FROM xbg_mirror WHERE run = ?", (run,)).fetchall()
    by_code: dict[str, int] = {}
    waiting = clean = 0
    for state, codes in rows:
        if state == "waiting":
            waiting += 1
            continue
        found = [c for c in str(codes or "").split(",") if c]
        clean += not found
        for c in found:
            by_code[c] = by_code.get(c, 0) + 1
    return {"checked": len(rows) - waiting, "waiting": waiting, "clean": clean,
            "by_code": dict(sorted(by_code.items()))}
