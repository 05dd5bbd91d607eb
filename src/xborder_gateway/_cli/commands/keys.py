"""``xborder keys init|export|import|rotate|list``: an authority's keys and the counterpart's trust bundle."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xborder_gateway._cli import add_command
from xborder_gateway.config import Settings
from xborder_gateway.errors import ConfigError

if TYPE_CHECKING:
    from cryptography import x509

    from xborder_gateway.envelope import AuthorityCertificate
    from xborder_gateway.signing import HsmConfig

AUTHORITIES = ("VN", "CN")

EXAMPLES = """\
examples:
  export XBG_KEY_PASSPHRASE='…'            (or pass --passphrase-file FILE to each command)
  xborder keys init --authority VN          Ed25519 + X25519 keys and a self-signed certificate binding both
  xborder keys init --authority CN
  xborder keys export --authority VN --out vn.bundle.pem
  xborder keys import vn.bundle.pem --authority CN --expect-fingerprint 3f2a…   CN trusts VN (scripts)
  xborder keys import vn.bundle.pem         at a terminal: shows the fingerprints and asks
  xborder keys rotate --authority VN        a new generation; older ones still open until they expire
  xborder keys init --authority VN --hsm --hsm-token vn-customs --hsm-pin-file pin.txt   signing key in a PKCS#11 token
  xborder keys list --authority VN          own and trusted keys, current one marked, expiry warnings
  xborder keys list                         --authority may be left out when the home holds one authority's keys
