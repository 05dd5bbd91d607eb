"""The receipt tracker's message state machine: a pure decision and the one compare-and-set that applies it.

A message the outbound connector committed is ``pending`` until exactly ONE outcome is decided:
``delivered`` (a signed ACK for the very bytes sent) or ``dead`` (dead-lettered). The decision is a pure
function of (state, attempts, what happened, last NACK, now) -> :class:`Transition`; no I/O, the clock is
the ``now_ms`` argument. The store applies a transition with :func:`apply_transition`, a compare-and-set on
(message id, state, attempts): a decision taken on a snapshot that is no longer true changes nothing, and
the caller must not act on it (issue 9 item 11: never a resend or a dead letter for a message that is no
longer pending).

::

    pending --ACK--------------------> delivered     (events: receipt_received, delivered)
    pending --NACK retriable---------> pending       (due = min(due, now + backoff(attempts)))
    pending --NACK permanent---------> pending       (due = now; the next tick dead-letters it)
    pending --DUE, permanent NACK----> dead          (dead_lettered: DEAD_LETTER_PERMANENT_NACK)
    pending --DUE, attempts >= max---> dead          (dead_lettered: no receipt after N sends), but only once
                                                     ``now >= hold_until`` (ADR 0601: the envelope's expiry plus
                                                     twice the clock skew); before that:
    pending --DUE, attempts >= max---> pending       (await expiry: no resend, due = hold_until, no event)
    pending --DUE, attempts < max----> pending       (resent; attempts + 1; due = now + timeout + backoff)
    delivered --ACK------------------> delivered     (duplicate receipt: receipt_received only)
    dead --ACK or NACK---------------> dead          (late receipt: receipt_received only, no second outcome)
    delivered|dead --NACK | DUE------> unchanged
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from xborder_gateway.audit import EventType

__all__ = [
    "RETRIABLE_NACKS",
    "Action",
    "MessageState",
    "Stimulus",
    "TrackerPolicy",
    "Transition",
    "apply_transition",
    "dead_letter_horizon_ms",
    "decide_message",
    "is_retriable_nack",
    "mark_dead_letter_produced",
]

# NACK codes after which the SAME bytes are resent (after a backoff); every other NACK code is permanent.
# INTERNAL_ERROR: the endpoint failed unexpectedly on the envelope (issue 9 item 3) -- not the sender's fault.
RETRIABLE_NACKS = frozenset({"CN_TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR"})


class MessageState(enum.StrEnum):
    """A tracked message's state (the values are what ``xbg_messages.state`` holds)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"

    @property
    def terminal(self) -> bool:
        return self is not MessageState.PENDING


class Stimulus(enum.Enum):
    ACK = "ack"  # a signed, matching ACK receipt
    NACK = "nack"  # a signed, matching NACK receipt (``code`` = its reason code)
    DUE = "due"  # the message's due time has passed (the resend task's tick)


class Action(enum.Enum):
    """What the caller does once the transition is applied (and only then)."""

    NONE = "none"  # nothing (e.g. a tick on a message that is no longer pending)
    DELIVER = "deliver"  # count the delivery, observe the latency
    DUPLICATE_RECEIPT = "duplicate_receipt"  # count it
    LATE_RECEIPT = "late_receipt"  # a receipt after the dead letter: record it (audit), count it
    RESCHEDULE = "reschedule"  # a NACK moved the due time
    RESEND = "resend"  # produce the same bytes again under the same id
    DEAD_LETTER = "dead_letter"  # produce the envelope to the dead-letter topic
    AWAIT_EXPIRY = "await_expiry"  # sends exhausted, but the receiver may still accept a copy: wait (ADR 0601)


@dataclass(frozen=True, slots=True)
class TrackerPolicy:
    """The resend policy, from settings: at most ``max_attempts`` sends, the receipt timeout, the backoff
    (milliseconds to wait after the n-th send) and the NACK codes that are retriable."""

    max_attempts: int
    receipt_timeout_ms: int
    backoff_ms: Callable[[int], int]
    retriable_nacks: frozenset[str] = RETRIABLE_NACKS


@dataclass(frozen=True, slots=True)
class Transition:
    """The decided next state. ``next_due_ms``/``last_nack`` None = unchanged; ``events`` are the audit event
    types the step writes (in order); ``reason`` is the dead letter's why or the NACK code."""

    state: MessageState
    attempts: int
    action: Action
    next_due_ms: int | None = None
    last_nack: str | None = None
    events: tuple[EventType, ...] = ()
    reason: str | None = None

    @property
    def changes_state(self) -> bool:
        return self.action in (Action.DELIVER, Action.RESCHEDULE, Action.RESEND, Action.DEAD_LETTER,
                               Action.AWAIT_EXPIRY)


def dead_letter_horizon_ms(expires_ms: int, max_clock_skew_ms: int) -> int:
    """The earliest time (sender's clock) at which NO receiver can accept any copy of an envelope that
    expires at ``expires_ms``: the receiver refuses it once its clock is past ``expires + skew`` (ENV-8), and
    its clock may be up to ``skew`` behind ours, hence twice the skew, plus 1 ms because the receiver still
    accepts at exactly ``expires + skew`` (ENV-8 refuses only ``now > expires + skew``) (ADR 0601)."""
    return expires_ms + 2 * max(0, max_clock_skew_ms) + 1


def is_retriable_nack(code: str | None, policy: TrackerPolicy) -> bool:
    return code is not None and code in policy.retriable_nacks


