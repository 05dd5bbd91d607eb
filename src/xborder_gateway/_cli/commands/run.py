"""``xborder run outbound|inbound|nanning|receipts``: run one connector of the exchange until SIGTERM.

Three roles any authority runs (issue 10): ``outbound`` and ``receipts`` of the SENDER ``--authority``,
``inbound`` of the RECEIVER ``--authority``. ``--authority`` defaults to the home's one authority; in a home
holding both (the demo's), outbound and receipts default to VN and inbound to CN.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from xborder_gateway._cli import add_command
from xborder_gateway.config import Settings
from xborder_gateway.errors import ConfigError

EXAMPLES = """\
examples:
  xborder run outbound --passphrase-file ~/.xborder/demo-passphrase      VN: intake -> sealed -> exchange
  xborder run outbound --authority CN --passphrase-file F                CN: framed Avro -> sealed for VN
  xborder run inbound --authority VN --passphrase-file F                 VN endpoint: CN's exports, mirror checks
  xborder run receipts --authority CN --passphrase-file F                CN: receipts from VN, resends, dead letters
  xborder run nanning --passphrase-file F --metrics-port 9310            CN endpoint, /metrics and /healthz
  xborder run nanning --passphrase-file F --drop-rate 0.3 --duplicate-rate 0.3 --seed 7
  xborder run inbound --authority CN --passphrase-file F                 the receiving endpoint (= run nanning)
  xborder run inbound --allow-fault-injection --drop-rate 0.1 --passphrase-file F
  xborder run receipts --passphrase-file F                               VN: receipts, resend, dead letter
  xborder run outbound --instance 2 --passphrase-file F                  a second instance in the same group
  xborder run gate                                                       gate arrivals -> GREEN/YELLOW/RED decisions
  xborder run witness --authority CN --passphrase-file F                 CN: publish CN checkpoints, cosign VN's
exit codes: 0 stopped by SIGTERM/SIGINT, 1 failed (the message says why), 17 --crash-after fired
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--passphrase-file", type=Path, metavar="FILE",
                   help="file whose first line is the key passphrase (else $XBG_KEY_PASSPHRASE)")
    p.add_argument("--instance", default="0", metavar="ID",
                   help="instance id, unique within the consumer group (names the transactional id; default 0)")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve Prometheus /metrics and /healthz on 127.0.0.1:PORT")


def _rate(value: str) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not a probability in [0, 1]")
    return rate


