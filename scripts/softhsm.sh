#!/usr/bin/env bash
# SoftHSM2 (the PKCS#11 token the HSM signing tests use): installed from Debian packages when missing.
# Idempotent and quick when present; scripts/test.sh and .ci/run start it early in the background.
# Without root (a developer machine) it only says what is missing: the HSM tests then skip, saying why
# (and fail under CI=true, where this script runs as root and installs the package).
set -euo pipefail
have() {
  command -v softhsm2-util >/dev/null 2>&1 && {
    [ -e /usr/lib/softhsm/libsofthsm2.so ] || [ -e /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so ]
  }
}
if have; then
  echo "softhsm2: $(softhsm2-util --version)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "softhsm2 is not installed and this user cannot install it: apt-get install softhsm2 (HSM tests will skip)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends softhsm2 >/dev/null
have
echo "softhsm2: $(softhsm2-util --version) installed"
