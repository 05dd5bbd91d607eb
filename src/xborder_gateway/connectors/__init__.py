"""The exchange's connectors, each one process (``xborder run NAME``):

- :func:`run_outbound` (VN) intake -> validate -> map -> seal -> exchange topics, exactly once;
- :func:`run_nanning` (CN) the simulated Nanning Customs endpoint: open, verify, de-duplicate, business
  checks, signed receipts; with fault injection (:class:`Faults`);
- :func:`run_receipts` (VN) the receipt tracker: delivered / resend (same id, same bytes) / dead letter;
- :func:`publish_documents` puts XML on the intake topic.
"""

from xborder_gateway.connectors.nanning import Faults, NanningOptions, NanningProcessor, run_nanning
from xborder_gateway.connectors.outbound import OutboundOptions, OutboundProcessor, run_outbound
from xborder_gateway.connectors.publisher import publish_documents
from xborder_gateway.connectors.receipts import Backoff, ReceiptsOptions, ReceiptTracker, run_receipts

__all__ = [
    "Backoff",
    "Faults",
    "NanningOptions",
    "NanningProcessor",
    "OutboundOptions",
    "OutboundProcessor",
    "ReceiptTracker",
    "ReceiptsOptions",
    "publish_documents",
    "run_nanning",
    "run_outbound",
    "run_receipts",
]
