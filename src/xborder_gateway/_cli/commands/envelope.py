"""``xborder seal FILE --to CN`` and ``xborder open ENVELOPE``: one envelope by hand (docs/envelope.md)."""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import sqlite3
import sys
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from xborder_gateway._cli import add_command
from xborder_gateway.config import Settings
from xborder_gateway.errors import ConfigError

AUTHORITIES = ("VN", "CN")

SEAL_EXAMPLES = """\
examples:
  xborder seal samples/ida.xml --to CN                  VNACCS XML: validate, translate to Avro, sign, encrypt
  xborder seal declaration.avro --to CN --out decl.xbge  an Avro single-object file (starts with C3 01)
  XBG_KEY_PASSPHRASE=… xborder seal ida.xml --to CN --priority 1 --ttl-hours 6
The envelope goes to --out (default FILE.xbge); its message id and SHA-256 are printed.
"""

OPEN_EXAMPLES = """\
examples:
  xborder open decl.xbge                            as CN: decrypt, verify, check; print header + payload JSON
  xborder open receipt.xbge --authority VN
  xborder open decl.xbge --replay-db /tmp/seen.sqlite   also check (and record) the message id (ENV-10)
On refusal the exit code is 1 and the first line of stderr names the rule, e.g. ENV-7 SIGNATURE_INVALID.
"""

_DOC_TYPE_BY_SCHEMA = {"Receipt": "RECEIPT", "BusinessResponse": "BUSINESS_RESPONSE"}


def _other(authority: str) -> str:
    return "CN" if authority == "VN" else "VN"


def _home_authority(settings: Settings, fallback: str) -> str:
    """The one authority whose keys this home holds; ``fallback`` when it holds none or both."""
    present = [a for a in AUTHORITIES if any((settings.keys_dir(a) / "own").glob("*/authority.crt.pem"))]
    return present[0] if len(present) == 1 else fallback


def _keys(settings: Settings, authority: str, passphrase_file: Path | None) -> tuple[Any, Any]:
    from xborder_gateway.envelope import LocalAuthority, TrustStore, resolve_passphrase

    me = LocalAuthority.load(settings, authority, resolve_passphrase(settings, passphrase_file))
    return me, TrustStore.load(settings, authority)


class _UsageError(ConfigError):
    exit_code = 2


def _read(path: Path, max_bytes: int) -> bytes:
    """At most ``max_bytes + 1`` bytes: enough for the size cap (ENV-1 / XML-1) to refuse an oversize file
    without reading all of it into memory."""
    try:
        with path.open("rb") as f:
            return f.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}", code="FILE_UNREADABLE",
                          hint="check the path") from exc


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise _UsageError(f"cannot write {path}: {exc.strerror or exc}", code="FILE_UNWRITABLE",
                          hint="name a writable path for --out") from exc


def _payload(raw: bytes, source: str, doc_type: str | None, settings: Settings) -> tuple[bytes, bytes, str, bool]:
    """(payload, schema fingerprint, document type, perishable) from VNACCS XML or an Avro frame."""
    if raw[:2] == b"\xc3\x01":
        from xborder_gateway import avro

        decoded = avro.decode(raw)
        kind = doc_type or _DOC_TYPE_BY_SCHEMA.get(decoded.schema_name) or decoded.record.get("document_type")
        if not isinstance(kind, str) or not kind:
            raise ConfigError(f"cannot tell the document type of a {decoded.schema_name} record",
                              code="SEAL_DOCUMENT_TYPE", hint="pass --document-type")
        return raw, decoded.fingerprint, kind, False
    try:  # imported by name: the documents part is developed separately and loaded only for XML input
        documents = importlib.import_module("xborder_gateway.documents")
    except ImportError as exc:
        raise ConfigError("XML input needs xborder_gateway.documents, which is not available",
                          code="SEAL_NO_TRANSLATOR", hint="seal an Avro single-object file instead") from exc
    doc = documents.translate_xml(raw, source=source, limits=documents.IntakeLimits.from_settings(settings))
    return doc.payload, doc.schema_fingerprint, doc_type or doc.doc_type, bool(getattr(doc, "perishable", False))


