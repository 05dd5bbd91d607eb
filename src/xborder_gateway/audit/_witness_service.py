"""``xborder run witness --authority A``: checkpoints and cosignatures over Kafka (issue 12 item 1).

One process per site does the three jobs of that site's audit log towards the counterpart:

* **publish** this site's signed checkpoints on ``xb.<a>.audit.checkpoints`` (record key: the origin), each
  as tlog-witness's ``add-checkpoint`` body: ``old <size>``, the consistency proof from the size the
  counterpart's witness last cosigned (as far as we know), an empty line, the signed note;
* **witness** the counterpart's log: consume ``xb.<b>.audit.checkpoints``, run :class:`Witness` (the pure
  core: never cosigns an older, forked or inconsistent checkpoint), and publish on
  ``xb.<a>.audit.cosignatures`` either the cosigned note (checkpoint + our cosignature/v1 line) or, when the
  submitter's old size is not ours, tlog-witness's 409 answer (header ``xbg-witness-status: 409``, body
  ``<our size>\\n``) so the submitter resends from our size;
* **collect** the counterpart witness's answers about *our* log from ``xb.<b>.audit.cosignatures``:
  a cosignature is verified against the counterpart witness's pinned key and stored beside the checkpoint
  (COSIG-3); a 409 makes the next submission start from the size the witness named.

Direction naming: ``xb.<a>.audit.checkpoints`` carries A's checkpoints, ``xb.<a>.audit.cosignatures`` carries
A's witness's cosignatures (of the other log); both flow from A's site to the other (ADR 0304).

The consumer side is one :class:`TransactionalBatchLoop` (answers produced and offsets committed in one
Kafka transaction); the publisher is a task beside it. :class:`WitnessProcessor` is Kafka-free.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xborder_gateway.audit.cosignature import CosignatureVerifier, split_note
from xborder_gateway.audit.errors import AuditNotFoundError
from xborder_gateway.audit.events import AuditEvent
from xborder_gateway.audit.log import AuditLog
from xborder_gateway.audit.note import Checkpoint
from xborder_gateway.audit.witness import Alarm, Conflict, Cosigned, Refused, Witness, alarm_event, report_alarm
from xborder_gateway.config import Settings
from xborder_gateway.errors import AuditIntegrityError, ConfigError, GatewayError

__all__ = [
    "STATUS_HEADER",
    "WitnessOptions",
    "WitnessProcessor",
    "counterpart_of",
    "run_witness",
    "witness_topics",
]

_log = logging.getLogger(__name__)
STATUS_HEADER = "xbg-witness-status"
_SIZE = re.compile(r"(0|[1-9][0-9]{0,18})\n")


def counterpart_of(authority: str) -> str:
    authority = authority.upper()
    if authority not in ("VN", "CN"):
        raise ConfigError(f"unknown authority {authority!r}", code="WITNESS_AUTHORITY", hint="use VN or CN")
    return "CN" if authority == "VN" else "VN"


@dataclass(frozen=True)
class WitnessTopics:
    my_checkpoints: str  # we publish our checkpoints here
    my_cosignatures: str  # our witness answers here
    their_checkpoints: str  # the counterpart's checkpoints, which we witness
    their_cosignatures: str  # the counterpart witness's answers about our log


def witness_topics(settings: Settings, authority: str) -> WitnessTopics:
    def cps(a: str) -> str:
        return str(getattr(settings, f"topic_{a.lower()}_audit_checkpoints"))

    def cos(a: str) -> str:
        return str(getattr(settings, f"topic_{a.lower()}_audit_cosignatures"))

    other = counterpart_of(authority)
    return WitnessTopics(cps(authority), cos(authority), cps(other), cos(other))


@dataclass
class WitnessCounts:
    cosigned: int = 0
    conflicts: int = 0
    refused: int = 0
    alarms: int = 0
    stored: int = 0
    rejected_cosignatures: int = 0
    resend_requests: int = 0
    published: int = 0


class WitnessProcessor:
    """The Kafka-free core of ``run witness``: one batch of the counterpart's checkpoints and cosignatures in,
    our answers out; and the next submission of our own log's checkpoint."""

    def __init__(self, *, authority: str, topics: WitnessTopics, log: AuditLog, witness: Witness,
                 counterpart_witness: CosignatureVerifier | None, evidence_dir: Path,
                 audit_append: Callable[[Sequence[AuditEvent]], object]) -> None:
        self.authority = authority.upper()
        self.topics = topics
        self.log = log
        self.witness = witness
        self.counterpart_witness = counterpart_witness
        self.evidence_dir = evidence_dir
        self.audit_append = audit_append
        self.counts = WitnessCounts()
        self.last_alarm: str | None = None
        # the size the counterpart's witness has cosigned, as far as we know: our submissions prove from it
        self._witness_size = self._cosigned_size()
        self._submitted: int | None = None  # the checkpoint size last published

    def _cosigned_size(self) -> int:
        if self.counterpart_witness is None:
            return 0
        return max(self.log.cosigned_sizes(self.counterpart_witness), default=0)

    # --- consumer side ----------------------------------------------------------------------------
    def handle(self, records: Sequence[Any]) -> list[Any]:
        from xborder_gateway.transport import Outgoing

        out: list[Outgoing] = []
        for r in records:
            if r.topic == self.topics.their_checkpoints:
                answer = self._witness(r.value)
                if answer is not None:
                    out.append(answer)
            elif r.topic == self.topics.their_cosignatures:
                self._collect(r.value, r.header_str(STATUS_HEADER))
        return out

    def _witness(self, body: bytes) -> Any:
        from xborder_gateway.transport import Outgoing

        result = self.witness.process_submission(body)
        if isinstance(result, Cosigned):
            self.counts.cosigned += 1
            note = _note_of(body)
            cosigned = note.split("\n\n", 1)[0] + "\n\n" + result.line
            return Outgoing(self.topics.my_cosignatures, result.origin.encode("utf-8"), cosigned.encode("utf-8"),
                            Outgoing.make_headers({STATUS_HEADER: "200"}))
        if isinstance(result, Conflict):  # tlog-witness 409: resend from our size
            self.counts.conflicts += 1
            return Outgoing(self.topics.my_cosignatures, result.origin.encode("utf-8"),
                            f"{result.latest_size}\n".encode("ascii"), Outgoing.make_headers({STATUS_HEADER: "409"}))
        if isinstance(result, Alarm):
            # WIT-2: never cosigned; ERROR line + audit event in our own log + metric, the note kept as evidence
            self.counts.alarms += 1
            self.last_alarm = result.kind
            self._keep_evidence(result)
            report_alarm(result, self._append_alarm)
            return None
        if not isinstance(result, Refused):  # pragma: no cover - WitnessResult has four members
            raise TypeError(result)
        self.counts.refused += 1
        _log.warning("witness refused a checkpoint submission (%s, %d): %s", result.code, result.status,
                     result.message)
        return None

    def _append_alarm(self, alarm: Alarm) -> None:
        self.audit_append([alarm_event(alarm, self.authority)])

    def _keep_evidence(self, alarm: Alarm) -> None:
        digest = hashlib.sha256(alarm.note.encode("utf-8")).hexdigest()
        self.evidence_dir.mkdir(parents=True, exist_ok=True)
        path = self.evidence_dir / f"{alarm.kind.lower()}-{alarm.size}-{digest[:16]}.note"
        if not path.exists():
            path.write_text(alarm.note, encoding="utf-8")

    def _collect(self, value: bytes, status: str | None) -> None:
        if status == "409":
            try:
                text = value.decode("ascii")
            except UnicodeDecodeError:
                text = ""
            if not _SIZE.fullmatch(text):
                self.counts.rejected_cosignatures += 1
                _log.warning("malformed 409 answer from the counterpart's witness")
                return
            size = int(text)
            latest = self.log.latest_checkpoint()
            if latest is not None and size <= latest.checkpoint.size:
                self.counts.resend_requests += 1
                self._witness_size = size
                self._submitted = None  # resubmit the latest checkpoint from the witness's size
            return
        if self.counterpart_witness is None:
            self.counts.rejected_cosignatures += 1
            _log.warning("a cosignature arrived but no counterpart witness key is pinned")
            return
        try:
            note = value.decode("utf-8")
            text, _ = split_note(note)
            cp = Checkpoint.parse(text)
            if cp.origin != self.log.origin:
                raise AuditIntegrityError(f"a cosignature of {cp.origin}, not of our log", code="COSIGNATURE_ORIGIN")
            lines = [line for name, blob, line in split_note(note)[1]
                     if name == self.counterpart_witness.name and blob[:4] == self.counterpart_witness.key_hash]
            if not lines:
                raise AuditIntegrityError("no line by the pinned counterpart witness", code="COSIGNATURE_MISSING")
            for line in lines:  # COSIG-3: verified against our stored checkpoint before it is stored
                self.log.add_cosignature(cp.size, line, self.counterpart_witness)
        except (UnicodeDecodeError, GatewayError) as exc:
            self.counts.rejected_cosignatures += 1
            _log.warning("cosignature not stored: %s", exc)
            return
        self.counts.stored += 1
        self._witness_size = max(self._witness_size, cp.size)

    # --- publisher side ---------------------------------------------------------------------------
    def next_submission(self) -> tuple[int, bytes] | None:
        """The add-checkpoint body of our latest checkpoint, if it was not published yet."""
        latest = self.log.latest_checkpoint()
        if latest is None:
            return None
        size = latest.checkpoint.size
        if self._submitted == size:
            return None
        old = min(self._witness_size, size)
        try:
            body = self.log.submission(old, size)
        except AuditNotFoundError:
            return None
        return size, body

    def published(self, size: int) -> None:
        self._submitted = size
        # the witness processes our submissions in order (one key, one partition): it will be at ``size``
        self._witness_size = max(self._witness_size, size)
        self.counts.published += 1

    def health(self) -> dict[str, Any]:
        return {**self.counts.__dict__, "last_alarm": self.last_alarm, "witness_size": self._witness_size}


