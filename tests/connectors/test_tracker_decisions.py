"""The receipt tracker's refusal of what does not belong on the receipts topic (``connectors/receipts.py``):
a correctly sealed envelope from the counterpart that is not a business response changes nothing but the
``bad_receipt`` counter -- no business status, no status-feed record, no audit event."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from xborder_gateway import avro
from xborder_gateway.connectors import ReceiptTracker
from xborder_gateway.connectors._common import H_KIND, H_MESSAGE_ID
from xborder_gateway.envelope import seal
from xborder_gateway.transport import Incoming

from ..exchange.conftest import Home  # noqa: TID252 - tests/ is no package on sys.path (import-mode=importlib)

CASES = [("IDA", False), ("RECEIPT", False), ("BUSINESS_RESPONSE_V0", False),
         ("BUSINESS_RESPONSE", True)]  # the control: the same envelope as a business response is taken


@pytest.mark.parametrize(("document_type", "taken"), CASES, ids=[c[0] for c in CASES])
def test_sealed_envelope_of_another_type_on_the_receipts_topic_changes_nothing(home: Home, document_type: str,
                                                                                taken: bool) -> None:
    payload = avro.encode("BusinessResponse", {
        "message_id": "01a23318-0000-7000-8000-000000000001", "business_key": "100000000001",
        "document_type": "IDA", "status": "ACCEPTED", "reasons": [], "responded_at": datetime.now(UTC)})
    env = seal(payload, sender=home.cn, recipient="VN", trust=home.cn_trust, document_type=document_type,
               schema_fingerprint=payload[2:10])
    tracker = ReceiptTracker(home.settings, home.vn, home.vn_trust)
    try:
        record = Incoming(home.settings.topic_receipts, 0, 0, b"k", env.data,
                          ((H_KIND, b"business-response"), (H_MESSAGE_ID, str(env.message_id).encode())),
                          timestamp_ms=int(time.time() * 1000))
        result = tracker.consume([record])
        if taken:
            assert (result.counts["bad_receipt"], result.counts["business"], len(result.outputs)) == (0, 1, 1)
            return
        assert result.counts["bad_receipt"] == 1
        assert result.counts["business"] == 0
        assert result.outputs == [], "no status-feed record for it"
        assert result.events == []
    finally:
        tracker.close()
