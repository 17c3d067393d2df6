//! medanon on a Citus cluster: one key set for the coordinator and its workers,
//! the grantee on every node, and contract data tables distributed with their sources.
//!
//! Everything here is found at run time: without the `citus` extension in the
//! database every function below returns at once and nothing changes.
//!
//! **Keys.** Each node keeps its own `medanon.keyring` (keyed functions read it
//! straight from the heap, also in a parallel worker: see `keyring`). The
//! coordinator's keyring is the cluster's: `citus_sync_keys()`, and `rotate_key()`
//! on the coordinator, copy it into every worker's keyring inside the coordinator's
//! distributed transaction, through the reference table `medanon.keyring_transfer`
//! (sql/citus.sql). Each key row carries its check value, made where the key was
//! made; a worker refuses to compute with a key that is not a copy of the
//! coordinator's (origin 'cluster') or does not match its check value.
//!
//! **Tables.** The keyring, the ledgers, `person_link`, the consent tables and the
//! contract maps stay local to the coordinator (README, "Scale out with Citus").
//! Only a contract's data tables follow their sources onto the workers
//! (`distribute_contract_data`).

use crate::definer::with_settings;
use crate::error::{raise, spi_failed};
use medanon_core::plan::{ContractPlan, TOKEN_COLUMN};
use medanon_core::view::ident;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::{pg_sys, PgSqlErrorCode, PgTupleDesc};

/// Whether the `citus` extension is installed in this database (a catalog lookup,
/// no SQL, so it works in a parallel worker too).
pub fn present() -> bool {
    unsafe { pg_sys::get_extension_oid(c"citus".as_ptr(), true) != pg_sys::InvalidOid }
}

/// This node's Citus group: 0 on the coordinator, above 0 on a worker, `None`
/// without Citus. Read from `pg_dist_local_group`'s heap under the statement's
/// snapshot, as the keyring is, so a parallel worker reads it too.
pub fn local_group() -> Option<i32> {
    if !present() {
        return None;
    }
    let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
    unsafe {
        let relid = pg_sys::get_relname_relid(c"pg_dist_local_group".as_ptr(), pg_sys::PG_CATALOG_NAMESPACE.into());
        if relid == pg_sys::InvalidOid {
            return None;
        }
        let rel = pg_sys::table_open(relid, lock);
        let desc = (*rel).rd_att;
        let at = PgTupleDesc::from_pg_unchecked(desc)
            .iter()
            .find(|a| !a.is_dropped() && a.name() == "groupid")
            .map(|a| a.num() as i32);
        let mut group = None;
        if let Some(at) = at {
            let snapshot =
                if pg_sys::ActiveSnapshotSet() { pg_sys::GetActiveSnapshot() } else { pg_sys::GetTransactionSnapshot() };
            let scan = pg_sys::systable_beginscan(rel, pg_sys::InvalidOid, false, snapshot, 0, std::ptr::null_mut());
            let tuple = pg_sys::systable_getnext(scan);
            if !tuple.is_null() {
                let mut isnull = false;
                let datum = pg_sys::heap_getattr(tuple, at, desc, &mut isnull);
                if !isnull {
                    group = i32::from_datum(datum, false);
                }
            }
            pg_sys::systable_endscan(scan);
        }
        pg_sys::table_close(rel, lock);
        group
    }
}

/// Whether this node is a Citus worker (its keys must be the coordinator's).
pub fn is_worker() -> bool {
    local_group().is_some_and(|g| g > 0)
}

/// On a coordinator with workers, `Some(number of workers)`; `None` elsewhere.
fn workers(client: &mut SpiClient<'_>) -> Result<Option<i64>, pgrx::spi::SpiError> {
    if !present() || is_worker() {
        return Ok(None);
    }
    let n = client
        .select(
            "SELECT pg_catalog.count(*) FROM pg_catalog.pg_dist_node
              WHERE groupid OPERATOR(pg_catalog.<>) 0 AND isactive AND noderole OPERATOR(pg_catalog.=) 'primary'",
            None,
            &[],
        )?
        .first()
        .get_one::<i64>()?
        .unwrap_or(0);
    Ok((n > 0).then_some(n))
}

