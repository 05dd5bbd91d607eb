"""One declaration's story across the border (issue 12 item 4): ``xborder audit trace`` and ``/v1/trace/{decl}``.

Each site builds its **part** from its own log (:func:`local_part`): the entries about the declaration
(its business key, plus the entries of the message ids those carry — the receiving side's first events
know only the message id), each with an RFC 9162 inclusion proof against the log's latest cosigned
checkpoint (or, for entries after it, the latest checkpoint), and those checkpoint notes verbatim. A part
holds identifiers and digests only: the entries themselves never carry declaration content (AUD-1).

The counterpart's part comes from the counterpart (ADR 0304): its ``audit serve`` at
``audit_counterpart_url``, fetched with the bearer token it issued to us (``audit_counterpart_token_file``,
role ``counterpart``: that token reads ``/v1/trace/{decl}?scope=local`` and nothing else); in a home that
holds both logs (the one-machine demo) it is read from the home.

:func:`verify_part` checks a part against keys *we* pinned, never keys in the part (TRACE-1): every
checkpoint's log signature (the counterpart's log key from the trust bundle), its cosignature by the
witness of that log (for the counterpart's log: our own witness), every entry's canonical encoding, leaf
hash and inclusion proof, that it belongs to the declaration and to that log's authority. An event that
fails is still listed, flagged with the reason: it is shown as failed, never as verified.
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from xborder_gateway.audit import merkle
from xborder_gateway.audit.cosignature import CosignatureVerifier, verify_cosignature
from xborder_gateway.audit.events import AuditEvent
from xborder_gateway.audit.log import AuditLog
from xborder_gateway.audit.note import Checkpoint, NoteVerifier
from xborder_gateway.config import Settings
from xborder_gateway.errors import AuditIntegrityError, ConfigError, GatewayError, TransportError

__all__ = [
    "MAX_PART_BYTES",
    "TRACE_FORMAT",
    "TraceEvent",
    "TraceReport",
    "build_trace",
    "counterpart_token",
    "fetch_counterpart_part",
    "get_counterpart_json",
    "local_part",
    "verify_part",
]

TRACE_FORMAT: Final = "xborder-trace/1"
MAX_PART_BYTES: Final = 8 * 1024 * 1024  # TRACE-2: a counterpart answer is bounded before it is parsed
MAX_TRACE_ENTRIES: Final = 2000
MAX_MESSAGE_IDS: Final = 100
_PAGE: Final = 500


def _counterpart(authority: str) -> str:
    return "CN" if authority.upper() == "VN" else "VN"


# --- building a part (the disclosing side) -----------------------------------------------------------------
def local_part(log: AuditLog, declaration: str) -> dict[str, Any]:
    """This log's entries about ``declaration`` with inclusion proofs and the checkpoint notes they refer to."""
    found: dict[int, Any] = {}
    truncated = False

    def collect(**flt: str) -> None:
        nonlocal truncated
        after: int | None = None
        while True:
            page = log.search(after=after, limit=_PAGE, **flt)  # type: ignore[arg-type]
            for e in page:
                if len(found) >= MAX_TRACE_ENTRIES:
                    truncated = True
                    return
                found[e.index] = e
            if len(page) < _PAGE:
                return
            after = page[-1].index

    collect(business_key=declaration)
    mids = sorted({e.event.message_id for e in found.values() if e.event.message_id})[:MAX_MESSAGE_IDS]
    for mid in mids:
        collect(message_id=mid)
    latest = log.latest_checkpoint()
    cosigned_sizes = log.cosigned_sizes()  # any witness's: the verifier decides which one it trusts
    cosigned = cosigned_sizes[-1] if cosigned_sizes else None
    checkpoints: dict[str, str] = {}
    entries: list[dict[str, Any]] = []
    for index in sorted(found):
        e = found[index]
        size = cosigned if cosigned is not None and cosigned > index else (
            latest.checkpoint.size if latest is not None and latest.checkpoint.size > index else None)
        item: dict[str, Any] = {"index": index, "entry_b64": base64.b64encode(e.entry).decode("ascii"),
                                "checkpoint_size": size, "proof": None}
        if size is not None:
            item["proof"] = [h.hex() for h in log.inclusion_proof(index, size).hashes]
            if str(size) not in checkpoints:
                checkpoints[str(size)] = log.cosigned_note(size) or ""
        entries.append(item)
    return {"format": TRACE_FORMAT, "authority": log.authority, "origin": log.origin,
            "declaration": declaration, "checkpoints": checkpoints, "entries": entries, "truncated": truncated}


