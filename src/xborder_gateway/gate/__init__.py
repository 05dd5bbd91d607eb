"""The smart gate: a decision for every truck at the gate, from the pre-declaration state of both sides.

Pure core (:func:`decide`, plate normalisation and matching, ISO 6346) and a durable view (:class:`GateStore`,
SQLite); :mod:`xborder_gateway.gate._connector` is the thin Kafka shell (``xborder run gate``) and
:mod:`xborder_gateway.gate._board` the operator's terminal view (``xborder gate board``). docs/gate.md has the
rules, the reason codes and what is done for privacy.
"""

from xborder_gateway.gate._codec import GateInputError, decode_arrival, decode_decision, encode_arrival, encode_decision
from xborder_gateway.gate._decide import DeclRecord, GatePolicy, GateView, decide, redecide
from xborder_gateway.gate._feed import decode_feed, encode_view_event, from_status_record
from xborder_gateway.gate._memory import MemoryView
from xborder_gateway.gate._model import (
    RED_REASONS,
    YELLOW_REASONS,
    Arrival,
    Colour,
    Decision,
    DeclarationStatus,
    DeclState,
    Direction,
    MirrorFinding,
    Reason,
    VehicleDeclarationSeen,
    ViewEvent,
)
from xborder_gateway.gate._plates import (
    PlateError,
    PlateIndex,
    PlateMatch,
    container_check_digit,
    container_valid,
    match_cost,
    normalise_container,
    normalise_plate,
    plate_kind,
)
from xborder_gateway.gate._privacy import PlateHasher
from xborder_gateway.gate._service import BatchResult, GateProcessor
from xborder_gateway.gate._store import GateStore, StaleDecisionError, accepts_status

__all__ = [
    "RED_REASONS",
    "YELLOW_REASONS",
    "Arrival",
    "BatchResult",
    "Colour",
    "Decision",
    "DeclRecord",
    "DeclState",
    "DeclarationStatus",
    "Direction",
    "GateInputError",
    "GatePolicy",
    "GateProcessor",
    "GateStore",
    "GateView",
    "MemoryView",
    "MirrorFinding",
    "PlateError",
    "PlateHasher",
    "PlateIndex",
    "PlateMatch",
    "Reason",
    "StaleDecisionError",
    "VehicleDeclarationSeen",
    "ViewEvent",
    "accepts_status",
    "container_check_digit",
    "container_valid",
    "decide",
    "decode_arrival",
    "decode_decision",
    "decode_feed",
    "encode_arrival",
    "encode_decision",
    "encode_view_event",
    "from_status_record",
    "match_cost",
    "normalise_container",
    "normalise_plate",
    "plate_kind",
    "redecide",
]
