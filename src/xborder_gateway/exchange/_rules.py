"""Business rules as a pluggable rule set per RECEIVING authority (issue 10 item 2).

The receiving endpoint asks its authority's :class:`RuleSet` three things: the decision for a decoded
document, whether the document is one to remember for later checks (a declaration a manifest may link),
and the order of a batch (declarations before the manifests that link them). CN's rule set is
``_rules_cn.CnRuleSet`` (HS 2022, SPS and licence rules, BIZ-2/BIZ-3); another authority registers its own
with :func:`register_rule_set`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from xborder_gateway.errors import ConfigError
from xborder_gateway.exchange._business import (
    BusinessDecision,
    KnownDeclaration,
)

__all__ = ["RuleSet", "register_rule_set", "rule_set_for"]

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


def _cn_rules(settings: Any | None) -> RuleSet:
    # issue 15: China's rule set (exchange/_rules_cn.py) -- HS 2022, SPS and licence holds, BIZ-2/BIZ-3;
    # the CN 10-digit crosswalk is no longer a reason to hold goods
    from xborder_gateway.exchange._rules_cn import CnRulesConfig, CnRuleSet

    return CnRuleSet(CnRulesConfig.from_settings(settings) if settings is not None else None)


def _vn_rules(settings: Any | None) -> RuleSet:
    # issue 10: Viet Nam receiving China's exports; the mirror checks run in the endpoint's MirrorDesk
    from xborder_gateway.exchange._rules_vn import VnRuleSet

    del settings
    return VnRuleSet()


_FACTORIES: dict[str, Callable[[Any | None], RuleSet]] = {"CN": _cn_rules, "VN": _vn_rules}


def register_rule_set(authority: str, factory: Callable[[Any | None], RuleSet]) -> None:
    """Make ``factory`` the rule set of endpoints receiving for ``authority``."""
    _FACTORIES[authority] = factory


def rule_set_for(authority: str, settings: Any | None = None) -> RuleSet:
    """The rule set of the receiving ``authority`` (configured from ``settings`` when given); a ConfigError
    if it has none."""
    try:
        factory = _FACTORIES[authority]
    except KeyError:
        raise ConfigError(f"no business rule set for receiving authority {authority}", code="RULES_UNKNOWN",
                          hint=f"known: {', '.join(sorted(_FACTORIES))}") from None
    return factory(settings)
