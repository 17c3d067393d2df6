//! publish_contract and refresh_contract.
//!
//! describe → plan → apply. The contract's status is checked and the catalog
//! described as the caller (the operator), and planned again: a column may have
//! been reclassified since the contract was created, and the caller must be able
//! to read every column the contract exposes. The plan is applied as the
//! extension owner under a fixed search_path, in one transaction:
//!
//! 1. the contract row is locked FOR UPDATE, and on refresh the views and their
//!    data tables ACCESS EXCLUSIVE, together, under a lock timeout and retried
//!    (`medanon._contract_lock`): an analyst's open transaction on a view never
//!    makes the row wait, so no opt-out waits on an analyst; the consent triggers
//!    wait for the refresh itself and see the new map when they go on
//!    (sql/contract_live.sql);
//! 2. the contract's persons go into an analyzed scratch table, the map as it should
//!    be now into another (`ContractPlan::map_sql`: consent state, token and
//!    offset, kept for persons already there, class, k state), and the difference
//!    into `medanon.contract_person` with plain INSERT and UPDATE;
//! 3. the class counts are rebuilt from the map;
//! 4. every source's visible rows, anonymized, are written into a new data table
//!    in `contract_<id>_data` (owner only), with an index on the token, by which
//!    the consent triggers delete a withheld person's rows;
//! 5. on publish, schema `contract_<id>` gets one view per source over its data
//!    table, readable by the grantee only (a statistics grantee reads none), and
//!    the grantee role gets an idle-in-transaction timeout; on refresh the views
//!    are pointed at the new tables and the old ones dropped (analysts' queries on
//!    them wait for the refresh to commit, then read the new rows);
//! 6. the ledger records the event with the rows of each view and the persons.

use super::{load, lock_contract_with, planned, record, require_read_committed, require_status, LockScope};
use crate::error::spi_failed;
use crate::definer::as_owner;
use crate::keyring::keyring_and_owner;
use medanon_core::plan::{ContractPlan, Purpose};
use medanon_core::refresh::Fallback;
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiError};
use pgrx::JsonB;
use serde_json::json;

pub fn publish_contract(id: &str) -> JsonB {
    run(id, Purpose::Publish, true)
}

/// `full`: recompute everything even when the incremental path could read the
/// changes (see `medanon_core::refresh`).
pub fn refresh_contract(id: &str, full: bool) -> JsonB {
    run(id, Purpose::Refresh, full)
}

/// The refresh snapshot, the cluster it is taken on, and the fingerprint of
/// the plan, as `medanon.contract` stores them.
const STAMP_SQL: &str = "SELECT pg_catalog.pg_current_snapshot()::text, (SELECT s.system_identifier::text FROM pg_catalog.pg_control_system() s)";

