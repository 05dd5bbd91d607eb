"""``xborder run outbound --crash-after N`` (tests, issue 11 item 5): the outbound connector dies with its
Kafka transaction open, deterministically.

Once the connector has produced N **envelopes** in total (records on its exchange topics; status-feed and
rejection records do not count, so the fatal batch always holds envelopes), it exits (code 17, no cleanup,
as after ``kill -9``) inside the batch's open transaction: after the batch's records are in the log and
before the commit. The transaction is then aborted by the restarted instance's ``init_transactions`` (or
by its timeout), so its envelopes are in the log but never visible to read_committed readers -- the link's
MirrorMaker among them. The redone batch seals new envelopes under new message ids (ADR 0400 decision 4).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from xborder_gateway.connectors._common import log_line
from xborder_gateway.connectors._runtime import Runtime
from xborder_gateway.transport import Outgoing

__all__ = ["CRASH_EXIT_CODE", "crash_in_transaction"]

CRASH_EXIT_CODE = 17  # as the endpoint's --crash-after (xborder run --help)
_produced: dict[int, int] = {}  # envelopes produced so far, per runtime (one per process in practice)


def crash_in_transaction(rt: Runtime, outputs: Sequence[Outgoing]) -> None:
    """The ``before_commit`` hook of the outbound role: count the batch's envelopes, die once N are out."""
    limit = getattr(rt.options, "crash_after", None)
    if limit is None:
        return
    exchange = {rt.settings.topic_exchange, rt.settings.topic_exchange_priority}
    envelopes = sum(1 for o in outputs if o.topic in exchange)
    done = _produced[id(rt)] = _produced.get(id(rt), 0) + envelopes
    if done >= limit:
        log_line(logging.ERROR, "fault: crashing with the transaction open (--crash-after)", produced=done)
        logging.shutdown()
        os._exit(CRASH_EXIT_CODE)  # no cleanup on purpose: the transaction stays open, then is aborted
