#!/usr/bin/env bash
# A Citus cluster on loopback for the Citus tier and its benchmark: a coordinator
# and two workers, each a private PostgreSQL 15 (scripts/cluster.sh) with
# shared_preload_libraries=citus, a database with citus in it, and the workers
# added to the coordinator (which is in the metadata too, so reference tables
# have a placement on it).
#
#   scripts/citus-cluster.sh start PREFIX PORT DB [setting=value...]
#       clusters PREFIX-c on PORT, PREFIX-w1 on PORT+1, PREFIX-w2 on PORT+2
#   scripts/citus-cluster.sh stop PREFIX
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cmd=$1 prefix=$2
case "$cmd" in
start)
    port=$3 db=$4; shift 4
    i=0
    for node in c w1 w2; do
        p=$((port + i)); i=$((i + 1))
        # max_prepared_transactions: Citus commits a write on several nodes with 2PC.
        RUST_BACKTRACE=${RUST_BACKTRACE:-} "$ROOT/scripts/cluster.sh" start "$prefix-$node" "$p" \
            shared_preload_libraries=citus max_prepared_transactions=50 "$@"
        command psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$p" -U postgres -d postgres \
            -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
        command psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$p" -U postgres -d "$db" \
            -c "SET client_min_messages = warning" -c "CREATE EXTENSION citus" >/dev/null
    done
    command psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" \
        -c "SELECT pg_catalog.citus_set_coordinator_host('127.0.0.1', $port)" \
        -c "SELECT pg_catalog.citus_add_node('127.0.0.1', $((port + 1)))" \
        -c "SELECT pg_catalog.citus_add_node('127.0.0.1', $((port + 2)))" >/dev/null
    # As README ("Scale out with Citus") tells a DBA: medanon's roles exist on every
    # node before CREATE EXTENSION medanon. Created by the extension script on a new
    # cluster, Citus propagates each CREATE ROLE to the workers over one connection
    # while it creates the extension there over another, in the same distributed
    # transaction, and the two wait on each other (40P01, distributed deadlock).
    command psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" -c "DO \$\$ DECLARE r text; BEGIN
        FOREACH r IN ARRAY ARRAY['medanon_operator', 'medanon_auditor', 'medanon_read_audit'] LOOP
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN EXECUTE format('CREATE ROLE %I NOLOGIN', r); END IF;
        END LOOP; END \$\$" >/dev/null
    ;;
stop)
    for node in c w1 w2; do "$ROOT/scripts/cluster.sh" stop "$prefix-$node"; done
    ;;
*)
    echo "usage: $0 start PREFIX PORT DB [setting=value...] | stop PREFIX" >&2
    exit 2
    ;;
esac
