"""Where each connector process spends its CPU, by stage: a reading of the per-process cProfiles.

    XBG_PROFILE_DIR=/tmp/prof XBG_PROFILE_CLOCK=cpu python bench/bench_exchange.py --no-hsm --json
    python bench/profile_stages.py /tmp/prof                  # every profile in the directory
    python bench/profile_stages.py /tmp/prof --last 3         # the last three (the bench's v2 run)
    python bench/profile_stages.py /tmp/prof --last 3 --cpu-us outbound=1023,nanning=807,receipts=570

A profile holds, per function, its own time and, per caller, the time it spent when called from there. Each
function's own time is charged to a **stage** (translate, audit, envelope, state, status feed, Kafka client,
...) by walking up its callers to the nearest *anchor* -- a function that opens a stage (``translate_xml``,
``AuditLog.append``, the envelope package, the state stores, ...) -- split between callers in proportion to
the time each one's calls took (gprof's rule: an approximation where one function is called from several
stages with calls of different cost). What reaches no anchor is charged by the module it runs in (aiokafka
-> Kafka client, sqlite3 -> state) or to ``other``. Start-up (imports, loading the keys: scrypt) is a stage of
its own and left out of the shares.

cProfile costs most where Python calls most (the mapping engine, Avro), so shares of pure-Python stages read
high against C-heavy ones (SQLite, AEAD, lxml); ``--cpu-us NAME=US,...`` scales each process's shares to its
unprofiled CPU per declaration (``bench_exchange.py`` prints it) -- a projection, say so when you quote it.
Only the main thread is profiled: the audit log's background checkpoint thread and ``asyncio.to_thread``
workers are not in these figures.
"""

from __future__ import annotations

import argparse
import pstats
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

Func = tuple[str, int, str]

OTHER = "other"
CONNECTOR = "connector logic"
ASYNCIO = "asyncio loop"
AVRO = "Avro (outside translate)"
TRANSLATE_OTHER = "translate: other"
TRANSLATE_AVRO = "translate: Avro encode"

#: anchors: (stage, file pattern, function-name pattern); the first that matches a function names its stage
ANCHORS: list[tuple[str, str, str]] = [
    ("start-up", r"connectors/_common\.py$", r"^load_keys$"),
    ("start-up", r"envelope/_keys\.py$", r"^load$"),
    ("start-up", r"<frozen importlib", r".*"),
    ("translate: mapping", r"mapping/_engine\.py$", r"^apply$"),
    ("translate: XSD", r"intake/_xsd\.py$", r"^validate$"),
    ("translate: parse", r"intake/_parse\.py$", r"^parse_xml$"),
    (TRANSLATE_OTHER, r"documents/_translate\.py$", r"^translate_xml$"),
    (TRANSLATE_OTHER, r"intake/_cn_avro\.py$|intake/__init__\.py$", r"^take_cn_avro$"),
    ("audit", r"audit/", r".*"),
    ("audit", r"connectors/_common\.py$", r"^(event|append|safe_ident|safe_reason)$"),
    ("status feed", r"exchange/_status\.py$", r".*"),
    ("envelope (format, AEAD, signatures, replay)", r"envelope/", r".*"),
    ("answers (receipts sealed per batch)", r"exchange/_answers\.py$", r".*"),
    ("business rules", r"exchange/_rules_cn\.py$|exchange/_business\.py$", r".*"),
    ("state (SQLite)", r"exchange/_(state|pending|stores|mirror_store|tracking)\.py$", r".*"),
    ("logging", r"/logging/", r".*"),
    ("logging", r"connectors/_common\.py$", r"^log_line$"),
    (CONNECTOR, r"connectors/", r".*"),
]

#: where a function reaches no anchor: its module's stage
MODULES: list[tuple[str, str]] = [
    ("Kafka client", r"site-packages/aiokafka/|site-packages/async_timeout/|transport/"),
    ("state (SQLite)", r"sqlite3"),
    (AVRO, r"avro/|<avro writer|site-packages/fastavro/"),
    (ASYNCIO, r"/asyncio/|selectors\.py$"),
]

_ANCHORS = [(stage, re.compile(f), re.compile(n)) for stage, f, n in ANCHORS]
_MODULES = [(stage, re.compile(m)) for stage, m in MODULES]
#: stages a module's own stage takes over: the connector's or the event loop's calls into aiokafka are the
#: Kafka client's
_GENERIC = {OTHER, CONNECTOR, ASYNCIO}


def anchor_of(func: Func) -> str | None:
    """The stage a function opens, if it is an anchor."""
    filename, _line, name = func
    for stage, f, n in _ANCHORS:
        if f.search(filename) and n.search(name):
            return stage
    return None


def module_of(func: Func) -> str | None:
    """The stage of the module a function runs in (for time that reaches no anchor)."""
    filename, _line, name = func
    text = f"{filename}:{name}"
    for stage, m in _MODULES:
        if m.search(text):
            return stage
    return None


