"""Viet Nam's rule set as a RECEIVING authority (issue 10 item 3): what VN's endpoint decides for China's
export declarations and road manifests.

The substance is the mirror checks (``exchange/_mirror.py``, state in ``exchange/_mirror_store.py``): a
``CN_EXPORT`` is compared with the IDA VN took in for the same consignment. The endpoint runs them through
its :class:`~xborder_gateway.exchange._mirror_store.MirrorDesk` (they need VN's site state and may defer the
answer); :meth:`VnRuleSet.decide` is what stays pure:

- ``CN_EXPORT`` without a mirror desk (unit tests of the endpoint alone): ACCEPTED;
- ``CN_MANIFEST``: ACCEPTED (pre-arrival data of the truck; the gate reads the status feed);
- any other document type: REJECTED ``DOCUMENT_TYPE_UNKNOWN`` (VN receives nothing else from CN).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xborder_gateway.exchange._business import BusinessDecision

__all__ = ["VN_RECEIVED_TYPES", "VnRuleSet"]

VN_RECEIVED_TYPES = ("CN_EXPORT", "CN_MANIFEST")


class VnRuleSet:
    authority = "VN"

    def decide(self, document_type: str, record: Mapping[str, Any], *,
               lookup: Any = None) -> BusinessDecision:
        del record, lookup  # the mirror checks need VN's site state: the endpoint's MirrorDesk runs them
        if document_type in VN_RECEIVED_TYPES:
            return BusinessDecision("ACCEPTED")
        return BusinessDecision("REJECTED", (("DOCUMENT_TYPE_UNKNOWN", f"document type {document_type!r}"),))

    def remembers(self, document_type: str) -> bool:
        return False

    def batch_order(self, document_type: str | None) -> int:
        return 0 if document_type == "CN_EXPORT" else 1


