"""``xborder audit …``: the auditor's view of the tamper-evident exchange log (issue 6)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xborder_gateway._cli import add_command
from xborder_gateway.config import Settings
from xborder_gateway.errors import ConfigError

if TYPE_CHECKING:
    from xborder_gateway.audit import AuditLog, LogEntry, NoteVerifier

EXAMPLES = """\
examples:
  xborder audit search --declaration 305123456789          what happened to this declaration (VN log)
  xborder audit search --authority CN --type duplicate --since 2026-11-25 --format csv
  xborder audit show 42                                    one entry, with its leaf hash
  xborder audit export --jsonl > vn-audit.jsonl            every entry: index, leaf_hash, entry
  xborder audit checkpoint                                 the latest signed checkpoint, verbatim
  xborder audit checkpoint --cosigned                      ... with the witness's cosignature lines
  xborder audit verify --require-witness --max-lag-entries 5000   fail unless witnessed within the lag
  xborder audit key                                        the verifier key to publish to auditors
  xborder audit prove 42 --json                            inclusion proof of entry 42 in the current tree
  xborder audit consistency 1000 2000 --json               the log at 2000 extends the log at 1000
  xborder audit verify --key "$(cat vn.vkey)"              recompute everything; exit 1 naming the bad entry
  xborder audit rotate-key                                 new checkpoint key, announced by the old one
  xborder audit bundle 42 --out e42.json                   offline proof: entry, proof, checkpoint, key
  xborder audit verify-bundle e42.json --key "$(cat vn.vkey)"   no database needed
  xborder audit token create alice --expires-days 30      make an auditor token for the HTTP API
  xborder audit serve --port 8441                          read-only HTTP API (OpenAPI at /openapi.json),
                                                           auditor console at http://127.0.0.1:8441/console/
  xborder audit verifier-page --out verifier.html          the standalone verifier to keep offline
  xborder audit trace 305123456789                         both logs' events for a declaration, each proven
  xborder audit token create cn-customs --role counterpart   a token the counterpart's trace may use
  xborder audit serve --max-lag-entries 500 --max-lag-seconds 600   console: both logs red beyond this lag
"""

AUTH_EXAMPLES = """\
examples:
  xborder audit token create alice --expires-days 30      print a new auditor token once (stored hashed)
  xborder audit token list                                 name, role, active/expired/revoked, expiry
  xborder audit token revoke alice                         the API refuses alice's tokens from now on
