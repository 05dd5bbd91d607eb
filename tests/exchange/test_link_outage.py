"""Issue 11 item 5: a link outage must not turn into dead letters (ADR 0601).

The tracker dead-letters a message that got no receipt after its sends only once NO copy of it can still be
accepted by the receiver: the envelope's expiry plus twice the clock skew (ENV-8). Until then the message
stays pending without further resends. Decision level (pure, injected clock) and claim level (SQLite, the
real envelope bytes, the real ENV-8 check), no Kafka. The real two-site run is in tests/link/test_faults.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from xborder_gateway.audit import EventType
from xborder_gateway.connectors._common import H_BUSINESS_KEY
from xborder_gateway.connectors.receipts import ReceiptTracker
from xborder_gateway.envelope import DEFAULT_LIMITS, EnvelopeOpenError, SealedEnvelope, open_envelope, seal
from xborder_gateway.exchange import (
    Action,
    MessageState,
    StatusKind,
    Stimulus,
    TrackerPolicy,
    Transition,
    dead_letter_horizon_ms,
    decide_message,
    read_status,
)

from .conftest import Home, make_home
from .test_endpoint_and_tracker import _incoming, _payload
from .test_tracker_claims import _receipt, _row

NOW = 1_000_000
HOLD = NOW + 60_000
POLICY = TrackerPolicy(max_attempts=3, receipt_timeout_ms=10_000, backoff_ms=lambda sends: 1000 * sends)
P, X = MessageState.PENDING, MessageState.DEAD
E = EventType
SKEW_MS = int(DEFAULT_LIMITS.max_clock_skew.total_seconds() * 1000)


@dataclass(frozen=True)
class Case:
    name: str
    attempts: int
    stimulus: Stimulus
    hold_until_ms: int | None
    expect: Transition
    now_ms: int = NOW
    last_nack: str | None = None
    code: str | None = None


CASES = [
    Case("sends exhausted before the horizon: wait, no resend, no event", 3, Stimulus.DUE, HOLD,
         Transition(P, 3, Action.AWAIT_EXPIRY, next_due_ms=HOLD, reason="AWAITING_EXPIRY")),
    Case("sends exhausted 1 ms before the horizon: still wait", 3, Stimulus.DUE, HOLD,
         Transition(P, 3, Action.AWAIT_EXPIRY, next_due_ms=HOLD, reason="AWAITING_EXPIRY"), now_ms=HOLD - 1),
    Case("sends exhausted at the horizon: dead letter", 3, Stimulus.DUE, HOLD,
         Transition(X, 3, Action.DEAD_LETTER, events=(E.DEAD_LETTERED,), reason="no receipt after 3 sends"),
         now_ms=HOLD),
    Case("sends exhausted past the horizon: dead letter", 5, Stimulus.DUE, HOLD,
         Transition(X, 5, Action.DEAD_LETTER, events=(E.DEAD_LETTERED,), reason="no receipt after 5 sends"),
         now_ms=HOLD + 10**9),
    Case("sends left: the horizon does not stop a resend", 2, Stimulus.DUE, HOLD,
         Transition(P, 3, Action.RESEND, next_due_ms=NOW + 10_000 + 2000, events=(E.RESENT,))),
    Case("no horizon (attempts mode): dead letter at once", 3, Stimulus.DUE, None,
         Transition(X, 3, Action.DEAD_LETTER, events=(E.DEAD_LETTERED,), reason="no receipt after 3 sends")),
    # the receiver answered: a permanent NACK is final (the same bytes are refused again), no waiting
    Case("permanent NACK before the horizon: dead letter at once", 1, Stimulus.DUE, HOLD,
         Transition(X, 1, Action.DEAD_LETTER, events=(E.DEAD_LETTERED,), reason="NACK ENV-7 SIGNATURE_INVALID"),
         last_nack="ENV-7 SIGNATURE_INVALID"),
    Case("retriable NACK while waiting: rescheduled, then waits again", 3, Stimulus.DUE, HOLD,
         Transition(P, 3, Action.AWAIT_EXPIRY, next_due_ms=HOLD, reason="AWAITING_EXPIRY"),
         last_nack="CN_TEMPORARILY_UNAVAILABLE"),
    Case("ACK while waiting (link restored): delivered", 3, Stimulus.ACK, HOLD,
         Transition(MessageState.DELIVERED, 3, Action.DELIVER, events=(E.RECEIPT_RECEIVED, E.DELIVERED))),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_decision(case: Case) -> None:
    got = decide_message(P, case.attempts, case.stimulus, now_ms=case.now_ms, policy=POLICY, code=case.code,
                         last_nack=case.last_nack, hold_until_ms=case.hold_until_ms)
    assert got == case.expect


def test_await_expiry_moves_the_due_time_so_it_is_claimed_once() -> None:
    step = decide_message(P, 3, Stimulus.DUE, now_ms=NOW, policy=POLICY, hold_until_ms=HOLD)
    assert step.changes_state, "the due time must move to the horizon (else every tick re-decides it)"


@pytest.mark.parametrize(("expires", "skew", "horizon"), [
    (0, 0, 1), (1_000, 300_000, 601_001), (10**15, 300_000, 10**15 + 600_001), (5, -7, 6)])
def test_horizon(expires: int, skew: int, horizon: int) -> None:
    assert dead_letter_horizon_ms(expires, skew) == horizon


# --- claim level: SQLite, real envelope bytes, the real ENV-8 check ------------------------------------------
TTL = timedelta(hours=1)


@pytest.fixture
def expiry(tmp_path: Any) -> Home:
    """Default ``exchange_dead_letter_after`` (expiry), 3 sends."""
    return make_home(tmp_path / "expiry", exchange_resend_max_attempts=3, exchange_backoff_jitter_s=0)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _tracked(home: Home) -> tuple[ReceiptTracker, SealedEnvelope, datetime]:
    """A tracked envelope sealed now (within the home's fresh keys' validity) with a one-hour ttl."""
    created = datetime.now(UTC).replace(microsecond=0)
    assert home.settings.exchange_dead_letter_after == "expiry", "the default is the expiry horizon"
    payload = _payload("100000000001")
    env = seal(payload, sender=home.vn, recipient="CN", trust=home.vn_trust, document_type="IDA",
               schema_fingerprint=payload[2:10], ttl=TTL, now=created)
    tracker = ReceiptTracker(home.settings, home.vn, home.vn_trust)
    sent = _incoming(home.settings.topic_exchange, env)
    sent = dataclasses.replace(sent, headers=(*sent.headers, (H_BUSINESS_KEY, b"100000000001")))
    tracker.consume([sent])
    return tracker, env, created


def _claim(tracker: ReceiptTracker, at: datetime | int) -> Any:
    now = at if isinstance(at, int) else _ms(at)
    return tracker.claim(tracker.due(now=now), now=now)


def test_link_outage_longer_than_the_sends_is_not_dead_lettered_until_the_envelope_expires(expiry: Home) -> None:
    tracker, env, created = _tracked(expiry)
    t = created + timedelta(minutes=1)
    assert len(_claim(tracker, t).resend) == 1
    assert len(_claim(tracker, t + timedelta(minutes=1)).resend) == 1
    claims = _claim(tracker, t + timedelta(minutes=2))  # sends exhausted, the link still down
    assert (claims.resend, claims.dead, claims.events) == ([], [], [])
    assert [m.message_id for m in claims.awaiting] == [str(env.message_id)]
    assert _row(tracker, env) == ("pending", 3, None)
    horizon = dead_letter_horizon_ms(_ms(created + TTL), SKEW_MS)
    assert tracker.conn.execute("SELECT next_due_ms FROM xbg_messages").fetchone()[0] == horizon
    # nothing more to do before the horizon: not due, so no repeated decision either
    assert tracker.due(now=horizon - 1) == []
    late = _claim(tracker, horizon)
    assert [(m.message_id, why) for m, why in late.dead] == [(str(env.message_id), "no receipt after 3 sends")]
    assert [e.event_type for e in late.events] == [EventType.DEAD_LETTERED]
    assert _row(tracker, env)[0] == "dead"
    tracker.close()


def test_the_horizon_is_when_the_receiver_refuses_every_copy(expiry: Home) -> None:
    """The property the horizon stands on (ENV-8 at the receiver, clocks within the skew): a receiver whose
    clock is up to one skew behind the tracker's accepts the envelope 1 ms before the horizon and refuses it
    at the horizon."""
    tracker, env, created = _tracked(expiry)
    horizon = dead_letter_horizon_ms(_ms(created + TTL), SKEW_MS)
    behind = timedelta(milliseconds=SKEW_MS)
    just_before = datetime.fromtimestamp((horizon - 1) / 1000, UTC) - behind
    open_envelope(env.data, me=expiry.cn, trust=expiry.cn_trust, replay=None, now=just_before)
    at = datetime.fromtimestamp(horizon / 1000, UTC) - behind
    with pytest.raises(EnvelopeOpenError) as caught:
        open_envelope(env.data, me=expiry.cn, trust=expiry.cn_trust, replay=None, now=at)
    assert caught.value.code == "ENV-8 EXPIRED"
    tracker.close()


def test_receipt_after_the_link_comes_back_delivers_once(expiry: Home) -> None:
    tracker, env, created = _tracked(expiry)
    for minutes in (1, 2, 3):
        _claim(tracker, created + timedelta(minutes=minutes))
    res = tracker.consume([_receipt(expiry, env)])
    assert (res.counts["delivered"], res.counts["late_receipt"]) == (1, 0)
    assert _row(tracker, env)[0] == "delivered"
    again = _claim(tracker, 10**14)
    assert (again.resend, again.dead, again.awaiting) == ([], [], [])
    tracker.close()


def test_receipt_after_the_dead_letter_records_a_late_receipt_and_no_second_outcome(expiry: Home) -> None:
    tracker, env, created = _tracked(expiry)
    for minutes in (1, 2, 3):
        _claim(tracker, created + timedelta(minutes=minutes))
    assert _claim(tracker, 10**14).dead
    res = tracker.consume([_receipt(expiry, env)])
    assert (res.counts["delivered"], res.counts["late_receipt"]) == (0, 1)
    assert [(e.event_type, e.reason_code) for e in res.events] == [
        (EventType.RECEIPT_RECEIVED, "RECEIPT_AFTER_DEAD_LETTER")]
    status = [read_status(r.value) for r in res.outputs]
    assert [(c.kind, c.message_id) for c in status] == [(StatusKind.LATE_RECEIPT, str(env.message_id))]
    assert _row(tracker, env)[0] == "dead"
    tracker.close()


def test_attempts_mode_dead_letters_at_once(tmp_path: Any) -> None:
    """The control: with ``exchange_dead_letter_after = attempts`` the same outage is dead-lettered as soon as
    the sends are exhausted, hours before the envelope expires (the two-outcome hazard of issue 11)."""
    home = make_home(tmp_path / "attempts", exchange_resend_max_attempts=3, exchange_backoff_jitter_s=0,
                     exchange_dead_letter_after="attempts")
    tracker = ReceiptTracker(home.settings, home.vn, home.vn_trust)
    created = datetime.now(UTC).replace(microsecond=0)
    payload = _payload("100000000001")
    env = seal(payload, sender=home.vn, recipient="CN", trust=home.vn_trust, document_type="IDA",
               schema_fingerprint=payload[2:10], ttl=TTL, now=created)
    tracker.consume([_incoming(home.settings.topic_exchange, env)])
    for minutes in (1, 2):
        _claim(tracker, created + timedelta(minutes=minutes))
    assert _claim(tracker, created + timedelta(minutes=3)).dead
    tracker.close()
