#!/usr/bin/env bash
# The Citus tier: medanon on a coordinator and two workers, checked as real roles.
#
#   1. build and install Citus 13.2.2 from its source tarball, once (scripts/citus-build.sh)
#   2. install medanon, start three clusters on loopback with shared_preload_libraries=citus
#   3. run tests/citus.rs against the coordinator (the workers' ports are passed along)
#
# It installs into /usr/lib/postgresql/15 and starts clusters: take the shared lock,
#   flock /tmp/medanon-db.lock make test-citus
# Ports: MEDANON_CITUS_PORT (coordinator, default 28830) and the next two for the workers.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
COORD=${MEDANON_CITUS_PORT:-28830}
W1=$((COORD + 1)) W2=$((COORD + 2))
DB=medanon_citus
tier() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }

tier "citus 1/3 build and install Citus 13.2.2 (once)"
scripts/citus-build.sh install

tier "citus 2/3 install medanon, start a coordinator ($COORD) and two workers ($W1, $W2)"
cargo pgrx install --pg-config "$PG_CONFIG" >/dev/null
trap 'scripts/citus-cluster.sh stop citus' EXIT
# RUST_BACKTRACE=1 in the servers, as scripts/test.sh does: no backtrace may reach a client.
# 8 shards a table instead of Citus's 32: two cores, and the opt-out race needs
# enough queries after the commit to tell.
RUST_BACKTRACE=1 scripts/citus-cluster.sh start citus "$COORD" "$DB" shared_buffers=128MB citus.shard_count=8

tier "citus 3/3 tests/citus.rs as real roles"
MEDANON_TEST_HOST=127.0.0.1 MEDANON_TEST_PORT="$COORD" MEDANON_TEST_DB="$DB" \
MEDANON_CITUS_WORKER_PORTS="$W1,$W2" MEDANON_TEST_LOG="$ROOT/target/clusters/citus-c/server.log" \
    cargo test -p medanon-integration --test citus -- --ignored --test-threads=1