/// Copies the coordinator's keyring into every worker's, inside the current
/// (distributed) transaction. Returns the number of workers, 0 when there are none
/// or Citus is absent. Called by `citus_sync_keys()` and by `rotate_key()`.
///
/// The rows travel as `INSERT INTO <reference table> SELECT ... FROM <local table>`,
/// which Citus runs by pulling the rows to the coordinator and sending them to
/// each placement with COPY, in its two-phase commit: the key material is never
/// part of a statement's text (no log line, no pg_stat_activity), and either
/// every node has the new key at commit or none has.
pub fn push_keys() -> i64 {
    let pushed = Spi::connect_mut(|client| {
        let Some(n) = workers(client)? else { return Ok(0) };
        let distributed = client
            .select(
                "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                                 WHERE logicalrelid OPERATOR(pg_catalog.=) 'medanon.keyring_transfer'::pg_catalog.regclass)",
                None,
                &[],
            )?
            .first()
            .get_one::<bool>()?
            .unwrap_or(false);
        if !distributed {
            // The conduit's BEFORE INSERT trigger is what stores a key on a worker:
            // Citus allows a trigger on a reference table only when asked to. The
            // setting is local to this transaction and set back at once.
            client.update(
                "SELECT pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
                 SELECT pg_catalog.create_reference_table('medanon.keyring_transfer');
                 SELECT pg_catalog.set_config('citus.enable_unsafe_triggers', 'off', true);",
                None,
                &[],
            )?;
        }
        client.update(
            "INSERT INTO medanon.keyring_transfer (key_id, purpose, material, active, created_at, retired_at, check_value)
             SELECT key_id, purpose, material, active, created_at, retired_at, check_value
               FROM medanon.keyring ORDER BY active, key_id",
            None,
            &[],
        )?;
        Ok::<_, pgrx::spi::SpiError>(n)
    });
    pushed.unwrap_or_else(|e| spi_failed("could not copy the medanon keys to the Citus workers", e))
}

/// `citus_sync_keys()`: the coordinator's keys onto every worker, after CREATE
/// EXTENSION (which makes different keys on every node) and after adding a node.
pub fn sync_keys() -> i64 {
    if !present() {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "citus is not installed in this database",
            None,
            Some("medanon.citus_sync_keys() is for a Citus coordinator; on one node there is nothing to copy".into()),
        );
    }
    refuse_on_worker("citus_sync_keys");
    push_keys()
}

/// Raises when this node is a Citus worker: key management runs on the coordinator.
pub fn refuse_on_worker(what: &str) {
    if is_worker() {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("{what} runs on the Citus coordinator, not on a worker"),
            Some(format!("this node is in Citus node group {}", local_group().unwrap_or(0))),
            Some("run it on the coordinator: it changes the keys of every node in one distributed transaction".into()),
        );
    }
}

/// Checks that the grantee role exists on every worker, before a contract's DDL
/// (grants on distributed data tables reach the workers). Without Citus, or on a
/// node without workers, nothing to check.
pub fn require_role_on_every_node(grantee: &str) {
    let missing = Spi::connect_mut(|client| {
        if workers(client)?.is_none() {
            return Ok(Vec::new());
        }
        let rows = client.select(
            "SELECT nodename || ':' || nodeport FROM pg_catalog.run_command_on_workers(
                 pg_catalog.format('SELECT pg_catalog.count(*) FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) %L', $1::text))
              WHERE NOT success OR result OPERATOR(pg_catalog.<>) '1' ORDER BY 1",
            None,
            &[grantee.into()],
        )?;
        rows.map(|r| r.get::<String>(1).map(|n| n.unwrap_or_default())).collect::<Result<Vec<_>, _>>()
    })
    .unwrap_or_else(|e| spi_failed("could not look for the grantee on the Citus workers", e));
    if !missing.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("role \"{grantee}\" does not exist on every Citus node"),
            Some(format!("missing on {}", missing.join(", "))),
            Some("create the role on the coordinator while citus.enable_create_role_propagation is on (the default), or on each worker, then publish again".into()),
        );
    }
}

/// Runs `f` with Citus's DDL propagation off: medanon's own DDL (a contract's
/// schemas, views, grants and snapshots, linking's temporary view) belongs on the
/// coordinator, where the analysts and the operator log in. Without this, Citus
/// tries to copy each view to the workers and warns that it "will be created only
/// locally", and a GRANT to a role the workers lack fails there. What must reach
/// the workers (a distributed data table) turns it back on
/// (`distribute_contract_data`). Without Citus, `f` runs as it is.
pub fn ddl_stays_local<R>(f: impl FnOnce() -> R) -> R {
    if present() {
        with_settings(&[(c"citus.enable_ddl_propagation", c"off")], f)
    } else {
        f()
    }
}

