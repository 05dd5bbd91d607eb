"""The demo's part of issue 15 (item 5), kept out of ``_cli/commands/demo.py``: a short grace period for
vehicles waiting for their declarations (demo only, and said so), amendments that release holds in the
generated stream, waiting until every waiting vehicle is decided, and the ``pending`` figure."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

__all__ = ["DEMO_GRACE_S", "demo_documents", "demo_env", "pending_lines", "wait_for_pending"]

DEMO_GRACE_S = 20.0
"""The demo's ``exchange_linked_grace_s`` (the default is 600 s): an orphan vehicle is answered within a
demo's patience. ``XBG_EXCHANGE_LINKED_GRACE_S`` in the environment wins."""

_GRACE_ENV = "XBG_EXCHANGE_LINKED_GRACE_S"


def demo_env(env: MutableMapping[str, str]) -> float:
    """Give the connectors' environment the demo's grace period (unless one is set); returns it."""
    env.setdefault(_GRACE_ENV, f"{DEMO_GRACE_S:g}")
    return float(env[_GRACE_ENV])


def demo_documents(count: int, seed: int, invalid_ratio: float) -> Iterator[tuple[str | None, bytes]]:
    """The generated stream with amendments that release holds (``generate_mix(amendments=True)``)."""
    from xborder_gateway.samples import generate_mix

    for s in generate_mix(count, seed, invalid_ratio=invalid_ratio, amendments=True):
        yield s.business_key, s.xml


def _counts(vn_db: Path, cn_db: Path, run: str) -> tuple[dict[str, int], int]:
    from xborder_gateway.connectors._pending_endpoint import pending_summary

    with contextlib.closing(sqlite3.connect(cn_db, timeout=10)) as cn, \
            contextlib.closing(sqlite3.connect(vn_db, timeout=10)) as vn:
        try:
            pending = pending_summary(cn, run)
        except sqlite3.OperationalError:  # the endpoint has not created its tables
            pending = {"pending_then_decided": 0, "expired": 0, "still_pending": 0, "released": 0}
        with contextlib.suppress(sqlite3.OperationalError):
            pending["expired_links_rejected_at_intake"] = _orphans_explained(cn, vn, run)
        undecided = int(vn.execute("SELECT count(*) FROM xbg_messages WHERE run = ? AND state = 'delivered' AND "
                                   "business_status IS NULL", (run,)).fetchone()[0])
    return pending, undecided


def _orphans_explained(cn: sqlite3.Connection, vn: sqlite3.Connection, run: str) -> int:
    """Expired vehicles of ``run`` every one of whose missing declarations was refused at VN's intake (the
    generator's invalid documents): true orphans, not a race."""
    rejected = {str(k) for (k,) in vn.execute("SELECT business_key FROM xbg_rejected WHERE run = ? AND "
                                               "business_key IS NOT NULL", (run,))}
    explained = 0
    for (vehicle,) in cn.execute("SELECT business_key FROM cn_vehicle_messages WHERE run = ? AND "
                                 "cause = 'GRACE_EXPIRED'", (run,)).fetchall():
        missing = {str(k) for (k,) in cn.execute(
            "SELECT declaration_number FROM cn_vehicle_links WHERE vehicle_key = ? AND declaration_number NOT IN "
            "(SELECT business_key FROM cn_declarations)", (vehicle,))}
        explained += bool(missing) and missing <= rejected
    return explained


def wait_for_pending(vn_db: Path, cn_db: Path, run: str, deadline: float,
                     say: Callable[[str], None]) -> dict[str, int]:
    """After every document settled: wait (until ``deadline``, monotonic) until no vehicle is PENDING at the
    endpoint and every delivered message has its business response at the tracker; returns the figure."""
    last = ""
    pending, undecided = _counts(vn_db, cn_db, run)
    while (pending["still_pending"] or undecided) and time.monotonic() < deadline:
        line = (f"demo: {pending['still_pending']} vehicle(s) PENDING at the endpoint, {undecided} delivered "
                "without a business response yet")
        if line != last:
            say(line)
            last = line
        time.sleep(0.5)
        pending, undecided = _counts(vn_db, cn_db, run)
    return pending


def pending_lines(result: dict[str, Any]) -> list[str]:
    p = result.get("pending") or {}
    grace = result.get("linked_grace_s")
    return [
        f"  linked-declaration grace    {grace:g} s (demo only; default 600 s, setting exchange_linked_grace_s)"
        if grace is not None else "",
        f"  vehicles PENDING, decided   {p.get('pending_then_decided', 0)} when their declarations arrived, "
        f"{p.get('expired', 0)} after the grace (LINKED_DECLARATION_UNKNOWN), {p.get('still_pending', 0)} "
        "still waiting",
        f"    expired: linked declaration refused at VN intake (never sent) "
        f"{p.get('expired_links_rejected_at_intake', 0)} of {p.get('expired', 0)}",
        f"  holds released              {p.get('released', 0)} by amendments (a new business response ACCEPTED)",
    ]
