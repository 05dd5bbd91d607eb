"""Hardened XML parsing: the only way a sender's bytes become an lxml tree.

Rules (cited in the code as ``# XML-n``, listed in docs/documents.md):

XML-1 size cap before any parsing · XML-2 no NUL bytes · XML-3 the encoding is decided here, not by the
document: UTF-8 only (with or without BOM); another signature or any other declared encoding is refused, and
the parser is told UTF-8 · XML-4 no DOCTYPE, DTD or entity declaration (decided from what the parser built,
not from a byte scan) · XML-5 no XInclude (decided from the tree) · XML-6 depth cap · XML-7 element cap ·
XML-8 the parser reaches no file or URL: a resolver that refuses every external resource, and the flags
``resolve_entities=False``, ``no_network=True``, ``load_dtd=False``, ``huge_tree=False`` · XML-9 only the
project's local XSDs are ever loaded (see ``_xsd.py``).
"""

from __future__ import annotations

import re
import threading
from typing import Any

from lxml import etree

from xborder_gateway.intake._errors import DocumentRejectedError
from xborder_gateway.intake._limits import DEFAULT_LIMITS, IntakeLimits

__all__ = ["parse_xml", "prescreen"]

_UTF8_BOM = b"\xef\xbb\xbf"
#: byte signatures of other encodings (BOMs, and XML 1.0 Appendix F's autodetection of a "<?xml" written in
#: them); longest first where one is a prefix of another (UTF-32LE's BOM starts with UTF-16LE's)
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x00\xfe\xff", "UTF-32 (big-endian BOM)"), (b"\xff\xfe\x00\x00", "UTF-32 (little-endian BOM)"),
    (b"\xfe\xff", "UTF-16 (big-endian BOM)"), (b"\xff\xfe", "UTF-16 (little-endian BOM)"),
    (b"\x00\x00\x00<", "UTF-32 (big-endian)"), (b"<\x00\x00\x00", "UTF-32 (little-endian)"),
    (b"\x00<\x00?", "UTF-16 (big-endian)"), (b"<\x00?\x00", "UTF-16 (little-endian)"),
    (b"+/v8", "UTF-7 (BOM)"), (b"+/v9", "UTF-7 (BOM)"), (b"+/v+", "UTF-7 (BOM)"), (b"+/v/", "UTF-7 (BOM)"),
    (b"\x4c\x6f\xa7\x94", "EBCDIC"), (b"\xdd\x73\x66\x73", "UTF-EBCDIC (BOM)"), (b"\x84\x31\x95\x33", "GB 18030 (BOM)"),
    (b"\xf7\x64\x4c", "UTF-1 (BOM)"), (b"\x0e\xfe\xff", "SCSU (BOM)"), (b"\xfb\xee\x28", "BOCU-1 (BOM)"),
)
_S = rb"[ \t\r\n]"
#: the XML declaration as XML 1.0 (production 23) defines it, with any amount of whitespace where S is allowed;
#: version 1.0 only, the encoding (if named) checked separately
_XML_DECL = re.compile(
    rb"<\?xml" + _S + rb"+version" + _S + rb"*=" + _S + rb"*(?:\"1\.0\"|'1\.0')"
    rb"(?:" + _S + rb"+encoding" + _S + rb"*=" + _S + rb"*(?:\"[A-Za-z][A-Za-z0-9._-]*\"|'[A-Za-z][A-Za-z0-9._-]*'))?"
    rb"(?:" + _S + rb"+standalone" + _S + rb"*=" + _S + rb"*(?:\"(?:yes|no)\"|'(?:yes|no)'))?"
    + _S + rb"*\?>")
_DECL_START = re.compile(rb"<\?xml(?:[ \t\r\n?]|$)")
_DECL_ENCODING = re.compile(rb"encoding" + _S + rb"*=" + _S + rb"*(?:\"([^\"]*)\"|'([^']*)')")
_UTF8_NAMES = (b"utf-8", b"utf8")
_XINCLUDE = "http://www.w3.org/2001/XInclude"

_local = threading.local()
_reject = DocumentRejectedError.one


