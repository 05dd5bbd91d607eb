"""The exchange's scenarios, written once (issue 10 item 6): each is an ``async def scenario(bench)`` body that
runs unchanged on the in-memory Kafka (``memory://…``, ``test_scenarios_memory.py``, unit suite) and on the
real broker (``test_scenarios_kafka.py``, integration suite).

A :class:`Bench` runs the three roles -- outbound, the receiving endpoint (inbound) and the receipt tracker --
**in-process**: each is an asyncio task running :func:`run_connector` with the role's own spec, on the given
bootstrap address, in one home holding both authorities' keys. Outcomes are counted through both
authorities' audit logs and the receiver's store (:meth:`Bench.check_outcome`): every published document
ends in exactly one outcome (rejected at intake, or delivered and acknowledged, or dead-lettered), and no
document is applied twice at the receiver.

What "in-process" changes against the subprocess tests (``test_exchange_e2e.py``): a crash is an exception
raised where ``--crash-after`` would ``os._exit`` (after the batch's audit append and state commit, before its
Kafka transaction begins -- the same window), and the crashed role's clients are then closed instead of
abandoned, so its consumer leaves its group at once rather than after a session timeout. The state left
behind is the one a real crash leaves; ``kill -9`` of a real process stays in the subprocess tests.

Faults only the memory broker can inject (a commit failing before or after it took effect, fencing, a forced
rebalance) are behind :meth:`Bench.memory`; scenarios needing them run on memory only.

The direction is a parameter (:class:`Direction`, default VN -> CN): every count names the sending and the
receiving authority instead of VN and CN, so the CN -> VN roles can join the parametrisation once they exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xborder_gateway.audit import AuditLog
from xborder_gateway.config import Settings, load_settings
from xborder_gateway.connectors import Faults, NanningOptions, ReceiptsOptions, run_connector
from xborder_gateway.connectors._common import ConnectorOptions
from xborder_gateway.connectors._runtime import ConnectorSpec, Processor, ProcessResult, Runtime
from xborder_gateway.exchange import RunSummary, summarize_run
from xborder_gateway.transport import MemoryBroker, is_memory, memory_broker

from .conftest import make_home

__all__ = ["DIRECTIONS", "SCENARIOS", "Bench", "Direction", "SimulatedCrash", "bench_settings"]

RUN = "scenario"
ROLES = ("outbound", "inbound", "receipts")


class SimulatedCrash(BaseException):
    """Raised where ``--crash-after`` would ``os._exit`` (a BaseException, so nothing on the way swallows it)."""


@dataclass(frozen=True)
class Direction:
    """Who sends and who receives. Only VN -> CN has connector roles today (issue 10 item 1 wires CN -> VN);
    :meth:`specs` is the one place that maps a direction to its role specs and option types."""

    sender: str = "VN"
    receiver: str = "CN"

    @property
    def name(self) -> str:
        return f"{self.sender}-{self.receiver}"

    def specs(self) -> dict[str, ConnectorSpec]:
        from xborder_gateway.connectors import nanning_spec, outbound_spec, receipts_spec

        if (self.sender, self.receiver) != ("VN", "CN"):
            raise NotImplementedError(f"no connector roles for {self.name} yet")
        return {"outbound": outbound_spec(), "inbound": nanning_spec(), "receipts": receipts_spec()}

    def samples(self, count: int, seed: int) -> list[Any]:
        """Documents the sender's customs system publishes (the demo's generator)."""
        from xborder_gateway.samples import generate_mix

        if self.sender != "VN":
            raise NotImplementedError(f"no sample publisher for {self.name} yet")
        return list(generate_mix(count, seed))


#: the directions every scenario runs in (the lead adds Direction("CN", "VN") once its roles are merged)
DIRECTIONS = [Direction("VN", "CN")]


def bench_settings(bootstrap: str, prefix: str) -> dict[str, object]:
    """Settings of a bench: topics, groups and transactional ids unique to it; short timeouts so resends
    happen within a test (shorter on memory, where nothing waits on a network)."""
    memory = is_memory(bootstrap)
    return {
        "kafka_bootstrap": bootstrap, "exchange_group_prefix": prefix,
        "topic_intake": f"{prefix}.raw", "topic_rejected": f"{prefix}.rejected",
        "topic_exchange": f"{prefix}.exchange", "topic_exchange_priority": f"{prefix}.exchange.priority",
        "topic_receipts": f"{prefix}.receipts", "topic_dead_letter": f"{prefix}.dead-letter",
        "topic_status": f"{prefix}.status",
        "exchange_receipt_timeout_s": 0.8 if memory else 2.0,
        "exchange_backoff_initial_s": 0.2 if memory else 0.5,
        "exchange_backoff_max_s": 0.5 if memory else 2.0,
        "exchange_backoff_jitter_s": 0.1 if memory else 0.2,
        "exchange_resend_max_attempts": 30,
        "exchange_poll_ms": 50 if memory else 100,
        # small batches: the three roles share one event loop, and a long synchronous batch would starve
        # the others' consumer heartbeats (on a real broker: session timeouts and rebalances mid-run)
        "exchange_batch_max": 50,
    }


@dataclass
class BenchHome:
    """A home holding both authorities' keys, trusting each other."""

    path: Path
    settings: Settings
    passphrase_file: Path


