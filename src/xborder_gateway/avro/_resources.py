"""Where the project's data folders (``schemas/``, ``mappings/``) are found.

Order: an explicit environment variable (``XBG_SCHEMAS_DIR`` / ``XBG_MAPPINGS_DIR``); the copy bundled
inside the package (``xborder_gateway/avro/_bundled/<name>``, a symlink to the repository folder in a
checkout, real files in a wheel); the repository folder next to ``src/`` (editable install).
"""

from __future__ import annotations

import os
from pathlib import Path

from xborder_gateway.errors import ConfigError

__all__ = ["data_dir"]

_ENV = {"schemas": "XBG_SCHEMAS_DIR", "mappings": "XBG_MAPPINGS_DIR"}


def data_dir(name: str) -> Path:
    """The folder ``schemas`` or ``mappings``; raises ConfigError if none of the candidates exists."""
    env = os.environ.get(_ENV[name])
    candidates: list[Path] = []
    if env:
        candidates.append(Path(env).expanduser())
    here = Path(__file__).resolve().parent
    candidates.append(here / "_bundled" / name)
    candidates.append(here.parents[2] / name)  # <repo>/src/xborder_gateway/avro -> <repo>
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise ConfigError(
        f"cannot find the {name!r} folder (looked in: {', '.join(str(c) for c in candidates)})",
        code="DATA_DIR_MISSING",
        hint=f"set {_ENV[name]} to the project's {name}/ folder",
    )
