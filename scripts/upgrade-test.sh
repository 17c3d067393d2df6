#!/usr/bin/env bash
# The upgrades from every earlier release (a step of `make test`, scripts/test.sh),
# one after the other: from 0.2.0, and from 0.1.0 (which goes through every
# script, 0.1.0 → 0.2.0 → 0.3.0, as PostgreSQL chains them). For each release:
#   1. the release itself: its medanon.so, built once from the release commit (git
#      archive of the commit, `cargo pgrx package --profile dev`, about 2.5 min on
#      two cores) and kept in target/upgrade/<version>/; its install script is the
#      frozen sql/frozen/medanon--<version>.sql, which must hold the statements
#      that build generates (in any order: pgrx's order varies between builds);
#   2. the release installed into PostgreSQL 15 (what `cargo pgrx install` put there
#      is set aside), a cluster, and real state (tests/upgrade/state-<version>.sql);
#   3. the current build installed as a DBA installs a new package, the cluster
#      restarted, `ALTER EXTENSION medanon UPDATE`, and the checks of
#      tests/upgrade/after-<version>.sql (data survived, contracts readable, the
#      ledger records it, the current version works on the old state);
#   4. the catalog compared with a fresh install in a cluster of its own
#      (tests/upgrade/catalog.sql); a difference is printed as a diff and fails
#      the test.
# The installation is put back as it was, on success or failure. It is shared:
# run this under the database lock, as make test does.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
# Every earlier release and its commit, newest first.
RELEASES=(
    "0.2.0 cc917332b803f3668db688afb608366482f28426"
    "0.1.0 c56961bdbcebb104e32c831c2cd5d4e6d74d1f78"
)
PORT=${MEDANON_UPGRADE_PORT:-28820}
FRESH_PORT=${MEDANON_UPGRADE_FRESH_PORT:-28821}
CLUSTER=upgrade
FRESH=upgrade-fresh
OUT="$ROOT/target/upgrade/out"
BUILD="$ROOT/target/upgrade/build"
libdir=$("$PG_CONFIG" --pkglibdir)
extdir=$("$PG_CONFIG" --sharedir)/extension
say() { printf '\033[1m[upgrade]\033[0m %s\n' "$*"; }
fail() { echo "upgrade-test: $*" >&2; exit 1; }

# 1. Each release's medanon.so, built once (the releases share one build
#    directory, removed afterwards: it is 0.8 GB).
for release in "${RELEASES[@]}"; do
    read -r old commit <<<"$release"
    cache="$ROOT/target/upgrade/$old"
    if [ ! -s "$cache/medanon.so" ]; then
        say "building medanon $old from $commit (once; kept in $cache)"
        # A shallow clone may lack the release commit: fetch it by its id.
        git cat-file -e "$commit^{commit}" 2>/dev/null || git fetch --quiet --depth=1 origin "$commit" 2>/dev/null || true
        git cat-file -e "$commit^{commit}" 2>/dev/null ||
            fail "commit $commit (release $old) is not in this clone: fetch the full history (git fetch --unshallow)"
        rm -rf "$cache" && mkdir -p "$cache/src"
        git archive "$commit" | tar -x -C "$cache/src"
        (cd "$cache/src" && CARGO_TARGET_DIR="$BUILD" \
            cargo pgrx package --profile dev --pg-config "$PG_CONFIG" --out-dir "$cache/pkg") >"$cache/build.log" 2>&1 ||
            { tail -n 30 "$cache/build.log" >&2; fail "the $old build failed ($cache/build.log)"; }
        cp "$cache/pkg$extdir/medanon--$old.sql" "$cache/generated.sql"
        cp "$cache/pkg$libdir/medanon.so" "$cache/medanon.so.part" && mv "$cache/medanon.so.part" "$cache/medanon.so"
        rm -rf "$cache/src" "$cache/pkg"
    fi
    # pgrx orders the script's entities differently from one build to the next
    # (the same commit, built twice, gave the same statements in another order),
    # so the lines are compared as a sorted list: the same statements, whatever
    # their order.
    cmp -s <(LC_ALL=C sort "$cache/generated.sql") <(LC_ALL=C sort "sql/frozen/medanon--$old.sql") ||
        fail "sql/frozen/medanon--$old.sql differs from the install script the $old build generates"
    say "medanon $old: $cache/medanon.so and sql/frozen/medanon--$old.sql (the statements its build generates)"
done
rm -rf "$BUILD"

# The current build, installed as tier 3 of make test does (quick when built).
cargo pgrx install --pg-config "$PG_CONFIG" >/dev/null
new=$(sed -n "s/^default_version = '\(.*\)'$/\1/p" "$extdir/medanon.control")
newest=${RELEASES[0]%% *}
[ -f "sql/medanon--$newest--$new.sql" ] || fail "no upgrade script sql/medanon--$newest--$new.sql"
[ -f "$extdir/medanon--$newest--$new.sql" ] || fail "cargo pgrx install did not install medanon--$newest--$new.sql"
saved=$(mktemp -d)
cp -a "$libdir/medanon.so" "$saved/"
cp -a "$extdir"/medanon.control "$extdir"/medanon--*.sql "$saved/"

