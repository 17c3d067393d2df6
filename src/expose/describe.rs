//! describe: what the catalog says of a contract, read once, as the caller, for
//! the planner (`medanon_core::plan`). Nothing here decides anything: every check
//! is the planner's.

use crate::error::spi_failed;
use medanon_core::contract::{Contract, Rule, TableSpec};
use medanon_core::plan::{Described, Purpose, Relation, Source, SourceColumn};
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiError};
use pgrx::pg_sys;

/// Reads the grantee, whether the contract id is stored, and every source of the
/// spec with its registration, columns, types, classes and the caller's rights.
/// Publishing also measures whether each source that shows a quasi-identifier
/// is person-level (refresh reads what publish stored).
pub fn describe(contract: &Contract, purpose: Purpose) -> Described {
    Spi::connect(|client| {
        let spec = &contract.spec;
        let row = client
            .select(
                "SELECT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) $1),
                        EXISTS (SELECT FROM medanon.certified_user WHERE role_name OPERATOR(pg_catalog.=) $1),
                        EXISTS (SELECT FROM medanon.contract WHERE contract_id OPERATOR(pg_catalog.=) $2)",
                None,
                &[spec.grantee.as_str().into(), spec.id.as_str().into()],
            )?
            .first()
            .get_three::<bool, bool, bool>()?;
        let relations = spec
            .tables
            .iter()
            .map(|t| relation(client, t, &spec.id, purpose))
            .collect::<Result<Vec<_>, _>>()?;
        Ok::<_, SpiError>(Described {
            time_zone: super::operator_zone(),
            grantee_exists: row.0 == Some(true),
            grantee_certified: row.1 == Some(true),
            id_in_use: row.2 == Some(true),
            relations,
        })
    })
    .unwrap_or_else(|e| spi_failed("could not read the catalog for the contract", e))
}

fn relation(client: &SpiClient<'_>, spec: &TableSpec, id: &str, purpose: Purpose) -> Result<Relation, SpiError> {
    let name = spec.source.as_str();
    let found = client
        .select(
            "SELECT c.oid, n.nspname::text, c.relname::text, s.person_column::text, s.institution_column::text
               FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
               LEFT JOIN medanon.source s ON s.source_schema OPERATOR(pg_catalog.=) n.nspname
                                         AND s.source_table OPERATOR(pg_catalog.=) c.relname
              WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)",
            None,
            &[name.into()],
        )?
        .next()
        .map(|r| {
            Ok::<_, SpiError>((
                r.get::<pg_sys::Oid>(1)?,
                r.get::<String>(2)?.unwrap_or_default(),
                r.get::<String>(3)?.unwrap_or_default(),
                r.get::<String>(4)?,
                r.get::<String>(5)?,
            ))
        })
        .transpose()?;
    let Some((Some(oid), schema, table, person_column, institution_column)) = found else {
        return Ok(Relation::Missing);
    };
    let Some(person_column) = person_column else {
        return Ok(Relation::Unregistered);
    };
    let columns = client
        .select(
            "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, NULL), sc.class,
                    pg_catalog.has_column_privilege(a.attrelid, a.attnum, 'SELECT')
               FROM pg_catalog.pg_attribute a
               LEFT JOIN medanon.source_column sc
                 ON sc.source_schema OPERATOR(pg_catalog.=) $2 AND sc.source_table OPERATOR(pg_catalog.=) $3
                AND sc.column_name OPERATOR(pg_catalog.=) a.attname
              WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
            None,
            &[oid.into(), schema.as_str().into(), table.as_str().into()],
        )?
        .map(|row| {
            Ok(SourceColumn {
                name: row.get::<String>(1)?.unwrap_or_default(),
                type_name: row.get::<String>(2)?.unwrap_or_default(),
                class: row.get::<String>(3)?,
                caller_reads: row.get::<bool>(4)? == Some(true),
            })
        })
        .collect::<Result<Vec<_>, SpiError>>()?;
    let qualified = format!("{}.{}", medanon_core::view::ident(&schema), medanon_core::view::ident(&table));
    let person_level = person_level(client, spec, id, purpose, (&table, &qualified), &person_column, institution_column.as_deref(), &columns)?;
    Ok(Relation::Registered(Source { schema, table, person_column, institution_column, columns, person_level }))
}

/// Whether a source holds at most one row per person (and institution): stored
/// at publish for the life of the contract, so that a person's class is counted
/// the same way at every refresh. Measured only for a source whose view shows a
/// quasi-identifier (only a class needs it), as the caller.
#[allow(clippy::too_many_arguments)]
fn person_level(
    client: &SpiClient<'_>,
    spec: &TableSpec,
    id: &str,
    purpose: Purpose,
    (table, qualified): (&str, &str),
    person: &str,
    institution: Option<&str>,
    columns: &[SourceColumn],
) -> Result<bool, SpiError> {
    let stored = client
        .select(
            "SELECT person_level FROM medanon.contract_table
              WHERE contract_id OPERATOR(pg_catalog.=) $1 AND view_name OPERATOR(pg_catalog.=) $2",
            None,
            &[id.into(), table.into()],
        )?
        .next()
        .map(|r| r.get::<bool>(1))
        .transpose()?
        .flatten();
    if let Some(stored) = stored {
        return Ok(stored);
    }
    let shows_quasi_identifier = spec.columns.iter().any(|(name, c)| {
        c.rule != Rule::Drop && columns.iter().any(|col| col.name == *name && col.class.as_deref() == Some("quasi_identifier"))
    });
    if purpose != Purpose::Publish || !shows_quasi_identifier {
        return Ok(false);
    }
    let ident = medanon_core::view::ident;
    let key = match institution {
        Some(i) => format!("t.{}, t.{}", ident(person), ident(i)),
        None => format!("t.{}", ident(person)),
    };
    let duplicated = client
        .select(
            &format!("SELECT EXISTS (SELECT 1 FROM {qualified} t GROUP BY {key} HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 1)"),
            None,
            &[],
        )?
        .first()
        .get_one::<bool>()?;
    // (SELECT 1, not an empty target list: Citus cannot read a subquery of no
    // columns back from the workers.)
    Ok(duplicated == Some(false))
}
