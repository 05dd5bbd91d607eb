"""Declarative mappings (``mappings/*.yaml``) from VNACCS-style XML to the agreed Avro records.

A mapping names its document type, root element, XSD and target schema, and maps each target field to
a source path with transforms (code lists, units, currencies, dates in Asia/Ho_Chi_Minh -> UTC, exact
decimals, HS-8 -> HS-6 and the CN crosswalk, repeated groups). See docs/documents.md for the language.
Mappings are compiled and checked once, when first needed (:func:`mappings`).
"""

from __future__ import annotations

from functools import cache

from xborder_gateway.avro._resources import data_dir
from xborder_gateway.errors import MappingError
from xborder_gateway.mapping._codelists import CodeList, codelist
from xborder_gateway.mapping._engine import CompiledMapping, MappingDefinitionError, compile_mapping, load_mapping
from xborder_gateway.mapping._transforms import container_check_digit, hs_nomenclature, tax_code_check_digit

__all__ = [
    "CodeList",
    "CompiledMapping",
    "MappingDefinitionError",
    "cn_crosswalk",
    "codelist",
    "compile_mapping",
    "container_check_digit",
    "hs_nomenclature",
    "load_mapping",
    "mapping_for",
    "mappings",
    "tax_code_check_digit",
]


@cache
def mappings() -> dict[str, CompiledMapping]:
    """Every mapping under ``mappings/``, by root element tag in Clark notation (``{ns}IDA``)."""
    folder = data_dir("mappings")
    result: dict[str, CompiledMapping] = {}
    for path in sorted(folder.glob("*.yaml")):
        compiled = load_mapping(path)
        if compiled.root_tag in result:
            raise MappingDefinitionError(f"{path}: root {compiled.root_tag} is already mapped by "
                                         f"{result[compiled.root_tag].path.name}")
        result[compiled.root_tag] = compiled
    return result


def mapping_for(document_type: str) -> CompiledMapping:
    """The mapping of a document type (IDA, EDA, TIR, TOR, …)."""
    for compiled in mappings().values():
        if compiled.document_type == document_type:
            return compiled
    raise MappingError(f"no mapping for document type {document_type!r}", code="MAPPING_UNKNOWN_DOCUMENT",
                       hint="add mappings/<TYPE>.yaml")


@cache
def _crosswalk() -> dict[str, str]:
    return codelist("hs_crosswalk").column("cn10")


def cn_crosswalk(hs8: str) -> str | None:
    """The China 10-digit tariff code for a Vietnamese 8-digit HS code, or None when the crosswalk has none.

    Fallback (documented in docs/documents.md): without an entry the receiver classifies from the shared
    HS-6 subheading; the gateway never guesses a national code.
    """
    return _crosswalk().get(hs8.strip())
