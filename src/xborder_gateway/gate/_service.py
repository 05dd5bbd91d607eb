"""The gate processor: a batch of consumed records -> state changes, decisions, audit events (no Kafka).

One batch is one SQLite transaction: feed records first (so an arrival sees the freshest view), then
arrivals. Every input record is applied once: its offset is stored with the state, and a record of an
already-applied offset (the Kafka transaction of its batch did not commit) re-emits the decisions it
produced instead of deciding again -- no arrival without a decision, none decided twice.
The audit events are appended inside the transaction, before it commits (AUD-5 as in ADR 0400).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from xborder_gateway.audit import AuditEvent, EventType
from xborder_gateway.gate._codec import GateInputError, decode_arrival, encode_decision
from xborder_gateway.gate._decide import GatePolicy, decide, redecide
from xborder_gateway.gate._feed import decode_feed_record
from xborder_gateway.gate._model import (
    Arrival,
    Colour,
    Decision,
    DeclState,
    Direction,
    Reason,
    VehicleDeclarationSeen,
)
from xborder_gateway.gate._plates import PlateError, normalise_plate
from xborder_gateway.gate._privacy import PlateHasher
from xborder_gateway.gate._store import GateStore, StaleDecisionError
from xborder_gateway.transport import Incoming, Outgoing

__all__ = ["BatchResult", "GateProcessor"]

log = logging.getLogger(__name__)
_CAS_RETRIES = 3
_UNKNOWN_STATE = "GATE_FEED_STATE_UNKNOWN"
_OUTSTANDING = frozenset({DeclState.TAKEN_IN, DeclState.SENT, DeclState.DELIVERED, DeclState.PENDING})

AuditSink = Callable[[Sequence[AuditEvent]], object]


@dataclass
class BatchResult:
    outputs: list[Outgoing] = field(default_factory=list)
    #: the decision id of each of ``outputs``, in the same order (the outbox is keyed by it)
    output_ids: list[str] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)
    replayed: int = 0
    invalid: int = 0
    ignored: int = 0
    """Feed records with a state the gate does not know (kept, see :mod:`xborder_gateway.gate._feed`)."""


class GateProcessor:
    """See the module docstring. ``clock`` returns epoch milliseconds (injected; tests pin it)."""

    def __init__(self, store: GateStore, hasher: PlateHasher, policy: GatePolicy, clock: Callable[[], int], *,
                 arrivals_topic: str, decisions_topic: str, authority: str = "VN",
                 audit: AuditSink | None = None) -> None:
        self.store = store
        self.hasher = hasher
        self.policy = policy
        self.clock = clock
        self.arrivals_topic = arrivals_topic
        self.decisions_topic = decisions_topic
        self.authority = authority
        self.audit = audit
        #: gate_delivery=outbox (ADR 0701 rule 4): the batch's audit events are committed with it in the store
        #: (``GateStore.defer_audit``) and appended to the audit log after its decisions are sent
        self.defer_audit = False

    # ---- entry point ----------------------------------------------------------------------------------
    def handle(self, records: Sequence[Incoming]) -> BatchResult:
        ordered = sorted(records, key=lambda r: (r.topic == self.arrivals_topic, r.topic, r.partition, r.offset))
        result = BatchResult()
        now = self.clock()
        with self.store.transaction():
            changed: set[str] = set()
            plates: set[str] = set()
            for rec in ordered:
                if self.store.applied(rec.topic, rec.partition, rec.offset):
                    result.replayed += 1
                    for o in self.store.outputs_of(rec.topic, rec.partition, rec.offset):
                        result.outputs.append(Outgoing(self.decisions_topic, o.key, o.value))
                        result.output_ids.append(o.decision_id)
                    continue
                if rec.topic == self.arrivals_topic:
                    if changed or plates:  # feed records of this batch first re-decide earlier arrivals
                        self._review(changed, plates, now, rec, result)
                        changed, plates = set(), set()
                    self._arrival(rec, now, result)
                else:
                    self._feed(rec, now, changed, plates, result)
                self.store.mark(rec.topic, rec.partition, rec.offset)
            if ordered and (changed or plates):
                self._review(changed, plates, now, ordered[-1], result)
            if ordered:
                self._overdue(now, ordered[-1], result)
            if self.defer_audit and result.events:
                self.store.defer_audit(result.events)  # in the same commit; appended after the send
            elif self.audit is not None and result.events:
                self.audit(result.events)  # durable before the state (and then the offsets) commit
        return result

    # ---- feed -----------------------------------------------------------------------------------------
    def _feed(self, rec: Incoming, now: int, changed: set[str], plates: set[str], result: BatchResult) -> None:
        try:
            feed = decode_feed_record(rec.value)
        except GateInputError as exc:
            self.store.keep_invalid(rec.topic, rec.partition, rec.offset, exc.code, rec.value)
            result.invalid += 1
            result.events.append(self._event(now, EventType.REJECTED, rec, outcome="rejected",
                                             reason_code=exc.code, business_key=_key(rec)))
            return
        if feed.ignored is not None:
            # a state this gate does not know (a newer feed schema): its vehicle part is applied below, the
            # state is not; the raw bytes are kept so an upgraded gate can replay it (docs/gate.md)
            self.store.keep_invalid(rec.topic, rec.partition, rec.offset, _UNKNOWN_STATE, rec.value)
            result.ignored += 1
            result.events.append(self._event(now, EventType.RECEIVED, rec, outcome="ignored",
                                             reason_code=_UNKNOWN_STATE, business_key=_key(rec)))
            log.warning("status feed: unknown state %r at %s/%d/%d ignored", feed.ignored, rec.topic,
                        rec.partition, rec.offset)
        for ev in feed.events:
            touched = self.store.apply(ev, now)
            changed |= touched
            if touched and isinstance(ev, VehicleDeclarationSeen):
                plates.add(ev.plate)

    def _review(self, numbers: set[str], plates: set[str], now: int, source: Incoming,
                result: BatchResult) -> None:
        since = now - self.policy.supersede_window_ms
        for aid in self.store.arrivals_to_review(numbers, plates, since):
            self._review_one(aid, now, source, result)

    def _review_one(self, aid: str, now: int, source: Incoming, result: BatchResult) -> None:
        for _ in range(_CAS_RETRIES):
            previous = self.store.current_decision(aid)
            arrival = self.store.arrival(aid)
            if previous is None or arrival is None:
                return
            fresh = redecide(previous, arrival, self.store, self.policy, now)
            if fresh is None:
                return
            try:
                self._record(fresh, arrival, source, now, result)
                return
            except StaleDecisionError:  # re-checked before acting: decide again on the moved state
                continue

    def _overdue(self, now: int, source: Incoming, result: BatchResult) -> None:
        """Time-driven re-decisions: an arrival YELLOW AWAITING_COUNTERPART whose grace period has passed is
        re-decided (COUNTERPART_ANSWER_OVERDUE, a superseding record). Runs with every batch, so the change
        is emitted with the first batch after the grace ends (docs/gate.md); its source is the batch's last
        record, so a replayed batch re-emits it like any other decision."""
        for aid in self.store.due_arrivals(now):
            before = len(result.decisions)
            self._review_one(aid, now, source, result)
            if len(result.decisions) == before:  # no new outcome (e.g. out of the window): stop watching
                self.store.clear_timer(aid)

    def _due(self, d: Decision, now: int) -> int | None:
        """When ``d`` turns by itself: the end of the earliest grace period it waits on, if it waits."""
        if Reason.AWAITING_COUNTERPART not in d.reasons or d.vehicle_declaration is None:
            return None
        starts = [rec.sent_ms for n in (d.vehicle_declaration, *d.linked_declarations)
                  if (rec := self.store.declaration(n)) is not None and rec.state in _OUTSTANDING]
        return min(starts) + self.policy.grace_ms if starts else now + self.policy.grace_ms

    # ---- arrivals -------------------------------------------------------------------------------------
    def _arrival(self, rec: Incoming, now: int, result: BatchResult) -> None:
        try:
            arrival = decode_arrival(rec.value)
        except GateInputError as exc:
            self.store.keep_invalid(rec.topic, rec.partition, rec.offset, exc.code, rec.value)
            result.invalid += 1
            arrival = Arrival(arrival_id=f"invalid.{rec.topic}.{rec.partition}.{rec.offset}", gate_id="UNKNOWN",
                              lane="UNKNOWN", direction=Direction.EXIT_TO_CN, plate_read="", plate_confidence=0.0,
                              camera_ms=rec.timestamp_ms or now)
            d = Decision(arrival_id=arrival.arrival_id, sequence=1, colour=Colour.RED,
                         reasons=(Reason.ARRIVAL_INVALID,), gate_id="UNKNOWN", lane="UNKNOWN",
                         direction=Direction.EXIT_TO_CN, camera_ms=arrival.camera_ms, decided_ms=now,
                         notes=(exc.code,))
            self._record(d, arrival, rec, now, result)
            return
        if self.store.current_sequence(arrival.arrival_id):  # the same camera event again
            result.events.append(self._event(now, EventType.DUPLICATE, rec, message_id=arrival.arrival_id,
                                             outcome="duplicate", document_type="GateArrival"))
            return
        plate_hmac = self._hmac(arrival)
        for _ in range(_CAS_RETRIES):
            d = decide(arrival, self.store, self.policy, now, plate_hmac=plate_hmac)
            try:
                self._record(d, arrival, rec, now, result)
                return
            except StaleDecisionError:
                continue
        raise StaleDecisionError(f"arrival {arrival.arrival_id}: state kept moving while deciding")

    def _hmac(self, arrival: Arrival) -> str:
        try:
            return self.hasher.digest(normalise_plate(arrival.plate_read))
        except PlateError:
            return ""

    def _record(self, d: Decision, arrival: Arrival, rec: Incoming, now: int, result: BatchResult) -> None:
        record = encode_decision(d)
        try:
            plate: str | None = normalise_plate(arrival.plate_read)
        except PlateError:
            plate = None
        self.store.record_decision(d, arrival, plate, record, (rec.topic, rec.partition, rec.offset),
                                   due_ms=self._due(d, now))
        result.decisions.append(d)
        result.outputs.append(Outgoing(self.decisions_topic, d.arrival_id.encode(), record))
        result.output_ids.append(d.decision_id)
        # GATE-7: the plate enters the log only as its keyed HMAC (raw_sha256 holds HMAC-SHA256, docs/gate.md)
        result.events.append(self._event(
            now, EventType.GATE_DECISION, rec, message_id=d.decision_id, business_key=d.vehicle_declaration,
            document_type="GateDecision", raw_sha256=d.plate_hmac or None,
            payload_sha256=hashlib.sha256(record).hexdigest(), attempt=d.sequence,
            outcome=d.colour.name.lower(), reason_code=" ".join(r.value for r in d.reasons)[:96].strip()))

    def _event(self, now: int, event_type: EventType, rec: Incoming, **fields: object) -> AuditEvent:
        return AuditEvent.model_validate({
            "time": datetime.fromtimestamp(now / 1000, UTC), "authority": self.authority, "process": "gate",
            "event_type": event_type, "kafka_topic": rec.topic, "kafka_partition": rec.partition,
            "kafka_offset": rec.offset, **fields})


def _key(rec: Incoming) -> str | None:
    if not rec.key:
        return None
    text = rec.key.decode("ascii", "replace")
    return text if text.isalnum() and len(text) <= 35 else None
