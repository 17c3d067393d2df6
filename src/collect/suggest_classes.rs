//! `suggest_classes`: a suggested class for each column of a source table, from its
//! name and a bounded sample of its values (medanon_core::classify_suggest). It
//! never classifies: `medanon.classify` stays the operator's act.
//!
//! It runs as the caller (SECURITY INVOKER) and reads the sample through the
//! caller's own rights, so a role reads no sample of a table, or of rows under
//! row-level security, that it could not read with SELECT. It checks SELECT on the
//! table first, so a caller without it gets 42501 before any value is read, rather
//! than evidence drawn from the columns it may read.

use crate::catalog::names;
use crate::error::{raise, spi_failed};
use medanon_core::classify_suggest::{suggest, SAMPLE_SIZE, SCAN_ROWS};
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use pgrx::{pg_sys, PgSqlErrorCode};

pub fn suggest_classes(rel: Option<pg_sys::Oid>) -> Vec<(String, String, String)> {
    let Some(rel) = rel else {
        raise(PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED, "rel must not be NULL", None, Some("name the source table, for example 'staging.registration'".into()))
    };
    let (qualified, display) = names(rel);
    let may_read = Spi::get_one_with_args::<bool>("SELECT pg_catalog.has_table_privilege($1, 'SELECT')", &[rel.into()])
        .unwrap_or_else(|e| spi_failed("could not check the privilege", e))
        .unwrap_or(false);
    if !may_read {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied for table {display}"),
            Some("suggest_classes reads a sample of the table's values, so it needs SELECT on the table".into()),
            Some("run it as the role that loads the table, or have its owner grant SELECT".into()),
        );
    }
    let columns: Vec<(String, String)> = Spi::connect(|client| {
        client
            .select(
                "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, NULL) FROM pg_catalog.pg_attribute a \
                 WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                None,
                &[rel.into()],
            )?
            .map(|row| Ok((row.get::<String>(1)?.unwrap_or_default(), row.get::<String>(2)?.unwrap_or_default())))
            .collect::<Result<Vec<_>, pgrx::spi::SpiError>>()
    })
    .unwrap_or_else(|e| spi_failed("could not read the columns", e));
    columns
        .into_iter()
        .map(|(column, type_name)| {
            let col = quote_identifier(&column);
            // The first non-NULL values among the first rows a scan meets, as
            // text, read through the caller's rights: bounded in rows read too, so
            // a mostly-NULL column of a large table is not scanned to its end.
            let sql = format!(
                "SELECT v::text FROM (SELECT {col} AS v FROM {qualified} LIMIT {SCAN_ROWS}) s \
                 WHERE v IS NOT NULL LIMIT {SAMPLE_SIZE}"
            );
            let sample: Vec<String> = Spi::connect(|client| {
                client.select(&sql, None, &[])?.map(|row| row.get::<String>(1)).collect::<Result<Vec<_>, _>>()
            })
            .unwrap_or_else(|e| spi_failed("could not sample the table", e))
            .into_iter()
            .flatten()
            .collect();
            let s = suggest(&column, &type_name, &sample);
            (column, s.class.to_string(), s.evidence)
        })
        .collect()
}
