//! Traceability of analyst reads (トレーサビリティ): when the cluster loads pgaudit,
//! every relation a grantee may read (its contract's views and snapshots) is
//! granted SELECT to `medanon_read_audit`, so pgaudit's object auditing logs each
//! SELECT on them with the statement; the role is in each log line's prefix.
//!
//! The SQL is in `sql/read_audit.sql` (`_audit_contract_reads`, `reads_audited`),
//! which says how `pgaudit.role` is set; without pgaudit the call does nothing.
//! Publish, refresh and release_snapshot call this as the extension owner, after
//! their relations exist, in their own transaction.

use pgrx::spi::{SpiClient, SpiError};

/// Grants the contract's readable relations to the audit role, if pgaudit is loaded.
pub fn audit_reads(client: &mut SpiClient<'_>, id: &str) -> Result<(), SpiError> {
    client.update("SELECT medanon._audit_contract_reads($1)", None, &[id.into()])?;
    Ok(())
}
