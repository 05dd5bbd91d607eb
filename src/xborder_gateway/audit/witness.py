"""A C2SP witness (https://c2sp.org/tlog-witness) for the counterpart's audit log: core, no transport.

:meth:`Witness.process` takes a checkpoint note and a consistency proof from the size the witness last
cosigned, and returns one of

* :class:`Cosigned` — the checks passed, the store advanced, here is the cosignature line;
* :class:`Conflict` — the submitter's old size is not ours (tlog-witness 409): resubmit from ``latest_size``;
* :class:`Refused` — unknown origin (404), no valid log signature (403), malformed (400): no statement;
* :class:`Alarm` — a correctly signed checkpoint that contradicts what we cosigned: older than it,
  same size with another root (fork), or not proven consistent (WIT-2). Never cosigned. The shell
  turns it into an ERROR log line, an audit event in the witness's own log and a metric
  (:func:`report_alarm`).

:class:`WitnessStore` keeps the latest cosigned ``(origin, size, root)`` per log in SQLite; advancing it
is a compare-and-set inside one ``BEGIN IMMEDIATE`` transaction, so two witnesses racing from the same
old state cannot both advance (WIT-3, tlog-witness's "atomically"). The submission format is
tlog-witness ``add-checkpoint``'s body (:func:`format_submission`, :func:`parse_submission`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from xborder_gateway.audit import merkle
from xborder_gateway.audit.cosignature import CosignatureSigner
from xborder_gateway.audit.events import AuditEvent, EventType
from xborder_gateway.audit.log import next_key_of
from xborder_gateway.audit.note import Checkpoint, NoteVerifier, _b64decode
from xborder_gateway.errors import AuditIntegrityError, TransportError

__all__ = [
    "Alarm",
    "Conflict",
    "Cosigned",
    "Refused",
    "Witness",
    "WitnessResult",
    "WitnessStore",
    "alarm_event",
    "format_submission",
    "parse_submission",
    "report_alarm",
]

_log = logging.getLogger(__name__)
MAX_PROOF_LINES: Final = 63  # tlog-witness
MAX_SUBMISSION_BYTES: Final = 64 * 1024 + 64 * 45 + 32
_OLD = re.compile(r"old (0|[1-9][0-9]{0,18})")


# --- results -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cosigned:
    origin: str
    size: int
    root: bytes
    timestamp: int
    line: str  # the cosignature signature line, "— <witness name> <base64>\n"
    status: int = 200


@dataclass(frozen=True)
class Conflict:
    origin: str
    latest_size: int  # tlog-witness: body "<size>\n", Content-Type text/x.tlog.size
    status: int = 409


@dataclass(frozen=True)
class Refused:
    code: str  # WITNESS_UNKNOWN_LOG, WITNESS_BAD_SIGNATURE, WITNESS_BAD_REQUEST
    message: str
    status: int


@dataclass(frozen=True)
class Alarm:
    """A validly signed checkpoint that contradicts the witness's record: evidence of a split view."""

    kind: str  # CHECKPOINT_OLDER, CHECKPOINT_FORK, CHECKPOINT_INCONSISTENT
    origin: str
    size: int
    root: bytes
    latest_size: int
    latest_root: bytes
    note: str  # the offending note verbatim: keep it, it is signed evidence
    message: str
    status: int = 409

    def log_line(self) -> str:
        return (f"WITNESS ALARM {self.kind}: {self.origin} offered size {self.size} root {self.root.hex()} "
                f"against cosigned size {self.latest_size} root {self.latest_root.hex()}: {self.message}")


WitnessResult = Cosigned | Conflict | Refused | Alarm


