#!/usr/bin/env bash
# The first link of about 1M records, this build against a baseline build, in one
# cluster run and alternated, because the 2-core machine is shared and one run
# alone says little (the same build took 50 s and 65 s minutes apart).
#
#   git worktree add /tmp/medanon-base <rev> && (cd /tmp/medanon-base && cargo build --profile dist --lib)
#   flock /tmp/medanon-db.lock bench/link_first_ab.sh /tmp/medanon-base/target/dist/libmedanon.so [rounds]
#
# Both databases get the same synthetic staging table (560,000 patients, seed 11,
# as `make bench`) and the same link key (one is a copy of the other); the
# baseline's database calls the baseline library (its functions' probin points at
# a copy named medanon_base.so, removed at exit). Each round links the staging
# table into an emptied person_link in each database, baseline first. Prints the
# times, their medians and the ratio. It installs into PostgreSQL's directories:
# take the shared lock.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
BASE_SO=${1:?usage: bench/link_first_ab.sh BASELINE_LIBMEDANON_SO [rounds]}
ROUNDS=${2:-3}
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
LIBDIR=$("$PG_CONFIG" --pkglibdir)
PORT=${MEDANON_BENCH_PORT:-28817}
SOCK="$ROOT/target/clusters/bench"
cargo pgrx install --profile dist --pg-config "$PG_CONFIG" 2>&1 | grep -E "Finished|error" || true
cargo build -q --release -p medanon-synth
cp "$BASE_SO" "$LIBDIR/medanon_base.so"
trap 'scripts/cluster.sh stop bench; rm -f "$LIBDIR/medanon_base.so"' EXIT
scripts/cluster.sh start bench "$PORT" shared_buffers=1GB work_mem=256MB
psql() { command psql -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres "$@"; }
psql -d postgres -c "DROP DATABASE IF EXISTS medanon_ab_new" -c "DROP DATABASE IF EXISTS medanon_ab_base" \
     -c "CREATE DATABASE medanon_ab_base"
target/release/medanon-synth --patients "${MEDANON_BENCH_LINK_PATIENTS:-560000}" --seed 11 --visits-per-patient 0 \
    | psql -d medanon_ab_base >/dev/null
psql -d medanon_ab_base -c "CREATE EXTENSION medanon" -c "VACUUM ANALYZE synth.registration"
psql -d postgres -c "CREATE DATABASE medanon_ab_new TEMPLATE medanon_ab_base"
psql -d medanon_ab_base -c "UPDATE pg_catalog.pg_proc SET probin = 'medanon_base' WHERE probin = 'medanon'"
forget="TRUNCATE medanon.person_link, medanon.person, medanon.person_merge_log, medanon.link_conflict,
        medanon.link_candidates, medanon.link_quarantine, medanon.link_batch RESTART IDENTITY"
times=()
for round in $(seq 1 "$ROUNDS"); do
    for db in medanon_ab_base medanon_ab_new; do
        psql -d "$db" -c "$forget" -c "CHECKPOINT"
        t0=$(date +%s.%N)
        psql -d "$db" -c "SELECT medanon.link_patients('synth.registration')" >/dev/null
        t1=$(date +%s.%N)
        t=$(echo "$t1 - $t0" | bc)
        echo "round $round ${db#medanon_ab_}: $t s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
        times+=("${db#medanon_ab_} $t")
    done
done
printf '%s\n' "${times[@]}" | awk '{t[$1] = t[$1] " " $2} END {
    for (k in t) { n = split(substr(t[k], 2), v, " "); asort(v); m[k] = v[int((n + 1) / 2)]; print k " median " m[k] " s" }
    printf "ratio new/base %.2f\n", m["new"] / m["base"] }'
