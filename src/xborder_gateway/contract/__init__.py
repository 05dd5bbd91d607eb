"""The contract a counterpart builds against: the AsyncAPI document and test vectors (docs/contract.md).

* :func:`render_asyncapi` — ``docs/asyncapi.yaml`` (AsyncAPI 3.0.0) from settings and ``schemas/avro/``;
* :func:`write_vectors` / :func:`check_vectors` — envelopes both ways (suites v1 and v2), receipts and
  checkpoint notes from fixed throwaway keys, with the expected verdicts in ``manifest.json``.
"""

from __future__ import annotations

from xborder_gateway.contract._asyncapi import build_asyncapi, channels, render_asyncapi
from xborder_gateway.contract._vectors import MANIFEST_NAME, REFERENCE_TIME, VectorResult, check_vectors, write_vectors

__all__ = [
    "MANIFEST_NAME",
    "REFERENCE_TIME",
    "VectorResult",
    "build_asyncapi",
    "channels",
    "check_vectors",
    "render_asyncapi",
    "write_vectors",
]