fn run(id: &str, purpose: Purpose, full: bool) -> JsonB {
    let (verb, expected, hint) = match purpose {
        Purpose::Refresh => ("refresh_contract", "published", "publish it first with medanon.publish_contract()"),
        _ => ("publish_contract", "created", "a published contract takes new data with medanon.refresh_contract()"),
    };
    require_read_committed(verb);
    let stored = load(id);
    require_status(id, &stored.status, expected, hint);
    let plan = planned(&stored.contract, purpose);
    check_hierarchies(&plan);
    let sha = stored.spec_sha256;
    // The waiting period is part of what the map says (eligible_records): a change
    // of medanon.notice_wait_days changes everyone's consent, so a full refresh.
    let fingerprint = format!("{}:wait={}", plan.fingerprint(), crate::gucs::NOTICE_WAIT_DAYS.get());
    let (_, owner) = keyring_and_owner();
    let summary = as_owner(owner, move || {
        Spi::connect_mut(|client| {
            let id = plan.id.as_str();
            // Decided before the lock, for its scope: an incremental refresh
            // changes the data tables in place and never waits for analysts.
            let fallback = match purpose {
                Purpose::Refresh if !full => why_full(client, &plan, &fingerprint)?,
                Purpose::Refresh => Some(Fallback::Asked),
                _ => None,
            };
            let incremental = purpose == Purpose::Refresh && fallback.is_none();
            lock_contract_with(client, id, expected, if incremental { LockScope::Row } else { LockScope::Views })?;
            if incremental && why_full(client, &plan, &fingerprint)?.is_some() {
                crate::error::raise(
                    pgrx::PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
                    format!("contract \"{id}\" was refreshed in full by another session meanwhile"),
                    None,
                    Some("call refresh_contract again".into()),
                );
            }
            let (snapshot, system) = client.select(STAMP_SQL, None, &[])?.first().get_two::<String, String>()?;
            let (rows, prepared, rewritten) = if incremental {
                apply_incremental(client, &plan)?
            } else {
                let (rows, prepared) = apply_full(client, &plan, purpose)?;
                (rows, prepared, None)
            };
            super::audit::audit_reads(client, id)?;
            let mut summary = summarize(client, &plan, rows)?;
            summary["bounds"] = prepared["bounds"].clone();
            summary["values_replaced"] = prepared["values_replaced"].clone();
            if purpose == Purpose::Refresh {
                summary["mode"] = json!(if incremental { "incremental" } else { "full" });
                if let Some(f) = &fallback {
                    summary["full_because"] = json!(f.reason());
                    if *f != Fallback::Asked {
                        pgrx::notice!("refreshing contract \"{id}\" in full: {}", f.reason());
                    }
                }
                if let Some(n) = rewritten {
                    summary["persons_rewritten"] = json!(n);
                }
            }
            client.update(
                "UPDATE medanon.contract
                    SET status = 'published', published_at = coalesce(published_at, now()), refreshed_at = now(),
                        refresh_snapshot = $2::pg_snapshot, refresh_system = $3, refresh_fingerprint = $4
                  WHERE contract_id = $1",
                None,
                &[id.into(), snapshot.into(), system.into(), fingerprint.as_str().into()],
            )?;
            client.update(PRUNE_CHANGES_SQL, None, &[])?;
            let event = if purpose == Purpose::Publish { "publish" } else { "refresh" };
            let rows = summary["rows"].as_i64();
            let persons = summary["persons"]["visible"].as_i64();
            record(client, id, event, &sha, rows, persons, summary.clone())?;
            Ok::<_, SpiError>(summary)
        })
    })
    .unwrap_or_else(|e| spi_failed("could not publish the contract", e));
    JsonB(summary)
}

/// Deletes the change log entries every published contract's last refresh has
/// seen: those older than the oldest transaction any of their snapshots waited for.
const PRUNE_CHANGES_SQL: &str = "WITH seen AS (
    SELECT coalesce((SELECT min(pg_catalog.pg_snapshot_xmin(c.refresh_snapshot)) FROM medanon.contract c
                      WHERE c.status = 'published' AND c.refresh_snapshot IS NOT NULL),
                    pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())) AS xmin
), sources AS (
    DELETE FROM medanon.source_change sc USING seen WHERE sc.xid < seen.xmin
)
DELETE FROM medanon.consent_change cc USING seen WHERE cc.xid < seen.xmin";

/// Why this refresh cannot read only the changes, or None: the contract's
/// stored snapshot, fingerprint, and each source's tracking.
fn why_full(client: &mut SpiClient<'_>, plan: &ContractPlan, fingerprint: &str) -> Result<Option<Fallback>, SpiError> {
    if !plan.views.iter().all(|v| v.percentiles.is_empty()) {
        return Ok(Some(Fallback::Percentiles));
    }
    let (stored, same_cluster) = client
        .select(
            "SELECT c.refresh_fingerprint,
                    c.refresh_snapshot IS NOT NULL
                    AND c.refresh_system = (SELECT s.system_identifier::text FROM pg_catalog.pg_control_system() s)
               FROM medanon.contract c WHERE c.contract_id = $1",
            None,
            &[plan.id.as_str().into()],
        )?
        .first()
        .get_two::<String, bool>()?;
    if same_cluster != Some(true) {
        return Ok(Some(Fallback::NoSnapshot));
    }
    if stored.as_deref() != Some(fingerprint) {
        return Ok(Some(Fallback::PlanChanged));
    }
    for row in client.select(plan.tracking_sql().as_str(), None, &[])? {
        let source = row.get::<String>(1)?.unwrap_or_default();
        if row.get::<bool>(2)? != Some(false) {
            return Ok(Some(Fallback::Untracked(source)));
        }
        if row.get::<bool>(3)? == Some(true) {
            return Ok(Some(Fallback::Truncated(source)));
        }
    }
    Ok(None)
}

