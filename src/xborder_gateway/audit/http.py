"""Read-only HTTP API over one authority's audit log (``xborder audit serve``).

Stdlib ``ThreadingHTTPServer``; every route but ``/openapi.json`` needs ``Authorization: Bearer <token>``
of a token with the ``auditor`` role (API-1). Tokens are stored hashed (SHA-256) in
``<home>/audit/api-tokens.json``; ``xborder audit serve --add-token NAME`` makes one and prints it once.
Routing is a pure function (:meth:`AuditApi.handle`) so it is tested without sockets too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from xborder_gateway.audit.errors import AuditNotFoundError
from xborder_gateway.audit.events import EventType
from xborder_gateway.audit.log import AuditLog
from xborder_gateway.errors import AuditIntegrityError, GatewayError

__all__ = ["AUDITOR_ROLE", "AuditApi", "Response", "TokenStore", "make_server", "openapi", "serve_in_thread"]

_log = logging.getLogger(__name__)
AUDITOR_ROLE: Final = "auditor"
MAX_QUERY_CHARS: Final = 2048  # API-3: bound what we parse
JSON = "application/json"


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


class TokenStore:
    """Bearer tokens, kept as SHA-256 hashes with a name and a role."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        data = json.loads(self.path.read_text(encoding="utf-8"))
        tokens = data.get("tokens", []) if isinstance(data, dict) else []
        return [t for t in tokens if isinstance(t, dict)]

    def add(self, name: str, role: str = AUDITOR_ROLE) -> str:
        token = secrets.token_urlsafe(32)
        tokens = self._load()
        tokens.append({"name": name, "role": role, "sha256": hashlib.sha256(token.encode()).hexdigest()})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"tokens": tokens}, fh, indent=1)
        os.replace(tmp, self.path)
        return token

    def role_of(self, token: str) -> str | None:
        digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        role = None
        for entry in self._load():  # compare against every entry in constant time (API-2)
            if hmac.compare_digest(digest, str(entry.get("sha256", ""))):
                role = str(entry.get("role", ""))
        return role

    def __len__(self) -> int:
        return len(self._load())


def _int_param(query: dict[str, list[str]], name: str, *, required: bool = False) -> int | None:
    values = query.get(name)
    if not values:
        if required:
            raise ValueError(f"query parameter {name} is required")
        return None
    text = values[-1]
    if not text.isdigit() or len(text) > 19:
        raise ValueError(f"{name} must be a non-negative integer")
    return int(text)


def _str_param(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _time_param(query: dict[str, list[str]], name: str) -> datetime | None:
    text = _str_param(query, name)
    if text is None:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"{name} needs a timezone (e.g. 2026-11-25T00:00:00Z)")
    return value


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
    """The routes; ``handle`` maps a GET request to a :class:`Response`."""

    def __init__(self, log: AuditLog, tokens: TokenStore) -> None:
        self.log = log
        self.tokens = tokens

    def handle(  # noqa: PLR0911 - one early return per refusal, in the order they are checked
        self, method: str, target: str, authorization: str | None
    ) -> Response:
        if len(target) > MAX_QUERY_CHARS:
            return _error(414, "URI_TOO_LONG", "request target too long")
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        if method not in ("GET", "HEAD"):
            return _error(405, "METHOD_NOT_ALLOWED", "this API is read-only", headers=(("Allow", "GET"),))
        if path == "/openapi.json":
            return _json(200, openapi(self.log.authority))
        if path == "/console" or path.startswith("/console/"):
            return _console(parts.path)
        # API-1: every other route needs a bearer token with the auditor role
        if not authorization or not authorization.startswith("Bearer "):
            return _error(401, "UNAUTHENTICATED", "a bearer token is required",
                          headers=(("WWW-Authenticate", 'Bearer realm="xborder-audit"'),))
        role = self.tokens.role_of(authorization[len("Bearer "):].strip())
        if role is None:
            return _error(401, "UNAUTHENTICATED", "unknown token",
                          headers=(("WWW-Authenticate", 'Bearer realm="xborder-audit", error="invalid_token"'),))
        if role != AUDITOR_ROLE:
            return _error(403, "FORBIDDEN", f"role {role!r} may not read the audit log")
        query = parse_qs(parts.query, keep_blank_values=False, max_num_fields=20)
        try:
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
            "/v1/checkpoint": lambda: self._text(self._latest_note(), "no checkpoint yet"),
            "/v1/entries": lambda: self._search(q),
            "/v1/proof/inclusion": lambda: _json(200, log.inclusion_proof(
                _int_param(q, "index", required=True) or 0, _int_param(q, "size")).to_json()),
            "/v1/proof/consistency": lambda: _json(200, log.consistency_proof(
                _int_param(q, "old", required=True) or 0, _int_param(q, "new")).to_json()),
        }
        if path in route:
            return route[path]()
        if len(segments) == 3 and segments[:2] == ["v1", "entries"] and segments[2].isdigit():
            return _json(200, log.get(int(segments[2])).to_json())
        if len(segments) == 3 and segments[:2] == ["v1", "bundle"] and segments[2].isdigit():
            return _json(200, log.bundle(int(segments[2]), issue=False))
        return _error(404, "NO_SUCH_ROUTE", f"no route {path}", "see /openapi.json")

    def _latest_note(self) -> str | None:
        latest = self.log.latest_checkpoint()
        return latest.note if latest else None

    @staticmethod
    def _text(text: str | None, missing: str) -> Response:
        if text is None:
            return _error(404, "AUDIT_NOT_FOUND", missing)
        return Response(200, "text/plain; charset=utf-8", text.encode("utf-8"))

    def _search(self, q: dict[str, list[str]]) -> Response:
        event_type = _str_param(q, "type")
        if event_type is not None and event_type not in {t.value for t in EventType}:
            raise ValueError(f"unknown event type {event_type!r}")
        entries = self.log.search(
            message_id=_str_param(q, "message_id"), business_key=_str_param(q, "declaration"),
            event_type=event_type, since=_time_param(q, "since"), until=_time_param(q, "until"),
            after=_int_param(q, "after"), limit=_int_param(q, "limit") or 100)
        return _json(200, {"entries": [e.to_json() for e in entries],
                           "next_after": entries[-1].index if entries else None})


