#!/usr/bin/env bash
# The upgrade from 0.1.0 (a step of `make test`, scripts/test.sh):
#   1. 0.1.0 itself: its medanon.so, built once from the release commit (git
#      archive of $OLD_COMMIT, `cargo pgrx package --profile dev`, about 2.5 min on
#      two cores) and kept in target/upgrade/0.1.0/; its install script is the
#      frozen sql/frozen/medanon--0.1.0.sql, which must equal what that build
#      generates;
#   2. 0.1.0 installed into PostgreSQL 15 (what `cargo pgrx install` put there is
#      set aside), a cluster, and real state (tests/upgrade/state-0.1.0.sql);
#   3. the current build installed as a DBA installs a new package, the cluster
#      restarted, `ALTER EXTENSION medanon UPDATE`, and the checks of
#      tests/upgrade/after.sql (data survived, contracts rebuilt and readable,
#      the ledger records it);
#   4. a second, fresh cluster with `CREATE EXTENSION medanon`, and the catalog of
#      the two compared (tests/upgrade/catalog.sql); a difference is printed as
#      a diff and fails the test;
#   5. the installation put back as it was, on success or failure.
# The installation is shared: run it under the database lock, as make test does.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
OLD=0.1.0
OLD_COMMIT=c56961bdbcebb104e32c831c2cd5d4e6d74d1f78
PORT=${MEDANON_UPGRADE_PORT:-28820}
FRESH_PORT=${MEDANON_UPGRADE_FRESH_PORT:-28821}
CLUSTER=upgrade
FRESH=upgrade-fresh
CACHE="$ROOT/target/upgrade/$OLD"
OUT="$ROOT/target/upgrade/out"
libdir=$("$PG_CONFIG" --pkglibdir)
extdir=$("$PG_CONFIG" --sharedir)/extension
say() { printf '\033[1m[upgrade]\033[0m %s\n' "$*"; }
fail() { echo "upgrade-test: $*" >&2; exit 1; }

# 1. 0.1.0's medanon.so, built once.
if [ ! -s "$CACHE/medanon.so" ]; then
    say "building medanon $OLD from $OLD_COMMIT (once; kept in $CACHE)"
    # A shallow clone may lack the release commit: fetch it by its id.
    git cat-file -e "$OLD_COMMIT^{commit}" 2>/dev/null || git fetch --quiet --depth=1 origin "$OLD_COMMIT" 2>/dev/null || true
    git cat-file -e "$OLD_COMMIT^{commit}" 2>/dev/null ||
        fail "commit $OLD_COMMIT (release $OLD) is not in this clone: fetch the full history (git fetch --unshallow)"
    rm -rf "$CACHE" && mkdir -p "$CACHE/src"
    git archive "$OLD_COMMIT" | tar -x -C "$CACHE/src"
    (cd "$CACHE/src" && CARGO_TARGET_DIR="$ROOT/target/upgrade/build" \
        cargo pgrx package --profile dev --pg-config "$PG_CONFIG" --out-dir "$CACHE/pkg") >"$CACHE/build.log" 2>&1 ||
        { tail -n 30 "$CACHE/build.log" >&2; fail "the $OLD build failed ($CACHE/build.log)"; }
    cp "$CACHE/pkg$extdir/medanon--$OLD.sql" "$CACHE/generated.sql"
    cp "$CACHE/pkg$libdir/medanon.so" "$CACHE/medanon.so.part" && mv "$CACHE/medanon.so.part" "$CACHE/medanon.so"
    # The library and the script are all that is kept (the build tree is 0.8 GB).
    rm -rf "$CACHE/src" "$CACHE/pkg" "$ROOT/target/upgrade/build"
fi
cmp -s "$CACHE/generated.sql" "sql/frozen/medanon--$OLD.sql" ||
    fail "sql/frozen/medanon--$OLD.sql differs from the install script the $OLD build generates"
say "medanon $OLD: $CACHE/medanon.so and sql/frozen/medanon--$OLD.sql (the script its build generates)"

# The current build, installed as tier 3 of make test does (quick when built).
cargo pgrx install --pg-config "$PG_CONFIG" >/dev/null
new=$(sed -n "s/^default_version = '\(.*\)'$/\1/p" "$extdir/medanon.control")
[ -f "sql/medanon--$OLD--$new.sql" ] || fail "no upgrade script sql/medanon--$OLD--$new.sql"
[ -f "$extdir/medanon--$OLD--$new.sql" ] || fail "cargo pgrx install did not install medanon--$OLD--$new.sql"
saved=$(mktemp -d)
cp -a "$libdir/medanon.so" "$saved/"
cp -a "$extdir"/medanon.control "$extdir"/medanon--*.sql "$saved/"

