"""The receiving endpoint's answers of one batch, sealed together (issue 13 items 1-2; docs/envelope.md §8).

One :class:`AnswerBatch` per **transaction attempt** of the endpoint (a redo after an aborted Kafka
transaction or a rolled-back state transaction builds a new one): every answer of the batch to one
recipient is queued in one :class:`~xborder_gateway.envelope.BatchSealer` of the configured suite, so with
suite v2 the whole batch of answers costs one signature and one HPKE encapsulation, and a fresh batch secret
per attempt (§8.4 rule 1). With suite v1 each answer is sealed alone as it is queued.

The answers' bytes exist only once the batch is sealed, so what the endpoint does with them -- build the
records, store their exact bytes beside the replay record -- is registered with :meth:`AnswerBatch.then`
and run by :meth:`AnswerBatch.finish`, inside the endpoint's still-open state transaction and before its
audit append. :meth:`mark` / :meth:`rollback` follow the endpoint's per-envelope savepoint: a step undone
there registers nothing (its queued envelopes are sealed with the batch and never sent: a lost batch-mate,
which v2 allows).

:func:`immediate_decision` is the rule of "one answer per declaration": with ``envelope_receipt_version``
2 an immediate decision (ACCEPTED / HELD / REJECTED) rides in the Receipt v2; any other status (a decision
still to come) is answered with a receipt only, and the decision later as its own BusinessResponse.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from xborder_gateway.envelope import (
    BatchSealer,
    BusinessDecision,
    LocalAuthority,
    SealedEnvelope,
    TrustStore,
    add_receipt,
)
from xborder_gateway.transport import Outgoing

__all__ = ["IMMEDIATE_STATUSES", "AnswerBatch", "Slot", "immediate_decision", "new_batch_sealer", "seal_batch"]

#: the business statuses a Receipt v2 can carry (Receipt.v2.avsc); anything else is decided later
IMMEDIATE_STATUSES = frozenset({"ACCEPTED", "HELD", "REJECTED"})


def immediate_decision(status: str, reasons: tuple[tuple[str, str], ...], *, receipt_version: int,
                       at: datetime | None = None) -> BusinessDecision | None:
    """The decision the receipt carries (Receipt v2), or None: answer it with a separate BusinessResponse."""
    if receipt_version < 2 or status not in IMMEDIATE_STATUSES:
        return None
    return BusinessDecision(status, tuple(reasons), at)  # type: ignore[arg-type]  # checked just above


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one queued answer will be: its recipient's sealer and its position there."""

    recipient: str
    index: int


Finisher = Callable[[Callable[[Slot], SealedEnvelope]], list[Outgoing]]


class AnswerBatch:
    """Queue the answers of one batch, seal them together, then let the endpoint use their bytes."""

    def __init__(self, me: LocalAuthority, trust: TrustStore, *, suite: int, now: datetime | None = None) -> None:
        self._me, self._trust, self._suite = me, trust, suite
        self._now = now or datetime.now(UTC)
        self._sealers: dict[str, BatchSealer] = {}
        self._then: list[tuple[str, Finisher]] = []
        self._finished: dict[str, list[Outgoing]] = {}
        self._done = False

    def _sealer(self, recipient: str) -> BatchSealer:
        if self._done:
            raise RuntimeError("this batch of answers is sealed: a new attempt needs a new AnswerBatch")
        sealer = self._sealers.get(recipient)
        if sealer is None:  # ENV-4 / ENV-5 errors of the recipient's key surface here, as from seal()
            sealer = BatchSealer(sender=self._me, recipient=recipient, trust=self._trust, suite=self._suite,
                                 now=self._now)
            self._sealers[recipient] = sealer
        return sealer

    def receipt(self, record: dict[str, Any]) -> Slot:
        """Queue a receipt record (Receipt v1, or v2 when it carries a decision) to its message's sender."""
        recipient = str(record["sender_authority"])
        return Slot(recipient, add_receipt(self._sealer(recipient), record))

    def document(self, payload: bytes, *, recipient: str, document_type: str) -> Slot:
        """Queue another answer document (a BusinessResponse) to ``recipient``."""
        return Slot(recipient, self._sealer(recipient).add(payload, document_type=document_type,
                                                           schema_fingerprint=payload[2:10]))

    def then(self, message_id: str, finish: Finisher) -> None:
        """Run ``finish(get)`` once sealed (``get(slot)`` is the sealed answer); its records are the batch's."""
        self._then.append((message_id, finish))

    def pending(self, message_id: str) -> bool:
        """True if the answers of ``message_id`` are queued in this batch (a copy of it met again)."""
        return any(mid == message_id for mid, _ in self._then)

    def repeat(self, message_id: str) -> None:
        """A duplicate copy met in the same batch: answer it with the same (original) records."""
        self._then.append((message_id, lambda _get: list(self._finished.get(message_id, []))))

    def mark(self) -> int:
        return len(self._then)

    def rollback(self, mark: int) -> None:
        """Forget what was registered since ``mark`` (the endpoint undid that envelope's step)."""
        del self._then[mark:]

    def finish(self) -> list[Outgoing]:
        """Seal every queued answer (one batch per recipient), then run the registered steps in order."""
        if self._done:
            raise RuntimeError("finish() runs once per batch of answers")
        self._done = True
        sealed = {recipient: sealer.seal() for recipient, sealer in self._sealers.items()}

        def get(slot: Slot) -> SealedEnvelope:
            return sealed[slot.recipient][slot.index]

        out: list[Outgoing] = []
        for mid, finish in self._then:
            records = finish(get)
            self._finished.setdefault(mid, records)
            out.extend(records)
        return out


# --- the outbound side (issue 13 item 1) ----------------------------------------------------------------------

def new_batch_sealer(me: LocalAuthority, recipient: str, trust: TrustStore, suite: int) -> BatchSealer:
    """The sealer of ONE transaction attempt of the outbound connector: a redo (the Kafka transaction
    aborted, the batch is polled again) calls this again, so it gets a new batch id and batch secret and never
    reuses an AEAD key and nonce with other plaintext (docs/envelope.md §8.4 rule 1)."""
    return BatchSealer(sender=me, recipient=recipient, trust=trust, suite=suite)


def seal_batch(sealer: BatchSealer, taken: Sequence[Any]) -> None:
    """Seal what ``taken`` queued in ``sealer`` and put each envelope in place of its position.

    Each item's ``sealed`` holds its position in the sealer (an int) after ``add``, unless it was refused
    (``error`` set, nothing queued); after this it holds its :class:`SealedEnvelope`.
    """
    envelopes = sealer.seal()
    for t in taken:
        if t.error is None:
            t.sealed = envelopes[t.sealed]
