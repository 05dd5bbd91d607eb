"""Named hostile inputs, each refused with its specific code in bounded time and memory.

XXE and external DTD / XInclude cases point at a real HTTP listener on 127.0.0.1; it must see no
request, neither through ``translate_xml`` nor when the hardened parser itself is given the document
(defence in depth: the parser flags alone must not fetch anything)."""

from __future__ import annotations

import http.server
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from xborder_gateway.documents import DocumentRejectedError, translate_xml
from xborder_gateway.intake import IntakeLimits, parse_xml
from xborder_gateway.intake._parse import _parser

GOLDEN = (Path(__file__).parent / "golden" / "IDA-golden.xml").read_bytes()
TIME_BOUND_S = 1.0
RSS_BOUND_BYTES = 64 * 1024 * 1024


class _Listener:
    def __init__(self) -> None:
        self.requests: list[str] = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                listener.requests.append(self.path)
                body = b'<!ENTITY leak "LEAKED">' if self.path.endswith(".dtd") else b"LEAKED"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def listener() -> Iterator[_Listener]:
    server = _Listener()
    yield server
    server.close()


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("xxe") / "secret.txt"
    path.write_text("TOP-SECRET")
    return path


def _ida_with(body_ref: str) -> str:
    return f'<IDA xmlns="urn:xborder:vnaccs:IDA:1"><ICN>105000000017</ICN><NT2>{body_ref}</NT2></IDA>'


