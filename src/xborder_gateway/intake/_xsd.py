"""XSD validation with libxml2 (lxml): ~7 µs per document, the hot path (DESIGN.md, intake)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from lxml import etree

from xborder_gateway.errors import ConfigError
from xborder_gateway.intake._errors import TOO_MANY_ERRORS, DocumentRejectedError, Reason, element_path
from xborder_gateway.intake._limits import DEFAULT_LIMITS

__all__ = ["XsdValidator", "load_xsd"]


class _LocalOnlyResolver(etree.Resolver):  # type: ignore[misc]
    """XML-9: an XSD may include only files inside the schemas folder; nothing else is ever fetched."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self._root = root.resolve()

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        path = Path(system_url.removeprefix("file://")).resolve()
        if not path.is_relative_to(self._root) or not path.is_file():
            raise ConfigError(f"XSD refers to {system_url!r} outside {self._root}", code="XSD_EXTERNAL_REF",
                              hint="XSDs may only include files of the project's schemas/ folder")
        return self.resolve_filename(str(path), context)


def load_xsd(path: Path, *, root: Path) -> etree.XMLSchema:
    """Compile one XSD of the project (local includes only)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    parser.resolvers.add(_LocalOnlyResolver(root))
    try:
        return etree.XMLSchema(etree.parse(str(path), parser))
    except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        raise ConfigError(f"cannot load XSD {path}: {exc}", code="XSD_INVALID",
                          hint="fix the XSD under schemas/vnaccs/") from exc


_XSD_CODES = {
    "SCHEMAV_ELEMENT_CONTENT": "XSD_CONTENT",
    "SCHEMAV_CVC_COMPLEX_TYPE_2_4": "XSD_CONTENT",
    "SCHEMAV_CVC_COMPLEX_TYPE_2_3": "XSD_CONTENT",
    "SCHEMAV_CVC_COMPLEX_TYPE_3_2_1": "XSD_CONTENT",
    "SCHEMAV_CVC_COMPLEX_TYPE_3_2_2": "XSD_CONTENT",
    "SCHEMAV_CVC_COMPLEX_TYPE_4": "XSD_CONTENT",
    "SCHEMAV_CVC_ELT_1": "XSD_CONTENT",
    "SCHEMAV_CVC_ENUMERATION_VALID": "XSD_ENUMERATION",
    "SCHEMAV_CVC_PATTERN_VALID": "XSD_PATTERN",
    "SCHEMAV_CVC_MAXLENGTH_VALID": "XSD_LENGTH",
    "SCHEMAV_CVC_MINLENGTH_VALID": "XSD_LENGTH",
    "SCHEMAV_CVC_LENGTH_VALID": "XSD_LENGTH",
    "SCHEMAV_CVC_TOTALDIGITS_VALID": "XSD_DIGITS",
    "SCHEMAV_CVC_FRACTIONDIGITS_VALID": "XSD_DIGITS",
    "SCHEMAV_CVC_MININCLUSIVE_VALID": "XSD_RANGE",
    "SCHEMAV_CVC_MAXINCLUSIVE_VALID": "XSD_RANGE",
    "SCHEMAV_CVC_DATATYPE_VALID_1_2_1": "XSD_DATATYPE",
    "SCHEMAV_CVC_TYPE_3_1_1": "XSD_CONTENT",
    "SCHEMAV_CVC_TYPE_3_1_2": "XSD_CONTENT",
}
# libxml2 reports a facet failure twice: the facet, then "not a valid value of the atomic type".
_SECONDARY = {"SCHEMAV_CVC_DATATYPE_VALID_1_2_1", "SCHEMAV_CVC_TYPE_3_1_2"}


def _readable(tree: etree._ElementTree, path: str | None) -> str | None:
    """libxml2 names elements of a default namespace ``/*/*[2]``; say ``/IDA/ICB`` instead."""
    if not path:
        return None
    try:
        found = tree.xpath(path)
    except etree.XPathError:
        return path
    if isinstance(found, list) and found and isinstance(found[0], etree._Element):
        return element_path(found[0])
    return path


class XsdValidator:
    """A compiled XSD, usable from several threads (one libxml2 validation context per thread)."""

    def __init__(self, path: Path, *, root: Path) -> None:
        self.path = path
        self._root = root
        self._local = threading.local()
        self._owner = threading.get_ident()
        self._schema = load_xsd(path, root=root)  # compile once up front: errors show at start-up

    def _get(self) -> etree.XMLSchema:
        if threading.get_ident() == self._owner:
            return self._schema
        schema: etree.XMLSchema | None = getattr(self._local, "schema", None)
        if schema is None:
            schema = load_xsd(self.path, root=self._root)
            self._local.schema = schema
        return schema

    def validate(self, root: etree._Element, *, source: str = "<bytes>",
                 max_errors: int = DEFAULT_LIMITS.max_errors) -> None:
        """Raise DocumentRejectedError (every XSD error, first one as the code) if ``root`` is not valid.

        At most ``max_errors`` XSD errors are listed, in libxml2's (document) order; when there are more, a
        last ``TOO_MANY_ERRORS`` reason says how many were left out."""
        schema = self._get()
        if schema.validate(root):
            return
        entries = list(schema.error_log)
        has_primary = {(e.line, e.path) for e in entries if e.type_name not in _SECONDARY}
        kept = [e for e in entries if not (e.type_name in _SECONDARY and (e.line, e.path) in has_primary)]
        tree = root.getroottree()
        reasons = [Reason(code=_XSD_CODES.get(e.type_name, "XSD_INVALID"), message=e.message, line=e.line or None,
                          column=e.column or None, xpath=_readable(tree, e.path)) for e in kept[:max_errors]]
        if len(kept) > max_errors:
            reasons.append(Reason(TOO_MANY_ERRORS, f"{len(kept) - max_errors} more XSD error(s) not listed "
                                  f"(at most {max_errors} per document)"))
        if not reasons:  # pragma: no cover - libxml2 always logs why
            reasons.append(Reason("XSD_INVALID", "document is not valid against its XSD"))
        raise DocumentRejectedError(reasons, source=source)
