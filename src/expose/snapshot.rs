//! release_snapshot: a frozen copy of a contract's views for delivery, in its own
//! schema `contract_<id>_snap_<n>`, readable by the grantee until the contract
//! expires (a row-level security policy; the tables themselves do not change).
//!
//! The ledger records each table's rows and SHA-256, and the SHA-256 of the
//! whole: a recipient can check what was delivered. The hash of a table is that
//! of its rows' text forms (`row::text`), sorted bytewise (COLLATE "C"), each
//! followed by a newline; the hash of the snapshot is that of the lines
//! `<table>:<hex sha-256>\n` in table-name order (medanon_core::export, which
//! medanon-export and a recipient recompute from the delivered CSV files).

use super::{load, lock_contract, record, require_read_committed, require_status};
use crate::error::spi_failed;
use crate::definer::{as_owner, with_settings};
use medanon_core::export::TEXT_SETTINGS;
use crate::keyring::keyring_and_owner;
use medanon_core::plan::{snapshot_schema, snapshot_schema_ddl, snapshot_table_ddl, PersonState};
use medanon_core::view::ident;
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiError};
use serde_json::json;
use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 and row count of a table, streamed through a cursor.
fn table_digest(client: &SpiClient<'_>, table: &str) -> Result<(String, i64), SpiError> {
    let mut hasher = Sha256::new();
    let mut rows = 0i64;
    let query = format!("SELECT t::text COLLATE \"C\" AS line FROM {table} t ORDER BY 1");
    let mut cursor = client.try_open_cursor(query.as_str(), &[])?;
    loop {
        let batch = cursor.fetch(10_000)?;
        if batch.is_empty() {
            break;
        }
        for row in batch {
            if let Some(line) = row.get::<String>(1)? {
                hasher.update(line.as_bytes());
            }
            hasher.update(b"\n");
            rows += 1;
        }
    }
    Ok((hex(&hasher.finalize()), rows))
}

pub fn release_snapshot(id: &str) -> String {
    require_read_committed("release_snapshot");
    let stored = load(id);
    require_status(id, &stored.status, "published", "publish it first with medanon.publish_contract()");
    super::refuse_rows_for_statistics(id, &stored.contract, "snapshots");
    let contract = stored.contract;
    let id = contract.spec.id.clone();
    let grantee = contract.spec.grantee.clone();
    let expires = contract.expires_on.to_string();
    let sha = stored.spec_sha256;
    let view_schema = stored.view_schema;
    let zone = super::operator_zone();
    let (_, owner) = keyring_and_owner();
    as_owner(owner, move || {
        Spi::connect_mut(|client| {
            // FOR UPDATE: opt-outs wait until the copy is complete, so every table
            // of it shows the same persons.
            lock_contract(client, &id, "published")?;
            // The views as published (their data tables are in contract_table).
            let views: Vec<String> = client
                .select(
                    "SELECT view_name::text FROM medanon.contract_table WHERE contract_id = $1 ORDER BY view_name",
                    None,
                    &[id.as_str().into()],
                )?
                .map(|row| row.get::<String>(1).map(Option::unwrap_or_default))
                .collect::<Result<_, _>>()?;
            let n = client
                .select(
                    "SELECT count(*) + 1 FROM medanon.provision_ledger WHERE contract_id = $1 AND event = 'snapshot'",
                    None,
                    &[id.as_str().into()],
                )?
                .first()
                .get_one::<i64>()?
                .unwrap_or(1);
            let name = snapshot_schema(&view_schema, n);
            let mut ddl = snapshot_schema_ddl(&name, &grantee);
            for v in &views {
                ddl.push_str(&snapshot_table_ddl(&name, &view_schema, v, &grantee, &expires, &zone));
            }
            client.update(ddl.as_str(), None, &[])?;
            let mut tables = serde_json::Map::new();
            let mut whole = Sha256::new();
            let mut total = 0i64;
            // In name order, as the snapshot's hash is defined; values turned into
            // text under fixed settings (medanon_core::export::TEXT_SETTINGS), so
            // that medanon-export and a recipient get the same text whatever this
            // session's DateStyle or TimeZone.
            let settings: Vec<(std::ffi::CString, std::ffi::CString)> = TEXT_SETTINGS
                .iter()
                .filter_map(|(k, v)| Some((std::ffi::CString::new(*k).ok()?, std::ffi::CString::new(*v).ok()?)))
                .collect();
            let settings: Vec<(&std::ffi::CStr, &std::ffi::CStr)> = settings.iter().map(|(k, v)| (k.as_c_str(), v.as_c_str())).collect();
            with_settings(&settings, || {
                for v in &views {
                    let (digest, rows) = table_digest(client, &format!("{}.{}", ident(&name), ident(v)))?;
                    whole.update(format!("{v}:{digest}\n").as_bytes());
                    total += rows;
                    tables.insert(v.clone(), json!({"rows": rows, "sha256": digest}));
                }
                Ok::<_, SpiError>(())
            })?;
            let persons = client
                .select(
                    "SELECT count(*) FROM medanon.contract_person WHERE contract_id = $1 AND state = $2",
                    None,
                    &[id.as_str().into(), PersonState::Visible.name().into()],
                )?
                .first()
                .get_one::<i64>()?;
            let detail = json!({"schema": name, "tables": tables, "sha256": hex(&whole.finalize()), "expires_on": expires});
            record(client, &id, "snapshot", &sha, Some(total), persons, detail)?;
            super::audit::audit_reads(client, &id)?;
            Ok::<_, SpiError>(name)
        })
    })
    .unwrap_or_else(|e| spi_failed("could not release the snapshot", e))
}