/// Publish, or a full refresh: every person planned again, and a new generation
/// of data tables. Returns the rows per view and the ledger's preparation detail.
/// Runs with [`cheap_gather`]'s `parallel_tuple_cost` and without JIT, both
/// restored afterwards. Its statements run once each over millions of rows, and
/// the planner's costs put them past `jit_optimize_above_cost` and
/// `jit_inline_above_cost`, so each paid for compiling with inlining and
/// optimization, once. Alternated in one run before this change, a publish of the
/// bench contract at 1M persons took 78.1, 78.4 and 77.8 s with JIT and 70.7, 65.4
/// and 77.3 s without; the spread of later runs (69 to 86 s) is as wide as that
/// difference, so the gain is not established beyond the machine's noise
/// (`MEDANON_BENCH_ONLY=publish_jit make bench`, BENCHMARKS.md).
fn apply_full(
    client: &mut SpiClient<'_>,
    plan: &ContractPlan,
    purpose: Purpose,
) -> Result<(Vec<(String, i64)>, serde_json::Value), SpiError> {
    let cost = cheap_gather(client)?;
    crate::definer::with_settings(&[(c"parallel_tuple_cost", cost.as_c_str()), (c"jit", c"off")], || write_full(client, plan, purpose))
}

fn write_full(
    client: &mut SpiClient<'_>,
    plan: &ContractPlan,
    purpose: Purpose,
) -> Result<(Vec<(String, i64)>, serde_json::Value), SpiError> {
    let id = plan.id.as_str();
    if purpose == Purpose::Publish {
        client.update(plan.schemas_ddl().as_str(), None, &[])?;
        client.update(plan.grantee_settings_sql().as_str(), None, &[])?;
    }
    grouped_by_sorting(|| {
        client.update(plan.persons_sql().as_str(), None, &[])?;
        client.update(plan.map_sql().as_str(), None, &[])
    })?;
    // A token drawn twice (about one pair in 2^64 / n^2) is drawn again.
    while client.update(plan.redraw_tokens_sql(true).as_str(), None, &[])?.len() > 0 {}
    for sql in plan.apply_map_sql(purpose) {
        client.update(sql.as_str(), None, &[id.into()])?;
    }
    for sql in plan.store_window_sql() {
        client.update(sql.as_str(), None, &[id.into()])?;
    }
    client.update(plan.drop_scratch_sql(true).as_str(), None, &[])?;
    for sql in plan.classes_sql() {
        client.update(sql.as_str(), None, &[id.into()])?;
    }
    // Percentile bounds and rare values, from the persons now visible.
    for sql in plan.prepare_sql() {
        client.update(sql.as_str(), None, &[])?;
    }
    for sql in plan.record_values_sql() {
        client.update(sql.as_str(), None, &[id.into()])?;
    }
    let prepared = prepared_detail(client, plan)?;
    let rows = write_data(client, plan, purpose)?;
    record_images(client, plan)?;
    client.update(plan.drop_prepared_sql().as_str(), None, &[])?;
    Ok((rows, prepared))
}