def _note_of(body: bytes) -> str:
    return body.decode("utf-8").partition("\n\n")[2]


@dataclass(frozen=True)
class WitnessOptions:
    authority: str = "VN"
    instance: str = "0"
    passphrase_file: Path | None = None
    metrics_port: int | None = None
    publish_every_s: float = 1.0


def _open(settings: Settings, authority: str, topics: WitnessTopics) -> tuple[AuditLog, WitnessProcessor]:
    from xborder_gateway.audit._keys import (
        key_paths,
        load_counterpart_witness,
        load_or_create_witness_signer,
        load_verifier,
        origin_for,
    )
    from xborder_gateway.audit.witness import WitnessStore

    other = counterpart_of(authority)
    their_key = load_verifier(settings, other)
    if their_key is None:
        raise ConfigError(f"no checkpoint key of the {other} log to witness it with", code="WITNESS_NO_LOG_KEY",
                          hint=f"put the {other} log's verifier key (from the trust bundle) in "
                          f"{key_paths(settings, other)[1]}")
    signer = load_or_create_witness_signer(settings, authority)
    log = AuditLog.open(settings, authority)
    try:
        store = WitnessStore(settings.home / "audit" / f"witness-{authority.lower()}.sqlite")
        witness = Witness(signer, {origin_for(settings, other): their_key}, store)
        counterpart = load_counterpart_witness(settings, authority)
        if counterpart is None:
            _log.warning("no key of the %s witness pinned: its cosignatures of our log cannot be stored", other)
        processor = WitnessProcessor(authority=authority, topics=topics, log=log, witness=witness,
                                     counterpart_witness=counterpart,
                                     evidence_dir=settings.home / "audit" / "witness-evidence",
                                     audit_append=lambda events: log.append(list(events)))
    except BaseException:
        log.close()
        raise
    return log, processor


