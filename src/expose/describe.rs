//! describe: what the catalog says of a contract, read once, as the caller, for
//! the planner (`medanon_core::plan`). Nothing here decides anything: every check
//! is the planner's.

use crate::error::spi_failed;
use medanon_core::contract::Contract;
use medanon_core::plan::{Described, Relation, Source, SourceColumn};
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiError};
use pgrx::pg_sys;

/// Reads the grantee, whether the contract id is stored, and every source of the
/// spec with its registration, columns, types, classes and the caller's rights.
pub fn describe(contract: &Contract) -> Described {
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
        let relations = spec.tables.iter().map(|t| relation(client, &t.source)).collect::<Result<Vec<_>, _>>()?;
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

fn relation(client: &SpiClient<'_>, name: &str) -> Result<Relation, SpiError> {
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
    Ok(Relation::Registered(Source { schema, table, person_column, institution_column, columns }))
}
