#!/usr/bin/env bash
# Validate AsyncAPI documents (default docs/asyncapi.yaml) with @asyncapi/parser, pinned in
# contract/validate/package.json. npm installs into contract/validate/node_modules (gitignored) once;
# its download cache lives in .cache/npm under the repository (gitignored).
# Usage: scripts/validate-asyncapi.sh [FILE...]  one valid/INVALID line per file on stdout;
#        exit 0 all valid, 1 one is invalid, 2 usage / missing node or npm
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ "$#" -gt 0 ] || set -- "$root/docs/asyncapi.yaml"
dir="$root/contract/validate"
command -v node >/dev/null && command -v npm >/dev/null || { echo "validate-asyncapi: node and npm are needed (Node >= 20)" >&2; exit 2; }
for file in "$@"; do [ -f "$file" ] || { echo "validate-asyncapi: no such file: $file" >&2; exit 2; }; done
if [ ! -d "$dir/node_modules/@asyncapi/parser" ] || [ "$dir/package.json" -nt "$dir/node_modules/.installed" ]; then
  if [ -f "$dir/package-lock.json" ]; then cmd=ci; else cmd=install; fi
  (cd "$dir" && npm "$cmd" --no-audit --no-fund --silent --cache "$root/.cache/npm" >&2)
  touch "$dir/node_modules/.installed"
fi
exec node "$dir/validate.mjs" "$@"