class _RefuseEverything(etree.Resolver):  # type: ignore[misc]
    """XML-8: every external resource libxml2 asks for (DTD subset, external entity, parameter entity) is
    answered with nothing, so no file, FIFO, device or URL is ever opened: there is no time a slow resource
    can take and no existence oracle. The request is noted, and the document is refused after the parse.

    Not ``resolve_empty()``: lxml then falls back to libxml2's default loader, which opens the file."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        self.requests += 1
        return self.resolve_string(b"", context)


def _new_parser(**extra: Any) -> tuple[etree.XMLParser, _RefuseEverything]:
    # XML-8: no entity expansion, no network, no DTD loading, libxml2's own size/depth guards on, the encoding
    # fixed to UTF-8 (the declaration cannot switch it, XML-3). Not collect_ids=False: before libxml2 2.15,
    # lxml implements it as a loadsubset bit, and libxml2 then loads the external DTD subset.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             dtd_validation=False, remove_pis=True, encoding="utf-8", **extra)
    resolver = _RefuseEverything()
    parser.resolvers.add(resolver)
    return parser, resolver


def _parser_and_resolver() -> tuple[etree.XMLParser, _RefuseEverything]:
    pair: tuple[etree.XMLParser, _RefuseEverything] | None = getattr(_local, "parser", None)
    if pair is None:
        pair = _local.parser = _new_parser()
    return pair


def _parser() -> etree.XMLParser:
    """This thread's hardened parser (one per thread: an lxml parser is not thread-safe)."""
    return _parser_and_resolver()[0]


def prescreen(raw: bytes, *, source: str = "<bytes>", limits: IntakeLimits = DEFAULT_LIMITS) -> None:
    """The byte-level checks made before a parser sees the document (size, emptiness, encoding, NUL); raises
    DocumentRejectedError. DOCTYPE and XInclude are decided by :func:`parse_xml` from what the parser built."""
    # XML-1: size cap before anything else reads the document.
    if len(raw) > limits.max_bytes:
        raise _reject("XML_TOO_LARGE", f"document is {len(raw)} bytes, the limit is {limits.max_bytes}",
                      source=source)
    if not raw or raw.isspace():
        raise _reject("XML_EMPTY", "document is empty", source=source, line=1, column=1)
    # XML-3: the encoding is ours to decide: UTF-8, with or without BOM. Any other signature is refused.
    for signature, name in _SIGNATURES:
        if raw.startswith(signature):
            raise _reject("XML_ENCODING_UNSUPPORTED", f"document is {name}; only UTF-8 is accepted",
                          source=source, line=1, column=1)
    # XML-2: NUL bytes are never legal XML characters.
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise _reject("XML_NUL_BYTE", f"NUL byte at offset {nul}", source=source, line=line,
                      column=nul - raw.rfind(b"\n", 0, nul))
    _check_declaration(raw[3:] if raw.startswith(_UTF8_BOM) else raw, source)


def _check_declaration(body: bytes, source: str) -> None:
    """XML-3: an XML declaration, if there is one, is read whole (any amount of whitespace), must be well
    formed and may name no encoding but UTF-8."""
    if not _DECL_START.match(body):
        return
    end = body.find(b"?>")
    decl = body[: end + 2] if end >= 0 else body
    named = _DECL_ENCODING.search(decl)
    if named is not None:
        value = named.group(1) if named.group(1) is not None else named.group(2)
        if value.lower() not in _UTF8_NAMES:
            shown = value[:40].decode("ascii", "replace")
            raise _reject("XML_ENCODING_UNSUPPORTED", f"declared encoding {shown!r}; only UTF-8 is accepted",
                          source=source, line=1, column=1)
    if end < 0 or not _XML_DECL.fullmatch(decl):
        raise _reject("XML_MALFORMED", "malformed XML declaration (expected <?xml version=\"1.0\" "
                      "[encoding=\"UTF-8\"] [standalone=\"yes|no\"]?>)", source=source, line=1, column=1)


