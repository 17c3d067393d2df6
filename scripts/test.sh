#!/usr/bin/env bash
# Every test tier, in order; stops at the first tier that fails and exits non-zero.
#   1. Rust unit and property tests of the pure crates
#   2. #[pg_test]s in a pgrx-managed backend
#   3. the pg_regress suite in pg_test/
#   4. integration tests in tests/ that log in as several real roles
#   5. the same cluster with pgaudit and pg_cron loaded (read auditing, scheduled
#      expiry), and the Debian package installed with dpkg into a clean
#      PostgreSQL 15 (scripts/test-package.sh), and the upgrades from 0.2.0 and 0.1.0 with
#      ALTER EXTENSION medanon UPDATE, compared with a fresh install (scripts/upgrade-test.sh)
# The Citus tier (a coordinator and two workers) is `make test-citus`; the last line
# says whether this machine can run it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PORT=${MEDANON_TEST_PORT:-28816}
CLUSTER=test
SOCK="$ROOT/target/clusters/$CLUSTER"
tier() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }

tier "1/5 unit and property tests (medanon-core, medanon-synth)"
cargo test -p medanon-core -p medanon-synth

tier "2/5 #[pg_test] (cargo pgrx test, as postgres)"
mkdir -p target/pgrx-test
chmod o+x "$ROOT" "$ROOT/target"
chown postgres: target/pgrx-test
cargo pgrx test pg15 --runas postgres --pgdata "$ROOT/target/pgrx-test/data"

tier "3/5 pg_regress (pg_test/)"
cargo pgrx install --pg-config "$PG_CONFIG" >/dev/null
trap 'scripts/cluster.sh stop $CLUSTER' EXIT
# RUST_BACKTRACE=1 in the server, so tests/bad_input.rs can show that no Rust
# backtrace reaches a client even then.
RUST_BACKTRACE=1 scripts/cluster.sh start "$CLUSTER" "$PORT"
psql() { command psql -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres "$@"; }
psql -d postgres -c "DROP DATABASE IF EXISTS medanon_regress" -c "CREATE DATABASE medanon_regress"
rm -rf target/regress && mkdir -p target/regress
PGREGRESS=/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress
tests=$(cd pg_test/sql && ls *.sql | sed 's/\.sql$//' | sort)
if ! "$PGREGRESS" --use-existing --host="$SOCK" --port="$PORT" --user=postgres \
        --dbname=medanon_regress --inputdir=pg_test --outputdir=target/regress $tests; then
    echo "pg_regress failed; differences:" >&2
    cat target/regress/regression.diffs >&2 || true
    exit 1
fi

tier "4/5 integration tests as real roles (tests/)"
psql -d postgres -c "DROP DATABASE IF EXISTS medanon_it" -c "CREATE DATABASE medanon_it"
MEDANON_TEST_HOST="$SOCK" MEDANON_TEST_PORT="$PORT" MEDANON_TEST_DB=medanon_it MEDANON_TEST_LOG="$SOCK/server.log" \
    cargo test -p medanon-integration -- --test-threads=1
# k, l and suppression counts against pycanon, an independent implementation.
MEDANON_TEST_HOST="$SOCK" MEDANON_TEST_PORT="$PORT" MEDANON_TEST_DB=medanon_it python3 tests/risk_crosscheck.py

tier "5/5 pgaudit and pg_cron loaded (tests/read_audit.rs, tests/scheduled_expiry.rs); the Debian package; the upgrades from 0.2.0 and 0.1.0"
# The test cluster again, configured as README.md tells a DBA: pgaudit and pg_cron
# preloaded, the audit role named, the role in every log line, and pg_cron in the
# test database (it reaches the server over the socket directory).
PRELOAD=pgaudit,pg_cron
RUST_BACKTRACE=1 scripts/cluster.sh start "$CLUSTER" "$PORT" "shared_preload_libraries=$PRELOAD" \
    pgaudit.role=medanon_read_audit "log_line_prefix='%m [%p] %u@%d '" \
    cron.database_name=medanon_it "cron.host='$SOCK'"
MEDANON_TEST_PRELOAD="$PRELOAD" MEDANON_TEST_HOST="$SOCK" MEDANON_TEST_PORT="$PORT" MEDANON_TEST_DB=medanon_it \
    MEDANON_TEST_LOG="$SOCK/server.log" \
    cargo test -p medanon-integration --test read_audit --test scheduled_expiry -- --test-threads=1
scripts/cluster.sh stop "$CLUSTER"
scripts/test-package.sh
scripts/upgrade-test.sh

# The Citus tier is separate (it builds Citus and starts three clusters); say
# plainly whether it can run here, so a skipped tier is never mistaken for a pass.
case "$(scripts/citus-build.sh status >/dev/null 2>&1; echo $?)" in
0|1) printf '\n\033[1mCitus tier not run by make test: run `make test-citus` (Citus or its tarball is here).\033[0m\n' ;;
*) printf '\n\033[1mSKIPPED the Citus tier: neither Citus nor citus-13.2.2.tar.gz was found (see scripts/citus-build.sh).\033[0m\n' ;;
esac
