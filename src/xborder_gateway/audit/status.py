"""Checkpoint status of both logs, with cosignatures and lag (issue 12 item 5): ``/v1/status``.

For each log the console's main panel shows the latest checkpoint, the latest checkpoint that carries a
witness cosignature, and the **lag** between the two:

- ``lag_entries``: entries of the log not covered by its latest cosigned checkpoint (``size - cosigned
  size``; the whole log when nothing is cosigned yet);
- ``lag_seconds``: how long the oldest of those entries has waited for a cosignature (``now`` minus its
  time; 0 when every entry is covered). A log whose entries are stamped ahead of the reporting clock
  (clock skew) reports 0 s and the skew in ``clock_skew_seconds``, never a negative lag.

Each log's figures are computed by the site that holds the log, with its own clock: ours from our
log (:func:`log_status`), the counterpart's from the counterpart's ``audit serve`` (``/v1/status?scope=local``
at ``audit_counterpart_url`` with the token it issued to us, the same pair ``/v1/trace`` uses), or from the
home when it holds both logs (the one-machine demo). The notes are passed on verbatim: the browser checks
their log signatures and cosignatures itself against the keys the auditor pinned (STATUS-2) — the server's
``level`` is advice for API clients, the console recomputes it from what it verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from xborder_gateway.audit.events import format_time
from xborder_gateway.audit.log import AuditLog
from xborder_gateway.config import Settings
from xborder_gateway.errors import GatewayError, TransportError

__all__ = ["MAX_STATUS_BYTES", "STATUS_FORMAT", "Lag", "build_status", "checkpoint_lag", "lag_level", "log_status"]

STATUS_FORMAT: Final = "xborder-status/1"
#: TRACE-2 applied to status answers: a counterpart's status is bounded before it is parsed (two notes)
MAX_STATUS_BYTES: Final = 256 * 1024


@dataclass(frozen=True)
class Lag:
    entries: int
    seconds: float
    clock_skew_seconds: float  # > 0: the oldest uncovered entry is stamped this far ahead of the clock


def checkpoint_lag(size: int, cosigned_size: int | None, oldest_uncovered: datetime | None, now: datetime) -> Lag:
    """The lag between a log of ``size`` entries and its latest cosigned checkpoint (``None``: none yet).

    ``oldest_uncovered`` is the time of entry ``cosigned_size`` (the first one the cosigned checkpoint does
    not cover), needed when the lag is not zero."""
    covered = cosigned_size or 0
    if not 0 <= covered <= size:
        # VER-2: a checkpoint beyond the log means a deleted tail; never report it as a small lag
        raise ValueError(f"a cosigned checkpoint of size {covered} is beyond the log's {size} entries")
    entries = size - covered
    if entries == 0:
        return Lag(0, 0.0, 0.0)
    if oldest_uncovered is None:
        raise ValueError("the time of the oldest uncovered entry is needed when the lag is not zero")
    waited = (now - oldest_uncovered).total_seconds()
    if waited < 0:  # clock skew: the entry's writer is ahead of this clock; a lag is never negative
        return Lag(entries, 0.0, -waited)
    return Lag(entries, waited, 0.0)


def lag_level(*, has_checkpoint: bool, cosigned: bool, lag: Lag, max_lag_entries: int, max_lag_seconds: float) -> str:
    """``ok`` (green), ``warn`` (amber) or ``bad`` (red).

    Red: no checkpoint, or more than the allowed lag is not covered by a cosignature (what ``audit verify
    --require-witness --max-lag-*`` fails on). Amber: not cosigned yet but still within the allowed lag.
    Green: cosigned and within it. (The console applies the same rule to what it verified itself.)"""
    if not has_checkpoint:
        return "bad"
    if lag.entries > max_lag_entries or lag.seconds > max_lag_seconds:
        return "bad"
    return "ok" if cosigned else "warn"


def _time(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


def log_status(log: AuditLog, *, now: datetime, max_lag_entries: int, max_lag_seconds: float) -> dict[str, Any]:
    """This log's checkpoint status: latest checkpoint, latest cosigned one (notes verbatim), lag."""
    size = log.size()
    latest = log.latest_checkpoint()
    sizes = log.cosigned_sizes()  # each stored cosignature was verified when stored (COSIG-3)
    cosigned_size = sizes[-1] if sizes else None
    covered = cosigned_size or 0
    oldest = log.get(covered).event.time if size > covered else None
    lag = checkpoint_lag(size, cosigned_size, oldest, now)
    cosigned: dict[str, Any] | None = None
    if cosigned_size is not None:
        signed = log.checkpoint_covering(cosigned_size - 1)  # the first checkpoint of size >= it: that one
        issued = signed.issued_at if signed is not None and signed.checkpoint.size == cosigned_size else None
        cosigned = {"size": cosigned_size, "issued": _time(issued), "note": log.cosigned_note(cosigned_size)}
    return {
        "authority": log.authority, "origin": log.origin, "source": "self", "problem": None,
        "now": format_time(now), "size": size,
        "latest": None if latest is None else {"size": latest.checkpoint.size, "issued": _time(latest.issued_at),
                                                "note": latest.note},
        "cosigned": cosigned,
        "lag_entries": lag.entries, "lag_seconds": round(lag.seconds, 3),
        "clock_skew_seconds": round(lag.clock_skew_seconds, 3),
        "oldest_uncovered": _time(oldest),
        "level": lag_level(has_checkpoint=latest is not None, cosigned=cosigned is not None, lag=lag,
                           max_lag_entries=max_lag_entries, max_lag_seconds=max_lag_seconds),
    }


