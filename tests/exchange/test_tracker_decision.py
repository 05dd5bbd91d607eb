"""The receipt tracker's decision (issue 9 items 11, 12), through its interface: a pure function of
(state, attempts, stimulus, NACK code, last NACK, now) with an injected clock -- no SQLite, no Kafka."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from xborder_gateway.audit import EventType
from xborder_gateway.exchange import (
    RETRIABLE_NACKS,
    Action,
    MessageState,
    Stimulus,
    TrackerPolicy,
    Transition,
    decide_message,
)

NOW = 1_000_000
POLICY = TrackerPolicy(max_attempts=3, receipt_timeout_ms=10_000,
                       backoff_ms=lambda sends: min(60_000, 1000 * 2 ** min(max(sends, 1) - 1, 16)))
P, D, X = MessageState.PENDING, MessageState.DELIVERED, MessageState.DEAD
E = EventType


@dataclass(frozen=True)
class Case:
    name: str
    state: MessageState
    attempts: int
    stimulus: Stimulus
    expect: Transition
    code: str | None = None
    last_nack: str | None = None
    due_ms: int | None = None


CASES = [
    # attempts threshold: resend until max sends, then dead letter (and not one send earlier)
    Case("first timeout: resend", P, 1, Stimulus.DUE,
         Transition(P, 2, Action.RESEND, next_due_ms=NOW + 10_000 + 1000, events=(E.RESENT,))),
    Case("second timeout: resend with a longer backoff", P, 2, Stimulus.DUE,
         Transition(P, 3, Action.RESEND, next_due_ms=NOW + 10_000 + 2000, events=(E.RESENT,))),
    Case("max sends reached: dead letter", P, 3, Stimulus.DUE,
         Transition(X, 3, Action.DEAD_LETTER, events=(E.DEAD_LETTERED,), reason="no receipt after 3 sends")),
    Case("beyond max (settings lowered): dead letter", P, 7, Stimulus.DUE,
         Transition(X, 7, Action.DEAD_LETTER, events=(E.DEAD_LETTERED,), reason="no receipt after 7 sends")),
    # a permanent NACK: due at once, then dead-lettered at the first tick whatever the attempts
    Case("permanent NACK: due now", P, 1, Stimulus.NACK,
         Transition(P, 1, Action.RESCHEDULE, next_due_ms=NOW, last_nack="ENV-7 SIGNATURE_INVALID",
                    events=(E.RECEIPT_RECEIVED,), reason="ENV-7 SIGNATURE_INVALID"),
         code="ENV-7 SIGNATURE_INVALID", due_ms=NOW + 9000),
    Case("tick after a permanent NACK: dead letter at once", P, 1, Stimulus.DUE,
         Transition(X, 1, Action.DEAD_LETTER, events=(E.DEAD_LETTERED,), reason="NACK ENV-10 MESSAGE_ID_REUSED"),
         last_nack="ENV-10 MESSAGE_ID_REUSED"),
    Case("NACK without code counts as permanent", P, 1, Stimulus.NACK,
         Transition(P, 1, Action.RESCHEDULE, next_due_ms=NOW, last_nack="NACK", events=(E.RECEIPT_RECEIVED,),
                    reason="NACK")),
    # retriable NACKs: brought forward to now + backoff (never pushed back), resent, not dead-lettered
    Case("transient NACK: resend after the backoff", P, 2, Stimulus.NACK,
         Transition(P, 2, Action.RESCHEDULE, next_due_ms=NOW + 2000, last_nack="CN_TEMPORARILY_UNAVAILABLE",
                    events=(E.RECEIPT_RECEIVED,), reason="CN_TEMPORARILY_UNAVAILABLE"),
         code="CN_TEMPORARILY_UNAVAILABLE", due_ms=NOW + 9000),
    Case("INTERNAL_ERROR NACK is retriable", P, 1, Stimulus.NACK,
         Transition(P, 1, Action.RESCHEDULE, next_due_ms=NOW + 1000, last_nack="INTERNAL_ERROR",
                    events=(E.RECEIPT_RECEIVED,), reason="INTERNAL_ERROR"),
         code="INTERNAL_ERROR", due_ms=NOW + 9000),
    Case("transient NACK never delays an earlier due time", P, 1, Stimulus.NACK,
         Transition(P, 1, Action.RESCHEDULE, next_due_ms=NOW + 500, last_nack="INTERNAL_ERROR",
                    events=(E.RECEIPT_RECEIVED,), reason="INTERNAL_ERROR"),
         code="INTERNAL_ERROR", due_ms=NOW + 500),
    Case("tick after a retriable NACK: resend", P, 1, Stimulus.DUE,
         Transition(P, 2, Action.RESEND, next_due_ms=NOW + 11_000, events=(E.RESENT,)),
         last_nack="INTERNAL_ERROR"),
    Case("retriable NACK at max sends: dead letter by the threshold", P, 3, Stimulus.DUE,
         Transition(X, 3, Action.DEAD_LETTER, events=(E.DEAD_LETTERED,), reason="no receipt after 3 sends"),
         last_nack="CN_TEMPORARILY_UNAVAILABLE"),
    # ACKs
    Case("ACK on pending: delivered", P, 2, Stimulus.ACK,
         Transition(D, 2, Action.DELIVER, events=(E.RECEIPT_RECEIVED, E.DELIVERED))),
    Case("ACK again: duplicate receipt", D, 2, Stimulus.ACK,
         Transition(D, 2, Action.DUPLICATE_RECEIPT, events=(E.RECEIPT_RECEIVED,))),
    Case("ACK after the dead letter: recorded, no second outcome", X, 3, Stimulus.ACK,
         Transition(X, 3, Action.LATE_RECEIPT, events=(E.RECEIPT_RECEIVED,), reason="RECEIPT_AFTER_DEAD_LETTER")),
    # nothing moves a settled message
    Case("NACK after delivery: ignored", D, 1, Stimulus.NACK,
         Transition(D, 1, Action.NONE, events=(E.RECEIPT_RECEIVED,), reason="INTERNAL_ERROR"), code="INTERNAL_ERROR"),
    Case("NACK after the dead letter: late receipt", X, 1, Stimulus.NACK,
         Transition(X, 1, Action.LATE_RECEIPT, events=(E.RECEIPT_RECEIVED,), reason="ENV-6 DECRYPT_FAILED"),
         code="ENV-6 DECRYPT_FAILED"),
    Case("tick on a delivered message: nothing (stale snapshot)", D, 1, Stimulus.DUE, Transition(D, 1, Action.NONE)),
    Case("tick on a dead message: nothing (stale snapshot)", X, 3, Stimulus.DUE, Transition(X, 3, Action.NONE)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decision_table(case: Case) -> None:
    got = decide_message(case.state, case.attempts, case.stimulus, now_ms=NOW, policy=POLICY, code=case.code,
                         last_nack=case.last_nack, due_ms=case.due_ms)
    assert got == case.expect


def test_only_a_due_tick_on_pending_resends_or_dead_letters() -> None:
    """Exhaustive over states x stimuli x codes: RESEND / DEAD_LETTER only from (pending, DUE), and no
    transition ever leaves a terminal state."""
    codes = [None, "INTERNAL_ERROR", "CN_TEMPORARILY_UNAVAILABLE", "ENV-7 SIGNATURE_INVALID"]
    for state in MessageState:
        for stimulus in Stimulus:
            for attempts in (0, 1, 2, 3, 4, 2**31):
                for code in codes:
                    t = decide_message(state, attempts, stimulus, now_ms=NOW, policy=POLICY, code=code,
                                       last_nack=code)
                    if t.action in (Action.RESEND, Action.DEAD_LETTER):
                        assert (state, stimulus) == (P, Stimulus.DUE)
                    if state.terminal:
                        assert t.state is state, f"{state} left by {stimulus}"
                    assert t.attempts in (attempts, attempts + 1)
                    if t.action is Action.RESEND:
                        assert t.attempts == attempts + 1 <= POLICY.max_attempts


def test_injected_clock_decides_the_due_time() -> None:
    for now in (0, NOW, 2**62):
        t = decide_message(P, 1, Stimulus.DUE, now_ms=now, policy=POLICY)
        assert t.next_due_ms == now + 10_000 + 1000


def test_retriable_codes_are_exactly_the_documented_ones() -> None:
    assert frozenset({"CN_TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR"}) == RETRIABLE_NACKS
