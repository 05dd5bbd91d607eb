"""Hardened intake: bytes from a sender become a validated lxml tree, or a structured refusal.

    root = parse_xml(raw, source="file.xml")          # XML-1..XML-8, raises DocumentRejectedError
    XsdValidator(path, root=schemas).validate(root)   # XSD, raises DocumentRejectedError

Every refusal is a :class:`DocumentRejectedError` (an ``IntakeError``) with a stable code, line, column,
XPath, every reason (at most ``max_errors``) and ``to_dict()`` for the rejected topic. Bounds are one
frozen :class:`IntakeLimits`.

China's side hands framed Avro of an agreed schema instead (CnExportDeclaration, CnRoadManifest):

    taken = take_cn_avro(frame, source="cn.declarations.raw/0@7")   # CNA-1..CNA-8, DocumentRejectedError
"""

from __future__ import annotations

from xborder_gateway.intake._avro import (
    CN_INTAKE_SCHEMAS,
    DEFAULT_AVRO_LIMITS,
    AvroIntakeLimits,
    TakenAvro,
    take_cn_avro,
)
from xborder_gateway.intake._errors import TOO_MANY_ERRORS, DocumentRejectedError, Reason, element_path
from xborder_gateway.intake._limits import DEFAULT_LIMITS, IntakeLimits
from xborder_gateway.intake._parse import parse_xml, prescreen
from xborder_gateway.intake._xsd import XsdValidator, load_xsd

__all__ = [
    "CN_INTAKE_SCHEMAS",
    "DEFAULT_AVRO_LIMITS",
    "DEFAULT_LIMITS",
    "TOO_MANY_ERRORS",
    "AvroIntakeLimits",
    "DocumentRejectedError",
    "IntakeLimits",
    "Reason",
    "TakenAvro",
    "XsdValidator",
    "element_path",
    "load_xsd",
    "parse_xml",
    "prescreen",
    "take_cn_avro",
]
