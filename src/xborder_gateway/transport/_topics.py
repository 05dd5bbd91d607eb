"""Topic creation from settings (idempotent)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from xborder_gateway.config import Settings
from xborder_gateway.errors import TransportError
from xborder_gateway.transport._errors import kafka_boundary
from xborder_gateway.transport._memory import is_memory, memory_broker

__all__ = ["INTAKE_MAX_MESSAGE_BYTES", "ensure_role_topics", "ensure_topics", "gateway_topic_configs",
           "gateway_topics", "role_topics"]

log = logging.getLogger(__name__)
_TOPIC_ALREADY_EXISTS = 36

#: ``max.message.bytes`` of the intake topic: 64 KiB below the broker's and the producers' default limit
#: (1 MiB), so that a rejected record -- the intake record's raw bytes plus the reasons headers -- always
#: fits on the rejected topic. Without this headroom one intake record near 1 MiB made every commit of its
#: batch fail (record too large) and blocked its partition for good.
INTAKE_MAX_MESSAGE_BYTES = 1_048_576 - 65_536


def gateway_topics(settings: Settings) -> tuple[str, ...]:
    """Every topic the exchange uses, in flow order."""
    return (
        settings.topic_intake,
        settings.topic_rejected,
        settings.topic_exchange,
        settings.topic_exchange_priority,
        settings.topic_receipts,
        settings.topic_dead_letter,
        settings.topic_status,
    )


def gateway_topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Topic-level configs the gateway sets when it creates its topics."""
    configs = {settings.topic_intake: {"max.message.bytes": str(INTAKE_MAX_MESSAGE_BYTES)}}
    for authority in ("VN", "CN"):  # every site's intake keeps the headroom for its rejected records
        configs[settings.site_topics(authority).intake] = {"max.message.bytes": str(INTAKE_MAX_MESSAGE_BYTES)}
    return configs


def role_topics(settings: Settings, role: str, authority: str) -> tuple[str, ...]:
    """The topics a connector role of ``authority`` creates (issue 10 item 1): its own site's topics that it
    uses and the cross-border topics of its direction -- never a topic of the other site.

    - ``outbound`` (A -> B): A's intake, rejected and status; the A -> B exchange and priority lanes;
    - ``receipts`` (A -> B): A's rejected, status and dead letters; the A -> B lanes and B's receipts topic;
    - ``inbound`` (B receiving from A): the A -> B lanes it consumes and the receipts topic it answers on.
    """
    from xborder_gateway.config import counterpart

    a = authority.upper()
    if role == "inbound":
        d = settings.direction_topics(counterpart(a), a)
        return (d.priority, d.exchange, d.receipts)
    d = settings.direction_topics(a, counterpart(a))
    site = settings.site_topics(a)
    if role == "outbound":
        return (site.intake, site.rejected, site.status, d.exchange, d.priority)
    if role == "receipts":
        return (site.rejected, site.status, site.dead_letter, d.exchange, d.priority, d.receipts)
    raise ValueError(f"unknown connector role {role!r}")


async def ensure_role_topics(settings: Settings, role: str, authority: str) -> list[str]:
    """Create whichever of :func:`role_topics` are missing."""
    return await ensure_topics(settings.bootstrap, role_topics(settings, role, authority), settings.topic_partitions,
                               gateway_topic_configs(settings))


async def ensure_gateway_topics(settings: Settings) -> list[str]:
    """Create whichever of the exchange's topics are missing (names, partitions, configs from settings)."""
    return await ensure_topics(settings.bootstrap, gateway_topics(settings), settings.topic_partitions,
                               gateway_topic_configs(settings))


async def ensure_topics(bootstrap: str, names: tuple[str, ...] | list[str], partitions: int,
                        configs: Mapping[str, Mapping[str, str]] | None = None) -> list[str]:
    """Create the topics that do not exist yet (with ``configs[name]`` as topic configs); returns the names
    created. Existing topics are left alone."""
    if is_memory(bootstrap):
        broker = memory_broker(bootstrap)
        with kafka_boundary("create topics"):
            broker.check_reachable("create topics")
        return [n for n in names if broker.create_topic(n, partitions)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    with kafka_boundary("create topics"):
        await admin.start()
    try:
        with kafka_boundary("create topics"):
            resp = await admin.create_topics([NewTopic(n, partitions, 1, topic_configs=dict((configs or {}).get(n, {})))
                                              for n in names])
        created: list[str] = []
        for entry in resp.topic_errors:
            topic, code = entry[0], int(entry[1])
            if code == 0:
                created.append(topic)
            elif code != _TOPIC_ALREADY_EXISTS:
                message = entry[2] if len(entry) > 2 else ""
                raise TransportError(f"cannot create topic {topic}: error {code} {message}",
                                     code="TRANSPORT_TOPIC_CREATE", retriable=False,
                                     hint="check the topic name and the broker's permissions")
        if created:
            log.info("created topics %s (%d partitions)", created, partitions)
        return created
    finally:
        await admin.close()