# --- verifying a part (the receiving side) -----------------------------------------------------------------
@dataclass(frozen=True)
class TraceEvent:
    log: str  # VN or CN: whose log holds the entry
    index: int
    verified: bool
    problem: str | None  # why it failed (a stable code), None when verified
    event: AuditEvent | None
    checkpoint_size: int | None
    cosigned: bool  # the checkpoint it is proven against carries a valid cosignature of the log's witness

    @property
    def time(self) -> datetime | None:
        return self.event.time if self.event is not None else None

    def to_json(self) -> dict[str, Any]:
        return {"log": self.log, "index": self.index, "verified": self.verified, "problem": self.problem,
                "checkpoint_size": self.checkpoint_size, "cosigned": self.cosigned,
                "entry": self.event.canonical_dict() if self.event is not None else None}


def _as_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63 else None


def _open_checkpoints(part: dict[str, Any], authority: str, log_key: NoteVerifier | None,
                      witness_key: CosignatureVerifier | None) -> dict[int, tuple[Checkpoint | None, bool, str | None]]:
    out: dict[int, tuple[Checkpoint | None, bool, str | None]] = {}
    raw = part.get("checkpoints")
    if not isinstance(raw, dict):
        return out
    for key, note in list(raw.items())[:64]:
        size = int(key) if isinstance(key, str) and key.isdigit() and len(key) < 19 else None
        if size is None or not isinstance(note, str):
            continue
        if log_key is None:
            out[size] = (None, False, "NO_PINNED_LOG_KEY")
            continue
        try:  # TRACE-1: the log key we pinned, not one the part names
            cp = Checkpoint.open(note, log_key, origin=log_key.name)
        except AuditIntegrityError as exc:
            out[size] = (None, False, f"CHECKPOINT_{exc.code}")
            continue
        if cp.size != size:
            out[size] = (None, False, "CHECKPOINT_SIZE_MISMATCH")
            continue
        cosigned, problem = False, None
        if witness_key is not None:
            try:
                verify_cosignature(note, witness_key)
                cosigned = True
            except AuditIntegrityError as exc:
                if exc.code != "COSIGNATURE_MISSING":  # a line of the witness that does not verify: forged
                    problem = "COSIGNATURE_INVALID"
        out[size] = (cp, cosigned, problem)
    del authority
    return out


_Decoded = tuple[int, int | None, list[bytes] | None, AuditEvent | None, bytes | None, str | None]


def _decode(item: object) -> _Decoded | None:
    if not isinstance(item, dict) or _as_int(item.get("index")) is None:
        return None
    problem: str | None = None
    event: AuditEvent | None = None
    entry: bytes | None = None
    proof: list[bytes] | None = None
    try:
        entry = base64.b64decode(str(item.get("entry_b64", "")), validate=True)
        event = AuditEvent.from_canonical(entry)  # AUD-2: only the canonical encoding
    except (binascii.Error, ValueError, AuditIntegrityError):
        problem = "ENTRY_ENCODING"
    raw_proof = item.get("proof")
    if isinstance(raw_proof, list) and len(raw_proof) <= 64:
        try:
            proof = [bytes.fromhex(str(h)) for h in raw_proof]
        except ValueError:
            problem = problem or "PROOF_MALFORMED"
    return int(item["index"]), _as_int(item.get("checkpoint_size")), proof, event, entry, problem


def _check(  # noqa: PLR0911 - one return per check, in order
    d: _Decoded, cp: Checkpoint | None, cp_problem: str | None, *, authority: str, declaration: str,
    mids: set[str | None],
) -> str | None:
    """Why the decoded entry ``d`` fails, or None: checked in order, the first failure is the reason."""
    index, _size, proof, event, entry, problem = d
    if problem is not None:
        return problem
    if cp_problem is not None:
        return cp_problem
    if cp is None or entry is None or proof is None or event is None:
        return "NO_CHECKPOINT"
    if not merkle.verify_inclusion(merkle.leaf_hash(entry), index, cp.size, proof, cp.root):
        return "INCLUSION_FAILED"  # the entry or its proof was changed: it is not in the signed tree
    if event.authority != authority:
        return "WRONG_AUTHORITY"
    if event.business_key != declaration and event.message_id not in mids:
        return "NOT_THIS_DECLARATION"
    return None


