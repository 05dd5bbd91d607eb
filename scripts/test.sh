#!/usr/bin/env bash
# The whole test suite on real services it starts itself: a local Apache Kafka broker (the project's own
# launcher) and, where scripts/postgres.sh can provide one, a PostgreSQL server. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# SoftHSM2 for the HSM signing tests: installed (if missing) in the background while the rest starts
softhsm_log=$(mktemp /tmp/xbg-softhsm.XXXXXX)
scripts/softhsm.sh >"$softhsm_log" 2>&1 &
softhsm_pid=$!
scripts/bootstrap.sh
XB=.venv/bin/xborder
TEST_HOME=${XBG_TEST_HOME:-$PWD/.xborder-test}
KPORT=${XBG_TEST_KAFKA_PORT:-29092}
CPORT=${XBG_TEST_KAFKA_CONTROLLER_PORT:-29093}
mkdir -p "$TEST_HOME"
pg_started=""
# The server runs as the `postgres` user, which must reach its directory: keep it under /tmp, not the clone.
PG_DIR=""
cleanup() {
  "$XB" --home "$TEST_HOME" kafka stop --port "$KPORT" --controller-port "$CPORT" >/dev/null 2>&1 || true
  if [ -n "$pg_started" ]; then scripts/postgres.sh stop "$PG_DIR" >/dev/null 2>&1 || true; fi
  if [ -n "$PG_DIR" ]; then rm -rf "$PG_DIR"; fi
}
trap cleanup EXIT

# System packages: wait for CI's background install if one runs, then make sure (a no-op when present).
if [ -f .ci-logs/system-packages.pid ]; then
  pid=$(cat .ci-logs/system-packages.pid)
  while kill -0 "$pid" 2>/dev/null; do sleep 1; done
  cat .ci-logs/system-packages.log >&2 || true
fi
scripts/system-packages.sh
"$XB" --home "$TEST_HOME" kafka start --port "$KPORT" --controller-port "$CPORT" >/dev/null
export XBG_KAFKA_BOOTSTRAP="127.0.0.1:$KPORT"
export XBG_KAFKA_LOG="$TEST_HOME/kafka/logs/server.log"
if [ -z "${XBG_POSTGRES_URL:-}" ] && [ -x scripts/postgres.sh ]; then
  PGPORT=${XBG_TEST_POSTGRES_PORT:-$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
  PG_DIR=$(mktemp -d /tmp/xbg-test-pg.XXXXXX)
  if url=$(scripts/postgres.sh start "$PG_DIR" "$PGPORT" | tail -n 1) && [ -n "$url" ]; then
    export XBG_POSTGRES_URL="$url"
    pg_started=1
  else
    echo "warning: PostgreSQL could not be started; its tests will be skipped (and fail under CI=true)" >&2
  fi
fi
echo "kafka: $XBG_KAFKA_BOOTSTRAP   postgres: ${XBG_POSTGRES_URL:-none}" >&2
wait "$softhsm_pid" || echo "warning: scripts/softhsm.sh failed: $(tail -n 3 "$softhsm_log")" >&2
cat "$softhsm_log" >&2
rm -f "$softhsm_log"
# pytest exits 5 when it collected no test: with `set -e` that fails this script, as it should.
.venv/bin/pytest "$@"
