"""``xborder demo``: the whole VN -> CN -> receipt exchange on this machine, end to end."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from xborder_gateway._cli import add_command
from xborder_gateway._cli._demo_pending import demo_documents, demo_env, pending_lines, wait_for_pending
from xborder_gateway._cli.commands.publish import positive
from xborder_gateway._private import private_dir
from xborder_gateway.config import Settings
from xborder_gateway.errors import GatewayError

EXAMPLES = """\
examples:
  xborder demo                          500 generated documents through the full exchange (local broker)
  xborder demo --count 2000 --json      last line: one JSON object with the counts and latencies
  xborder demo --chaos                  the endpoint drops 10% and duplicates 10%: watch resends recover
  xborder demo --keep-broker            leave the local broker running afterwards
exit codes: 0 every document settled and the counts reconcile, 1 they did not (or a process failed)
"""

CONNECTORS = ("nanning", "receipts", "outbound")


class DemoError(GatewayError):
    default_code = "DEMO_FAILED"
    fault = "demo run"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _passphrase_file(home: Path) -> Path:
    path = home / "demo-passphrase"
    if not path.exists():
        private_dir(home)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24) + "\n")
    return path


def _ensure_keys(settings: Settings, passphrase_file: Path) -> list[str]:
    from xborder_gateway.envelope import export_bundle, import_bundle, init_authority, resolve_passphrase

    passphrase = resolve_passphrase(settings, passphrase_file)
    created = []
    for authority in ("VN", "CN"):
        own = settings.keys_dir(authority) / "own"
        if not (own.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in own.iterdir())):
            init_authority(settings, authority, passphrase)
            created.append(authority)
    import_bundle(settings, "VN", export_bundle(settings, "CN"))
    import_bundle(settings, "CN", export_bundle(settings, "VN"))
    return created


@dataclass
class _Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    fh: IO[bytes]
    metrics_port: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _health(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            data = json.loads(resp.read())
    except (OSError, ValueError):  # HTTPError (503 while not ready) is an OSError
        return None
    return data if isinstance(data, dict) else None


def _wait_ready(children: list[_Child], timeout: float) -> None:
    """Wait until every connector's /healthz says it joined its consumer group."""
    deadline = time.monotonic() + timeout
    waiting = {c.name for c in children}
    while waiting and time.monotonic() < deadline:
        for c in children:
            if c.proc.poll() is not None:
                raise DemoError(f"the {c.name} connector exited with code {c.proc.returncode}:\n{_tail(c.log)}",
                                hint=f"see {c.log}")
            if c.name in waiting:
                status = _health(c.metrics_port)
                if status and status.get("ready"):
                    waiting.discard(c.name)
        time.sleep(0.2)
    if waiting:
        raise DemoError(f"connectors not ready after {timeout:.0f}s: {', '.join(sorted(waiting))}",
                        hint="read their logs under <home>/demo-logs/")