_TEMPLATE: tempfile.TemporaryDirectory[str] | None = None


def _template() -> Path:
    """Both authorities' keys, trust and audit checkpoint keys, made once per test process: every key is
    scrypt-encrypted, and making them for each bench would cost more than most scenarios' traffic."""
    global _TEMPLATE  # noqa: PLW0603 - one template per process
    if _TEMPLATE is None:
        tmp = tempfile.TemporaryDirectory(prefix="xbg-bench-template-")
        home = make_home(Path(tmp.name) / "home")
        for authority in ("VN", "CN"):  # creates each log's checkpoint key
            AuditLog.open(home.settings, authority).close()
        _TEMPLATE = tmp
    return Path(_TEMPLATE.name) / "home"


def bench_home(path: Path, **overrides: object) -> BenchHome:
    """A fresh home at ``path`` with the template's keys (own audit logs and state, nothing shared)."""
    shutil.copytree(_template(), path)
    for leftover in ("state", "audit/vn.sqlite", "audit/cn.sqlite"):
        target = path / leftover
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    pf = path / "passphrase"
    return BenchHome(path, load_settings(home=path, key_passphrase_file=pf, **overrides), pf)


@dataclass
class _Running:
    task: asyncio.Task[int]
    runtime: asyncio.Future[Runtime]
    faults: Faults


