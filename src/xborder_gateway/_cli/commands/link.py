"""``xborder link certs|start|stop|status|logs|fetch|properties``: this site's MirrorMaker 2 and its link PKI."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from xborder_gateway._cli import add_command
from xborder_gateway.config import Settings

EXAMPLES = """\
examples (one home per site; site_authority = "VN" or "CN" in <home>/config.toml or XBG_SITE_AUTHORITY):
  xborder --home /srv/vn link certs          the VN site's link CA and its broker/client certificates
  xborder --home /srv/vn keys export --out vn.bundle.pem      the bundle now carries the link CA too
  xborder --home /srv/cn keys import vn.bundle.pem --expect-fingerprint <authority> --expect-fingerprint <link CA>
  xborder --home /srv/cn kafka start         the CN broker opens its link listener (mutual TLS, ACLs)
  xborder --home /srv/cn link start          CN's MirrorMaker pulls VN's allow-listed topics into CN's cluster
  xborder --home /srv/cn link status         per flow: lag in records and seconds; exit 0 running, 1 not
  xborder --home /srv/cn link logs -n 100    MirrorMaker's log (-f to follow)
  xborder --home /srv/cn link stop
  xborder --home /srv/cn link properties --out mm2.properties   the configuration only (docker/compose.yaml)
"""


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _certs(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.envelope import resolve_passphrase
    from xborder_gateway.link import init_link_pki, link_files

    ca = init_link_pki(settings, resolve_passphrase(settings, args.passphrase_file), renew=args.renew_ca)
    files = link_files(settings, settings.site)
    print(f"link CA of {ca.site}: {ca.certificate.subject.rfc4514_string()}")
    print(f"    certificate SHA-256 fingerprint {ca.fingerprint.hex()}")
    print(f"broker and client certificates written under {files.dir}", file=sys.stderr)
    print("export the bundle again (`xborder keys export`): it carries the link CA; the counterpart imports it "
          "and restarts its broker", file=sys.stderr)
    return 0


def _start(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.link import LinkMirror

    status = LinkMirror(settings).start(progress=_progress, timeout=args.timeout)
    print(status.describe())
    return 0


def _properties(args: argparse.Namespace, settings: Settings) -> int:
    """``link properties``: the mm2.properties this site's MirrorMaker runs with (and its trust file), for a
    MirrorMaker started by other means (docker/compose.yaml runs Kafka's own connect-mirror-maker.sh)."""
    from xborder_gateway.errors import ConfigError
    from xborder_gateway.link import LinkMirror
    from xborder_gateway.link._pki import write_truststore

    if write_truststore(settings) is None:
        raise ConfigError(f"{settings.link_counterpart}'s link CA is not trusted", code="LINK_PKI_MISSING",
                          hint=f"import {settings.link_counterpart}'s bundle (it carries the link CA)")
    text = LinkMirror(settings).mm2_properties()
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _stop(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.link import LinkMirror

    if not LinkMirror(settings).stop(progress=_progress, timeout=args.timeout):
        print("link: not running", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.link import LinkMirror, measure_lag

    mirror = LinkMirror(settings)
    status = mirror.status()
    report = asyncio.run(measure_lag(settings, max_count=args.max_count))
    if args.json:
        print(json.dumps({"running": status.running, "pid": status.pid, **report.as_json()}))
    else:
        print(status.describe())
        if not report.reachable:
            print(f"lag unknown: this site's cluster ({settings.bootstrap}) or {report.source}'s link listener "
                  f"({settings.link_remote}) did not answer: {report.error}")
        else:
            print(f"{'flow ' + report.source + ' -> ' + report.target:44} {'records':>9} {'seconds':>9}")
            for flow in report.flows:
                if not flow.at_source:
                    print(f"{flow.topic:44} {'-':>9} {'-':>9}  (no such topic at {report.source} yet)")
                else:
                    more = "+" if flow.capped else ""
                    print(f"{flow.topic:44} {str(flow.records) + more:>9} {flow.seconds:>9.1f}")
    return 0 if status.running and report.reachable else 1


def _logs(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.link import LinkMirror

    mirror = LinkMirror(settings)
    print(mirror.tail(args.lines))
    if args.follow:
        path: Path = mirror.log_file
        with path.open("rb") as fh:
            fh.seek(0, 2)
            try:
                while True:
                    chunk = fh.read()
                    if chunk:
                        sys.stdout.write(chunk.decode("utf-8", "replace"))
                        sys.stdout.flush()
                    else:
                        time.sleep(0.3)
            except KeyboardInterrupt:
                return 0
    return 0


def _fetch(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.link._mirror import fetch_mirror_jars

    path = fetch_mirror_jars(settings, progress=_progress)  # the jars need no site
    jars = list(path.glob("*.jar"))
    print(f"{len(jars)} jars, {sum(j.stat().st_size for j in jars) / 1e6:.1f} MB in {path}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        sub, "link",
        help="this site's MirrorMaker 2: the mutual-TLS link that pulls the counterpart's allow-listed topics",
        description="Run this site's MirrorMaker 2 (Apache Kafka connect-mirror from Maven Central jars): it "
        "consumes the counterpart's allow-listed cross-border topics over its link listener (mutual TLS, "
        "read-only ACLs) and produces them, exactly once, into this site's cluster. See docs/link.md.",
        epilog=EXAMPLES,
    )
    verbs = parser.add_subparsers(dest="link_command", metavar="ACTION", required=True)

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        return add_command(verbs, name, help=help_text, epilog=EXAMPLES)

    p = verb("certs", "create the site's link CA (first time) and issue its broker and client certificates")
    p.add_argument("--passphrase-file", type=Path, default=None, metavar="FILE",
                   help="file whose first line is the key passphrase (default: $XBG_KEY_PASSPHRASE); "
                   "it encrypts the link CA key")
    p.add_argument("--renew-ca", action="store_true",
                   help="make a new link CA (the counterpart must import the new bundle)")
    p.set_defaults(func=_certs)
    p = verb("start", "start MirrorMaker and wait until it replicates (no-op when running)")
    p.add_argument("--timeout", type=float, default=None, help="seconds to wait (default link_start_timeout, 120)")
    p.set_defaults(func=_start)
    p = verb("stop", "stop MirrorMaker (SIGTERM, then wait)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait before SIGKILL (default 30)")
    p.set_defaults(func=_stop)
    p = verb("status", "per flow: lag in records and seconds; exit 0 running and reachable, 1 not")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--max-count", type=int, default=100_000, help="count at most N pending records per partition")
    p.set_defaults(func=_status)
    p = verb("logs", "print MirrorMaker's log")
    p.add_argument("-n", "--lines", type=int, default=50, help="how many lines (default 50)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C stops)")
    p.set_defaults(func=_logs)
    p = verb("properties", "print the mm2.properties MirrorMaker would run with (for docker/compose.yaml)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE", help="write it to FILE instead of stdout")
    p.set_defaults(func=_properties)
    verb("fetch", "only fetch MirrorMaker's jars into the cache (CI does this before tests)").set_defaults(
        func=_fetch)
