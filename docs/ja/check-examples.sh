#!/usr/bin/env bash
# docs/ja の SQL 例を、make demo で起動したデモクラスタに対して実行して確かめる。
# Runs every SQL example of docs/ja against the demo cluster that `make demo` leaves running.
#
#   make demo && docs/ja/check-examples.sh [-v] [file.md...]
#
# ```sql                 must run without error (psql -v ON_ERROR_STOP=1)
# ```sql expect-error    must fail with an ERROR, and not with XX000 (an internal error is a bug)
# ```sql norun           is shown only (for example, it needs pg_cron or another cluster)
# Each block runs in its own psql session as the superuser postgres, so a block
# switches roles itself (SET ROLE). Blocks run in file order, files in name order
# (01-install.md ... 06-operations.md), from the state the demo leaves; run
# `make demo` again to start over.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SOCK=${MEDANON_DEMO_SOCK:-$ROOT/target/clusters/demo}
PORT=${MEDANON_DEMO_PORT:-28815}
DB=${MEDANON_DEMO_DB:-medanon_demo}
verbose=0
if [ "${1:-}" = "-v" ]; then verbose=1; shift; fi
files=("$@")
if [ ${#files[@]} -eq 0 ]; then files=("$ROOT"/docs/ja/0*.md); fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
for f in "${files[@]}"; do
    # Split the file into numbered blocks: tmp/N.sql with tmp/N.meta = "kind line".
    rm -f "$tmp"/*.sql "$tmp"/*.meta
    awk -v dir="$tmp" '
        /^```sql( |$)/ { n++; kind = ($0 ~ /expect-error/) ? "error" : ($0 ~ /norun/) ? "norun" : "ok";
                         print kind, NR > (dir "/" sprintf("%03d", n) ".meta"); inblock = 1; next }
        inblock && /^```/ { inblock = 0; next }
        inblock { print > (dir "/" sprintf("%03d", n) ".sql") }
    ' "$f"
    for meta in "$tmp"/*.meta; do
        [ -e "$meta" ] || continue
        read -r kind line <"$meta"
        sql=${meta%.meta}.sql
        where="$(basename "$f"):$line"
        [ "$kind" = norun ] && { echo "skip  $where (norun)"; continue; }
        set +e
        if [ "$kind" = error ]; then
            out=$(psql -X -q -v ON_ERROR_STOP=0 -v VERBOSITY=verbose -h "$SOCK" -p "$PORT" -U postgres -d "$DB" -f "$sql" 2>&1)
            rc=0
            if ! grep -q 'ERROR:' <<<"$out" || grep -q 'XX000' <<<"$out"; then rc=1; fi
        else
            out=$(psql -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres -d "$DB" -f "$sql" 2>&1)
            rc=$?
        fi
        set -e
        if [ $rc -eq 0 ]; then
            pass=$((pass + 1)); echo "ok    $where ($kind)"
        else
            fail=$((fail + 1)); echo "FAIL  $where ($kind)"
        fi
        if [ $rc -ne 0 ] || [ $verbose -eq 1 ]; then sed 's/^/      | /' <<<"$out"; fi
    done
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
