"""``xborder status DECLARATION_NUMBER``: what became of a declaration, from the site's status feed."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from xborder_gateway._cli import add_command
from xborder_gateway.config import Settings

EXAMPLES = """\
examples:
  xborder status 102345678901                 the history of one declaration, one line per state change
  xborder status 102345678901 --json          the same as a JSON array (times in UTC, ...Z)
  XBG_KAFKA_BOOTSTRAP=broker:9092 xborder status 300000000017 --topic vn.declarations.status
exit codes: 0 found, 1 not found (or the feed does not exist yet), 2 usage error
"""

if TYPE_CHECKING:
    from xborder_gateway.exchange import StatusChange

_MAX_KEY = 64


def _number(value: str) -> str:
    text = value.strip()
    if not text or len(text) > _MAX_KEY or not text.isprintable():
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a declaration number (1-{_MAX_KEY} printable characters, e.g. 102345678901)")
    return text


def _line(change: StatusChange) -> str:
    at = datetime.fromtimestamp(change.at_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    parts = [at, f"{change.kind.value:<16}"]
    if change.business_status:
        parts.append(change.business_status)
    if change.message_id:
        parts.append(f"message {change.message_id}")
    if change.attempt and change.attempt > 1:
        parts.append(f"attempt {change.attempt}")
    if change.intake:
        parts.append(f"from {change.intake[0]}[{change.intake[1]}]@{change.intake[2]}")
    if change.vehicle:
        v = change.vehicle
        extra = f"plate {v.plate}"
        if v.containers:
            extra += " containers " + ",".join(v.containers)
        if v.linked_declarations:
            extra += " linked " + ",".join(v.linked_declarations)
        if v.perishable:
            extra += " perishable"
        parts.append(extra)
    line = "  ".join(parts)
    for code, text in change.reasons:
        line += f"\n    {code}: {text}"
    return line


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.errors import MappingError
    from xborder_gateway.exchange import read_status
    from xborder_gateway.transport import read_key

    topic = args.topic or settings.topic_status
    records = asyncio.run(read_key(settings.bootstrap, topic, args.declaration.encode("utf-8"),
                                   timeout_s=args.timeout))
    if records is None:
        print(f"status: the feed {topic} does not exist on {settings.bootstrap} (no connector has run there)",
              file=sys.stderr)
        return 1
    changes = []
    for record in records:
        try:
            changes.append(read_status(record.value))
        except MappingError as exc:  # a foreign record on the feed: say so, keep the rest
            print(f"status: skipped an unreadable record at {record.topic}[{record.partition}]@{record.offset}: "
                  f"{exc}", file=sys.stderr)
    if args.json:
        print(json.dumps([c.to_json() for c in changes], ensure_ascii=False))
    else:
        for change in changes:
            print(_line(change))
    if not changes:
        print(f"status: no record for {args.declaration} on {topic}", file=sys.stderr)
        return 1
    return 0


def _timeout(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < seconds <= 3600:
        raise argparse.ArgumentTypeError(f"{value} must be within (0, 3600] seconds")
    return seconds


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(sub, "status", help="what became of a declaration (the site's status feed)",
                    description="Print the history of one declaration or vehicle declaration from the site's "
                    "status feed (topic vn.declarations.status by default): taken in, rejected with reasons, "
                    "sent (message id), resent, delivered, the receiving side's business outcome, "
                    "dead-lettered. Reads only the one partition the declaration number hashes to.",
                    epilog=EXAMPLES)
    p.add_argument("declaration", type=_number, metavar="DECLARATION_NUMBER",
                   help="declaration number (IDA/EDA) or vehicle declaration number (TIR/TOR)")
    p.add_argument("--json", action="store_true", help="print a JSON array instead of lines")
    p.add_argument("--topic", metavar="TOPIC", help="the status topic (default: setting topic_status)")
    p.add_argument("--timeout", type=_timeout, default=15.0, metavar="S",
                   help="give up reading after S seconds (default 15)")
    p.set_defaults(func=_status)

