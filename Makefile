# medanon: the commands a DBA or a developer runs. See README.md.
#   make demo   set up, build, install, start a local cluster and show the pipeline
#   make test   every test tier (unit, #[pg_test], pg_regress, integration as real roles,
#               pgaudit and pg_cron loaded, the Debian package)
#   make bench  the benchmarks, with release LTO; figures go in BENCHMARKS.md
#   make test-citus  the Citus tier: builds Citus 13.2.2 from its tarball, a coordinator and 2 workers
#   make package  a Debian package for PostgreSQL 15 (release LTO) in target/package/
#   make export SNAPSHOT=<schema> DIR=<dir>  a released snapshot as delivery files (CSV, manifest.json),
#               recorded in the provision ledger; connects with libpq's settings (PGHOST, PGUSER, PGSERVICE...)

SHELL := /bin/bash
PG_CONFIG := /usr/lib/postgresql/15/bin/pg_config

.PHONY: setup build install package demo demo-stop test test-citus bench bench-citus bench-stop synth clean-clusters export

setup:
	@scripts/setup.sh

build: setup
	cargo build -p medanon-synth

install: setup
	cargo pgrx install --release --pg-config $(PG_CONFIG)

package: setup
	@scripts/package.sh dist

demo: setup
	@scripts/demo.sh

demo-stop:
	@scripts/cluster.sh stop demo

test: setup
	@scripts/test.sh

# Installs Citus and medanon and starts clusters: run it under the shared lock.
test-citus: setup
	@scripts/test-citus.sh

bench: setup
	@scripts/bench.sh

# One node against a coordinator and two workers; installs and starts clusters (lock).
bench-citus: setup
	@scripts/bench-citus.sh

bench-stop:
	@scripts/cluster.sh stop bench

# Print the synthetic data set as SQL: make synth PATIENTS=1000 SEED=42 | psql
PATIENTS ?= 1000
SEED ?= 42
synth:
	@cargo run -q --release -p medanon-synth -- --patients $(PATIENTS) --seed $(SEED)

# As the snapshot's grantee (the only role that reads it): make export SNAPSHOT=contract_c1_snap_1 DIR=out
# The recipient checks the files: cargo run -q -p medanon-export -- verify out
export:
	@test -n "$(SNAPSHOT)" -a -n "$(DIR)" || { echo "usage: make export SNAPSHOT=<schema> DIR=<dir>" >&2; exit 2; }
	@cargo run -q -p medanon-export -- "$(SNAPSHOT)" "$(DIR)"

clean-clusters:
	-@for c in demo test bench citus-c citus-w1 citus-w2 citusbench-c citusbench-w1 citusbench-w2; do scripts/cluster.sh stop $$c; done
	rm -rf target/clusters target/pgrx-test
