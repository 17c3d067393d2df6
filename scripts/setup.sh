#!/usr/bin/env bash
# Install what medanon needs to build and test, and nothing twice: quick when
# everything is already there. Run as root (Debian); CI runs it from .ci/run.
set -euo pipefail

PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PGRX_VERSION=0.18.0
# pgaudit logs analysts' reads, pg_cron schedules expiry (README, "Operations");
# dpkg-dev gives dpkg-shlibdeps to `make package`.
PACKAGES=(postgresql-15 postgresql-server-dev-15 libclang-dev clang sudo pkg-config
          postgresql-15-pgaudit postgresql-15-cron dpkg-dev)

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
    # The Debian package starts a cluster on 5432; medanon uses its own clusters.
    pg_ctlcluster 15 main stop 2>/dev/null || true
else
    say "Debian packages present"
fi

if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
    say "installing cargo-pgrx $PGRX_VERSION (a few minutes)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
else
    say "cargo-pgrx $PGRX_VERSION present"
fi

PGRX_HOME="${PGRX_HOME:-$HOME/.pgrx}"
if ! grep -qs "pg15 = \"$PG_CONFIG\"" "$PGRX_HOME/config.toml"; then
    say "cargo pgrx init --pg15 $PG_CONFIG"
    cargo pgrx init --pg15 "$PG_CONFIG"
else
    say "cargo pgrx already initialised for $PG_CONFIG"
fi

# The risk cross-check (tests/risk_crosscheck.py) compares with pycanon from PyPI.
if ! python3 -c "import pycanon" 2>/dev/null; then
    say "installing pycanon (PyPI) for the risk cross-check"
    python3 -m pip install --quiet --disable-pip-version-check pycanon
else
    say "pycanon present"
fi

# The DICOM tests (tests/dicom.rs) make their synthetic CT objects, with Japanese
# names, and read medanon's output back with pydicom from PyPI: a second reader.
if ! python3 -c "import pydicom" 2>/dev/null; then
    say "installing pydicom (PyPI) for the DICOM tests"
    python3 -m pip install --quiet --disable-pip-version-check pydicom
else
    say "pydicom present"
fi