def _cases(url: str, secret: Path) -> list[tuple[str, bytes, str]]:
    laughs = "".join(f'<!ENTITY l{i} "{"&l" + str(i - 1) + ";" * 1}{("&l" + str(i - 1) + ";") * 9}">'
                     for i in range(1, 10))
    deep = b"<IDA xmlns='urn:xborder:vnaccs:IDA:1'>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</IDA>"
    return [
        ("XXE to a local file", (f'<?xml version="1.0"?><!DOCTYPE IDA [<!ENTITY x SYSTEM "file://{secret}">]>'
                                 + _ida_with("&x;")).encode(), "XML_EXTERNAL_ENTITY_FORBIDDEN"),
        ("XXE to a local HTTP listener", (f'<!DOCTYPE IDA [<!ENTITY x SYSTEM "{url}/xxe">]>'
                                          + _ida_with("&x;")).encode(), "XML_EXTERNAL_ENTITY_FORBIDDEN"),
        ("parameter entity", (f'<!DOCTYPE IDA [<!ENTITY % p SYSTEM "{url}/evil.dtd"> %p;]>'
                              + _ida_with("&leak;")).encode(), "XML_PARAMETER_ENTITY_FORBIDDEN"),
        ("external DTD", (f'<!DOCTYPE IDA SYSTEM "{url}/external.dtd">' + _ida_with("x")).encode(),
         "XML_EXTERNAL_DTD_FORBIDDEN"),
        ("XInclude", (f'<IDA xmlns="urn:xborder:vnaccs:IDA:1" xmlns:xi="http://www.w3.org/2001/XInclude">'
                      f'<xi:include href="{url}/xinclude" parse="text"/></IDA>').encode(), "XML_XINCLUDE_FORBIDDEN"),
        ("billion laughs", (f'<!DOCTYPE IDA [<!ENTITY l0 "ha">{laughs}]>' + _ida_with("&l9;")).encode(),
         "XML_ENTITY_FORBIDDEN"),
        ("quadratic blow-up", ('<!DOCTYPE IDA [<!ENTITY big "' + "A" * 50_000 + '">]>'
                               + _ida_with("&big;" * 200)).encode(), "XML_ENTITY_FORBIDDEN"),
        ("undeclared entity reference", _ida_with("&nbsp;").encode(), "XML_ENTITY_FORBIDDEN"),
        ("plain DOCTYPE", b"<!DOCTYPE IDA>" + _ida_with("x").encode(), "XML_DOCTYPE_FORBIDDEN"),
        ("deep nesting", deep, "XML_TOO_DEEP"),
        ("deep nesting within libxml2's limit", b"<IDA>" + b"<a>" * 40 + b"</a>" * 40 + b"</IDA>", "XML_TOO_DEEP"),
        ("too many elements", b"<IDA>" + b"<a/>" * 20_000 + b"</IDA>", "XML_TOO_MANY_ELEMENTS"),
        ("oversize", GOLDEN.replace(b"</IDA>", b"<!--" + b"x" * 1_100_000 + b"--></IDA>"), "XML_TOO_LARGE"),
        ("invalid UTF-8", GOLDEN.replace("Táo".encode(), b"T\xe1o"), "XML_ENCODING_INVALID"),
        ("UTF-16", GOLDEN.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16"),
         "XML_ENCODING_UNSUPPORTED"),
        ("declared Latin-1", GOLDEN.replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"'),
         "XML_ENCODING_UNSUPPORTED"),
        ("NUL byte", GOLDEN.replace(b"<ICB>", b"<ICB>\x00"), "XML_NUL_BYTE"),
        ("truncated", GOLDEN[: len(GOLDEN) // 2], "XML_TRUNCATED"),
        ("empty", b"", "XML_EMPTY"),
        ("only whitespace", b"  \n ", "XML_EMPTY"),
        ("not XML", b"{\"declaration\": 1}", "XML_MALFORMED"),
        ("mismatched tags", b"<IDA><ICN>1</ICB></IDA>", "XML_MALFORMED"),
    ]


def _rss() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


HOSTILE_IDS = [c[0] for c in _cases("http://x", Path("/x"))]


@pytest.mark.parametrize("case", HOSTILE_IDS)
def test_hostile_input_is_refused_with_its_code(case: str, listener: _Listener, secret_file: Path) -> None:
    name, raw, code = next(c for c in _cases(listener.url, secret_file) if c[0] == case)
    before_rss, start = _rss(), time.perf_counter()
    with pytest.raises(DocumentRejectedError) as err:
        translate_xml(raw, source=f"{name}.xml")
    elapsed = time.perf_counter() - start
    assert err.value.code == code, err.value
    assert elapsed < TIME_BOUND_S
    assert _rss() - before_rss < RSS_BOUND_BYTES
    assert "TOP-SECRET" not in str(err.value)
    assert "LEAKED" not in str(err.value)
    assert listener.requests == []


@pytest.mark.parametrize("case", ["XXE to a local HTTP listener", "parameter entity", "external DTD",
                                  "XXE to a local file", "XInclude", "billion laughs", "quadratic blow-up"])
def test_the_parser_flags_alone_fetch_nothing(case: str, listener: _Listener, secret_file: Path) -> None:
    """Bypass the pre-screen: the hardened parser itself must neither fetch nor expand."""
    _name, raw, _code = next(c for c in _cases(listener.url, secret_file) if c[0] == case)
    start = time.perf_counter()
    try:
        root = etree.fromstring(raw, _parser())
    except etree.XMLSyntaxError:
        root = None
    assert time.perf_counter() - start < TIME_BOUND_S
    if root is not None:
        assert len(etree.tostring(root)) < 2 * len(raw)  # entities were not expanded
    if root is not None:
        text = etree.tostring(root).decode()
        assert "TOP-SECRET" not in text
        assert "LEAKED" not in text
    assert listener.requests == []


def test_the_listener_does_answer_so_the_no_request_check_can_fail(listener: _Listener) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{listener.url}/probe", timeout=5) as reply:  # noqa: S310 - our own listener
        assert reply.read() == b"LEAKED"
    assert listener.requests == ["/probe"]
    listener.requests.clear()


def test_limits_are_one_frozen_object() -> None:
    limits = IntakeLimits(max_bytes=100)
    with pytest.raises(AttributeError):
        limits.max_bytes = 10  # type: ignore[misc]
    with pytest.raises(DocumentRejectedError) as err:
        parse_xml(GOLDEN, limits=limits)
    assert err.value.code == "XML_TOO_LARGE"
    with pytest.raises(ValueError, match="positive"):
        IntakeLimits(max_depth=0)


def test_limits_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from xborder_gateway.config import Settings

    monkeypatch.setenv("XBG_DOCUMENTS_MAX_BYTES", "2048")
    limits = IntakeLimits.from_settings(Settings())
    assert limits.max_bytes == 2048
    assert limits.max_depth == IntakeLimits().max_depth
