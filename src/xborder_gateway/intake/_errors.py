"""The one error the intake (and the data rules of the mapping) raise for a sender's document."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from xborder_gateway.errors import IntakeError

__all__ = ["TOO_MANY_ERRORS", "DocumentRejectedError", "Reason", "element_path"]

TOO_MANY_ERRORS = "TOO_MANY_ERRORS"
"""Code of the last reason when a document had more errors than ``IntakeLimits.max_errors``."""


def element_path(element: Any) -> str:
    """A readable XPath of an lxml element by local names, with a position where siblings repeat:
    ``/IDA/Goods/Line[3]/CMD``."""
    steps: list[str] = []
    node = element
    while node is not None:
        tag = node.tag
        local = tag.rsplit("}", 1)[-1] if isinstance(tag, str) else "node()"
        parent = node.getparent()
        if parent is not None:
            same = [c for c in parent if c.tag == tag]
            if len(same) > 1:
                local = f"{local}[{same.index(node) + 1}]"
        steps.append(local)
        node = parent
    return "/" + "/".join(reversed(steps))


@dataclass(frozen=True)
class Reason:
    """One structured reason a document was refused or is invalid."""

    code: str
    message: str
    line: int | None = None
    column: int | None = None
    xpath: str | None = None


_HINTS = {
    "XML_": "the document is not acceptable XML for the gateway; the sender must send plain UTF-8 XML "
    "without DOCTYPE, entities or XInclude, within the size and depth limits",
    "XSD_": "the document does not match its VNACCS XSD (schemas/vnaccs/); fix the element named in the XPath",
}


class DocumentRejectedError(IntakeError):
    """A document was refused (hostile or malformed) or is invalid (XSD or a data rule).

    ``code``/``line``/``column``/``xpath`` describe the first reason; ``reasons`` holds all of them: every
    XSD error, or every data-rule error in document order (at most ``IntakeLimits.max_errors``, then one
    ``TOO_MANY_ERRORS`` reason). ``to_dict()`` is the structured form published with the raw bytes on the
    rejected topic.
    """

    default_code = "INTAKE_INVALID"

    def __init__(self, reasons: Sequence[Reason], *, source: str = "<bytes>", hint: str | None = None) -> None:
        if not reasons:
            raise ValueError("DocumentRejectedError needs at least one reason")
        first = reasons[0]
        if hint is None:
            hint = next((h for prefix, h in _HINTS.items() if first.code.startswith(prefix)),
                        "fix the value named in the XPath (see docs/documents.md for the rule)")
        super().__init__(first.message, code=first.code, hint=hint)
        self.reasons: tuple[Reason, ...] = tuple(reasons)
        self.source = source
        self.line = first.line
        self.column = first.column
        self.xpath = first.xpath

    @classmethod
    def one(cls, code: str, message: str, *, source: str = "<bytes>", line: int | None = None,
            column: int | None = None, xpath: str | None = None, hint: str | None = None) -> DocumentRejectedError:
        return cls([Reason(code, message, line, column, xpath)], source=source, hint=hint)

    def lines(self) -> list[str]:
        """One ``FILE:LINE:COL: CODE message`` line per reason (what ``xborder validate`` prints); the message
        ends with `` (at XPATH)`` when the element is known."""
        return [f"{self.source}:{r.line or 0}:{r.column or 0}: {r.code} {r.message}"
                + (f" (at {r.xpath})" if r.xpath else "") for r in self.reasons]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "code": self.code,
            "message": self.message,
            "line": self.line,
            "column": self.column,
            "xpath": self.xpath,
            "reasons": [asdict(r) for r in self.reasons],
        }
