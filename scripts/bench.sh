#!/usr/bin/env bash
# make bench: build medanon with release LTO (profile dist), start a private
# cluster, and run the benchmarks in bench/. Prints markdown rows for BENCHMARKS.md.
# MEDANON_BENCH_ONLY=contract (or foundation, link, risk; comma-separated) runs
# only those sections; publish_jit (not run by default: six publishes at 1M) runs
# bench/publish_jit.sql.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PORT=${MEDANON_BENCH_PORT:-28817}
ROWS=${MEDANON_BENCH_ROWS:-2000000}
RUNS=${MEDANON_BENCH_RUNS:-5}
SOCK="$ROOT/target/clusters/bench"
OUT="$ROOT/target/bench"
ONLY=${MEDANON_BENCH_ONLY:-foundation,link,risk,contract}
mkdir -p "$OUT"
section() { [[ ",$ONLY," == *",$1,"* ]]; }

echo "== build and install medanon (profile dist: release + fat LTO) =="
cargo pgrx install --profile dist --pg-config "$PG_CONFIG" 2>&1 | grep -E "Finished|error" || true

trap 'scripts/cluster.sh stop bench' EXIT
scripts/cluster.sh start bench "$PORT" shared_buffers=1GB work_mem=256MB
psql() { command psql -X -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres "$@"; }
psql -q -d postgres -c "DROP DATABASE IF EXISTS medanon_bench" -c "CREATE DATABASE medanon_bench"
psql -q -d medanon_bench -c "CREATE EXTENSION medanon"

if section foundation; then
echo "== foundation: $ROWS rows, best of $RUNS, one core; then the keyed functions with two workers against a serial plan =="
psql -d medanon_bench -v rows="$ROWS" -v runs="$RUNS" -v outfile="$OUT/foundation.md" -f bench/foundation.sql
echo
echo "markdown rows (target/bench/foundation.md):"
cat "$OUT/foundation.md"
fi

LINK_PATIENTS=${MEDANON_BENCH_LINK_PATIENTS:-560000}
LINK_BATCH_PATIENTS=${MEDANON_BENCH_LINK_BATCH_PATIENTS:-5600}
if section link || section risk; then cargo build -q --release -p medanon-synth; fi
if section link; then
echo
echo "== linkage: $LINK_PATIENTS synthetic patients (about 1M staging records, seed 11); a batch of $LINK_BATCH_PATIENTS other patients (about 10k records, seed 13) =="
psql -q -d postgres -c "DROP DATABASE IF EXISTS medanon_bench_link" -c "CREATE DATABASE medanon_bench_link" \
     -c "DROP DATABASE IF EXISTS medanon_bench_link_empty" -c "CREATE DATABASE medanon_bench_link_empty"
target/release/medanon-synth --patients "$LINK_PATIENTS" --seed 11 --visits-per-patient 0 | psql -q -d medanon_bench_link >/dev/null
# The batch: other patients, with local ids of their own (B...), in both databases.
for db in medanon_bench_link medanon_bench_link_empty; do
    target/release/medanon-synth --patients "$LINK_BATCH_PATIENTS" --seed 13 --visits-per-patient 0 --schema synth_batch \
        | psql -q -d "$db" >/dev/null
    psql -q -d "$db" -c "UPDATE synth_batch.registration SET local_patient_id = 'B' || local_patient_id" \
         -c "CREATE EXTENSION medanon" -c "VACUUM ANALYZE synth_batch.registration"
done
psql -q -d medanon_bench_link -c "VACUUM ANALYZE synth.registration"
psql -d medanon_bench_link -v outfile="$OUT/link.md" -v linkdb=medanon_bench_link -v emptydb=medanon_bench_link_empty \
     -f bench/link.sql
echo
echo "markdown rows (target/bench/link.md):"
cat "$OUT/link.md"
echo
echo "== consent: eligible_persons over the linked records =="
psql -d medanon_bench_link -v outfile="$OUT/consent.md" -f bench/consent.sql
cat "$OUT/consent.md"
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%d)"

RISK_ROWS=${MEDANON_BENCH_RISK_ROWS:-10000000}
RISK_PATIENTS=${MEDANON_BENCH_RISK_PATIENTS:-1000000}
if section risk; then
echo
echo "== risk: k_anonymity on $RISK_ROWS rows; suggest_generalization on $RISK_PATIENTS synthetic persons =="
psql -q -d postgres -c "DROP DATABASE IF EXISTS medanon_bench_risk" -c "CREATE DATABASE medanon_bench_risk"
target/release/medanon-synth --patients "$RISK_PATIENTS" --seed 12 --visits-per-patient 0 | psql -q -d medanon_bench_risk >/dev/null
psql -q -d medanon_bench_risk -c "CREATE EXTENSION medanon"
psql -d medanon_bench_risk -v big_rows="$RISK_ROWS" -v runs=5 -v outfile="$OUT/risk.md" -f bench/risk.sql
echo
echo "markdown rows (target/bench/risk.md):"
cat "$OUT/risk.md"
fi

CONTRACT_PERSONS=${MEDANON_BENCH_CONTRACT_PERSONS:-1000000}
CONTRACT_VISITS=${MEDANON_BENCH_CONTRACT_VISITS:-10000000}
if section contract; then
echo
echo "== contracts: publish and refresh over $CONTRACT_PERSONS persons; analyst queries on $CONTRACT_VISITS visit rows =="
psql -q -d postgres -c "DROP DATABASE IF EXISTS medanon_bench_contract" -c "CREATE DATABASE medanon_bench_contract"
psql -q -d medanon_bench_contract -c "CREATE EXTENSION medanon"
# MEDANON_BENCH_PROFILE=1: every statement of 150 ms or more, nested ones too (the
# steps of publish and refresh), with its plan, into the cluster's server log.
profile=()
if [ -n "${MEDANON_BENCH_PROFILE:-}" ]; then
    profile=(-c "LOAD 'auto_explain'" -c "SET auto_explain.log_min_duration = 150"
             -c "SET auto_explain.log_nested_statements = on" -c "SET auto_explain.log_timing = off")
    echo "(profiling: plans and durations go to $SOCK/server.log)"
fi
psql -d medanon_bench_contract -v persons="$CONTRACT_PERSONS" -v visits="$CONTRACT_VISITS" -v runs="$RUNS" \
    -v outfile="$OUT/contract.md" "${profile[@]}" -f bench/contract.sql
echo
echo "markdown rows (target/bench/contract.md):"
cat "$OUT/contract.md"
fi

if [[ ",${MEDANON_BENCH_ONLY:-}," == *",publish_jit,"* ]]; then
echo
echo "== publish with the session's JIT on and off: $CONTRACT_PERSONS persons, $CONTRACT_VISITS visits, six publishes =="
psql -q -d postgres -c "DROP DATABASE IF EXISTS medanon_bench_jit" -c "CREATE DATABASE medanon_bench_jit"
psql -q -d medanon_bench_jit -c "CREATE EXTENSION medanon"
psql -d medanon_bench_jit -v persons="$CONTRACT_PERSONS" -v visits="$CONTRACT_VISITS" -v outfile="$OUT/publish_jit.md" \
    -f bench/publish_jit.sql
echo
echo "markdown rows (target/bench/publish_jit.md):"
cat "$OUT/publish_jit.md"
fi