@dataclass
class Bench:
    """One exchange run in one process: a home with both authorities, a bootstrap, the roles as tasks."""

    home: BenchHome
    bootstrap: str
    direction: Direction = field(default_factory=Direction)
    running: dict[str, _Running] = field(default_factory=dict)
    #: how each role's tasks ended, in order (exit code, or the exception's class name)
    ended: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def create(cls, path: Path, bootstrap: str, direction: Direction | None = None, *,
               prefix: str | None = None, **overrides: object) -> Bench:
        prefix = prefix or f"sc.{uuid.uuid4().hex[:10]}"
        home = bench_home(path, **{**bench_settings(bootstrap, prefix), **overrides})
        return cls(home, bootstrap, direction or Direction())

    @property
    def settings(self) -> Settings:
        return self.home.settings

    @property
    def is_memory(self) -> bool:
        return is_memory(self.bootstrap)

    @property
    def docs(self) -> int:
        """How many documents a scenario publishes: fewer on memory (the unit suite), more on a broker."""
        return 40 if self.is_memory else 120

    def tune(self, **overrides: object) -> None:
        """Change settings before any role starts (e.g. a scenario's own receipt timeout)."""
        if self.running:
            raise RuntimeError("tune the bench before starting its roles")
        self.home.settings = self.settings.model_copy(update=overrides)

    def memory(self) -> MemoryBroker:
        """The memory broker, for the faults only it can inject."""
        if not self.is_memory:
            raise RuntimeError("this scenario injects faults only the memory broker has")
        return memory_broker(self.bootstrap)

    def identity(self, role: str, instance: str = "0") -> tuple[str, str]:
        """(consumer group, transactional id) of a role's instance."""
        name = self.direction.specs()[role].name
        prefix = self.settings.exchange_group_prefix
        return f"{prefix}.{name}", f"{prefix}.{name}.{instance}"

    # --- roles -----------------------------------------------------------------------------------------
    def _options(self, role: str, instance: str, faults: Faults) -> ConnectorOptions:
        common: dict[str, Any] = {"instance": instance, "passphrase_file": self.home.passphrase_file}
        if role == "inbound":
            return NanningOptions(**common, faults=faults)
        if role == "receipts":
            return ReceiptsOptions(**common, tick_s=0.1 if self.is_memory else 0.2)
        return ConnectorOptions(**common)

    def _spec(self, role: str, faults: Faults, seen: asyncio.Future[Runtime]) -> ConnectorSpec:
        spec = self.direction.specs()[role]
        original_start = spec.before_start

        async def before_start(rt: Runtime) -> bool:
            if not seen.done():
                seen.set_result(rt)  # the bench stops the role through its runtime's stop event
            return True if original_start is None else await original_start(rt)

        changes: dict[str, Any] = {"before_start": before_start}
        if faults.crash_after is not None:
            crash_after = faults.crash_after

            def crash(rt: Runtime, processor: Processor, result: ProcessResult) -> None:
                # --crash-after's window: after the batch's audit append and state commit, before its Kafka
                # transaction (the spec's own hook os._exit()s here)
                if int(processor.health()["processed"]) >= crash_after:
                    raise SimulatedCrash(f"{role} crashed after {processor.health()['processed']} processed")

            changes["after_batch"] = crash
        return dataclasses.replace(spec, **changes)

    async def start(self, role: str, *, faults: Faults | None = None, instance: str = "0") -> Runtime:
        """Start ``role`` as a task; returns its runtime once its ``before_start`` ran."""
        key = f"{role}.{instance}"
        if key in self.running and not self.running[key].task.done():
            raise RuntimeError(f"{key} is running")
        faults = faults or Faults()
        seen: asyncio.Future[Runtime] = asyncio.get_running_loop().create_future()
        spec = self._spec(role, faults, seen)
        task = asyncio.create_task(run_connector(self.settings, spec, self._options(role, instance, faults)),
                                   name=f"bench-{key}")
        self.running[key] = _Running(task, seen, faults)
        done, _ = await asyncio.wait({task, seen}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if task in done and not seen.done():
            task.result()  # re-raises the start-up failure
        if not seen.done():
            raise AssertionError(f"{key} did not start within 60 s")
        return seen.result()

    async def start_all(self, **faults: Faults) -> None:
        """The receiver and the tracker first, then outbound (as the demo starts them)."""
        for role in ("inbound", "receipts", "outbound"):
            await self.start(role, faults=faults.get(role))

    async def stop(self, role: str, instance: str = "0", within_s: float = 60) -> str:
        """SIGTERM's effect: set the role's stop event and wait for it to finish; returns how it ended."""
        key = f"{role}.{instance}"
        running = self.running.pop(key)
        if running.runtime.done():
            running.runtime.result().stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(running.task), timeout=within_s)
        except TimeoutError:
            running.task.cancel()
            with contextlib.suppress(BaseException):
                await running.task
        except BaseException:  # noqa: BLE001,S110 - how it ended is recorded below
            pass
        return self._record_end(key, running.task)

    async def ended_by(self, role: str, instance: str = "0", within_s: float = 60) -> str:
        """Wait until ``role`` ends on its own (a crash, fencing); returns how it ended."""
        key = f"{role}.{instance}"
        running = self.running.pop(key)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(running.task), timeout=within_s)
        if not running.task.done():
            self.running[key] = running
            raise AssertionError(f"{key} still running after {within_s} s")
        return self._record_end(key, running.task)

    def _record_end(self, key: str, task: asyncio.Task[int]) -> str:
        if task.cancelled():
            how = "cancelled"
        elif task.exception() is not None:
            how = type(task.exception()).__name__
        else:
            how = f"exit {task.result()}"
        self.ended.setdefault(key, []).append(how)
        return how

    async def stop_all(self) -> None:
        for key in list(self.running):
            role, instance = key.split(".", 1)
            await self.stop(role, instance)

    def runtime(self, role: str, instance: str = "0") -> Runtime:
        return self.running[f"{role}.{instance}"].runtime.result()

    # --- traffic ---------------------------------------------------------------------------------------
    async def publish_samples(self, count: int, seed: int) -> list[Any]:
        """Publish the demo's generated documents under the bench's run id; returns the samples."""
        from xborder_gateway.connectors import publish_documents

        samples = self.direction.samples(count, seed)
        await publish_documents(self.settings, [(x.business_key, x.xml) for x in samples], run=RUN)
        return samples

    # --- what both sides know --------------------------------------------------------------------------
    def summary(self) -> RunSummary | None:
        sender, receiver = (self.settings.state_db(a) for a in (self.direction.sender, self.direction.receiver))
        if not sender.exists():
            return None
        with contextlib.closing(sqlite3.connect(sender, timeout=10)) as s:
            r = sqlite3.connect(receiver, timeout=10) if receiver.exists() else None
            try:
                return summarize_run(s, RUN, r)
            except sqlite3.OperationalError:  # tables not created yet
                return None
            finally:
                if r is not None:
                    r.close()

    async def wait_for(self, done: Callable[[RunSummary], bool], what: str, within_s: float = 60) -> RunSummary:
        deadline = time.monotonic() + within_s
        last = None
        while time.monotonic() < deadline:
            self._raise_if_failed()
            last = self.summary()
            if last is not None and done(last):
                return last
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; last summary: {last}; ended: {self.ended}")

    async def settled(self, count: int, *, within_s: float = 60, quiet_s: float | None = None) -> RunSummary:
        """The summary once all ``count`` documents are settled and nothing changed for ``quiet_s`` (late
        duplicates and resends have landed)."""
        await self.wait_for(lambda s: s.settled >= count, f"{count} documents settled", within_s)
        quiet_s = quiet_s if quiet_s is not None else (0.6 if self.is_memory else 2.5)
        last = self.summary()
        still_since = time.monotonic()
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline and time.monotonic() - still_since < quiet_s:
            await asyncio.sleep(0.1)
            now = self.summary()
            if now != last:
                last, still_since = now, time.monotonic()
        assert last is not None
        return last

    def _raise_if_failed(self) -> None:
        """A role that died unexpectedly fails the scenario at once (with its own traceback)."""
        for key, running in list(self.running.items()):
            if running.task.done():
                self.running.pop(key)
                self._record_end(key, running.task)
                running.task.result()
                raise AssertionError(f"{key} ended by itself (exit {running.task.result()})")

    def audit(self, authority: str, event_type: str, process: str | None = None) -> list[Any]:
        """Every entry of ``event_type`` (from ``process``) in ``authority``'s audit log, in log order."""
        out: list[Any] = []
        log = AuditLog.open(self.settings, authority, read_only=True)
        try:
            after = None
            while True:
                page = log.search(event_type=event_type, after=after, limit=1000)
                if not page:
                    break
                out.extend(e.event for e in page if process is None or e.event.process == process)
                after = page[-1].index
        finally:
            log.close()
        return out

    def by_key(self, authority: str, event_type: str, process: str | None = None, *,
               distinct: Callable[[Any], object] | None = None) -> Counter[str]:
        """How many ``event_type`` entries each business key has (with ``distinct``, how many distinct
        values of it: a repeated event of the same step -- ADR 0400 -- counts once)."""
        seen: dict[str, set[object]] = {}
        counts: Counter[str] = Counter()
        for ev in self.audit(authority, event_type, process):
            key = str(ev.business_key)
            if distinct is None:
                counts[key] += 1
            else:
                seen.setdefault(key, set()).add(distinct(ev))
                counts[key] = len(seen[key])
        return counts

    def receipt_delays_ms(self) -> dict[str, tuple[int, int]]:
        """message id -> (sends, first send -> delivered in ms) of the run's delivered messages (sender's state)."""
        db = self.settings.state_db(self.direction.sender)
        with contextlib.closing(sqlite3.connect(db, timeout=10)) as c:
            return {str(m): (int(a), int(d) - int(f)) for m, a, d, f in c.execute(
                "SELECT message_id, attempts, delivered_ms, first_sent_ms FROM xbg_messages WHERE run = ? AND "
                "state = 'delivered' AND delivered_ms IS NOT NULL AND first_sent_ms IS NOT NULL", (RUN,))}

    def receiver_processed(self) -> Counter[str]:
        """How many times the receiving endpoint processed each business key (its own store)."""
        db = self.settings.state_db(self.direction.receiver)
        with contextlib.closing(sqlite3.connect(db, timeout=10)) as c:
            return Counter(str(k) for (k,) in c.execute("SELECT business_key FROM cn_processed WHERE run = ?",
                                                        (RUN,)))

    async def check_outcome(self, samples: list[Any], *, within_s: float = 60) -> RunSummary:
        """Every document exactly one outcome, none applied twice -- by the tracker's state, both audit logs
        and the receiver's store. Returns the settled summary."""
        d = self.direction
        summary = await self.settled(len(samples), within_s=within_s)
        invalid = {x.business_key for x in samples if x.broken_rule is not None}
        valid = {x.business_key for x in samples if x.broken_rule is None}
        assert len(invalid) + len(valid) == len(samples), "business keys of a run are unique"
        # the tracker's state: published = rejected + delivered + dead-lettered, nothing pending
        assert (summary.rejected, summary.delivered, summary.dead_lettered, summary.pending) == \
            (len(invalid), len(valid), 0, 0), summary
        # the sender's audit log: each invalid document rejected at one intake position, each valid one
        # delivered exactly once and never dead-lettered or rejected
        rejected = self.by_key(d.sender, "rejected", "outbound",
                               distinct=lambda e: (e.kafka_topic, e.kafka_partition, e.kafka_offset))
        delivered = self.by_key(d.sender, "delivered")
        assert dict(rejected) == dict.fromkeys(invalid, 1), "each invalid document rejected once"
        assert dict(delivered) == dict.fromkeys(valid, 1), "each valid document delivered exactly once"
        assert not self.by_key(d.sender, "dead_lettered")
        # the receiver's audit log and store: each valid document verified and processed exactly once
        verified = self.by_key(d.receiver, "verified")
        assert dict(verified) == dict.fromkeys(valid, 1), "the receiver applied each document exactly once"
        assert dict(self.receiver_processed()) == dict.fromkeys(valid, 1)
        # what the sender calls delivered is exactly what the receiver verified, message id for message id
        sent_ids = {str(e.message_id) for e in self.audit(d.sender, "delivered")}
        assert sent_ids == {str(e.message_id) for e in self.audit(d.receiver, "verified")}
        # a committed envelope was sealed first (a redone transaction may seal envelopes never committed)
        assert {str(e.message_id) for e in self.audit(d.sender, "sent")} <= \
            {str(e.message_id) for e in self.audit(d.sender, "sealed")}
        # the receiver answered every duplicate it recorded from the original answers, and audited it
        assert len(self.audit(d.receiver, "duplicate")) == summary.duplicates_eliminated
        return summary


