"""``xborder demo --sites 2`` (the default; issue 11 item 4, issue 12's witness over the link).

Two sites on this machine, as in production but with loopback addresses:

* a **home per authority** (``<home>/sites/vn``, ``<home>/sites/cn``): each holds only its own authority's
  private keys (envelope, audit checkpoint, witness, link CA), the counterpart's imported trust bundle and
  public audit keys, its own state, audit log and link PKI;
* **two brokers** (each with its mutual-TLS link listener and ACLs), started in parallel;
* **one MirrorMaker per site** (each pulls the counterpart's allow-listed topics into its own cluster),
  started in parallel, beside the connectors' start-up;
* each site's connectors as child processes of its own home and broker -- VN: ``outbound``, ``receipts``,
  ``inbound --authority VN`` (CN -> VN, mirror checks); CN: ``nanning``, ``receipts --authority CN``,
  ``outbound --authority CN`` -- and **``run witness`` on both sites**, so each log collects the other's
  cosignature over the link.

The exchange itself (publishing, waiting, the per-direction summary, the gate hour on VN's site) is
:func:`~xborder_gateway._cli.commands.demo.run_exchange`, the same code as ``--sites 1``. This module adds
the ``sites``, ``link`` and ``witness`` sections. The demo process reads both sites' state databases and
audit logs to report -- it is the observer of the run, not one of the sites' processes.

**Link latency** (``link.latency``) is measured by a probe in the demo's own process: one ``read_committed``
consumer at the source cluster and one at the target cluster per direction, on the direction's allow-listed
topics, from their ends when publishing starts. A record (matched by a digest of its topic, key and value,
which MirrorMaker copies unchanged) counts once it was seen at both: latency = when it became readable at the
target minus when it became readable at the source, both on the same clock. It therefore excludes the
source transaction's own time and includes MirrorMaker's poll, its exactly-once commit and the probe's
polling (resolution: one fetch round trip).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import math
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xborder_gateway.config import SITE_PORTS, Settings
from xborder_gateway.errors import ConfigError

__all__ = ["SITE_ROLES", "LatencyProbe", "SitePorts", "latency_stats", "run_two_sites", "site_config", "site_env",
           "site_overrides", "site_ports", "sites_lines", "topic_check"]

SITES = ("VN", "CN")
#: each site's connectors: (log name, ``xborder run`` arguments); the witness on both (issue 12)
SITE_ROLES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "VN": [("outbound", ("outbound", "--authority", "VN")), ("receipts", ("receipts", "--authority", "VN")),
           ("inbound-vn", ("inbound", "--authority", "VN")), ("witness-vn", ("witness", "--authority", "VN"))],
    "CN": [("nanning", ("nanning",)), ("receipts-cn", ("receipts", "--authority", "CN")),
           ("outbound-cn", ("outbound", "--authority", "CN")), ("witness-cn", ("witness", "--authority", "CN"))],
}
#: a checkpoint every 2 s of appends (default 10 s) in the demo, so the last one is cosigned soon after the run
DEMO_CHECKPOINT_SECONDS = "2"
#: how long to wait after the run for each log's latest checkpoint to come back cosigned
WITNESS_WAIT_S = 90.0
LATENCY_METHOD = ("per record: readable (read_committed) at the target cluster minus readable at the source "
                  "cluster, both seen by the demo's own consumers on one clock; records matched by a digest "
                  "of topic, key and value")


def _say(message: str) -> None:
    from xborder_gateway._cli.commands.demo import _say as say

    say(message)


# --- the layout (pure) ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SitePorts:
    kafka: int
    controller: int
    link: int
    rest: int


def site_ports(base: int | None) -> dict[str, SitePorts]:
    """The two sites' ports: the issue's defaults (VN 9092-9095, CN 9192-9195), or VN ``base..base+3`` and CN
    ``base+5..base+8`` (the link tests' layout, ``XBG_TEST_LINK_PORT_BASE``)."""
    if base is None:
        return {a: SitePorts(*SITE_PORTS[a]) for a in SITES}
    if not 1024 <= base <= 65535 - 8:
        raise ConfigError(f"demo_port_base {base} leaves no room for 9 ports", code="DEMO_PORTS",
                          hint="choose a base between 1024 and 65527")
    return {"VN": SitePorts(base, base + 1, base + 2, base + 3),
            "CN": SitePorts(base + 5, base + 6, base + 7, base + 8)}


def site_overrides(root: Path, name: str, ports: dict[str, SitePorts]) -> dict[str, Any]:
    """The settings that make a home the site ``name`` (everything else is inherited from the demo's own)."""
    other = "CN" if name == "VN" else "VN"
    p, o = ports[name], ports[other]
    return {"home": root / name.lower(), "site_authority": name, "kafka_port": p.kafka,
            "kafka_controller_port": p.controller, "kafka_link_port": p.link, "link_rest_port": p.rest,
            "link_remote_bootstrap": f"127.0.0.1:{o.link}",
            # each site's processes talk to their own broker, never to one XBG_KAFKA_BOOTSTRAP names
            "kafka_bootstrap": f"127.0.0.1:{p.kafka}"}


def site_env(overrides: dict[str, Any]) -> dict[str, str]:
    """The environment a site's child process gets on top of the demo's: its site settings, which win over
    any the demo itself was given (e.g. one XBG_KAFKA_PORT for both would put both sites on one port)."""
    env = {f"XBG_{k.upper()}": str(v) for k, v in overrides.items()}
    env.setdefault("XBG_AUDIT_CHECKPOINT_SECONDS", DEMO_CHECKPOINT_SECONDS)
    return env


SITE_CONFIG_MARK = "# written by `xborder demo --sites 2`"


def site_config(overrides: dict[str, Any]) -> str:
    """``<site home>/config.toml``: makes the home the site it is, so ``xborder --home <site home> link status``
    (or ``audit verify``, ``kafka stop``) after the demo sees the same site and ports."""
    keys = ("site_authority", "kafka_port", "kafka_controller_port", "kafka_link_port", "link_rest_port",
            "link_remote_bootstrap")
    body = [f"{k} = {overrides[k]!r}".replace("'", '"') for k in keys]
    return "\n".join([f"{SITE_CONFIG_MARK}; rewritten at each run (delete this line to keep your edits)",
                      *body, ""])


def _write_site_config(home: Path, overrides: dict[str, Any]) -> None:
    path = home / "config.toml"
    if path.exists() and not path.read_text(encoding="utf-8").startswith(SITE_CONFIG_MARK):
        return  # the operator's own file
    path.write_text(site_config(overrides), encoding="utf-8")


def own_topics(settings: Settings, name: str) -> set[str]:
    """The topics that never leave site ``name``: intake, rejected, status, dead letters, and at VN the gate's
    arrivals and decisions (the gate hour runs on VN's site)."""
    own = set(settings.site_topics(name).all())
    if name == "VN":
        own |= {settings.topic_gate_arrivals, settings.topic_gate_decisions}
    return own


def topic_check(name: str, topics: set[str], own: Settings, other: Settings) -> dict[str, Any]:
    """What is on site ``name``'s cluster against what may be there: its own topics, the allow-lists of both
    directions (what it sends and what it receives), Kafka's and its MirrorMaker's own topics."""
    counterpart = "CN" if name == "VN" else "VN"
    incoming = own.link_topics(counterpart, name)
    allow = set(incoming) | set(own.link_topics(name, counterpart))
    foreign = sorted(topics & own_topics(other, counterpart))
    internal = {t for t in topics if t.startswith(("__", "mm2-")) or t.endswith(".internal") or t == "heartbeats"}
    return {"topics": sorted(topics - internal), "allow_listed_present": sorted(topics & allow),
            "incoming_missing": sorted(set(incoming) - topics), "foreign_site_topics": foreign,
            "other": sorted(topics - internal - allow - own_topics(own, name))}


def latency_stats(source: dict[bytes, float], target: dict[bytes, float]) -> dict[str, Any]:
    """p50/p99 (nearest rank, ms) of ``target[k] - source[k]`` over the records seen at both."""
    lat = sorted(max(0.0, target[k] - source[k]) for k in target.keys() & source.keys())
    if not lat:
        return {"records": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}

    def rank(q: float) -> float:
        return round(lat[max(0, min(len(lat) - 1, math.ceil(q * len(lat)) - 1))], 1)

    return {"records": len(lat), "p50_ms": rank(0.50), "p99_ms": rank(0.99), "max_ms": round(lat[-1], 1)}


def sites_lines(s: dict[str, Any]) -> list[str]:
    """The summary's two-site sections (from the ``--json`` keys ``sites``, ``link``, ``witness``)."""
    lines = ["", "  sites"]
    for name, site in s["sites"].items():
        crossed = ", ".join(site["foreign_site_topics"]) or "none"
        lines.append(f"    {name:<3} {site['home']}  broker {site['bootstrap']}, link listener "
                     f"{site['link_listener']} (mTLS); the other site's own topics here: {crossed}")
    link = s["link"]
    lines += ["", f"  link (MirrorMaker 2, one per site)   healthy {link['healthy']}"]
    for flow, f in link["flows"].items():
        start = f.get("mirrormaker_start_s")
        started = f"started in {start:.1f}s" if isinstance(start, int | float) else "already running"
        lat = f["latency"]
        lat_text = (f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms over {lat['records']} records"
                    if lat["records"] else "no records matched")
        lines.append(f"    {flow:<9} MirrorMaker {'running' if f['running'] else 'NOT running'} ({started}); "
                     f"source {'reachable' if f['reachable'] else 'UNREACHABLE'}; latency {lat_text}")
        for t in f["lag"]:
            lag = "-" if t["records"] is None else f"{t['records']} records, {t['seconds']:.1f} s"
            lines.append(f"      lag {t['topic']:<34} {lag}")
        if f.get("error"):
            lines.append(f"      error: {f['error']}")
    lines += ["", "  witness (each log cosigned by the other site's witness, over the link)"]
    for name, w in s["witness"].items():
        if w["cosigned"]:
            state = f"cosigned by {w['witness']} at size {w['cosigned_size']} (verified)"
        else:
            state = f"NOT cosigned: {w['error']}"
        lines.append(f"    {name} log   size {w['log_size']}, latest checkpoint {w['checkpoint_size']}; {state}")
    return lines


# --- the latency probe ------------------------------------------------------------------------------
@dataclass
class _Flow:
    name: str
    source: str  # bootstrap of the source site's own listener
    target: str
    topics: list[str]
    seen: tuple[dict[bytes, float], dict[bytes, float]] = field(default_factory=lambda: ({}, {}))


class LatencyProbe:
    """Per direction, when each record becomes readable at its source and at its target (module docstring)."""

    def __init__(self, flows: list[tuple[str, str, str, list[str]]]) -> None:
        self.flows = [_Flow(*f) for f in flows]
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="xbg-demo-link-probe", daemon=True)

    def start(self, timeout: float = 60.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout) and self._error is None:
            _say("demo: the link latency probe is not ready; latencies may be missing")

    def stop(self) -> dict[str, dict[str, Any]]:
        self._stop.set()
        self._thread.join(30)
        out = {f.name: latency_stats(*f.seen) for f in self.flows}
        if self._error is not None:
            for v in out.values():
                v["error"] = f"{type(self._error).__name__}: {self._error}"
        return out

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:  # noqa: BLE001 - a probe failure is reported in the summary, not fatal
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient

        consumers: list[tuple[Any, dict[bytes, float]]] = []
        try:
            for flow in self.flows:
                for bootstrap, seen in ((flow.source, flow.seen[0]), (flow.target, flow.seen[1])):
                    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
                    await admin.start()
                    try:  # partitions first: assign() on a topic without metadata reads nothing for minutes
                        meta = [m for m in await admin.describe_topics(flow.topics) if m.get("error_code", 0) == 0]
                    finally:
                        await admin.close()
                    tps = [TopicPartition(m["topic"], p["partition"]) for m in meta for p in m["partitions"]]
                    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                                enable_auto_commit=False, group_id=None,
                                                client_id="xbg-demo-link-probe",
                                                # the instrument must not add aiokafka's one-fetch-in-flight
                                                # wait (up to 500 ms) to what it measures
                                                fetch_max_wait_ms=10)
                    await consumer.start()
                    consumers.append((consumer, seen))
                    consumer.assign(tps)
                    await consumer.seek_to_end(*tps)
                    for tp in tps:
                        await consumer.position(tp)
            self._ready.set()
            await asyncio.gather(*(self._poll(c, seen) for c, seen in consumers))
        finally:
            for c, _ in consumers:
                with contextlib.suppress(Exception):
                    await c.stop()

    async def _poll(self, consumer: Any, seen: dict[bytes, float]) -> None:
        while not self._stop.is_set():
            batch = await consumer.getmany(timeout_ms=100, max_records=5000)
            now = time.monotonic() * 1000
            for tp, records in batch.items():
                for r in records:
                    digest = hashlib.blake2b(tp.topic.encode() + b"\0" + (r.key or b"") + b"\0" + (r.value or b""),
                                             digest_size=16).digest()
                    seen.setdefault(digest, now)