/// Runs `f` with `enable_hashagg = off`, restored afterwards: the person steps
/// group and make unique by sorting. A PostgreSQL 15 hashed DISTINCT over millions
/// of rows is planned as a partial hash in each worker under a hash in the
/// leader, and once the leader's hash spills (PostgreSQL's default work_mem is
/// 4MB) it resets and scans its whole bucket array for every one of a great many
/// small batches: the rare values' count, planned so at 1M persons and 10M visits,
/// had not finished after 150 s at 4MB nor after 60 s at 16MB, and took 6.1 s at
/// 64MB (`ContractPlan::prepare_sql` now counts it sorted). Sorts
/// spill gracefully. The persons of the sources cost less sorted in any case
/// (1M persons and 10M visits: 3.6 s hashed at 256MB, 5.3 s at 4MB; 1.5 s sorted
/// through an index on the visits' person column, 2.5 s sorted without one),
/// since a sort reads such an index in order, and the planner, which cannot
/// estimate the distinct persons of a UNION ALL of the sources (it assumes 200),
/// had picked the hash. The other statements of the steps took as long either
/// way (6.3 and 6.4 s for the class and map statement).
fn grouped_by_sorting<R>(f: impl FnOnce() -> R) -> R {
    crate::definer::with_settings(&[(c"enable_hashagg", c"off")], f)
}

/// Runs `f` with `enable_seqscan` and `enable_bitmapscan` off, restored
/// afterwards: the statements of an incremental refresh that find the rewritten
/// persons' rows by `token = ANY (ARRAY(...))` ([`ContractPlan::rewrite_rows_sql`])
/// read them through a plain index scan of the data table's token index, whose
/// btree walks the array's sorted keys. A bitmap scan re-checks every row of a
/// page against the whole array, one element after another (PostgreSQL 15 hashes
/// only constant arrays), and once its bitmap outgrows work_mem the pages go lossy
/// and every row of the table is re-checked: after 100,000 new visits at 1M
/// persons, a refresh at work_mem 4MB had not finished after 300 s. A sequential
/// scan would re-check every row the same way.
fn by_token_index<R>(f: impl FnOnce() -> R) -> R {
    crate::definer::with_settings(&[(c"enable_seqscan", c"off"), (c"enable_bitmapscan", c"off")], f)
}

/// Refuses to go on when an incremental refresh left two persons of the
/// contract with one token ([`ContractPlan::tokens_shared_sql`]): the redraw
/// makes that impossible, so it would be a defect of medanon's, and the
/// transaction is rolled back whole.
fn check_tokens(client: &mut SpiClient<'_>, plan: &ContractPlan) -> Result<(), SpiError> {
    let shared = client
        .select(plan.tokens_shared_sql().as_str(), None, &[plan.id.as_str().into()])?
        .first()
        .get_one::<bool>()?;
    if shared == Some(true) {
        crate::error::raise(
            pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("two persons of contract \"{}\" would share a token", plan.id),
            Some("nothing was written: the publish or refresh was rolled back".into()),
            Some("this is a defect of medanon; report it with the contract's ledger".into()),
        );
    }
    Ok(())
}

/// The planner's cost of passing one row from a parallel worker to the leader
/// for a publish or full refresh: the caller's `parallel_tuple_cost`, at most
/// 0.01 (PostgreSQL's default is 0.1). Its statements pass millions of rows
/// through a Gather into a table the leader writes, and the default kept them on
/// one core: with workers, writing the visits' data table took 10.5 s instead of
/// 16.2 s at 10M rows, the rare values' counts 9.5 s instead of 12.4 s (2 cores,
/// the bench contract's tables of `make bench`, each statement run alone). A
/// lower setting of the operator's is kept; so is
/// `max_parallel_workers_per_gather = 0`, which no cost can override.
fn cheap_gather(client: &mut SpiClient<'_>) -> Result<std::ffi::CString, SpiError> {
    let current = client
        .select("SELECT pg_catalog.current_setting('parallel_tuple_cost')::float8", None, &[])?
        .first()
        .get_one::<f64>()?;
    let lowered = current.map_or(0.01, |v| v.min(0.01));
    Ok(std::ffi::CString::new(lowered.to_string()).expect("a number has no NUL"))
}

