"""Publish XML documents to the intake topic (``xborder publish``, the demo, tests, the benchmark)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from xborder_gateway.config import Settings
from xborder_gateway.connectors._common import H_PUBLISHED_MS, H_RUN, now_ms
from xborder_gateway.transport import (
    ensure_gateway_topics,
    kafka_boundary,
    make_producer,
)

__all__ = ["publish_documents"]

Progress = Callable[[int], None]


async def publish_documents(
    settings: Settings,
    documents: Iterable[tuple[str | None, bytes]],
    *,
    run: str | None = None,
    progress: Progress | None = None,
    rate_per_s: float | None = None,
    window: int = 2000,
) -> int:
    """Produce ``(key, xml)`` pairs to the intake topic (idempotent producer, acks=all); returns the count.

    ``rate_per_s`` paces the sends (benchmarks at a fixed offered rate); each record carries its publish
    time (``xbg-published-ms``) and the optional ``run`` id, which the gateway carries end to end.
    """
    await ensure_gateway_topics(settings)
    producer: Any = make_producer(settings.bootstrap, client_id="xbg-publish", linger_ms=5)
    with kafka_boundary("start producer"):
        await producer.start()
    sent = 0
    pending: list[Any] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        with kafka_boundary("publish"):
            for key, xml in documents:
                if rate_per_s:
                    due = start + sent / rate_per_s
                    delay = due - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                headers = [(H_PUBLISHED_MS, str(now_ms()).encode())]
                if run:
                    headers.append((H_RUN, run.encode()))
                pending.append(await producer.send(settings.topic_intake, value=xml,
                                                   key=key.encode() if key else None, headers=headers))
                sent += 1
                if len(pending) >= window:
                    await asyncio.gather(*pending)
                    pending.clear()
                    if progress:
                        progress(sent)
            if pending:
                await asyncio.gather(*pending)
            if progress:
                progress(sent)
    finally:
        await producer.stop()
    return sent
