"""Helpers of the link tests: two real sites (brokers with link listeners, MirrorMakers), produce and count.

One session-scoped fixture (``two_sites``) serves every link test: starting two brokers and two
MirrorMakers costs about a minute on a 2-core machine, so the non-destructive tests share it, and the
fault tests (tests/link/test_link_faults.py) restore what they break before they return.

Ports: ``XBG_TEST_LINK_PORT_BASE`` (10 consecutive ports from it: VN broker/controller/link/REST, then CN's
at +5), else free ports. Homes under a pytest temporary directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xborder_gateway.config import Settings, load_settings

PASSPHRASE = b"link-test-passphrase"
# the site's own topics that must never cross (intake, rejected, status, dead letters)
LOCAL_ONLY = {
    "VN": ["vn.declarations.raw", "vn.declarations.rejected", "vn.declarations.status", "vn.exchange.dead-letter"],
    "CN": ["cn.declarations.raw", "cn.declarations.rejected", "cn.declarations.status", "cn.exchange.dead-letter"],
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ports() -> dict[str, tuple[int, int, int, int]]:
    base = os.environ.get("XBG_TEST_LINK_PORT_BASE")
    if base:
        b = int(base)
        return {"VN": (b, b + 1, b + 2, b + 3), "CN": (b + 5, b + 6, b + 7, b + 8)}
    return {site: (_free_port(), _free_port(), _free_port(), _free_port()) for site in ("VN", "CN")}


@dataclass
class Site:
    name: str
    settings: Settings

    @property
    def bootstrap(self) -> str:
        return self.settings.bootstrap_local

    @property
    def link_address(self) -> str:
        return f"127.0.0.1:{self.settings.kafka_link_port}"

    def with_settings(self, **overrides: Any) -> Settings:
        return load_settings(**{**self._overrides, **overrides})

    _overrides: dict[str, Any]


@dataclass
class TwoSites:
    vn: Site
    cn: Site
    root: Path

    def site(self, name: str) -> Site:
        return self.vn if name == "VN" else self.cn

    def mirror(self, name: str, **overrides: Any) -> Any:
        from xborder_gateway.link import LinkMirror

        site = self.site(name)
        return LinkMirror(site.with_settings(**overrides) if overrides else site.settings)


def _make_site(root: Path, name: str, ports: dict[str, tuple[int, int, int, int]]) -> Site:
    other = "CN" if name == "VN" else "VN"
    p, o = ports[name], ports[other]
    overrides: dict[str, Any] = {
        "home": root / name.lower(), "site_authority": name, "kafka_port": p[0], "kafka_controller_port": p[1],
        "kafka_link_port": p[2], "link_rest_port": p[3], "link_remote_bootstrap": f"127.0.0.1:{o[2]}",
        "kafka_heap": "384m", "link_heap": "320m",
        # each site's clients (MirrorMaker's target included) talk to the site's own broker, never to the
        # session broker scripts/test.sh exports as XBG_KAFKA_BOOTSTRAP
        "kafka_bootstrap": f"127.0.0.1:{p[0]}",
    }
    return Site(name, load_settings(**overrides), overrides)


async def create_topics(bootstrap: str, topics: list[str], partitions: int = 3) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(t, partitions, 1) for t in topics if t not in existing]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
    finally:
        await admin.close()


async def list_topics(bootstrap: str) -> set[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, ids: list[str], *, batch: int = 100, abort: bool = False,
                  txn_id: str | None = None, pause_s: float = 0.0) -> None:
    """Produce one record per id (value = id), transactionally, ``batch`` per transaction."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id or f"t-{uuid.uuid4().hex}",
                                enable_idempotence=True)
    await producer.start()
    try:
        for i in range(0, len(ids), batch):
            await producer.begin_transaction()
            for mid in ids[i:i + batch]:
                await producer.send(topic, mid.encode(), key=mid.encode(), headers=[("message_id", mid.encode())])
            if abort:
                await producer.abort_transaction()
            else:
                await producer.commit_transaction()
            if pause_s:
                await asyncio.sleep(pause_s)
    finally:
        await producer.stop()


async def count_ids(bootstrap: str, topic: str, prefix: str, *, expect: int, wait_s: float = 90.0,
                    settle: float = 3.0, isolation: str = "read_committed") -> Counter[str]:
    """Records per id (ids starting with ``prefix``) in ``topic``, read from the start until ``expect``
    distinct ids were seen (or ``wait_s``), then ``settle`` seconds more to catch late duplicates."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    deadline = time.monotonic() + wait_s
    parts: list[int] = []
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        while time.monotonic() < deadline:
            meta = [m for m in await admin.describe_topics([topic]) if m.get("error_code", 0) == 0]
            if meta:
                parts = sorted(p["partition"] for p in meta[0]["partitions"])
                break
            await asyncio.sleep(0.5)
    finally:
        await admin.close()
    counts: Counter[str] = Counter()
    if not parts:
        return counts
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation, enable_auto_commit=False,
                                group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in parts])
        settle_until: float | None = None
        while True:
            now = time.monotonic()
            if settle_until is None and (len(counts) >= expect or now >= deadline):
                settle_until = now + settle
            if settle_until is not None and now >= settle_until:
                break
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for rec in records:
                    # errors="replace": the exchange tests leave binary envelopes on the same topics
                    mid = (rec.value or b"").decode(errors="replace")
                    if mid.startswith(prefix):
                        counts[mid] += 1
    finally:
        await consumer.stop()
    return counts


