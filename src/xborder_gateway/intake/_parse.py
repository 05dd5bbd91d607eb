"""Hardened XML parsing: the only way a sender's bytes become an lxml tree.

Rules (cited in the code as ``# XML-n``, listed in docs/documents.md):

XML-1 size cap before any parsing · XML-2 no NUL bytes · XML-3 UTF-8 only · XML-4 no DOCTYPE, DTD or
entity declaration (refused before the parser runs) · XML-5 no XInclude · XML-6 depth cap · XML-7 element
cap · XML-8 parser flags: ``resolve_entities=False``, ``no_network=True``, ``load_dtd=False``,
``huge_tree=False`` · XML-9 only the project's local XSDs are ever loaded (see ``_xsd.py``).
"""

from __future__ import annotations

import re
import threading

from lxml import etree

from xborder_gateway.intake._errors import DocumentRejectedError
from xborder_gateway.intake._limits import DEFAULT_LIMITS, IntakeLimits

__all__ = ["parse_xml", "prescreen"]

_DOCTYPE = b"<!DOCTYPE"
_XINCLUDE_NS = b"http://www.w3.org/2001/XInclude"
_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")
_DECL_ENCODING = re.compile(rb"""^(?:\xef\xbb\xbf)?<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._-]{1,40})["']""")
_PARAM_ENTITY = re.compile(rb"<!ENTITY\s+%")
_EXTERNAL_ENTITY = re.compile(rb"<!ENTITY\s+[^\s>]+\s+(?:SYSTEM|PUBLIC)\b")
_EXTERNAL_DTD = re.compile(rb"<!DOCTYPE\s+[^\s>\[]+\s+(?:SYSTEM|PUBLIC)\b")
_ENTITY = re.compile(rb"<!ENTITY\b")

_local = threading.local()
_reject = DocumentRejectedError.one


def _parser() -> etree.XMLParser:
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        # XML-8: no entity expansion, no network, no DTD loading, libxml2's own size/depth guards on.
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                                 dtd_validation=False, remove_pis=True, collect_ids=False)
        _local.parser = parser
    return parser


def prescreen(raw: bytes, *, source: str = "<bytes>", limits: IntakeLimits = DEFAULT_LIMITS) -> None:
    """The byte-level checks made before a parser sees the document; raises DocumentRejectedError."""
    # XML-1: size cap before anything else reads the document.
    if len(raw) > limits.max_bytes:
        raise _reject("XML_TOO_LARGE", f"document is {len(raw)} bytes, the limit is {limits.max_bytes}",
                                   source=source)
    if not raw or raw.isspace():
        raise _reject("XML_EMPTY", "document is empty", source=source, line=1, column=1)
    # XML-3: UTF-8 only (UTF-16/32 would also hide the byte patterns checked below).
    if raw.startswith(_BOMS):
        raise _reject("XML_ENCODING_UNSUPPORTED", "document is UTF-16/UTF-32; only UTF-8 is accepted",
                                   source=source, line=1, column=1)
    # XML-2: NUL bytes are never legal XML characters.
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise _reject("XML_NUL_BYTE", f"NUL byte at offset {nul}", source=source, line=line,
                                   column=nul - raw.rfind(b"\n", 0, nul))
    match = _DECL_ENCODING.match(raw)
    if match is not None and match.group(1).lower() not in (b"utf-8", b"utf8"):
        raise _reject("XML_ENCODING_UNSUPPORTED",
                                   f"declared encoding {match.group(1).decode('ascii')!r}; only UTF-8 is accepted",
                                   source=source, line=1, column=1)
    # XML-4: any DOCTYPE is refused before parsing; the code says what the DOCTYPE tried to do.
    start = raw.find(_DOCTYPE)
    if start >= 0:
        line = raw.count(b"\n", 0, start) + 1
        column = start - raw.rfind(b"\n", 0, start)
        region = raw[start:]
        if _PARAM_ENTITY.search(region):
            code, what = "XML_PARAMETER_ENTITY_FORBIDDEN", "a parameter entity"
        elif _EXTERNAL_ENTITY.search(region):
            code, what = "XML_EXTERNAL_ENTITY_FORBIDDEN", "an external entity (XXE)"
        elif _EXTERNAL_DTD.search(region):
            code, what = "XML_EXTERNAL_DTD_FORBIDDEN", "an external DTD"
        elif _ENTITY.search(region):
            code, what = "XML_ENTITY_FORBIDDEN", "an entity declaration (entity expansion)"
        else:
            code, what = "XML_DOCTYPE_FORBIDDEN", "a DOCTYPE"
        raise _reject(code, f"document declares {what}; DOCTYPE and entities are refused",
                                   source=source, line=line, column=column)
    # XML-5: XInclude is never processed, and a document that asks for it is refused.
    if _XINCLUDE_NS in raw:
        raise _reject("XML_XINCLUDE_FORBIDDEN", "document uses XInclude", source=source)


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


def _checks(max_depth: int) -> tuple[etree.XPath, etree.XPath]:
    """Compiled XPath checks, one pair per thread and depth limit."""
    cache: dict[int, tuple[etree.XPath, etree.XPath]] | None = getattr(_local, "checks", None)
    if cache is None:
        cache = _local.checks = {}
    pair = cache.get(max_depth)
    if pair is None:
        pair = cache[max_depth] = (etree.XPath("boolean(/*" + "/*" * max_depth + ")"), etree.XPath("count(//*)"))
    return pair


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
    try:
        root = etree.fromstring(raw, _parser())
    except etree.XMLSyntaxError as exc:
        name = etree.ErrorTypes._getName(exc.code) or ""
        line, column = exc.position if exc.position else (None, None)
        if name == "ERR_RESOURCE_LIMIT" and "depth" in (exc.msg or ""):
            code = "XML_TOO_DEEP"  # XML-6, caught by libxml2's own guard (256)
        elif _at_end(raw, line, column):
            code = "XML_TRUNCATED"  # the parser ran out of input: the document was cut
        else:
            code = _SYNTAX_CODES.get(name, "XML_MALFORMED")
        raise _reject(code, f"not well-formed XML: {exc.msg}", source=source, line=line,
                                   column=column) from exc
    tree = root.getroottree()
    if tree.docinfo.doctype:  # XML-4 (defence in depth: the pre-screen should have refused it)
        raise _reject("XML_DOCTYPE_FORBIDDEN", "document has a DOCTYPE", source=source)
    too_deep, count_elements = _checks(limits.max_depth)
    # XML-6: an element exists at depth max_depth + 1 (evaluated by libxml2, no Python walk).
    if too_deep(root):
        raise _reject("XML_TOO_DEEP", f"elements nested deeper than {limits.max_depth}",
                                   source=source)
    # XML-7: element cap. Every element starts with "<", so a document with fewer "<" than the cap needs
    # no count (a C-level byte scan); otherwise count exactly.
    if raw.count(b"<") <= limits.max_elements:
        return root
    count = int(count_elements(root))
    if count > limits.max_elements:
        raise _reject("XML_TOO_MANY_ELEMENTS", f"{count} elements, the limit is {limits.max_elements}",
                                   source=source)
    return root