/// An incremental refresh (`medanon_core::refresh`): only the persons whose rows
/// or consent changed, the persons their classes flip, and the rows whose rare
/// values resolve otherwise, in the current data tables. Returns the rows per
/// view, the ledger's preparation detail, and the persons rewritten.
fn apply_incremental(
    client: &mut SpiClient<'_>,
    plan: &ContractPlan,
) -> Result<(Vec<(String, i64)>, serde_json::Value, Option<i64>), SpiError> {
    let id = plan.id.as_str();
    for sql in plan.touched_sql() {
        client.update(sql.as_str(), None, &[])?;
    }
    let touched = client.select(&format!("SELECT count(*) FROM {}", plan.touched_table()), None, &[])?.first().get_one::<i64>()?;
    if touched == Some(0) {
        // Nothing changed: nothing to plan or write.
        client.update(
            &format!("DROP TABLE {}, {}, {}", plan.touched_table(), plan.persons_table(), plan.gone_table()),
            None,
            &[],
        )?;
        for sql in plan.prepare_tables_sql() {
            client.update(sql.as_str(), None, &[])?;
        }
        let prepared = prepared_detail(client, plan)?;
        client.update(plan.drop_prepared_sql().as_str(), None, &[])?;
        return Ok((row_counts(client, plan)?, prepared, Some(0)));
    }
    grouped_by_sorting(|| client.update(plan.class_sql().as_str(), None, &[]))?;
    let widened = client.select(plan.window_widened_sql().as_str(), None, &[])?.first().get_one::<bool>()?;
    if widened == Some(true) {
        // A wider window only adds offsets: the persons the calendar withholds are checked again.
        for sql in plan.recheck_calendar_sql() {
            client.update(sql.as_str(), None, &[])?;
        }
        grouped_by_sorting(|| client.update(plan.class_sql().as_str(), None, &[]))?;
    }
    for sql in plan.incremental_map_sql() {
        client.update(sql.as_str(), None, &[])?;
    }
    while client.update(plan.redraw_tokens_sql(false).as_str(), None, &[])?.len() > 0 {}
    client.update(plan.rewrite_sql().as_str(), None, &[])?;
    let rewritten = client
        .select(&format!("SELECT count(*) FROM {}", plan.map_table()), None, &[])?
        .first()
        .get_one::<i64>()?;
    for sql in plan.apply_incremental_map_sql() {
        client.update(sql.as_str(), None, &[id.into()])?;
    }
    check_tokens(client, plan)?;
    for sql in plan.store_window_sql() {
        client.update(sql.as_str(), None, &[id.into()])?;
    }
    for sql in plan.incremental_classes_sql() {
        client.update(sql.as_str(), None, &[id.into()])?;
    }
    let tables = data_tables(client, plan)?;
    client.update(plan.rare_old_create_sql().as_str(), None, &[])?;
    for (i, table) in tables.iter().enumerate() {
        let rewrite = plan.rewrite_rows_sql(i, table);
        by_token_index(|| {
            for sql in &rewrite.before {
                client.update(sql.as_str(), None, &[id.into()])?;
            }
            Ok::<_, SpiError>(())
        })?;
        let deleted = by_token_index(|| client.update(rewrite.delete.as_str(), None, &[]))?.len() as i64;
        let inserted = client.update(rewrite.insert.as_str(), None, &[])?.len() as i64;
        by_token_index(|| {
            for sql in &rewrite.after {
                client.update(sql.as_str(), None, &[id.into()])?;
            }
            Ok::<_, SpiError>(())
        })?;
        client.update(
            "UPDATE medanon.contract_table SET row_count = row_count - $3 + $4 WHERE contract_id = $1 AND view_name = $2",
            None,
            &[id.into(), plan.views[i].name.as_str().into(), deleted.into(), inserted.into()],
        )?;
    }
    record_images(client, plan)?;
    for sql in plan.prepare_tables_sql() {
        client.update(sql.as_str(), None, &[])?;
    }
    for (i, table) in tables.iter().enumerate() {
        for sql in plan.incremental_rare_sql(i, table) {
            client.update(sql.as_str(), None, &[])?;
        }
    }
    for sql in plan.record_values_sql() {
        client.update(sql.as_str(), None, &[id.into()])?;
    }
    let prepared = prepared_detail(client, plan)?;
    client.update(plan.drop_prepared_sql().as_str(), None, &[])?;
    client.update(plan.drop_scratch_sql(false).as_str(), None, &[])?;
    client.update(plan.drop_incremental_sql().as_str(), None, &[])?;
    for table in &tables {
        // Fresh statistics: the old ones may hold values of persons the refresh withheld.
        let data = format!("{}.{}", medanon_core::view::ident(&plan.data_schema), medanon_core::view::ident(table));
        client.update(&format!("ANALYZE {data}"), None, &[])?;
    }
    Ok((row_counts(client, plan)?, prepared, rewritten))
}

