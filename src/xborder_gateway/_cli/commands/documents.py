"""``xborder validate``, ``xborder map``, ``xborder samples generate``: the documents part on the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from xborder_gateway._cli import add_command
from xborder_gateway.config import Settings
from xborder_gateway.errors import ConfigError, GatewayError

VALIDATE_EXAMPLES = """\
examples:
  xborder validate samples/IDA-105123456789.xml
  xborder validate out/*.xml            one line per error: FILE:LINE:COL: CODE message
                                        (every error of a file, in document order; at most 100 per file)
exit codes: 0 every file is valid; 1 a file is invalid or refused; 2 usage error (e.g. a file cannot be read)
"""

MAP_EXAMPLES = """\
examples:
  xborder map IDA-105123456789.xml --format json            the canonical record as JSON on stdout
  xborder map IDA-105123456789.xml --format avro --out d.avro  Avro single-object encoding (C3 01 + fingerprint)
exit codes: 0 mapped; 1 the document is invalid or refused (errors as in 'validate'); 2 usage error
"""

SAMPLES_EXAMPLES = """\
examples:
  xborder samples generate --kind IDA --count 100 --seed 1 --out /tmp/ida
  xborder samples generate --kind TIR --count 14 --seed 1 --out /tmp/bad --invalid   one broken rule each
  xborder samples generate --kind MIX --count 1000 --seed 7 --out /tmp/mix   IDA/EDA + TIR linking them
  xborder samples generate --kind MIX --count 1000 --seed 7 --out /tmp/mix --amendments   + amendments releasing holds
rules broken by --invalid: see docs/documents.md ("Invalid-sample rules")
"""


class _UsageError(ConfigError):
    exit_code = 2


def _read(path: Path, max_bytes: int) -> bytes:
    """At most ``max_bytes + 1`` bytes: enough for the intake to refuse an oversize file (XML-1) without
    reading all of it into memory."""
    try:
        with path.open("rb") as f:
            return f.read(max_bytes + 1)
    except OSError as exc:
        raise _UsageError(f"cannot read {path}: {exc.strerror or exc}", code="FILE_UNREADABLE",
                          hint="name existing, readable files") from exc


def _error_lines(exc: GatewayError, source: str) -> list[str]:
    from xborder_gateway.intake import DocumentRejectedError

    if isinstance(exc, DocumentRejectedError):
        return exc.lines()
    return [f"{source}:0:0: {exc.code} {exc.message}"]


def _validate(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.documents import translate_xml
    from xborder_gateway.intake import IntakeLimits

    limits = IntakeLimits.from_settings(settings)
    paths = [Path(p) for p in args.files]
    for path in paths:  # every file readable before any output: a usage error exits 2 early
        _read(path, 0)
    failed = 0
    for path in paths:  # one file in memory at a time
        raw = _read(path, limits.max_bytes)
        try:
            translate_xml(raw, source=str(path), limits=limits)
        except GatewayError as exc:
            failed += 1
            for line in _error_lines(exc, str(path)):
                print(line)
            continue
        if args.verbose:
            print(f"{path}: valid", file=sys.stderr)
    if len(paths) > 1 or failed:
        print(f"{len(paths) - failed} valid, {failed} invalid", file=sys.stderr)
    return 1 if failed else 0


def _map(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.documents import translate_xml
    from xborder_gateway.intake import IntakeLimits

    path = Path(args.file)
    limits = IntakeLimits.from_settings(settings)
    raw = _read(path, limits.max_bytes)
    try:
        doc = translate_xml(raw, source=str(path), limits=limits)
    except GatewayError as exc:
        for line in _error_lines(exc, str(path)):
            print(line, file=sys.stderr)
        return 1
    if args.format == "json":
        data = json.dumps(doc.record.model_dump(mode="json"), ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
    else:
        data = doc.payload
    if args.out:
        try:
            Path(args.out).write_bytes(data)
        except OSError as exc:
            raise _UsageError(f"cannot write {args.out}: {exc.strerror or exc}", code="FILE_UNWRITABLE") from exc
        print(f"{path} -> {args.out} ({doc.doc_type} {doc.business_key}, {len(data)} bytes)", file=sys.stderr)
    elif args.format == "avro" and sys.stdout.isatty():
        raise _UsageError("refusing to write binary Avro to a terminal", code="BINARY_TO_TTY",
                          hint="use --out PATH or redirect stdout")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


def _samples_generate(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.samples import generate, generate_mix

    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _UsageError(f"cannot create {out}: {exc.strerror or exc}", code="FILE_UNWRITABLE") from exc
    kind = args.kind.upper()
    if kind == "MIX":
        samples = generate_mix(args.count, args.seed, invalid_ratio=1.0 if args.invalid else args.invalid_ratio,
                               amendments=args.amendments)
    else:
        samples = generate(kind, args.count, args.seed, invalid=args.invalid)
    written = 0
    for sample in samples:
        suffix = f".{sample.broken_rule}" if sample.broken_rule else ""
        target = out / f"{sample.name}{suffix}.xml"
        try:
            target.write_bytes(sample.xml)
        except OSError as exc:
            raise _UsageError(f"cannot write {target}: {exc.strerror or exc}", code="FILE_UNWRITABLE") from exc
        written += 1
    print(f"wrote {written} {kind} document(s) to {out}", file=sys.stderr)
    return 0


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError("must be within 0..1")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(sub, "validate", help="validate VNACCS-style XML files (intake rules, XSD, data rules)",
                    epilog=VALIDATE_EXAMPLES)
    p.add_argument("files", nargs="+", metavar="FILE", help="XML documents (IDA, EDA, TIR, TOR)")
    p.set_defaults(func=_validate)

    p = add_command(sub, "map", help="translate one XML document to the agreed record (JSON or Avro)",
                    epilog=MAP_EXAMPLES)
    p.add_argument("file", metavar="FILE", help="an XML document (IDA, EDA, TIR, TOR)")
    p.add_argument("--format", choices=["json", "avro"], default="json", help="output format (default json)")
    p.add_argument("--out", metavar="PATH", help="write to PATH instead of stdout")
    p.set_defaults(func=_map)

    p = add_command(sub, "samples", help="realistic sample documents", epilog=SAMPLES_EXAMPLES)
    verbs = p.add_subparsers(dest="samples_command", metavar="ACTION", required=True)
    g = add_command(verbs, "generate", help="write generated documents to a folder", epilog=SAMPLES_EXAMPLES)
    g.add_argument("--kind", required=True, type=str.upper, choices=["IDA", "EDA", "TIR", "TOR", "MIX"],
                   help="document type; MIX = IDA/EDA goods declarations with TIR vehicle declarations linking them")
    g.add_argument("--count", required=True, type=_count, help="how many documents")
    g.add_argument("--seed", required=True, type=int, help="seed: the same seed gives the same documents")
    g.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    g.add_argument("--invalid", action="store_true",
                   help="each document breaks one documented rule (the rule is in the file name)")
    g.add_argument("--invalid-ratio", type=_ratio, default=0.05, metavar="R",
                   help="MIX only: share of documents that break a rule (default 0.05)")
    g.add_argument("--amendments", action="store_true",
                   help="MIX only: follow most held declarations with the amendment that releases them "
                   "(same declaration number, file NAME.amendment.xml)")
    g.set_defaults(func=_samples_generate)
