"""``xborder``: the gateway's one command-line entry point.

Each verb lives in a module of :mod:`xborder_gateway._cli.commands` that defines
``register(subparsers)``; modules are discovered, so adding a verb touches no shared file.
A handler has the signature ``handler(args, settings) -> int`` (the exit code).

Exit codes: 0 success, 1 the work failed (a :class:`GatewayError` says why), 2 usage error,
130 interrupted. No traceback reaches an operator unless ``XBG_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from xborder_gateway.config import Settings, load_settings
from xborder_gateway.errors import GatewayError

__all__ = ["Handler", "common_options", "main"]

Handler = Callable[[argparse.Namespace, Settings], int]

EPILOG = """\
examples:
  xborder demo                      the full exchange both ways on two linked local sites (--sites 1: one broker)
  xborder kafka start               start the local single-node Kafka under ~/.xborder/kafka
  xborder --home /srv/xb kafka status
configuration: --config FILE, $XBG_CONFIG or <home>/config.toml; every setting also as XBG_<NAME>
(see docs/configuration.md). Set XBG_DEBUG=1 to see tracebacks.
"""


def common_options(*, for_leaf: bool) -> argparse.ArgumentParser:
    """Options every command accepts, before or after the verb (``--home``, ``--config``, ``-v``)."""
    parent = argparse.ArgumentParser(add_help=False)
    # A leaf must not overwrite what the top-level parser already parsed: SUPPRESS its defaults.
    default = argparse.SUPPRESS if for_leaf else None
    parent.add_argument("--home", type=Path, default=default, metavar="DIR",
                        help="where keys, databases and the local broker live (env XBG_HOME, default ~/.xborder)")
    parent.add_argument("--config", type=Path, default=default, metavar="FILE",
                        help="TOML config file (env XBG_CONFIG, default <home>/config.toml)")
    parent.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS if for_leaf else 0,
                        help="more log output (-vv for debug)")
    return parent


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xborder",
        description="xborder-gateway: the customs data exchange between Viet Nam and Nanning Customs "
        "(Huu Nghi - Youyiguan smart border gate).",
        epilog=EPILOG,
        formatter_class=_Formatter,
        parents=[common_options(for_leaf=False)],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    from xborder_gateway._cli import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(sub)
    return parser


def add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    help: str,
    description: str | None = None,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """Add a verb with the common options and a formatter that keeps example blocks intact."""
    return sub.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=epilog,
        formatter_class=_Formatter,
        parents=[common_options(for_leaf=True)],
    )


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)


def _with_key_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    """Fold ``--passphrase-file`` / ``--insecure-no-passphrase`` into the settings, so every private key of the
    process (envelope keys and the audit checkpoint key alike) reads the one passphrase source (issue 9 item 5)."""
    update: dict[str, object] = {}
    if getattr(args, "passphrase_file", None) is not None:
        update["key_passphrase_file"] = args.passphrase_file
    if getattr(args, "insecure_no_passphrase", False):
        update["key_insecure_no_passphrase"] = True
    return settings.model_copy(update=update) if update else settings


def _profiled(handler: Handler, args: argparse.Namespace, settings: Settings) -> int:
    """Run the command; with ``XBG_PROFILE_DIR`` set, under cProfile, the profile written to
    ``<dir>/<command>-<pid>.prof`` when it returns (issue 13 item 4: profile the real processes).

    ``XBG_PROFILE_CLOCK=cpu`` times with the process's CPU clock instead of the wall clock: on a machine
    whose cores are shared by the broker and the other connectors, wall time counts the waits for a core
    against whatever call was running."""
    directory = os.environ.get("XBG_PROFILE_DIR")
    if not directory:
        return handler(args, settings)
    import cProfile
    import time

    cpu_clock = os.environ.get("XBG_PROFILE_CLOCK", "wall") == "cpu"
    profiler = cProfile.Profile(time.process_time) if cpu_clock else cProfile.Profile()
    try:
        return profiler.runcall(handler, args, settings)
    finally:
        name = "-".join(str(v) for v in (getattr(args, "command", None), getattr(args, "connector", None),
                                                   getattr(args, "authority", None)) if v)
        os.makedirs(directory, exist_ok=True)
        profiler.dump_stats(os.path.join(directory, f"{name or 'xborder'}-{os.getpid()}.prof"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "func", None)
    if handler is None:
        parser.print_help()
        return 2
    _setup_logging(int(getattr(args, "verbose", 0) or 0))
    try:
        settings = _with_key_flags(
            load_settings(home=getattr(args, "home", None), config_file=getattr(args, "config", None)), args)
        return _profiled(handler, args, settings)
    except GatewayError as exc:
        if os.environ.get("XBG_DEBUG"):
            raise
        print(exc.diagnostics(), file=sys.stderr)
        return int(getattr(exc, "exit_code", 1))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `xborder … | head`: the reader left; not an error worth a traceback
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        return 0
    except OSError as exc:  # e.g. `> /dev/full` (ENOSPC), a vanished disk (EIO): the machine's fault, said plainly
        if os.environ.get("XBG_DEBUG"):
            raise
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the failed stdout must not fail again at exit
        print(f"error: OS_ERROR: {exc}\n  what to do: check free disk space, permissions and the output path "
              "(XBG_DEBUG=1 shows where it happened)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
