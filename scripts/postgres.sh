#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the audit log's tests and benchmarks.
#
#   scripts/postgres.sh [start] DIR [PORT]
#                                      install (Debian packages, if pg_ctl is missing), initdb DIR, start
#                                      on 127.0.0.1:PORT (default 55432, or $XBG_POSTGRES_PORT), create the
#                                      database "xborder"; the LAST line printed is the URL
#   scripts/postgres.sh stop DIR       stop the cluster in DIR
#   scripts/postgres.sh status DIR     exit 0 if it runs
#
# Idempotent: running it again on a running cluster just prints the URL. The server refuses to run
# as root, so as root the cluster is owned by and run as the `postgres` user.
set -euo pipefail

usage() { sed -n '2,13p' "$0" >&2; exit 2; }
[[ $# -ge 1 ]] || usage

find_bin() {
    local dir
    if command -v pg_ctl >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v pg_ctl)")"; return 0; fi
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "$dir/pg_ctl" ]] && { echo "$dir"; return 0; }
    done
    return 1
}

ensure_installed() {
    if ! BIN=$(find_bin); then
        echo "postgres.sh: installing PostgreSQL from Debian packages" >&2
        if [[ $(id -u) -ne 0 ]]; then echo "postgres.sh: need root to apt-get install postgresql" >&2; exit 1; fi
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
        BIN=$(find_bin) || { echo "postgres.sh: pg_ctl still missing after install" >&2; exit 1; }
    fi
}

# run a command as the cluster's owner
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        # runuser keeps no root privileges; --preserve-environment is not needed
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

cmd=$1
case "$cmd" in
    stop|status)
        [[ $# -eq 2 ]] || usage
        DIR=$(readlink -f "$2")
        ensure_installed
        if [[ ! -f "$DIR/data/PG_VERSION" ]]; then echo "postgres.sh: no cluster in $DIR" >&2; exit 1; fi
        if [[ $cmd == stop ]]; then
            if as_owner "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
                as_owner "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >&2
            else
                echo "postgres.sh: not running" >&2
            fi
        else
            as_owner "$BIN/pg_ctl" -D "$DIR/data" status >&2
        fi
        exit 0
        ;;
    -h|--help) usage ;;
esac

if [[ $cmd == start ]]; then shift; [[ $# -ge 1 ]] || usage; fi
DIR=$1
PORT=${2:-${XBG_POSTGRES_PORT:-55432}}
DB=xborder
ensure_installed
mkdir -p "$DIR"
DIR=$(readlink -f "$DIR")
if [[ $(id -u) -eq 0 ]]; then
    chown postgres: "$DIR"
    OWNER=postgres
    if ! runuser -u postgres -- test -w "$DIR"; then
        echo "postgres.sh: the postgres user cannot reach $DIR (a parent directory is not searchable);" \
             "use a directory under /tmp or /var/tmp" >&2
        exit 1
    fi
else
    OWNER=$(id -un)
fi

if [[ ! -f "$DIR/data/PG_VERSION" ]]; then
    echo "postgres.sh: initdb $DIR/data" >&2
    as_owner "$BIN/initdb" -D "$DIR/data" -U "$OWNER" --auth=trust --encoding=UTF8 --locale=C.UTF-8 >&2
fi
if ! as_owner "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
    echo "postgres.sh: starting on 127.0.0.1:$PORT" >&2
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=on" start >&2
fi
# No `psql … | grep -q` under pipefail: grep -q exits at the first match and psql may die of SIGPIPE.
exists=$(as_owner "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U "$OWNER" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DB'")
if [[ "$exists" != 1 ]]; then
    as_owner "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U "$OWNER" "$DB" >&2
fi
echo "postgresql://$OWNER@127.0.0.1:$PORT/$DB"
