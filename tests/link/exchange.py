"""The exchange's connectors as real processes on two real sites (tests/link/test_faults.py).

VN's home runs ``outbound`` and ``receipts`` against VN's broker, CN's home runs ``nanning`` against CN's;
only the link (the two MirrorMakers of the session fixture) carries envelopes and receipts between them. A
test gets its own run id and consumer-group prefix; topics are the allow-listed defaults the link carries.
Counting helpers read the replicated topic itself (records per message id and attempt, read_committed at
the target) and both audit logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from xborder_gateway.audit import AuditLog
from xborder_gateway.exchange import RunSummary, summarize_run

from .harness import PASSPHRASE, Site, TwoSites

H_MESSAGE_ID, H_ATTEMPT, H_RUN = "xbg-message-id", "xbg-attempt", "xbg-run"


@dataclass
class Proc:
    site: str
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    fh: IO[bytes]


def _passphrase_file(site: Site) -> Path:
    pf = site.settings.home / "passphrase"
    if not pf.exists():
        pf.write_bytes(PASSPHRASE + b"\n")
        pf.chmod(0o600)
    return pf


@dataclass
class SiteExchange:
    sites: TwoSites
    env: dict[str, str]
    run: str = field(default_factory=lambda: f"run-{uuid.uuid4().hex[:10]}")
    procs: dict[str, Proc] = field(default_factory=dict)
    starts: Counter[str] = field(default_factory=Counter)

    @classmethod
    def create(cls, sites: TwoSites, **overrides: str) -> SiteExchange:
        prefix = f"x{uuid.uuid4().hex[:8]}"
        env = {"XBG_EXCHANGE_GROUP_PREFIX": prefix, "XBG_EXCHANGE_RECEIPT_TIMEOUT_S": "1",
               "XBG_EXCHANGE_BACKOFF_INITIAL_S": "0.3", "XBG_EXCHANGE_BACKOFF_MAX_S": "1",
               "XBG_EXCHANGE_BACKOFF_JITTER_S": "0", "XBG_EXCHANGE_RESEND_MAX_ATTEMPTS": "3",
               "XBG_EXCHANGE_POLL_MS": "100", **overrides}
        return cls(sites, env)

    def site_env(self, site: Site) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("XBG_")}  # never the session broker's
        for k, v in site._overrides.items():
            if k != "home":
                env[f"XBG_{k.upper()}"] = str(v)
        env["XBG_KEY_PASSPHRASE_FILE"] = str(_passphrase_file(site))
        return {**env, **self.env}

    def start(self, site_name: str, name: str, *extra: str) -> Proc:
        site = self.sites.site(site_name)
        key = f"{site_name}.{name}"
        log = site.settings.home / f"{self.run}.{name}.{self.starts[key]}.log"
        self.starts[key] += 1
        fh = log.open("wb")
        cmd = [sys.executable, "-m", "xborder_gateway._cli", "-v", "--home", str(site.settings.home), "run", name,
               "--passphrase-file", str(_passphrase_file(site)), *extra]
        proc = Proc(site_name, name, subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                                      env=self.site_env(site)), log, fh)
        self.procs[key] = proc
        return proc

    def stop(self, site_name: str, name: str, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        proc = self.procs.pop(f"{site_name}.{name}")
        if proc.popen.poll() is None:
            proc.popen.send_signal(sig)
        try:
            code = proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            code = proc.popen.wait()
        proc.fh.close()
        return code

    def stop_all(self) -> None:
        for key in list(self.procs):
            site_name, name = key.split(".", 1)
            self.stop(site_name, name)

    def logs(self) -> str:
        out = []
        for site in (self.sites.vn, self.sites.cn):
            for log in sorted(site.settings.home.glob(f"{self.run}.*.log")):
                text = log.read_text(errors="replace").splitlines()
                out.append(f"--- {site.name} {log.name} (last 20 lines)\n" + "\n".join(text[-20:]))
        return "\n".join(out)

    # --- documents in, summary out ---------------------------------------------------------------------
    async def publish(self, count: int, seed: int) -> list[Any]:
        from xborder_gateway.connectors import publish_documents
        from xborder_gateway.samples import generate_mix

        samples = list(generate_mix(count, seed))
        await publish_documents(self.sites.vn.settings, [(x.business_key, x.xml) for x in samples], run=self.run)
        return samples

    def summary(self) -> RunSummary | None:
        vn, cn = self.sites.vn.settings.state_db("VN"), self.sites.cn.settings.state_db("CN")
        if not vn.exists():
            return None
        with contextlib.closing(sqlite3.connect(vn, timeout=10)) as v:
            c = sqlite3.connect(cn, timeout=10) if cn.exists() else None
            try:
                return summarize_run(v, self.run, c)
            except sqlite3.OperationalError:
                return None
            finally:
                if c is not None:
                    c.close()

    def wait_for(self, done: Callable[[RunSummary], bool], timeout: float, what: str) -> RunSummary:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.summary()
            if last is not None and done(last):
                return last
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; last summary: {last}\n{self.logs()}")

    def message_ids(self) -> dict[str, str]:
        """message id -> business key of every envelope the VN tracker tracks for this run."""
        with contextlib.closing(sqlite3.connect(self.sites.vn.settings.state_db("VN"), timeout=10)) as v:
            return {str(m): str(k) for m, k in v.execute(
                "SELECT message_id, business_key FROM xbg_messages WHERE run = ?", (self.run,))}

    def cn_processed_keys(self) -> Counter[str]:
        with contextlib.closing(sqlite3.connect(self.sites.cn.settings.state_db("CN"), timeout=10)) as c:
            return Counter(str(k) for (k,) in c.execute("SELECT business_key FROM cn_processed WHERE run = ?",
                                                        (self.run,)))

    def audit_ids(self, site_name: str, event_type: str, ids: set[str]) -> Counter[str]:
        """How often each of ``ids`` appears with ``event_type`` in the site's own audit log."""
        settings = self.sites.site(site_name).settings
        counts: Counter[str] = Counter()
        log = AuditLog.open(settings, site_name, read_only=True)
        try:
            after = None
            while True:
                page = log.search(event_type=event_type, after=after, limit=1000)
                if not page:
                    break
                for entry in page:
                    mid = str(entry.event.message_id)
                    if mid in ids:
                        counts[mid] += 1
                after = page[-1].index
        finally:
            log.close()
        return counts


async def count_envelopes(bootstrap: str, topics: list[str], run: str, *, isolation: str = "read_committed",
                          idle_s: float = 3.0) -> Counter[tuple[str, str]]:
    """Records per (message id, attempt) of ``run`` on ``topics`` at ``bootstrap``, read from the start until
    nothing new came for ``idle_s`` -- the replicated topic itself, not the endpoint's de-duplicated view."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        meta = [m for m in await admin.describe_topics(topics) if m.get("error_code", 0) == 0]
    finally:
        await admin.close()
    parts = [TopicPartition(m["topic"], p["partition"]) for m in meta for p in m["partitions"]]
    counts: Counter[tuple[str, str]] = Counter()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation, enable_auto_commit=False,
                                group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle_s:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for rec in records:
                    quiet_since = time.monotonic()
                    headers = {k: v.decode(errors="replace") for k, v in rec.headers or ()}
                    if headers.get(H_RUN) == run:
                        counts[(headers.get(H_MESSAGE_ID, "?"), headers.get(H_ATTEMPT, "1"))] += 1
    finally:
        await consumer.stop()
    return counts


def run_sync(coro: Any) -> Any:
    return asyncio.run(coro)