stop_all() {
    scripts/cluster.sh stop "$CLUSTER" 2>/dev/null || true
    scripts/cluster.sh stop "$FRESH" 2>/dev/null || true
}
restore() {
    stop_all
    rm -f "$extdir"/medanon--*.sql
    cp -a "$saved/medanon.so" "$libdir/medanon.so"
    cp -a "$saved"/medanon.control "$saved"/medanon--*.sql "$extdir/"
    rm -rf "$saved"
}
trap restore EXIT
psql_at() { local sock=$1 port=$2; shift 2; command psql -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$port" -U postgres "$@"; }
U="$ROOT/target/clusters/$CLUSTER"
F="$ROOT/target/clusters/$FRESH"
stop_all
rm -rf "$F" "$OUT" && mkdir -p "$OUT"

# A fresh install in a cluster of its own (roles are cluster-wide): the catalog
# every upgrade must end at.
scripts/cluster.sh start "$FRESH" "$FRESH_PORT"
psql_at "$F" "$FRESH_PORT" -d postgres -c "CREATE DATABASE medanon_fresh"
psql_at "$F" "$FRESH_PORT" -d medanon_fresh -c "CREATE EXTENSION medanon"
psql_at "$F" "$FRESH_PORT" -d medanon_fresh -At -f tests/upgrade/catalog.sql >"$OUT/fresh.catalog"
facts=$(wc -l <"$OUT/fresh.catalog")
[ "$facts" -gt 500 ] || fail "the catalog query found only $facts facts in the fresh install"
order="SELECT c.relname || ': ' || string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_class c
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relnamespace = 'medanon'::regnamespace AND c.relkind = 'r' GROUP BY c.relname ORDER BY 1"
psql_at "$F" "$FRESH_PORT" -d medanon_fresh -At -c "$order" >"$OUT/fresh.order"
scripts/cluster.sh stop "$FRESH"

for release in "${RELEASES[@]}"; do
    read -r old commit <<<"$release"
    cache="$ROOT/target/upgrade/$old"
    out="$OUT/$old"
    mkdir -p "$out"
    # 2. The release and its state.
    scripts/cluster.sh stop "$CLUSTER" 2>/dev/null || true
    rm -rf "$U"
    install -m 0755 "$cache/medanon.so" "$libdir/medanon.so"
    install -m 0644 "sql/frozen/medanon--$old.sql" "$extdir/medanon--$old.sql"
    scripts/cluster.sh start "$CLUSTER" "$PORT"
    psql_at "$U" "$PORT" -d postgres -c "CREATE DATABASE medanon_upgrade"
    psql_at "$U" "$PORT" -d medanon_upgrade -f "tests/upgrade/state-$old.sql" >"$out/state.out"
    scripts/cluster.sh stop "$CLUSTER"

    # 3. The new package, then ALTER EXTENSION ... UPDATE, and the checks.
    cp -a "$saved/medanon.so" "$libdir/medanon.so"
    rm -f "$extdir/medanon--$old.sql"
    say "from $old: installed $new; ALTER EXTENSION medanon UPDATE"
    scripts/cluster.sh start "$CLUSTER" "$PORT"
    start=$(date +%s.%N)
    psql_at "$U" "$PORT" -d medanon_upgrade -c "ALTER EXTENSION medanon UPDATE"
    say "from $old: ALTER EXTENSION medanon UPDATE took $(echo "$(date +%s.%N) - $start" | bc) s"
    psql_at "$U" "$PORT" -d medanon_upgrade -v version="$new" -f "tests/upgrade/after-$old.sql" 2>&1 |
        sed 's/^psql:[^ ]* NOTICE:  /  /' | tee "$out/after.out"
    grep -q "every check passed" "$out/after.out" || fail "the checks after the upgrade from $old failed"

    # 4. The catalog, compared with the fresh install's.
    psql_at "$U" "$PORT" -d medanon_upgrade -At -f tests/upgrade/catalog.sql >"$out/upgraded.catalog"
    if ! diff -u --label "fresh $new install" --label "upgraded from $old" "$OUT/fresh.catalog" "$out/upgraded.catalog" >"$out/catalog.diff"; then
        cat "$out/catalog.diff" >&2
        fail "the catalog upgraded from $old differs from a fresh install ($(grep -c '^[-+][^-+]' "$out/catalog.diff") lines; $out/catalog.diff)"
    fi
    say "from $old: the upgraded catalog equals a fresh $new install ($facts facts: functions, tables, columns, constraints, indexes, triggers, views, sequences, privileges, comments, pg_extension_config_dump, roles)"
    # For information: the column order, which ALTER TABLE cannot reproduce.
    diff "$OUT/fresh.order" <(psql_at "$U" "$PORT" -d medanon_upgrade -At -c "$order") |
        sed -n 's/^> /  column order after the upgrade (new columns last): /p' || true
    scripts/cluster.sh stop "$CLUSTER"
done
say "passed"