# --- the scenarios ---------------------------------------------------------------------------------------
Scenario = Callable[[Bench], Awaitable[None]]


async def happy_path(bench: Bench) -> None:
    """No faults: everything valid delivered once; no resend unless a receipt really took longer than the
    receipt timeout (a shared, loaded machine can be that slow -- then every resend must have been due)."""
    bench.tune(exchange_receipt_timeout_s=15.0)  # a slow batch must not look like a lost envelope
    await bench.start_all()
    samples = await bench.publish_samples(bench.docs, seed=5)
    summary = await bench.check_outcome(samples)
    assert summary.business.get("ACCEPTED", 0) > 0
    timeout_ms = int(bench.settings.exchange_receipt_timeout_s * 1000)
    delays = bench.receipt_delays_ms()
    if max(d for _, d in delays.values()) < timeout_ms:
        assert summary.resent == 0, "every receipt came within the timeout: nothing may have been resent"
        assert summary.duplicates_eliminated == 0
    early = {m: v for m, v in delays.items() if v[0] > 1 and v[1] < timeout_ms}
    assert early == {}, "resent although its receipt came within the timeout"


async def drop_and_duplicate(bench: Bench) -> None:
    """The endpoint drops 30 % and duplicates 30 % of the envelopes: resends and de-duplication at work."""
    await bench.start_all(inbound=Faults(drop_rate=0.3, duplicate_rate=0.3, seed=3))
    samples = await bench.publish_samples(bench.docs, seed=7)
    summary = await bench.check_outcome(samples, within_s=90)
    assert summary.resent > 0, "the dropped envelopes were resent"
    assert (summary.duplicates_eliminated or 0) > 0, "the duplicated envelopes were answered from the store"


