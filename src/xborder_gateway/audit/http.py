"""Read-only HTTP API over one authority's audit log (``xborder audit serve``).

Every route but ``/openapi.json`` needs ``Authorization: Bearer <token>`` of a live token with the
``auditor`` role (API-1). Tokens are stored hashed (SHA-256) in ``<home>/audit/api-tokens.json`` with
an expiry, and can be revoked (``xborder audit token create|list|revoke``). Routing is a pure function
(:meth:`AuditApi.handle`) so it is tested without sockets too.

The server (:class:`AuditHttpServer`) reads request heads on one selector thread, so an idle or slow
client costs a file descriptor, not a thread: a head that has not fully arrived within
``request_timeout_s`` is answered 408 and closed (API-4, slowloris), more than ``max_connections`` open
sockets make the oldest one still sending its head close, or, if every socket is being answered, the
new one is answered 503 and closed at once (API-5), and complete requests are answered by a fixed
pool of ``workers`` threads, each write bounded by ``write_timeout_s``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import logging
import os
import re
import secrets
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

from xborder_gateway.audit.errors import AuditNotFoundError
from xborder_gateway.audit.events import EventType
from xborder_gateway.audit.log import AuditLog
from xborder_gateway.config import Settings
from xborder_gateway.errors import AuditIntegrityError, GatewayError

__all__ = [
    "AUDITOR_ROLE",
    "COUNTERPART_ROLE",
    "AuditApi",
    "AuditHttpServer",
    "Response",
    "ServerLimits",
    "TokenRecord",
    "TokenStore",
    "make_server",
    "openapi",
    "serve_in_thread",
]

_log = logging.getLogger(__name__)
AUDITOR_ROLE: Final = "auditor"
#: the role of a token issued to the counterpart authority: it reads /v1/trace/{decl}?scope=local only (TRACE-3)
COUNTERPART_ROLE: Final = "counterpart"
ROLES: Final = (AUDITOR_ROLE, COUNTERPART_ROLE)
_DECLARATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=@#-]{0,127}")
MAX_QUERY_CHARS: Final = 2048  # API-3: bound what we parse
MAX_QUERY_FIELDS: Final = 20  # API-3
MAX_INDEX: Final = 2**63 - 1  # the databases' BIGINT: anything larger is refused as a bad request
ALLOWED_METHODS: Final = "GET, HEAD"
SERVER_NAME: Final = "xborder-audit/1"  # API-6: names no Python version
JSON = "application/json"
_DIGITS = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _json(status: int, obj: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, JSON, (json.dumps(obj, indent=1) + "\n").encode("utf-8"), headers)


def _error(status: int, code: str, message: str, hint: str | None = None,
           headers: tuple[tuple[str, str], ...] = ()) -> Response:
    body: dict[str, Any] = {"error": code, "message": message}
    if hint:
        body["hint"] = hint
    return _json(status, body, headers)


# --- tokens ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenRecord:
    """One stored token: never the token itself, only its SHA-256."""

    name: str
    role: str
    sha256: str
    created: float | None = None
    expires: float | None = None  # epoch seconds; None = never (only with an explicit --no-expiry)
    revoked: float | None = None

    def state(self, now: float) -> str:
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and now >= self.expires:
            return "expired"
        return "active"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "sha256": self.sha256, "created": self.created,
                "expires": self.expires, "revoked": self.revoked}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TokenRecord:
        def num(key: str) -> float | None:
            value = d.get(key)
            return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

        return cls(str(d.get("name", "")), str(d.get("role", "")), str(d.get("sha256", "")),
                   num("created"), num("expires"), num("revoked"))


class TokenStore:
    """Bearer tokens, kept as SHA-256 hashes with a name, a role, an expiry and a revocation mark."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()

    def records(self) -> list[TokenRecord]:
        if not self.path.exists():
            return []
        data = json.loads(self.path.read_text(encoding="utf-8"))
        tokens = data.get("tokens", []) if isinstance(data, dict) else []
        return [TokenRecord.from_json(t) for t in tokens if isinstance(t, dict)]

    def _save(self, records: list[TokenRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"tokens": [r.to_json() for r in records]}, fh, indent=1)
        os.replace(tmp, self.path)

    def add(self, name: str, role: str = AUDITOR_ROLE, *, expires_days: float | None = 90.0) -> str:
        """Create a token, store its hash and return it (the only time it is seen).

        ``expires_days=None`` makes a token that never expires (API-7: callers must ask for that)."""
        if expires_days is not None and not 0 < expires_days <= 3650:
            raise ValueError("expires_days must be in (0, 3650]")
        token = secrets.token_urlsafe(32)
        now = self.clock()
        record = TokenRecord(name, role, hashlib.sha256(token.encode()).hexdigest(), created=now,
                             expires=None if expires_days is None else now + expires_days * 86400)
        with self._lock:
            self._save([*self.records(), record])
        return token

    def revoke(self, name: str) -> int:
        """Revoke every live token named ``name``; return how many."""
        now = self.clock()
        with self._lock:
            records = self.records()
            count = sum(1 for r in records if r.name == name and r.revoked is None)
            if count:
                self._save([TokenRecord(r.name, r.role, r.sha256, r.created, r.expires,
                                        now if r.name == name and r.revoked is None else r.revoked)
                            for r in records])
        return count

    def lookup(self, token: str) -> tuple[TokenRecord | None, str]:
        """The record of ``token`` and its state (``active``, ``expired``, ``revoked`` or ``unknown``)."""
        digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        found: TokenRecord | None = None
        for record in self.records():  # compare against every entry in constant time (API-2)
            if hmac.compare_digest(digest, record.sha256):
                found = record
        if found is None:
            return None, "unknown"
        return found, found.state(self.clock())

    def role_of(self, token: str) -> str | None:
        """The role of a live token (None for unknown, expired or revoked ones)."""
        record, state = self.lookup(token)
        return record.role if record is not None and state == "active" else None

    def __len__(self) -> int:
        return len(self.records())


