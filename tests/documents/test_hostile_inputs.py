"""Named hostile inputs, each refused with its specific code in bounded time and memory.

XXE and external DTD / XInclude cases point at a real HTTP listener on 127.0.0.1; it must see no
request, neither through ``translate_xml`` nor when the hardened parser itself is given the document
(defence in depth: the parser flags alone must not fetch anything)."""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from xborder_gateway.documents import DocumentRejectedError, translate_xml
from xborder_gateway.intake import IntakeLimits, parse_xml
from xborder_gateway.intake._parse import _parser, _RefuseEverything

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


# --- XML-3: the encoding is ours (UTF-8, with or without BOM), whatever the declaration says ---------------------

_UTF7_DOCTYPE = b"+ADw-!DOCTYPE IDA SYSTEM +ACI-/etc/hostname+ACI-+AD4-"
_IDA_BODY = b'<IDA xmlns="urn:xborder:vnaccs:IDA:1"><ICN>105000000017</ICN></IDA>'

ENCODING_CASES: list[tuple[str, bytes, str]] = [
    ("declared UTF-7 writing markup as +ADw-", b'<?xml version="1.0" encoding="UTF-7"?>' + _UTF7_DOCTYPE + _IDA_BODY,
     "XML_ENCODING_UNSUPPORTED"),
    ("declared UTF-7 pushed past 200 bytes by whitespace",
     b'<?xml version="1.0"' + b" " * 300 + b'encoding="UTF-7"?>' + _UTF7_DOCTYPE + _IDA_BODY,
     "XML_ENCODING_UNSUPPORTED"),
    ("declared Latin-1 pushed past 200 bytes by tabs and newlines",
     GOLDEN.replace(b' encoding="UTF-8"', b"\t\n\r " * 100 + b"encoding='ISO-8859-1'"), "XML_ENCODING_UNSUPPORTED"),
    ("declared Latin-1, spaces around '='", GOLDEN.replace(b'encoding="UTF-8"', b"encoding \n= \t'latin1'"),
     "XML_ENCODING_UNSUPPORTED"),
    ("declared encoding after standalone (out of order)",
     b'<?xml version="1.0" standalone="yes" encoding="UTF-7"?>' + _IDA_BODY, "XML_ENCODING_UNSUPPORTED"),
    ("declared UTF-16 on UTF-8 bytes", GOLDEN.replace(b'encoding="UTF-8"', b'encoding="UTF-16"'),
     "XML_ENCODING_UNSUPPORTED"),
    ("declared encoding after 600 KB of whitespace",
     b'<?xml version="1.0"' + b" " * 600_000 + b'encoding="UTF-7"?>' + _IDA_BODY, "XML_ENCODING_UNSUPPORTED"),
    ("UTF-7 markup without a declaration", _UTF7_DOCTYPE + _IDA_BODY, "XML_MALFORMED"),
    ("UTF-7 BOM", b"+/v8" + _IDA_BODY, "XML_ENCODING_UNSUPPORTED"),
    ("UTF-16 without BOM", GOLDEN.decode().encode("utf-16-le"), "XML_ENCODING_UNSUPPORTED"),
    ("UTF-32 with BOM", GOLDEN.decode().encode("utf-32"), "XML_ENCODING_UNSUPPORTED"),
    ("EBCDIC", (b"<?xml version=\"1.0\"?>" + _IDA_BODY).decode().encode("cp500"), "XML_ENCODING_UNSUPPORTED"),
    ("GB 18030 with BOM", b"\x84\x31\x95\x33" + _IDA_BODY, "XML_ENCODING_UNSUPPORTED"),
    ("misspelt pseudo-attribute in the declaration", GOLDEN.replace(b"encoding=", b"encodin="), "XML_MALFORMED"),
    ("XML 1.1", GOLDEN.replace(b'version="1.0"', b'version="1.1"'), "XML_MALFORMED"),
    ("unterminated declaration", b'<?xml version="1.0" encoding="UTF-8"' + b" " * 1000, "XML_MALFORMED"),
    ("a second declaration after the root's prolog", b'<!-- x --><?xml version="1.0" encoding="UTF-7"?>' + _IDA_BODY,
     "XML_MALFORMED"),
    ("invalid UTF-8 inside a comment", GOLDEN.replace(b"Hand-written", b"Hand\xc0\xafwritten"), "XML_ENCODING_INVALID"),
    ("UTF-8 surrogate in CDATA", GOLDEN.replace(b"<NT2>", b"<NT2><![CDATA[\xed\xa0\x80]]>"), "XML_ENCODING_INVALID"),
]


