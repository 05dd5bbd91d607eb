"""What the three connectors share: header names, identities, keys, audit, metrics/health, logging."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from xborder_gateway.audit import AuditEvent, AuditLog, EventType
from xborder_gateway.config import Settings
from xborder_gateway.envelope import LocalAuthority, TrustStore, resolve_passphrase

__all__ = [
    "H_ATTEMPT",
    "H_BUSINESS_KEY",
    "H_DOC_TYPE",
    "H_KIND",
    "H_MESSAGE_ID",
    "H_PUBLISHED_MS",
    "H_REASONS",
    "H_RUN",
    "H_SOURCE",
    "H_TRUNCATED",
    "AuditSink",
    "Auditor",
    "Identity",
    "Ops",
    "event",
    "log_line",
    "now_ms",
    "safe_ident",
    "safe_reason",
]

# Record headers of the exchange (docs/exchange.md §Headers)
H_MESSAGE_ID = "xbg-message-id"
H_DOC_TYPE = "xbg-doc-type"
H_BUSINESS_KEY = "xbg-business-key"
H_PUBLISHED_MS = "xbg-published-ms"  # set by the publisher, carried end to end (latency)
H_RUN = "xbg-run"  # optional run id (demo, tests), carried end to end
H_KIND = "xbg-kind"  # receipts topic: receipt | business-response
H_ATTEMPT = "xbg-attempt"  # exchange topics: 1 = first send, n = (n-1)th resend
H_REASONS = "xbg-reasons"  # rejected / dead-letter topics: JSON reasons
H_SOURCE = "xbg-source"  # rejected topic: topic/partition@offset of the intake record
H_TRUNCATED = "xbg-truncated"  # rejected topic: original length when the raw bytes had to be cut to fit

log = logging.getLogger("xborder_gateway.connectors")

_IDENT_BAD = re.compile(r"[^A-Za-z0-9._:/+=@#-]")
_REASON_BAD = re.compile(r"[^A-Za-z0-9._:/+=@ -]")


def now_ms() -> int:
    return int(time.time() * 1000)


def safe_ident(value: str | None) -> str | None:
    """A value fit for an audit identifier field (printable ASCII, no spaces), or None."""
    if not value:
        return None
    cleaned = _IDENT_BAD.sub("_", value)[:128]
    return cleaned if cleaned[0].isalnum() else None


def safe_reason(value: str | None) -> str | None:
    if not value:
        return None
    cleaned = _REASON_BAD.sub("_", value)[:96]
    return cleaned if cleaned[0].isalnum() else None


def log_line(level: int, what: str, **fields: Any) -> None:
    """One structured log line: ``what key=value ...`` (message id first when present); nothing is
    formatted when ``level`` is not logged (the connectors write a DEBUG line per record)."""
    if not log.isEnabledFor(level):
        return
    parts = [what]
    mid = fields.pop("message_id", None)
    if mid is not None:
        parts.append(f"message_id={mid}")
    parts.extend(f"{k}={v}" for k, v in fields.items() if v is not None)
    log.log(level, " ".join(parts))


@dataclass(frozen=True)
class ConnectorOptions:
    """What every ``xborder run`` connector takes: its instance id, key passphrase file, metrics port."""

    instance: str = "0"
    passphrase_file: Path | None = None
    metrics_port: int | None = None


@dataclass(frozen=True)
class Identity:
    """Which instance of which connector this is; names its consumer group and transactional id."""

    connector: str
    instance: str
    prefix: str

    @property
    def group_id(self) -> str:
        return f"{self.prefix}.{self.connector}"

    @property
    def transactional_id(self) -> str:
        # Stable per instance: a restarted instance fences its predecessor and settles its transaction.
        return f"{self.prefix}.{self.connector}.{self.instance}"

    @property
    def client_id(self) -> str:
        return f"{self.prefix}-{self.connector}-{self.instance}"


def load_keys(settings: Settings, authority: str, passphrase_file: Path | None) -> tuple[LocalAuthority, TrustStore]:
    passphrase = resolve_passphrase(settings, passphrase_file)
    return LocalAuthority.load(settings, authority, passphrase), TrustStore.load(settings, authority)


def event(authority: str, process: str, event_type: EventType, **fields: Any) -> AuditEvent:
    """An audit event stamped now; identifier fields are sanitised to the log's alphabet."""
    for name in ("message_id", "business_key", "document_type"):
        if name in fields:
            fields[name] = safe_ident(fields[name])
    if "reason_code" in fields:
        fields["reason_code"] = safe_reason(fields["reason_code"])
    return AuditEvent(time=datetime.now(UTC), authority=authority, process=process,
                      event_type=event_type, **fields)


AuditSink = Callable[[Sequence[AuditEvent]], object]
"""Where a processor appends its batch's events inside its open state transaction (``Auditor.append``)."""


class Auditor:
    """Appends a batch's events durably (AUD-5: before the offsets of that batch are committed).

    The endpoint and the receipt tracker call :meth:`append` INSIDE their open SQLite state transaction,
    right before it commits (ADR 0400): a crash can repeat a batch's events, never lose them. Lock order
    is therefore state database -> audit database, and it must stay one-way: no code may wait for a state
    database's write lock while it holds an audit log's write transaction (``AuditLog.append`` touches
    only the audit database; the resend task's claims append inside their state transaction too, in the
    same order).
    """

    def __init__(self, settings: Settings, authority: str) -> None:
        self.log = AuditLog.open(settings, authority)

    def append(self, events: Sequence[AuditEvent]) -> None:
        """Durable when it returns (AUD-5); raises (``TransportError`` when retriable) if not written."""
        if events:
            self.log.append(list(events))

    def close(self) -> None:
        self.log.close()


class Ops:
    """Prometheus metrics and a health endpoint on ``--metrics-port`` (``/metrics``, ``/healthz``)."""

    def __init__(self, connector: str, port: int | None, health: Callable[[], dict[str, Any]]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.records = Counter("xbg_records_total", "records handled", ["connector", "outcome"],
                               registry=self.registry)
        self.batches = Counter("xbg_batches_total", "transactions committed", ["connector"], registry=self.registry)
        self.pending = Gauge("xbg_pending_messages", "messages awaiting a receipt", registry=self.registry)
        self.latency = Histogram("xbg_publish_to_receipt_seconds", "publish -> receipt latency",
                                 buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
                                 registry=self.registry)
        self.connector = connector
        self._health = health
        self._server: ThreadingHTTPServer | None = None
        if port is not None:
            self._serve(port)

    def count(self, outcome: str, n: int = 1) -> None:
        if n:
            self.records.labels(self.connector, outcome).inc(n)

    def _serve(self, port: int) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        ops = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/metrics"):
                    body, ctype, code = generate_latest(ops.registry), CONTENT_TYPE_LATEST, 200
                elif self.path.startswith("/healthz"):
                    status = ops._health()
                    code = 200 if status.get("ok") else 503
                    body, ctype = json.dumps(status).encode(), "application/json"
                else:
                    body, ctype, code = b"not found\n", "text/plain", 404
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self._server.serve_forever, name="xbg-metrics", daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
