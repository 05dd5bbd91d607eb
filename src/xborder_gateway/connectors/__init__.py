"""The exchange's connectors, each one process (``xborder run NAME``):

- :func:`run_outbound` (VN) intake -> validate -> map -> seal -> exchange topics, exactly once;
- :func:`run_nanning` (CN) the simulated Nanning Customs endpoint: open, verify, de-duplicate, business
  checks, signed receipts; with fault injection (:class:`Faults`);
- :func:`run_receipts` (VN) the receipt tracker: delivered / resend (same id, same bytes) / dead letter;
- :func:`publish_documents` puts XML on the intake topic.

Each role is a :class:`ConnectorSpec` (``outbound_spec()``, ``nanning_spec()``, ``receipts_spec()``) run by
the one :func:`run_connector`; every processor returns a :class:`ProcessResult`.
"""

from xborder_gateway.connectors._runtime import ConnectorSpec, Guarantee, ProcessResult, run_connector
from xborder_gateway.connectors.nanning import Faults, NanningOptions, NanningProcessor, nanning_spec, run_nanning
from xborder_gateway.connectors.outbound import OutboundOptions, OutboundProcessor, outbound_spec, run_outbound
from xborder_gateway.connectors.publisher import publish_documents
from xborder_gateway.connectors.receipts import Backoff, ReceiptsOptions, ReceiptTracker, receipts_spec, run_receipts

__all__ = [
    "Backoff",
    "ConnectorSpec",
    "Faults",
    "Guarantee",
    "NanningOptions",
    "NanningProcessor",
    "OutboundOptions",
    "OutboundProcessor",
    "ProcessResult",
    "ReceiptTracker",
    "ReceiptsOptions",
    "nanning_spec",
    "outbound_spec",
    "publish_documents",
    "receipts_spec",
    "run_connector",
    "run_nanning",
    "run_outbound",
    "run_receipts",
]
