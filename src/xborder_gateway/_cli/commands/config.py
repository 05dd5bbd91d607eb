"""``xborder config show``: the effective settings, where each came from, and how to set it."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from xborder_gateway._cli import add_command
from xborder_gateway.config import Settings

EXAMPLES = """\
examples:
  xborder config show                       every setting, its value and where it came from
  xborder config show --json                the same as one JSON object (secrets masked)
  XBG_KAFKA_PORT=29092 xborder config show  see an environment override take effect
  xborder config markdown                   the settings table of docs/configuration.md
"""

SECRET_FIELDS = frozenset({"key_passphrase", "hsm_pin"})


def env_name(field: str) -> str:
    return f"XBG_{field.upper()}"


def _shown(name: str, value: Any) -> Any:
    if name in SECRET_FIELDS and value is not None:
        return "***"
    if isinstance(value, Path):
        return str(value)
    return value


def _source(name: str, settings: Settings) -> str:
    if name in os.environ or env_name(name) in os.environ:
        return "env"
    if name in settings.model_fields_set:
        return "file/flag"
    return "default"


def settings_markdown() -> str:
    """One table row per setting: the generated part of docs/configuration.md."""
    rows = ["| setting | environment | default | meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = "(computed)" if field.default_factory is not None else repr(field.default)
        if field.default is None and field.default_factory is None:
            default = "unset"
        rows.append(f"| `{name}` | `{env_name(name)}` | `{default}` | {field.description or ''} |")
    return "\n".join(rows) + "\n"


def _show(args: argparse.Namespace, settings: Settings) -> int:
    values = {name: _shown(name, getattr(settings, name)) for name in Settings.model_fields}
    if args.json:
        print(json.dumps(values, ensure_ascii=False, sort_keys=True))
        return 0
    width = max(len(n) for n in values)
    for name, value in values.items():
        print(f"{name:<{width}}  {value!s:<40}  [{_source(name, settings)}; {env_name(name)}]")
    return 0


def _markdown(args: argparse.Namespace, settings: Settings) -> int:
    print(settings_markdown(), end="")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        sub, "config", help="show the effective configuration",
        description="Show the effective settings. Precedence: flags > XBG_* environment > TOML file "
        "(--config, $XBG_CONFIG or <home>/config.toml) > defaults.",
        epilog=EXAMPLES,
    )
    verbs = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    p = add_command(verbs, "show", help="every setting with its value and source", epilog=EXAMPLES)
    p.add_argument("--json", action="store_true", help="one JSON object (secrets masked)")
    p.set_defaults(func=_show)
    add_command(verbs, "markdown", help="print the settings table for docs/configuration.md",
                epilog=EXAMPLES).set_defaults(func=_markdown)