# --- set-up ---------------------------------------------------------------------------------------
def _site_keys(site: Settings, name: str, passphrase_file: Path) -> list[str]:
    """The site's own private keys, created when missing: authority (envelope), audit checkpoint, witness,
    link CA and certificates. Returns what was created."""
    from xborder_gateway.audit._keys import load_or_create_signer, load_or_create_witness_signer
    from xborder_gateway.envelope import init_authority, resolve_passphrase
    from xborder_gateway.link import init_link_pki
    from xborder_gateway.link._pki import link_files

    passphrase = resolve_passphrase(site, passphrase_file)
    created = []
    own = site.keys_dir(name) / "own"
    if not (own.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in own.iterdir())):
        init_authority(site, name, passphrase)
        created.append(f"{name} authority")
    if not link_files(site, name).complete():
        init_link_pki(site, passphrase)
        created.append(f"{name} link CA")
    with_pf = site.model_copy(update={"key_passphrase_file": passphrase_file})
    load_or_create_signer(with_pf, name, passphrase)
    load_or_create_witness_signer(with_pf, name)
    return created


def _exchange_trust(vn: Settings, cn: Settings) -> None:
    """What the authorities exchange: each trust bundle (authority certificates + link CA) imported by the
    other, and the public audit keys (the log's checkpoint key, the witness's cosignature key)."""
    from xborder_gateway.audit._keys import counterpart_witness_path, key_paths, witness_key_paths
    from xborder_gateway.envelope import export_bundle, import_bundle

    import_bundle(cn, "CN", export_bundle(vn, "VN"))
    import_bundle(vn, "VN", export_bundle(cn, "CN"))
    for me, mine, other, theirs in ((vn, "VN", cn, "CN"), (cn, "CN", vn, "VN")):
        # my log's verifier key, so the other's witness can check my checkpoints
        dst = key_paths(other, mine)[1]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(key_paths(me, mine)[1], dst)
        # my witness's verifier key, so the other can check my cosignatures of its log
        shutil.copyfile(witness_key_paths(me, mine)[1], counterpart_witness_path(other, theirs))