# --- request parameters ------------------------------------------------------------------------
def _int_param(query: dict[str, list[str]], name: str, *, required: bool = False,
               minimum: int = 0, maximum: int = MAX_INDEX) -> int | None:
    values = query.get(name)
    if not values:
        if required:
            raise ValueError(f"query parameter {name} is required")
        return None
    text = values[-1]
    # API-3: ASCII digits only (str.isdigit also takes '²'), and within the databases' BIGINT
    if not _DIGITS.fullmatch(text) or not minimum <= int(text) <= maximum:
        raise ValueError(f"{name} must be an integer in {minimum}..{maximum}")
    return int(text)


def _index_segment(text: str, what: str) -> int:
    if not _DIGITS.fullmatch(text) or int(text) > MAX_INDEX:
        raise ValueError(f"{what} must be an integer in 0..{MAX_INDEX}")
    return int(text)


MAX_TEXT_PARAM: Final = 200  # API-3: as the OpenAPI says (maxLength)


def _flag(query: dict[str, list[str]], name: str) -> bool:
    values = query.get(name)
    if not values:
        return False
    if len(values) != 1 or values[0] not in ("", "1", "true", "0", "false"):
        raise ValueError(f"{name} is 1/true or 0/false")
    return values[0] in ("", "1", "true")


def _str_param(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values[-1]) > MAX_TEXT_PARAM:
        raise ValueError(f"{name} is longer than {MAX_TEXT_PARAM} characters")
    return values[-1]


def parse_time(text: str, name: str) -> datetime:
    """An RFC 3339 time with a zone, within 1970..9999 (ValueError with a clear message otherwise)."""
    try:
        value = datetime.fromisoformat(text.strip().upper().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} is not an RFC 3339 time (e.g. 2026-11-25T00:00:00Z)") from None
    if value.tzinfo is None:
        raise ValueError(f"{name} needs a timezone (e.g. 2026-11-25T00:00:00Z)")
    try:
        utc = value.astimezone(UTC)  # 0001-01-01T00:00+01:00 overflows here
    except OverflowError:
        raise ValueError(f"{name} is out of range (its UTC time must be within years 1..9999)") from None
    return utc


def _time_param(query: dict[str, list[str]], name: str) -> datetime | None:
    text = _str_param(query, name)
    return None if text is None else parse_time(text, name)


def _console(path: str) -> Response:
    """The auditor console's static files (no token: they hold no data; the API calls carry it)."""
    from xborder_gateway.audit.console import console_asset

    if path == "/console":
        return Response(308, "text/plain; charset=utf-8", b"/console/\n", (("Location", "/console/"),))
    asset = console_asset(path[len("/console/"):])
    if asset is None:
        return _error(404, "NO_SUCH_ROUTE", f"no console file {path}")
    body, content_type, headers = asset
    return Response(200, content_type, body, headers)


