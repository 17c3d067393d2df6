//! Expose: per-contract anonymized views of the sources (the fourth step of the
//! pipeline). Every contract operation goes describe → plan → apply:
//!
//! - `describe`: the catalog, read once (sources, columns, classes, types, the
//!   grantee, the caller's rights);
//! - the plan: `medanon_core::plan::plan`, pure, owns every rule, name and
//!   statement, and refuses with the key;
//! - apply: `create` (store the contract), `publish` (the person map, the data
//!   tables, the views; refresh), `snapshot` (a frozen copy, hashed into the
//!   ledger); `stats` is safe_counts, counts with small cells suppressed.
//!
//! Revoke, expiry, the report and the consent triggers that keep the map true
//! between refreshes are SQL (`sql/contract_live.sql`); they read the names apply
//! stored in `medanon.contract` and `medanon.contract_table`.

pub mod audit;
pub mod create;
pub mod derive;
pub mod export;
pub mod describe;
pub mod publish;
pub mod snapshot;
pub mod stats;

use crate::error::{raise, spi_failed};
use medanon_core::calendar::Ymd;
use medanon_core::contract::{parse, Contract, Refusal, SpecError};
use medanon_core::plan::{plan, ContractPlan, Purpose};
use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode};

/// The operator's time zone (`medanon.time_zone`), checked: a contract's dates are
/// days there, whatever the session's TimeZone.
pub fn operator_zone() -> String {
    let zone = crate::gucs::time_zone();
    let known = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_timezone_names WHERE name OPERATOR(pg_catalog.=) $1)",
        &[zone.as_str().into()],
    )
    .unwrap_or_else(|e| spi_failed("could not read the time zones", e));
    if known != Some(true) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("medanon.time_zone \"{zone}\" is not a time zone"),
            None,
            Some("set it to a name of pg_timezone_names, such as Asia/Tokyo".into()),
        );
    }
    zone
}

/// Today in the operator's time zone, for "has the spec expired".
pub fn today() -> Ymd {
    let days = Spi::get_one_with_args::<i32>(
        "SELECT (pg_catalog.timezone($1, pg_catalog.now())::date OPERATOR(pg_catalog.-) DATE '2000-01-01')",
        &[operator_zone().as_str().into()],
    )
    .unwrap_or_else(|e| spi_failed("could not read the current date", e))
    .unwrap_or_else(|| raise(PgSqlErrorCode::ERRCODE_DATA_EXCEPTION, "the current date is unknown", None, None));
    Ymd::from_pg_days(days as i64)
}

/// Raises a planner refusal with its kind's SQLSTATE.
pub fn refuse(e: SpecError) -> ! {
    let code = match e.refusal {
        Refusal::InvalidSpec => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        Refusal::UndefinedObject => PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        Refusal::DuplicateObject => PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
        Refusal::UndefinedTable => PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
        Refusal::UndefinedColumn => PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
        Refusal::NotSupported => PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        Refusal::DatatypeMismatch => PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
        Refusal::InsufficientPrivilege => PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
    };
    raise(code, e.client_message(), None, e.hint.clone())
}

/// describe → plan: the catalog read once, and the plan or the refusal.
pub fn planned(contract: &Contract, purpose: Purpose) -> ContractPlan {
    let described = describe::describe(contract, purpose);
    plan(contract, &described, purpose).unwrap_or_else(|e| refuse(e))
}

/// A stored contract, as `medanon.contract` holds it.
pub struct Stored {
    pub contract: Contract,
    pub status: String,
    pub spec_sha256: String,
    /// The schema of its views, as the plan named it at create.
    pub view_schema: String,
}

/// Reads a contract as the caller; refuses an unknown or expired one.
pub fn load(id: &str) -> Stored {
    let zone = operator_zone();
    let row = Spi::connect(|client| {
        let rows = client.select(
            "SELECT spec::text, status, spec_sha256, expires_on::text,
                    expires_on OPERATOR(pg_catalog.<) pg_catalog.timezone($2, pg_catalog.now())::date, view_schema::text
               FROM medanon.contract WHERE contract_id OPERATOR(pg_catalog.=) $1",
            None,
            &[id.into(), zone.as_str().into()],
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
                    r.get::<String>(6)?.unwrap_or_default(),
                ))
            })
            .transpose()
    })
    .unwrap_or_else(|e| spi_failed("could not read the contract", e));
    let Some((spec, status, sha, expires_on, expired, view_schema)) = row else {
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
    Stored { contract, status, spec_sha256: sha, view_schema }
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
    lock_contract_with(client, id, expected, LockScope::Row)
}

/// What `medanon._contract_lock` takes besides the contract row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockScope {
    /// The row alone.
    Row,
    /// Also the views and their current data tables, ACCESS EXCLUSIVE (refresh
    /// replaces them).
    Views,
}

/// Locks the contract row and, by `scope`, the relations the caller's DDL needs,
/// through `medanon._contract_lock`: under a lock timeout and retried, so the row
/// is never held while an analyst's open transaction keeps a view (the consent
/// triggers would wait on it); 55P03 when the analysts do not let go. Then checks
/// the status again.
pub fn lock_contract_with(
    client: &mut pgrx::spi::SpiClient<'_>,
    id: &str,
    expected: &str,
    scope: LockScope,
) -> Result<(), pgrx::spi::SpiError> {
    let scope = match scope {
        LockScope::Row => "row",
        LockScope::Views => "views",
    };
    client.update("SELECT medanon._contract_lock(ARRAY[$1], $2)", None, &[id.into(), scope.into()])?;
    let status = client
        .select("SELECT status FROM medanon.contract WHERE contract_id = $1", None, &[id.into()])?
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

/// A statistics contract's grantee reads no rows, so nothing row-level is
/// released for it: no snapshot.
pub fn refuse_rows_for_statistics(id: &str, contract: &Contract, what: &str) {
    if !contract.spec.kind.grantee_reads_rows() {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("contract \"{id}\" is a statistics contract: it has no {what}"),
            None,
            Some("its grantee gets counts through medanon.safe_counts()".into()),
        );
    }
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
