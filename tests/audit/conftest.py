"""Fixtures of the audit tests: settings for each backend, event factories, raw database access.

The PostgreSQL backend runs when ``XBG_POSTGRES_URL`` is set (``.ci/run`` starts a server with
``scripts/postgres.sh``); otherwise those cases skip and say why. Each PostgreSQL test gets its own
schema, so tests never see each other's logs.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from xborder_gateway.audit import AuditEvent, EventType
from xborder_gateway.config import Settings

PG_URL = os.environ.get("XBG_POSTGRES_URL")
BASE_TIME = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)

BACKENDS = ["sqlite", pytest.param("postgres", marks=[pytest.mark.integration, pytest.mark.postgres])]


def make_settings(backend: str, home: Path, **extra: Any) -> Settings:
    if backend == "postgres":
        if not PG_URL:
            pytest.skip("XBG_POSTGRES_URL is unset: start a server with `scripts/postgres.sh DIR` and export its URL")
        return Settings(home=home, audit_url=PG_URL, audit_pg_schema=f"t_{uuid.uuid4().hex[:16]}", **extra)
    return Settings(home=home, audit_url=None, **extra)


@pytest.fixture(autouse=True)
def _key_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every home of these tests has a key passphrase: the checkpoint key is never written in the clear."""
    monkeypatch.setenv("XBG_KEY_PASSPHRASE", "audit tests passphrase")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(backend: str, tmp_path: Path) -> Settings:
    return make_settings(backend, tmp_path, audit_checkpoint_entries=10, audit_checkpoint_seconds=3600.0)


@pytest.fixture
def settings_factory(backend: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings of the current backend with other audit options (each call: a fresh home/schema)."""
    counter = iter(range(1000))

    def factory(**extra: Any) -> Settings:
        return make_settings(backend, tmp_path / f"home{next(counter)}", **extra)

    return factory


EventFactory = Callable[..., AuditEvent]


@pytest.fixture
def make_event() -> EventFactory:
    def factory(i: int, authority: str = "VN", **overrides: Any) -> AuditEvent:
        fields: dict[str, Any] = {
            "time": BASE_TIME + timedelta(seconds=i),
            "authority": authority,
            "process": "outbound",
            "event_type": [EventType.RECEIVED, EventType.VALIDATED, EventType.SEALED, EventType.SENT][i % 4],
            "message_id": f"msg-{i // 4:06d}",
            "business_key": f"3051{i // 4:08d}",
            "document_type": "IDA",
            "raw_sha256": f"{i:064x}",
            "kafka_topic": "vn.declarations.raw",
            "kafka_partition": i % 3,
            "kafka_offset": i,
        }
        fields.update(overrides)
        return AuditEvent(**fields)

    return factory


class RawDb:
    """Edits the log's database behind the application's back (what an insider with DB access can do)."""

    def __init__(self, settings: Settings, authority: str = "VN") -> None:
        self.settings = settings
        self.authority = authority
        self.pg = settings.audit_url is not None
        self.schema = f"{settings.audit_pg_schema}_{authority.lower()}"

    def _run(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        if self.pg:
            import psycopg

            assert self.settings.audit_url is not None
            with psycopg.connect(self.settings.audit_url, autocommit=True) as conn:
                for sql, params in statements:
                    conn.execute(sql.replace("{p}", self.schema + ".").replace("?", "%s"), params)
        else:
            conn = sqlite3.connect(self.settings.audit_db(self.authority), isolation_level=None)
            try:
                for sql, params in statements:
                    conn.execute(sql.replace("{p}", ""), params)
            finally:
                conn.close()

    def run(self, sql: str, *params: Any) -> None:
        self._run([(sql, params)])

    def drop_triggers(self) -> None:
        if self.pg:
            self._run([(f"ALTER TABLE {{p}}{t} DISABLE TRIGGER USER", ()) for t in
                       ("entries", "nodes", "checkpoints", "meta", "cosignatures")])
        else:
            tables = ("entries", "nodes", "checkpoints", "meta", "cosignatures")
            self._run([(f"DROP TRIGGER {t}_no_{op}", ()) for t in tables for op in ("update", "delete")])


@pytest.fixture
def raw_db(settings: Settings) -> RawDb:
    return RawDb(settings)
