#!/usr/bin/env bash
# The Debian package, installed as a DBA installs it (the last step of `make test`):
#   1. build it (scripts/package.sh dev: the packaging of `make package`, over the
#      dev build that tiers 2 and 3 compiled, so it takes seconds, not the
#      minutes of the LTO build), and check its metadata and contents;
#   2. make the PostgreSQL 15 installation clean of medanon (what `cargo pgrx
#      install` put there is set aside), `dpkg -i` the package, and check that it
#      owns every file it installed;
#   3. start a throwaway cluster, CREATE EXTENSION and run the smoke test of every
#      function family (tests/package_smoke.sql);
#   4. `dpkg -r`, and check that no file of medanon is left;
#   5. put back the files set aside, on success or failure.
# The installation is shared: run it under the database lock, as make test does.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PORT=${MEDANON_PACKAGE_PORT:-28818}
CLUSTER=package
NAME=postgresql-15-medanon
SOCK="$ROOT/target/clusters/$CLUSTER"
libdir=$("$PG_CONFIG" --pkglibdir)
extdir=$("$PG_CONFIG" --sharedir)/extension
fail() { echo "test-package: $*" >&2; exit 1; }
ok() { printf '  ok: %s\n' "$*"; }

deb=$(scripts/package.sh dev | tail -n 1)
[ -s "$deb" ] || fail "no package built"
version=$(dpkg-deb -f "$deb" Version)
upstream=${version%-*}

# 1. Metadata and contents.
[ "$(dpkg-deb -f "$deb" Package)" = "$NAME" ] || fail "package name is not $NAME"
dpkg-deb -f "$deb" Depends | grep -Eq '(^|, )postgresql-15(,|$)' || fail "it does not depend on postgresql-15"
ok "$NAME $version, depends on: $(dpkg-deb -f "$deb" Depends)"
contents=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
expected=("$libdir/medanon.so" "$extdir/medanon.control" "$extdir/medanon--$upstream.sql")
for f in sql/medanon--*--*.sql; do [ -e "$f" ] && expected+=("$extdir/$(basename "$f")"); done
for f in "${expected[@]}"; do
    grep -qx "$f" <<<"$contents" || fail "the package lacks $f"
done
ok "it holds medanon.so, the control file, the install script and ${#expected[@]} files in all that medanon needs"
stray=$(grep -v -e "^$libdir/" -e "^$extdir/" -e "^/usr/share/doc/$NAME/" -e '/$' <<<"$contents" || true)
[ -z "$stray" ] || fail "files outside PostgreSQL's directories and the docs: $stray"

# 2. A clean PostgreSQL 15, then dpkg -i.
dpkg-query -W -f='${Status}' "$NAME" 2>/dev/null | grep -qx "install ok installed" &&
    fail "$NAME is installed already; dpkg -r $NAME first"
saved=$(mktemp -d)
restore() {
    scripts/cluster.sh stop "$CLUSTER" 2>/dev/null || true
    if dpkg -s "$NAME" >/dev/null 2>&1; then dpkg -r "$NAME" >/dev/null || true; fi
    # What cargo pgrx install had put there, back as it was.
    cp -a "$saved"/lib/. "$libdir"/ 2>/dev/null || true
    cp -a "$saved"/ext/. "$extdir"/ 2>/dev/null || true
    rm -rf "$saved"
}
trap restore EXIT
mkdir -p "$saved/lib" "$saved/ext"
for f in "$libdir"/medanon.so; do [ -e "$f" ] && mv "$f" "$saved/lib/"; done
for f in "$extdir"/medanon.control "$extdir"/medanon--*.sql; do [ -e "$f" ] && mv "$f" "$saved/ext/"; done
[ -z "$(ls "$libdir"/medanon* "$extdir"/medanon* 2>/dev/null)" ] || fail "medanon files left in the installation"
ok "the PostgreSQL 15 installation holds no medanon file"

dpkg -i "$deb" >/dev/null
dpkg-query -W -f='${Status}' "$NAME" | grep -qx "install ok installed" || fail "dpkg -i did not install $NAME"
for f in "${expected[@]}"; do
    [ -s "$f" ] || fail "$f is not installed"
    [ "$(dpkg -S "$f" 2>/dev/null | cut -d: -f1)" = "$NAME" ] || fail "$f is not owned by $NAME"
done
ok "dpkg -i installed $NAME, which owns every file"

# 3. A throwaway cluster and the smoke test.
scripts/cluster.sh stop "$CLUSTER" 2>/dev/null || true
rm -rf "$SOCK"
scripts/cluster.sh start "$CLUSTER" "$PORT"
command psql -X -h "$SOCK" -p "$PORT" -U postgres -d postgres -v version="$upstream" -f tests/package_smoke.sql 2>&1 |
    sed 's/^psql:[^ ]* NOTICE:  /  /' | tee "$SOCK/smoke.out"
grep -q "every check passed" "$SOCK/smoke.out" || fail "the smoke test failed"
scripts/cluster.sh stop "$CLUSTER"
rm -rf "$SOCK"

# 4. dpkg -r leaves nothing.
dpkg -r "$NAME" >/dev/null
dpkg-query -W -f='${Status}' "$NAME" 2>/dev/null | grep -qx "install ok installed" && fail "dpkg -r left $NAME installed"
left=$(ls "$libdir"/medanon* "$extdir"/medanon* 2>/dev/null || true)
[ -z "$left" ] || fail "dpkg -r left: $left"
ok "dpkg -r removed every file"
echo "test-package: passed"