def _witness_state(site: Settings, name: str) -> dict[str, Any]:
    """The log's size, its latest checkpoint and whether the counterpart's witness cosigned it, checked with
    the verifier ``audit verify --require-witness`` uses (the cosignature's Ed25519 signature over the
    stored checkpoint note, by the pinned witness key)."""
    from xborder_gateway.audit import AuditLog
    from xborder_gateway.audit._keys import load_counterpart_witness
    from xborder_gateway.errors import GatewayError

    state: dict[str, Any] = {"log_size": 0, "checkpoint_size": None, "cosigned": False, "cosigned_size": None,
                             "witness": None, "error": None}
    witness = load_counterpart_witness(site, name)
    if witness is None:
        state["error"] = "no counterpart witness key pinned"
        return state
    state["witness"] = witness.name
    try:
        with AuditLog.open(site, name, read_only=True) as log:
            state["log_size"] = log.size()
            latest = log.latest_checkpoint()
            state["checkpoint_size"] = latest.checkpoint.size if latest else None
            report = log.check_witnessed(witness)
    except GatewayError as exc:
        state["error"] = f"{exc.code}: {exc}"
        return state
    state["cosigned"], state["cosigned_size"] = True, report.cosigned_size
    return state


def _wait_witnessed(sites: dict[str, Settings], timeout: float) -> dict[str, dict[str, Any]]:
    """Until each log's latest checkpoint covers the whole log and carries the counterpart's cosignature."""
    deadline = time.monotonic() + timeout
    _say("demo: waiting for each log's latest checkpoint to come back cosigned by the other site's witness")
    while True:
        states = {n: _witness_state(s, n) for n, s in sites.items()}
        done = all(w["cosigned"] and w["checkpoint_size"] == w["log_size"] for w in states.values())
        if done or time.monotonic() > deadline:
            return states
        time.sleep(1.0)