@pytest.mark.parametrize("case", [c[0] for c in ENCODING_CASES])
def test_encoding_policy_refuses(case: str) -> None:
    _name, raw, code = next(c for c in ENCODING_CASES if c[0] == case)
    start = time.perf_counter()
    with pytest.raises(DocumentRejectedError) as err:
        translate_xml(raw, source="enc.xml")
    assert err.value.code == code, err.value
    assert time.perf_counter() - start < TIME_BOUND_S


_DOCTYPE_IN_TEXT = b'<!DOCTYPE IDA [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
_XI = b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/passwd" parse="text"/>'

ACCEPTED_CASES: list[tuple[str, bytes]] = [
    ("DOCTYPE as text inside a comment", GOLDEN.replace(b"<!-- Hand-written", b"<!-- " + _DOCTYPE_IN_TEXT)),
    ("DOCTYPE as text inside CDATA", GOLDEN.replace(b"<IMT>", b"<NT2><![CDATA[" + _DOCTYPE_IN_TEXT[:60]
                                                    + b"]]></NT2><IMT>", 1) if b"<NT2>" not in GOLDEN else
     GOLDEN.replace(b"<NT2>", b"<NT2><![CDATA[" + _DOCTYPE_IN_TEXT[:60] + b"]]>", 1)),
    ("XInclude namespace inside a comment", GOLDEN.replace(b"</IDA>", b"<!-- " + _XI + b" --></IDA>")),
    ("XInclude namespace inside CDATA", GOLDEN.replace(b"<NT2>", b"<NT2><![CDATA[" + _XI[:70] + b"]]>", 1)),
    ("a comment before the root naming an entity", GOLDEN.replace(b"<!-- Hand-written", b"<!-- <!ENTITY x 'y'> ")),
    ("UTF-8 BOM", b"\xef\xbb\xbf" + GOLDEN),
    ("no XML declaration", GOLDEN.split(b"?>", 1)[1].lstrip()),
    ("declaration without encoding", GOLDEN.replace(b' encoding="UTF-8"', b"")),
    ("declaration with much whitespace, single quotes, lower case",
     GOLDEN.replace(b'<?xml version="1.0" encoding="UTF-8"?>',
                    b"<?xml\n\tversion = '1.0'" + b" " * 500 + b"encoding\t=\n'utf-8'  standalone='yes' \n?>")),
    ("BOM and declaration", b"\xef\xbb\xbf" + GOLDEN.replace(b'"UTF-8"', b'"utf8"')),
    ("UTF-7-looking text inside an element", GOLDEN.replace(b"<NT2>", b"<NT2>+ADw-!DOCTYPE+AD4- ", 1)),
]


@pytest.mark.parametrize("case", [c[0] for c in ACCEPTED_CASES])
def test_valid_documents_that_only_mention_doctype_or_xinclude_are_accepted(case: str) -> None:
    _name, raw = next(c for c in ACCEPTED_CASES if c[0] == case)
    assert raw != GOLDEN
    doc = translate_xml(raw, source="ok.xml")
    assert doc.business_key == translate_xml(GOLDEN).business_key
    assert doc.values == translate_xml(GOLDEN).values or case.startswith(("UTF-7", "DOCTYPE as text inside CDATA",
                                                                           "XInclude namespace inside CDATA"))


REAL_XINCLUDE = [
    ("xi:include element", b'<IDA xmlns="urn:xborder:vnaccs:IDA:1">' + _XI + b"</IDA>"),
    ("namespace written with a character reference",
     b'<IDA xmlns="urn:xborder:vnaccs:IDA:1" xmlns:x="http://www.w3.org/2001/&#88;Include">'
     b'<x:include href="a"/></IDA>'),
    ("attribute in the XInclude namespace",
     b'<IDA xmlns="urn:xborder:vnaccs:IDA:1" xmlns:x="http://www.w3.org/2001/XInclude" x:href="a"/>'),
    ("the XInclude namespace only declared", b'<IDA xmlns="urn:xborder:vnaccs:IDA:1" '
                                             b'xmlns:x="http://www.w3.org/2001/XInclude"><ICN>1</ICN></IDA>'),
]


@pytest.mark.parametrize("case", [c[0] for c in REAL_XINCLUDE])
def test_real_xinclude_is_refused_from_the_tree(case: str) -> None:
    raw = next(c[1] for c in REAL_XINCLUDE if c[0] == case)
    with pytest.raises(DocumentRejectedError) as err:
        parse_xml(raw)
    assert err.value.code == "XML_XINCLUDE_FORBIDDEN"


