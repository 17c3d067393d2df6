//! k-anonymity of a relation: the size of its smallest equivalence class over a set
//! of quasi-identifiers, counted in rows or in distinct persons.
//!
//! The query runs as the caller (SECURITY INVOKER), so it can only measure what the
//! caller may already read. Column names are checked against the catalog and
//! quoted, never pasted in.

use crate::catalog::{describe, Relation};
use crate::error::{raise, spi_failed};
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::collections::HashSet;

/// A relation and columns checked against the catalog, quoted for a query.
pub struct Checked {
    pub relation: String,
    /// Quasi-identifiers: (name as given, quoted).
    pub qis: Vec<(String, String)>,
    /// The person column, quoted.
    pub person: Option<String>,
    described: Relation,
}

impl Checked {
    /// Another column of the same relation, quoted (for a sensitive attribute).
    pub fn column(&self, name: &str) -> String {
        quote_identifier(self.described.column(name))
    }

    pub fn group_by(&self) -> String {
        self.qis.iter().map(|(_, q)| q.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// `count(DISTINCT person)`, or `count(*)` without a person column.
    pub fn count(&self) -> String {
        match &self.person {
            Some(p) => format!("pg_catalog.count(DISTINCT {p})"),
            None => "pg_catalog.count(*)".to_string(),
        }
    }
}

/// Validate a relation, its quasi-identifiers and person column.
pub fn check(rel: pg_sys::Oid, quasi_identifiers: &[Option<String>], person_column: Option<&str>) -> Checked {
    let relation = describe(rel);
    if quasi_identifiers.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "quasi_identifiers must not be empty",
            None,
            Some("name the columns that identify a person in combination, for example ARRAY['age_band','sex']".into()),
        );
    }
    let mut seen = HashSet::new();
    let mut qis = Vec::with_capacity(quasi_identifiers.len());
    for qi in quasi_identifiers {
        let Some(qi) = qi.as_deref() else {
            raise(PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED, "quasi_identifiers must not contain NULL", None, None)
        };
        if !seen.insert(qi) {
            raise(
                PgSqlErrorCode::ERRCODE_DUPLICATE_COLUMN,
                format!("column \"{qi}\" is listed twice in quasi_identifiers"),
                None,
                None,
            );
        }
        qis.push((qi.to_string(), quote_identifier(relation.column(qi))));
    }
    let person = person_column.map(|p| quote_identifier(relation.column(p)));
    Checked { relation: relation.qualified.clone(), qis, person, described: relation }
}

/// Validate the arguments and build the query of the smallest class size.
pub fn class_size_query(rel: pg_sys::Oid, quasi_identifiers: &[Option<String>], person_column: Option<&str>) -> String {
    let c = check(rel, quasi_identifiers, person_column);
    format!(
        "SELECT pg_catalog.min(class_size) FROM (SELECT {} AS class_size FROM {} GROUP BY {}) AS classes",
        c.count(),
        c.relation,
        c.group_by()
    )
}

pub fn k_anonymity(rel: pg_sys::Oid, quasi_identifiers: Vec<Option<String>>, person_column: Option<&str>) -> Option<i64> {
    let query = class_size_query(rel, &quasi_identifiers, person_column);
    Spi::get_one::<i64>(&query)
        .unwrap_or_else(|e| spi_failed("could not measure k", e))
}
