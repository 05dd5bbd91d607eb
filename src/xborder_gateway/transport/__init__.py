"""The one boundary between the gateway and Kafka (aiokafka).

Nothing outside this package imports aiokafka; what it raises leaves here as
:class:`~xborder_gateway.errors.TransportError` (``retriable`` taken from aiokafka's flag).

- :func:`ensure_topics` / :func:`gateway_topics` / :func:`gateway_topic_configs` -- create the exchange
  topics from settings (the intake topic's size limit leaves room for the rejection headers);
- :func:`make_producer` -- idempotent (``acks=all``), optionally transactional;
- :class:`TransactionalBatchLoop` -- read_committed consume -> handler -> one transaction with the outputs
  and the input offsets (exactly once); restarts its clients on transient failures;
- :class:`AtLeastOnceLoop` -- consume -> durable idempotent handler -> commit offsets;
- :func:`install_shutdown` -- SIGTERM/SIGINT set the loops' stop event;
- :class:`MemoryBroker` -- an in-memory Kafka with transactions and groups, chosen by the bootstrap address
  ``memory://NAME``, so the same scenarios run in the fast unit suite and on the real broker.
"""

from xborder_gateway.transport._clients import make_consumer, make_producer, wait_for_assignment
from xborder_gateway.transport._errors import TransportFencedError, kafka_boundary, translate
from xborder_gateway.transport._history import partition_for_key, read_key
from xborder_gateway.transport._loop import (
    AtLeastOnceLoop,
    BatchHandler,
    LoopConfig,
    LoopStats,
    TransactionalBatchLoop,
    to_incoming,
)
from xborder_gateway.transport._memory import Faults, MemoryBroker, is_memory, memory_broker
from xborder_gateway.transport._records import Incoming, Outgoing, header
from xborder_gateway.transport._shutdown import install_shutdown
from xborder_gateway.transport._topics import (
    INTAKE_MAX_MESSAGE_BYTES,
    ensure_gateway_topics,
    ensure_role_topics,
    ensure_topics,
    gateway_topic_configs,
    gateway_topics,
    role_topics,
)

__all__ = [
    "INTAKE_MAX_MESSAGE_BYTES",
    "AtLeastOnceLoop",
    "BatchHandler",
    "Faults",
    "Incoming",
    "LoopConfig",
    "LoopStats",
    "MemoryBroker",
    "Outgoing",
    "TransactionalBatchLoop",
    "TransportFencedError",
    "ensure_gateway_topics",
    "ensure_role_topics",
    "ensure_topics",
    "gateway_topic_configs",
    "gateway_topics",
    "header",
    "install_shutdown",
    "is_memory",
    "kafka_boundary",
    "make_consumer",
    "make_producer",
    "memory_broker",
    "partition_for_key",
    "read_key",
    "role_topics",
    "to_incoming",
    "translate",
    "wait_for_assignment",
]
