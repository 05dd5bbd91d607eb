"""The exchange's pure core and durable state: business checks, state schemas, run summaries.

The connectors (:mod:`xborder_gateway.connectors`) move bytes between Kafka and these functions.
"""

from xborder_gateway.exchange._business import (
    DECLARATION_TYPES,
    MANIFEST_TYPES,
    BusinessDecision,
    KnownDeclaration,
    decide,
)
from xborder_gateway.exchange._rules_cn import (
    CnRulesConfig,
    CnRuleSet,
    FruitList,
    ReleaseAction,
    ReleaseDecision,
    SpsRegistry,
    decide_release,
)
from xborder_gateway.exchange._state import (
    CN_SCHEMA,
    VN_SCHEMA,
    PendingMessage,
    RunSummary,
    connect,
    decode_headers,
    encode_headers,
    summarize_run,
)

__all__ = [
    "CN_SCHEMA",
    "DECLARATION_TYPES",
    "MANIFEST_TYPES",
    "VN_SCHEMA",
    "BusinessDecision",
    "CnRuleSet",
    "CnRulesConfig",
    "FruitList",
    "KnownDeclaration",
    "PendingMessage",
    "ReleaseAction",
    "ReleaseDecision",
    "RunSummary",
    "SpsRegistry",
    "connect",
    "decide",
    "decide_release",
    "decode_headers",
    "encode_headers",
    "summarize_run",
]
