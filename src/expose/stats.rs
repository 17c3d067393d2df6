//! safe_counts: distinct persons per cell of a contract view, with the grand total
//! and every margin, small cells suppressed (`medanon_core::cells`).
//!
//! It runs as the caller and reads the view through the caller's own grants, so
//! it can never show more than the caller may read: a grantee counts its own
//! views, and anyone else gets 42501. The person column is the view's token
//! column, which the contract names.

use crate::error::{raise, spi_failed};
use medanon_core::cells::{suppress, Cell, Level, Suppression};
use medanon_core::view::ident;
use pgrx::prelude::*;
use pgrx::{pg_sys, JsonB, PgSqlErrorCode};

/// At most this many grouping columns: the cube has 2^n groupings.
const MAX_GROUP_BY: usize = 4;

fn bad(message: impl Into<String>, hint: Option<&str>) -> ! {
    raise(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, message, None, hint.map(String::from))
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
    // The view's schema and person column, as apply stored them (a definer
    // function: they are names, which pg_class shows anyone; the view's own grants
    // decide who reads it).
    let found = Spi::connect(|client| {
        client
            .select(
                "SELECT c.oid, v.view_schema::text, v.person_column::text
                   FROM medanon._contract_view($1, $2) v
                   JOIN pg_catalog.pg_namespace n ON n.nspname OPERATOR(pg_catalog.=) v.view_schema
                   JOIN pg_catalog.pg_class c ON c.relnamespace OPERATOR(pg_catalog.=) n.oid
                    AND c.relname OPERATOR(pg_catalog.=) $2 AND c.relkind OPERATOR(pg_catalog.=) 'v'",
                None,
                &[contract_id.into(), view_name.into()],
            )?
            .next()
            .map(|r| Ok::<_, pgrx::spi::SpiError>((r.get::<pg_sys::Oid>(1)?, r.get::<String>(2)?, r.get::<String>(3)?)))
            .transpose()
    })
    .unwrap_or_else(|e| spi_failed("could not find the view", e));
    let Some((Some(view), Some(schema), person)) = found else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("contract \"{contract_id}\" has no view \"{view_name}\""),
            None,
            Some("name a published contract and one of the views in its schema contract_<id>".into()),
        );
    };
    let allowed = Spi::get_one_with_args::<bool>("SELECT pg_catalog.has_table_privilege($1, 'SELECT')", &[view.into()])
        .unwrap_or_else(|e| spi_failed("could not check privileges", e));
    if allowed != Some(true) {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied for view {schema}.{view_name}"),
            None,
            Some("safe_counts counts the views of the caller's own contract only".into()),
        );
    }
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
    let mut cells = Spi::connect(|client| {
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
    .unwrap_or_else(|e| spi_failed("could not count the view", e));
    // An empty view has no grand total row to show either.
    cells.retain(|c| c.persons > 0);
    suppress(&mut cells, min_cell as i64);
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
