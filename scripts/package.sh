#!/usr/bin/env bash
# make package: a Debian package of medanon for PostgreSQL 15,
# target/package/postgresql-15-medanon_<version>-1_<arch>.deb.
#
#   scripts/package.sh [PROFILE]
#
# PROFILE is a cargo profile: `dist` (the default, whole-program LTO, several
# minutes on two cores) for the package a DBA installs; scripts/test-package.sh
# builds with `dev`, which tiers 2 and 3 of `make test` have already compiled, to
# test the packaging itself quickly. The version is Cargo.toml's, as the control
# file pgrx writes carries it; upgrade scripts sql/medanon--A--B.sql go in too.
# Prints the path of the .deb on its last line.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PROFILE=${1:-dist}
NAME=postgresql-15-medanon
OUT="$ROOT/target/package"
STAGE="$OUT/$PROFILE/root"
say() { printf '\033[1m[package]\033[0m %s\n' "$*" >&2; }

say "building with cargo pgrx package --profile $PROFILE"
rm -rf "$STAGE"
cargo pgrx package --profile "$PROFILE" --pg-config "$PG_CONFIG" --out-dir "$STAGE" >&2

libdir=$("$PG_CONFIG" --pkglibdir)
extdir=$("$PG_CONFIG" --sharedir)/extension
control="$STAGE$extdir/medanon.control"
version=$(sed -n "s/^default_version = '\(.*\)'$/\1/p" "$control")
cargo_version=$(cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "medanon"))')
if [ "$version" != "$cargo_version" ]; then
    echo "medanon.control says version '$version', Cargo.toml '$cargo_version'" >&2
    exit 1
fi
for f in "$STAGE$libdir/medanon.so" "$STAGE$extdir/medanon--$version.sql"; do
    [ -s "$f" ] || { echo "cargo pgrx package made no $f" >&2; exit 1; }
done

# Documentation, as Debian places it.
doc="$STAGE/usr/share/doc/$NAME"
mkdir -p "$doc"
cp README.md SECURITY.md "$doc/"
cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: medanon

Files: *
License: PostgreSQL
 Distributed under the PostgreSQL License (see Cargo.toml).
EOF

# Shared-library dependencies of medanon.so, as dpkg-shlibdeps computes them
# (PostgreSQL's own symbols come from the server, hence postgresql-15).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debian"
printf 'Source: medanon\n\nPackage: %s\nArchitecture: any\n' "$NAME" >"$work/debian/control"
shlibs=$(cd "$work" && dpkg-shlibdeps -O --warnings=0 -e"$STAGE$libdir/medanon.so" | sed -n 's/^shlibs:Depends=//p')

arch=$(dpkg --print-architecture)
mkdir -p "$STAGE/DEBIAN"
cat >"$STAGE/DEBIAN/control" <<EOF
Package: $NAME
Version: $version-1
Architecture: $arch
Maintainer: medanon developers <medanon@localhost>
Section: database
Priority: optional
Depends: postgresql-15${shlibs:+, $shlibs}
Suggests: postgresql-15-pgaudit, postgresql-15-cron
Installed-Size: $(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
Description: anonymized research views over linked Japanese medical records
 medanon is a PostgreSQL 15 extension for the certified operator of a
 medical-data warehouse under Japan's Next Generation Medical Infrastructure
 Act (次世代医療基盤法): keyed pseudonyms and date shifts, linking of records
 into persons, the notification and opt-out ledger, and per-contract
 anonymized views with k-anonymity and a provision ledger.
 .
 After installing: CREATE EXTENSION medanon; as a superuser.
EOF
(cd "$STAGE" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$STAGE/DEBIAN/md5sums"

deb="$OUT/${NAME}_${version}-1_${arch}.deb"
[ "$PROFILE" = dist ] || deb="$OUT/${NAME}_${version}-1_${arch}.$PROFILE.deb"
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$deb" >&2
say "built $deb"
echo "$deb"
