//! Expose: per-contract anonymized views of the sources (the fourth step of the
//! pipeline), in four parts:
//!
//! - `create`: a contract spec checked against the catalog and stored;
//! - `publish`: the operator's person map (tokens, offsets, classes, consent
//!   states), the contract schema with one view per source, and refresh;
//! - `snapshot`: a frozen copy for delivery, hashed into the ledger;
//! - `stats`: safe_counts, counts with small cells suppressed, for the grantee.
//!
//! Revoke, expiry, the report and the consent triggers that keep the map true
//! between refreshes are SQL (`sql/contract_live.sql`).

pub mod create;
pub mod publish;
pub mod snapshot;
pub mod stats;

use crate::error::{raise, spi_failed};
use medanon_core::calendar::Ymd;
use medanon_core::contract::{parse, Contract, Rule};
use medanon_core::view::{Source, SourceColumn};
use pgrx::prelude::*;
use pgrx::{pg_sys, JsonB, PgSqlErrorCode};

pub fn today() -> Ymd {
    let days = Spi::get_one::<i32>("SELECT (CURRENT_DATE OPERATOR(pg_catalog.-) DATE '2000-01-01')")
        .ok()
        .flatten()
        .unwrap_or(0);
    Ymd::from_pg_days(days as i64)
}

/// The schema of a contract's views. Contract ids are `[a-z][a-z0-9_]{0,39}`
/// (checked by the spec parser), so the name is a plain identifier.
pub fn schema_of(id: &str) -> String {
    format!("contract_{id}")
}

/// A stored contract, as `medanon.contract` holds it.
pub struct Stored {
    pub contract: Contract,
    pub status: String,
    pub spec_sha256: String,
}

/// Reads a contract as the caller; refuses an unknown or expired one.
pub fn load(id: &str) -> Stored {
    let row = Spi::connect(|client| {
        let rows = client.select(
            "SELECT spec::text, status, spec_sha256, expires_on::text,
                    expires_on OPERATOR(pg_catalog.<) CURRENT_DATE
               FROM medanon.contract WHERE contract_id OPERATOR(pg_catalog.=) $1",
            None,
            &[id.into()],
        )?;
        rows.into_iter()
            .next()
            .map(|r| {
                Ok::<_, pgrx::spi::SpiError>((
                    r.get::<String>(1)?.unwrap_or_default(),
                    r.get::<String>(2)?.unwrap_or_default(),
                    r.get::<String>(3)?.unwrap_or_default(),
                    r.get::<String>(4)?.unwrap_or_default(),
                    r.get::<bool>(5)?.unwrap_or(false),
                ))
            })
            .transpose()
    })
    .unwrap_or_else(|e| spi_failed("could not read the contract", e));
    let Some((spec, status, sha, expires_on, expired)) = row else {
        raise(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, format!("contract \"{id}\" does not exist"), None, None)
    };
    if expired && status != "revoked" {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("contract \"{id}\" expired on {expires_on}"),
            None,
            Some("its views show nothing; medanon.expire_contracts() closes it and records the expiry".into()),
        );
    }
    // The spec passed every check when it was created; parse it again for its rules.
    let contract = parse(&spec, today()).unwrap_or_else(|e| {
        raise(PgSqlErrorCode::ERRCODE_DATA_CORRUPTED, format!("stored contract \"{id}\" no longer parses"), Some(e.to_string()), None)
    });
    Stored { contract, status, spec_sha256: sha }
}

/// Refuses anything but the expected status, naming what it is.
pub fn require_status(id: &str, status: &str, expected: &str, hint: &str) {
    if status != expected {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("contract \"{id}\" is {status}, not {expected}"),
            None,
            Some(hint.into()),
        );
    }
}

/// Locks the contract row FOR UPDATE, as the owner, and checks its status again:
/// another session may have published or revoked it since `load`. While the lock
/// is held, the consent triggers wait (sql/contract_live.sql).
pub fn lock_contract(client: &mut pgrx::spi::SpiClient<'_>, id: &str, expected: &str) -> Result<(), pgrx::spi::SpiError> {
    let status = client
        .update("SELECT status FROM medanon.contract WHERE contract_id = $1 FOR UPDATE", None, &[id.into()])?
        .first()
        .get_one::<String>()?;
    if status.as_deref() != Some(expected) {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("contract \"{id}\" is {}, not {expected}", status.unwrap_or_default()),
            None,
            None,
        );
    }
    Ok(())
}

/// The map and the views must read the consent ledger as of now, which only
/// READ COMMITTED gives each statement (see the lock protocol in
/// sql/contract_live.sql).
pub fn require_read_committed(what: &str) {
    let level = Spi::get_one::<String>("SELECT pg_catalog.current_setting('transaction_isolation')").ok().flatten();
    if level.as_deref() != Some("read committed") {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_TRANSACTION_STATE,
            format!("{what} must run at READ COMMITTED"),
            Some(format!("the transaction is {}", level.unwrap_or_default())),
            Some("an older snapshot could miss an opt-out committed meanwhile".into()),
        );
    }
}

