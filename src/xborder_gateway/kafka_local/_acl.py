"""The link principal's ACLs, set at every broker start (KRaft ``StandardAuthorizer``; docs/link.md §ACLs).

The counterpart's MirrorMaker authenticates on the link listener as ``User:link-<COUNTERPART>``. It may
read (and describe, including their configs) exactly the allow-listed topics flowing towards it and use
only its own consumer group; it is granted nothing else — no write, no create, no cluster operation (LINK-6). The set is
replaced at each start: every ACL of that principal is deleted, then the current allow-list's are created,
so a topic removed from the allow-list loses its ACL (the principal never holds more than the allow-list).

aiokafka has no ACL API, so this speaks Kafka's CreateAcls / DeleteAcls / DescribeAcls requests with
aiokafka's own protocol classes over the local PLAINTEXT listener (whose ANONYMOUS principal is the
broker's super user).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xborder_gateway.errors import TransportError

if TYPE_CHECKING:
    from xborder_gateway.kafka_local._launcher import LinkListener

__all__ = ["AclEntry", "apply_link_acls", "describe_acls", "desired_acls"]

# Kafka's enum values (org.apache.kafka.common.resource / acl)
RESOURCE_ANY, RESOURCE_TOPIC, RESOURCE_GROUP = 1, 2, 3
PATTERN_ANY, PATTERN_LITERAL = 1, 3
OP_ANY, OP_READ, OP_DESCRIBE, OP_DESCRIBE_CONFIGS = 1, 3, 8, 10
PERM_ANY, PERM_ALLOW = 1, 3
_OP_NAMES = {2: "ALL", 3: "READ", 4: "WRITE", 5: "CREATE", 6: "DELETE", 7: "ALTER", 8: "DESCRIBE",
             9: "CLUSTER_ACTION", 10: "DESCRIBE_CONFIGS", 11: "ALTER_CONFIGS", 12: "IDEMPOTENT_WRITE"}
_RESOURCE_NAMES = {2: "TOPIC", 3: "GROUP", 4: "CLUSTER", 5: "TRANSACTIONAL_ID"}


@dataclass(frozen=True, order=True)
class AclEntry:
    resource_type: int
    resource_name: str
    principal: str
    operation: int
    permission: int = PERM_ALLOW
    host: str = "*"

    def describe(self) -> str:
        return (f"{self.principal} {'ALLOW' if self.permission == PERM_ALLOW else 'DENY'} "
                f"{_OP_NAMES.get(self.operation, self.operation)} on "
                f"{_RESOURCE_NAMES.get(self.resource_type, self.resource_type)}:{self.resource_name}")


def link_group(site: str) -> str:
    """The one consumer group ``site``'s MirrorMaker may use at the counterpart."""
    return f"link-{site}"


def desired_acls(link: LinkListener) -> list[AclEntry]:
    """What ``User:link-<counterpart>`` may do on this broker: read+describe the allow-list, its own group."""
    from xborder_gateway.link._pki import client_principal

    principal = client_principal(link.counterpart)
    # DESCRIBE_CONFIGS: MirrorMaker reads a source topic's configuration to create its replica
    ops = (OP_READ, OP_DESCRIBE, OP_DESCRIBE_CONFIGS)
    entries = [AclEntry(RESOURCE_TOPIC, t, principal, op) for t in link.topics for op in ops]
    entries.append(AclEntry(RESOURCE_GROUP, link_group(link.counterpart), principal, OP_READ))
    return sorted(entries)


async def _admin(bootstrap: str) -> Any:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    return admin


async def _send(admin: Any, request: Any) -> Any:
    return await admin._client.send(admin._client.get_random_node(), request)


async def describe_acls(bootstrap: str, principal: str | None = None) -> list[AclEntry]:
    """Every ACL on the broker (or one principal's)."""
    from aiokafka.protocol.admin import DescribeAclsRequest

    admin = await _admin(bootstrap)
    try:
        resp = await _send(admin, DescribeAclsRequest(RESOURCE_ANY, None, PATTERN_ANY, principal, None,
                                                      OP_ANY, PERM_ANY))
    finally:
        await admin.close()
    if resp.error_code:
        raise TransportError(f"DescribeAcls failed: error {resp.error_code} {resp.error_message}",
                             code="KAFKA_ACL_FAILED", retriable=False)
    out = []
    for res in resp.resources:
        rtype, name = res[0], res[1]
        for acl in res[-1]:
            out.append(AclEntry(rtype, name, acl[0], acl[2], acl[3], acl[1]))
    return sorted(out)


async def _apply(bootstrap: str, link: LinkListener) -> None:
    from aiokafka.protocol.admin import CreateAclsRequest, DeleteAclsRequest

    from xborder_gateway.link._pki import client_principal

    admin = await _admin(bootstrap)
    try:
        deleted = await _send(admin, DeleteAclsRequest(RESOURCE_ANY, None, PATTERN_ANY,
                                                       client_principal(link.counterpart), None, OP_ANY, PERM_ANY))
        for err, msg, *_ in deleted.filter_responses:
            if err:
                raise TransportError(f"DeleteAcls failed: error {err} {msg}", code="KAFKA_ACL_FAILED",
                                     retriable=False)
        for entry in desired_acls(link):
            resp = await _send(admin, CreateAclsRequest(entry.resource_type, entry.resource_name, PATTERN_LITERAL,
                                                        entry.principal, entry.host, entry.operation,
                                                        entry.permission))
            for err, msg in resp.creation_responses:
                if err:
                    raise TransportError(f"CreateAcls {entry.describe()} failed: error {err} {msg}",
                                         code="KAFKA_ACL_FAILED", retriable=False)
    finally:
        await admin.close()


def apply_link_acls(bootstrap: str, link: LinkListener, *, attempts: int = 20) -> None:
    """Replace the link principal's ACLs with the allow-list's (retries while the broker settles)."""
    last: Exception | None = None
    for _ in range(attempts):
        try:
            asyncio.run(_apply(bootstrap, link))
            return
        except TransportError:
            raise
        except Exception as exc:  # noqa: BLE001 - aiokafka's connection errors while the broker settles
            last = exc
            import time

            time.sleep(0.5)
    raise TransportError(f"could not set the link ACLs: {last}", code="KAFKA_ACL_FAILED", retriable=False,
                         hint="read the broker log: `xborder kafka logs`")