/// The rows of each view's data table, as `medanon.contract_table` counts them.
fn row_counts(client: &mut SpiClient<'_>, plan: &ContractPlan) -> Result<Vec<(String, i64)>, SpiError> {
    let mut rows = Vec::with_capacity(plan.views.len());
    for view in &plan.views {
        let n = client
            .select(
                "SELECT row_count FROM medanon.contract_table WHERE contract_id = $1 AND view_name = $2",
                None,
                &[plan.id.as_str().into(), view.name.as_str().into()],
            )?
            .first()
            .get_one::<i64>()?;
        rows.push((view.name.clone(), n.unwrap_or(0)));
    }
    Ok(rows)
}

/// The current data table of each view, in view order.
fn data_tables(client: &mut SpiClient<'_>, plan: &ContractPlan) -> Result<Vec<String>, SpiError> {
    let mut tables = Vec::with_capacity(plan.views.len());
    for view in &plan.views {
        let table = client
            .select(
                "SELECT data_table::text FROM medanon.contract_table WHERE contract_id = $1 AND view_name = $2",
                None,
                &[plan.id.as_str().into(), view.name.as_str().into()],
            )?
            .first()
            .get_one::<String>()?;
        tables.push(table.unwrap_or_default());
    }
    Ok(tables)
}

/// Counts the DICOM objects withheld for a burned-in annotation in each view's
/// current data table (issue 20; `contract_report` sums them).
fn record_images(client: &mut SpiClient<'_>, plan: &ContractPlan) -> Result<(), SpiError> {
    if plan.views.iter().all(|v| v.images.is_empty()) {
        return Ok(());
    }
    for (i, table) in data_tables(client, plan)?.iter().enumerate() {
        if plan.views[i].images.is_empty() {
            continue;
        }
        for sql in plan.images_withheld_sql(i, table) {
            client.update(sql.as_str(), None, &[plan.id.as_str().into()])?;
        }
    }
    Ok(())
}

/// What the ledger records of the preparation (percentile bounds, values replaced).
fn prepared_detail(client: &mut SpiClient<'_>, plan: &ContractPlan) -> Result<serde_json::Value, SpiError> {
    Ok(client
        .select(plan.prepared_detail_sql().as_str(), None, &[plan.id.as_str().into()])?
        .first()
        .get_one::<JsonB>()?
        .map_or(json!({}), |j| j.0))
}