def openapi(authority: str) -> dict[str, Any]:
    """The OpenAPI 3.1 description of the API."""
    def op(summary: str, params: list[dict[str, Any]], content: str = JSON) -> dict[str, Any]:
        return {"get": {"summary": summary, "parameters": params, "security": [{"bearer": []}],
                        "responses": {"200": {"description": "OK", "content": {content: {}}},
                                      "401": {"description": "no or unknown bearer token"},
                                      "403": {"description": "token without the auditor role"},
                                      "404": {"description": "no such entry, size or checkpoint"}}}}

    def qp(name: str, typ: str = "string", required: bool = False, desc: str = "") -> dict[str, Any]:
        return {"name": name, "in": "query", "required": required, "schema": {"type": typ}, "description": desc}

    def pp(name: str) -> dict[str, Any]:
        return {"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}

    return {
        "openapi": "3.1.0",
        "info": {"title": f"xborder-gateway audit log ({authority})", "version": "1",
                 "description": "Read-only queries and RFC 9162 proofs over the tamper-evident exchange log. "
                                "Formats: docs/audit.md."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "token with the auditor role"}}},
        "paths": {
            "/v1/tree": op("current tree size and root hash", []),
            "/v1/key": op("the checkpoint verifier key (<name>+<hash>+<key>)", [], "text/plain"),
            "/v1/checkpoint": op("the latest signed checkpoint note, verbatim", [], "text/plain"),
            "/v1/entries": op("search entries (all filters AND-ed, log order)", [
                qp("message_id"), qp("declaration", desc="declaration number"),
                qp("type", desc="event type"), qp("since", desc="RFC 3339 time, inclusive"),
                qp("until", desc="RFC 3339 time, exclusive"), qp("after", "integer", desc="page: last index seen"),
                qp("limit", "integer", desc="max 1000")]),
            "/v1/entries/{index}": op("one entry", [pp("index")]),
            "/v1/proof/inclusion": op("inclusion proof", [qp("index", "integer", True), qp("size", "integer")]),
            "/v1/proof/consistency": op("consistency proof", [qp("old", "integer", True), qp("new", "integer")]),
            "/v1/bundle/{index}": op("offline proof bundle", [pp("index")]),
        },
    }


class _Handler(BaseHTTPRequestHandler):
    api: AuditApi
    server_version = "xborder-audit/1"

    def _serve(self) -> None:
        try:
            response = self.api.handle(self.command, self.path, self.headers.get("Authorization"))
        except Exception:  # noqa: BLE001 - an unexpected fault is logged here, never sent to the client
            _log.exception("audit API: %s %s failed", self.command, self.path.split("?")[0])
            response = _error(500, "INTERNAL", "internal error; see the server log")
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = _serve  # noqa: N815 - http.server's naming
    do_HEAD = _serve  # noqa: N815
    do_POST = _serve  # noqa: N815
    do_PUT = _serve  # noqa: N815
    do_DELETE = _serve  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log on stderr; the API serves read-only data


def make_server(api: AuditApi, host: str, port: int) -> ThreadingHTTPServer:
    handler = type("AuditHandler", (_Handler,), {"api": api})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve_in_thread(server: ThreadingHTTPServer, poll_interval: float = 0.05) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, args=(poll_interval,), name="audit-http", daemon=True)
    thread.start()
    return thread
