#!/usr/bin/env bash
# Build Citus 13.2.2 from its source release for the Citus test tier, outside the
# repository, and install it into PostgreSQL 15 (once). Citus is AGPL-3.0 and a test
# dependency only: its source is never copied into this repository.
#
#   scripts/citus-build.sh build     unpack, patch and compile (no lock needed)
#   scripts/citus-build.sh install   build if needed, then `make install` (take the
#                                    shared lock: it writes into /usr/lib/postgresql/15)
#   scripts/citus-build.sh status    exit 0 when citus is installed, 1 when it can be
#                                    built from the tarball, 2 when neither
#
# MEDANON_CITUS_TARBALL (default ../shared/third_party/citus-13.2.2.tar.gz next to the
# work tree, or /work/shared/third_party/...) and MEDANON_CITUS_BUILD (default
# /var/cache/medanon-citus) override the places.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
VERSION=13.2.2
BUILD="${MEDANON_CITUS_BUILD:-/var/cache/medanon-citus}"
SRC="$BUILD/citus-$VERSION"
PACKAGES=(libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev libselinux1-dev libxslt1-dev libpam0g-dev libreadline-dev)
say() { printf '\033[1m[citus]\033[0m %s\n' "$*"; }

tarball() {
    if [ -n "${MEDANON_CITUS_TARBALL:-}" ]; then echo "$MEDANON_CITUS_TARBALL"; return; fi
    for t in "$ROOT/../shared/third_party/citus-$VERSION.tar.gz" "/work/shared/third_party/citus-$VERSION.tar.gz"; do
        [ -f "$t" ] && { echo "$t"; return; }
    done
    echo ""
}

installed() {
    local lib ext
    # Citus 13.2.2 is extension version 13.2-1.
    lib="$("$PG_CONFIG" --pkglibdir)/citus.so"
    ext="$("$PG_CONFIG" --sharedir)/extension/citus.control"
    [ -f "$lib" ] && grep -qs "default_version = '13.2-1'" "$ext"
}

build() {
    local tb; tb="$(tarball)"
    if [ -f "$SRC/src/backend/distributed/citus.so" ]; then say "already built in $SRC"; return; fi
    [ -n "$tb" ] || { echo "citus-$VERSION.tar.gz not found (set MEDANON_CITUS_TARBALL)" >&2; exit 2; }
    if [ -f "$tb.sha256" ]; then
        (cd "$(dirname "$tb")" && sha256sum -c --quiet "$(basename "$tb").sha256") \
            || { echo "checksum mismatch for $tb" >&2; exit 2; }
    fi
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        say "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    mkdir -p "$BUILD"
    rm -rf "$SRC"
    tar -xzf "$tb" -C "$BUILD"
    # PostgreSQL 15.20 exports have_createdb_privilege() from commands/dbcommands.h;
    # Citus 13.2.2's pg_version_compat.h still defines its own static copy for PG 15,
    # which then fails to compile. When PostgreSQL declares it, Citus's copy gives way.
    local dbh; dbh="$("$PG_CONFIG" --includedir-server)/commands/dbcommands.h"
    if grep -q 'have_createdb_privilege' "$dbh"; then
        perl -0pi -e 's/static inline bool\nhave_createdb_privilege\(void\)\n\{.*?\n\}\n/#include "commands\/dbcommands.h" \/* have_createdb_privilege(), PG 15.20+ *\/\n/s' \
            "$SRC/src/include/pg_version_compat.h"
        if grep -Pzo 'static inline bool\nhave_createdb_privilege' "$SRC/src/include/pg_version_compat.h" >/dev/null; then
            echo "could not patch pg_version_compat.h" >&2; exit 1
        fi
        say "patched pg_version_compat.h: PostgreSQL's have_createdb_privilege() is used"
    fi
    say "configure and build Citus $VERSION in $SRC (a few minutes)"
    (cd "$SRC" && ./configure PG_CONFIG="$PG_CONFIG" --without-libcurl >"$BUILD/configure.log" 2>&1) \
        || { tail -30 "$BUILD/configure.log" >&2; exit 1; }
    (cd "$SRC" && make -j"$(nproc)" >"$BUILD/make.log" 2>&1) \
        || { grep -m20 -E 'error|Error' "$BUILD/make.log" >&2; exit 1; }
    say "built"
}

case "${1:-install}" in
build) build ;;
install)
    if installed; then say "Citus $VERSION already installed"; exit 0; fi
    build
    (cd "$SRC" && make install >"$BUILD/install.log" 2>&1) || { tail -20 "$BUILD/install.log" >&2; exit 1; }
    say "installed into $("$PG_CONFIG" --pkglibdir)"
    ;;
status)
    if installed; then exit 0; fi
    [ -n "$(tarball)" ] && exit 1
    exit 2
    ;;
*) echo "usage: $0 build|install|status" >&2; exit 2 ;;
esac