# --- submissions (tlog-witness add-checkpoint body) ----------------------------------------------
def format_submission(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """``old <size>\\n``, one base64 hash per line, an empty line, then the signed checkpoint note."""
    lines = [f"old {old_size}\n", *(base64.b64encode(h).decode("ascii") + "\n" for h in proof), "\n"]
    return ("".join(lines) + note).encode("utf-8")


def parse_submission(body: bytes) -> tuple[int, list[bytes], str]:
    """Parse an add-checkpoint body strictly; ValueError with a clear message otherwise."""
    if len(body) > MAX_SUBMISSION_BYTES:
        raise ValueError("submission too large")
    text = body.decode("utf-8")
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise ValueError("submission needs an empty line before the checkpoint")
    lines = head.split("\n")
    match = _OLD.fullmatch(lines[0])
    if not match:
        raise ValueError("first line must be 'old <size>'")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise ValueError(f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in lines[1:]:
        raw = _b64decode(line)
        if len(raw) != merkle.HASH_SIZE:
            raise ValueError("a proof line is not a base64 SHA-256 hash")
        proof.append(raw)
    return int(match.group(1)), proof, note


# --- the durable record ------------------------------------------------------------------------
class WitnessStore:
    """Latest cosigned ``(size, root)`` per origin, in SQLite; :meth:`advance` is compare-and-set."""

    _DDL = """CREATE TABLE IF NOT EXISTS latest (
        origin TEXT PRIMARY KEY, size INTEGER NOT NULL CHECK (size >= 0),
        root BLOB NOT NULL CHECK (length(root) = 32), note TEXT NOT NULL, updated_us INTEGER NOT NULL,
        log_key TEXT) STRICT"""

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")  # tlog-witness: persist before answering
            self._conn.execute(self._DDL)
        except sqlite3.Error as exc:
            raise TransportError(f"cannot open the witness store {path}: {exc}", code="WITNESS_DB",
                                 retriable=False) from exc
        with contextlib.suppress(OSError):
            path.chmod(0o600)

    def latest(self, origin: str) -> tuple[int, bytes] | None:
        row = self._conn.execute("SELECT size, root FROM latest WHERE origin = ?", (origin,)).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def log_key(self, origin: str) -> str | None:
        """The log key in force after the last cosigned checkpoint, if it announced a rotation (KEY-1)."""
        row = self._conn.execute("SELECT log_key FROM latest WHERE origin = ?", (origin,)).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def advance(self, origin: str, expected: tuple[int, bytes] | None, new: tuple[int, bytes], note: str,
                log_key: str | None = None) -> bool:
        """Move ``origin`` from ``expected`` (None: never cosigned) to ``new``; False if someone else moved it.

        WIT-3: the check of the old state and the write are one transaction, and the UPDATE matches the
        old size *and* root, so of two witnesses racing from one state exactly one advances."""
        now_us = time.time_ns() // 1000
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if expected is None:
                    cur = self._conn.execute(
                        "INSERT INTO latest (origin, size, root, note, updated_us, log_key) VALUES (?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (origin) DO NOTHING", (origin, new[0], new[1], note, now_us, log_key))
                else:
                    cur = self._conn.execute(
                        "UPDATE latest SET size = ?, root = ?, note = ?, updated_us = ?, "
                        "log_key = COALESCE(?, log_key) WHERE origin = ? AND size = ? AND root = ?",
                        (new[0], new[1], note, now_us, log_key, origin, expected[0], expected[1]))
                ok = cur.rowcount == 1
                self._conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            raise TransportError(f"witness store write failed: {exc}", code="WITNESS_DB") from exc
        return ok

    def close(self) -> None:
        self._conn.close()


# --- the state machine -------------------------------------------------------------------------
class Witness:
    """Cosigns checkpoints of the logs it trusts, never one that contradicts its record."""

    def __init__(self, signer: CosignatureSigner, logs: dict[str, NoteVerifier], store: WitnessStore,
                 clock: Callable[[], float] = time.time) -> None:
        self.signer = signer
        self.logs = dict(logs)  # origin -> the log's checkpoint verifier key
        self.store = store
        self.clock = clock

    def process_submission(self, body: bytes) -> WitnessResult:
        try:
            old_size, proof, note = parse_submission(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return Refused("WITNESS_BAD_REQUEST", f"malformed submission: {exc}", 400)
        return self.process(note, old_size, proof)

    def process(  # noqa: PLR0911, PLR0912 - one branch per tlog-witness check, in the spec's order
        self, note: str, old_size: int, proof: Sequence[bytes]
    ) -> WitnessResult:
        """Check ``note`` (a signed checkpoint) against the record and cosign it, or say why not."""
        try:
            body = Checkpoint.parse(note.split("\n\n", 1)[0] + "\n")
        except AuditIntegrityError as exc:
            return Refused("WITNESS_BAD_REQUEST", exc.message, 400)
        verifier = self.logs.get(body.origin)
        rotated = self.store.log_key(body.origin) if verifier is not None else None
        if rotated is not None:  # KEY-1: the key announced in a checkpoint we cosigned replaces the configured one
            verifier = NoteVerifier.parse(rotated)
        if verifier is None:  # tlog-witness: unknown origin -> 404
            return Refused("WITNESS_UNKNOWN_LOG", f"no trusted key for origin {body.origin!r}", 404)
        try:
            cp = Checkpoint.open(note, verifier, origin=body.origin)  # WIT-1: signed by the log's key
        except AuditIntegrityError as exc:
            return Refused("WITNESS_BAD_SIGNATURE", f"{exc.code}: {exc.message}", 403)
        if old_size > cp.size:
            return Refused("WITNESS_BAD_REQUEST", f"old size {old_size} is beyond the checkpoint's {cp.size}", 400)
        if len(proof) > MAX_PROOF_LINES:
            return Refused("WITNESS_BAD_REQUEST", "consistency proof too long", 400)
        latest = self.store.latest(cp.origin)
        latest_size, latest_root = latest if latest is not None else (0, merkle.EMPTY_ROOT)
        # WIT-2: a correctly signed statement that contradicts the record is evidence, never cosigned
        if cp.size < latest_size:
            return Alarm("CHECKPOINT_OLDER", cp.origin, cp.size, cp.root, latest_size, latest_root, note,
                         "the log signed a checkpoint smaller than one already cosigned")
        if cp.size == latest_size and latest is not None and cp.root != latest_root:
            return Alarm("CHECKPOINT_FORK", cp.origin, cp.size, cp.root, latest_size, latest_root, note,
                         "the log signed two different roots for one size")
        if old_size != latest_size:  # tlog-witness: 409 with our size; the submitter retries from it
            return Conflict(cp.origin, latest_size)
        if old_size == 0:
            consistent = not proof
        else:
            consistent = merkle.verify_consistency(old_size, cp.size, latest_root, cp.root, list(proof))
        if not consistent:
            return Alarm("CHECKPOINT_INCONSISTENT", cp.origin, cp.size, cp.root, latest_size, latest_root, note,
                         f"the consistency proof from size {old_size} does not verify against the cosigned root")
        try:
            announced = next_key_of(cp)
        except AuditIntegrityError as exc:
            return Refused("WITNESS_BAD_REQUEST", exc.message, 400)
        if announced is not None:
            try:  # KEY-2: the announced key must have signed the announcement too
                Checkpoint.open(note, announced, origin=cp.origin)
            except AuditIntegrityError:
                return Refused("WITNESS_BAD_SIGNATURE", "the announced next key did not sign the checkpoint", 403)
        if not self.store.advance(cp.origin, latest, (cp.size, cp.root), note,
                                  str(announced) if announced is not None else None):
            # WIT-3: another witness process advanced meanwhile; re-decide on the new record
            current = self.store.latest(cp.origin)
            return Conflict(cp.origin, current[0] if current else 0)
        timestamp = int(self.clock())
        text = note.split("\n\n", 1)[0] + "\n"
        return Cosigned(cp.origin, cp.size, cp.root, timestamp, self.signer.cosign(text, timestamp))


_ALARMS: dict[str, object] = {}


def _alarm_counter() -> object | None:
    try:
        from prometheus_client import Counter
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    if "c" not in _ALARMS:
        _ALARMS["c"] = Counter("xbg_witness_alarms", "checkpoints the witness refused as split-view evidence",
                               ["origin", "kind"])
    return _ALARMS["c"]


def alarm_event(alarm: Alarm, authority: str, *, process: str = "witness") -> AuditEvent:
    """The audit event recording ``alarm`` in the witness's own log (digests only, AUD-1: the
    offending note itself is kept by the shell as evidence, its SHA-256 is in ``raw_sha256``)."""
    from datetime import UTC, datetime

    return AuditEvent(time=datetime.now(UTC), authority=authority, process=process,
                      event_type=EventType.WITNESS_ALARM, outcome="alarm",
                      reason_code=f"{alarm.kind} size {alarm.size} vs {alarm.latest_size}"[:96],
                      raw_sha256=hashlib.sha256(alarm.note.encode("utf-8")).hexdigest())


def report_alarm(alarm: Alarm, audit_append: Callable[[Alarm], None] | None = None) -> None:
    """What the shell does with an :class:`Alarm`: an ERROR log line, a metric and an audit event.

    ``audit_append`` writes the event into the witness's own audit log (the shell knows its authority
    and process); it is called even if the metric fails."""
    _log.error("%s", alarm.log_line())
    counter = _alarm_counter()
    if counter is not None:
        counter.labels(origin=alarm.origin, kind=alarm.kind).inc()  # type: ignore[attr-defined]
    if audit_append is not None:
        audit_append(alarm)