class AuditApi:
    """The routes; ``handle`` maps a request to a :class:`Response`."""

    def __init__(self, log: AuditLog, tokens: TokenStore, settings: Settings | None = None) -> None:
        self.log = log
        self.tokens = tokens
        self.settings = settings  # with it, /v1/trace also fetches the counterpart's part (issue 12)

    def handle(  # noqa: PLR0911, PLR0912 - one early return per refusal, in the order they are checked
        self, method: str, target: str, authorization: str | None
    ) -> Response:
        if len(target) > MAX_QUERY_CHARS:
            return _error(414, "URI_TOO_LONG", "request target too long")
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        if method not in ("GET", "HEAD"):  # TRACE, OPTIONS, PATCH, anything: the API is read-only
            return _error(405, "METHOD_NOT_ALLOWED", "this API is read-only", headers=(("Allow", ALLOWED_METHODS),))
        if path == "/openapi.json":
            return _json(200, openapi(self.log.authority, self.log.config.max_search_limit))
        if path == "/console" or path.startswith("/console/"):
            return _console(parts.path)
        # API-1: every other route needs a bearer token with the auditor role.
        # RFC 7235 §2.1: the auth-scheme is case-insensitive ("bearer", "BEARER" are "Bearer").
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return _error(401, "UNAUTHENTICATED", "a bearer token is required",
                          headers=(("WWW-Authenticate", 'Bearer realm="xborder-audit"'),))
        record, state = self.tokens.lookup(credentials.strip())
        if record is None or state != "active":
            return _error(401, "UNAUTHENTICATED", f"{state} token",
                          headers=(("WWW-Authenticate", 'Bearer realm="xborder-audit", error="invalid_token"'),))
        if record.role == COUNTERPART_ROLE:
            # TRACE-3: the counterpart's token discloses one declaration's entries of this log, nothing else
            local = parse_qs(parts.query).get("scope") == ["local"]
            # STATUS-1: it also reads /v1/status?scope=local (sizes, times, checkpoint notes: what this site
            # already publishes to the counterpart's witness), so the counterpart's console can show our lag
            if not (local and (path.startswith("/v1/trace/") or path == "/v1/status")):
                return _error(403, "FORBIDDEN", "a counterpart token reads /v1/trace/{declaration}?scope=local "
                              "and /v1/status?scope=local only")
        elif record.role != AUDITOR_ROLE:
            return _error(403, "FORBIDDEN", f"role {record.role!r} may not read the audit log")
        try:
            try:
                query = parse_qs(parts.query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
            except ValueError:
                raise ValueError(f"at most {MAX_QUERY_FIELDS} query fields") from None
            return self._route(path, query)
        except ValueError as exc:
            return _error(400, "BAD_REQUEST", str(exc))
        except AuditNotFoundError as exc:
            return _error(404, exc.code, exc.message, exc.hint)
        except AuditIntegrityError as exc:
            return _error(500, exc.code, exc.message, exc.hint)
        except GatewayError as exc:
            return _error(503 if exc.retriable else 500, exc.code, exc.message, exc.hint)

    def _route(self, path: str, q: dict[str, list[str]]) -> Response:
        log = self.log
        segments = path.strip("/").split("/")
        route: dict[str, Callable[[], Response]] = {
            "/v1/tree": lambda: _json(200, {"size": log.size(), "root": log.root().hex()}),
            "/v1/key": lambda: self._text(str(log.verifier) + "\n" if log.verifier else None, "no key yet"),
            "/v1/checkpoint": lambda: self._text(self._latest_note(_flag(q, "cosigned")), "no checkpoint yet"),
            "/v1/entries": lambda: self._search(q),
            "/v1/status": lambda: self._status(q),
            "/v1/proof/inclusion": lambda: _json(200, log.inclusion_proof(
                _int_param(q, "index", required=True) or 0, _int_param(q, "size")).to_json()),
            "/v1/proof/consistency": lambda: _json(200, log.consistency_proof(
                _int_param(q, "old", required=True) or 0, _int_param(q, "new")).to_json()),
        }
        if path in route:
            return route[path]()
        if len(segments) == 3 and segments[:2] == ["v1", "entries"]:
            return _json(200, log.get(_index_segment(segments[2], "entry index")).to_json())
        if len(segments) == 3 and segments[:2] == ["v1", "bundle"]:
            return _json(200, log.bundle(_index_segment(segments[2], "entry index"), issue=False))
        if len(segments) >= 3 and segments[:2] == ["v1", "trace"]:
            return self._trace(unquote(path[len("/v1/trace/"):]), q)
        return _error(404, "NO_SUCH_ROUTE", f"no route {path}", "see /openapi.json")

    def _latest_note(self, cosigned: bool = False) -> str | None:
        if cosigned:  # the note with every stored witness cosignature line (still a valid C2SP note)
            return self.log.cosigned_note()
        latest = self.log.latest_checkpoint()
        return latest.note if latest else None

    def _trace(self, declaration: str, q: dict[str, list[str]]) -> Response:
        from xborder_gateway.audit.trace import TRACE_FORMAT, build_trace, local_part

        if not _DECLARATION.fullmatch(declaration):
            raise ValueError("not a declaration number")
        scope = _str_param(q, "scope")
        if scope not in (None, "local", "both"):
            raise ValueError("scope is local or both")
        if scope == "local" or self.settings is None:
            return _json(200, {"format": TRACE_FORMAT, "declaration": declaration,
                               "parts": [local_part(self.log, declaration)]})
        return _json(200, build_trace(self.settings, self.log.authority, declaration, log=self.log).to_json())

    def _status(self, q: dict[str, list[str]]) -> Response:
        from xborder_gateway.audit.status import build_status

        scope = _str_param(q, "scope")
        if scope not in (None, "local", "both"):
            raise ValueError("scope is local or both")
        return _json(200, build_status(self.log, self.settings, scope=scope or "both"))

    @staticmethod
    def _text(text: str | None, missing: str) -> Response:
        if text is None:
            return _error(404, "AUDIT_NOT_FOUND", missing)
        return Response(200, "text/plain; charset=utf-8", text.encode("utf-8"))

    def _search(self, q: dict[str, list[str]]) -> Response:
        event_type = _str_param(q, "type")
        if event_type is not None and event_type not in {t.value for t in EventType}:
            raise ValueError(f"unknown event type {event_type!r}")
        # limit=0 used to mean "the default 100": a page size is 1..max, anything else is refused
        limit = _int_param(q, "limit", minimum=1, maximum=self.log.config.max_search_limit)
        entries = self.log.search(
            message_id=_str_param(q, "message_id"), business_key=_str_param(q, "declaration"),
            event_type=event_type, since=_time_param(q, "since"), until=_time_param(q, "until"),
            after=_int_param(q, "after"), limit=100 if limit is None else limit)
        return _json(200, {"entries": [e.to_json() for e in entries],
                           "next_after": entries[-1].index if entries else None})


# --- OpenAPI -----------------------------------------------------------------------------------
_HEX32 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error", "message"],
              "properties": {"error": {"type": "string"}, "message": {"type": "string"}, "hint": {"type": "string"}}},
    "Tree": {"type": "object", "required": ["size", "root"],
             "properties": {"size": {"type": "integer", "minimum": 0}, "root": _HEX32}},
    "Entry": {"type": "object", "required": ["index", "leaf_hash", "entry", "entry_b64"],
              "properties": {"index": {"type": "integer", "minimum": 0}, "leaf_hash": _HEX32,
                             "entry": {"type": "object"}, "entry_b64": {"type": "string"}}},
    "EntryPage": {"type": "object", "required": ["entries", "next_after"],
                  "properties": {"entries": {"type": "array", "items": {"$ref": "#/components/schemas/Entry"}},
                                 "next_after": {"type": ["integer", "null"], "minimum": 0}}},
    "InclusionProof": {"type": "object", "required": ["leaf_index", "tree_size", "leaf_hash", "hashes"],
                       "properties": {"leaf_index": {"type": "integer", "minimum": 0},
                                      "tree_size": {"type": "integer", "minimum": 1}, "leaf_hash": _HEX32,
                                      "hashes": {"type": "array", "items": _HEX32}}},
    "ConsistencyProof": {"type": "object", "required": ["old_size", "new_size", "old_root", "new_root", "hashes"],
                         "properties": {"old_size": {"type": "integer", "minimum": 0},
                                        "new_size": {"type": "integer", "minimum": 0},
                                        "old_root": _HEX32, "new_root": _HEX32,
                                        "hashes": {"type": "array", "items": _HEX32}}},
    "Bundle": {"type": "object", "required": ["format", "entry", "inclusion_proof", "checkpoint", "verifier_key"],
               "properties": {"format": {"type": "string"}, "entry": {"$ref": "#/components/schemas/Entry"},
                              "inclusion_proof": {"$ref": "#/components/schemas/InclusionProof"},
                              "checkpoint": {"type": "string"}, "verifier_key": {"type": "string"}}},
}