/// Writes a new generation of data tables, points the views at them, and stores
/// in `medanon.contract_table` what SQL needs of each view: its data table, the
/// view column that shows the token, and the data table's token column.
fn write_data(client: &mut SpiClient<'_>, plan: &ContractPlan, purpose: Purpose) -> Result<Vec<(String, i64)>, SpiError> {
    let id = plan.id.as_str();
    let mut rows = Vec::with_capacity(plan.views.len());
    for (i, view) in plan.views.iter().enumerate() {
        let generation = client
            .select(
                "SELECT generation FROM medanon.contract_table WHERE contract_id = $1 AND view_name = $2",
                None,
                &[id.into(), view.name.as_str().into()],
            )?
            .next()
            .map(|r| r.get::<i32>(1))
            .transpose()?
            .flatten()
            .map_or(1, |g| g + 1);
        let written = client.update(plan.materialize_sql(i, generation).as_str(), None, &[])?.len();
        rows.push((view.name.clone(), written as i64));
        client.update(plan.index_sql(i, generation).as_str(), None, &[])?;
        crate::citus::distribute_contract_data(client, plan, i, generation)?;
        client.update(plan.view_sql(i, generation, purpose).as_str(), None, &[])?;
        client.update(
            "INSERT INTO medanon.contract_table (contract_id, view_name, data_schema, data_table, generation, person_column, token_column,
                                                 person_level, row_count)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (contract_id, view_name) DO UPDATE
                SET data_table = EXCLUDED.data_table, generation = EXCLUDED.generation,
                    person_column = EXCLUDED.person_column, token_column = EXCLUDED.token_column, row_count = EXCLUDED.row_count",
            None,
            &[
                id.into(),
                view.name.as_str().into(),
                plan.data_schema.as_str().into(),
                plan.data_table(i, generation).into(),
                generation.into(),
                view.person_column.clone().into(),
                medanon_core::plan::TOKEN_COLUMN.into(),
                view.person_level.into(),
                (written as i64).into(),
            ],
        )?;
    }
    Ok(rows)
}

/// Rows per view, and persons per state and the smallest class as
/// `contract_report` counts them, for the ledger and the caller.
fn summarize(client: &mut SpiClient<'_>, plan: &ContractPlan, rows: Vec<(String, i64)>) -> Result<serde_json::Value, SpiError> {
    let total: i64 = rows.iter().map(|(_, n)| n).sum();
    let views: serde_json::Map<String, serde_json::Value> = rows.into_iter().map(|(name, n)| (name, json!(n))).collect();
    let report = client
        .select(
            "SELECT jsonb_build_object('visible', persons_exposed, 'k', persons_suppressed_k,
                                       'consent', persons_excluded_consent, 'unlinked', persons_unlinked,
                                       'changed', persons_changed, 'calendar', persons_calendar),
                    min_class_size
               FROM medanon.contract_report($1)",
            None,
            &[plan.id.as_str().into()],
        )?
        .first()
        .get_two::<JsonB, i32>()?;
    let (persons, min_class) = report;
    Ok(json!({
        "schema": plan.schema,
        "views": views,
        "rows": total,
        "persons": persons.map(|j| j.0),
        "min_class_size": min_class,
    }))
}

/// A table hierarchy a contract names must exist, be readable by the caller (the
/// owner reads it at publish, and its labels are shown), and have a value column
/// and at least one level: checked as the caller, before anything is written.
fn check_hierarchies(plan: &ContractPlan) {
    use medanon_core::contract::HierarchyName;
    for (i, rare) in plan.rare_columns() {
        let Some(HierarchyName::Table(table)) = &rare.hierarchy else { continue };
        let key = format!("tables[{i}].columns.{}", rare.column);
        let found = Spi::get_two_with_args::<bool, i64>(
            "SELECT pg_catalog.has_table_privilege(r, 'SELECT'),
                    (SELECT pg_catalog.count(*) FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid OPERATOR(pg_catalog.=) r AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped)
               FROM pg_catalog.to_regclass($1) r WHERE r IS NOT NULL",
            &[table.as_str().into()],
        );
        let refuse = |code, message: String, hint: &str| -> ! {
            crate::error::raise(code, format!("invalid contract spec at \"{key}\": {message}"), None, Some(hint.into()))
        };
        match found {
            Ok((Some(true), Some(n))) if n >= 2 => {}
            Ok((Some(true), _)) => refuse(
                pgrx::PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("hierarchy table {table} needs a value column and at least one level column"),
                "its first column is the value, each next column the next level up",
            ),
            Ok((Some(false), _)) => refuse(
                pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("permission denied for hierarchy table {table}"),
                "the role that publishes a contract must be able to read the hierarchies it names",
            ),
            _ => refuse(
                pgrx::PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                format!("hierarchy table {table} does not exist"),
                "name it as schema.table, or use the built-in \"icd10\"",
            ),
        }
    }
}
