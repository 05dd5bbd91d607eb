"""``xborder contract asyncapi|vectors``: the contract a counterpart builds against (docs/contract.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xborder_gateway._cli import add_command
from xborder_gateway.config import Settings

EXAMPLES_ASYNCAPI = """\
examples:
  xborder contract asyncapi --out docs/asyncapi.yaml     regenerate the checked-in AsyncAPI 3.0.0 document
  xborder contract asyncapi | less                       print it
  scripts/validate-asyncapi.sh docs/asyncapi.yaml        validate it with @asyncapi/parser (Node 20)
exit codes: 0 written, 1 could not write, 2 usage error
"""

EXAMPLES_VECTORS = """\
examples:
  xborder contract vectors --out /tmp/xbg-vectors        write vectors, keys, manifest.json and README.md
  xborder contract vectors --out DIR --check             write them, then check every verdict with our code
exit codes: 0 written (and all verdicts as expected), 1 a verdict differs or DIR cannot be written, 2 usage error
"""

EXAMPLES = """\
examples:
  xborder contract asyncapi --out docs/asyncapi.yaml
  xborder contract vectors --out /tmp/xbg-vectors
"""


def _asyncapi(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.contract import render_asyncapi

    text = render_asyncapi(settings)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"contract asyncapi: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _vectors(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.contract import check_vectors, write_vectors

    out: Path = args.out
    if out.exists() and not out.is_dir():
        print(f"contract vectors: {out} exists and is not a directory", file=sys.stderr)
        return 1
    try:
        manifest = write_vectors(out)
    except OSError as exc:
        print(f"contract vectors: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(manifest['vectors'])} vectors to {out} (manifest.json, README.md)", file=sys.stderr)
    if args.check:
        bad = [r for r in check_vectors(out) if not r.ok]
        for r in bad:
            print(f"contract vectors: {r.name} input {r.step}: expected {r.expected}, got {r.got}", file=sys.stderr)
        if bad:
            return 1
        print("every verdict as expected", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(sub, "contract", help="the counterpart's contract: AsyncAPI document and test vectors",
                    description="Generate what the counterpart builds against: the AsyncAPI 3.0.0 document of the "
                    "cross-border topics (docs/asyncapi.yaml) and test vectors with expected verdicts.",
                    epilog=EXAMPLES)
    verbs = p.add_subparsers(dest="contract_command", metavar="ACTION", required=True)
    a = add_command(verbs, "asyncapi", help="write the AsyncAPI 3.0.0 document (from settings and schemas)",
                    description="Generate the AsyncAPI 3.0.0 document of every cross-border channel (both "
                    "directions, audit checkpoints and cosignatures) from the settings and schemas/avro/. "
                    "The output is deterministic; docs/asyncapi.yaml is this command's output.",
                    epilog=EXAMPLES_ASYNCAPI)
    a.add_argument("--out", type=Path, metavar="FILE", help="write here instead of standard output")
    a.set_defaults(func=_asyncapi)
    v = add_command(verbs, "vectors", help="write test vectors with fixed throwaway keys and expected verdicts",
                    description="Write envelopes both ways (suites v1 and v2), receipts (ACK, NACK, Receipt v2 with "
                    "a decision), signed checkpoint notes and refusals, with manifest.json (inputs, keys, "
                    "expected verdicts) and README.md. Keys come from fixed seeds, never from a home.",
                    epilog=EXAMPLES_VECTORS)
    v.add_argument("--out", type=Path, metavar="DIR", required=True, help="directory to write (created)")
    v.add_argument("--check", action="store_true", help="then check every verdict with this gateway's code")
    v.set_defaults(func=_vectors)