"""

_TABLE_COLUMNS = ("index", "time", "event_type", "process", "message_id", "business_key", "document_type",
                  "outcome", "reason_code")


class _UsageError(ConfigError):
    exit_code = 2


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _open(args: argparse.Namespace, settings: Settings, *, read_only: bool = True) -> AuditLog:
    from xborder_gateway.audit import AuditLog

    authority = args.authority.upper()
    if settings.audit_url is None and not settings.audit_db(authority).exists():
        raise ConfigError(f"there is no {authority} audit log under {settings.home}", code="AUDIT_NO_LOG",
                          hint="check --home and --authority; the log is created by the first appended event")
    return AuditLog.open(settings, authority, read_only=read_only)


def _time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date/time: {text!r}") from exc
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)  # 0001-01-01T00:00:00+01:00 has no UTC time: a usage error, not a traceback
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range (its UTC time must be within years 1..9999)") \
            from None


_MAX_INDEX = 2**63 - 1


def _index(text: str) -> int:
    """A log index or tree size: a decimal integer in 0..2^63-1 (what the databases can hold)."""
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > _MAX_INDEX:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer in 0..{_MAX_INDEX}")
    return int(text)


def _limit(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 4 or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a page size in 1..1000")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 10 * 365 * 86400:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds in 0..315360000")
    return value


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3650:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days in (0, 3650]")
    return value


def _verifier(text: str | None) -> NoteVerifier | None:
    from xborder_gateway.audit import NoteVerifier

    if text is None:
        return None
    path = Path(text)
    if path.is_file():  # a file holding the key (as `xborder audit key > vn.vkey` writes it)
        text = path.read_text(encoding="utf-8").strip()
    return NoteVerifier.parse(text)


def _row(entry: LogEntry) -> dict[str, Any]:
    d = entry.event.canonical_dict()
    d["index"] = entry.index
    return {k: d[k] for k in _TABLE_COLUMNS}


def _search(args: argparse.Namespace, settings: Settings) -> int:
    with _open(args, settings) as log:
        limit = min(args.limit, log.config.max_search_limit)
        entries = log.search(message_id=args.message_id, business_key=args.declaration, event_type=args.type,
                             since=args.since, until=args.until, after=args.after, limit=limit)
    rows = [_row(e) for e in entries]
    if args.format == "json":
        print(json.dumps([e.to_json() for e in entries], indent=1))
    elif args.format == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=_TABLE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        sys.stdout.write(buf.getvalue())
    else:
        widths = {c: max([len(c)] + [len(str(r[c] if r[c] is not None else "-")) for r in rows])
                  for c in _TABLE_COLUMNS}
        print("  ".join(c.ljust(widths[c]) for c in _TABLE_COLUMNS).rstrip())
        for r in rows:
            print("  ".join(str(r[c] if r[c] is not None else "-").ljust(widths[c]) for c in _TABLE_COLUMNS).rstrip())
    if len(entries) == limit:
        _err(f"(first {limit} matches; next page: --after {entries[-1].index})")
    elif not entries:
        _err("no matching entries")
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    with _open(args, settings) as log:
        print(json.dumps(log.get(args.index).to_json(), indent=1))
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    with _open(args, settings) as log:
        size = log.size()
        end = size if args.to is None else min(args.to, size)
        out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115
        try:
            after = args.start - 1 if args.start else None
            count = 0
            while True:
                page = log.search(after=after, limit=log.config.max_search_limit)
                page = [e for e in page if e.index < end]
                for entry in page:
                    out.write(json.dumps(entry.to_json(), separators=(",", ":")) + "\n")
                count += len(page)
                if not page or page[-1].index >= end - 1:
                    break
                after = page[-1].index
        finally:
            if out is not sys.stdout:
                out.close()
    _err(f"exported {count} entries")
    return 0


def _checkpoint(args: argparse.Namespace, settings: Settings) -> int:
    with _open(args, settings, read_only=not args.issue) as log:
        if args.issue:
            issued = log.checkpoint_now()
            _err("signed a new checkpoint" if issued else "the latest checkpoint already covers the whole log")
        latest = log.latest_checkpoint()
        cosigned = log.cosigned_note() if args.cosigned else None
    if latest is None:
        raise ConfigError("the log has no checkpoint yet", code="AUDIT_NO_CHECKPOINT",
                          hint="append events, or run `xborder audit checkpoint --issue`")
    if args.cosigned and cosigned == latest.note:
        _err("note: the latest checkpoint has no cosignature yet")
    sys.stdout.write(cosigned or latest.note)
    return 0


def _key(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.audit._keys import load_verifier

    verifier = load_verifier(settings, args.authority.upper())
    if verifier is None:
        raise ConfigError(f"no {args.authority.upper()} audit key under {settings.home}/audit", code="AUDIT_NO_KEY",
                          hint="the key is created when the log is first written")
    print(verifier)
    return 0


def _prove(args: argparse.Namespace, settings: Settings) -> int:
    with _open(args, settings) as log:
        proof = log.inclusion_proof(args.index, args.size)
    if args.json:
        print(json.dumps(proof.to_json(), indent=1))
    else:
        print(f"leaf {proof.leaf_index} of tree size {proof.tree_size}, leaf hash {proof.leaf_hash.hex()}")
        for h in proof.hashes:
            print(h.hex())
    return 0


def _consistency(args: argparse.Namespace, settings: Settings) -> int:
    with _open(args, settings) as log:
        proof = log.consistency_proof(args.old, args.new)
    if args.json:
        print(json.dumps(proof.to_json(), indent=1))
    else:
        print(f"size {proof.old_size} root {proof.old_root.hex()}")
        print(f"size {proof.new_size} root {proof.new_root.hex()}")
        for h in proof.hashes:
            print(h.hex())
    return 0


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    verifier = _verifier(args.key)
    with _open(args, settings) as log:
        if verifier is None:
            _err(f"checking checkpoints with the key in the home: {log.verifier} "
                 "(pass --key with the published key to check against that)")

        def progress(done: int, total: int) -> None:
            if done == total or done % (1 << 20) == 0:
                _err(f"  verified {done}/{total} entries")

        report = log.verify(verifier, progress=progress)
        witnessed = None
        if args.require_witness:
            witness = _witness_verifier(args, settings)
            witnessed = log.check_witnessed(witness, max_lag_entries=args.max_lag_entries,
                                            max_lag_seconds=args.max_lag_seconds)
    print(f"OK: {report.size} entries, {report.checkpoints} checkpoints verified; root {report.root.hex()}")
    if witnessed is not None:
        if witnessed.required_size is None:
            print("OK: no checkpoint is older than the allowed lag yet")
        else:
            print(f"OK: checkpoint {witnessed.required_size} is witnessed (cosigned at size {witnessed.cosigned_size}, "
                  f"{datetime.fromtimestamp(witnessed.cosigned_at or 0, UTC).isoformat()})")
    return 0


def _witness_verifier(args: argparse.Namespace, settings: Settings) -> Any:
    from xborder_gateway.audit._keys import counterpart_witness_path, load_counterpart_witness
    from xborder_gateway.audit.cosignature import CosignatureVerifier

    if args.witness_key:
        path = Path(args.witness_key)
        text = path.read_text(encoding="utf-8").strip() if path.is_file() else args.witness_key
        return CosignatureVerifier.parse(text)
    witness = load_counterpart_witness(settings, args.authority.upper())
    if witness is None:
        raise ConfigError("no witness key to check cosignatures with", code="AUDIT_NO_WITNESS_KEY",
                          hint=f"pass --witness-key or put the counterpart witness's key in "
                          f"{counterpart_witness_path(settings, args.authority.upper())}")
    return witness


def _rotate_key(args: argparse.Namespace, settings: Settings) -> int:
    with _open(args, settings, read_only=False) as log:
        old = log.verifier
        signed = log.rotate_key()
    _err(f"retired {old}; the announcement is the checkpoint at size {signed.checkpoint.size} "
         "(signed by both keys; publish it to the witness and the new key to auditors)")
    print(log.verifier)
    return 0


def _bundle(args: argparse.Namespace, settings: Settings) -> int:
    with _open(args, settings, read_only=False) as log:
        bundle = log.bundle(args.index)
    text = json.dumps(bundle, indent=1) + "\n"
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        _err(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _verify_bundle(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.audit import verify_bundle
    from xborder_gateway.audit.bundle import MAX_BUNDLE_BYTES

    path = Path(args.file)
    if not path.is_file():
        raise ConfigError(f"no such file {path}", code="BUNDLE_FILE")
    data = path.read_bytes()[: MAX_BUNDLE_BYTES + 1]
    verifier = _verifier(args.key)
    result = verify_bundle(data, str(verifier) if verifier else None, args.witness_key and str(
        _witness_verifier(args, settings)))
    e = result.event
    print(f"OK: entry {result.index} ({e.event_type.value} {e.message_id or '-'} {e.business_key or '-'} "
          f"at {e.time.isoformat()}) is in {result.checkpoint.origin} at tree size {result.checkpoint.size}")
    if result.cosigned_at is not None:
        print(f"OK: the checkpoint is cosigned by the witness at {datetime.fromtimestamp(result.cosigned_at, UTC)}")
    if not result.key_trusted:
        _err(f"note: checked with the key inside the bundle ({result.verifier_key}); "
             "compare it with the published key or pass --key")
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.audit.http import AuditApi, ServerLimits, TokenStore, make_server

    tokens = TokenStore(_tokens_path(settings))
    if args.add_token:
        return _print_new_token(tokens, args.add_token, args.expires_days, args.no_expiry)
    if not any(r.state(tokens.clock()) == "active" for r in tokens.records()):
        raise ConfigError("no live API tokens exist", code="AUDIT_NO_TOKENS",
                          hint="create one first: xborder audit token create NAME")
    lag = {k: v for k, v in (("audit_console_max_lag_entries", args.max_lag_entries),
                             ("audit_console_max_lag_seconds", args.max_lag_seconds)) if v is not None}
    if lag:  # the console's red limits for both logs' checkpoint status (/v1/status)
        settings = settings.model_copy(update=lag)
    log = _open(args, settings)
    port = settings.audit_api_port if args.port is None else args.port
    limits = ServerLimits(max_connections=args.max_connections, request_timeout_s=args.request_timeout)
    server = make_server(AuditApi(log, tokens, settings), args.host or settings.audit_api_host, port, limits)
    host, bound = server.server_address[:2]
    _err(f"audit API for {log.authority} on http://{host!s}:{bound}/ (OpenAPI: /openapi.json); Ctrl-C stops")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        log.close()
    return 0


def _tokens_path(settings: Settings) -> Path:
    return settings.home / "audit" / "api-tokens.json"


def _print_new_token(tokens: Any, name: str, expires_days: float | None, no_expiry: bool,
                     role: str = "auditor") -> int:
    days = None if no_expiry else (90.0 if expires_days is None else expires_days)
    token = tokens.add(name, role, expires_days=days)
    until = "never expires" if days is None else f"expires in {days:g} days"
    _err(f"new auditor token for {name}, {until} (shown once; stored hashed in {tokens.path}):")
    print(token)
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.audit.http import TokenStore

    tokens = TokenStore(_tokens_path(settings))
    if args.auth_action == "create":
        return _print_new_token(tokens, args.name, args.expires_days, args.no_expiry, args.role)
    if args.auth_action == "revoke":
        count = tokens.revoke(args.name)
        if not count:
            raise ConfigError(f"no live token named {args.name!r}", code="AUDIT_NO_SUCH_TOKEN",
                              hint="see `xborder audit token list`")
        _err(f"revoked {count} token(s) named {args.name}")
        return 0
    now = tokens.clock()

    def when(value: float | None) -> str:
        return "-" if value is None else datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")

    print("name\trole\tstate\tcreated\texpires\tsha256")
    for r in tokens.records():
        print(f"{r.name}\t{r.role}\t{r.state(now)}\t{when(r.created)}\t{when(r.expires)}\t{r.sha256[:16]}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:  # noqa: PLR0915 - one verb per block
    parser = add_command(
        sub, "audit",
        help="search and prove the tamper-evident exchange log",
        description="The tamper-evident exchange log of one authority (VN or CN): search it, prove that an entry "
        "is in it (RFC 9162 inclusion proofs) and that it only grew (consistency proofs), show its signed "
        "checkpoints (C2SP), verify it end to end, and serve it read-only over HTTP. Format: docs/audit.md.",
        epilog=EXAMPLES,
    )
    verbs = parser.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        p = add_command(verbs, name, help=help_text, epilog=EXAMPLES)
        p.add_argument("--authority", type=str.upper, choices=["VN", "CN"], default="VN",
                       help="whose log (default VN)")
        return p

    p = verb("search", "find entries by message id, declaration, type and time")
    p.add_argument("--message-id", help="exact message id")
    p.add_argument("--declaration", help="exact declaration number")
    from xborder_gateway.audit.events import EventType

    p.add_argument("--type", choices=[t.value for t in EventType], help="event type")
    p.add_argument("--since", type=_time, help="from this time (ISO 8601, inclusive; UTC if no zone)")
    p.add_argument("--until", type=_time, help="before this time (exclusive)")
    p.add_argument("--after", type=_index, help="page: only entries after this index")
    p.add_argument("--limit", type=_limit, default=100, help="at most this many (1..1000, default 100)")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.set_defaults(func=_search)

    p = verb("show", "one entry as JSON, with its leaf hash")
    p.add_argument("index", type=_index, metavar="ID")
    p.set_defaults(func=_show)

    p = verb("export", "every entry as JSON lines: index, leaf_hash, entry")
    p.add_argument("--jsonl", action="store_true", required=True, help="JSON lines (the only format)")
    p.add_argument("--from", dest="start", type=_index, default=0, help="first index (default 0)")
    p.add_argument("--to", type=_index, help="stop before this index")
    p.add_argument("--out", help="file (default stdout)")
    p.set_defaults(func=_export)

    p = verb("checkpoint", "print the latest signed checkpoint note verbatim")
    p.add_argument("--issue", action="store_true", help="sign a checkpoint of the current size first")
    p.add_argument("--cosigned", action="store_true",
                   help="append the witness cosignatures stored beside it (C2SP cosignature/v1)")
    p.set_defaults(func=_checkpoint)

    verb("key", "print the checkpoint verifier key (<name>+<hash>+<key>)").set_defaults(func=_key)

    p = verb("prove", "inclusion proof of an entry")
    p.add_argument("index", type=_index, metavar="INDEX")
    p.add_argument("--size", type=_index, help="tree size (default: current)")
    p.add_argument("--json", action="store_true", help="JSON: leaf_index, tree_size, leaf_hash, hashes")
    p.set_defaults(func=_prove)

    p = verb("consistency", "consistency proof between two tree sizes")
    p.add_argument("old", type=_index, metavar="OLD")
    p.add_argument("new", type=_index, metavar="NEW")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=_consistency)

    p = verb("verify", "recompute the whole tree and check every checkpoint; exit 1 naming the first bad entry")
    p.add_argument("--key", help="trusted verifier key (text or file); default: the key in the home")
    p.add_argument("--require-witness", action="store_true",
                   help="also fail unless the latest checkpoint older than the lag is cosigned by the witness")
    p.add_argument("--max-lag-entries", type=_index, help="with --require-witness: entries a checkpoint may be "
                   "behind the log and still lack a cosignature")
    p.add_argument("--max-lag-seconds", type=_seconds, help="with --require-witness: seconds a checkpoint may "
                   "lack a cosignature")
    p.add_argument("--witness-key", help="the counterpart witness's cosignature/v1 key (text or file); "
                   "default <home>/audit/<authority>.witness.vkey")
    p.set_defaults(func=_verify)

    p = verb("rotate-key", "replace the checkpoint key: a checkpoint signed by both keys announces the new one")
    p.set_defaults(func=_rotate_key)

    p = verb("bundle", "write an offline proof bundle for one entry")
    p.add_argument("index", type=_index, metavar="ID")
    p.add_argument("--out", help="file (default stdout)")
    p.set_defaults(func=_bundle)

    p = verb("verify-bundle", "verify an offline proof bundle (no database needed)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--key", help="trusted verifier key (text or file); default: the key inside the bundle")
    p.add_argument("--witness-key", help="also require a cosignature by this witness key (text or file)")
    p.set_defaults(func=_verify_bundle)

    p = verb("serve", "read-only HTTP API with bearer-token (auditor role) auth")
    p.add_argument("--host", help="bind address (env XBG_AUDIT_API_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (env XBG_AUDIT_API_PORT, default 8441; 0 = any)")
    p.add_argument("--add-token", metavar="NAME", help="create an auditor token, print it once, and exit "
                   "(same as `audit token create NAME`)")
    p.add_argument("--expires-days", type=_days, help="with --add-token: days until the token expires (default 90)")
    p.add_argument("--no-expiry", action="store_true", help="with --add-token: a token that never expires")
    p.add_argument("--max-connections", type=int, default=512,
                   help="open client sockets at most (idle ones included; default 512)")
    p.add_argument("--request-timeout", type=float, default=10.0,
                   help="seconds a client has to send its whole request head (default 10)")
    p.add_argument("--max-lag-entries", type=_index, help="the console shows a log red when more entries than this "
                   "are not covered by a cosigned checkpoint (env XBG_AUDIT_CONSOLE_MAX_LAG_ENTRIES, default 1000)")
    p.add_argument("--max-lag-seconds", type=_seconds, help="the console shows a log red when its oldest entry not "
                   "covered by a cosigned checkpoint waited longer "
                   "(env XBG_AUDIT_CONSOLE_MAX_LAG_SECONDS, default 900)")
    p.set_defaults(func=_serve)

    p = verb("verifier-page", "write the standalone proof verifier page (one HTML file to keep offline)")
    p.add_argument("--out", required=True, type=Path, metavar="FILE",
                   help="where to write it (e.g. xborder-verifier.html); open it from disk in a browser")
    p.set_defaults(func=_verifier_page)

    p = verb("trace", "every event of both logs for one declaration, in time order, each verified")
    p.add_argument("declaration", metavar="DECLARATION_NUMBER")
    p.add_argument("--json", action="store_true", help="JSON: events (log, index, verified, entry) and raw parts")
    p.set_defaults(func=_trace)

    p = add_command(verbs, "token", help="create, list and revoke auditor tokens of the HTTP API",
                    epilog=AUTH_EXAMPLES)
    tverbs = p.add_subparsers(dest="auth_action", metavar="ACTION", required=True)
    t = add_command(tverbs, "create", help="create an auditor token and print it once", epilog=AUTH_EXAMPLES)
    t.add_argument("name", metavar="NAME", help="who the token is for")
    t.add_argument("--expires-days", type=_days, help="days until it expires (default 90)")
    t.add_argument("--no-expiry", action="store_true", help="a token that never expires (say so explicitly)")
    t.add_argument("--role", choices=["auditor", "counterpart"], default="auditor",
                   help="auditor (the whole read-only API, default) or counterpart (only the counterpart "
                   "authority's trace requests: /v1/trace/{declaration}?scope=local)")
    t.set_defaults(func=_token)
    t = add_command(tverbs, "list", help="list tokens: name, role, state, created, expires", epilog=AUTH_EXAMPLES)
    t.set_defaults(func=_token)
    t = add_command(tverbs, "revoke", help="revoke every live token of NAME", epilog=AUTH_EXAMPLES)
    t.add_argument("name", metavar="NAME")
    t.set_defaults(func=_token)


def _verifier_page(args: argparse.Namespace, settings: Settings) -> int:
    """The console's verifier, inlined into one self-contained page (no server, no network)."""
    from xborder_gateway.audit.console import standalone_verifier

    del settings
    page, _ = standalone_verifier()
    try:
        args.out.write_bytes(page)
    except OSError as exc:
        raise ConfigError(f"cannot write {args.out}: {exc.strerror}", code="AUDIT_OUT",
                          hint="choose a writable --out path") from exc
    _err(f"wrote {args.out} ({len(page):,} bytes): open it in a browser, paste the pinned verifier keys and "
         "a bundle from `xborder audit bundle N`")
    return 0


