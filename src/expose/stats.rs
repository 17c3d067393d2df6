//! safe_counts: distinct persons per cell of a contract view, with the grand total
//! and every margin, small cells suppressed (`medanon_core::cells`).
//!
//! The floor belongs to the contract: a cell under the spec's `min_cell` (10 by
//! default) is never shown, whatever the caller passes (a lower value is raised to
//! it, `medanon_core::plan::effective_min_cell`).
//!
//! An anonymized or pseudonymized contract: it runs as the caller and reads the
//! view through the caller's own grants, so it can never show more than the
//! caller may read: a grantee counts its own views, and anyone else gets 42501.
//!
//! A statistics contract: its grantee may not read the views, so the counts are
//! read as the extension owner, after checking that the caller has the grantee's
//! rights (or the operator's); anyone else gets the same 42501 before anything
//! of the contract is read. Suppressed cells are left out (as the NDB tables show
//! 0 and 1-9 alike, so a cell's absence tells nothing), and every call goes in the
//! provision ledger as `safe_counts`, numbered by a sequence (a rolled-back call
//! leaves a gap) and logged to the server log.

use super::load;
use crate::error::{raise, spi_failed};
use crate::definer::as_owner;
use crate::keyring::keyring_and_owner;
use medanon_core::cells::{suppress, Cell, Level, Suppression};
use medanon_core::contract::Kind;
use medanon_core::plan::{effective_min_cell, CountsCall};
use medanon_core::view::ident;
use pgrx::prelude::*;
use pgrx::{pg_sys, JsonB, PgSqlErrorCode};

/// At most this many grouping columns: the cube has 2^n groupings.
const MAX_GROUP_BY: usize = 4;

fn bad(message: impl Into<String>, hint: Option<&str>) -> ! {
    raise(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, message, None, hint.map(String::from))
}

/// What the owner reads of a published contract's view.
struct Found {
    view: pg_sys::Oid,
    schema: String,
    person: Option<String>,
    kind: String,
    grantee: String,
}

fn denied(schema: &str, view_name: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("permission denied for view {schema}.{view_name}"),
        None,
        Some("safe_counts counts the views of the caller's own contract only".into()),
    )
}

type Row = (JsonB, Option<i64>, Option<String>);

