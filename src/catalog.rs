//! The catalog reader: a relation's name and columns, as kanon, risk and link need
//! them to check what a caller names before any query is built.

use crate::error::{raise, spi_failed};
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::collections::HashSet;

/// A relation as the catalog names it: quoted for a query, bare for messages, and
/// its column names.
pub struct Relation {
    pub qualified: String,
    pub display: String,
    pub columns: HashSet<String>,
}

impl Relation {
    /// A column of this relation, or 42703.
    pub fn column<'a>(&self, column: &'a str) -> &'a str {
        if !self.columns.contains(column) {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                format!("column \"{column}\" of relation \"{}\" does not exist", self.display),
                None,
                Some("column names are case-sensitive and given without quotes".into()),
            );
        }
        column
    }
}

/// Reads a relation's name and columns from the catalog.
pub fn describe(rel: pg_sys::Oid) -> Relation {
    let (qualified, display) = names(rel);
    Relation { qualified, display, columns: column_names(rel).into_iter().collect() }
}

/// A relation's schema-qualified name, quoted, and its bare name; 42P01 if there
/// is no such relation (any more).
pub fn names(rel: pg_sys::Oid) -> (String, String) {
    let names = Spi::get_two_with_args::<String, String>(
        "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
         WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[rel.into()],
    );
    match names {
        Ok((Some(schema), Some(name))) => (format!("{}.{}", quote_identifier(&schema), quote_identifier(&name)), name),
        _ => raise(PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE, "relation does not exist", None, None),
    }
}

/// A relation's column names, in their order.
pub fn column_names(rel: pg_sys::Oid) -> Vec<String> {
    Spi::connect(|client| {
        client
            .select(
                "SELECT attname::text FROM pg_catalog.pg_attribute \
                 WHERE attrelid OPERATOR(pg_catalog.=) $1 AND attnum OPERATOR(pg_catalog.>) 0 AND NOT attisdropped \
                 ORDER BY attnum",
                None,
                &[rel.into()],
            )?
            .map(|row| row.get::<String>(1))
            .collect::<Result<Vec<_>, _>>()
    })
    .unwrap_or_else(|e| spi_failed("could not read the columns", e))
    .into_iter()
    .flatten()
    .collect()
}
