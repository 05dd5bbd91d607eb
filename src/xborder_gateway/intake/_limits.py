"""Input bounds of the intake, in one frozen object (STYLE lesson 8)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_LIMITS", "IntakeLimits"]


@dataclass(frozen=True)
class IntakeLimits:
    """Bounds enforced on every document. A 50-line IDA with every optional item is about 40 KB."""

    max_bytes: int = 1_048_576
    """Size cap, checked before any parsing (XML-1)."""
    max_depth: int = 16
    """Maximum element depth (the XSDs need 4; libxml2 itself stops at 256) (XML-6)."""
    max_elements: int = 10_000
    """Maximum number of elements in a document (XML-7)."""
    max_errors: int = 100
    """Most reasons listed for one document: XSD errors beyond it are dropped, and the data rules stop
    checking at the next failure; either way a last ``TOO_MANY_ERRORS`` reason says so. Keeps the
    rejected topic's reasons header and ``xborder validate``'s output bounded."""

    @classmethod
    def from_settings(cls, settings: Any) -> IntakeLimits:
        """The bounds configured as ``documents_max_bytes/_depth/_elements`` (XBG_DOCUMENTS_MAX_…);
        ``max_errors`` keeps its default (not a setting)."""
        return cls(max_bytes=int(settings.documents_max_bytes), max_depth=int(settings.documents_max_depth),
                   max_elements=int(settings.documents_max_elements))

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.max_depth < 1 or self.max_elements < 1 or self.max_errors < 1:
            raise ValueError("intake limits must be positive")


DEFAULT_LIMITS = IntakeLimits()
