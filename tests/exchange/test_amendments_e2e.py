"""Amendments from the generator (issue 15 item 4) cross the real exchange: the same declaration number
with different bytes is an amendment (ADR 0401), sent and delivered, never refused as a duplicate; the
endpoint receives original and amendment in order (same key, same partition)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import RUN, Exchange, new_exchange

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def exchange(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str) -> Iterator[Exchange]:
    ex = new_exchange(tmp_path, kafka_bootstrap, topic_prefix)
    try:
        yield ex
    finally:
        ex.stop_all()


async def test_generated_amendments_are_delivered_after_their_originals(exchange: Exchange) -> None:
    from xborder_gateway.connectors import publish_documents
    from xborder_gateway.samples import generate_mix

    ex = exchange
    ex.start("nanning")
    ex.start("receipts")
    ex.start("outbound")
    samples = list(generate_mix(400, seed=27, amendments=True))
    amendments = [s for s in samples if s.amendment]
    assert len(amendments) >= 2
    await publish_documents(ex.settings, [(x.business_key, x.xml) for x in samples], run=RUN)
    await asyncio.to_thread(ex.wait_for, lambda s: s.settled >= len(samples), 180, "every document settled")
    summary = ex.settled()
    invalid = [x for x in samples if x.broken_rule is not None]
    assert "DUPLICATE_SUBMISSION" not in summary.rejected_by_reason
    assert summary.rejected == len(invalid)
    assert summary.delivered == len(samples) - len(invalid)
    per_key = ex.cn_processed_keys()
    for amendment in amendments:
        assert per_key[amendment.business_key] == 2, amendment.name  # the original, then its amendment
