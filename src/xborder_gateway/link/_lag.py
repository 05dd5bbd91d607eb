"""Per-flow lag of a site's MirrorMaker, in records and seconds (``xborder link status``).

Where MirrorMaker is: its committed source offsets, from Connect's offsets storage topic in this site's
cluster (``mm2-offsets.<COUNTERPART>.internal``; key ``["MirrorSourceConnector", {"cluster", "partition",
"topic"}]``, value ``{"offset": N}`` = the last source offset replicated; read ``read_committed``, since with
exactly-once those writes are part of MirrorMaker's transactions).

Where the source is: its **last stable offset** (``read_committed`` end offsets at the counterpart, over
the link listener with this site's link identity). Subtracting the two offsets is still not the lag: every
committed transaction ends with a control record (the commit marker) that has an offset but is never
delivered, so ``LSO - (committed + 1)`` shows a phantom record per transaction. The records pending are
therefore *counted*: read ``read_committed`` from ``committed + 1`` up to the LSO (markers and aborted
records are skipped by the fetch), up to ``max_count`` per call; the lag in seconds is the age of the
oldest record not yet replicated. End offsets are never compared across clusters.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from xborder_gateway.config import Settings
from xborder_gateway.errors import TransportError

__all__ = ["FlowLag", "LinkReport", "PartitionLag", "measure_lag", "read_committed_offsets"]


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    stable_end: int  # the source's last stable offset
    next_offset: int  # the first source offset MirrorMaker has not replicated
    records: int  # data records pending in [next_offset, stable_end), counted read_committed
    seconds: float  # age of the oldest pending record (0 when none)
    capped: bool = False  # counting stopped at max_count: "at least"


@dataclass(frozen=True)
class FlowLag:
    topic: str
    at_source: bool  # the topic exists at the counterpart
    partitions: tuple[PartitionLag, ...] = ()

    @property
    def records(self) -> int:
        return sum(p.records for p in self.partitions)

    @property
    def seconds(self) -> float:
        return max((p.seconds for p in self.partitions), default=0.0)

    @property
    def capped(self) -> bool:
        return any(p.capped for p in self.partitions)


@dataclass(frozen=True)
class LinkReport:
    source: str
    target: str
    reachable: bool  # the counterpart's link listener answered (mutual TLS, ACLs)
    flows: tuple[FlowLag, ...] = ()
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source, "target": self.target, "reachable": self.reachable, "error": self.error,
            "flows": [{"topic": f.topic, "at_source": f.at_source, "records": f.records,
                       "seconds": round(f.seconds, 3), "capped": f.capped,
                       "partitions": [{"partition": p.partition, "stable_end": p.stable_end,
                                       "next_offset": p.next_offset, "records": p.records} for p in f.partitions]}
                      for f in self.flows],
        }


async def _partitions(admin: Any, topics: list[str]) -> dict[str, list[int]]:
    """Partitions of the topics that exist (unknown or unauthorised topics are left out)."""
    found: dict[str, list[int]] = {}
    for meta in await admin.describe_topics(topics):
        if meta.get("error_code", 0) == 0:
            found[meta["topic"]] = sorted(p["partition"] for p in meta["partitions"])
    return found


def _apply_offset_record(out: dict[tuple[str, int], int], key_raw: bytes | None, value_raw: bytes | None,
                         source: str) -> None:
    """Fold one offsets-topic record into ``out`` (records of other connectors or clusters are ignored)."""
    try:
        key = json.loads(key_raw or b"null")
        value = json.loads(value_raw) if value_raw is not None else None
    except ValueError:
        return
    if (not isinstance(key, list) or len(key) != 2 or key[0] != "MirrorSourceConnector"
            or not isinstance(key[1], dict) or key[1].get("cluster") != source):
        return
    tp_key = (str(key[1].get("topic")), int(key[1].get("partition", -1)))
    if value is None:
        out.pop(tp_key, None)  # a tombstone: the offset was reset
    elif isinstance(value, dict) and isinstance(value.get("offset"), int):
        out[tp_key] = int(value["offset"])


async def read_committed_offsets(bootstrap: str, offsets_topic: str, source: str) -> dict[tuple[str, int], int]:
    """MirrorMaker's committed source offsets (last replicated offset per source partition)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        parts = (await _partitions(admin, [offsets_topic])).get(offsets_topic, [])
    finally:
        await admin.close()
    if not parts:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    out: dict[tuple[str, int], int] = {}
    try:
        tps = [TopicPartition(offsets_topic, p) for p in parts]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        if pending:
            await consumer.seek_to_beginning(*pending)
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for records in batch.values():
                for rec in records:
                    _apply_offset_record(out, rec.key, rec.value, source)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        if pending:  # a partial read would report replicated records as lag: say so instead
            raise TransportError(f"{offsets_topic} could not be read to its end within 60 s",
                                 code="LINK_OFFSETS_UNREAD", retriable=True)
    finally:
        await consumer.stop()
    return out


