"""Documents throughput per core: parse+validate, map, encode, separately and together (translate_xml),
beside an lxml-parse-only baseline measured in the same run on the same documents.

    python bench/bench_documents.py [--seconds 2] [--count 2000] [--seed 1] [--json]

Single process, single thread (= one core). Document sets, all from the project's generator:
  mix  - the exchange's realistic stream (generate_mix: EDA fruit exports, IDA imports, TIR trucks)
  IDA  - import declarations only (median 6 goods lines, ~3 % at the 50-line cap)
  EDA  - export declarations (mostly 1-line fruit)
  TIR  - vehicle arrival declarations (drivers, containers, linked declarations)
Stages (each timed alone over the whole set, repeated until --seconds elapse, best of 3 runs):
  baseline   lxml.etree.fromstring with a default parser (what libxml2 alone costs)
  parse      the hardened intake: pre-screen + hardened parser + depth/element caps
  validate   libxml2 XSD validation of an already-parsed tree
  map        the declarative mapping of a validated tree to the record (dict)
  model      pydantic validation of the record into the canonical model (translate_xml builds it lazily,
             on the first access to TranslatedDocument.record, so it is not part of "total")
  encode     Avro single-object encoding of the record
  total      translate_xml (parse + validate + map + encode + outputs + SHA-256 of the input)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from lxml import etree

from xborder_gateway import avro
from xborder_gateway.documents import translate_xml
from xborder_gateway.documents._registry import document_types
from xborder_gateway.intake import parse_xml
from xborder_gateway.model import model_for
from xborder_gateway.samples import generate, generate_mix


def _rate(fn: Callable[[Any], Any], items: Sequence[Any], seconds: float) -> float:
    """Best-of-3 items/s, each run looping over the set until ``seconds / 3`` have elapsed."""
    best = 0.0
    for _ in range(3):
        done, start = 0, time.perf_counter()
        while True:
            for item in items:
                fn(item)
            done += len(items)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / 3:
                break
        best = max(best, done / elapsed)
    return best


def _sets(count: int, seed: int) -> dict[str, list[bytes]]:
    return {
        "mix": [s.xml for s in generate_mix(count, seed, invalid_ratio=0.0)],
        "IDA": [s.xml for s in generate("IDA", count, seed)],
        "EDA": [s.xml for s in generate("EDA", count, seed)],
        "TIR": [s.xml for s in generate("TIR", count, seed)],
    }


def bench_set(docs: list[bytes], seconds: float) -> dict[str, Any]:
    types = document_types()
    roots = [parse_xml(d) for d in docs]
    for r in roots:
        types[r.tag].validator.validate(r)
    records = [types[r.tag].mapping.apply(r) for r in roots]
    schemas = [(types[r.tag].mapping.schema_name, types[r.tag].mapping.schema_version) for r in roots]
    pairs = list(zip(schemas, records, strict=True))
    plain = etree.XMLParser()
    sizes = [len(d) for d in docs]
    lines = [len(rec.get("goods", ())) for rec in records if "goods" in rec]
    rates = {
        "baseline": _rate(lambda d: etree.fromstring(d, plain), docs, seconds),
        "parse": _rate(parse_xml, docs, seconds),
        "validate": _rate(lambda r: types[r.tag].validator.validate(r), roots, seconds),
        "map": _rate(lambda r: types[r.tag].mapping.apply(r), roots, seconds),
        "model": _rate(lambda p: model_for(p[0][0]).model_validate(p[1]), pairs, seconds),  # type: ignore[union-attr]
        "encode": _rate(lambda p: avro.encode(p[0][0], p[1], version=p[0][1]), pairs, seconds),
        "total": _rate(translate_xml, docs, seconds),
    }
    payload = [len(translate_xml(d).payload) for d in docs[:200]]
    return {
        "documents": len(docs),
        "xml_bytes_mean": round(statistics.fmean(sizes)),
        "xml_bytes_median": int(statistics.median(sizes)),
        "goods_lines_mean": round(statistics.fmean(lines), 1) if lines else None,
        "avro_bytes_mean": round(statistics.fmean(payload)),
        "per_second": {k: round(v) for k, v in rates.items()},
        "microseconds": {k: round(1e6 / v, 1) for k, v in rates.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="time per stage and set (default 2)")
    parser.add_argument("--count", type=int, default=2000, help="documents per set (default 2000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sets", default="mix,IDA,EDA,TIR", help="comma-separated subset of mix,IDA,EDA,TIR")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    sets = {k: v for k, v in _sets(args.count, args.seed).items() if k in args.sets.split(",")}
    results = {name: bench_set(docs, args.seconds) for name, docs in sets.items()}
    meta = {"python": platform.python_version(), "lxml": ".".join(map(str, etree.LXML_VERSION)),
            "libxml2": ".".join(map(str, etree.LIBXML_VERSION)), "cpus": os.cpu_count(),
            "loadavg": [round(x, 2) for x in os.getloadavg()]}
    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
        return
    print(f"documents benchmark, one thread; {meta}")
    stages = ["baseline", "parse", "validate", "map", "model", "encode", "total"]
    print(f"{'set':5} {'docs':>5} {'xml B':>6} {'lines':>5} {'avro B':>6}  " + "  ".join(f"{s:>16}" for s in stages))
    for name, r in results.items():
        cells = "  ".join(f"{r['per_second'][s]:>7,}/s {r['microseconds'][s]:>6.1f}µs" for s in stages)
        print(f"{name:5} {r['documents']:>5} {r['xml_bytes_mean']:>6} {r['goods_lines_mean'] or '-':>5} "
              f"{r['avro_bytes_mean']:>6}  {cells}")


if __name__ == "__main__":
    main()
