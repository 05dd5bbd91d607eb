"""``xborder publish FILE... | --generate N [--authority CN]``: put documents on a sender's intake topic.

VN (the default) takes VNACCS-style XML on ``vn.declarations.raw``; CN takes framed Avro
(``CnExportDeclaration`` / ``CnRoadManifest``) on ``cn.declarations.raw`` -- ``--generate N`` then publishes
the export declaration and road manifest of N trucks mirroring the VN generator's IDAs (issue 10).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from xborder_gateway._cli import add_command
from xborder_gateway.config import Settings
from xborder_gateway.errors import ConfigError, GatewayError

EXAMPLES = """\
examples:
  xborder publish declarations/*.xml              publish files (key = declaration number found in each)
  xborder publish --generate 1000                 1,000 generated IDA/EDA/TIR documents, ~5% invalid
  xborder publish --generate 200 --kind EDA --seed 7
  xborder publish --generate 500 --rate 500       paced at 500 documents/s
  xborder publish --authority CN --generate 100 --seed 7 --mismatch-ratio 0.1
                                                  CN: 100 trucks' export declarations + road manifests (Avro)
"""

KINDS = ("IDA", "EDA", "TIR", "TOR")


class ProgressBar:
    """A one-line progress bar on stderr (only when stderr is a terminal, else one final line)."""

    def __init__(self, total: int | None, label: str) -> None:
        self.total = total
        self.label = label
        self.tty = sys.stderr.isatty()
        self.start = time.monotonic()

    def __call__(self, done: int) -> None:
        if not self.tty:
            return
        rate = done / max(1e-6, time.monotonic() - self.start)
        if self.total:
            width = 30
            filled = int(width * done / self.total)
            bar = "#" * filled + "-" * (width - filled)
            sys.stderr.write(f"\r{self.label} [{bar}] {done}/{self.total} ({rate:,.0f}/s)")
        else:
            sys.stderr.write(f"\r{self.label} {done} ({rate:,.0f}/s)")
        sys.stderr.flush()

    def finish(self, done: int) -> None:
        elapsed = time.monotonic() - self.start
        if self.tty:
            sys.stderr.write("\n")
        sys.stderr.write(f"{self.label}: {done} documents in {elapsed:.1f}s\n")
        sys.stderr.flush()


def _files(paths: list[Path], settings: Settings) -> Iterator[tuple[str | None, bytes]]:
    from xborder_gateway.documents import IntakeLimits, peek_key

    limits = IntakeLimits.from_settings(settings)  # the configured bounds, as the outbound connector applies them
    for path in paths:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc}", code="PUBLISH_FILE",
                              hint="pass readable XML files") from exc
        yield peek_key(raw, limits=limits), raw


def positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse type: a number greater than 0 (a usage error otherwise)."""

    def parse(value: str) -> int | float:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
        if number <= 0:
            raise argparse.ArgumentTypeError(f"{value} must be greater than 0")
        return number
    return parse


def _authority(value: str) -> str:
    if value.upper() not in ("VN", "CN"):
        raise argparse.ArgumentTypeError(f"{value!r} is not an authority (VN or CN)")
    return value.upper()


def _ratio(value: str) -> float:
    try:
        ratio = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0.0 <= ratio <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not a share in [0, 1]")
    return ratio


def generated(count: int, seed: int, kind: str | None, invalid_ratio: float) -> Iterator[tuple[str | None, bytes]]:
    from xborder_gateway.samples import generate, generate_mix

    samples = (generate(kind, count, seed, invalid=False) if kind else
               generate_mix(count, seed, invalid_ratio=invalid_ratio))
    for s in samples:
        yield s.business_key, s.xml


def cn_generated(count: int, seed: int, mismatch_ratio: float) -> Iterator[tuple[str | None, bytes]]:
    """China's side of ``count`` trucks (``samples.generate_cn_exports``): each export declaration, then its
    road manifest, as framed Avro keyed by their numbers."""
    from xborder_gateway.samples import generate_cn_exports

    for c in generate_cn_exports(count, seed, mismatch_ratio=mismatch_ratio):
        yield str(c.export["declaration_number"]), c.export_frame()
        yield str(c.manifest["manifest_number"]), c.manifest_frame()


def _avro_files(paths: list[Path]) -> Iterator[tuple[str | None, bytes]]:
    from xborder_gateway import avro

    for path in paths:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc}", code="PUBLISH_FILE",
                              hint="pass readable framed Avro files") from exc
        try:
            rec = avro.decode(raw).record
            key = rec.get("declaration_number") or rec.get("manifest_number")
        except (GatewayError, ValueError, OverflowError, AttributeError):  # the CN outbound rejects it: unkeyed
            key = None
        yield (str(key) if key else None), raw


def _publish(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.connectors import publish_documents

    authority = (args.authority or "VN").upper()
    if authority not in ("VN", "CN"):
        raise ConfigError(f"unknown authority {args.authority!r}", code="AUTHORITY_UNKNOWN", hint="use VN or CN")
    if authority == "CN":
        if args.kind is not None:
            raise ConfigError("--kind is a VN document kind", code="PUBLISH_KIND_CN",
                              hint="CN publishes export declarations and road manifests together")
        if args.generate is None and not args.files:
            raise ConfigError("nothing to publish", code="PUBLISH_NOTHING", hint="pass Avro files or --generate N")
        if args.generate is not None and args.files:
            raise ConfigError("pass files or --generate, not both", code="PUBLISH_BOTH", hint="choose one source")
        docs = (cn_generated(args.generate, args.seed, args.mismatch_ratio) if args.generate is not None
                else _avro_files(args.files))
        total: int | None = 2 * args.generate if args.generate is not None else len(args.files)
        bar = ProgressBar(total, "publish")
        sent = asyncio.run(publish_documents(settings.for_role("CN", "CN"), docs, run=args.run, progress=bar,
                                             rate_per_s=args.rate))
        bar.finish(sent)
        print(sent)
        return 0

    if args.generate is None and not args.files:
        raise ConfigError("nothing to publish", code="PUBLISH_NOTHING", hint="pass XML files or --generate N")
    if args.generate is not None and args.files:
        raise ConfigError("pass files or --generate, not both", code="PUBLISH_BOTH", hint="choose one source")
    if args.generate is not None:
        total = args.generate
        docs = generated(args.generate, args.seed, args.kind, args.invalid_ratio)
    else:
        total = len(args.files)
        docs = _files(args.files, settings)
    bar = ProgressBar(total, "publish")
    sent = asyncio.run(publish_documents(settings, docs, run=args.run, progress=bar, rate_per_s=args.rate))
    bar.finish(sent)
    print(sent)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(sub, "publish", help="publish declarations to a sender's intake topic (VN XML, CN Avro)",
                    description="Publish VNACCS-style XML documents to the intake topic (vn.declarations.raw), "
                    "keyed by declaration number, with a progress bar on stderr. Prints the count. With "
                    "--authority CN: framed Avro (CnExportDeclaration, CnRoadManifest) to cn.declarations.raw.",
                    epilog=EXAMPLES)
    p.add_argument("files", nargs="*", type=Path, metavar="FILE", help="XML files to publish")
    p.add_argument("--generate", type=positive(int), metavar="N",
                   help="publish N generated documents instead of files")
    p.add_argument("--kind", choices=KINDS, help="with --generate: only this kind (all valid)")
    p.add_argument("--seed", type=int, default=1, help="with --generate: generator seed (default 1)")
    p.add_argument("--invalid-ratio", type=_ratio, default=0.05,
                   help="with --generate: share invalid (default 0.05)")
    p.add_argument("--rate", type=positive(float), metavar="PER_S",
                   help="pace the sends at this many documents per second")
    p.add_argument("--run", metavar="ID", help="tag every record with this run id (carried end to end)")
    p.add_argument("--authority", type=_authority, default=None, metavar="A",
                   help="the sending authority whose intake gets the documents: VN (default, XML) or CN (Avro)")
    p.add_argument("--mismatch-ratio", type=_ratio, default=0.0,
                   help="with --authority CN --generate: share of trucks with one seeded mirror mismatch")
    p.set_defaults(func=_publish)
