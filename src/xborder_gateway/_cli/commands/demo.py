"""``xborder demo``: the whole exchange on this machine, end to end, in both directions.

VN -> CN as before (VN's outbound and receipts, CN's endpoint ``nanning``) and CN -> VN (CN's outbound and
receipts, VN's endpoint with its mirror checks): ``--cn-count`` trucks (default a fifth of ``--count``) are
generated on both sides -- VN's import declarations (IDA, part of the ``--count`` VN documents) and China's
export declarations and road manifests of the same trucks, ``--mismatch-ratio`` of them with one seeded
difference -- so the mirror findings can be reconciled with what was seeded.
"""

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
from collections.abc import Callable, Iterator
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
  xborder demo                          two sites (VN, CN): two brokers, the MirrorMaker 2 link, 500 documents
  xborder demo --sites 1                one home, one local broker (no link, no witness)
  xborder demo --sites 1 --count 2000 --json   last line: one JSON object with the counts and latencies
  xborder demo --sites 1 --chaos        the endpoint drops 10% and duplicates 10%: watch resends recover
  xborder demo --keep-broker            leave the broker(s) the demo started running
  xborder demo --cn-count 0             VN -> CN only (no CN exports, no mirror checks)
  xborder demo --cn-count 200 --mismatch-ratio 0.2 --json