def verify_part(part: object, *, authority: str, declaration: str, log_key: NoteVerifier | None,
                witness_key: CosignatureVerifier | None) -> tuple[list[TraceEvent], str | None]:
    """Verify every entry of ``part`` (a log's answer) against pinned keys; return the events and a part-level
    problem (None when the part itself is well formed)."""
    if not isinstance(part, dict) or part.get("format") != TRACE_FORMAT:
        return [], "PART_MALFORMED"
    if part.get("authority") != authority:
        return [], "PART_WRONG_AUTHORITY"
    if part.get("declaration") != declaration:
        return [], "PART_WRONG_DECLARATION"
    raw_entries = part.get("entries")
    if not isinstance(raw_entries, list):
        return [], "PART_MALFORMED"
    checkpoints = _open_checkpoints(part, authority, log_key, witness_key)
    decoded = [d for d in (_decode(item) for item in raw_entries[:MAX_TRACE_ENTRIES]) if d is not None]
    # the declaration's message ids, from entries whose business key is the declaration
    mids = {d[3].message_id for d in decoded if d[3] is not None and d[3].business_key == declaration}
    events: list[TraceEvent] = []
    for d in decoded:
        size = d[1]
        cp, cosigned, cp_problem = (checkpoints.get(size, (None, False, "NO_CHECKPOINT")) if size is not None
                                    else (None, False, "NOT_YET_CHECKPOINTED"))
        problem = _check(d, cp, cp_problem, authority=authority, declaration=declaration, mids=mids)
        events.append(TraceEvent(authority, d[0], problem is None, problem, d[3], size, cosigned))
    return events, None


# --- fetching the counterpart's part -----------------------------------------------------------------------
def fetch_counterpart_part(url: str, token: str, declaration: str, *, timeout_s: float = 10.0) -> object:
    """GET ``<url>/v1/trace/<declaration>?scope=local`` with the counterpart's token; the JSON answer."""
    return get_counterpart_json(url, token, f"/v1/trace/{urllib.parse.quote(declaration, safe='')}?scope=local",
                                max_bytes=MAX_PART_BYTES, what="trace", code_prefix="TRACE", timeout_s=timeout_s)


