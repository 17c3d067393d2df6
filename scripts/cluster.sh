#!/usr/bin/env bash
# A private PostgreSQL 15 cluster for the demo, the tests or the benchmarks, run as
# the postgres user (initdb refuses root) with its data under target/clusters/NAME.
#
#   scripts/cluster.sh start NAME PORT [extra postgres -c settings...]
#   scripts/cluster.sh stop NAME
set -euo pipefail

BIN=${MEDANON_PG_BIN:-/usr/lib/postgresql/15/bin}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cmd=$1 name=$2
dir="$ROOT/target/clusters/$name"
data="$dir/data"

as_pg() { sudo -u postgres -H -- "$@"; }

case "$cmd" in
start)
    port=$3; shift 3
    mkdir -p "$dir"
    chown postgres: "$dir"
    # postgres must be able to reach its data directory through the work tree.
    chmod o+x "$ROOT" "$ROOT/target" "$ROOT/target/clusters" 2>/dev/null || true
    if [ ! -s "$data/PG_VERSION" ]; then
        as_pg "$BIN/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
    fi
    if as_pg "$BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        as_pg "$BIN/pg_ctl" -D "$data" stop -m fast >/dev/null
    fi
    opts="-p $port -k $dir -c listen_addresses=127.0.0.1 -c log_min_messages=warning"
    for setting in "$@"; do opts="$opts -c $setting"; done
    # Rust's backtrace settings reach the server when set (sudo would drop them):
    # scripts/test.sh starts the test cluster with RUST_BACKTRACE=1, as a DBA
    # chasing a crash might, so a test can check that no backtrace reaches a client.
    rust_env=()
    for v in RUST_BACKTRACE RUST_LIB_BACKTRACE; do [ -n "${!v:-}" ] && rust_env+=("$v=${!v}"); done
    as_pg env "${rust_env[@]}" "$BIN/pg_ctl" -D "$data" -l "$dir/server.log" -o "$opts" -w start >/dev/null
    ;;
stop)
    if [ -s "$data/PG_VERSION" ] && as_pg "$BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        as_pg "$BIN/pg_ctl" -D "$data" stop -m fast >/dev/null
    fi
    ;;
*)
    echo "usage: $0 start NAME PORT [setting=value...] | stop NAME" >&2
    exit 2
    ;;
esac