two sites: homes <home>/sites/vn and <home>/sites/cn; ports VN 9092/9093 + link 9094 (MirrorMaker REST
9095), CN 9192/9193 + link 9194 (REST 9195); demo_port_base (XBG_DEMO_PORT_BASE=B) moves them to VN B..B+3,
CN B+5..B+8. The first run fetches the broker's and MirrorMaker's jars from Maven Central.
exit codes: 0 every document settled and the counts reconcile (two sites: and the link is healthy and each
log carries the counterpart's valid cosignature), 1 otherwise (or a process failed), 2 usage
"""

CONNECTORS = ("nanning", "receipts", "outbound")
#: the CN -> VN direction's connectors: (log name, `xborder run` arguments)
CN_VN_CONNECTORS = (("inbound-vn", ("inbound", "--authority", "VN")),
                    ("receipts-cn", ("receipts", "--authority", "CN")),
                    ("outbound-cn", ("outbound", "--authority", "CN")))
#: NO_IMPORT_DECLARATION after this many seconds in the demo (production: mirror_import_timeout_s, 6 h)
DEMO_MIRROR_TIMEOUT_S = "8"


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
def _connectors(settings: Settings, args: argparse.Namespace, passphrase_file: Path, bootstrap: str,  # noqa: PLR0917
                log_dir: Path, roles: list[tuple[str, tuple[str, ...]]] | None = None,
                env_overrides: dict[str, str] | None = None) -> Iterator[list[_Child]]:
    """The connectors as child processes of ``settings.home``; ``roles`` and ``env_overrides`` (a site's own
    settings) come from the two-site demo (_cli/_demo_sites.py), else the one home's six/three roles."""
    env = dict(os.environ, XBG_KAFKA_BOOTSTRAP=bootstrap, XBG_HOME=str(settings.home))
    env.update(env_overrides or {})
    args.linked_grace_s = demo_env(env)  # issue 15: the demo's short grace period (_cli/_demo_pending.py)
    if args.chaos:
        env.setdefault("XBG_EXCHANGE_RECEIPT_TIMEOUT_S", "3")
        env.setdefault("XBG_EXCHANGE_BACKOFF_INITIAL_S", "0.5")
    env.setdefault("XBG_MIRROR_IMPORT_TIMEOUT_S", DEMO_MIRROR_TIMEOUT_S)
    children: list[_Child] = []
    private_dir(log_dir)
    if roles is None:
        roles = [(n, (n,)) for n in CONNECTORS]
        if getattr(args, "cn_count", 0):  # the CN -> VN roles; callers such as the benches run VN -> CN only
            roles += list(CN_VN_CONNECTORS)
    try:
        for name, verb in roles:
            cmd = [sys.executable, "-m", "xborder_gateway._cli", "-v", "--home", str(settings.home)]
            if getattr(args, "config", None):
                cmd += ["--config", str(args.config)]
            port = _free_port()
            cmd += ["run", *verb, "--passphrase-file", str(passphrase_file), "--metrics-port", str(port)]
            if name == "nanning" and getattr(args, "chaos", False):
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
    lines = ["", "xborder demo -- both directions over Kafka",
             f"  run id                      {s['run']}"]
    for name, d in s.get("directions", {"VN-CN": s}).items():
        title = ("VN -> CN  (VN outbound, receipts; CN Nanning endpoint)" if name == "VN-CN" else
                 "CN -> VN  (CN outbound, receipts; VN endpoint, mirror checks)")
        lines += ["", f"  {title}", *_direction_lines(d)]
    m = s.get("mirror_findings")
    if m is not None:
        found = ", ".join(f"{k}: {v}" for k, v in m["found"].items()) or "-"
        expected = ", ".join(f"{k}: {v}" for k, v in m["expected"].items()) or "-"
        lines += ["", "  mirror checks (CN exports vs VN import declarations)",
                  f"    exports checked           {m['checked']}  (clean {m['clean']}, waiting {m['waiting']})",
                  f"    findings                  {found}",
                  f"    seeded (expected)         {expected}",
                  f"    reconciles                {m['reconciles']}  (findings = seeded mismatches)"]
    if "link" in s:  # --sites 2 (_cli/_demo_sites.py)
        from xborder_gateway._cli._demo_sites import sites_lines

        lines += sites_lines(s)
    lines += ["", f"  keys                        {s['keys']}", f"  logs                        {s['logs']}"]
    return "\n".join(lines)


def _direction_lines(s: dict[str, Any]) -> list[str]:
    rej = ", ".join(f"{k}: {v}" for k, v in sorted(s["rejected_by_reason"].items())) or "-"
    biz = s["business"]
    return [
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
    ]


def _direction_result(summary: Any, published: int) -> dict[str, Any]:
    """One direction's figures (the keys ``--json`` has always had at its top level)."""
    # With no delivery (e.g. every document rejected) there is no last receipt: the run ended when it settled.
    end_ms = summary.last_settled_ms if summary.last_settled_ms is not None else int(time.time() * 1000)
    elapsed_ms = max(1, end_ms - (summary.first_published_ms or end_ms))
    result: dict[str, Any] = {
        "published": published, "rejected": summary.rejected,
        "rejected_by_reason": summary.rejected_by_reason, "delivered": summary.delivered,
        "business": summary.business, "business_by_reason": summary.business_by_reason,
        "dead_lettered": summary.dead_lettered,
        "duplicates_eliminated": summary.duplicates_eliminated or 0, "duplicate_receipts":
        summary.duplicate_receipts, "resent": summary.resent,
        "processed_at_endpoint": summary.processed_at_endpoint,
        "throughput_per_s": round(published / (elapsed_ms / 1000), 1), "p50_ms": summary.p50_ms,
        "p99_ms": summary.p99_ms,
    }
    result["reconciles"] = published == summary.rejected + summary.delivered + summary.dead_lettered
    return result


def _summaries(settings: Settings, run: str, cn_settings: Settings | None = None
               ) -> tuple[Any, Any, dict[str, Any] | None]:
    """(VN -> CN summary, CN -> VN summary, mirror summary) from both sites' state, None where not yet there.
    ``cn_settings``: CN's site home when the sites are two (the demo reads both, as an observer)."""
    import sqlite3

    from xborder_gateway.exchange import summarize_run
    from xborder_gateway.exchange._mirror_store import mirror_summary

    vn_db, cn_db = settings.state_db("VN"), (cn_settings or settings).state_db("CN")
    if not (vn_db.exists() and cn_db.exists()):
        return None, None, None
    out: list[Any] = [None, None, None]
    with contextlib.closing(sqlite3.connect(vn_db, timeout=10)) as vn, \
            contextlib.closing(sqlite3.connect(cn_db, timeout=10)) as cn:
        for i in range(3):
            try:  # VN -> CN: VN's tracker and CN's endpoint; CN -> VN: the other way round; the mirror at VN
                out[i] = (summarize_run(vn, run, cn) if i == 0 else summarize_run(cn, run, vn) if i == 1
                          else mirror_summary(vn, run))
            except sqlite3.OperationalError:  # tables not created yet
                out[i] = None
    return out[0], out[1], out[2]


@dataclass
class DemoView:
    """Where the exchange of one demo run happens: the VN and CN settings (one home, or each site's own home
    with its own broker), their passphrase files, and the hooks of the two-site demo (_cli/_demo_sites.py)."""

    vn: Settings  # kafka_bootstrap set to the broker VN's processes use
    cn: Settings  # the same object with one home
    passphrase_vn: Path
    passphrase_cn: Path
    keys_note: str
    logs: str
    ready_timeout: float = 90.0
    #: after every connector is ready, before publishing (the two sites: wait for the link, start the probe)
    before_publish: Callable[[], None] | None = None
    #: after everything settled, connectors still running: (more ``--json`` keys, ok)
    after_settled: Callable[[], tuple[dict[str, Any], bool]] | None = None
    #: run the gate hour while the connectors still run (two sites: its audit entries in VN's log must reach a
    #: checkpoint CN's witness cosigns before the witnesses stop), else after they stopped (one home, as before)
    gate_before_stop: bool = False


def _gate_hour(view: DemoView, run: str, summary: Any, seed: int) -> dict[str, Any]:
    """Issue 14: a simulated hour at the gate over this run's vehicle declarations (gate/_demo.py), on VN's site."""
    from xborder_gateway.gate._demo import demo_gate_hour

    return demo_gate_hour(view.vn.model_copy(update={"key_passphrase_file": view.passphrase_vn}),
                          run=run, since_ms=summary.first_published_ms or 0, seed=seed, say=_say)


def _check_counts(args: argparse.Namespace) -> None:
    if args.cn_count is None:
        args.cn_count = args.count // 5
    if args.cn_count > args.count:
        raise DemoError(f"--cn-count {args.cn_count} is more than --count {args.count}",
                        hint="the CN trucks' IDAs are part of the VN documents: keep --cn-count <= --count")


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    if getattr(args, "sites", 1) == 2:  # issue 11 item 4: two sites, two brokers, the link (_cli/_demo_sites.py)
        from xborder_gateway._cli._demo_sites import run_two_sites

        return run_two_sites(args, settings)
    _check_counts(args)
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
        run_settings = settings.model_copy(update={"kafka_bootstrap": bootstrap})
        view = DemoView(run_settings, run_settings, passphrase_file, passphrase_file, keys_note, str(log_dir))
        return run_exchange(args, view, run, lambda: _connectors(settings, args, passphrase_file, bootstrap,
                                                                  log_dir))
    finally:
        if started_broker and broker is not None and not args.keep_broker:
            _say("demo: stopping the local broker it started (--keep-broker leaves it running)")
            broker.stop()


def run_exchange(args: argparse.Namespace, view: DemoView, run: str,  # noqa: PLR0912, PLR0915
                 connectors: Callable[[], contextlib.AbstractContextManager[list[_Child]]]) -> int:
    """Publish, wait until every document settled, summarise and print: the part of the demo that is the same
    with one home and with two sites (``view``)."""
    import asyncio
    from collections import Counter

    from xborder_gateway.connectors import publish_documents
    from xborder_gateway.samples import generate_cn_exports

    extra: dict[str, Any] = {}
    extra_ok = True
    with connectors() as children:
        _say(f"demo: started {', '.join(f'{c.name} (metrics :{c.metrics_port})' for c in children)}; "
             f"logs in {view.logs}")
        _wait_ready(children, view.ready_timeout)
        _say("demo: every connector joined its consumer group")
        if view.before_publish is not None:
            view.before_publish()
        t0 = time.monotonic()
        seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
        # the CN -> VN trucks: VN's IDAs (part of the VN documents) and China's exports of the same trucks
        trucks = list(generate_cn_exports(args.cn_count, seed ^ 0x5EED, mismatch_ratio=args.mismatch_ratio))
        idas = [(c.ida.business_key, c.ida.xml) for c in trucks if c.vn_has_import]
        # issue 15: the VN documents come with amendments that release holds
        docs = [*demo_documents(args.count - len(idas), seed, 0.05), *idas]
        published = asyncio.run(publish_documents(view.vn, docs, run=run))
        cn_docs = [d for c in trucks for d in ((str(c.export["declaration_number"]), c.export_frame()),
                                               (str(c.manifest["manifest_number"]), c.manifest_frame()))]
        published_cn = asyncio.run(publish_documents(view.cn.for_role("CN", "CN"), cn_docs, run=run)
                                   ) if cn_docs else 0
        _say(f"demo: published {published} VN and {published_cn} CN documents in {time.monotonic() - t0:.1f}s;"
             " waiting for receipts")
        deadline = time.monotonic() + args.timeout
        summary = summary_cn = mirror = None
        last_line = ""
        while time.monotonic() < deadline:
            for c in children:
                if c.proc.poll() is not None:
                    raise DemoError(f"the {c.name} connector exited with code {c.proc.returncode}:\n"
                                    f"{_tail(c.log)}", hint=f"see {c.log}")
            summary, summary_cn, mirror = _summaries(view.vn, run, view.cn)
            if summary is not None:
                line = (f"demo: settled {summary.settled}/{published} (delivered {summary.delivered}, "
                        f"rejected {summary.rejected}, dead {summary.dead_lettered}, "
                        f"resent {summary.resent})")
                if published_cn:
                    line += (f"; CN -> VN {summary_cn.settled if summary_cn else 0}/{published_cn}, mirror "
                             f"{mirror['checked'] if mirror else 0}/{len(trucks)} checked")
                if line != last_line:
                    _say(line)
                    last_line = line
                cn_done = not published_cn or (
                    summary_cn is not None and summary_cn.settled >= published_cn and mirror is not None
                    and mirror["checked"] >= len(trucks))
                if summary.settled >= published and cn_done:
                    break
            time.sleep(0.5)
        # issue 15: vehicles still PENDING are decided by their declarations or by the short grace
        pending = wait_for_pending(view.vn.state_db("VN"), view.cn.state_db("CN"), run, deadline, _say)
        if summary is not None:
            summary, summary_cn, mirror = _summaries(view.vn, run, view.cn)
        gate: dict[str, Any] | None = None
        if view.gate_before_stop and summary is not None and summary.settled >= published:
            gate = _gate_hour(view, run, summary, seed)
        if view.after_settled is not None and summary is not None and summary.settled >= published:
            extra, extra_ok = view.after_settled()
    if summary is None or summary.settled < published:
        raise DemoError(f"not every document settled within {args.timeout:.0f}s "
                        f"({summary.settled if summary else 0}/{published})",
                        hint=f"raise --timeout or read the connector logs in {view.logs}")
    vn_cn = _direction_result(summary, published)
    result: dict[str, Any] = {"run": run, **vn_cn, "keys": view.keys_note, "logs": view.logs,
                              "directions": {"VN-CN": vn_cn}}
    ok = vn_cn["reconciles"]
    if published_cn:
        if summary_cn is None or summary_cn.settled < published_cn:
            raise DemoError(f"not every CN document settled within {args.timeout:.0f}s "
                            f"({summary_cn.settled if summary_cn else 0}/{published_cn})",
                            hint=f"raise --timeout or read the connector logs in {view.logs}")
        cn_vn = result["directions"]["CN-VN"] = _direction_result(summary_cn, published_cn)
        expected = Counter(code for c in trucks for code in c.expected_findings)
        found = dict((mirror or {}).get("by_code", {}))
        result["mirror_findings"] = {
            "checked": (mirror or {}).get("checked", 0), "clean": (mirror or {}).get("clean", 0),
            "waiting": (mirror or {}).get("waiting", 0), "found": found,
            "expected": dict(sorted(expected.items())), "seeded": sum(1 for c in trucks if c.seeded),
            "reconciles": found == dict(expected) and (mirror or {}).get("checked", 0) == len(trucks)}
        ok = ok and cn_vn["reconciles"] and result["mirror_findings"]["reconciles"]
    result["pending"], result["linked_grace_s"] = pending, args.linked_grace_s  # issue 15
    result.update(extra)  # --sites 2: sites, link, witness
    ok = ok and extra_ok
    from xborder_gateway.gate._demo import gate_hour_text

    result["gate"] = gate if gate is not None else _gate_hour(view, run, summary, seed)
    print(_summary_text(result))
    print(gate_hour_text(result["gate"]))
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0 if ok else 1


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return number


def _share(value: str) -> float:
    try:
        share = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0.0 <= share <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not a share in [0, 1]")
    return share


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(sub, "demo",
                    help="run the full exchange on this machine, VN -> CN and CN -> VN, on two linked sites",
                    description="Start the local broker if needed, create both authorities' keys and trust if "
                    "missing, run the outbound connector, the Nanning endpoint and the receipt tracker as "
                    "separate processes, publish N generated documents (IDA/EDA/TIR, ~5% invalid, some "
                    "perishable), wait until every one is settled and print a summary. The CN -> VN direction "
                    "runs beside it: CN's outbound and receipts and VN's endpoint with its mirror checks, on "
                    "CN export declarations and road manifests generated for the same trucks as VN's IDAs. By default "
                    "(--sites 2) each authority is its own site -- own home, broker, keys, state and audit log -- "
                    "and MirrorMaker 2 carries only the allow-listed topics between the two brokers; each site's "
                    "witness cosigns the other's checkpoints over that link.",
                    epilog=EXAMPLES)
    p.add_argument("--count", type=positive(int), default=500, help="documents to publish (default 500)")
    p.add_argument("--seed", type=int, default=None, help="generator seed (default: a random one)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    p.add_argument("--chaos", action="store_true",
                   help="the endpoint drops 10%% and duplicates 10%% of envelopes (resend and de-duplication)")
    p.add_argument("--timeout", type=positive(float), default=300.0,
                   help="seconds to wait for every receipt (default 300)")
    p.add_argument("--keep-broker", action="store_true", help="leave a broker the demo started running")
    p.add_argument("--cn-count", type=_count, default=None, metavar="N",
                   help="trucks of the CN -> VN direction (default: a fifth of --count; 0 = VN -> CN only)")
    p.add_argument("--mismatch-ratio", type=_share, default=0.1, metavar="P",
                   help="share of CN trucks with one seeded mirror mismatch (default 0.1)")
    p.add_argument("--sites", type=int, choices=(1, 2), default=2, metavar="N",
                   help="2 (default): a site per authority, each with its own home, broker, keys, audit log and "
                   "MirrorMaker, linked over mutual TLS, and each site's witness; 1: one home and one broker")
    p.set_defaults(func=run_demo)