def get_counterpart_json(url: str, token: str, path: str, *, max_bytes: int, what: str, code_prefix: str,
                         timeout_s: float = 10.0) -> object:
    """GET ``<url><path>`` from the counterpart's ``audit serve`` with its token; the JSON answer, read at
    most ``max_bytes`` (TRACE-2); failures are ``TransportError`` coded ``<code_prefix>_COUNTERPART_*``."""
    target = f"{url.rstrip('/')}{path}"
    if urllib.parse.urlsplit(target).scheme not in ("http", "https"):
        raise ConfigError(f"audit_counterpart_url must be http(s)://…, not {url!r}",
                          code=f"{code_prefix}_COUNTERPART_URL")
    request = urllib.request.Request(target, headers={"Authorization": f"Bearer {token}",  # noqa: S310 - scheme checked
                                                      "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - scheme checked
            body = response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise TransportError(f"the counterpart's audit API answered {exc.code} for the {what}",
                             code=f"{code_prefix}_COUNTERPART_HTTP", retriable=exc.code >= 500) from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise TransportError(f"cannot reach the counterpart's audit API at {url}: {exc}",
                             code=f"{code_prefix}_COUNTERPART_UNREACHABLE", retriable=True) from exc
    if len(body) > max_bytes:  # TRACE-2
        raise TransportError(f"the counterpart's {what} answer is too large",
                             code=f"{code_prefix}_COUNTERPART_TOO_LARGE")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise TransportError(f"the counterpart's {what} answer is not JSON",
                             code=f"{code_prefix}_COUNTERPART_MALFORMED") from exc


# --- both logs ---------------------------------------------------------------------------------------------
@dataclass
class TraceReport:
    declaration: str
    authority: str  # this site
    events: list[TraceEvent] = field(default_factory=list)
    parts: list[dict[str, Any]] = field(default_factory=list)
    counterpart_source: str | None = None  # "api", "home" or None (not configured)
    counterpart_problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.counterpart_problem is None and all(e.verified for e in self.events)

    def to_json(self) -> dict[str, Any]:
        return {"format": TRACE_FORMAT, "declaration": self.declaration, "site": self.authority,
                "ok": self.ok, "counterpart": {"source": self.counterpart_source, "problem": self.counterpart_problem},
                "events": [e.to_json() for e in self.events], "parts": self.parts}


def _read_key(path: Path, parse: Callable[[str], Any]) -> Any:
    if not path.exists():
        return None
    return parse(path.read_text(encoding="ascii").strip())


def pinned_keys(settings: Settings, authority: str
                ) -> dict[str, tuple[NoteVerifier | None, CosignatureVerifier | None]]:
    """Per log: the checkpoint key and the cosignature key of its witness, as pinned in this home."""
    from xborder_gateway.audit._keys import key_paths, load_counterpart_witness, witness_key_paths

    other = _counterpart(authority)
    mine = _read_key(key_paths(settings, authority)[1], NoteVerifier.parse)
    theirs = _read_key(key_paths(settings, other)[1], NoteVerifier.parse)
    return {authority: (mine, load_counterpart_witness(settings, authority)),
            # the counterpart's log is witnessed by us: our own witness's key
            other: (theirs, _read_key(witness_key_paths(settings, authority)[1], CosignatureVerifier.parse))}


def counterpart_token(settings: Settings) -> str:
    """The bearer token the counterpart issued to this site (``audit_counterpart_token_file``)."""
    token_file = settings.audit_counterpart_token_file
    if token_file is None:
        raise ConfigError("audit_counterpart_url is set but no token file", code="TRACE_NO_TOKEN",
                          hint="set XBG_AUDIT_COUNTERPART_TOKEN_FILE to the file with the token the counterpart "
                          "issued (`xborder audit token create NAME --role counterpart` on its site)")
    try:
        return token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {token_file}: {exc.strerror}", code="TRACE_NO_TOKEN") from exc


def counterpart_part(settings: Settings, authority: str, declaration: str) -> tuple[object | None, str | None]:
    """The counterpart's part and where it came from (``api``/``home``), or (None, None) if not configured."""
    other = _counterpart(authority)
    url = settings.audit_counterpart_url
    if url:
        token = counterpart_token(settings)
        answer = fetch_counterpart_part(url, token, declaration)
        parts = answer.get("parts") if isinstance(answer, dict) else None
        return (parts[0] if isinstance(parts, list) and parts else answer), "api"
    if settings.audit_url is None and settings.audit_db(other).exists():
        with AuditLog.open(settings, other, read_only=True) as log:
            return local_part(log, declaration), "home"
    return None, None


def build_trace(settings: Settings, authority: str, declaration: str, *, log: AuditLog | None = None) -> TraceReport:
    """Both logs' events about ``declaration``, each verified against this home's pinned keys, in time order."""
    authority = authority.upper()
    keys = pinned_keys(settings, authority)
    report = TraceReport(declaration, authority)
    own = log if log is not None else AuditLog.open(settings, authority, read_only=True)
    try:
        mine = local_part(own, declaration)
    finally:
        if log is None:
            own.close()
    report.parts.append(mine)
    events, _ = verify_part(mine, authority=authority, declaration=declaration, log_key=keys[authority][0],
                            witness_key=keys[authority][1])
    report.events.extend(events)
    other = _counterpart(authority)
    try:
        theirs, report.counterpart_source = counterpart_part(settings, authority, declaration)
    except GatewayError as exc:
        report.counterpart_problem = f"{exc.code}: {exc.message}"
        theirs = None
    if theirs is not None:
        if isinstance(theirs, dict):
            report.parts.append(theirs)
        events, problem = verify_part(theirs, authority=other, declaration=declaration, log_key=keys[other][0],
                                      witness_key=keys[other][1])
        report.counterpart_problem = report.counterpart_problem or problem
        report.events.extend(events)
    report.events.sort(key=lambda e: (e.time is None, e.time or datetime.min, e.log, e.index))
    return report