def attribute(stats: dict[Func, Any], explain: dict[str, dict[Func, float]] | None = None) -> dict[str, float]:
    """Seconds of own time per stage (gprof's rule: a function's time split between its callers); with
    ``explain``, also the seconds each function gave to each stage."""
    memo: dict[Func, dict[str, float]] = {}
    active: set[Func] = set()

    def stages(func: Func) -> dict[str, float]:
        if func in memo:
            return memo[func]
        anchored = anchor_of(func)
        if anchored is not None:
            memo[func] = {anchored: 1.0}
            return memo[func]
        if func in active:  # a cycle: this path adds nothing new
            return {}
        active.add(func)
        callers = stats.get(func, (0, 0, 0.0, 0.0, {}))[4]
        # a caller that is on the walk already (recursion: the mapping engine's nodes call each other) adds
        # nothing new: the split is over the other callers
        weights = {c: float(edge[3]) for c, edge in callers.items() if c != func and c not in active}
        resolved = {c: stages(c) for c in weights}
        weights = {c: w for c, w in weights.items() if resolved[c]}
        total = sum(weights.values())
        mix: dict[str, float] = defaultdict(float)
        for caller, w in weights.items():
            for stage, share in resolved[caller].items():
                # callers with no measurable time: an equal split
                mix[stage] += share * (w / total if total > 0 else 1.0 / len(weights))
        active.discard(func)
        own = module_of(func)
        found = sum(mix.values())
        if found < 1.0 - 1e-9:  # what reached no anchor: by this function's module, else "other"
            mix[own or OTHER] += 1.0 - found
        # time charged to a generic stage above this function belongs to this function's module if it has
        # one (the connector's calls into aiokafka, sqlite3, Avro); Avro under translate is translate's
        if own is not None:
            for stage in list(mix):
                if stage in _GENERIC:
                    target = own
                elif (stage, own) == (TRANSLATE_OTHER, AVRO):
                    target = TRANSLATE_AVRO
                else:
                    continue
                if target != stage:  # (``mix[s] += mix.pop(s)`` would count the share twice)
                    mix[target] += mix.pop(stage)
        memo[func] = dict(mix)
        return memo[func]

    seconds: dict[str, float] = defaultdict(float)
    for func, (_cc, _nc, tt, _ct, _callers) in stats.items():
        if tt:
            for stage, share in stages(func).items():
                seconds[stage] += tt * share
                if explain is not None:
                    explain.setdefault(stage, {})[func] = tt * share
    return dict(seconds)


def process_name(path: Path) -> str:
    """``run-outbound-1234.prof`` -> ``outbound``."""
    parts = path.stem.split("-")
    return "-".join(parts[1:-1]) if len(parts) >= 3 else path.stem


def process_id(path: Path) -> int:
    """``run-outbound-1234.prof`` -> 1234 (0 for a name without one): the order the bench started them in."""
    tail = path.stem.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def report(paths: list[Path], cpu_us: dict[str, float], explain: str = "", top: int = 12) -> str:
    lines: list[str] = []
    for path in paths:
        stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
        detail: dict[str, dict[Func, float]] = {}
        seconds = attribute(stats, detail)
        startup = seconds.pop("start-up", 0.0)
        busy = sum(seconds.values())
        name = process_name(path)
        scale = cpu_us.get(name)
        lines.append(f"{path.name}: {busy:.2f} s of CPU after start-up ({startup:.2f} s start-up left out)"
                     + (f"; scaled to {scale:,.0f} µs per declaration" if scale else ""))
        for stage, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
            share = s / busy if busy else 0.0
            tail = f"{share * scale:8.0f} µs" if scale else ""
            lines.append(f"  {stage:40s} {100 * share:5.1f} %  {tail}")
            if explain and stage.startswith(explain):
                for (filename, line, fname), t in sorted(detail[stage].items(), key=lambda kv: -kv[1])[:top]:
                    where = filename.split("site-packages/")[-1].split("src/")[-1]
                    lines.append(f"      {t:7.3f} s  {fname} ({where}:{line})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path, help="XBG_PROFILE_DIR of a bench run (run-<process>-<pid>.prof)")
    parser.add_argument("--last", type=int, default=0,
                        help="only the last N profiles by process id (the bench's last variant: 3)")
    parser.add_argument("--cpu-us", default="",
                        help="NAME=US,...: scale each process's shares to its unprofiled CPU µs per declaration")
    parser.add_argument("--explain", default="", metavar="STAGE",
                        help="list the functions whose time makes up the stages starting with STAGE")
    args = parser.parse_args(argv)
    paths = sorted(args.directory.glob("*.prof"), key=process_id)
    if not paths:
        print(f"no *.prof in {args.directory}: run a bench with XBG_PROFILE_DIR={args.directory}", file=sys.stderr)
        return 2
    if args.last:
        paths = paths[-args.last:]
    cpu_us: dict[str, float] = {}
    for item in filter(None, args.cpu_us.split(",")):
        key, _, value = item.partition("=")
        try:
            cpu_us[key.strip()] = float(value)
        except ValueError:
            print(f"--cpu-us: {item!r} is not NAME=US (e.g. outbound=1023)", file=sys.stderr)
            return 2
    print(report(paths, cpu_us, args.explain))
    return 0


if __name__ == "__main__":
    sys.exit(main())
