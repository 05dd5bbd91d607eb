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
from xborder_gateway.exchange._status import (
    STATUS_SCHEMA,
    StatusChange,
    StatusKind,
    StatusVehicle,
    normalise_plate,
    read_status,
    status_partition,
    status_record,
    unknown_key,
)

__all__ = [
    "CN_SCHEMA",
    "DECLARATION_TYPES",
    "MANIFEST_TYPES",
    "STATUS_SCHEMA",
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
    "StatusChange",
    "StatusKind",
    "StatusVehicle",
    "connect",
    "decide",
    "decide_release",
    "decode_headers",
    "encode_headers",
    "normalise_plate",
    "read_status",
    "status_partition",
    "status_record",
    "summarize_run",
    "unknown_key",
]