@contextlib.contextmanager
def _connectors(settings: Settings, args: argparse.Namespace, passphrase_file: Path, bootstrap: str,
                log_dir: Path) -> Iterator[list[_Child]]:
    env = dict(os.environ, XBG_KAFKA_BOOTSTRAP=bootstrap, XBG_HOME=str(settings.home))
    args.linked_grace_s = demo_env(env)  # issue 15: the demo's short grace period (_cli/_demo_pending.py)
    if args.chaos:
        env.setdefault("XBG_EXCHANGE_RECEIPT_TIMEOUT_S", "3")
        env.setdefault("XBG_EXCHANGE_BACKOFF_INITIAL_S", "0.5")
    children: list[_Child] = []
    private_dir(log_dir)
    try:
        for name in CONNECTORS:
            cmd = [sys.executable, "-m", "xborder_gateway._cli", "-v", "--home", str(settings.home)]
            if args.config:
                cmd += ["--config", str(args.config)]
            port = _free_port()
            cmd += ["run", name, "--passphrase-file", str(passphrase_file), "--metrics-port", str(port)]
            if name == "nanning" and args.chaos:
                cmd += ["--drop-rate", "0.1", "--duplicate-rate", "0.1", "--seed", "7"]
            log = log_dir / f"{name}.log"
            fh = log.open("ab")
            children.append(_Child(name, subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env),
                                   log, fh, port))
        yield children
    finally:
        for c in children:
            if c.proc.poll() is None:
                c.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for c in children:
            try:
                c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                c.proc.kill()
                c.proc.wait()
            c.fh.close()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _summary_text(s: dict[str, Any]) -> str:
    rej = ", ".join(f"{k}: {v}" for k, v in sorted(s["rejected_by_reason"].items())) or "-"
    biz = s["business"]
    lines = [
        "",
        "xborder demo -- VN (outbound, receipts) <-> CN (Nanning endpoint) over Kafka",
        f"  run id                      {s['run']}",
        f"  published                   {s['published']}",
        f"  rejected at intake          {s['rejected']}  ({rej})",
        f"  delivered and acknowledged  {s['delivered']}",
        f"    business accepted         {biz.get('ACCEPTED', 0)}",
        f"    business held             {biz.get('HELD', 0)}",
        f"    business rejected         {biz.get('REJECTED', 0)}",
        *(f"      {reason:<38} {count}" for reason, count in s.get("business_by_reason", {}).items()),
        *(line for line in pending_lines(s) if line),
        f"  resent                      {s['resent']}",
        f"  duplicates eliminated       {s['duplicates_eliminated']}  (endpoint answered the original receipt)",
        f"  dead-lettered               {s['dead_lettered']}",
        f"  reconciles                  {s['reconciles']}  (published = rejected + delivered + dead-lettered)",
        f"  throughput                  {s['throughput_per_s']:.0f} documents/s (publish -> last receipt)",
        f"  latency publish -> receipt  p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms",
        f"  keys                        {s['keys']}",
        f"  logs                        {s['logs']}",
    ]
    return "\n".join(lines)


