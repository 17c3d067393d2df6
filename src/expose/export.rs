//! record_export: a snapshot written out as delivery files (`medanon-export`) is
//! recorded in the provision ledger. Open to every role, and safe so: the caller
//! must be able to read the snapshot itself (USAGE on its schema, SELECT on every
//! table, checked as the caller), the contract must be live, and the manifest's
//! rows and hashes must equal the snapshot's ledger entry; the entry is written
//! by medanon (as the owner, like safe_counts' entries) from checked values only:
//! the snapshot, the manifest's SHA-256 and counts, nothing the caller words.

use super::record;
use crate::definer::as_owner;
use crate::error::{raise, spi_failed};
use crate::keyring::keyring_and_owner;
use medanon_core::export::{manifest_digest, Manifest, FORMAT};
use pgrx::prelude::*;
use pgrx::spi::SpiError;
use pgrx::PgSqlErrorCode;
use serde_json::json;

fn refuse_manifest(message: String, detail: Option<String>) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        message,
        detail,
        Some("pass manifest.json as medanon-export wrote it, for a snapshot exported unchanged".into()),
    )
}

pub fn record_export(text: &str) -> String {
    let manifest: Manifest = serde_json::from_str(text)
        .unwrap_or_else(|e| refuse_manifest("invalid export manifest".into(), Some(e.to_string())));
    if manifest.format != FORMAT {
        refuse_manifest(format!("export manifest format \"{}\" is not {FORMAT}", manifest.format), None);
    }
    let snapshot = manifest.snapshot.clone();
    let denied = || -> ! {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied for snapshot \"{snapshot}\""),
            None,
            Some("only a role that may read every table of a snapshot records its export".into()),
        )
    };
    // As the caller: the schema (a missing one reads the same as a forbidden one).
    let usage = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace n
                         WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND pg_catalog.has_schema_privilege(n.oid, 'USAGE'))",
        &[snapshot.as_str().into()],
    )
    .unwrap_or_else(|e| spi_failed("could not check the snapshot", e));
    if usage != Some(true) {
        denied();
    }
    let (_, owner) = keyring_and_owner();
    let name = snapshot.clone();
    // As the owner: the snapshot's ledger entry and its contract.
    let entry = as_owner(owner, move || {
        Spi::connect(|client| {
            let rows = client.select(
                "SELECT l.contract_id, l.detail, l.person_count, c.spec_sha256, c.status,
                        c.expires_on OPERATOR(pg_catalog.<) medanon.contract_today()
                   FROM medanon.provision_ledger l JOIN medanon.contract c ON c.contract_id OPERATOR(pg_catalog.=) l.contract_id
                  WHERE l.event OPERATOR(pg_catalog.=) 'snapshot' AND l.detail OPERATOR(pg_catalog.->>) 'schema' OPERATOR(pg_catalog.=) $1",
                None,
                &[name.as_str().into()],
            )?;
            rows.into_iter()
                .next()
                .map(|r| {
                    Ok::<_, SpiError>((
                        r.get::<String>(1)?.unwrap_or_default(),
                        r.get::<pgrx::JsonB>(2)?.map(|j| j.0).unwrap_or_default(),
                        r.get::<i64>(3)?,
                        r.get::<String>(4)?.unwrap_or_default(),
                        r.get::<String>(5)?.unwrap_or_default(),
                        r.get::<bool>(6)?.unwrap_or(true),
                    ))
                })
                .transpose()
        })
    })
    .unwrap_or_else(|e| spi_failed("could not read the snapshot's ledger entry", e));
    let Some((contract_id, detail, persons, spec_sha, status, expired)) = entry else {
        raise(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, format!("\"{snapshot}\" is not a snapshot of medanon's"), None, None)
    };
    if status != "published" || expired {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("contract \"{contract_id}\" is {}: its snapshots are not delivered", if expired { "expired" } else { status.as_str() }),
            None,
            None,
        );
    }
    let ledger_tables = detail.get("tables").and_then(|t| t.as_object()).cloned().unwrap_or_default();
    // As the caller: every table of the snapshot.
    for table in ledger_tables.keys() {
        let may = Spi::get_one_with_args::<bool>(
            "SELECT pg_catalog.has_table_privilege(pg_catalog.format('%I.%I', $1::text, $2::text), 'SELECT')",
            &[snapshot.as_str().into(), table.as_str().into()],
        )
        .unwrap_or_else(|e| spi_failed("could not check the snapshot", e));
        if may != Some(true) {
            denied();
        }
    }
    // The manifest against the ledger: the same tables, rows and hashes.
    if Some(manifest.snapshot_sha256.as_str()) != detail.get("sha256").and_then(|s| s.as_str()) {
        refuse_manifest("the manifest's snapshot_sha256 is not the snapshot's".into(), None);
    }
    let named: Vec<&str> = manifest.tables.iter().map(|t| t.table.as_str()).collect();
    let recorded: Vec<&str> = ledger_tables.keys().map(|k| k.as_str()).collect();
    if named.len() != recorded.len() || !recorded.iter().all(|t| named.contains(t)) {
        refuse_manifest("the manifest's tables are not the snapshot's".into(), Some(format!("manifest: {named:?}; snapshot: {recorded:?}")));
    }
    let mut total = 0i64;
    for t in &manifest.tables {
        let l = &ledger_tables[&t.table];
        if Some(t.rows) != l.get("rows").and_then(|r| r.as_i64()) || Some(t.sha256.as_str()) != l.get("sha256").and_then(|s| s.as_str()) {
            refuse_manifest(format!("table \"{}\" of the manifest does not match the snapshot's ledger entry", t.table), None);
        }
        if t.file != format!("{}.csv", t.table) {
            refuse_manifest(format!("file \"{}\" is not {}.csv", t.file, t.table), None);
        }
        if t.parquet_file.as_ref().is_some_and(|f| *f != format!("{}.parquet", t.table)) {
            refuse_manifest(format!("file \"{}\" is not {}.parquet", t.parquet_file.as_deref().unwrap_or_default(), t.table), None);
        }
        total += t.rows;
    }
    let digest = manifest_digest(text.as_bytes());
    let entry = json!({"snapshot": snapshot, "manifest_sha256": digest, "snapshot_sha256": manifest.snapshot_sha256,
                       "tables": manifest.tables.len(), "format": FORMAT});
    as_owner(owner, move || Spi::connect_mut(|client| record(client, &contract_id, "export", &spec_sha, Some(total), persons, entry)))
        .unwrap_or_else(|e| spi_failed("could not record the export", e));
    digest
}
