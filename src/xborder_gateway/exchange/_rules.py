"""Business rules as a pluggable rule set per RECEIVING authority (issue 10 item 2).

The receiving endpoint asks its authority's :class:`RuleSet` three things: the decision for a decoded
document, whether the document is one to remember for later checks (a declaration a manifest may link),
and the order of a batch (declarations before the manifests that link them). CN's rule set is BIZ-1..3
(``_business``); another authority registers its own with :func:`register_rule_set`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from xborder_gateway.errors import ConfigError
from xborder_gateway.exchange._business import (
    DECLARATION_TYPES,
    MANIFEST_TYPES,
    BusinessDecision,
    KnownDeclaration,
    decide,
)

__all__ = ["CnRuleSet", "RuleSet", "register_rule_set", "rule_set_for"]

Lookup = Callable[[str], KnownDeclaration | None]


class RuleSet(Protocol):
    """What a receiving authority's business rules provide (pure: no I/O but ``lookup``)."""

    @property
    def authority(self) -> str: ...

    def decide(self, document_type: str, record: Mapping[str, Any], *, lookup: Lookup) -> BusinessDecision: ...

    def remembers(self, document_type: str) -> bool:
        """Whether a received document of this type is stored for later checks (``lookup``)."""
        ...

    def batch_order(self, document_type: str | None) -> int:
        """Sort key of a batch's records (stable sort: the priority lane stays first among equals)."""
        ...


@dataclass(frozen=True)
class CnRuleSet:
    """Nanning Customs: BIZ-1 (HS code without CN tariff code), BIZ-2 (unknown linked declaration), BIZ-3
    (linked gross weight above the manifest's). ``crosswalk`` maps a national HS code to a CN code."""

    crosswalk: Callable[[str], str | None] | None = None
    authority: str = "CN"

    def decide(self, document_type: str, record: Mapping[str, Any], *, lookup: Lookup) -> BusinessDecision:
        return decide(document_type, record, lookup=lookup, crosswalk=self.crosswalk)

    def remembers(self, document_type: str) -> bool:
        return document_type in DECLARATION_TYPES

    def batch_order(self, document_type: str | None) -> int:
        return 1 if (document_type or "") in MANIFEST_TYPES else 0


def _cn_crosswalk() -> Callable[[str], str | None] | None:
    try:
        from xborder_gateway.documents import cn_crosswalk
    except ImportError:  # the documents part provides it; without it BIZ-1 uses the record's cn_code only
        return None
    return cn_crosswalk


_FACTORIES: dict[str, Callable[[], RuleSet]] = {"CN": lambda: CnRuleSet(_cn_crosswalk())}


def register_rule_set(authority: str, factory: Callable[[], RuleSet]) -> None:
    """Make ``factory`` the rule set of endpoints receiving for ``authority``."""
    _FACTORIES[authority] = factory


def rule_set_for(authority: str) -> RuleSet:
    """The rule set of the receiving ``authority``; a ConfigError if it has none."""
    try:
        factory = _FACTORIES[authority]
    except KeyError:
        raise ConfigError(f"no business rule set for receiving authority {authority}", code="RULES_UNKNOWN",
                          hint=f"known: {', '.join(sorted(_FACTORIES))}") from None
    return factory()