stop_all() {
    scripts/cluster.sh stop "$CLUSTER" 2>/dev/null || true
    scripts/cluster.sh stop "$FRESH" 2>/dev/null || true
}
restore() {
    stop_all
    rm -f "$extdir/medanon--$OLD.sql"
    cp -a "$saved/medanon.so" "$libdir/medanon.so"
    cp -a "$saved"/medanon.control "$saved"/medanon--*.sql "$extdir/"
    rm -rf "$saved"
}
trap restore EXIT
psql_at() { local sock=$1 port=$2; shift 2; command psql -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$port" -U postgres "$@"; }
U="$ROOT/target/clusters/$CLUSTER"
F="$ROOT/target/clusters/$FRESH"

# 2. 0.1.0 and its state.
stop_all
rm -rf "$U" "$F" "$OUT" && mkdir -p "$OUT"
install -m 0755 "$CACHE/medanon.so" "$libdir/medanon.so"
install -m 0644 "sql/frozen/medanon--$OLD.sql" "$extdir/medanon--$OLD.sql"
scripts/cluster.sh start "$CLUSTER" "$PORT"
psql_at "$U" "$PORT" -d postgres -c "CREATE DATABASE medanon_upgrade"
psql_at "$U" "$PORT" -d medanon_upgrade -f tests/upgrade/state-0.1.0.sql >"$OUT/state.out"
scripts/cluster.sh stop "$CLUSTER"

# 3. The new package, then ALTER EXTENSION ... UPDATE, and the checks.
cp -a "$saved/medanon.so" "$libdir/medanon.so"
rm -f "$extdir/medanon--$OLD.sql"
say "installed $new; ALTER EXTENSION medanon UPDATE"
scripts/cluster.sh start "$CLUSTER" "$PORT"
start=$(date +%s.%N)
psql_at "$U" "$PORT" -d medanon_upgrade -c "ALTER EXTENSION medanon UPDATE"
say "ALTER EXTENSION medanon UPDATE took $(echo "$(date +%s.%N) - $start" | bc) s"
psql_at "$U" "$PORT" -d medanon_upgrade -v version="$new" -f tests/upgrade/after.sql 2>&1 |
    sed 's/^psql:[^ ]* NOTICE:  /  /' | tee "$OUT/after.out"
grep -q "every check passed" "$OUT/after.out" || fail "the checks after the upgrade failed"

# 4. A fresh install in a cluster of its own (roles are cluster-wide), and the catalogs.
scripts/cluster.sh start "$FRESH" "$FRESH_PORT"
psql_at "$F" "$FRESH_PORT" -d postgres -c "CREATE DATABASE medanon_fresh"
psql_at "$F" "$FRESH_PORT" -d medanon_fresh -c "CREATE EXTENSION medanon"
psql_at "$U" "$PORT" -d medanon_upgrade -At -f tests/upgrade/catalog.sql >"$OUT/upgraded.catalog"
psql_at "$F" "$FRESH_PORT" -d medanon_fresh -At -f tests/upgrade/catalog.sql >"$OUT/fresh.catalog"
facts=$(wc -l <"$OUT/fresh.catalog")
[ "$facts" -gt 500 ] || fail "the catalog query found only $facts facts in the fresh install"
if ! diff -u --label "fresh $new install" --label "upgraded from $OLD" "$OUT/fresh.catalog" "$OUT/upgraded.catalog" >"$OUT/catalog.diff"; then
    cat "$OUT/catalog.diff" >&2
    fail "the upgraded catalog differs from a fresh install ($(grep -c '^[-+][^-+]' "$OUT/catalog.diff") lines; $OUT/catalog.diff)"
fi
say "catalog: the upgraded database equals a fresh $new install ($facts facts: functions, tables, columns, constraints, indexes, triggers, views, sequences, privileges, comments, pg_extension_config_dump, roles)"
# For information: the column order, which ALTER TABLE cannot reproduce.
order="SELECT c.relname || ': ' || string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_class c
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relnamespace = 'medanon'::regnamespace AND c.relkind = 'r' GROUP BY c.relname ORDER BY 1"
diff <(psql_at "$F" "$FRESH_PORT" -d medanon_fresh -At -c "$order") <(psql_at "$U" "$PORT" -d medanon_upgrade -At -c "$order") |
    sed -n 's/^> /  column order after the upgrade (new columns last): /p' || true
say "passed"
