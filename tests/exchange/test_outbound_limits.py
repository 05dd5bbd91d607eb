"""The outbound connector's processor takes the intake bounds from its settings (issue 9 item 2): with
XBG_DOCUMENTS_MAX_BYTES=500 a 16 KB declaration is rejected with XML_TOO_LARGE and its raw bytes, not sealed.
Unit level: the processor with a real state file and real keys, no broker."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from xborder_gateway.transport import Incoming

from .conftest import make_home

LIMITS = [
    ({"documents_max_bytes": 500}, "XML_TOO_LARGE"),
    ({"documents_max_depth": 1}, "XML_TOO_DEEP"),
    ({"documents_max_elements": 20}, "XML_TOO_MANY_ELEMENTS"),
]


def _ida() -> Any:
    from xborder_gateway.samples import generate

    # the largest of a few generated declarations: well above every limit the test configures
    return max(generate("IDA", 20, seed=3), key=lambda s: len(s.xml))


def _process(tmp_path: Path, overrides: dict[str, Any], *xml: bytes) -> tuple[list[Any], dict[str, int]]:
    from xborder_gateway.connectors import OutboundProcessor

    home = make_home(tmp_path / "home", **overrides)
    ob = OutboundProcessor(home.settings, home.vn, home.vn_trust)
    try:
        res = ob.process([Incoming(home.settings.topic_intake, 0, 7 + i, b"k", x) for i, x in enumerate(xml)])
        # the status feed's records travel in the same transaction; these tests look at the exchange's
        out = [o for o in res.outputs if o.topic != home.settings.topic_status]
        counts = res.counts
    finally:
        ob.close()
    return out, counts


def test_under_the_default_limits_the_declaration_is_sealed(tmp_path: Path) -> None:
    _out, counts = _process(tmp_path, {}, _ida().xml)
    assert (counts["sealed"], counts["rejected"]) == (1, 0)


@pytest.mark.parametrize(("overrides", "code"), LIMITS, ids=[next(iter(o)) for o, _ in LIMITS])
def test_the_processor_applies_the_configured_limits(tmp_path: Path, overrides: dict[str, Any], code: str) -> None:
    xml = _ida().xml
    out, counts = _process(tmp_path, overrides, xml)
    assert (counts["sealed"], counts["rejected"]) == (0, 1)
    (rejected,) = out
    assert rejected.value == xml, "the raw bytes are kept on the rejected topic"
    assert json.loads(rejected.header("xbg-reasons") or b"{}")["code"] == code


def test_a_doctype_naming_a_fifo_neither_stalls_nor_passes_the_processor(tmp_path: Path) -> None:
    """Issue 9 item 1 as the outbound connector met it: one document whose DOCTYPE (written in UTF-7 behind
    a whitespace-padded declaration) named a FIFO stopped the connector for 14 s. Now it is rejected at once
    with its raw bytes (XML-3), and so is a plain UTF-8 DOCTYPE naming the FIFO (XML-8: libxml2 never opens
    it; an open would block until the writer below, which would then find a reader)."""
    body = b'<IDA xmlns="urn:xborder:vnaccs:IDA:1"><ICN>105000000017</ICN></IDA>'
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    utf7 = (b'<?xml version="1.0"' + b" " * 250 + b'encoding="UTF-7"?>'
            + f"+ADw-!DOCTYPE IDA SYSTEM +ACI-{str(fifo).replace('/', '+AC8-')}+ACI-+AD4-".encode() + body)
    plain = f'<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE IDA SYSTEM "{fifo}">'.encode() + body
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(_process(tmp_path, {}, utf7, plain)), daemon=True)
    start = time.monotonic()
    worker.start()
    worker.join(30)  # key generation included; the parses themselves take milliseconds
    hung = worker.is_alive()
    while worker.is_alive():  # release a parser blocked in open(2) on the FIFO, then fail
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(0.1)
    assert not hung, f"the processor hung on the FIFO for {time.monotonic() - start:.0f}s"
    out, counts = result[0]
    assert (counts["sealed"], counts["rejected"]) == (0, 2)
    assert [o.value for o in out] == [utf7, plain]
    assert [json.loads(o.header("xbg-reasons") or b"{}")["code"] for o in out] == [
        "XML_ENCODING_UNSUPPORTED", "XML_EXTERNAL_DTD_FORBIDDEN"]
