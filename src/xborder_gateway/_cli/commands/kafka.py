"""``xborder kafka start|stop|status|logs|fetch``: the local single-node broker."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from xborder_gateway._cli import add_command
from xborder_gateway.config import Settings

if TYPE_CHECKING:
    from xborder_gateway.kafka_local import LocalKafka

EXAMPLES = """\
examples:
  xborder kafka start                   fetch the jars (first time), format storage, start, wait until ready
  xborder kafka status                  last line is the bootstrap address; exit 0 running, 1 not
  xborder kafka logs -n 100             the broker's last 100 log lines (-f to follow)
  xborder kafka stop                    clean shutdown (SIGTERM, then wait)
  XBG_KAFKA_PORT=29092 XBG_KAFKA_CONTROLLER_PORT=29093 xborder --home /tmp/xb kafka start
"""


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _local(settings: Settings, args: argparse.Namespace) -> LocalKafka:
    from xborder_gateway.config import load_settings
    from xborder_gateway.kafka_local import LocalKafka

    overrides = {}
    if getattr(args, "port", None):
        overrides["kafka_port"] = args.port
    if getattr(args, "controller_port", None):
        overrides["kafka_controller_port"] = args.controller_port
    if overrides:
        settings = load_settings(home=settings.home, config_file=getattr(args, "config", None), **overrides)
    return LocalKafka(settings)


def _start(args: argparse.Namespace, settings: Settings) -> int:
    broker = _local(settings, args)
    status = broker.start(progress=_progress, timeout=args.timeout)
    print(status.bootstrap)
    return 0


def _stop(args: argparse.Namespace, settings: Settings) -> int:
    broker = _local(settings, args)
    if not broker.stop(progress=_progress, timeout=args.timeout):
        print("kafka: not running", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    broker = _local(settings, args)
    status = broker.status()
    print(status.describe())
    if not status.running:
        return 1
    print(f"log: {status.log_file}")
    print(status.bootstrap)
    return 0


def _logs(args: argparse.Namespace, settings: Settings) -> int:
    broker = _local(settings, args)
    print(broker.tail(args.lines))
    if args.follow:
        path: Path = broker.log_file
        with path.open("rb") as fh:
            fh.seek(0, 2)
            try:
                while True:
                    chunk = fh.read()
                    if chunk:
                        sys.stdout.write(chunk.decode("utf-8", "replace"))
                        sys.stdout.flush()
                    else:
                        time.sleep(0.3)
            except KeyboardInterrupt:
                return 0
    return 0


def _fetch(args: argparse.Namespace, settings: Settings) -> int:
    broker = _local(settings, args)
    path = broker.fetch(progress=_progress)
    jars = list(path.glob("*.jar"))
    size = sum(j.stat().st_size for j in jars)
    print(f"{len(jars)} jars, {size / 1e6:.1f} MB in {path}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        sub, "kafka",
        help="run a local single-node Apache Kafka (KRaft) for the embedded default",
        description="Run a local single-node Apache Kafka broker (KRaft, combined broker+controller) from "
        "Maven Central jars with this machine's Java 17+. Jars are cached in $XBG_KAFKA_CACHE "
        "(default ~/.cache/xborder); data, logs and the pid file live under <home>/kafka.",
        epilog=EXAMPLES,
    )
    verbs = parser.add_subparsers(dest="kafka_command", metavar="ACTION", required=True)

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        p = add_command(verbs, name, help=help_text, epilog=EXAMPLES)
        p.add_argument("--port", type=int, help="client port (env XBG_KAFKA_PORT, default 9092)")
        p.add_argument("--controller-port", type=int,
                       help="KRaft controller port (env XBG_KAFKA_CONTROLLER_PORT, default 9093)")
        return p

    p = verb("start", "start the broker and wait until it is ready (no-op when running)")
    p.add_argument("--timeout", type=float, default=None, help="seconds to wait for readiness (default 90)")
    p.set_defaults(func=_start)
    p = verb("stop", "stop the broker cleanly (SIGTERM, then wait)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait before SIGKILL (default 60)")
    p.set_defaults(func=_stop)
    verb("status", "print status; the last line is the bootstrap address; exit 0 running, 1 not").set_defaults(
        func=_status)
    p = verb("logs", "print the broker's log")
    p.add_argument("-n", "--lines", type=int, default=50, help="how many lines (default 50)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C stops)")
    p.set_defaults(func=_logs)
    verb("fetch", "only fetch the broker's jars into the cache (CI does this before tests)").set_defaults(
        func=_fetch)
