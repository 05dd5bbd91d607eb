"""Runs the exchange's connectors as real processes (``python -m xborder_gateway._cli run …``) on a real
broker, with topics, consumer groups and transactional ids unique to one test.

Direction-aware (issue 10 item 6): ``direction="VN-CN"`` (default) runs VN's outbound and receipts and CN's
endpoint; ``"CN-VN"`` runs CN's outbound and receipts and VN's endpoint under the same connector names
(``outbound``, ``receipts``, ``nanning`` = the receiving endpoint), so one scenario body runs both ways.
Count through ``ex.sender`` / ``ex.receiver`` audit logs and stores."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from xborder_gateway import avro
from xborder_gateway.audit import AuditLog
from xborder_gateway.connectors._common import (
    H_ATTEMPT,
    H_BUSINESS_KEY,
    H_DOC_TYPE,
    H_MESSAGE_ID,
    H_PUBLISHED_MS,
    H_RUN,
)
from xborder_gateway.envelope import seal
from xborder_gateway.exchange import RunSummary, summarize_run
from xborder_gateway.transport import ensure_topics, make_producer

from .conftest import Home, make_home

RUN = "testrun"
DIRECTIONS = ("VN-CN", "CN-VN")


@dataclass(frozen=True)
class CnSample:
    """One CN intake frame the harness published (the fields the scenarios read of a VN sample)."""

    business_key: str
    frame: bytes
    broken_rule: str | None = None
    expected_code: str | None = None


def cn_samples(count: int, seed: int) -> list[CnSample]:
    """``count`` CN intake frames: export declarations and road manifests of ``count // 2`` trucks, about one
    in 20 cut short (rejected at CN's intake with the code the intake gives it)."""
    from xborder_gateway.connectors.outbound import _reasons
    from xborder_gateway.errors import GatewayError
    from xborder_gateway.intake import take_cn_avro
    from xborder_gateway.samples import generate_cn_exports

    out: list[CnSample] = []
    for c in generate_cn_exports((count + 1) // 2, seed):
        for key, frame in ((str(c.export["declaration_number"]), c.export_frame()),
                           (str(c.manifest["manifest_number"]), c.manifest_frame())):
            if len(out) % 20 == 19:
                cut = frame[: len(frame) // 2]
                try:
                    take_cn_avro(cut)
                except GatewayError as exc:
                    out.append(CnSample(key, cut, "truncated", str(_reasons(exc)["code"])))
                    continue
            out.append(CnSample(key, frame))
    return out[:count]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    fh: IO[bytes]


@dataclass
class Exchange:
    home: Home
    bootstrap: str
    prefix: str
    env: dict[str, str]
    procs: dict[str, Proc] = field(default_factory=dict)
    restarts: Counter[str] = field(default_factory=Counter)
    direction: str = "VN-CN"

    @property
    def sender(self) -> str:
        return self.direction.split("-")[0]

    @property
    def receiver(self) -> str:
        return self.direction.split("-")[1]

    @property
    def view(self) -> Any:
        """The settings as the sender's roles see them (its intake, rejected, exchange and receipts topics)."""
        return self.home.settings.for_role(self.sender, self.sender)

    @classmethod
    def create(cls, path: Path, bootstrap: str, prefix: str, direction: str = "VN-CN", **overrides: str) -> Exchange:
        topics = {
            "XBG_TOPIC_INTAKE": f"{prefix}.raw", "XBG_TOPIC_REJECTED": f"{prefix}.rejected",
            "XBG_TOPIC_EXCHANGE": f"{prefix}.exchange", "XBG_TOPIC_EXCHANGE_PRIORITY": f"{prefix}.exchange.priority",
            "XBG_TOPIC_RECEIPTS": f"{prefix}.receipts", "XBG_TOPIC_DEAD_LETTER": f"{prefix}.dead-letter",
            "XBG_TOPIC_STATUS": f"{prefix}.status",
            # the CN -> VN direction and CN's site topics (issue 10 item 1), per test too
            "XBG_TOPIC_CN_VN_EXCHANGE": f"{prefix}.cn-vn.exchange",
            "XBG_TOPIC_CN_VN_EXCHANGE_PRIORITY": f"{prefix}.cn-vn.exchange.priority",
            "XBG_TOPIC_CN_VN_RECEIPTS": f"{prefix}.vn-cn.receipts", "XBG_TOPIC_CN_INTAKE": f"{prefix}.cn.raw",
            "XBG_TOPIC_CN_REJECTED": f"{prefix}.cn.rejected", "XBG_TOPIC_CN_STATUS": f"{prefix}.cn.status",
            "XBG_TOPIC_CN_DEAD_LETTER": f"{prefix}.cn.dead-letter",
            # VN's mirror checks answer an export without its IDA after 1 s (no IDAs in these scenarios)
            "XBG_MIRROR_IMPORT_TIMEOUT_S": "1", "XBG_MIRROR_RECHECK_S": "0.5",
        }
        env = {**topics, "XBG_KAFKA_BOOTSTRAP": bootstrap, "XBG_EXCHANGE_GROUP_PREFIX": prefix,
               "XBG_EXCHANGE_RECEIPT_TIMEOUT_S": "2", "XBG_EXCHANGE_BACKOFF_INITIAL_S": "0.5",
               "XBG_EXCHANGE_BACKOFF_MAX_S": "2", "XBG_EXCHANGE_BACKOFF_JITTER_S": "0.2",
               "XBG_EXCHANGE_RESEND_MAX_ATTEMPTS": "30", "XBG_EXCHANGE_POLL_MS": "100", **overrides}
        kwargs = {k.removeprefix("XBG_").lower(): v for k, v in env.items()}
        home = make_home(path, **kwargs)
        return cls(home, bootstrap, prefix, env, direction=direction)

    @property
    def settings(self) -> Any:
        return self.home.settings

    def start(self, name: str, *extra: str, instance: str = "0") -> Proc:
        key = f"{name}.{instance}"
        log = self.home.path / f"{key}.{self.restarts[key]}.log"
        self.restarts[key] += 1
        fh = log.open("wb")
        role: list[str] = [name]
        if self.direction != "VN-CN":  # the same scenario the other way: the roles of the other authorities
            role = {"outbound": ["outbound", "--authority", self.sender],
                    "receipts": ["receipts", "--authority", self.sender],
                    "nanning": ["inbound", "--authority", self.receiver, "--allow-fault-injection"]}[name]
        cmd = [sys.executable, "-m", "xborder_gateway._cli", "-v", "--home", str(self.home.path), "run", *role,
               "--passphrase-file", str(self.home.passphrase_file), "--instance", instance, *extra]
        env = {**os.environ, **self.env}
        env.pop("XBG_CONFIG", None)
        proc = Proc(name, subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env), log, fh)
        self.procs[key] = proc
        return proc

    def stop(self, name: str, instance: str = "0", sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        proc = self.procs.pop(f"{name}.{instance}")
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
            name, instance = key.split(".", 1)
            self.stop(name, instance)

    def logs(self) -> str:
        out = []
        for log in sorted(self.home.path.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()
            out.append(f"--- {log.name} (last 25 lines)\n" + "\n".join(text[-25:]))
        return "\n".join(out)

    def summary(self) -> RunSummary | None:
        vn, cn = self.settings.state_db(self.sender), self.settings.state_db(self.receiver)
        if not vn.exists():
            return None
        with contextlib.closing(sqlite3.connect(vn, timeout=10)) as v:
            c = sqlite3.connect(cn, timeout=10) if cn.exists() else None
            try:
                return summarize_run(v, RUN, c)
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

    def settled(self, quiet_s: float = 2.5, timeout: float = 30) -> RunSummary:
        """The summary once nothing has changed for ``quiet_s`` (late duplicates and resends have landed)."""
        deadline = time.monotonic() + timeout
        last = self.summary()
        still_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.summary()
            if now != last:
                last, still_since = now, time.monotonic()
            elif time.monotonic() - still_since >= quiet_s:
                break
        assert last is not None
        return last

    # --- audit logs (both sides) ----------------------------------------------------------------------
    def audit_ids(self, authority: str, event_type: str) -> Counter[str]:
        """How many times each message id appears with ``event_type`` in ``authority``'s audit log."""
        counts: Counter[str] = Counter()
        log = AuditLog.open(self.settings, authority, read_only=True)
        try:
            after = None
            while True:
                page = log.search(event_type=event_type, after=after, limit=1000)
                if not page:
                    break
                for entry in page:
                    counts[str(entry.event.message_id)] += 1
                after = page[-1].index
        finally:
            log.close()
        return counts

    async def publish_mix(self, count: int, seed: int) -> list[Any]:
        """Publish ``generate_mix(count, seed)`` to the intake topic under the test's run id; returns the samples.
        CN -> VN: :func:`cn_samples` (framed Avro) to CN's intake."""
        from xborder_gateway.connectors import publish_documents
        from xborder_gateway.samples import generate_mix

        if self.sender == "CN":
            cn = cn_samples(count, seed)
            await publish_documents(self.view, [(x.business_key, x.frame) for x in cn], run=RUN)
            return cn
        samples = list(generate_mix(count, seed))
        await publish_documents(self.settings, [(x.business_key, x.xml) for x in samples], run=RUN)
        return samples

    def cn_processed_keys(self) -> Counter[str]:
        """How many times the (receiving) endpoint processed each business key (its own store)."""
        with contextlib.closing(sqlite3.connect(self.settings.state_db(self.receiver), timeout=10)) as c:
            return Counter(str(k) for (k,) in c.execute("SELECT business_key FROM cn_processed WHERE run = ?", (RUN,)))

    # --- envelopes straight onto the exchange topic (as the outbound connector would commit them) ----
    async def inject(self, n: int, *, perishable_every: int = 0) -> list[str]:
        s = self.view
        await ensure_topics(self.bootstrap, [s.topic_exchange, s.topic_exchange_priority, s.topic_receipts,
                                             s.topic_rejected, s.topic_dead_letter, s.topic_intake], 3)
        me, trust = (self.home.vn, self.home.vn_trust) if self.sender == "VN" else (self.home.cn, self.home.cn_trust)
        doc_type = "IDA" if self.sender == "VN" else "CN_MANIFEST"
        producer = make_producer(self.bootstrap)
        await producer.start()
        ids = []
        try:
            futures = []
            for i in range(n):
                key = f"{300000000000 + i}"
                payload = avro.encode("BusinessResponse", {
                    "message_id": "00000000-0000-0000-0000-000000000000", "business_key": key,
                    "document_type": "IDA", "status": "ACCEPTED", "reasons": [], "responded_at": datetime.now(UTC)})
                env = seal(payload, sender=me, recipient=self.receiver, trust=trust,
                           document_type=doc_type, schema_fingerprint=payload[2:10])
                mid = str(env.message_id)
                ids.append(mid)
                topic = s.topic_exchange_priority if perishable_every and i % perishable_every == 0 \
                    else s.topic_exchange
                headers = [(H_MESSAGE_ID, mid.encode()), (H_DOC_TYPE, doc_type.encode()),
                           (H_BUSINESS_KEY, key.encode()),
                           (H_RUN, RUN.encode()), (H_PUBLISHED_MS, str(int(time.time() * 1000)).encode()),
                           (H_ATTEMPT, b"1")]
                futures.append(await producer.send(topic, key=mid.encode(), value=env.data, headers=headers))
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        return ids


def new_exchange(tmp_path: Path, bootstrap: str, prefix: str, direction: str = "VN-CN", **overrides: str
                 ) -> Exchange:
    return Exchange.create(tmp_path / "home", bootstrap, prefix, direction, **overrides)


