"""Graceful shutdown: SIGTERM / SIGINT set an event the loops watch between batches."""

from __future__ import annotations

import asyncio
import contextlib
import signal

__all__ = ["install_shutdown"]


def install_shutdown(stop: asyncio.Event) -> None:
    """On SIGTERM or SIGINT, set ``stop``: the loop finishes (or aborts) its batch and exits."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