async def crash_after(bench: Bench) -> None:
    """The endpoint crashes after processing 30 envelopes (state and audit committed, Kafka transaction not):
    the restarted endpoint sees that batch again and answers it from its store, processing nothing twice."""
    await bench.start("inbound", faults=Faults(crash_after=30))
    await bench.start("receipts")
    await bench.start("outbound")
    samples = await bench.publish_samples(bench.docs, seed=11)
    assert await bench.ended_by("inbound") == "SimulatedCrash"
    crashed = bench.summary()
    assert crashed is not None
    assert (crashed.processed_at_endpoint or 0) >= 30
    await bench.start("inbound")
    summary = await bench.check_outcome(samples, within_s=90)
    assert (summary.duplicates_eliminated or 0) > 0, "the crashed batch came again and was de-duplicated"


async def offline_for(bench: Bench) -> None:
    """The endpoint is offline while the run starts: receipts time out and envelopes are resent (same id,
    same bytes); when it comes up (``--offline-for``: after a further second) it meets each resent copy beside
    its original, answers the copies from its store, and each document is still delivered once."""
    await bench.start("receipts")
    await bench.start("outbound")
    samples = await bench.publish_samples(bench.docs, seed=13)
    await bench.wait_for(lambda s: s.resent > 0, "a resend while the endpoint is offline")
    await bench.start("inbound", faults=Faults(offline_for=1.0))
    summary = await bench.check_outcome(samples, within_s=90)
    assert summary.resent > 0
    assert (summary.duplicates_eliminated or 0) > 0, "the resent copies met the originals at the endpoint"


