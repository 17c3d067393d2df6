//! Contract creation: the spec is parsed and checked in `medanon_core::contract`,
//! then against the catalog here (tables, columns, classes, types, the grantee),
//! stored, and recorded in the provision ledger. Runs as the caller
//! (medanon_operator). Publishing checks the catalog again, since a column may
//! have been reclassified since.

use super::{record, today};
use crate::error::raise;
use medanon_core::contract::{parse, Contract, Kind, Rule};
use pgrx::prelude::*;
use pgrx::spi::SpiError;
use pgrx::{pg_sys, JsonB, PgSqlErrorCode};
use sha2::{Digest, Sha256};

fn refuse(code: PgSqlErrorCode, path: &str, message: impl Into<String>, hint: Option<&str>) -> ! {
    raise(code, format!("invalid contract spec at \"{path}\": {}", message.into()), None, hint.map(String::from))
}

fn spi_failed(e: SpiError) -> ! {
    crate::error::spi_failed("could not check the contract against the catalog", e)
}

/// The type families a rule accepts.
fn type_fits(rule: &Rule, type_name: &str) -> bool {
    let is = |names: &[&str]| names.contains(&type_name);
    const TEXT: &[&str] = &["text", "character varying", "character", "name"];
    const NUMBER: &[&str] = &["smallint", "integer", "bigint", "numeric", "real", "double precision"];
    const DATES: &[&str] = &["date", "timestamp without time zone", "timestamp with time zone"];
    match rule {
        Rule::Drop | Rule::Keep | Rule::Token => true,
        // Refused before the type is looked at (see check_catalog).
        Rule::Auto => true,
        Rule::Shift => is(DATES),
        Rule::AgeBand { .. } => type_name == "date",
        Rule::TruncateDate(_) => type_name == "date",
        Rule::PostalPrefix(_) | Rule::Prefecture => is(TEXT),
        Rule::TopCode(_) | Rule::BottomCode(_) => is(NUMBER),
    }
}

