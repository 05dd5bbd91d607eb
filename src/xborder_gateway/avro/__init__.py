"""The agreed Avro schemas and their single-object framing.

Every payload exchanged between the two customs administrations is an Avro record in **single-object
encoding** (Avro specification, "Single-object encoding")::

    C3 01 | fingerprint (8 bytes, little-endian CRC-64-AVRO of the schema's Parsing Canonical Form) | body

so any Avro library can decode it without a schema registry: the receiver looks the fingerprint up in the
set of schemas it knows. The schemas live in ``schemas/avro/<Name>.v<N>.avsc`` (namespace
``int.xborder.v1``; ``<N>`` counts compatible revisions of the same record, see docs/documents.md).

    >>> frame = encode("Receipt", {...})
    >>> decode(frame).record["outcome"]
    'ACK'
"""

from __future__ import annotations

from xborder_gateway.avro._codec import (
    MAGIC,
    AvroFrameError,
    Decoded,
    SchemaInfo,
    decode,
    encode,
    fingerprint,
    known_schemas,
    schema_info,
)

__all__ = [
    "MAGIC",
    "AvroFrameError",
    "Decoded",
    "SchemaInfo",
    "decode",
    "encode",
    "fingerprint",
    "known_schemas",
    "schema_info",
]
