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
from xborder_gateway.exchange._rules import CnRuleSet, RuleSet, register_rule_set, rule_set_for
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
from xborder_gateway.exchange._stores import EndpointStore, StoredAnswer, TrackedMessage, TrackerStore, transaction
from xborder_gateway.exchange._tracking import (
    RETRIABLE_NACKS,
    Action,
    MessageState,
    Stimulus,
    TrackerPolicy,
    Transition,
    apply_transition,
    decide_message,
    is_retriable_nack,
    mark_dead_letter_produced,
)

__all__ = [
    "CN_SCHEMA",
    "DECLARATION_TYPES",
    "MANIFEST_TYPES",
    "RETRIABLE_NACKS",
    "VN_SCHEMA",
    "Action",
    "BusinessDecision",
    "CnRuleSet",
    "EndpointStore",
    "KnownDeclaration",
    "MessageState",
    "PendingMessage",
    "RuleSet",
    "RunSummary",
    "Stimulus",
    "StoredAnswer",
    "TrackedMessage",
    "TrackerPolicy",
    "TrackerStore",
    "Transition",
    "apply_transition",
    "connect",
    "decide",
    "decide_message",
    "decode_headers",
    "encode_headers",
    "is_retriable_nack",
    "mark_dead_letter_produced",
    "register_rule_set",
    "rule_set_for",
    "summarize_run",
    "transaction",
]