async def failed_commits(bench: Bench) -> None:
    """Memory only: commits fail mid-run, some before they took effect (the batch is redone: new envelopes for
    the same intake records), some after (the loop cannot know it worked)."""
    broker = bench.memory()
    await bench.start_all()
    broker.faults.fail_commits_before = 2
    broker.faults.fail_commits_after = 2
    samples = await bench.publish_samples(bench.docs, seed=17)
    await bench.check_outcome(samples)
    assert (broker.faults.fail_commits_before, broker.faults.fail_commits_after) == (0, 0), "the faults fired"
    loops = [bench.runtime(r).loop for r in ("outbound", "inbound")]
    assert sum(loop.stats.restarts for loop in loops if loop is not None) >= 4, \
        "every failed commit restarted its loop's clients"


async def fencing(bench: Bench) -> None:
    """Memory only: mid-run the outbound's and the endpoint's transactional ids are taken over (as a second
    instance's start would). Each fenced instance learns it at its next transaction, stops with
    TransportFencedError and leaves that transaction aborted; its successor redoes the batch -- the
    endpoint's successor finds the fenced batch already answered in its store and answers it from there.
    Every document still ends in exactly one outcome."""
    broker = bench.memory()
    await bench.start_all()
    half = bench.docs // 2
    first = await bench.publish_samples(half, seed=19)
    await bench.wait_for(lambda s: s.settled >= len(first), "the first half settled")
    for role in ("outbound", "inbound"):
        broker.fence(bench.identity(role)[1])
    samples = first + await bench.publish_samples(bench.docs - half, seed=20)
    assert await bench.ended_by("outbound") == "TransportFencedError"
    await bench.start("outbound")  # the successor redoes the fenced batch; its envelopes meet the old endpoint
    assert await bench.ended_by("inbound") == "TransportFencedError"
    await bench.start("inbound")
    summary = await bench.check_outcome(samples)
    assert (summary.duplicates_eliminated or 0) > 0, "the fenced endpoint's batch was answered from the store"


async def forced_rebalance(bench: Bench) -> None:
    """Memory only: every role's group rebalances several times mid-run (partitions revoked and assigned
    again while batches are in flight); nothing is lost or applied twice."""
    broker = bench.memory()
    await bench.start_all()
    samples = await bench.publish_samples(bench.docs, seed=23)
    for round_ in range(3):
        await bench.wait_for(lambda s, n=round_: s.sent >= 20 * (n + 1) or s.settled >= len(samples),
                             "the run under way")
        for role in ROLES:
            broker.rebalance(bench.identity(role)[0])
        await asyncio.sleep(0.2)
    await bench.check_outcome(samples)


#: every scenario, by name (the memory file runs them all; the broker file the ones that matter there)
SCENARIOS: dict[str, Scenario] = {
    "happy path": happy_path,
    "drop 30% + duplicate 30%": drop_and_duplicate,
    "crash after 30": crash_after,
    "endpoint offline": offline_for,
    "failed commits": failed_commits,
    "fencing": fencing,
    "forced rebalance": forced_rebalance,
}
