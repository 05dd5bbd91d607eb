"""One runtime for every connector role (issue 10 item 2).

A role is a :class:`ConnectorSpec`: its name and authority, its input topics (and which of them are the
priority lane), its delivery guarantee, a factory for its :class:`Processor` and optional hooks. One
:func:`run_connector` does what every role needs, once: keys, identity, shutdown signals, topics, the audit
sink, the loop configuration, health and metrics, the per-batch bookkeeping, and closing.

A processor is Kafka-free: ``handle(records, audit)`` makes the batch's effects durable (appending its audit
events with ``audit`` before it returns, AUD-5) and returns one :class:`ProcessResult`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from xborder_gateway.audit import AuditEvent
from xborder_gateway.config import Settings
from xborder_gateway.connectors._common import (
    Auditor,
    AuditSink,
    ConnectorOptions,
    Identity,
    Ops,
    load_keys,
    log_line,
)
from xborder_gateway.envelope import LocalAuthority, TrustStore
from xborder_gateway.transport import (
    AtLeastOnceLoop,
    Incoming,
    LoopConfig,
    Outgoing,
    TransactionalBatchLoop,
    ensure_gateway_topics,
    ensure_topics,
    gateway_topic_configs,
    install_shutdown,
    kafka_boundary,
    make_producer,
)
from xborder_gateway.transport._loop import Ticker

__all__ = ["ConnectorSpec", "Guarantee", "ProcessResult", "Processor", "Runtime", "run_connector"]


class Guarantee(enum.Enum):
    """How a role's batch is committed."""

    #: consume -> process -> produce the outputs and commit the input offsets in ONE Kafka transaction
    EXACTLY_ONCE = "exactly_once"
    #: the processor makes its effects durable and idempotent, then the offsets are committed (no outputs)
    AT_LEAST_ONCE = "at_least_once"


@dataclass
class ProcessResult:
    """What a processor returns for one batch: records to produce, audit events (already appended when the
    processor was given an audit sink), counters by outcome, and publish -> receipt latencies (s)."""

    outputs: list[Outgoing] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)


class Processor(Protocol):
    def handle(self, records: Sequence[Incoming], audit: AuditSink) -> ProcessResult:
        """One batch: effects durable and ``audit`` called with its events before returning."""
        ...

    def health(self) -> dict[str, Any]:
        """The role's own fields of ``/healthz``."""
        ...

    def close(self) -> None: ...


@dataclass
class Runtime:
    """What a role's factory and hooks are given."""

    settings: Settings
    options: ConnectorOptions
    spec: ConnectorSpec
    me: LocalAuthority
    trust: TrustStore
    ident: Identity
    stop: asyncio.Event
    auditor: Auditor | None = None
    ops: Ops | None = None
    loop: TransactionalBatchLoop | AtLeastOnceLoop | None = None

    def assigned(self) -> set[tuple[str, int]]:
        return set(self.loop.assigned()) if self.loop is not None else set()


def _no_priority(_settings: Settings) -> frozenset[str]:
    return frozenset()


@dataclass(frozen=True)
class ConnectorSpec:
    """One connector role. ``before_start`` may wait (e.g. ``--offline-for``) and returns False to exit 0
    without starting; ``before_batch`` runs before each batch (e.g. ``--delay-ms``); ``after_batch`` after
    each handled batch (e.g. ``--crash-after``); ``background`` runs beside the loop (the tracker's resend
    task) and its failure stops the connector."""

    name: str
    authority: str
    topics: Callable[[Settings], tuple[str, ...]]
    guarantee: Guarantee
    processor: Callable[[Runtime], Processor]
    priority_topics: Callable[[Settings], frozenset[str]] = _no_priority
    started_line: str = "started"
    stopped_line: str | None = None
    before_start: Callable[[Runtime], Awaitable[bool]] | None = None
    before_batch: Callable[[Runtime], Awaitable[None]] | None = None
    after_batch: Callable[[Runtime, Processor, ProcessResult], None] | None = None
    background: Callable[[Runtime, Processor], Coroutine[Any, Any, None]] | None = None
    #: exactly-once roles only: work between batches produced in its own Kafka transaction (issue 15: the
    #: endpoint's grace-period expiry); see :class:`~xborder_gateway.transport._loop.Ticker`
    ticker: Callable[[Runtime, Processor], Ticker | None] | None = None
    #: exactly-once roles, tests: called with the batch's outputs inside the open transaction, after its
    #: records are in the log and before the commit (``run outbound --crash-after``, issue 11)
    before_commit: Callable[[Runtime, Sequence[Outgoing]], None] | None = None
    #: the topics this role creates when missing (issue 10 item 1: its own site's and its direction's, see
    #: ``transport.role_topics``); None = every exchange topic of the settings (``gateway_topics``)
    creates: Callable[[Settings], tuple[str, ...]] | None = None