def _lag(sites: dict[str, Settings], timeout: float = 30.0) -> dict[str, Any]:
    """Each site's link report, polled until nothing is pending (or ``timeout``): the run has settled, so what
    is still counted is MirrorMaker's offset commit catching up (docs/link.md)."""
    from xborder_gateway.link import measure_lag

    deadline = time.monotonic() + timeout
    while True:
        reports = {n: asyncio.run(measure_lag(s, limit_s=60)) for n, s in sites.items()}
        if all(r.reachable and all(f.records == 0 for f in r.flows) for r in reports.values()):
            return reports
        if time.monotonic() > deadline:
            return reports
        time.sleep(1.0)


async def _list_topics(bootstrap: str) -> set[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def run_two_sites(args: argparse.Namespace, settings: Settings) -> int:  # noqa: PLR0915
    from xborder_gateway._cli.commands.demo import DemoView, _check_counts, _connectors, _passphrase_file, run_exchange
    from xborder_gateway.kafka_local import LocalKafka
    from xborder_gateway.link import LinkMirror
    from xborder_gateway.transport import ensure_topics

    _check_counts(args)
    t_setup = time.monotonic()
    ports = site_ports(settings.demo_port_base)
    root = settings.home / "sites"
    overrides = {n: site_overrides(root, n, ports) for n in SITES}
    sites = {n: settings.model_copy(update=overrides[n]) for n in SITES}
    vn, cn = sites["VN"], sites["CN"]
    if settings.kafka_bootstrap:
        _say(f"demo: two sites start their own two brokers; the broker at {settings.kafka_bootstrap} "
             "(XBG_KAFKA_BOOTSTRAP) is not used (`--sites 1` runs on it)")
    pfs = {n: _passphrase_file(s.home) for n, s in sites.items()}
    for n, s in sites.items():
        _write_site_config(s.home, overrides[n])
    created = [c for n in SITES for c in _site_keys(sites[n], n, pfs[n])]
    _exchange_trust(vn, cn)
    keys_note = (f"created {', '.join(created)}; " if created else "") + \
        f"each site's passphrase in <site home>/demo-passphrase (0600, demo only): {pfs['VN']}, {pfs['CN']}"
    _say(f"demo: two sites under {root} (VN {vn.bootstrap_local}, link :{vn.kafka_link_port}; "
         f"CN {cn.bootstrap_local}, link :{cn.kafka_link_port}); keys: {keys_note}")
    brokers = {n: LocalKafka(s) for n, s in sites.items()}
    mirrors = {n: LinkMirror(s) for n, s in sites.items()}
    started_brokers: list[str] = []
    started_mirrors: list[str] = []
    mirror_start: dict[str, float | None] = {}
    pool = ThreadPoolExecutor(4, thread_name_prefix="xbg-demo-sites")
    probe: LatencyProbe | None = None
    latencies: dict[str, dict[str, Any]] = {}
    run = uuid.uuid4().hex[:12]
    log_dirs = {n: s.home / "demo-logs" / run for n, s in sites.items()}

    def start_broker(name: str) -> None:
        if brokers[name].status().running:
            _say(f"demo: {name}'s broker already runs at {sites[name].bootstrap_local}")
            return
        started_brokers.append(name)
        brokers[name].start(progress=lambda m: _say(f"demo: {name} {m}"))

    def start_mirror(name: str) -> None:
        if mirrors[name].status().running:
            mirror_start[name] = None
            return
        started_mirrors.append(name)
        status = mirrors[name].start(progress=lambda m: _say(f"demo: {name} {m}"))
        mirror_start[name] = status.started_in_s

    mirror_jobs: list[Future[None]] = []
    broker_jobs: list[Future[None]] = []

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM too: unwind, so that everything started is stopped

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        _say("demo: starting both sites' brokers (first run fetches the jars from Maven Central)")
        broker_jobs = [pool.submit(start_broker, n) for n in SITES]
        for f in broker_jobs:
            f.result()
        for name, s in sites.items():  # the allow-lists of both directions exist at both ends before the link
            other = "CN" if name == "VN" else "VN"
            asyncio.run(ensure_topics(s.bootstrap, s.link_topics(name, other) + s.link_topics(other, name),
                                      s.topic_partitions))
        _say("demo: starting one MirrorMaker per site (in the background, while the connectors start)")
        mirror_jobs = [pool.submit(start_mirror, n) for n in SITES]

        @contextlib.contextmanager
        def connectors() -> Iterator[list[Any]]:
            with contextlib.ExitStack() as stack:
                children: list[Any] = []
                for name in SITES:
                    s = sites[name]
                    env = site_env(overrides[name])
                    children += stack.enter_context(_connectors(s, args, pfs[name], s.bootstrap, log_dirs[name],
                                                                roles=SITE_ROLES[name], env_overrides=env))
                yield children

        def before_publish() -> None:
            nonlocal probe
            for job in mirror_jobs:
                job.result()
            took = ", ".join(f"{n}'s MirrorMaker " + (f"started in {t:.1f}s" if t else "already running")
                             for n, t in mirror_start.items())
            _say(f"demo: link up both ways ({took}); set-up took {time.monotonic() - t_setup:.1f}s")
            probe = LatencyProbe([(f"{a}->{b}", sites[a].bootstrap, sites[b].bootstrap, sites[a].link_topics(a, b))
                                  for a, b in (("VN", "CN"), ("CN", "VN"))])
            probe.start()

        def after_settled() -> tuple[dict[str, Any], bool]:
            nonlocal probe
            if probe is not None:
                latencies.update(probe.stop())
                probe = None
            witness = _wait_witnessed(sites, WITNESS_WAIT_S)
            reports = _lag(sites)
            topics = {n: asyncio.run(_list_topics(s.bootstrap)) for n, s in sites.items()}
            return _sections(sites, reports=reports, running={n: m.status().running for n, m in mirrors.items()},
                             mirror_start=mirror_start, latencies=latencies, witness=witness, topics=topics)

        view = DemoView(vn, cn, pfs["VN"], pfs["CN"], keys_note,
                        f"{log_dirs['VN']} and {log_dirs['CN']}", ready_timeout=240.0,
                        before_publish=before_publish, after_settled=after_settled, gate_before_stop=True)
        return run_exchange(args, view, run, connectors)
    finally:
        if probe is not None:
            probe.stop()
        for job in [*broker_jobs, *mirror_jobs]:  # one still starting is waited for, then stopped
            with contextlib.suppress(Exception):
                job.result()
        def stop_mirror(name: str) -> None:
            mirrors[name].stop(lambda m: _say(f"demo: {name} {m}"), 20)

        def stop_broker(name: str) -> None:
            brokers[name].stop()

        for stop in [pool.submit(stop_mirror, n) for n in started_mirrors]:
            with contextlib.suppress(Exception):
                stop.result()
        if started_brokers and not args.keep_broker:
            _say("demo: stopping the brokers it started (--keep-broker leaves them running)")
            for stop in [pool.submit(stop_broker, n) for n in started_brokers]:
                with contextlib.suppress(Exception):
                    stop.result()
        pool.shutdown(wait=False)
        signal.signal(signal.SIGTERM, previous)


def _sections(sites: dict[str, Settings], *, reports: dict[str, Any], running: dict[str, bool],
              mirror_start: dict[str, float | None], latencies: dict[str, dict[str, Any]],
              witness: dict[str, dict[str, Any]], topics: dict[str, set[str]]) -> tuple[dict[str, Any], bool]:
    """The ``sites``, ``link`` and ``witness`` keys of ``--json``, and whether they are all right."""
    sites_json: dict[str, Any] = {}
    flows: dict[str, Any] = {}
    for name, s in sites.items():
        other = "CN" if name == "VN" else "VN"
        sites_json[name] = {"home": str(s.home), "bootstrap": s.bootstrap_local,
                            "link_listener": f"127.0.0.1:{s.kafka_link_port}",
                            "mirrormaker_rest": f"127.0.0.1:{s.link_rest_port}",
                            **topic_check(name, topics[name], s, sites[other])}
        r = reports[name]  # this site's MirrorMaker: counterpart -> this site
        flow = f"{other}->{name}"
        flows[flow] = {"running": running[name], "reachable": r.reachable, "error": r.error,
                       "mirrormaker_start_s": (round(v, 1) if (v := mirror_start.get(name)) is not None else None),
                       "lag": [{"topic": f.topic, "records": f.records if f.at_source else None,
                                "seconds": round(f.seconds, 3), "capped": f.capped} for f in r.flows],
                       "latency": latencies.get(flow, latency_stats({}, {}))}
    healthy = all(f["running"] and f["reachable"] for f in flows.values())
    link = {"healthy": healthy, "flows": flows, "latency_method": LATENCY_METHOD}
    cosigned = all(w["cosigned"] for w in witness.values())
    isolated = all(not v["foreign_site_topics"] and not v["incoming_missing"] for v in sites_json.values())
    return {"sites": sites_json, "link": link, "witness": witness}, healthy and cosigned and isolated