def _trace(args: argparse.Namespace, settings: Settings) -> int:
    """``audit trace DECL``: both logs' events for DECL, each verified against this home's pinned keys."""
    from xborder_gateway.audit.http import _DECLARATION
    from xborder_gateway.audit.trace import build_trace

    if not _DECLARATION.fullmatch(args.declaration):
        raise _UsageError(f"{args.declaration!r} is not a declaration number", code="TRACE_USAGE")
    log = _open(args, settings)
    try:
        report = build_trace(settings, args.authority.upper(), args.declaration, log=log)
    finally:
        log.close()
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        print("time\tlog\tindex\tevent_type\tprocess\tmessage_id\toutcome\tverification")
        for e in report.events:
            ev = e.event
            check = (("OK cosigned" if e.cosigned else "OK signed, not yet witnessed") if e.verified
                     else f"FAILED {e.problem}")
            if ev is None:
                print(f"-\t{e.log}\t{e.index}\t-\t-\t-\t-\t{check}")
                continue
            outcome = ev.outcome + (f" {ev.reason_code}" if ev.reason_code else "")
            print(f"{ev.time.isoformat()}\t{e.log}\t{e.index}\t{ev.event_type.value}\t{ev.process}\t"
                  f"{ev.message_id or '-'}\t{outcome}\t{check}")
    if report.counterpart_source is None and report.counterpart_problem is None:
        _err("note: no counterpart log configured (audit_counterpart_url): this log's events only")
    if report.counterpart_problem is not None:
        _err(f"error: counterpart log: {report.counterpart_problem}")
    failed = [e for e in report.events if not e.verified]
    if failed:
        _err(f"error: {len(failed)} of {len(report.events)} events failed verification: "
             + ", ".join(f"{e.log}#{e.index} {e.problem}" for e in failed[:10]))
    if not report.events:
        _err(f"error: no event about declaration {args.declaration} in either log")
        return 1
    return 0 if report.ok else 1