def _loop_config(settings: Settings, spec: ConnectorSpec, ident: Identity) -> LoopConfig:
    exactly_once = spec.guarantee is Guarantee.EXACTLY_ONCE
    return LoopConfig(bootstrap=settings.bootstrap, topics=spec.topics(settings),
                      priority_topics=spec.priority_topics(settings), group_id=ident.group_id,
                      client_id=ident.client_id,
                      transactional_id=ident.transactional_id if exactly_once else None,
                      batch_max=settings.exchange_batch_max, poll_ms=settings.exchange_poll_ms,
                      txn_timeout_s=settings.exchange_txn_timeout_s,
                      fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms)


async def run_connector(settings: Settings, spec: ConnectorSpec, options: ConnectorOptions  # noqa: PLR0915
                        ) -> int:
    """Run ``spec`` until SIGTERM/SIGINT (or a hook ends the process); returns the exit code."""
    me, trust = load_keys(settings, spec.authority, options.passphrase_file)
    ident = Identity(spec.name, options.instance, settings.exchange_group_prefix)
    rt = Runtime(settings, options, spec, me, trust, ident, asyncio.Event())
    install_shutdown(rt.stop)
    if spec.before_start is not None and not await spec.before_start(rt):
        return 0
    if spec.creates is not None:
        await ensure_topics(settings.bootstrap, spec.creates(settings), settings.topic_partitions,
                            gateway_topic_configs(settings))
    else:
        await ensure_gateway_topics(settings)
    auditor = rt.auditor = Auditor(settings, spec.authority)
    processor = spec.processor(rt)

    def health() -> dict[str, Any]:
        stats = rt.loop.stats if rt.loop is not None else None
        return {"ok": rt.loop is not None and not rt.stop.is_set(), "connector": spec.name,
                "instance": options.instance, "ready": stats is not None and stats.assigned is not None,
                "assigned_partitions": stats.assigned if stats else None,
                "batches": stats.batches if stats else 0, "restarts": stats.restarts if stats else 0,
                "last_error": stats.last_error if stats else None, **processor.health()}

    ops = rt.ops = Ops(spec.name, options.metrics_port, health)

    async def handle(records: list[Incoming]) -> list[Outgoing]:
        if spec.before_batch is not None:
            await spec.before_batch(rt)
        # The processor appends the batch's audit events (inside its state transaction where it has one)
        # before the Kafka commit that follows this handler (AUD-5). Synchronous on purpose: nothing else
        # runs on the processor's connections while it works.
        result = processor.handle(records, auditor.append)
        for k, v in result.counts.items():
            ops.count(k, v)
        for s in result.latencies:
            ops.latency.observe(s)
        ops.batches.labels(spec.name).inc()
        if spec.after_batch is not None:
            spec.after_batch(rt, processor, result)
        return result.outputs

    feed: Any = None

    async def sink(records: list[Incoming]) -> None:
        # An at-least-once role's outputs (the tracker's status-feed records) are produced after its state
        # commit and before the offsets commit: a crash in between can repeat them, a crash before the state
        # commit produces nothing (the batch is redone).
        nonlocal feed
        outputs = await handle(records)
        if not outputs:
            return
        try:
            if feed is None:  # kept only once started: a producer whose start failed is never reused
                producer = make_producer(settings.bootstrap, client_id=f"{ident.client_id}-feed")
                try:
                    with kafka_boundary("start feed producer"):
                        await producer.start()
                except BaseException:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(producer.stop(), timeout=15)
                    raise
                feed = producer
            with kafka_boundary("produce feed"):
                futures = [await feed.send(o.topic, value=o.value, key=o.key, headers=list(o.headers))
                           for o in outputs]
                await asyncio.gather(*futures)
        except BaseException:
            # the loop restarts its consumer and redoes the batch; the feed gets a fresh producer too
            broken, feed = feed, None
            if broken is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(broken.stop(), timeout=15)
            raise

    loop: TransactionalBatchLoop | AtLeastOnceLoop
    if spec.guarantee is Guarantee.EXACTLY_ONCE:
        config = _loop_config(settings, spec, ident)
        hook = spec.before_commit
        if hook is not None:  # issue 11: tests crash the role with its transaction open
            config = dataclasses.replace(config, before_commit=lambda outs: hook(rt, outs))
        ticker = spec.ticker(rt, processor) if spec.ticker is not None else None
        loop = TransactionalBatchLoop(config, handle, rt.stop, ticker)
    else:
        loop = AtLeastOnceLoop(_loop_config(settings, spec, ident), sink, rt.stop)
    rt.loop = loop
    log_line(logging.INFO, spec.started_line, instance=options.instance, bootstrap=settings.bootstrap)
    task: asyncio.Task[None] | None = None
    if spec.background is not None:
        task = asyncio.create_task(spec.background(rt, processor))
    try:
        await loop.run()
    finally:
        rt.stop.set()
        try:
            if task is not None:
                await task  # re-raises a failure of the background task (the process then exits non-zero)
        finally:
            if feed is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(feed.stop(), timeout=15)
            ops.close()
            auditor.close()
            processor.close()
    if spec.stopped_line is not None:
        log_line(logging.INFO, spec.stopped_line, batches=loop.stats.batches, records=loop.stats.records_in)
    return 0