/// Checks a parsed contract against the catalog; refuses with the key path.
/// `creating`: the contract id must be new.
pub fn check_catalog(c: &Contract, creating: bool) {
    let grantee_exists = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) $1)",
        &[c.spec.grantee.as_str().into()],
    )
    .unwrap_or_else(|e| spi_failed(e));
    if grantee_exists != Some(true) {
        refuse(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, "grantee", format!("role \"{}\" does not exist", c.spec.grantee), None);
    }
    if c.spec.kind == Kind::Pseudonymized {
        let certified = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT FROM medanon.certified_user WHERE role_name OPERATOR(pg_catalog.=) $1)",
            &[c.spec.grantee.as_str().into()],
        )
        .unwrap_or_else(|e| spi_failed(e));
        if certified != Some(true) {
            refuse(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "grantee",
                format!("\"{}\" is not a registered certified user, required for a pseudonymized contract", c.spec.grantee),
                Some("register it with medanon.register_certified_user()"),
            );
        }
    }
    if creating {
        let exists = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT FROM medanon.contract WHERE contract_id OPERATOR(pg_catalog.=) $1)",
            &[c.spec.id.as_str().into()],
        )
        .unwrap_or_else(|e| spi_failed(e));
        if exists == Some(true) {
            refuse(PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT, "id", format!("contract \"{}\" exists already", c.spec.id), None);
        }
    }
    for (i, t) in c.spec.tables.iter().enumerate() {
        let path = format!("tables[{i}].source");
        let found = Spi::get_two_with_args::<pg_sys::Oid, String>(
            "SELECT c.oid, s.person_column::text FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
               LEFT JOIN medanon.source s ON s.source_schema OPERATOR(pg_catalog.=) n.nspname
                                         AND s.source_table OPERATOR(pg_catalog.=) c.relname
              WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)",
            &[t.source.as_str().into()],
        );
        let (oid, person_column) = match found {
            Ok((Some(oid), person)) => (oid, person),
            Ok(_) | Err(SpiError::InvalidPosition) => {
                refuse(PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE, &path, format!("table \"{}\" does not exist", t.source), None)
            }
            Err(e) => spi_failed(e),
        };
        let Some(person_column) = person_column else {
            refuse(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                &path,
                format!("\"{}\" is not a registered source", t.source),
                Some("register it with medanon.register_source() and classify its columns"),
            );
        };
        for (column, rule) in &t.columns {
            let path = format!("tables[{i}].columns.{column}");
            let described = Spi::get_two_with_args::<String, String>(
                "SELECT pg_catalog.format_type(a.atttypid, NULL), sc.class
                   FROM pg_catalog.pg_attribute a
                   JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) a.attrelid
                   JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                   LEFT JOIN medanon.source_column sc
                     ON sc.source_schema OPERATOR(pg_catalog.=) n.nspname AND sc.source_table OPERATOR(pg_catalog.=) c.relname
                    AND sc.column_name OPERATOR(pg_catalog.=) a.attname
                  WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) $2
                    AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped",
                &[oid.into(), column.as_str().into()],
            );
            let (type_name, class) = match described {
                Ok((Some(t), class)) => (t, class),
                Ok(_) | Err(SpiError::InvalidPosition) => refuse(
                    PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                    &path,
                    format!("column \"{column}\" does not exist in \"{}\"", t.source),
                    None,
                ),
                Err(e) => spi_failed(e),
            };
            if *rule == Rule::Drop {
                continue;
            }
            let Some(class) = class else {
                refuse(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    &path,
                    "the column is not classified, so it cannot be exposed",
                    Some("classify it with medanon.classify(), or leave it out"),
                );
            };
            if (class == "identifier" || *column == person_column) && *rule != Rule::Token {
                refuse(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    &path,
                    format!("an identifier can only be dropped or tokenized, not \"{}\"", rule.name()),
                    None,
                );
            }
            if *rule == Rule::Token && *column != person_column {
                refuse(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    &path,
                    "only the person column can be tokenized (its token is stored per contract)",
                    Some("drop this column, or keep a surrogate key that identifies no one"),
                );
            }
            if *rule == Rule::Auto {
                refuse(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    &path,
                    "the auto rule is not supported in contract views",
                    Some("run medanon.suggest_generalization() and write the levels it gives as rules"),
                );
            }
            if !type_fits(rule, &type_name) {
                refuse(
                    PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                    &path,
                    format!("rule \"{}\" does not fit a column of type {type_name}", rule.name()),
                    None,
                );
            }
        }
    }
}

/// `create_contract(spec)`: checks the spec, stores the contract, records it in the
/// provision ledger, and returns its id.
pub fn create_contract(spec: &serde_json::Value) -> String {
    let text = spec.to_string();
    let contract = match parse(&text, today()) {
        Ok(c) => c,
        Err(e) => refuse(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, &e.path, e.message, None),
    };
    check_catalog(&contract, true);
    let sha = Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let s = &contract.spec;
    let kind = s.kind.name();
    let reference = contract.reference_date.map(|d| d.to_string());
    let inserted = Spi::connect_mut(|client| {
        client.update(
            "INSERT INTO medanon.contract (contract_id, kind, grantee, purpose, approved_on, expires_on, k, reference_date,
                                           spec, spec_sha256)
             VALUES ($1, $2, $3, $4, $5::date, $6::date, $7::int, $8::date, $9, $10)",
            None,
            &[
                s.id.as_str().into(),
                kind.into(),
                s.grantee.as_str().into(),
                s.purpose.as_str().into(),
                contract.approved_on.to_string().into(),
                contract.expires_on.to_string().into(),
                s.k.into(),
                reference.into(),
                JsonB(spec.clone()).into(),
                sha.as_str().into(),
            ],
        )?;
        let detail = serde_json::json!({
            "grantee": s.grantee, "kind": kind, "expires_on": contract.expires_on.to_string(), "tables": s.tables.len(),
        });
        record(client, &s.id, "create", &sha, None, None, detail)
    });
    if let Err(e) = inserted {
        spi_failed(e);
    }
    s.id.clone()
}
