"""Document types known to the gateway: one mapping + its XSD per root element."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lxml import etree

from xborder_gateway.avro._resources import data_dir
from xborder_gateway.errors import MappingError
from xborder_gateway.intake import XsdValidator
from xborder_gateway.mapping import CompiledMapping, mappings

__all__ = ["DocumentType", "document_types", "key_pattern"]

_XS = "{http://www.w3.org/2001/XMLSchema}"


@dataclass(frozen=True)
class DocumentType:
    name: str
    mapping: CompiledMapping
    validator: XsdValidator


@cache
def document_types() -> dict[str, DocumentType]:
    """By root tag (Clark notation). XSDs are compiled once, here."""
    schemas = data_dir("schemas")
    result: dict[str, DocumentType] = {}
    for tag, mapping in mappings().items():
        xsd = (schemas / mapping.xsd).resolve()
        if not xsd.is_relative_to(schemas.resolve()) or not xsd.is_file():
            raise MappingError(f"{mapping.path}: xsd {mapping.xsd!r} is not a file under {schemas}",
                               code="MAPPING_DEFINITION", hint="name an XSD relative to schemas/")
        _check_root_declared(xsd, mapping)
        result[tag] = DocumentType(mapping.document_type, mapping, XsdValidator(xsd, root=schemas))
    return result


def _check_root_declared(xsd: Path, mapping: CompiledMapping) -> None:
    """The mapping's root element must be a global element of its XSD's target namespace."""
    tree = etree.parse(str(xsd), etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
    namespace = tree.getroot().get("targetNamespace")
    globals_ = {e.get("name") for e in tree.getroot().iterchildren(f"{_XS}element")}
    if namespace != mapping.root_namespace or mapping.root_element not in globals_:
        raise MappingError(f"{mapping.path}: root {{{mapping.root_namespace}}}{mapping.root_element} is not a "
                           f"global element of {xsd.name} (targetNamespace {namespace!r}, elements "
                           f"{sorted(n for n in globals_ if n)})", code="MAPPING_DEFINITION",
                           hint="make 'root' in the mapping match the XSD")


@cache
def key_pattern() -> re.Pattern[bytes]:
    """A byte pattern for the business-key elements of every mapping (for :func:`peek_key`)."""
    names: set[str] = set()
    for mapping in mappings().values():
        expr = mapping.source_of(str(mapping.outputs.get("business_key", "")))
        if expr:
            names.add(expr.rsplit("/", 1)[-1].rsplit(":", 1)[-1])
    alternatives = b"|".join(re.escape(n.encode()) for n in sorted(names)) or b"(?!)"
    return re.compile(rb"<(?:[A-Za-z_][\w.-]{0,40}:)?(?:" + alternatives + rb")[ \t\r\n]*>[ \t\r\n]*"
                      rb"([0-9A-Za-z._-]{1,64})[ \t\r\n]*</")
