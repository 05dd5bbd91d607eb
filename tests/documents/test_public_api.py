"""The public surface of the documents part is what the other parts were promised (STYLE lesson 7)."""

from __future__ import annotations

import functools
import importlib

import pytest

EXPECTED = {
    "xborder_gateway.avro": {"MAGIC", "AvroFrameError", "Decoded", "SchemaInfo", "decode", "encode", "fingerprint",
                             "known_schemas", "schema_info"},
    "xborder_gateway.documents": {"Decoded", "DocumentRejectedError", "IntakeLimits", "Reason", "TranslatedDocument",
                                  "cn_crosswalk", "decode_payload", "peek_key", "translate_xml"},
    "xborder_gateway.samples": {"INVALID_RULES", "KINDS", "MISMATCH_KINDS", "CnConsignment", "Sample", "generate",
                                "generate_cn_exports", "generate_mix"},
}


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_exported_names(module: str) -> None:
    mod = importlib.import_module(module)
    assert set(mod.__all__) == EXPECTED[module]
    for name in mod.__all__:
        assert hasattr(mod, name)


def test_translated_document_fields() -> None:
    from dataclasses import fields

    from xborder_gateway.documents import TranslatedDocument

    names = {f.name for f in fields(TranslatedDocument)} | {"record"}  # record: validated on first access
    assert {"doc_type", "schema_name", "business_key", "payload", "schema_fingerprint", "perishable",
            "linked_declarations", "gross_weight_kg", "record", "raw_sha256"} <= names
    assert isinstance(TranslatedDocument.__dict__["record"], functools.cached_property)
