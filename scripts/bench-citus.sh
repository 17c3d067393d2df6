#!/usr/bin/env bash
# The Citus benchmark: one node against two workers, in one run on this machine.
# Builds medanon (release), installs Citus if missing (scripts/citus-build.sh), starts
# a coordinator and two workers (ports MEDANON_CITUS_BENCH_PORT, default 28850, and the
# next two) and runs bench/citus.sql. Prints markdown rows for BENCHMARKS.md.
# It installs and starts clusters: run it under the shared lock,
#   flock /tmp/medanon-db.lock scripts/bench-citus.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PG_CONFIG=${MEDANON_PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PORT=${MEDANON_CITUS_BENCH_PORT:-28850}
ROWS=${MEDANON_BENCH_ROWS:-1000000}
PERSONS=${MEDANON_BENCH_PERSONS:-100000}
VISITS=${MEDANON_BENCH_VISITS:-1000000}
RUNS=${MEDANON_BENCH_RUNS:-5}
OUT="$ROOT/target/bench"
mkdir -p "$OUT"

scripts/citus-build.sh install
echo "== build and install medanon (release) =="
cargo pgrx install --release --pg-config "$PG_CONFIG" 2>&1 | grep -E "Finished|error" || true
trap 'scripts/citus-cluster.sh stop citusbench' EXIT
scripts/citus-cluster.sh start citusbench "$PORT" medanon_bench shared_buffers=512MB work_mem=64MB
psql() { command psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d medanon_bench "$@"; }
psql -q -c "SET client_min_messages = warning" -c "CREATE EXTENSION medanon"
echo "== citus: tokenize over $ROWS values, a contract of $PERSONS persons and $VISITS visits; best of $RUNS =="
psql -v rows="$ROWS" -v persons="$PERSONS" -v visits="$VISITS" -v runs="$RUNS" -v outfile="$OUT/citus.md" -f bench/citus.sql
echo "| benchmark | one node | coordinator + 2 workers | ratio |"
echo "|---|---|---|---|"
cat "$OUT/citus.md"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%d); citus.shard_count 32"
