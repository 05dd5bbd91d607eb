#!/usr/bin/env bash
# Create .venv and install the project with its dev extras; a no-op when pyproject.toml has not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "xborder-gateway needs Python >= 3.11 (found %s)" % sys.version.split()[0])'
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ -f "$stamp" ]; then exit 0; fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
echo "installing xborder-gateway and its dev tools into .venv ..." >&2
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
rm -f .venv/.installed-*
touch "$stamp"