def decide_message(  # noqa: PLR0911 - one return per edge of the state machine
    state: MessageState,
    attempts: int,
    stimulus: Stimulus,
    *,
    now_ms: int,
    policy: TrackerPolicy,
    code: str | None = None,
    last_nack: str | None = None,
    due_ms: int | None = None,
    hold_until_ms: int | None = None,
) -> Transition:
    """The next state of one message (pure; see the module docstring for the table).

    ``code`` is the NACK's reason code (``Stimulus.NACK``); ``last_nack`` and ``due_ms`` are the stored
    message's last NACK code and due time. ``hold_until_ms`` (ADR 0601) is the message's
    :func:`dead_letter_horizon_ms`: a message whose sends are exhausted is dead-lettered for "no receipt" only
    from then on (until then a copy may still be waiting for the link and be processed later); None = at once
    (the ``attempts`` horizon).
    """
    received = (EventType.RECEIPT_RECEIVED,)
    if stimulus is Stimulus.ACK:
        if state is MessageState.PENDING:
            return Transition(MessageState.DELIVERED, attempts, Action.DELIVER,
                              events=(EventType.RECEIPT_RECEIVED, EventType.DELIVERED))
        if state is MessageState.DELIVERED:
            return Transition(state, attempts, Action.DUPLICATE_RECEIPT, events=received)
        # issue 9 item 11: the outcome (dead letter) was decided once; a late ACK is recorded, never acted on
        return Transition(state, attempts, Action.LATE_RECEIPT, events=received, reason="RECEIPT_AFTER_DEAD_LETTER")
    if stimulus is Stimulus.NACK:
        nack = code or "NACK"
        if state is MessageState.DEAD:
            return Transition(state, attempts, Action.LATE_RECEIPT, events=received, reason=nack)
        if state is not MessageState.PENDING:
            return Transition(state, attempts, Action.NONE, events=received, reason=nack)
        if is_retriable_nack(nack, policy):  # resend after the backoff rather than the full timeout
            soon = now_ms + policy.backoff_ms(attempts)
            return Transition(state, attempts, Action.RESCHEDULE, next_due_ms=min(soon, due_ms) if due_ms else soon,
                              last_nack=nack, events=received, reason=nack)
        # permanent: due at once, the next tick dead-letters it
        return Transition(state, attempts, Action.RESCHEDULE, next_due_ms=now_ms, last_nack=nack, events=received,
                          reason=nack)
    # Stimulus.DUE: the only way to a resend or a dead letter, and only from pending
    if state is not MessageState.PENDING:
        return Transition(state, attempts, Action.NONE)
    if last_nack is not None and not is_retriable_nack(last_nack, policy):
        return Transition(MessageState.DEAD, attempts, Action.DEAD_LETTER, events=(EventType.DEAD_LETTERED,),
                          reason=f"NACK {last_nack}")
    if attempts >= policy.max_attempts:
        if hold_until_ms is not None and now_ms < hold_until_ms:
            # ADR 0601 (issue 11 item 5): a link outage must not become a dead letter -- while any copy may
            # still cross and be accepted, deciding "dead" could give the message a second outcome at CN
            return Transition(state, attempts, Action.AWAIT_EXPIRY, next_due_ms=hold_until_ms,
                              reason="AWAITING_EXPIRY")
        return Transition(MessageState.DEAD, attempts, Action.DEAD_LETTER, events=(EventType.DEAD_LETTERED,),
                          reason=f"no receipt after {attempts} sends")
    return Transition(state, attempts + 1, Action.RESEND,
                      next_due_ms=now_ms + policy.receipt_timeout_ms + policy.backoff_ms(attempts),
                      events=(EventType.RESENT,))


def apply_transition(conn: sqlite3.Connection, message_id: str, *, expected_state: MessageState,
                     expected_attempts: int, transition: Transition, now_ms: int, receipt: bool = False) -> bool:
    """THE compare-and-set of a message's state (the only place that writes ``state``/``attempts`` of a
    tracked message). Applies ``transition`` only if the row still has ``expected_state`` and
    ``expected_attempts``; returns whether it did. ``receipt`` counts one more receipt for the message.

    A ``dead`` transition leaves ``dead_letter_ms`` NULL: the dead-letter record is still to be produced
    (:func:`mark_dead_letter_produced` once it is), so a crash in between produces it after the restart.
    """
    delivered_ms = now_ms if transition.state is MessageState.DELIVERED else None
    cur = conn.execute(
        "UPDATE xbg_messages SET state = ?, attempts = ?, next_due_ms = coalesce(?, next_due_ms), "
        "last_nack = coalesce(?, last_nack), delivered_ms = coalesce(?, delivered_ms), receipts = receipts + ? "
        "WHERE message_id = ? AND state = ? AND attempts = ?",
        (transition.state.value, transition.attempts, transition.next_due_ms, transition.last_nack, delivered_ms,
         1 if receipt else 0, message_id, expected_state.value, expected_attempts))
    return cur.rowcount == 1


def mark_dead_letter_produced(conn: sqlite3.Connection, message_id: str, now_ms: int) -> None:
    """The dead-letter record of a ``dead`` message is on the dead-letter topic."""
    conn.execute("UPDATE xbg_messages SET dead_letter_ms = ? WHERE message_id = ? AND state = 'dead' "
                 "AND dead_letter_ms IS NULL", (now_ms, message_id))