async def run_witness(settings: Settings, options: WitnessOptions, *, stop: asyncio.Event | None = None,  # noqa: PLR0915
                      install_shutdown: bool = True) -> int:
    """Run the witness role of ``options.authority`` until ``stop`` (SIGTERM/SIGINT); returns the exit code."""
    from xborder_gateway.connectors._common import Identity, Ops, log_line
    from xborder_gateway.transport import (
        Incoming,
        LoopConfig,
        Outgoing,
        TransactionalBatchLoop,
        ensure_topics,
        kafka_boundary,
        make_producer,
    )
    from xborder_gateway.transport import install_shutdown as _install_shutdown

    authority = options.authority.upper()
    topics = witness_topics(settings, authority)
    await ensure_topics(settings.bootstrap, (topics.my_checkpoints, topics.my_cosignatures, topics.their_checkpoints,
                                             topics.their_cosignatures), settings.topic_partitions)
    log, processor = _open(settings, authority, topics)
    stop = stop or asyncio.Event()
    if install_shutdown:
        _install_shutdown(stop)
    ident = Identity(f"witness-{authority.lower()}", options.instance, settings.exchange_group_prefix)
    loop: TransactionalBatchLoop | None = None
    ops = Ops(f"witness-{authority.lower()}", options.metrics_port, lambda: {
        "ok": loop is not None and not stop.is_set(), "connector": "witness", "authority": authority,
        "ready": loop is not None and loop.stats.assigned is not None, **processor.health()})
    producer = make_producer(settings.bootstrap, client_id=f"{ident.client_id}-checkpoints")

    async def handler(records: list[Incoming]) -> list[Outgoing]:
        before = dict(processor.counts.__dict__)
        out = processor.handle(records)
        for name, value in processor.counts.__dict__.items():
            if value != before[name]:
                ops.count(name, value - before[name])
        return out

    async def publisher() -> None:
        try:
            await publish_loop()
        except BaseException:
            stop.set()  # a failed publisher stops the process (non-zero exit), it does not go quiet
            raise

    async def publish_loop() -> None:
        with kafka_boundary("start checkpoint producer"):
            await producer.start()
        while not stop.is_set():
            log.maybe_checkpoint()  # sign one if it is due by time (the ticker does it too)
            nxt = processor.next_submission()
            if nxt is not None:
                size, body = nxt
                with kafka_boundary("publish checkpoint"):
                    await producer.send_and_wait(topics.my_checkpoints, value=body,
                                                 key=log.origin.encode("utf-8"))
                processor.published(size)
                ops.count("published")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=options.publish_every_s)

    config = LoopConfig(bootstrap=settings.bootstrap, topics=(topics.their_checkpoints, topics.their_cosignatures),
                        group_id=ident.group_id, client_id=ident.client_id, transactional_id=ident.transactional_id,
                        batch_max=settings.exchange_batch_max, poll_ms=settings.exchange_poll_ms,
                        txn_timeout_s=settings.exchange_txn_timeout_s)
    loop = TransactionalBatchLoop(config, handler, stop)
    log_line(logging.INFO, "witness started", authority=authority, witnesses=counterpart_of(authority),
             bootstrap=settings.bootstrap)
    task = asyncio.create_task(publisher())
    try:
        await loop.run()
    finally:
        stop.set()
        try:
            await task
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), timeout=15)
            ops.close()
            processor.witness.store.close()
            log.close()
    log_line(logging.INFO, "witness stopped", **processor.health())
    return 0
