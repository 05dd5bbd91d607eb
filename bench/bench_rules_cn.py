"""China's business rules: outcome distribution and cost of the new rule set (exchange/_rules_cn.py)
beside today's BIZ-1..3 (exchange/_business.py) on the same generated stream, in the same run.

    python bench/bench_rules_cn.py [--count 500] [--seed 7] [--seconds 1] [--json]

The stream is generate_mix(count, seed) (the demo's kind of traffic; invalid documents are refused at
intake and never reach the rules). Documents are decided in stream order, a vehicle declaration seeing
the declarations before it (as an endpoint that receives them in order would: no early arrivals here).
Timing: decide() over every decoded record, repeated until --seconds elapse, best of 3; one core.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from xborder_gateway.documents import cn_crosswalk, translate_xml
from xborder_gateway.errors import GatewayError
from xborder_gateway.exchange import BusinessDecision, CnRuleSet, KnownDeclaration, decide
from xborder_gateway.samples import generate_mix

Decider = Callable[[str, Mapping[str, Any], Callable[[str], KnownDeclaration | None]], BusinessDecision]


def _stream(count: int, seed: int) -> list[tuple[str, str, Mapping[str, Any]]]:
    out = []
    for sample in generate_mix(count, seed):
        try:
            doc = translate_xml(sample.xml)
        except GatewayError:
            continue
        out.append((doc.doc_type, doc.business_key, doc.values))
    return out


def _run(stream: list[tuple[str, str, Mapping[str, Any]]], decider: Decider) -> Counter[str]:
    known: dict[str, KnownDeclaration] = {}
    outcomes: Counter[str] = Counter()
    for doc_type, key, record in stream:
        d = decider(doc_type, record, known.get)
        if doc_type in ("IDA", "EDA"):
            known[key] = KnownDeclaration(key, record.get("gross_weight_kg"))
        codes = sorted({c for c, _t in d.reasons})
        outcomes[f"{d.status} {','.join(codes)}".strip()] += 1
    return outcomes


def _time(stream: list[tuple[str, str, Mapping[str, Any]]], decider: Decider, seconds: float) -> float:
    best = float("inf")
    for _ in range(3):
        n = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            _run(stream, decider)
            n += len(stream)
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    stream = _stream(args.count, args.seed)
    rules = CnRuleSet()

    def old(doc_type: str, record: Mapping[str, Any], lookup: Callable[[str], KnownDeclaration | None]
            ) -> BusinessDecision:
        return decide(doc_type, record, lookup=lookup, crosswalk=cn_crosswalk)

    def new(doc_type: str, record: Mapping[str, Any], lookup: Callable[[str], KnownDeclaration | None]
            ) -> BusinessDecision:
        return rules.decide(doc_type, record, lookup=lookup)

    result = {
        "documents": len(stream), "count": args.count, "seed": args.seed,
        "baseline_biz1_3": dict(sorted(_run(stream, old).items())),
        "cn_rule_set": dict(sorted(_run(stream, new).items())),
        "us_per_document_baseline": round(_time(stream, old, args.seconds), 2),
        "us_per_document_cn_rule_set": round(_time(stream, new, args.seconds), 2),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['documents']} decoded documents of generate_mix({args.count}, seed={args.seed})")
    for name in ("baseline_biz1_3", "cn_rule_set"):
        print(f"  {name}:")
        for outcome, n in result[name].items():
            print(f"    {n:5d}  {outcome}")
    print(f"  decide(): baseline {result['us_per_document_baseline']} µs/doc, "
          f"CN rule set {result['us_per_document_cn_rule_set']} µs/doc")


if __name__ == "__main__":
    main()
