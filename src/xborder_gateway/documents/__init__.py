"""Documents: VNACCS-style XML in, the agreed Avro record out.

    doc = translate_xml(raw, source="vn.declarations.raw/0@42")
    doc.business_key, doc.payload, doc.perishable, doc.record
    peek_key(raw)                 # cheap business key for the Kafka key, or None
    decode_payload(doc.payload)   # the receiving side: avro.decode
    cn_crosswalk("08106000")      # China 10-digit code, or None

Errors: :class:`DocumentRejectedError` (an ``IntakeError``) for the sender's document, ``MappingError``
for the gateway's mappings and code lists.
"""

from __future__ import annotations

from xborder_gateway.avro import Decoded
from xborder_gateway.avro import decode as decode_payload
from xborder_gateway.documents._translate import TranslatedDocument, peek_key, translate_xml
from xborder_gateway.intake import DocumentRejectedError, IntakeLimits, Reason
from xborder_gateway.mapping import cn_crosswalk

__all__ = [
    "Decoded",
    "DocumentRejectedError",
    "IntakeLimits",
    "Reason",
    "TranslatedDocument",
    "cn_crosswalk",
    "decode_payload",
    "peek_key",
    "translate_xml",
]
