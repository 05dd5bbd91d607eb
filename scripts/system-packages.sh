#!/usr/bin/env bash
# The Debian packages the test suite needs, installed in ONE apt-get run (idempotent; a no-op when all are
# there). CI starts it in the background while pip and Maven fetch (.ci/run), and scripts/test.sh runs it
# again (instantly) before the tests, so a developer's `make test` gets them too.
#
#   scripts/system-packages.sh            install what is missing (needs root), then print what is there
#
#   postgresql         the audit log's PostgreSQL backend tests (scripts/postgres.sh)
#   chromium           the auditor console's browser tests (Playwright drives Debian's Chromium)
#   fonts-wqy-microhei Chinese text in the console's screenshots
#   softhsm2           PKCS#11 signing-key tests (a software HSM)
set -euo pipefail
PACKAGES=(postgresql chromium fonts-wqy-microhei softhsm2)
missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "system-packages: all present (${PACKAGES[*]})" >&2
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "system-packages: missing ${missing[*]} and not root: install them with apt-get (their tests will skip)" >&2
  exit 0
fi
echo "system-packages: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# wait for another apt/dpkg run instead of failing on its lock
APT=(apt-get -o DPkg::Lock::Timeout=600 -qq)
"${APT[@]}" update >&2
"${APT[@]}" install -y --no-install-recommends "${missing[@]}" >&2
echo "system-packages: installed ${missing[*]}" >&2
