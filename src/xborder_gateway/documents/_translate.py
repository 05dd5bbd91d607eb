"""translate_xml: the one call the outbound connector makes per document."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

from pydantic import ValidationError

from xborder_gateway import avro
from xborder_gateway.documents._dynamic import model_from_schema
from xborder_gateway.documents._registry import document_types, key_pattern
from xborder_gateway.errors import MappingError
from xborder_gateway.intake import DEFAULT_LIMITS, DocumentRejectedError, IntakeLimits, parse_xml, prescreen
from xborder_gateway.model import CanonicalRecord, model_for

__all__ = ["TranslatedDocument", "peek_key", "translate_xml"]


@dataclass(frozen=True)
class TranslatedDocument:
    """A validated, mapped and Avro-encoded document."""

    doc_type: str
    """Source procedure: IDA, EDA, TIR or TOR."""
    schema_name: str
    """Agreed schema: Declaration or VehicleManifest."""
    business_key: str
    """Declaration number (IDA/EDA) or vehicle declaration number (TIR/TOR)."""
    payload: bytes = field(repr=False)
    """The record in Avro single-object encoding (C3 01 + fingerprint + body)."""
    schema_fingerprint: bytes
    perishable: bool
    linked_declarations: tuple[str, ...]
    gross_weight_kg: Decimal | None
    raw_sha256: bytes = field(repr=False)
    """SHA-256 of the exact input bytes."""
    schema_version: int = 0
    values: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The mapped record as plain values (what was Avro-encoded)."""

    @cached_property
    def record(self) -> CanonicalRecord:
        """The canonical model (e.g. :class:`xborder_gateway.model.Declaration`), validated on first access.

        The connectors' hot path needs only the payload and the outputs; the record was already checked
        against the schema by the mapping (load-time types) and by the Avro encoder (strict)."""
        model_cls = model_for(self.schema_name) or model_from_schema(self.schema_name, self.schema_version)
        try:
            return model_cls.model_validate(self.values)
        except ValidationError as exc:
            raise MappingError(f"the mapped {self.doc_type} record does not fit the canonical model: {exc}",
                               code="MODEL_MISMATCH", hint="fix the mapping or the model") from exc


def translate_xml(raw: bytes, *, source: str = "<bytes>", limits: IntakeLimits = DEFAULT_LIMITS) -> TranslatedDocument:
    """Parse (hardened), validate (XSD), map and encode one VNACCS-style XML document.

    Raises :class:`~xborder_gateway.intake.DocumentRejectedError` (an ``IntakeError``: code, line, column,
    xpath, source, ``to_dict()``) for the sender's faults, ``MappingError`` for mapping/code-list faults.
    Its ``reasons`` list every XSD error or, for an XSD-valid document, every data-rule error in document
    order (the data rules run only on an XSD-valid tree); at most ``limits.max_errors`` of either.
    """
    raw = bytes(raw)
    root = parse_xml(raw, source=source, limits=limits)
    doc = document_types().get(root.tag)
    if doc is None:
        known = ", ".join(sorted(d.name for d in document_types().values()))
        raise DocumentRejectedError.one("XML_UNKNOWN_DOCUMENT",
                                        f"root element {root.tag} is not a known document type ({known})",
                                        source=source, line=root.sourceline, xpath=f"/{root.tag}")
    doc.validator.validate(root, source=source, max_errors=limits.max_errors)
    mapping = doc.mapping
    record = mapping.apply(root, source=source, max_errors=limits.max_errors)
    outputs = mapping.output_values(record, root, source=source)
    payload = avro.encode(mapping.schema_name, record, version=mapping.schema_version)
    key = outputs.get("business_key")
    weight: Any = outputs.get("gross_weight_kg")
    return TranslatedDocument(
        doc_type=mapping.document_type,
        schema_name=mapping.schema_name,
        schema_version=mapping.schema_version,
        business_key=str(key) if key is not None else "",
        payload=payload,
        schema_fingerprint=avro.fingerprint(mapping.schema_name, mapping.schema_version),
        perishable=bool(outputs.get("perishable")),
        linked_declarations=tuple(outputs.get("linked_declarations") or ()),
        gross_weight_kg=weight if isinstance(weight, Decimal) else None,
        raw_sha256=hashlib.sha256(raw).digest(),
        values=record,
    )


def peek_key(raw: bytes, *, limits: IntakeLimits = DEFAULT_LIMITS) -> str | None:
    """The business key of a document, found cheaply for the publisher's Kafka key; None if not found.

    Hardened like the intake's byte checks (size cap, NUL, encoding -> None) and never raises; a document
    that mentions a DOCTYPE or an entity declaration anywhere gets no key either (the intake decides on it,
    from the parse). It is a byte pattern over the business-key elements of the mappings, not a parse: the
    authoritative key is :attr:`TranslatedDocument.business_key`.
    """
    try:
        data = bytes(raw)
        prescreen(data, limits=limits)
        if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
            return None
        match = key_pattern().search(data)
    except (DocumentRejectedError, TypeError, ValueError, MappingError):
        return None
    return match.group(1).decode("ascii") if match else None
