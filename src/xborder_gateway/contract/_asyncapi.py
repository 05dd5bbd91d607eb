"""Build the AsyncAPI 3.0.0 document of the cross-border exchange from settings and schemas (pure).

Only the topics that cross the link are described: the sealed exchange and receipt topics of both
directions and the audit checkpoint / cosignature topics. Site-local topics (intake, rejected, status,
dead letter) never leave a site and are not part of the contract (DESIGN.md, "Two sites, one software").

The output is deterministic: every mapping is built in a fixed (sorted) order and dumped without
re-sorting, so the same settings and schemas always give the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from xborder_gateway import __version__, avro
from xborder_gateway.config import Settings

__all__ = [
    "ASYNCAPI_VERSION",
    "AVRO_SCHEMA_FORMAT",
    "LINK_SERVERS",
    "REVERSE_TOPICS",
    "Channel",
    "build_asyncapi",
    "channels",
    "render_asyncapi",
]

ASYNCAPI_VERSION = "3.0.0"
AVRO_SCHEMA_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"
KAFKA_BINDING_VERSION = "0.5.0"
DOCS_BASE = "https://xborder-gateway.example/"
"""Where the repository's files are published: external-doc links must be absolute URIs (AsyncAPI 3.0).
A placeholder under the reserved .example domain; the path after it is the file in the repository."""
ENVELOPE_DOC = "docs/envelope.md"

# Contract-local defaults: the link listeners (mTLS) are being added by the MirrorMaker work (link/);
# until its settings exist in this checkout these are the agreed addresses (issue 11 item 6 brief).
LINK_SERVERS: dict[str, str] = {"CN": "127.0.0.1:9194", "VN": "127.0.0.1:9094"}
# The CN -> VN direction's default topic names (settings topic_cn_vn_*; kept for importers of this name)
REVERSE_TOPICS: dict[str, str] = {
    "exchange": "xb.cn-vn.exchange",
    "exchange_priority": "xb.cn-vn.exchange.priority",
    "receipts": "xb.vn-cn.receipts",
}

# Avro payloads inside the envelopes, per (channel kind, sender); site-local DeclarationStatus is excluded.
_DOCUMENTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("exchange", "VN"): ("Declaration", "VehicleManifest"),
    ("exchange", "CN"): ("CnExportDeclaration", "CnRoadManifest"),
    ("receipts", "CN"): ("BusinessResponse", "Receipt"),
    ("receipts", "VN"): ("BusinessResponse", "Receipt"),
}

_HEADERS: dict[str, dict[str, str]] = {
    # docs/exchange.md "Record headers" (only those carried on cross-border topics)
    "xbg-attempt": {"description": "1 for the first send, n for the (n-1)th resend (same bytes, same key)",
                    "on": "exchange"},
    "xbg-business-key": {"description": "the declaration number (routing and logs only; the signed header and "
                         "payload are authoritative)", "on": "exchange"},
    "xbg-doc-type": {"description": "IDA/EDA/TIR/TOR (CN: the CN document types); routing and logs only",
                     "on": "exchange"},
    "xbg-kind": {"description": "`receipt` or `business-response`", "on": "receipts"},
    "xbg-message-id": {"description": "the envelope's message id (UUIDv7, text)", "on": "all"},
    "xbg-published-ms": {"description": "publish time (ms since the epoch, decimal text), set by the publisher, "
                         "carried end to end (latency)", "on": "all"},
    "xbg-run": {"description": "optional run id (demo, tests, benchmarks), carried end to end", "on": "all"},
}


@dataclass(frozen=True, slots=True)
class Channel:
    """One cross-border topic: who produces it (``sender``) and who consumes it (``receiver``)."""

    key: str
    address: str
    kind: str  # exchange | receipts | checkpoints | cosignatures
    sender: str
    receiver: str
    priority: bool = False


def channels(settings: Settings) -> list[Channel]:
    """Every cross-border channel, both directions, sorted by address."""
    found = [
        Channel("vnCnExchange", settings.topic_exchange, "exchange", "VN", "CN"),
        Channel("vnCnExchangePriority", settings.topic_exchange_priority, "exchange", "VN", "CN", priority=True),
        Channel("cnVnReceipts", settings.topic_receipts, "receipts", "CN", "VN"),
        Channel("cnVnExchange", settings.topic_cn_vn_exchange, "exchange", "CN", "VN"),
        Channel("cnVnExchangePriority", settings.topic_cn_vn_exchange_priority, "exchange", "CN", "VN",
                priority=True),
        Channel("vnCnReceipts", settings.topic_cn_vn_receipts, "receipts", "VN", "CN"),
        Channel("vnAuditCheckpoints", settings.topic_vn_audit_checkpoints, "checkpoints", "VN", "CN"),
        Channel("cnAuditCheckpoints", settings.topic_cn_audit_checkpoints, "checkpoints", "CN", "VN"),
        Channel("vnAuditCosignatures", settings.topic_vn_audit_cosignatures, "cosignatures", "VN", "CN"),
        Channel("cnAuditCosignatures", settings.topic_cn_audit_cosignatures, "cosignatures", "CN", "VN"),
    ]
    return sorted(found, key=lambda c: c.address)


def _server_key(site: str) -> str:
    return f"{site.lower()}Link"


def _servers() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for site in sorted(LINK_SERVERS):
        out[_server_key(site)] = {
            "host": LINK_SERVERS[site],
            "protocol": "kafka-secure",
            "protocolVersion": "4.1.1",
            "title": f"{site} site, link listener",
            "description": f"The {site} site's Kafka cluster, listener reserved for the cross-border link "
            "(MirrorMaker 2). TLS with client certificates (mTLS) and ACLs: a peer may read and write only "
            "the cross-border topics of this document.",
            "security": [{"$ref": "#/components/securitySchemes/mtls"}],
            "bindings": {"kafka": {"bindingVersion": KAFKA_BINDING_VERSION}},
        }
    return out


def _headers_schema(kind: str) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for name in sorted(_HEADERS):
        on = _HEADERS[name]["on"]
        if on in ("all", kind):
            props[name] = {"type": "string", "description": _HEADERS[name]["description"]}
    required = ["xbg-message-id", "xbg-published-ms"] if kind in ("exchange", "receipts") else []
    if kind == "exchange":
        required = ["xbg-attempt", *required]
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = sorted(required)
    return schema


def _schema_key(name: str, version: int) -> str:
    return f"{name}V{version}"


def _avro_components() -> dict[str, Any]:
    wanted = {n for names in _DOCUMENTS.values() for n in names}
    out: dict[str, Any] = {}
    for info in sorted(avro.known_schemas(), key=lambda i: (i.name, i.version)):
        if info.name not in wanted:
            continue
        out[_schema_key(info.name, info.version)] = {
            "schemaFormat": AVRO_SCHEMA_FORMAT,
            "schema": info.raw,
        }
    return out


def _message(channel: Channel, settings: Settings) -> dict[str, Any]:
    kind = channel.kind
    if kind in ("exchange", "receipts"):
        docs = _DOCUMENTS[(kind, channel.sender)]
        inner = [
            {"$ref": f"#/components/schemas/{_schema_key(i.name, i.version)}",
             "fingerprint": i.fingerprint.hex()}
            for i in sorted(avro.known_schemas(), key=lambda i: (i.name, i.version)) if i.name in docs
        ]
        what = "a declaration or manifest" if kind == "exchange" else "a Receipt (ENV-11) or a BusinessResponse"
        return {
            "name": f"{channel.key}Envelope",
            "title": f"Sealed envelope {channel.sender} -> {channel.receiver}",
            "summary": f"{what}, signed by {channel.sender} and encrypted to {channel.receiver}",
            "description": (
                f"The value is the binary envelope of {ENVELOPE_DOC} (magic `XBGE`, version 0x01, suite 0x0001 "
                "or 0x0002 batch): a clear header (message id, sender, recipient, document type, schema "
                "fingerprint, created/expires, key ids, priority) followed by the HPKE-encrypted, Ed25519-signed "
                "Avro single-object frame (`C3 01` || 8-byte fingerprint || body) of one of the schemas listed "
                "in `x-xborder-payload-schemas`. Receivers open it by the rules ENV-1..ENV-10 "
                f"({ENVELOPE_DOC} §4, §8.5) and answer with a sealed Receipt. The record key is the message id; "
                "a resend carries the same bytes and key."
            ),
            "contentType": "application/octet-stream",
            "externalDocs": {"description": "Envelope format (byte layout, processing rules, test vectors)",
                             "url": DOCS_BASE + ENVELOPE_DOC},
            "headers": _headers_schema(kind),
            "payload": {"type": "string", "format": "binary",
                        "description": f"envelope bytes, at most 1 MiB (ENV-1); see {ENVELOPE_DOC}"},
            "bindings": {"kafka": {
                "key": {"type": "string", "format": "uuid",
                        "description": "the envelope's message id (UUIDv7) as text, UTF-8"},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }},
            "x-xborder-payload-schemas": inner,
        }
    origin = f"{settings.audit_origin}/{channel.sender.lower()}"
    if kind == "checkpoints":
        return {
            "name": f"{channel.key}Note",
            "title": f"{channel.sender} audit checkpoint",
            "summary": f"a C2SP signed checkpoint of the {channel.sender} audit log, for the "
            f"{channel.receiver} witness",
            "description": f"C2SP tlog-checkpoint (origin `{origin}`, size, base64 root hash) as a C2SP "
            "signed note (Ed25519, key type 0x01), framed as C2SP tlog-witness's add-checkpoint body: "
            "`old <size>` (the size the witness last cosigned, as far as the log knows), one base64 "
            "consistency-proof hash per line from that size, an empty line, then the signed note. Published by "
            f"`xborder run witness --authority {channel.sender}`; see docs/audit.md. Record key: the origin.",
            "contentType": "text/plain; charset=utf-8",
            "externalDocs": {"description": "Audit log and checkpoints", "url": DOCS_BASE + "docs/audit.md"},
            "payload": {"type": "string", "maxLength": 64 * 1024 + 64 * 45 + 32,
                        "description": "the add-checkpoint body, UTF-8"},
            "bindings": {"kafka": {"key": {"type": "string", "const": origin},
                                   "bindingVersion": KAFKA_BINDING_VERSION}},
        }
    counter = f"{settings.audit_origin}/{channel.receiver.lower()}"
    return {
        "name": f"{channel.key}Note",
        "title": f"{channel.sender} cosignature of a {channel.receiver} checkpoint",
        "summary": f"the {channel.sender} witness's cosignature of a {channel.receiver} audit checkpoint",
        "description": "C2SP tlog-cosignature (cosignature/v1, key type 0x04: key hash, timestamp, Ed25519 "
        f"signature) over a checkpoint of origin `{counter}`, as the checkpoint note with the cosignature line "
        "added (header `xbg-witness-status: 200`); or tlog-witness's 409 answer, header "
        "`xbg-witness-status: 409` and body `<size>\\n`: the witness has cosigned that size, resubmit the "
        "checkpoint with a consistency proof from it. A checkpoint the witness refuses as split-view evidence "
        "gets no answer (an alarm on the witness's side). See docs/audit.md. Record key: the cosigned "
        "checkpoint's origin.",
        "contentType": "text/plain; charset=utf-8",
        "externalDocs": {"description": "Audit log, checkpoints and witnesses", "url": DOCS_BASE + "docs/audit.md"},
        "payload": {"type": "string", "description": "the cosigned note (or `<size>\\n` with status 409), UTF-8"},
        "headers": {"type": "object", "properties": {"xbg-witness-status": {"type": "string", "enum": ["200", "409"]}}},
        "bindings": {"kafka": {"key": {"type": "string", "const": counter}, "bindingVersion": KAFKA_BINDING_VERSION}},
    }


def _channel(channel: Channel, settings: Settings) -> dict[str, Any]:
    lane = " (priority lane, served first)" if channel.priority else ""
    return {
        "address": channel.address,
        "title": f"{channel.kind} {channel.sender} -> {channel.receiver}{lane}",
        "description": f"Produced on the {channel.sender} site, mirrored by the link to the {channel.receiver} "
        f"site and consumed there (read_committed: only committed transactions are visible).",
        "servers": [{"$ref": f"#/servers/{_server_key(s)}"} for s in sorted(LINK_SERVERS)],
        "messages": {"message": _message(channel, settings)},
        "bindings": {"kafka": {
            "topic": channel.address,
            "partitions": settings.topic_partitions,
            "topicConfiguration": {"cleanup.policy": ["delete"]},
            "bindingVersion": KAFKA_BINDING_VERSION,
        }},
    }


def _operations(chans: list[Channel]) -> dict[str, Any]:
    ops: dict[str, Any] = {}
    for c in chans:
        ref = {"$ref": f"#/channels/{c.key}"}
        msg = [{"$ref": f"#/channels/{c.key}/messages/message"}]
        ops[f"{c.sender.lower()}Send{c.key[0].upper()}{c.key[1:]}"] = {
            "action": "send", "channel": ref, "messages": msg,
            "title": f"{c.sender} sends on {c.address}",
        }
        ops[f"{c.receiver.lower()}Receive{c.key[0].upper()}{c.key[1:]}"] = {
            "action": "receive", "channel": ref, "messages": msg,
            "title": f"{c.receiver} receives {c.address}",
        }
    return dict(sorted(ops.items()))


def build_asyncapi(settings: Settings) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document as plain data (deterministic order)."""
    chans = channels(settings)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:xborder-gateway:vn-cn-exchange",
        "info": {
            "title": "xborder-gateway cross-border exchange (Viet Nam customs <-> Nanning Customs)",
            "version": __version__,
            "description": "The topics that cross the link between the VN and CN sites' Kafka clusters: sealed "
            "envelopes (declarations, manifests, receipts, business responses) both ways, and the audit logs' "
            "checkpoints and witness cosignatures. Generated by `xborder contract asyncapi` from the settings "
            "and schemas/avro/; do not edit by hand. See docs/contract.md.",
            "externalDocs": {"description": "The counterpart's contract", "url": DOCS_BASE + "docs/contract.md"},
        },
        "defaultContentType": "application/octet-stream",
        "servers": _servers(),
        "channels": {c.key: _channel(c, settings) for c in chans},
        "operations": _operations(chans),
        "components": {
            "securitySchemes": {"mtls": {
                "type": "X509",
                "description": "Mutual TLS: each site's link client presents an X.509 client certificate issued "
                "for the link; the broker maps it to a principal whose ACLs allow only the topics above.",
            }},
            "schemas": _avro_components(),
        },
    }


class _Dumper(yaml.SafeDumper):
    """Block style; long strings are not folded at odd places (stable output)."""


def render_asyncapi(settings: Settings) -> str:
    """The document as YAML text (what ``docs/asyncapi.yaml`` holds)."""
    head = "# Generated by `xborder contract asyncapi`; do not edit (docs/contract.md).\n"
    body = yaml.dump(build_asyncapi(settings), Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=120)
    return head + body
