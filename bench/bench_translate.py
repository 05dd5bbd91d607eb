"""CPU per declaration of translate_xml and of each of its stages (issue 13 item 4), beside baselines measured
in the same run:

    python bench/bench_translate.py [--count 600] [--seed 1] [--rounds 4] [--repeat 5]
                                    [--baseline-src DIR] [--json]

CPU time (``time.process_time``), not wall time: the machine is shared. Each stage is one pass over the
whole document set, repeated ``--repeat`` times; the best pass counts. Documents: ``generate_mix(count,
seed, invalid_ratio=0)`` (the exchange's stream, valid documents), and the same mix with 5 % invalid ones
for "total (5 % invalid)".

Baselines in the same run:
  encode (fastavro)  fastavro's generic ``schemaless_writer`` on the same records (what ``avro.encode`` did
                     before the generated writer, and its fallback now)
  total (fastavro)   translate_xml with the generated writers switched off (so: fastavro)
  --baseline-src DIR every stage again with another copy of the code, e.g. the commit before the change:
                     ``git archive 518437b src schemas mappings | tar -x -C /tmp/base`` then
                     ``--baseline-src /tmp/base/src``. Each round runs the two copies one after the other
                     (separate processes, the first one alternating), so a burst of load on the machine
                     hits both; the best of the rounds counts.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

STAGES = ["parse", "validate", "map", "outputs", "encode", "encode (fastavro)", "sha256", "total",
          "total (fastavro)", "total (5 % invalid)"]


def _best(fn: Callable[[], Any], repeat: int, count: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best / count * 1e6


def measure(count: int, seed: int, repeat: int) -> dict[str, Any]:
    """One pass of every stage with the xborder_gateway this interpreter imports."""
    # imported here, not at the top: PYTHONPATH decides which copy of the code a child process measures
    import xborder_gateway
    from xborder_gateway import avro
    from xborder_gateway.avro import _codec
    from xborder_gateway.documents import DocumentRejectedError, translate_xml
    from xborder_gateway.documents._registry import document_types
    from xborder_gateway.intake import parse_xml
    from xborder_gateway.samples import generate_mix

    docs = [s.xml for s in generate_mix(count, seed, invalid_ratio=0.0)]
    mixed = [s.xml for s in generate_mix(count, seed, invalid_ratio=0.05)]
    types = document_types()
    roots = [parse_xml(d) for d in docs]
    for r in roots:
        types[r.tag].validator.validate(r)
    maps = [types[r.tag].mapping for r in roots]
    records = [m.apply(r) for m, r in zip(maps, roots, strict=True)]
    infos = [avro.schema_info(m.schema_name, m.schema_version) for m in maps]

    def translate_all(items: list[bytes]) -> None:
        for d in items:
            with contextlib.suppress(DocumentRejectedError):
                translate_xml(d)

    def validate_all() -> None:
        for r in roots:
            types[r.tag].validator.validate(r)

    n = len(docs)
    out: dict[str, Any] = {
        "src": os.path.dirname(xborder_gateway.__file__),
        "parse": _best(lambda: [parse_xml(d) for d in docs], repeat, n),
        "validate": _best(validate_all, repeat, n),
        "map": _best(lambda: [m.apply(r) for m, r in zip(maps, roots, strict=True)], repeat, n),
        "outputs": _best(lambda: [m.output_values(rec, r) for m, rec, r in zip(maps, records, roots, strict=True)],
                         repeat, n),
        "encode": _best(lambda: [avro.encode(i.name, rec, i.version) for i, rec in zip(infos, records, strict=True)],
                        repeat, n),
        "sha256": _best(lambda: [hashlib.sha256(d).digest() for d in docs], repeat, n),
        "total": _best(lambda: translate_all(docs), repeat, n),
        "total (5 % invalid)": _best(lambda: translate_all(mixed), repeat, len(mixed)),
    }
    reference = getattr(_codec, "encode_with_fastavro", None)
    writers = getattr(_codec, "_WRITERS", None)
    if reference is not None and writers is not None:
        out["encode (fastavro)"] = _best(lambda: [reference(i, rec) for i, rec in zip(infos, records, strict=True)],
                                         repeat, n)
        saved = dict(writers)
        writers.update(dict.fromkeys(saved, None))  # no generated writer: avro.encode = fastavro
        try:
            out["total (fastavro)"] = _best(lambda: translate_all(docs), repeat, n)
        finally:
            writers.update(saved)
    return out


def _child(src: str | None, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
    else:
        env.pop("PYTHONPATH", None)
    cmd = [sys.executable, __file__, "--child", "--count", str(args.count), "--seed", str(args.seed),
           "--repeat", str(args.repeat)]
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _merge(best: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    if not best:
        return new
    return {k: min(v, new[k]) if isinstance(v, float) and k in new else v for k, v in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=600, help="documents per set (default 600)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4, help="rounds of every copy (default 4)")
    parser.add_argument("--repeat", type=int, default=5, help="passes per stage and round (default 5)")
    parser.add_argument("--baseline-src", help="another copy's src/ directory, measured in the same run")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.count, args.seed, args.repeat)))
        return
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    copies: dict[str, str | None] = {"this": os.path.abspath(here)}
    if args.baseline_src:
        copies["baseline"] = os.path.abspath(args.baseline_src)
    best: dict[str, dict[str, Any]] = {name: {} for name in copies}
    for round_ in range(args.rounds):
        order = list(copies.items())
        if round_ % 2:  # alternate which copy runs first: no order bias
            order.reverse()
        for name, src in order:
            best[name] = _merge(best[name], _child(src, args))
    meta = {"python": platform.python_version(), "cpus": os.cpu_count(),
            "loadavg": [round(x, 2) for x in os.getloadavg()], "count": args.count, "seed": args.seed,
            "rounds": args.rounds, "repeat": args.repeat}
    if args.json:
        print(json.dumps({"meta": meta, "results": best}))
        return
    print(f"translate_xml, CPU µs per declaration (best of {args.rounds} rounds x {args.repeat} passes); {meta}")
    print(f"{'stage':22}" + "".join(f"{name:>12}" for name in copies) + ("   this/baseline" if len(copies) > 1 else ""))
    for stage in STAGES:
        cells = [best[name].get(stage) for name in copies]
        row = "".join(f"{c:>12.1f}" if isinstance(c, float) else f"{'-':>12}" for c in cells)
        if len(cells) > 1 and all(isinstance(c, float) for c in cells):
            row += f"   {cells[0] / cells[1]:>8.2f}"  # type: ignore[operator]
        print(f"{stage:22}{row}")
    for name, src in copies.items():
        print(f"  {name}: {src}")


if __name__ == "__main__":
    main()