/// The catalog's view of each source table of a contract, in spec order.
pub fn sources(contract: &Contract) -> Vec<(pg_sys::Oid, Source)> {
    contract
        .spec
        .tables
        .iter()
        .map(|t| {
            let row = Spi::get_three_with_args::<pg_sys::Oid, String, String>(
                "SELECT c.oid, n.nspname::text, c.relname::text FROM pg_catalog.pg_class c
                   JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                  WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)",
                &[t.source.as_str().into()],
            );
            let (oid, schema, table) = match row {
                Ok((Some(o), Some(s), Some(t))) => (o, s, t),
                Ok(_) | Err(pgrx::spi::SpiError::InvalidPosition) => raise(
                    PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                    format!("source table \"{}\" does not exist", t.source),
                    None,
                    None,
                ),
                Err(e) => spi_failed("could not read the source", e),
            };
            let registered = Spi::get_two_with_args::<String, String>(
                "SELECT person_column::text, institution_column::text FROM medanon.source
                  WHERE source_schema OPERATOR(pg_catalog.=) $1 AND source_table OPERATOR(pg_catalog.=) $2",
                &[schema.as_str().into(), table.as_str().into()],
            );
            let (person_column, institution_column) = match registered {
                Ok((Some(p), i)) => (p, i),
                Ok(_) | Err(pgrx::spi::SpiError::InvalidPosition) => raise(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("\"{}\" is no longer a registered source", t.source),
                    None,
                    Some("register it again with medanon.register_source()".into()),
                ),
                Err(e) => spi_failed("could not read the source", e),
            };
            let columns = Spi::connect(|client| {
                client
                    .select(
                        "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, NULL), sc.class
                           FROM pg_catalog.pg_attribute a
                           LEFT JOIN medanon.source_column sc
                             ON sc.source_schema OPERATOR(pg_catalog.=) $2 AND sc.source_table OPERATOR(pg_catalog.=) $3
                            AND sc.column_name OPERATOR(pg_catalog.=) a.attname
                          WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0
                            AND NOT a.attisdropped
                          ORDER BY a.attnum",
                        None,
                        &[oid.into(), schema.as_str().into(), table.as_str().into()],
                    )?
                    .map(|row| {
                        Ok(SourceColumn {
                            name: row.get::<String>(1)?.unwrap_or_default(),
                            type_name: row.get::<String>(2)?.unwrap_or_default(),
                            class: row.get::<String>(3)?,
                        })
                    })
                    .collect::<Result<Vec<_>, pgrx::spi::SpiError>>()
            })
            .unwrap_or_else(|e| spi_failed("could not read the source columns", e));
            (oid, Source { schema, table, person_column, institution_column, columns })
        })
        .collect()
}

/// The caller must be able to read every column a contract exposes or filters
/// on: views run as the extension owner, so without this check an operator could
/// publish a table it may not read to a grantee it chose.
pub fn require_caller_reads(contract: &Contract, sources: &[(pg_sys::Oid, Source)]) {
    for ((oid, source), table) in sources.iter().zip(&contract.spec.tables) {
        let used = table
            .columns
            .iter()
            .filter(|(_, rule)| **rule != Rule::Drop)
            .map(|(c, _)| c.as_str())
            .chain(std::iter::once(source.person_column.as_str()))
            .chain(source.institution_column.as_deref());
        for column in used {
            let allowed = Spi::get_one_with_args::<bool>(
                "SELECT pg_catalog.has_column_privilege($1, $2, 'SELECT')",
                &[(*oid).into(), column.into()],
            )
            .unwrap_or_else(|e| spi_failed("could not check privileges", e));
            if allowed != Some(true) {
                raise(
                    PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    format!("permission denied for column \"{column}\" of \"{}\"", table.source),
                    None,
                    Some("the role that publishes a contract must be able to read what the contract exposes".into()),
                );
            }
        }
    }
}

/// Appends to the provision ledger. `recorded_by` is the session user, also when
/// the entry is written as the extension owner.
pub fn record(
    client: &mut pgrx::spi::SpiClient<'_>,
    id: &str,
    event: &str,
    spec_sha256: &str,
    rows: Option<i64>,
    persons: Option<i64>,
    detail: serde_json::Value,
) -> Result<(), pgrx::spi::SpiError> {
    client.update(
        "INSERT INTO medanon.provision_ledger (contract_id, event, spec_sha256, row_count, person_count, detail)
         VALUES ($1, $2, $3, $4, $5, $6)",
        None,
        &[id.into(), event.into(), spec_sha256.into(), rows.into(), persons.into(), JsonB(detail).into()],
    )?;
    Ok(())
}
