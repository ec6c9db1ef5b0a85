//! The audit log of reads of personal data in clear, for the admin.

use super::Deps;
use crate::db::audit::{self, AuditEntry};
use crate::error::ApiResult;

/// Up to `limit` entries after `after_seq`, oldest first.
pub async fn page(state: &Deps, after_seq: i64, limit: i64) -> ApiResult<Vec<AuditEntry>> {
    let client = state.pool.get().await?;
    Ok(audit::page(&**client, after_seq, limit).await?)
}