# --- XML-8: libxml2 reaches no file: a FIFO never hangs, and the answer does not depend on the file ------------

def _external_forms(target: str) -> list[tuple[str, bytes, str]]:
    utf7 = target.replace("/", "+AC8-")
    return [
        ("DOCTYPE SYSTEM", f'<!DOCTYPE IDA SYSTEM "{target}">'.encode() + _IDA_BODY, "XML_EXTERNAL_DTD_FORBIDDEN"),
        ("DOCTYPE PUBLIC", f'<!DOCTYPE IDA PUBLIC "-//x//EN" "{target}">'.encode() + _IDA_BODY,
         "XML_EXTERNAL_DTD_FORBIDDEN"),
        ("external parameter entity", f'<!DOCTYPE IDA [<!ENTITY % p SYSTEM "{target}"> %p;]>'.encode() + _IDA_BODY,
         "XML_PARAMETER_ENTITY_FORBIDDEN"),
        ("external entity in content", f'<!DOCTYPE IDA [<!ENTITY x SYSTEM "{target}">]>'.encode()
         + _IDA_BODY.replace(b"</IDA>", b"<NT2>&x;</NT2></IDA>"), "XML_EXTERNAL_ENTITY_FORBIDDEN"),
        ("external entity in an attribute", f'<!DOCTYPE IDA [<!ENTITY x SYSTEM "{target}">]>'.encode()
         + b'<IDA xmlns="urn:xborder:vnaccs:IDA:1" a="&x;"/>', "XML_EXTERNAL_ENTITY_FORBIDDEN"),
        ("unparsed entity with a notation", f'<!DOCTYPE IDA [<!NOTATION n SYSTEM "{target}">'
         f'<!ENTITY u SYSTEM "{target}" NDATA n>]>'.encode() + _IDA_BODY, "XML_EXTERNAL_ENTITY_FORBIDDEN"),
        ("DOCTYPE SYSTEM after a decoy comment", f'<!-- <!ENTITY % q "x"> --><!DOCTYPE d SYSTEM "{target}">'.encode()
         + _IDA_BODY, "XML_EXTERNAL_DTD_FORBIDDEN"),
        ("declared UTF-7 DOCTYPE SYSTEM", b'<?xml version="1.0"' + b" " * 250 + b'encoding="UTF-7"?>'
         + f"+ADw-!DOCTYPE IDA SYSTEM +ACI-{utf7}+ACI-+AD4-".encode() + _IDA_BODY, "XML_ENCODING_UNSUPPORTED"),
        ("UTF-7 DOCTYPE SYSTEM without a declaration", f"+ADw-!DOCTYPE IDA SYSTEM +ACI-{utf7}+ACI-+AD4-".encode()
         + _IDA_BODY, "XML_MALFORMED"),
    ]


EXTERNAL_FORMS = [f[0] for f in _external_forms("/x")]


@pytest.fixture
def targets(tmp_path: Path) -> dict[str, Path]:
    existing = tmp_path / "exists.dtd"
    existing.write_text('<!ENTITY leak "LEAKED">')
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return {"existing file": existing, "missing file": tmp_path / "missing.dtd", "FIFO": fifo, "directory": tmp_path}