def _seal(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.envelope import DEFAULT_LIMITS, BatchSealer

    # the larger of the two input caps: XML is refused by the intake (XML-1), Avro by seal (ENV-1)
    raw = _read(args.file, max(settings.documents_max_bytes, DEFAULT_LIMITS.max_envelope_bytes))
    payload, fingerprint, doc_type, perishable = _payload(raw, str(args.file), args.document_type, settings)
    if args.authority is None:
        args.authority = _home_authority(settings, _other(args.to) if args.to else "VN")
    if args.to is None:
        args.to = _other(args.authority)
    me, trust = _keys(settings, args.authority, args.passphrase_file)
    priority = args.priority if args.priority is not None else (1 if perishable else 0)
    # the suite of this side's configuration (envelope_suite: 1, or 2 = a batch of one; docs/envelope.md §8)
    sealer = BatchSealer(sender=me, recipient=args.to, trust=trust, suite=settings.envelope_suite)
    sealer.add(payload, document_type=doc_type, schema_fingerprint=fingerprint, priority=priority,
               ttl=timedelta(hours=args.ttl_hours))
    (sealed,) = sealer.seal()
    out: Path = args.out or args.file.with_name(args.file.name + ".xbge")
    _write(out, sealed.data)
    print(json.dumps({"message_id": str(sealed.message_id), "sha256": sealed.sha256.hex(), "bytes": len(sealed.data),
                      "out": str(out), "document_type": doc_type, "recipient": args.to,
                      "suite": sealed.header.suite}))
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")} if len(value) != 32 else value.hex()
    if isinstance(value, datetime | date):
        text = value.isoformat()  # UTC as "…Z", as `xborder map` and the header print times
        return text[:-6] + "Z" if isinstance(value, datetime) and value.utcoffset() == timedelta(0) else text
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _replay_store(factory: Any, path: Path) -> Any:
    try:
        return factory(path)
    except (OSError, sqlite3.Error) as exc:
        raise _UsageError(f"cannot use {path} as a replay store: {exc}", code="REPLAY_DB_UNUSABLE",
                          hint="name a new file or one written by `xborder open --replay-db`") from exc


def _open(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway import avro
    from xborder_gateway.envelope import DEFAULT_LIMITS, SqliteReplayStore, open_envelope

    data = _read(args.envelope, DEFAULT_LIMITS.max_envelope_bytes)  # ENV-1 refuses the extra byte
    if args.authority is None:
        args.authority = _home_authority(settings, "CN")
    me, trust = _keys(settings, args.authority, args.passphrase_file)
    replay = _replay_store(SqliteReplayStore, args.replay_db) if args.replay_db else None
    try:
        opened = open_envelope(data, me=me, trust=trust, replay=replay)
        if replay is not None:
            replay.remember(opened.header, opened.sha256)
    finally:
        if replay is not None:
            replay.close()
    result: dict[str, Any] = {"header": opened.header.to_json(), "sha256": opened.sha256.hex(),
                              "sender_certificate": opened.sender_certificate.fingerprint.hex()}
    try:
        decoded = avro.decode(opened.payload)
    except Exception as exc:  # noqa: BLE001 - the envelope verified; an unknown schema is reported, not fatal
        result["payload"] = {"error": str(exc), "base64": base64.b64encode(opened.payload).decode("ascii")}
    else:
        result["payload"] = {"schema": decoded.schema_name, "version": decoded.version,
                             "record": _jsonable(decoded.record)}
    json.dump(result, sys.stdout, ensure_ascii=False, indent=2)
    print()
    if replay is None:
        print("note: ENV-10 (replay) was not checked; pass --replay-db SQLITE to check and record message ids",
              file=sys.stderr)
    return 0


def _hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if not 0.0 < value <= 168.0:  # ENV-8: 0 < ttl <= 7 days (also refuses nan and inf)
        raise argparse.ArgumentTypeError("must be within (0, 168] hours (ENV-8: at most 7 days)")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(sub, "seal", help="sign and encrypt one document for the counterpart",
                    description="Seal FILE (VNACCS XML, translated to Avro, or an Avro single-object file) into "
                    "an envelope: Ed25519 signature, HPKE encryption to the recipient (docs/envelope.md).",
                    epilog=SEAL_EXAMPLES)
    p.add_argument("file", type=Path, metavar="FILE", help="VNACCS-style XML or framed Avro (starts with C3 01)")
    p.add_argument("--to", choices=AUTHORITIES, default=None,
                   help="recipient authority (default: the other one than --authority, i.e. CN for VN)")
    p.add_argument("--authority", choices=AUTHORITIES, default=None,
                   help="the sealing authority (default: the one whose keys this home holds; else VN)")
    p.add_argument("--out", type=Path, default=None, metavar="PATH", help="where to write the envelope")
    p.add_argument("--document-type", default=None, help="override the header's document type (e.g. IDA)")
    p.add_argument("--priority", type=int, default=None, choices=range(10), metavar="0-9",
                   help="priority lane (default 1 for perishable goods, else 0)")
    p.add_argument("--ttl-hours", type=_hours, default=48.0, help="envelope lifetime (default 48, at most 168)")
    p.add_argument("--passphrase-file", type=Path, default=None, metavar="FILE",
                   help="file whose first line is the key passphrase (default: $XBG_KEY_PASSPHRASE)")
    p.set_defaults(func=_seal)

    p = add_command(sub, "open", help="decrypt, verify and check one envelope; print it as JSON",
                    description="Open ENVELOPE following rules ENV-1..ENV-10 of docs/envelope.md and print the "
                    "header and the decoded payload as JSON.", epilog=OPEN_EXAMPLES)
    p.add_argument("envelope", type=Path, metavar="ENVELOPE", help="envelope file (e.g. written by xborder seal)")
    p.add_argument("--authority", choices=AUTHORITIES, default=None,
                   help="the receiving authority (default: the one whose keys this home holds; else CN)")
    p.add_argument("--replay-db", type=Path, default=None, metavar="SQLITE",
                   help="check ENV-10 against (and record into) this replay store")
    p.add_argument("--passphrase-file", type=Path, default=None, metavar="FILE",
                   help="file whose first line is the key passphrase (default: $XBG_KEY_PASSPHRASE)")
    p.set_defaults(func=_open)


__all__ = ["register"]