def openapi(authority: str, max_limit: int = 1000) -> dict[str, Any]:
    """The OpenAPI 3.1 description of the API: every parameter bounded, every response with a schema."""
    def error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"description": description,
                               "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}
        if headers:
            out["headers"] = headers
        return out

    def op(summary: str, params: list[dict[str, Any]], schema: dict[str, Any], content: str = JSON) -> dict[str, Any]:
        www = {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}}
        return {"get": {
            "summary": summary, "parameters": params, "security": [{"bearer": []}],
            "responses": {
                "200": {"description": "OK", "content": {content: {"schema": schema}}},
                "400": error("a parameter is malformed or out of range"),
                "401": error("no, unknown, expired or revoked bearer token", www),
                "403": error("token without the auditor role"),
                "404": error("no such entry, size or checkpoint"),
                "414": error("request target over 2 KiB"),
                "503": error("the audit database is temporarily unavailable"),
            }}}

    def ref(name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{name}"}

    def qp(name: str, schema: dict[str, Any], required: bool = False, desc: str = "") -> dict[str, Any]:
        return {"name": name, "in": "query", "required": required, "schema": schema, "description": desc}

    index = {"type": "integer", "minimum": 0, "maximum": MAX_INDEX}
    text = {"type": "string", "maxLength": MAX_TEXT_PARAM}
    when = {"type": "string", "format": "date-time"}
    pp = {"name": "index", "in": "path", "required": True, "schema": index}
    return {
        "openapi": "3.1.0",
        "info": {"title": f"xborder-gateway audit log ({authority})", "version": "1",
                 "description": "Read-only queries and RFC 9162 proofs over the tamper-evident exchange log. "
                                "Formats: docs/audit.md."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "token with the auditor role"}},
                       "schemas": _SCHEMAS},
        "paths": {
            "/v1/tree": op("current tree size and root hash", [], ref("Tree")),
            "/v1/key": op("the checkpoint verifier key (<name>+<hash>+<key>)", [], {"type": "string"}, "text/plain"),
            "/v1/checkpoint": op("the latest signed checkpoint note, verbatim (cosigned=1: with the witness "
                                 "cosignature lines stored beside it)",
                                 [qp("cosigned", {"type": "string", "enum": ["", "0", "1", "false", "true"]})],
                                 {"type": "string"}, "text/plain"),
            "/v1/entries": op("search entries (all filters AND-ed, log order)", [
                qp("message_id", text), qp("declaration", text, desc="declaration number"),
                qp("type", {"type": "string", "enum": sorted(t.value for t in EventType)}, desc="event type"),
                qp("since", when, desc="RFC 3339 time, inclusive"), qp("until", when, desc="RFC 3339 time, exclusive"),
                qp("after", index, desc="page: last index seen"),
                qp("limit", {"type": "integer", "minimum": 1, "maximum": max_limit}, desc=f"1..{max_limit}")],
                ref("EntryPage")),
            "/v1/entries/{index}": op("one entry", [pp], ref("Entry")),
            "/v1/proof/inclusion": op("inclusion proof", [qp("index", index, True), qp("size", index)],
                                      ref("InclusionProof")),
            "/v1/proof/consistency": op("consistency proof", [qp("old", index, True), qp("new", index)],
                                        ref("ConsistencyProof")),
            "/v1/bundle/{index}": op("offline proof bundle", [pp], ref("Bundle")),
            "/v1/trace/{declaration}": op(
                "one declaration's events in both logs, each with an inclusion proof (scope=local: this log's part "
                "only, what a counterpart token may read)",
                [{"name": "declaration", "in": "path", "required": True,
                  "schema": {"type": "string", "pattern": "^" + _DECLARATION.pattern + "$"}},
                 qp("scope", {"type": "string", "enum": ["local", "both"]})], {"type": "object"}),
            "/v1/status": op(
                "checkpoint status of this log and the counterpart's: latest checkpoint, latest cosigned checkpoint "
                "(notes verbatim, for the client to verify), lag in entries and seconds (scope=local: this log only, "
                "what a counterpart token may read)",
                [qp("scope", {"type": "string", "enum": ["local", "both"]})], {"type": "object"}),
        },
    }