def _fifo_has_reader(fifo: Path) -> bool:
    """True if some thread has the FIFO open for reading (a writer's non-blocking open then succeeds); the
    writer's immediate close gives that reader EOF, so a hung parser is released."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: no reader
        return False
    os.close(fd)
    return True


def _parse_guarded(parse: Any, raw: bytes, fifo: Path) -> tuple[Any, bool, float]:
    """Run ``parse(raw)`` in a thread; (its result or exception, whether it opened the FIFO, seconds)."""
    outcome: list[Any] = []

    def work() -> None:
        try:
            outcome.append(parse(raw))
        except Exception as exc:  # noqa: BLE001 - the outcome is compared by the caller
            outcome.append(exc)

    start = time.perf_counter()
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(TIME_BOUND_S)
    opened = thread.is_alive()
    deadline = time.monotonic() + 10
    while thread.is_alive() and time.monotonic() < deadline:  # release a parser blocked in open(2)
        _fifo_has_reader(fifo)
        thread.join(0.05)
    opened = opened or _fifo_has_reader(fifo)
    return (outcome[0] if outcome else None), opened, time.perf_counter() - start


def _refusal(result: Any) -> dict[str, Any]:
    assert isinstance(result, DocumentRejectedError), result
    return {k: v for k, v in result.to_dict().items() if k != "source"}


@pytest.mark.parametrize("form", EXTERNAL_FORMS)
def test_external_references_reach_no_file_and_answer_the_same(form: str, targets: dict[str, Path]) -> None:
    answers = {}
    for label, target in targets.items():
        _name, raw, code = next(f for f in _external_forms(str(target)) if f[0] == form)
        result, opened, elapsed = _parse_guarded(lambda r: translate_xml(r, source="x.xml"), raw, targets["FIFO"])
        assert not opened, f"{form} -> {label}: libxml2 opened the FIFO"
        assert elapsed < TIME_BOUND_S, f"{form} -> {label}: {elapsed:.2f}s"
        refusal = _refusal(result)
        assert refusal["code"] == code, (label, refusal)
        assert "LEAKED" not in json.dumps(refusal)
        refusal.pop("message")  # may quote nothing of the target; compared below without it anyway
        answers[label] = refusal
    # no existence oracle: a file that exists, one that does not, a FIFO and a directory are answered alike
    assert len({json.dumps(a, sort_keys=True) for a in answers.values()}) == 1, answers


@pytest.mark.parametrize("form", ["DOCTYPE SYSTEM", "external parameter entity", "external entity in content"])
def test_the_resolver_alone_keeps_libxml2_from_the_file(form: str, targets: dict[str, Path]) -> None:
    """collect_ids=False makes libxml2 (< 2.15) load the external DTD subset even with load_dtd=False; with the
    refuse-everything resolver it still opens nothing. Without the resolver it does (the check can fail)."""
    fifo = targets["FIFO"]
    _name, raw, _code = next(f for f in _external_forms(str(fifo)) if f[0] == form)

    def parse(with_resolver: bool) -> Any:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, collect_ids=False,
                                 encoding="utf-8")
        if with_resolver:
            parser.resolvers.add(_RefuseEverything())
        return lambda r: etree.fromstring(r, parser)

    _result, opened, _elapsed = _parse_guarded(parse(True), raw, fifo)
    assert not opened
    if form == "DOCTYPE SYSTEM":
        _result, opened, _elapsed = _parse_guarded(parse(False), raw, fifo)
        assert opened, "control: without the resolver libxml2 opens the FIFO"


def test_the_intake_parser_keeps_collecting_ids() -> None:
    """The trap above: lxml's collect_ids=False is libxml2's loadsubset bit (< 2.15), which loads external DTDs."""
    root = etree.fromstring(b"<a><b xml:id='i'/></a>", _parser())
    assert root.getroottree().getroot().xpath("id('i')"), "ids are collected (collect_ids left at True)"


_WS = st.text(alphabet=" \t\r\n", min_size=1, max_size=400)
_ENCODINGS = st.sampled_from(["UTF-8", "utf-8", "Utf8", "UTF8", "UTF-7", "utf-7", "ISO-8859-1", "latin1", "UTF-16",
                              "UTF-16LE", "UTF-32", "GB18030", "Shift_JIS", "EBCDIC-US", "ASCII", "US-ASCII",
                              "windows-1252", "UTF-8-SIG", "x-UTF-8"])


@settings(max_examples=150, deadline=None)
@given(ws=st.tuples(_WS, st.text(alphabet=" \t\r\n", max_size=50), st.text(alphabet=" \t\r\n", max_size=50),
                    st.text(alphabet=" \t\r\n", max_size=400)),
       quote=st.sampled_from(["'", '"']), encoding=_ENCODINGS, bom=st.booleans())
def test_any_declaration_is_read_whole(ws: tuple[str, str, str, str], quote: str, encoding: str, bom: bool) -> None:
    """Whatever the whitespace of the declaration, only a UTF-8 encoding name is accepted (XML-3)."""
    ws1, ws2, ws3, ws4 = ws
    decl = f"<?xml version='1.0'{ws1}encoding{ws2}={ws3}{quote}{encoding}{quote}{ws4}?>".encode()
    raw = (b"\xef\xbb\xbf" if bom else b"") + decl + GOLDEN.split(b"?>", 1)[1]
    if encoding.lower() in ("utf-8", "utf8"):
        assert translate_xml(raw).business_key == "105000000017"
    else:
        with pytest.raises(DocumentRejectedError) as err:
            translate_xml(raw)
        assert err.value.code == "XML_ENCODING_UNSUPPORTED"