_SYNTAX_CODES = {
    "ERR_UNDECLARED_ENTITY": "XML_ENTITY_FORBIDDEN",
    "ERR_INVALID_ENCODING": "XML_ENCODING_INVALID",
    "ERR_INVALID_CHAR": "XML_ENCODING_INVALID",
    "ERR_UNSUPPORTED_ENCODING": "XML_ENCODING_UNSUPPORTED",
    "ERR_DOCUMENT_END": "XML_TRUNCATED",
    "ERR_TAG_NOT_FINISHED": "XML_TRUNCATED",
    "ERR_GT_REQUIRED": "XML_TRUNCATED",
    "ERR_LTSLASH_REQUIRED": "XML_TRUNCATED",
    "ERR_EXT_ENTITY_STANDALONE": "XML_ENTITY_FORBIDDEN",
}

#: what a DOCTYPE tried, read from libxml2's own serialisation of the DTD it parsed (most specific first)
_DTD_KINDS: tuple[tuple[re.Pattern[bytes] | None, str, str], ...] = (
    (re.compile(rb"<!ENTITY\s+%"), "XML_PARAMETER_ENTITY_FORBIDDEN", "a parameter entity"),
    (re.compile(rb"<!ENTITY\s+[^\s>]+\s+(?:SYSTEM|PUBLIC)\b"), "XML_EXTERNAL_ENTITY_FORBIDDEN",
     "an external entity (XXE)"),
    (None, "XML_EXTERNAL_DTD_FORBIDDEN", "an external DTD"),
    (re.compile(rb"<!ENTITY\b"), "XML_ENTITY_FORBIDDEN", "an entity declaration (entity expansion)"),
)


def _classifier() -> tuple[etree.XMLParser, _RefuseEverything]:
    pair: tuple[etree.XMLParser, _RefuseEverything] | None = getattr(_local, "classifier", None)
    if pair is None:  # the same hardening; comments and PIs dropped so that only the DTD precedes the root
        pair = _local.classifier = _new_parser(recover=True, remove_comments=True)
    return pair


def _doctype_position(body: bytes) -> tuple[int | None, int | None]:
    """Line and column of the DOCTYPE for the message (the decision was the parser's): it is the first markup
    of the prolog that is not a comment, a PI or the XML declaration."""
    at, end = 0, len(body)
    while at < end:
        while at < end and body[at] in b" \t\r\n":
            at += 1
        if body.startswith(b"<!--", at):
            close = body.find(b"-->", at + 4)
            at = close + 3 if close >= 0 else end
        elif body.startswith(b"<?", at):
            close = body.find(b"?>", at + 2)
            at = close + 2 if close >= 0 else end
        elif body.startswith(b"<!DOCTYPE", at):
            return body.count(b"\n", 0, at) + 1, at - body.rfind(b"\n", 0, at)
        else:
            break
    return None, None


def _dtd_text(root: etree._Element, dtd: Any) -> bytes:
    """libxml2's serialisation of the internal DTD subset it parsed (of the classifier's throwaway tree)."""
    if dtd is None:
        return b""
    name = dtd.name or ""
    if name and ":" not in name:
        root.tag = name  # lxml writes the DTD only before a root element of the DTD's name
        # comments and PIs were not kept and CDATA became text, so "<!ENTITY" can come only from the DTD
        return bytes(etree.tostring(root.getroottree()))
    # a prefixed DOCTYPE name cannot be a tag here: say what the entity declarations are, without "%"
    return b"".join(b"<!ENTITY e SYSTEM " if e.system_url else b"<!ENTITY e " for e in dtd.iterentities())


def _doctype_refusal(body: bytes, source: str) -> DocumentRejectedError | None:
    """XML-4: the refusal for a document whose parse built a DTD, with a code saying what it tried; None if the
    parser found no DOCTYPE. Only called on the refusal path (a DTD, or a syntax error)."""
    parser, resolver = _classifier()
    resolver.requests = 0
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError:
        return None
    if root is None:
        return None
    tree = root.getroottree()
    info = tree.docinfo
    if info.internalDTD is None and info.externalDTD is None and not info.doctype:
        return None
    text = _dtd_text(root, info.internalDTD)
    external_dtd = bool(info.system_url or info.public_id)
    code, what = next(((c, w) for pattern, c, w in _DTD_KINDS
                       if (external_dtd if pattern is None else pattern.search(text) is not None)),
                      ("XML_DOCTYPE_FORBIDDEN", "a DOCTYPE"))
    line, column = _doctype_position(body)
    return _reject(code, f"document declares {what}; DOCTYPE and entities are refused", source=source,
                   line=line, column=column)


