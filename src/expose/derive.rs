//! Onward provision (第三者提供): a contract created with `"derived_from"` hands a
//! live parent's data on, never less protected (`medanon_core::derive`). Revoking
//! the parent revokes it (`revoke_contract`, sql/contract_live.sql).

use super::{load, refuse};
use crate::error::raise;
use medanon_core::contract::Contract;
use medanon_core::derive::check_derived;
use pgrx::PgSqlErrorCode;

/// Reads the parent as the caller and checks the derived spec against it: the
/// parent exists (42704), is live, created or published and not past its expiry
/// (55000), and the spec loosens nothing (22023, naming the key). Returns the
/// parent's id and spec hash, for the ledger entry.
pub fn parent_of(child: &Contract, parent_id: &str) -> (String, String) {
    let parent = load(parent_id);
    if !matches!(parent.status.as_str(), "created" | "published") {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("contract \"{parent_id}\" is {}: no contract may derive from it", parent.status),
            None,
            Some("derived_from names a live contract (created or published)".into()),
        );
    }
    check_derived(&parent.contract, child).unwrap_or_else(|e| refuse(e));
    (parent.contract.spec.id, parent.spec_sha256)
}

/// Locks the parent's row FOR SHARE until the commit, and checks that it is still
/// live: a revoke that started meanwhile has committed (this then refuses), or waits
/// for this commit and then finds the derived contract to revoke with it.
pub fn lock_parent(client: &mut pgrx::spi::SpiClient<'_>, parent_id: &str) -> Result<(), pgrx::spi::SpiError> {
    let status = client
        .update(
            "SELECT status FROM medanon.contract WHERE contract_id OPERATOR(pg_catalog.=) $1 FOR SHARE",
            None,
            &[parent_id.into()],
        )?
        .first()
        .get_one::<String>()?;
    if !matches!(status.as_deref(), Some("created" | "published")) {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("contract \"{parent_id}\" is {}: no contract may derive from it", status.unwrap_or_else(|| "gone".into())),
            None,
            Some("derived_from names a live contract (created or published)".into()),
        );
    }
    Ok(())
}
