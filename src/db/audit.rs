//! The audit log: every read of personal data in clear, who read what and in which request.

use super::Db;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One read, as `GET /v1/admin/audit-log` shows it.
#[derive(Debug, Serialize)]
pub struct AuditEntry {
    #[serde(skip)]
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub object_id: String,
    pub request_id: String,
}

/// Records that `actor` read the borrower of order `order_id` in request `request_id`.
pub async fn record_borrower_read(c: &impl Db, actor: &str, order_id: &str, request_id: &str) -> Result<(), tokio_postgres::Error> {
    c.execute(
        "INSERT INTO audit_log (actor, action, object_id, request_id) VALUES ($1, 'borrower.read', $2, $3)",
        &[&actor, &order_id, &request_id],
    )
    .await?;
    Ok(())
}

/// Up to `limit` entries after `after_seq`, oldest first.
pub async fn page(c: &impl Db, after_seq: i64, limit: i64) -> Result<Vec<AuditEntry>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT seq, at, actor, action, object_id, request_id FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&after_seq, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| AuditEntry { seq: r.get(0), at: r.get(1), actor: r.get(2), action: r.get(3), object_id: r.get(4), request_id: r.get(5) })
        .collect())
}

/// Records an action of `actor` (the console's sign-in and sign-out, redeliveries, end-of-day runs)
/// on `object_id` in request `request_id`.
pub async fn record(c: &impl Db, actor: &str, action: &str, object_id: &str, request_id: &str) -> Result<(), tokio_postgres::Error> {
    c.execute(
        "INSERT INTO audit_log (actor, action, object_id, request_id) VALUES ($1, $2, $3, $4)",
        &[&actor, &action, &object_id, &request_id],
    )
    .await?;
    Ok(())
}