def _unavailable(authority: str, source: str | None, problem: str) -> dict[str, Any]:
    return {"authority": authority, "origin": None, "source": source, "problem": problem, "size": None,
            "latest": None, "cosigned": None, "lag_entries": None, "lag_seconds": None, "clock_skew_seconds": None,
            "oldest_uncovered": None, "level": "bad"}


def _checked_counterpart(answer: object, authority: str) -> dict[str, Any]:
    """The counterpart's own log out of its ``/v1/status?scope=local`` answer, shape-checked."""
    logs = answer.get("logs") if isinstance(answer, dict) else None
    mine = logs[0] if isinstance(logs, list) and len(logs) == 1 and isinstance(logs[0], dict) else None
    if mine is None or mine.get("authority") != authority:
        raise TransportError(f"the counterpart's status answer is not the status of the {authority} log",
                             code="STATUS_COUNTERPART_MALFORMED")
    ints = ("size", "lag_entries")
    if any(not isinstance(mine.get(k), int) or isinstance(mine.get(k), bool) or mine[k] < 0 for k in ints):
        raise TransportError("the counterpart's status answer has no valid size or lag",
                             code="STATUS_COUNTERPART_MALFORMED")
    for k in ("lag_seconds", "clock_skew_seconds"):
        v = mine.get(k)
        if v is not None and (not isinstance(v, int | float) or isinstance(v, bool) or not 0 <= v <= 1e12):
            raise TransportError(f"the counterpart's status answer has a malformed {k!r}",
                                 code="STATUS_COUNTERPART_MALFORMED")
    for k in ("latest", "cosigned"):
        part = mine.get(k)
        if part is not None and not (isinstance(part, dict) and isinstance(part.get("note"), str)
                                     and isinstance(part.get("size"), int)):
            raise TransportError(f"the counterpart's status answer has a malformed {k!r}",
                                 code="STATUS_COUNTERPART_MALFORMED")
    return {**mine, "source": "api", "problem": None}


def counterpart_status(settings: Settings | None, authority: str, *, now: datetime, max_lag_entries: int,
                       max_lag_seconds: float) -> dict[str, Any]:
    """The counterpart log's status: from the counterpart's ``audit serve`` (``audit_counterpart_url``), or from
    this home when it holds both logs; an unreachable or unconfigured counterpart is a ``problem``, red."""
    from xborder_gateway.audit.trace import counterpart_token, get_counterpart_json

    other = "CN" if authority == "VN" else "VN"
    if settings is None:
        return _unavailable(other, None, "STATUS_COUNTERPART_NOT_CONFIGURED: no settings given to this server")
    try:
        if settings.audit_counterpart_url:
            answer = get_counterpart_json(settings.audit_counterpart_url, counterpart_token(settings),
                                          "/v1/status?scope=local", max_bytes=MAX_STATUS_BYTES, what="status",
                                          code_prefix="STATUS")
            return _checked_counterpart(answer, other)
        if settings.audit_url is None and settings.audit_db(other).exists():
            with AuditLog.open(settings, other, read_only=True) as log:
                return {**log_status(log, now=now, max_lag_entries=max_lag_entries, max_lag_seconds=max_lag_seconds),
                        "source": "home"}
    except GatewayError as exc:
        return _unavailable(other, "api" if settings.audit_counterpart_url else "home", f"{exc.code}: {exc.message}")
    return _unavailable(other, None, "STATUS_COUNTERPART_NOT_CONFIGURED: set audit_counterpart_url "
                        "(XBG_AUDIT_COUNTERPART_URL) and audit_counterpart_token_file")


def build_status(log: AuditLog, settings: Settings | None, *, scope: str = "both",
                 now: datetime | None = None) -> dict[str, Any]:
    """The ``/v1/status`` answer: this log, and (``scope=both``) the counterpart's."""
    now = now if now is not None else datetime.now(UTC)
    defaults = Settings.model_fields
    max_entries = int(settings.audit_console_max_lag_entries if settings is not None
                      else defaults["audit_console_max_lag_entries"].default)
    max_seconds = float(settings.audit_console_max_lag_seconds if settings is not None
                        else defaults["audit_console_max_lag_seconds"].default)
    logs = [log_status(log, now=now, max_lag_entries=max_entries, max_lag_seconds=max_seconds)]
    if scope == "both":
        logs.append(counterpart_status(settings, log.authority, now=now, max_lag_entries=max_entries,
                                       max_lag_seconds=max_seconds))
    return {"format": STATUS_FORMAT, "site": log.authority, "now": format_time(now),
            "max_lag_entries": max_entries, "max_lag_seconds": max_seconds, "logs": logs}