pub fn safe_counts(contract_id: &str, view_name: &str, group_by: Vec<Option<String>>, min_cell: i32) -> Vec<Row> {
    if min_cell < 1 {
        bad(format!("min_cell must be at least 1, not {min_cell}"), Some("the NDB publication rule uses 10"));
    }
    let columns: Vec<String> = group_by.into_iter().map(|c| c.unwrap_or_else(|| bad("group_by holds a NULL", None))).collect();
    if columns.is_empty() || columns.len() > MAX_GROUP_BY {
        bad(format!("group_by must name 1 to {MAX_GROUP_BY} columns, not {}", columns.len()), None);
    }
    for (i, c) in columns.iter().enumerate() {
        if columns[..i].contains(c) {
            bad(format!("group_by names \"{c}\" twice"), None);
        }
    }
    // As the owner: the view's schema, person column, and its contract's kind and
    // grantee (names, which pg_class shows anyone, and the grantee, which the
    // view's ACL shows; nothing else is read before the caller is checked).
    let (_, owner) = keyring_and_owner();
    let (id, name) = (contract_id.to_string(), view_name.to_string());
    let found = as_owner(owner, move || {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT r.oid, c.view_schema::text, ct.person_column::text, c.kind, c.grantee::text
                       FROM medanon.contract c
                       JOIN medanon.contract_table ct ON ct.contract_id = c.contract_id
                       JOIN pg_namespace n ON n.nspname = c.view_schema
                       JOIN pg_class r ON r.relnamespace = n.oid AND r.relname = ct.view_name AND r.relkind = 'v'
                      WHERE c.contract_id = $1 AND c.status = 'published' AND ct.view_name = $2",
                    None,
                    &[id.as_str().into(), name.as_str().into()],
                )?
                .next()
                .map(|r| {
                    Ok::<_, pgrx::spi::SpiError>(Found {
                        view: r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid),
                        schema: r.get::<String>(2)?.unwrap_or_default(),
                        person: r.get::<String>(3)?,
                        kind: r.get::<String>(4)?.unwrap_or_default(),
                        grantee: r.get::<String>(5)?.unwrap_or_default(),
                    })
                })
                .transpose()
        })
    })
    .unwrap_or_else(|e| spi_failed("could not find the view", e));
    let Some(Found { view, schema, person, kind, grantee }) = found else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("contract \"{contract_id}\" has no view \"{view_name}\""),
            None,
            Some("name a published contract and one of the views in its schema contract_<id>".into()),
        );
    };
    let statistics = kind == Kind::Statistics.name();
    // As the caller. A statistics contract: the caller has the grantee's rights,
    // or the operator's (who reads the raw data anyway). Any other: the caller
    // may SELECT the view.
    let allowed = if statistics {
        Spi::get_one_with_args::<bool>(
            "SELECT CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) $1)
                         THEN pg_catalog.pg_has_role(CURRENT_USER, $1::name, 'USAGE') ELSE false END
                    OR pg_catalog.pg_has_role(CURRENT_USER, 'medanon_operator', 'USAGE')",
            &[grantee.as_str().into()],
        )
    } else {
        Spi::get_one_with_args::<bool>("SELECT pg_catalog.has_table_privilege($1, 'SELECT')", &[view.into()])
    }
    .unwrap_or_else(|e| spi_failed("could not check privileges", e));
    if allowed != Some(true) {
        denied(&schema, view_name);
    }
    // Only now the contract itself: expired (55000), its floor and spec hash.
    let id = contract_id.to_string();
    let stored = as_owner(owner, move || load(&id));
    let floor = stored.contract.min_cell();
    let applied = effective_min_cell(min_cell, floor);
    let person = person.unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("view {schema}.{view_name} has no person column, so persons cannot be counted"),
            None,
            Some("the contract must expose the person column as a token".into()),
        )
    });
    let described = crate::catalog::describe(view);
    for c in &columns {
        if !described.columns.contains(c) {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                format!("column \"{c}\" of view {schema}.{view_name} does not exist"),
                None,
                None,
            );
        }
    }
    let quoted: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let texts: Vec<String> = quoted.iter().map(|c| format!("{c}::text")).collect();
    let query = format!(
        "SELECT {}, GROUPING({})::int, count(DISTINCT {}) FROM {}.{} GROUP BY CUBE ({})",
        texts.join(", "),
        quoted.join(", "),
        ident(&person),
        ident(&schema),
        ident(view_name),
        quoted.join(", ")
    );
    let n = columns.len();
    let count = move || {
        Spi::connect(|client| {
            client
                .select(query.as_str(), None, &[])?
                .map(|row| {
                    let grouping = row.get::<i32>(n + 1)?.unwrap_or(0);
                    let mut key = Vec::with_capacity(n);
                    for i in 0..n {
                        // GROUPING's leftmost argument is its most significant bit.
                        if grouping & (1 << (n - 1 - i)) != 0 {
                            key.push(Level::Total);
                        } else {
                            key.push(Level::Value(row.get::<String>(i + 1)?));
                        }
                    }
                    Ok(Cell::new(key, row.get::<i64>(n + 2)?.unwrap_or(0)))
                })
                .collect::<Result<Vec<_>, pgrx::spi::SpiError>>()
        })
    };
    // A statistics grantee has no SELECT on the view: the owner reads it for it.
    let mut cells = if statistics { as_owner(owner, count) } else { count() }
        .unwrap_or_else(|e| spi_failed("could not count the view", e));
    // An empty view has no grand total row to show either.
    cells.retain(|c| c.persons > 0);
    suppress(&mut cells, applied as i64);
    if statistics {
        let suppressed = cells.iter().filter(|c| c.suppressed.is_some()).count();
        cells.retain(|c| c.suppressed.is_none());
        let total = cells.iter().find(|c| c.key.iter().all(|l| *l == Level::Total)).map(|c| c.persons);
        record_call(owner, contract_id, &stored.spec_sha256, view_name, &columns, min_cell, applied, cells.len(), suppressed, total);
    }
    cells.sort_by(|a, b| {
        let totals = |c: &Cell| c.key.iter().filter(|l| **l == Level::Total).count();
        totals(a).cmp(&totals(b)).then_with(|| a.key.cmp(&b.key))
    });
    cells
        .into_iter()
        .map(|c| {
            let mut cell = serde_json::Map::new();
            for (name, level) in columns.iter().zip(&c.key) {
                if let Level::Value(v) = level {
                    cell.insert(name.clone(), v.clone().map_or(serde_json::Value::Null, serde_json::Value::String));
                }
            }
            let suppression = c.suppressed.map(|s| match s {
                Suppression::Primary => "primary".to_string(),
                Suppression::Secondary => "secondary".to_string(),
            });
            let persons = if c.suppressed.is_some() { None } else { Some(c.persons) };
            (JsonB(serde_json::Value::Object(cell)), persons, suppression)
        })
        .collect()
}

/// Records one call of a statistics contract in the provision ledger, as the
/// owner, in the caller's transaction; its number comes from a sequence, which a
/// rollback does not take back, and the server log gets a line too.
#[allow(clippy::too_many_arguments)]
fn record_call(
    owner: pg_sys::Oid,
    contract_id: &str,
    spec_sha256: &str,
    view_name: &str,
    group_by: &[String],
    asked: i32,
    applied: i32,
    shown: usize,
    suppressed: usize,
    total: Option<i64>,
) {
    let role = Spi::get_one::<String>("SELECT CURRENT_USER::text")
        .unwrap_or_else(|e| spi_failed("could not read the current user", e))
        .unwrap_or_default();
    let (id, sha, view, group_by) = (contract_id.to_string(), spec_sha256.to_string(), view_name.to_string(), group_by.to_vec());
    let call = as_owner(owner, move || {
        Spi::connect_mut(|client| {
            let call = client
                .update("SELECT pg_catalog.nextval('medanon.safe_counts_call')", None, &[])?
                .first()
                .get_one::<i64>()?
                .unwrap_or(0);
            let detail = CountsCall {
                call,
                role: &role,
                view: &view,
                group_by: &group_by,
                min_cell_asked: asked,
                min_cell: applied,
                cells_shown: shown,
                cells_suppressed: suppressed,
            }
            .detail();
            super::record(client, &id, "safe_counts", &sha, None, total, detail)?;
            Ok::<_, pgrx::spi::SpiError>(call)
        })
    })
    .unwrap_or_else(|e| spi_failed("could not record the counts in the provision ledger", e));
    pgrx::log!(
        "medanon: safe_counts call {call} of statistics contract \"{contract_id}\", view \"{view_name}\": {shown} cells shown, {suppressed} suppressed"
    );
}
