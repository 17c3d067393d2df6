#!/usr/bin/env bash
# make bench: build medanon with release LTO (profile dist), start a private
# cluster, and run the benchmarks in bench/. Prints markdown rows for BENCHMARKS.md.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PORT=${MEDANON_BENCH_PORT:-28817}
ROWS=${MEDANON_BENCH_ROWS:-2000000}
RUNS=${MEDANON_BENCH_RUNS:-5}
SOCK="$ROOT/target/clusters/bench"
OUT="$ROOT/target/bench"
mkdir -p "$OUT"

echo "== build and install medanon (profile dist: release + fat LTO) =="
cargo pgrx install --profile dist --pg-config "$PG_CONFIG" 2>&1 | grep -E "Finished|error" || true

trap 'scripts/cluster.sh stop bench' EXIT
scripts/cluster.sh start bench "$PORT" shared_buffers=1GB work_mem=256MB
psql() { command psql -X -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres "$@"; }
psql -q -d postgres -c "DROP DATABASE IF EXISTS medanon_bench" -c "CREATE DATABASE medanon_bench"
psql -q -d medanon_bench -c "CREATE EXTENSION medanon"

echo "== foundation: $ROWS rows, best of $RUNS, one core =="
psql -d medanon_bench -v rows="$ROWS" -v runs="$RUNS" -v outfile="$OUT/foundation.md" -f bench/foundation.sql
echo
echo "markdown rows (target/bench/foundation.md):"
cat "$OUT/foundation.md"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%d)"