async def _count_pending(consumer: Any, starts: dict[Any, int], ends: dict[Any, int], max_count: int,
                         now_ms: int) -> dict[Any, tuple[int, float, bool]]:
    """Data records in [start, end) per partition (read_committed), the oldest one's age, capped?"""
    result: dict[Any, tuple[int, float, bool]] = dict.fromkeys(starts, (0, 0.0, False))
    pending = {tp for tp in starts if ends[tp] > starts[tp]}
    for tp in pending:
        consumer.seek(tp, starts[tp])
    counts = dict.fromkeys(pending, 0)
    oldest: dict[Any, int] = {}
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        batch = await consumer.getmany(*pending, timeout_ms=500, max_records=10_000)
        for tp, records in batch.items():
            for rec in records:
                if rec.offset >= ends[tp]:
                    break
                counts[tp] += 1
                oldest.setdefault(tp, rec.timestamp)
        for tp in list(pending):
            if counts[tp] >= max_count or await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
    for tp, n in counts.items():
        age = max(0.0, (now_ms - oldest[tp]) / 1000) if tp in oldest else 0.0
        result[tp] = (n, age, n >= max_count or tp in pending)
    return result


async def measure_lag(settings: Settings, *, max_count: int = 100_000, limit_s: float = 120.0) -> LinkReport:
    """The lag of this site's MirrorMaker, per allow-listed topic (see the module docstring)."""
    from xborder_gateway.link._mirror import LinkMirror

    mirror = LinkMirror(settings)
    try:
        return await asyncio.wait_for(_measure(settings, mirror, max_count), limit_s)
    except Exception as exc:  # noqa: BLE001 - any failure to reach a cluster is "unreachable", said plainly
        return LinkReport(mirror.source, mirror.target, False, error=f"{type(exc).__name__}: {exc}")


async def _measure(settings: Settings, mirror: Any, max_count: int) -> LinkReport:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from xborder_gateway.link._pki import link_client_ssl_context

    committed = await read_committed_offsets(settings.bootstrap, mirror.offsets_topic, mirror.source)
    ctx = link_client_ssl_context(settings)
    remote = settings.link_remote
    admin = AIOKafkaAdminClient(bootstrap_servers=remote, security_protocol="SSL", ssl_context=ctx,
                                request_timeout_ms=10_000)
    await admin.start()
    try:
        parts = await _partitions(admin, mirror.topics)
    finally:
        await admin.close()
    tps = [TopicPartition(t, p) for t, ps in parts.items() for p in ps]
    per_tp: dict[Any, PartitionLag] = {}
    if tps:
        consumer = AIOKafkaConsumer(bootstrap_servers=remote, security_protocol="SSL", ssl_context=ctx,
                                    isolation_level="read_committed", enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)  # read_committed: the last stable offsets
            begins = await consumer.beginning_offsets(tps)
            starts = {}
            for tp in tps:
                last = committed.get((tp.topic, tp.partition))
                starts[tp] = max(begins[tp], last + 1 if last is not None else begins[tp])
            counted = await _count_pending(consumer, starts, ends, max_count, int(time.time() * 1000))
        finally:
            await consumer.stop()
        for tp in tps:
            n, age, capped = counted[tp]
            per_tp[tp] = PartitionLag(tp.topic, tp.partition, ends[tp], starts[tp], n, age, capped)
    flows = tuple(
        FlowLag(t, t in parts, tuple(per_tp[tp] for tp in sorted(per_tp, key=lambda x: x.partition)
                                     if tp.topic == t))
        for t in mirror.topics
    )
    return LinkReport(mirror.source, mirror.target, True, flows)
