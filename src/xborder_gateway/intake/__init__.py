"""Hardened intake: bytes from a sender become a validated lxml tree, or a structured refusal.

    root = parse_xml(raw, source="file.xml")          # XML-1..XML-8, raises DocumentRejectedError
    XsdValidator(path, root=schemas).validate(root)   # XSD, raises DocumentRejectedError

Every refusal is a :class:`DocumentRejectedError` (an ``IntakeError``) with a stable code, line, column,
XPath, every reason (at most ``max_errors``) and ``to_dict()`` for the rejected topic. Bounds are one
frozen :class:`IntakeLimits`.
"""

from __future__ import annotations

from xborder_gateway.intake._errors import TOO_MANY_ERRORS, DocumentRejectedError, Reason, element_path
from xborder_gateway.intake._limits import DEFAULT_LIMITS, IntakeLimits
from xborder_gateway.intake._parse import parse_xml, prescreen
from xborder_gateway.intake._xsd import XsdValidator, load_xsd

__all__ = [
    "DEFAULT_LIMITS",
    "TOO_MANY_ERRORS",
    "DocumentRejectedError",
    "IntakeLimits",
    "Reason",
    "XsdValidator",
    "element_path",
    "load_xsd",
    "parse_xml",
    "prescreen",
]
