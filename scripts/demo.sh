#!/usr/bin/env bash
# make demo: build and install medanon, start a private cluster, load synthetic
# hospital data and walk through the pipeline, printing what happens.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PORT=${MEDANON_DEMO_PORT:-28815}
PATIENTS=${MEDANON_DEMO_PATIENTS:-5000}
SOCK="$ROOT/target/clusters/demo"
step() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }

step "build and install medanon (release, no LTO)"
cargo pgrx install --release --pg-config "$PG_CONFIG" 2>&1 | grep -E "Installing|Finished|error" || true
test -f "$("$PG_CONFIG" --sharedir)/extension/medanon.control"
cargo build -q --release -p medanon-synth

step "start a private cluster on port $PORT (data in target/clusters/demo)"
scripts/cluster.sh start demo "$PORT"
psql() { command psql -X -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres "$@"; }
psql -q -d postgres -c "DROP DATABASE IF EXISTS medanon_demo" -c "CREATE DATABASE medanon_demo"

step "load $PATIENTS synthetic patients (seed 42) into schema synth"
target/release/medanon-synth --patients "$PATIENTS" --seed 42 | psql -q -d medanon_demo >/dev/null

psql -q -d medanon_demo -f demo/demo.sql

cat <<MSG

The cluster is still running, so you can look around:
    psql -h $SOCK -p $PORT -U postgres medanon_demo
Stop it with: make demo-stop
MSG
