//! create_contract: the spec is parsed (`medanon_core::contract`), described and
//! planned like a publish would plan it (`medanon_core::plan`), then stored and
//! recorded in the provision ledger. Runs as the caller (medanon_operator).
//! Publishing plans it again, since a column may have been reclassified since.

use super::{planned, record, refuse, today};
use crate::error::spi_failed;
use crate::definer::as_owner;
use crate::keyring::keyring_and_owner;
use medanon_core::contract::parse;
use medanon_core::plan::Purpose;
use pgrx::prelude::*;

/// `create_contract(spec)`: checks the spec, stores the contract, records it in the
/// provision ledger, and returns its id.
///
/// The spec is stored as jsonb, and its hash is PostgreSQL's own over the stored
/// value's text: `encode(sha256(convert_to(spec::text, 'UTF8')), 'hex')`, so an
/// auditor recomputes it from `medanon.contract.spec` (README, "The spec hash").
pub fn create_contract(spec: &str) -> String {
    let contract = parse(spec, today()).unwrap_or_else(|e| refuse(e));
    // Onward provision: the parent exists, is live, and is no more protective.
    let parent = contract.spec.derived_from.as_deref().map(|parent| super::derive::parent_of(&contract, parent));
    let plan = planned(&contract, Purpose::Create);
    let s = contract.spec.clone();
    let reference = contract.reference_date.map(|d| d.to_string());
    let (approved_on, expires_on) = (contract.approved_on.to_string(), contract.expires_on.to_string());
    let spec = spec.to_string();
    // Only medanon writes the contract and ledger tables: as the extension owner.
    let (_, owner) = keyring_and_owner();
    let mut detail = plan.create_detail();
    if let (Some((parent, parent_sha)), Some(d)) = (&parent, detail.as_object_mut()) {
        d.insert("derived_from".into(), serde_json::json!({"contract_id": parent, "spec_sha256": parent_sha}));
    }
    let parent_id = parent.map(|(p, _)| p);
    as_owner(owner, move || Spi::connect_mut(|client| {
        if let Some(p) = &parent_id {
            super::derive::lock_parent(client, p)?;
        }
        let sha = client
            .update(
                "INSERT INTO medanon.contract (contract_id, kind, grantee, purpose, approved_on, expires_on, k, reference_date,
                                               spec, spec_sha256, view_schema, data_schema, derived_from)
                 SELECT $1, $2, $3, $4, $5::date, $6::date, $7::int, $8::date, j,
                        pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(j::text, 'UTF8')), 'hex'), $10, $11, $12
                   FROM (SELECT $9::jsonb AS j) spec
                 RETURNING spec_sha256",
                None,
                &[
                    s.id.as_str().into(),
                    s.kind.name().into(),
                    s.grantee.as_str().into(),
                    s.purpose.as_str().into(),
                    approved_on.as_str().into(),
                    expires_on.as_str().into(),
                    s.k.into(),
                    reference.into(),
                    spec.as_str().into(),
                    plan.schema.as_str().into(),
                    plan.data_schema.as_str().into(),
                    parent_id.as_deref().into(),
                ],
            )?
            .first()
            .get_one::<String>()?
            .unwrap_or_default();
        record(client, &s.id, "create", &sha, None, None, detail)?;
        Ok::<_, pgrx::spi::SpiError>(s.id)
    }))
    .unwrap_or_else(|e| spi_failed("could not store the contract", e))
}