def _checks(max_depth: int) -> tuple[etree.XPath, etree.XPath, etree.XPath]:
    """Compiled XPath checks, one triple per thread and depth limit."""
    cache: dict[int, tuple[etree.XPath, etree.XPath, etree.XPath]] | None = getattr(_local, "checks", None)
    if cache is None:
        cache = _local.checks = {}
    checks = cache.get(max_depth)
    if checks is None:
        checks = cache[max_depth] = (
            etree.XPath("boolean(/*" + "/*" * max_depth + ")"), etree.XPath("count(//*)"),
            etree.XPath("boolean(//*[namespace-uri()=$ns] | //@*[namespace-uri()=$ns] | //namespace::*[.=$ns])"))
    return checks


def _at_end(raw: bytes, line: int | None, column: int | None) -> bool:
    """True when libxml2 stopped at the very end of the input (error path only)."""
    if line is None or column is None:
        return False
    stripped = raw.rstrip()
    last_line_start = stripped.rfind(b"\n") + 1
    last_line_chars = len(stripped[last_line_start:].decode("utf-8", "replace"))
    return line >= stripped.count(b"\n") + 1 and column >= last_line_chars


def parse_xml(raw: bytes, *, source: str = "<bytes>", limits: IntakeLimits = DEFAULT_LIMITS) -> etree._Element:
    """Parse a sender's document under every intake rule; return the root element or raise DocumentRejectedError."""
    if not isinstance(raw, bytes):
        raw = bytes(raw)
    prescreen(raw, source=source, limits=limits)
    body = raw[3:] if raw.startswith(_UTF8_BOM) else raw  # XML-3: the parser is told UTF-8; the BOM is ours
    parser, resolver = _parser_and_resolver()
    resolver.requests = 0
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        if b"<!DOCTYPE" in body:  # XML-4: only a cue to ask the parser; the decision is what it built
            refusal = _doctype_refusal(body, source)
            if refusal is not None:
                raise refusal from exc
        name = etree.ErrorTypes._getName(exc.code) or ""
        line, column = exc.position if exc.position else (None, None)
        if name == "ERR_RESOURCE_LIMIT" and "depth" in (exc.msg or ""):
            code = "XML_TOO_DEEP"  # XML-6, caught by libxml2's own guard (256)
        elif _at_end(body, line, column):
            code = "XML_TRUNCATED"  # the parser ran out of input: the document was cut
        else:
            code = _SYNTAX_CODES.get(name, "XML_MALFORMED")
        raise _reject(code, f"not well-formed XML: {exc.msg}", source=source, line=line, column=column) from exc
    info = root.getroottree().docinfo
    # XML-4: the parser built a DTD (or asked for an external resource): refused, whatever it contained
    if info.internalDTD is not None or info.externalDTD is not None or resolver.requests:
        raise (_doctype_refusal(body, source)
               or _reject("XML_DOCTYPE_FORBIDDEN", "document has a DOCTYPE", source=source))
    too_deep, count_elements, uses_ns = _checks(limits.max_depth)
    # XML-5: an element, attribute or namespace declaration of XInclude in the tree (never processed). The
    # byte test only skips the tree walk for documents that cannot name the namespace (no text, no char ref).
    if (b"XInclude" in body or b"&#" in body) and uses_ns(root, ns=_XINCLUDE):
        raise _reject("XML_XINCLUDE_FORBIDDEN", "document uses XInclude", source=source)
    # XML-6: an element exists at depth max_depth + 1 (evaluated by libxml2, no Python walk).
    if too_deep(root):
        raise _reject("XML_TOO_DEEP", f"elements nested deeper than {limits.max_depth}", source=source)
    # XML-7: element cap. Every element starts with "<", so a document with fewer "<" than the cap needs
    # no count (a C-level byte scan); otherwise count exactly.
    if body.count(b"<") <= limits.max_elements:
        return root
    count = int(count_elements(root))
    if count > limits.max_elements:
        raise _reject("XML_TOO_MANY_ELEMENTS", f"{count} elements, the limit is {limits.max_elements}",
                      source=source)
    return root
