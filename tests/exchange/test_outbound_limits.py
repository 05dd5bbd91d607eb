"""The outbound connector's processor takes the intake bounds from its settings (issue 9 item 2): with
XBG_DOCUMENTS_MAX_BYTES=500 a 16 KB declaration is rejected with XML_TOO_LARGE and its raw bytes, not sealed.
Unit level: the processor with a real state file and real keys, no broker."""

from __future__ import annotations

import json
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

    return next(s for s in generate("IDA", 20, seed=3) if len(s.xml) > 10_000)


def _process(tmp_path: Path, overrides: dict[str, Any], xml: bytes) -> tuple[list[Any], dict[str, int]]:
    from xborder_gateway.connectors import OutboundProcessor

    home = make_home(tmp_path / "home", **overrides)
    ob = OutboundProcessor(home.settings, home.vn, home.vn_trust)
    try:
        out, _events, counts = ob.process([Incoming(home.settings.topic_intake, 0, 7, b"k", xml)])
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