# --- the server --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServerLimits:
    """Bounds of the HTTP server (API-4, API-5)."""

    max_connections: int = 512  # open client sockets; at the cap the oldest idle one is closed (else 503)
    workers: int = 8  # threads that answer complete requests
    request_timeout_s: float = 10.0  # the whole request head must arrive within this; else 408 and close
    write_timeout_s: float = 30.0  # the whole response must be taken within this
    max_head_bytes: int = 16 * 1024  # request line + headers; beyond: 431 and close


class _Writer(io.RawIOBase):
    """Writes to a socket with one deadline for the whole response (a slow reader cannot hold a worker)."""

    def __init__(self, conn: socket.socket, deadline: float) -> None:
        self._conn = conn
        self._deadline = deadline

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("response write deadline passed")
        self._conn.settimeout(remaining)
        return self._conn.send(data)


def _raw_response(status: int, code: str, message: str) -> bytes:
    body = json.dumps({"error": code, "message": message}).encode() + b"\n"
    phrase = HTTPStatus(status).phrase
    return (f"HTTP/1.0 {status} {phrase}\r\nServer: {SERVER_NAME}\r\nContent-Type: {JSON}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode("ascii") + body


class _Handler(BaseHTTPRequestHandler):
    """One request, whose head has been read completely already (no reads can block)."""

    server_version = SERVER_NAME
    protocol_version = "HTTP/1.0"
    default_request_version = "HTTP/1.0"  # answers to malformed request lines carry a status line too

    def __init__(self, conn: socket.socket, address: Any, api: AuditApi, head: bytes, deadline: float) -> None:
        self.request = conn
        self.connection = conn
        self.client_address = address
        self.api = api
        self.rfile = io.BytesIO(head)
        self.wfile = io.BufferedWriter(_Writer(conn, deadline))
        self.close_connection = True
        try:
            self.handle_one_request()
            self.wfile.flush()
        finally:
            with contextlib.suppress(OSError, ValueError):
                self.wfile.close()

    def version_string(self) -> str:
        return SERVER_NAME  # API-6: not "BaseHTTP/0.6 Python/3.11.x"

    def handle_one_request(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline:
            return
        if not self.parse_request():  # answers malformed request lines and headers itself (send_error)
            return
        self._serve()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        phrase = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else "error"
        self._send(_error(code, "BAD_REQUEST" if code < 500 else "INTERNAL", message or phrase))

    def _serve(self) -> None:
        try:
            response = self.api.handle(self.command, self.path, self.headers.get("Authorization"))
        except Exception:  # noqa: BLE001 - an unexpected fault is logged here, never sent to the client
            _log.exception("audit API: %s %s failed", self.command, self.path.split("?")[0])
            response = _error(500, "INTERNAL", "internal error; see the server log")
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if getattr(self, "command", None) != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log on stderr; the API serves read-only data


@dataclass
class _Pending:
    address: Any
    deadline: float
    head: bytearray


class AuditHttpServer:
    """A small HTTP/1.0 server: a selector thread reads heads, a fixed pool answers (see the module doc)."""

    def __init__(self, api: AuditApi, host: str, port: int, limits: ServerLimits | None = None) -> None:
        self.api = api
        self.limits = limits or ServerLimits()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=128)
        self.socket.setblocking(False)
        self.server_address: tuple[Any, ...] = self.socket.getsockname()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.socket, selectors.EVENT_READ)
        self._pending: dict[socket.socket, _Pending] = {}
        self._open = 0  # client sockets not yet closed: pending + being answered
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=self.limits.workers, thread_name_prefix="audit-http")
        self._stop = False
        self._stopped = threading.Event()
        self._stopped.set()
        self.refused = 0  # connections answered 503 at the cap (for tests and metrics)
        self.timed_out = 0  # connections closed by the head deadline
        self.evicted = 0  # idle connections closed at the cap to admit a new one

    @property
    def open_connections(self) -> int:
        with self._lock:
            return self._open

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._stopped.clear()
        try:
            while not self._stop:
                for key, _ in self._selector.select(timeout=poll_interval):
                    if key.fileobj is self.socket:
                        self._accept()
                    else:
                        self._read(key.fileobj)  # type: ignore[arg-type]
                self._expire()
        finally:
            self._stop = False
            self._stopped.set()

    def shutdown(self) -> None:
        self._stop = True
        self._stopped.wait()

    def server_close(self) -> None:
        for conn in list(self._pending):
            self._drop(conn)
        with contextlib.suppress(Exception):
            self._selector.close()
        self.socket.close()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _accept(self) -> None:
        while True:
            try:
                conn, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. EMFILE: leave the rest in the backlog for the next round
                _log.warning("audit API: accept failed", exc_info=True)
                return
            with self._lock:
                over = self._open >= self.limits.max_connections
            if over and self._pending:
                # API-5: at the cap, the oldest connection still sending its head makes room (an idle
                # flood evicts itself, a client that sends its request at once gets through)
                oldest = min(self._pending, key=lambda c: self._pending[c].deadline)
                self.evicted += 1
                self._drop(oldest, (408, "REQUEST_TIMEOUT", "evicted: too many idle connections"))
                over = False
            if over:  # API-5: every slot is answering a request: refuse at once, never queue without bound
                self.refused += 1
                self._refuse(conn, 503, "SERVER_BUSY", "too many open connections; retry later")
                continue
            with self._lock:
                self._open += 1
            conn.setblocking(False)
            self._pending[conn] = _Pending(address, time.monotonic() + self.limits.request_timeout_s, bytearray())
            self._selector.register(conn, selectors.EVENT_READ)

    def _read(self, conn: socket.socket) -> None:
        pending = self._pending.get(conn)
        if pending is None:
            return
        try:
            data = conn.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn)
            return
        if not data:
            self._drop(conn)
            return
        pending.head += data
        end = pending.head.find(b"\r\n\r\n")
        if end < 0:
            end = pending.head.find(b"\n\n")
        if end < 0:
            if len(pending.head) > self.limits.max_head_bytes:
                self._drop(conn, (431, "HEADERS_TOO_LARGE", "request head too large"))
            return
        self._selector.unregister(conn)
        del self._pending[conn]
        self._pool.submit(self._answer, conn, pending.address, bytes(pending.head))

    def _expire(self) -> None:
        now = time.monotonic()
        for conn, pending in list(self._pending.items()):
            if now >= pending.deadline:  # API-4: idle or dribbling clients lose their socket
                self.timed_out += 1
                self._drop(conn, (408, "REQUEST_TIMEOUT", "the request did not arrive in time"))

    def _drop(self, conn: socket.socket, reply: tuple[int, str, str] | None = None) -> None:
        if self._pending.pop(conn, None) is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(conn)
        if reply is not None:
            self._refuse(conn, *reply)
        else:
            with contextlib.suppress(OSError):
                conn.close()
        with self._lock:
            self._open -= 1

    @staticmethod
    def _refuse(conn: socket.socket, status: int, code: str, message: str) -> None:
        with contextlib.suppress(OSError):
            conn.setblocking(False)
            conn.send(_raw_response(status, code, message))  # small: fits the socket buffer, never blocks
        with contextlib.suppress(OSError):
            conn.close()

    def _answer(self, conn: socket.socket, address: Any, head: bytes) -> None:
        try:
            conn.setblocking(True)
            _Handler(conn, address, self.api, head, time.monotonic() + self.limits.write_timeout_s)
        except (TimeoutError, OSError):
            pass  # the client left or read too slowly; nothing to answer
        except Exception:  # noqa: BLE001 - a worker must survive any request
            _log.exception("audit API: request failed")
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            with self._lock:
                self._open -= 1


def make_server(api: AuditApi, host: str, port: int, limits: ServerLimits | None = None) -> AuditHttpServer:
    return AuditHttpServer(api, host, port, limits)


def serve_in_thread(server: AuditHttpServer, poll_interval: float = 0.05) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, args=(poll_interval,), name="audit-http", daemon=True)
    thread.start()
    return thread