/// After the data table of view `index` (generation `generation`) is written and
/// indexed: when its source is a hash-distributed table, distributes it too, on
/// the token column (`_token`) and colocated with the contract's other data tables
/// (and with no source table), so an analyst's aggregate over the
/// view runs on the workers. Without Citus, on a node with no workers, or over a
/// local source, nothing happens: the table stays on the coordinator.
///
/// Citus runs the shard queries of an analyst's query as the analyst, so on the
/// workers the grantee reads the data table's shards: it gets SELECT there (and
/// USAGE on the data schema), and the same grants are revoked on the coordinator at
/// once, where the view, with its expiry gate, stays the only way in. The grantee
/// is checked on every node first (42704), before any DDL reaches a worker.
pub fn distribute_contract_data(
    client: &mut SpiClient<'_>,
    plan: &ContractPlan,
    index: usize,
    generation: i32,
) -> Result<(), pgrx::spi::SpiError> {
    if workers(client)?.is_none() {
        return Ok(());
    }
    if generation > 1 {
        retire_distributed(client, &plan.data_schema, &plan.data_table(index, generation - 1))?;
    }
    let source = &plan.views[index].source;
    let distributed = client
        .select(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                             WHERE logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass
                               AND partmethod OPERATOR(pg_catalog.=) 'h')",
            None,
            &[source.as_str().into()],
        )?
        .first()
        .get_one::<bool>()?
        .unwrap_or(false);
    if !distributed {
        return Ok(());
    }
    let reads_rows = plan.kind.grantee_reads_rows();
    if reads_rows {
        require_role_on_every_node(&plan.grantee);
    }
    let schema = ident(&plan.data_schema);
    let table = format!("{schema}.{}", ident(&plan.data_table(index, generation)));
    let grantee = ident(&plan.grantee);
    // Colocated with the contract's other data tables of this generation, and with
    // nothing else: a bigint token would otherwise fall into the sources' colocation
    // group (person_id is a bigint too), and Citus refuses DDL on a placement whose
    // colocated placements this transaction read over several connections (publish
    // reads the sources first).
    let suffix = format!("_g{generation}");
    let peer = client
        .select(
            "SELECT p.logicalrelid::pg_catalog.regclass::pg_catalog.text
               FROM pg_catalog.pg_dist_partition p
               JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.logicalrelid
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
              WHERE n.nspname OPERATOR(pg_catalog.=) $1
                AND pg_catalog.right(c.relname::pg_catalog.text, pg_catalog.length($2)) OPERATOR(pg_catalog.=) $2
              ORDER BY 1 LIMIT 1",
            None,
            &[plan.data_schema.as_str().into(), suffix.as_str().into()],
        )?
        .next()
        .map(|r| r.get::<String>(1))
        .transpose()?
        .flatten()
        .unwrap_or_else(|| "none".to_string());
    with_settings(&[(c"citus.enable_ddl_propagation", c"on"), (c"client_min_messages", c"warning")], || {
        client.update(
            "SELECT pg_catalog.create_distributed_table($1::pg_catalog.regclass, $2, colocate_with => $3);
             SELECT pg_catalog.truncate_local_data_after_distributing_table($1::pg_catalog.regclass);",
            None,
            &[table.as_str().into(), TOKEN_COLUMN.into(), peer.as_str().into()],
        )?;
        if reads_rows {
            client.update(&format!("GRANT USAGE ON SCHEMA {schema} TO {grantee}; GRANT SELECT ON {table} TO {grantee};"), None, &[])?;
        }
        Ok::<_, pgrx::spi::SpiError>(())
    })?;
    if reads_rows {
        // Propagation is off again here (the caller's `ddl_stays_local`): the
        // coordinator's grants go, the workers' stay.
        with_settings(&[(c"citus.enable_ddl_propagation", c"off")], || {
            client.update(&format!("REVOKE SELECT ON {table} FROM {grantee}; REVOKE USAGE ON SCHEMA {schema} FROM {grantee};"), None, &[])
        })?;
    }
    Ok(())
}

/// Before a refresh drops the data table of the generation before (in the view's
/// DDL, which runs with propagation off and so would leave the table's shards and
/// metadata behind on the workers): when that table is distributed, removes its
/// metadata and shards everywhere, as Citus's own DROP TABLE trigger would, and
/// leaves the coordinator's empty local table for the refresh to drop. Its rows
/// are gone from then on, in this transaction only; the refresh holds the views'
/// ACCESS EXCLUSIVE locks, so no analyst reads in between.
fn retire_distributed(client: &mut SpiClient<'_>, schema: &str, table: &str) -> Result<(), pgrx::spi::SpiError> {
    let qualified = format!("{}.{}", ident(schema), ident(table));
    let distributed = client
        .select(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                             WHERE logicalrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1))",
            None,
            &[qualified.as_str().into()],
        )?
        .first()
        .get_one::<bool>()?
        .unwrap_or(false);
    if !distributed {
        return Ok(());
    }
    with_settings(&[(c"citus.enable_ddl_propagation", c"on")], || {
        client.update(
            "SELECT pg_catalog.master_remove_distributed_table_metadata_from_workers($1::pg_catalog.regclass, $2, $3);
             SELECT pg_catalog.citus_drop_all_shards($1::pg_catalog.regclass, $2, $3, false);
             SELECT pg_catalog.master_remove_partition_metadata($1::pg_catalog.regclass, $2, $3);",
            None,
            &[qualified.as_str().into(), schema.into(), table.into()],
        )
        .map(|_| ())
    })
}

#[pg_extern(volatile, parallel_unsafe)]
fn citus_sync_keys() -> i64 {
    sync_keys()
}

#[pg_extern(stable, parallel_safe)]
fn key_check_values() -> TableIterator<'static, (name!(purpose, String), name!(key_id, i32), name!(check_value, String))> {
    TableIterator::new(crate::keyring::check_values())
}

#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe)]
fn _keyring_apply(
    key_id: i32,
    purpose: &str,
    material: &[u8],
    active: bool,
    created_at: pgrx::datum::TimestampWithTimeZone,
    retired_at: Option<pgrx::datum::TimestampWithTimeZone>,
    check_value: Option<&[u8]>,
) -> bool {
    crate::keyring::apply_transferred_key(key_id, purpose, material, active, created_at, retired_at, check_value)
}
