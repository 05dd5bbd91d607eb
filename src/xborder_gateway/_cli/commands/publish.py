"""``xborder publish FILE... | --generate N``: put XML documents on the intake topic."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from xborder_gateway._cli import add_command
from xborder_gateway.config import Settings
from xborder_gateway.errors import ConfigError

EXAMPLES = """\
examples:
  xborder publish declarations/*.xml              publish files (key = declaration number found in each)
  xborder publish --generate 1000                 1,000 generated IDA/EDA/TIR documents, ~5% invalid
  xborder publish --generate 200 --kind EDA --seed 7
  xborder publish --generate 500 --rate 500       paced at 500 documents/s
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


def _publish(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.connectors import publish_documents

    if args.generate is None and not args.files:
        raise ConfigError("nothing to publish", code="PUBLISH_NOTHING", hint="pass XML files or --generate N")
    if args.generate is not None and args.files:
        raise ConfigError("pass files or --generate, not both", code="PUBLISH_BOTH", hint="choose one source")
    if args.generate is not None:
        total: int | None = args.generate
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
    p = add_command(sub, "publish", help="publish XML declarations to the intake topic",
                    description="Publish VNACCS-style XML documents to the intake topic (vn.declarations.raw), "
                    "keyed by declaration number, with a progress bar on stderr. Prints the count.",
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
    p.set_defaults(func=_publish)