def run_demo(args: argparse.Namespace, settings: Settings) -> int:  # noqa: PLR0912, PLR0915 - one linear story
    import asyncio
    import sqlite3

    from xborder_gateway.connectors import publish_documents
    from xborder_gateway.exchange import summarize_run

    started_broker = False
    broker: Any = None
    if settings.kafka_bootstrap:
        bootstrap = settings.kafka_bootstrap
        _say(f"demo: using the broker at {bootstrap} (XBG_KAFKA_BOOTSTRAP)")
    else:
        from xborder_gateway.kafka_local import LocalKafka

        broker = LocalKafka(settings)
        status = broker.status()
        if not status.running:
            _say("demo: starting the local Kafka broker (first run fetches its jars from Maven Central)")
            status = broker.start(progress=_say)
            started_broker = True
        bootstrap = status.bootstrap
        _say(f"demo: broker {bootstrap}")
    try:
        passphrase_file = _passphrase_file(settings.home)
        created = _ensure_keys(settings, passphrase_file)
        keys_note = (f"created for {', '.join(created)}; " if created else "") + \
            f"passphrase in {passphrase_file} (0600, demo only)"
        _say(f"demo: keys {keys_note}")
        run = uuid.uuid4().hex[:12]
        log_dir = settings.home / "demo-logs" / run
        with _connectors(settings, args, passphrase_file, bootstrap, log_dir) as children:
            _say(f"demo: started {', '.join(f'{c.name} (metrics :{c.metrics_port})' for c in children)}; "
                 f"logs in {log_dir}")
            _wait_ready(children, 90)
            _say("demo: every connector joined its consumer group")
            t0 = time.monotonic()
            seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
            docs = demo_documents(args.count, seed, 0.05)  # issue 15: with amendments that release holds
            run_settings = settings.model_copy(update={"kafka_bootstrap": bootstrap})
            published = asyncio.run(publish_documents(run_settings, docs, run=run))
            _say(f"demo: published {published} documents in {time.monotonic() - t0:.1f}s; waiting for receipts")
            vn_db = settings.state_db("VN")
            cn_db = settings.state_db("CN")
            deadline = time.monotonic() + args.timeout
            summary = None
            last_line = ""
            while time.monotonic() < deadline:
                for c in children:
                    if c.proc.poll() is not None:
                        raise DemoError(f"the {c.name} connector exited with code {c.proc.returncode}:\n"
                                        f"{_tail(c.log)}", hint=f"see {c.log}")
                if vn_db.exists() and cn_db.exists():
                    with contextlib.closing(sqlite3.connect(vn_db, timeout=10)) as vn, \
                            contextlib.closing(sqlite3.connect(cn_db, timeout=10)) as cn:
                        try:
                            summary = summarize_run(vn, run, cn)
                        except sqlite3.OperationalError:  # tables not created yet
                            summary = None
                    if summary is not None:
                        line = (f"demo: settled {summary.settled}/{published} (delivered {summary.delivered}, "
                                f"rejected {summary.rejected}, dead {summary.dead_lettered}, "
                                f"resent {summary.resent})")
                        if line != last_line:
                            _say(line)
                            last_line = line
                        if summary.settled >= published:
                            break
                time.sleep(0.5)
            # issue 15: vehicles still PENDING are decided by their declarations or by the short grace
            pending = wait_for_pending(vn_db, cn_db, run, deadline, _say)
            with contextlib.closing(sqlite3.connect(vn_db, timeout=10)) as vn, \
                    contextlib.closing(sqlite3.connect(cn_db, timeout=10)) as cn:
                summary = summarize_run(vn, run, cn) if summary is not None else None
        if summary is None or summary.settled < published:
            raise DemoError(f"not every document settled within {args.timeout:.0f}s "
                            f"({summary.settled if summary else 0}/{published})",
                            hint=f"raise --timeout or read the connector logs in {log_dir}")
        # With no delivery (e.g. every document rejected) there is no last receipt: the run ended when it settled.
        end_ms = summary.last_settled_ms if summary.last_settled_ms is not None else int(time.time() * 1000)
        elapsed_ms = max(1, end_ms - (summary.first_published_ms or end_ms))
        result: dict[str, Any] = {
            "run": run, "published": published, "rejected": summary.rejected,
            "rejected_by_reason": summary.rejected_by_reason, "delivered": summary.delivered,
            "business": summary.business, "business_by_reason": summary.business_by_reason,
            "dead_lettered": summary.dead_lettered,
            "duplicates_eliminated": summary.duplicates_eliminated or 0, "duplicate_receipts":
            summary.duplicate_receipts, "resent": summary.resent,
            "processed_at_endpoint": summary.processed_at_endpoint,
            "throughput_per_s": round(published / (elapsed_ms / 1000), 1), "p50_ms": summary.p50_ms,
            "p99_ms": summary.p99_ms, "keys": keys_note, "logs": str(log_dir),
        }
        result["reconciles"] = published == summary.rejected + summary.delivered + summary.dead_lettered
        result["pending"], result["linked_grace_s"] = pending, args.linked_grace_s  # issue 15
        # --- issue 14: a simulated hour at the gate over this run's vehicle declarations (gate/_demo.py)
        from xborder_gateway.gate._demo import demo_gate_hour, gate_hour_text

        result["gate"] = demo_gate_hour(run_settings.model_copy(update={"key_passphrase_file": passphrase_file}),
                                        run=run, since_ms=summary.first_published_ms or 0, seed=seed, say=_say)
        print(_summary_text(result))
        print(gate_hour_text(result["gate"]))
        if args.json:
            print(json.dumps(result, sort_keys=True))
        return 0 if result["reconciles"] else 1
    finally:
        if started_broker and broker is not None and not args.keep_broker:
            _say("demo: stopping the local broker it started (--keep-broker leaves it running)")
            broker.stop()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(sub, "demo", help="run the full VN -> CN -> receipt exchange on this machine",
                    description="Start the local broker if needed, create both authorities' keys and trust if "
                    "missing, run the outbound connector, the Nanning endpoint and the receipt tracker as "
                    "separate processes, publish N generated documents (IDA/EDA/TIR, ~5% invalid, some "
                    "perishable), wait until every one is settled and print a summary.",
                    epilog=EXAMPLES)
    p.add_argument("--count", type=positive(int), default=500, help="documents to publish (default 500)")
    p.add_argument("--seed", type=int, default=None, help="generator seed (default: a random one)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    p.add_argument("--chaos", action="store_true",
                   help="the endpoint drops 10%% and duplicates 10%% of envelopes (resend and de-duplication)")
    p.add_argument("--timeout", type=positive(float), default=300.0,
                   help="seconds to wait for every receipt (default 300)")
    p.add_argument("--keep-broker", action="store_true", help="leave a broker the demo started running")
    p.set_defaults(func=run_demo)