def _outbound(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.connectors import OutboundOptions, run_outbound

    opts = OutboundOptions(instance=args.instance, passphrase_file=args.passphrase_file,
                           metrics_port=args.metrics_port, crash_after=args.crash_after)
    return asyncio.run(run_outbound(settings, opts, _authority(args, settings, both="VN")))


def _authority(args: argparse.Namespace, settings: Settings, *, both: str) -> str:
    """``--authority``, else the home's one authority, else ``both`` (a home holding both keys, or none)."""
    chosen: str | None = getattr(args, "authority", None)
    if chosen is not None:
        if chosen not in ("VN", "CN"):
            raise _UsageError(f"unknown authority {chosen!r}", code="AUTHORITY_UNKNOWN", hint="use VN or CN")
        return chosen
    held = _home_authorities(settings) & {"VN", "CN"}
    return next(iter(held)) if len(held) == 1 else both


def _nanning(args: argparse.Namespace, settings: Settings, authority: str = "CN") -> int:
    from xborder_gateway.connectors import Faults, NanningOptions, run_nanning

    faults = Faults(drop_rate=args.drop_rate, duplicate_rate=args.duplicate_rate, delay_ms=args.delay_ms,
                    reject_rate=args.reject_rate, crash_after=args.crash_after, offline_for=args.offline_for,
                    seed=args.seed)
    opts = NanningOptions(instance=args.instance, passphrase_file=args.passphrase_file,
                          metrics_port=args.metrics_port, faults=faults)
    return asyncio.run(run_nanning(settings, opts, authority))


class _UsageError(ConfigError):
    exit_code = 2


_FAULT_DEFAULTS = {"drop_rate": 0.0, "duplicate_rate": 0.0, "delay_ms": 0, "reject_rate": 0.0, "crash_after": None,
                   "offline_for": 0.0, "seed": None}


def _home_authorities(settings: Settings) -> set[str]:
    keys = settings.home / "keys"
    return {d.name for d in keys.iterdir() if d.is_dir() and any(d.iterdir())} if keys.is_dir() else set()


def _inbound(args: argparse.Namespace, settings: Settings) -> int:
    """``run inbound``: the receiving endpoint of ``--authority`` (default: the home's one authority; CN in a
    home that holds both, as in the demo). Fault flags only with ``--allow-fault-injection``."""
    faulty = [name for name, default in _FAULT_DEFAULTS.items() if getattr(args, name) != default]
    if faulty and not args.allow_fault_injection:
        flags = ", ".join("--" + n.replace("_", "-") for n in faulty)
        raise _UsageError(f"{flags} inject faults into the endpoint", code="FAULTS_NOT_ALLOWED",
                          hint="add --allow-fault-injection (tests and demos only), or use `xborder run nanning`")
    return _nanning(args, settings, _authority(args, settings, both="CN"))


def _authority_flag(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--authority", type=str.upper, default=None, metavar="A", help=text + " (VN or CN)")


def _fault_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("fault injection (tests and demos)")
    g.add_argument("--drop-rate", type=_rate, default=0.0, metavar="P", help="lose this share of envelopes")
    g.add_argument("--duplicate-rate", type=_rate, default=0.0, metavar="P",
                   help="receive this share of envelopes twice")
    g.add_argument("--delay-ms", type=int, default=0, metavar="MS", help="delay every answer (once per batch)")
    g.add_argument("--reject-rate", type=_rate, default=0.0, metavar="P",
                   help="answer this share with a transient NACK (CN_TEMPORARILY_UNAVAILABLE)")
    g.add_argument("--crash-after", type=int, default=None, metavar="N",
                   help="die (exit 17) after processing N envelopes, before the Kafka commit")
    g.add_argument("--offline-for", type=float, default=0.0, metavar="SECONDS",
                   help="do not consume during the first SECONDS seconds")
    g.add_argument("--seed", type=int, default=None, help="seed of the fault dice (reproducible runs)")


def _receipts(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.connectors import ReceiptsOptions, run_receipts

    opts = ReceiptsOptions(instance=args.instance, passphrase_file=args.passphrase_file,
                           metrics_port=args.metrics_port)
    return asyncio.run(run_receipts(settings, opts, _authority(args, settings, both="VN")))


def _gate(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.gate._connector import GateOptions, run_gate

    opts = GateOptions(instance=args.instance, passphrase_file=args.passphrase_file, metrics_port=args.metrics_port)
    return asyncio.run(run_gate(settings, opts))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        sub, "run", help="run one connector of the exchange (outbound, inbound, nanning, receipts)",
        description="Run one connector of the VN <-> CN exchange as a long-lived process. Stops cleanly on "
        "SIGTERM/SIGINT (the batch in flight commits or aborts). Topics are created if missing.",
        epilog=EXAMPLES,
    )
    verbs = parser.add_subparsers(dest="connector", metavar="CONNECTOR", required=True)
    p = add_command(verbs, "outbound", help="a sender's intake -> validate -> seal -> exchange (exactly once); VN "
                    "takes XML, CN framed Avro", epilog=EXAMPLES)
    _common(p)
    p.add_argument("--crash-after", type=int, default=None, metavar="N",  # issue 11 (tests)
                   help="fault injection (tests): die (exit 17) once N envelopes were produced inside an open "
                   "transaction, before its commit")
    _authority_flag(p, "the sending authority (default: the home's one authority; VN in a home with both)")
    p.set_defaults(func=_outbound)

    p = add_command(verbs, "nanning", help="CN: the simulated Nanning Customs endpoint (receipts, business checks)",
                    epilog=EXAMPLES)
    _common(p)
    _fault_flags(p)
    p.set_defaults(func=_nanning)

    p = add_command(verbs, "inbound", help="the receiving endpoint of an authority (CN: = run nanning; VN: CN's "
                    "exports with mirror checks)", epilog=EXAMPLES)
    _common(p)
    _authority_flag(p, "the receiving authority (default: the home's one authority; CN in a home with both)")
    p.add_argument("--allow-fault-injection", action="store_true",
                   help="accept the fault flags below (tests and demos only)")
    _fault_flags(p)
    p.set_defaults(func=_inbound)

    p = add_command(verbs, "receipts", help="a sender's tracker: match receipts, resend unanswered, dead-letter "
                    "after max attempts", epilog=EXAMPLES)
    _common(p)
    _authority_flag(p, "the sending authority (default: the home's one authority; VN in a home with both)")
    p.set_defaults(func=_receipts)

    p = add_command(verbs, "gate", help="VN: gate arrivals + status feed -> GREEN/YELLOW/RED decisions (docs/gate.md)",
                    epilog=EXAMPLES)
    _common(p)
    p.set_defaults(func=_gate)

    # --- issue 12 (wit12): the witness role; its code lives in audit/_witness_service.py -------------
    p = add_command(verbs, "witness", help="publish this log's checkpoints, cosign the counterpart's (C2SP witness)",
                    epilog=EXAMPLES)
    _common(p)
    p.add_argument("--authority", type=str.upper, choices=("VN", "CN"), default="VN", metavar="A",
                   help="the site whose log is published and whose witness cosigns the other log (default VN)")
    p.add_argument("--publish-every", type=float, default=1.0, metavar="SECONDS",
                   help="how often to look for a new checkpoint to publish (default 1)")
    p.set_defaults(func=_witness)


def _witness(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.audit._witness_service import WitnessOptions, run_witness

    if not args.publish_every > 0:
        raise _UsageError("--publish-every must be positive", code="WITNESS_USAGE")
    opts = WitnessOptions(authority=args.authority, instance=args.instance, passphrase_file=args.passphrase_file,
                          metrics_port=args.metrics_port, publish_every_s=args.publish_every)
    return asyncio.run(run_witness(settings, opts))