"""


def _describe(cert: AuthorityCertificate) -> str:
    return (f"{cert.authority}  signing {cert.signing_key_id.hex()[:16]}…  "
            f"encryption {cert.encryption_key_id.hex()[:16]}…"
            f"  valid {cert.not_before:%Y-%m-%d %H:%M:%SZ} .. {cert.not_after:%Y-%m-%d %H:%M:%SZ}\n"
            f"    certificate SHA-256 fingerprint {cert.fingerprint.hex()}")


def _describe_link_ca(ca: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import hashes

    return (f"{ca.subject.rfc4514_string()}  (link CA, ECDSA P-256)  valid {ca.not_valid_before_utc:%Y-%m-%d} .. "
            f"{ca.not_valid_after_utc:%Y-%m-%d}\n"
            f"    certificate SHA-256 fingerprint {ca.fingerprint(hashes.SHA256()).hex()}")


_MAX_BUNDLE_BYTES = 1 << 20  # a bundle is one ~900-byte PEM certificate per key generation


class _UsageError(ConfigError):
    exit_code = 2


def _own_authorities(settings: Settings) -> list[str]:
    """The authorities that have a key generation in this home."""
    return [a for a in AUTHORITIES if any((settings.keys_dir(a) / "own").glob("*/authority.crt.pem"))]


def _authority(args: argparse.Namespace, settings: Settings, *, bundle_authorities: set[str] | None = None) -> str:
    """``--authority`` if given; else the one authority this home has keys for (for ``import``: the authority
    that is not the bundle's). Ambiguity is a usage error (exit 2), so the operator names it explicitly."""
    if args.authority:
        return str(args.authority)
    present = _own_authorities(settings)
    if bundle_authorities:
        rest = [a for a in present if a not in bundle_authorities]
        if len(rest) == 1:
            return rest[0]
        if present and not rest:
            return present[0]  # the home's own bundle: import_bundle refuses it (KEYS_BUNDLE_SELF)
        others = [a for a in AUTHORITIES if a not in bundle_authorities]
        if not present and len(others) == 1:
            return others[0]  # no own keys yet: trusting the counterpart before `keys init` is fine
    if len(present) == 1:
        return present[0]
    if not present:
        raise ConfigError(f"no authority keys under {settings.home / 'keys'}", code="KEYS_MISSING",
                          hint="run `xborder keys init --authority VN|CN` first, or pass --authority")
    raise _UsageError(f"this home holds the keys of {' and '.join(present)}", code="KEYS_AUTHORITY_AMBIGUOUS",
                      hint="pass --authority VN or --authority CN")


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise _UsageError(f"cannot write {path}: {exc.strerror or exc}", code="FILE_UNWRITABLE",
                          hint="name a writable path for --out") from exc


def _passphrase(args: argparse.Namespace, settings: Settings) -> bytes:
    from xborder_gateway.envelope import resolve_passphrase

    return resolve_passphrase(settings, args.passphrase_file)  # --insecure-no-passphrase is in settings


def _hsm(args: argparse.Namespace, settings: Settings) -> tuple[Settings, HsmConfig | None]:
    """``--hsm``: the token the signing key goes to (module, token, PIN from flags, else XBG_HSM_*)."""
    from xborder_gateway.signing import HsmConfig

    if not args.hsm:
        return settings, None
    cfg = HsmConfig.from_settings(settings, module=args.hsm_module, token=args.hsm_token, pin_file=args.hsm_pin_file)
    # the audit checkpoint key of this process follows the envelope signing key into the token
    return settings.model_copy(update={"hsm_module": cfg.module, "hsm_token": cfg.token,
                                       "hsm_pin": cfg.pin}), cfg


def _init(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.envelope import init_authority

    settings, hsm = _hsm(args, settings)
    cert = init_authority(settings, args.authority, _passphrase(args, settings),
                          validity=timedelta(days=args.validity_days), hsm=hsm, hsm_label=args.hsm_key_label)
    print(_describe(cert))
    print(f"keys written under {settings.keys_dir(args.authority)}", file=sys.stderr)
    if hsm is not None:
        print(f"the Ed25519 signing key is in token {hsm.token!r} ({hsm.module}), non-extractable; run the "
              f"connectors with XBG_HSM_TOKEN={hsm.token} and XBG_HSM_PIN_FILE (or XBG_HSM_PIN)", file=sys.stderr)
    return 0


def _rotate(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.envelope import rotate

    args.authority = _authority(args, settings)
    settings, hsm = _hsm(args, settings)
    cert = rotate(settings, args.authority, _passphrase(args, settings), validity=timedelta(days=args.validity_days),
                  hsm=hsm, hsm_label=args.hsm_key_label)
    print(_describe(cert))
    print("new generation created; export the bundle again and have the counterpart import it",
          file=sys.stderr)
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.envelope import AuthorityCertificate, export_bundle, split_bundle

    bundle = export_bundle(settings, _authority(args, settings))
    if args.out:
        _write(args.out, bundle)
        print(f"bundle written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(bundle.decode("ascii"))
    authority_certs, link_cas = split_bundle(bundle)
    for cert in authority_certs:
        print(_describe(AuthorityCertificate.from_x509(cert)), file=sys.stderr)
    for ca in link_cas:
        print(_describe_link_ca(ca), file=sys.stderr)
    print("give the counterpart the fingerprints over a second channel", file=sys.stderr)
    return 0


def _confirm(certs: list[AuthorityCertificate], authority: str) -> bool:
    """Interactive ceremony: show every fingerprint and ask; only an explicit yes imports."""
    print(f"about to make {authority} trust {len(certs)} certificate(s):", file=sys.stderr)
    for cert in certs:
        print("  " + _describe(cert).replace("\n", "\n  "), file=sys.stderr)
    print("compare each fingerprint with the one the counterpart gave you over a second channel "
          "(phone, signed letter).", file=sys.stderr)
    try:
        answer = input("do the fingerprints match? type 'yes' to trust them: ")
    except EOFError:
        return False
    return answer.strip().lower() == "yes"


def _import(args: argparse.Namespace, settings: Settings) -> int:
    from cryptography.hazmat.primitives import hashes

    from xborder_gateway.envelope import import_bundle, parse_bundle, split_bundle

    try:
        with args.bundle.open("rb") as f:
            bundle = f.read(_MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {args.bundle}: {exc}", code="KEYS_BUNDLE_INVALID",
                          hint="pass the file written by `xborder keys export`") from exc
    if len(bundle) > _MAX_BUNDLE_BYTES:
        raise ConfigError(f"{args.bundle} is larger than {_MAX_BUNDLE_BYTES} bytes; a trust bundle is a few KiB",
                          code="KEYS_BUNDLE_INVALID", hint="pass the file written by `xborder keys export`")
    certs = parse_bundle(bundle)  # names what is wrong with the bundle (KEYS_BUNDLE_INVALID, KEYS_CERT_*)
    link_cas = split_bundle(bundle)[1]
    if not args.authority:
        args.authority = _authority(args, settings, bundle_authorities={c.authority for c in certs})
    # issue 9 item 4: importing a counterpart's key is a ceremony. Scripts state the fingerprints they expect;
    # a person at a terminal is shown them and asked; anything else is refused before anything is trusted.
    # The link CA (docs/link.md) goes through the same ceremony as the authority certificates.
    if args.expect_fingerprint:
        expected = {f.lower().replace(":", "") for f in args.expect_fingerprint}
        fingerprints = [c.fingerprint.hex() for c in certs] + [c.fingerprint(hashes.SHA256()).hex() for c in link_cas]
        unexpected = [f for f in fingerprints if f not in expected]
        if unexpected:
            raise ConfigError(
                f"{len(unexpected)} certificate(s) in the bundle have fingerprints you did not expect: "
                + ", ".join(unexpected),
                code="KEYS_FINGERPRINT_MISMATCH",
                hint="do not import: confirm the fingerprints with the counterpart over a second channel",
            )
    elif sys.stdin.isatty():
        for ca in link_cas:  # shown with the authority certificates: the same ceremony
            print("  " + _describe_link_ca(ca).replace("\n", "\n  "), file=sys.stderr)
        if not _confirm(certs, args.authority):
            print("not imported", file=sys.stderr)
            return 1
    else:
        raise _UsageError(
            "refusing to import without checking fingerprints: stdin is not a terminal and no "
            "--expect-fingerprint was given", code="KEYS_FINGERPRINT_REQUIRED",
            hint="pass --expect-fingerprint SHA256HEX once per certificate (the fingerprints the counterpart "
            "gave you over a second channel; `xborder keys export` prints them), or run it at a terminal to be asked")
    for cert in import_bundle(settings, args.authority, bundle, allow_other_authority=args.allow_other_authority):
        print(_describe(cert))
    for ca in link_cas:
        print(_describe_link_ca(ca))
    print(f"trusted by {args.authority} (under {settings.keys_dir(args.authority) / 'trust'})", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from xborder_gateway.envelope import list_keys

    now = datetime.now(UTC)
    args.authority = _authority(args, settings)
    rows = list_keys(settings, args.authority, now=now, warn_within=timedelta(days=args.warn_days))
    if args.json:
        out: list[dict[str, Any]] = [
            {"kind": r.kind, "authority": r.authority, "signing_key_id": r.signing_key_id.hex(),
             "encryption_key_id": r.encryption_key_id.hex(), "not_before": r.not_before.isoformat(),
             "not_after": r.not_after.isoformat(), "fingerprint": r.fingerprint.hex(), "status": r.status,
             "current": r.current, "expires_soon": r.expires_soon}
            for r in rows
        ]
        print(json.dumps(out, indent=2))
    else:
        print(f"{'kind':8} {'auth':4} {'signing key id':18} {'status':13} {'not after':20} current")
        for r in rows:
            print(f"{r.kind:8} {r.authority:4} {r.signing_key_id.hex()[:16]:18} {r.status:13} "
                  f"{r.not_after:%Y-%m-%d %H:%M:%SZ} {'*' if r.current else ''}")
    if not rows:
        print(f"no keys for {args.authority}: run `xborder keys init --authority {args.authority}`", file=sys.stderr)
    for kind in ("own", "trusted"):
        for auth in sorted({r.authority for r in rows if r.kind == kind}):
            group = [r for r in rows if r.kind == kind and r.authority == auth]
            current = next((r for r in group if r.current), None)
            newer_ok = current is not None and any(
                r.status == "not yet valid" or (r.status == "valid" and r.not_after > current.not_after + timedelta(
                    days=args.warn_days)) for r in group if r is not current)
            if current is None:
                print(f"warning: {kind} keys of {auth}: none is valid now", file=sys.stderr)
            elif current.expires_soon and not newer_ok:
                left = current.not_after - now
                what = (f"run `xborder keys rotate --authority {auth}`" if kind == "own"
                        else f"ask {auth} for a fresh bundle")
                print(f"warning: {kind} key of {auth} expires in {left.days} days ({current.not_after:%Y-%m-%d}); "
                      f"{what}", file=sys.stderr)
    return 0


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a whole number of days: {text!r}") from exc
    if not 1 <= value <= 36_500:  # a generation valid for no time at all would be stored and never usable
        raise argparse.ArgumentTypeError("must be 1..36500")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = add_command(sub, "keys", help="authority keys, certificates and trust bundles",
                       description="Manage this authority's Ed25519/X25519 keys (encrypted at rest) and the "
                       "counterpart's trusted certificates. See docs/envelope.md §5.", epilog=EXAMPLES)
    verbs = keys.add_subparsers(dest="keys_command", metavar="VERB", required=True)

    def verb(name: str, help: str, *, default_help: str | None = None) -> argparse.ArgumentParser:
        parser = add_command(verbs, name, help=help, epilog=EXAMPLES)
        if default_help is None:
            parser.add_argument("--authority", choices=AUTHORITIES, required=True, help="the local authority")
        else:
            parser.add_argument("--authority", choices=AUTHORITIES, default=None,
                                help=f"the local authority (default: {default_help})")
        return parser

    this_home = "the one whose keys this home holds"

    def passphrase(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--passphrase-file", type=Path, default=None, metavar="FILE",
                            help="file whose first line is the key passphrase (default: $XBG_KEY_PASSPHRASE_FILE, "
                            "else $XBG_KEY_PASSPHRASE)")
        parser.add_argument("--insecure-no-passphrase", action="store_true",
                            help="allow private keys without encryption at rest (never do this in production)")

    def hsm(parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("signing key in a hardware security module (PKCS#11)")
        g.add_argument("--hsm", action="store_true",
                       help="generate the Ed25519 signing key in a PKCS#11 token (non-extractable)")
        g.add_argument("--hsm-module", type=Path, default=None, metavar="SO",
                       help="PKCS#11 module (default: $XBG_HSM_MODULE, else SoftHSM2's)")
        g.add_argument("--hsm-token", default=None, metavar="LABEL", help="token label (default: $XBG_HSM_TOKEN)")
        g.add_argument("--hsm-pin-file", type=Path, default=None, metavar="FILE",
                       help="file whose first line is the user PIN (default: $XBG_HSM_PIN_FILE, else $XBG_HSM_PIN)")
        g.add_argument("--hsm-key-label", default=None, metavar="LABEL",
                       help="label of the new key in the token (default: xbg-<authority>-<UTC stamp>)")

    p = verb("init", "create the authority's first key generation and certificate")
    passphrase(p)
    hsm(p)
    p.add_argument("--validity-days", type=_days, default=365, help="validity of the generation (default 365)")
    p.set_defaults(func=_init)

    p = verb("rotate", "add a new key generation; new messages use it, older ones still open while valid",
             default_help=this_home)
    passphrase(p)
    hsm(p)
    p.add_argument("--validity-days", type=_days, default=365, help="validity of the new generation (default 365)")
    p.set_defaults(func=_rotate)

    p = verb("export", "write the public trust bundle (PEM certificates) for the counterpart",
             default_help=this_home)
    p.add_argument("--out", type=Path, default=None, metavar="BUNDLE", help="output file (default stdout)")
    p.set_defaults(func=_export)

    p = verb("import", "trust the counterpart's bundle",
             default_help="the authority that is not the bundle's")
    p.add_argument("bundle", type=Path, metavar="BUNDLE", help="a file written by `xborder keys export`")
    p.add_argument("--expect-fingerprint", action="append", default=[], metavar="SHA256HEX",
                   help="refuse the bundle unless every certificate has one of these fingerprints (repeatable)")
    p.add_argument("--allow-other-authority", action="store_true",
                   help="also trust an authority other than this one's counterpart (VN<->CN); rarely right")
    p.set_defaults(func=_import)

    p = verb("list", "own and trusted keys with validity; warns about keys about to expire",
             default_help=this_home)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--warn-days", type=int, default=30, help="warn when the current key expires within N days")
    p.set_defaults(func=_list)
