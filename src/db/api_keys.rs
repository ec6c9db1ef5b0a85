//! API keys: stored as a SHA-256 hash only.

use super::Db;
use crate::auth::{Caller, Principal, PrincipalKind};
use chrono::{DateTime, Utc};
use tokio_postgres::Row;

#[derive(Clone, Debug)]
pub struct ApiKeyRecord {
    pub id: String,
    pub principal: Principal,
    pub rate_limit_per_minute: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub seq: i64,
}

const COLUMNS: &str = "id, principal_kind, principal_id, rate_limit_per_minute, created_at, revoked_at, seq";

fn from_row(r: &Row) -> ApiKeyRecord {
    let kind = PrincipalKind::parse(r.get::<_, &str>(1)).unwrap_or(PrincipalKind::Admin);
    let principal = Principal::new(kind, r.get(2)).unwrap_or_else(Principal::admin);
    ApiKeyRecord { id: r.get(0), principal, rate_limit_per_minute: r.get(3), created_at: r.get(4), revoked_at: r.get(5), seq: r.get(6) }
}

pub async fn find_active_by_hash(client: &impl Db, hash: &[u8]) -> Result<Option<Caller>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT id, principal_kind, principal_id, rate_limit_per_minute FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
            &[&hash],
        )
        .await?;
    Ok(row.and_then(|r| {
        let kind = PrincipalKind::parse(r.get::<_, &str>(1))?;
        let principal = Principal::new(kind, r.get(2))?;
        Some(Caller { principal, key_id: Some(r.get(0)), rate_limit_per_minute: r.get::<_, Option<i32>>(3).map(|n| n as u32) })
    }))
}

pub async fn insert(
    client: &impl Db,
    id: &str,
    hash: &[u8],
    principal: &Principal,
    rate_limit_per_minute: Option<i32>,
) -> Result<ApiKeyRecord, tokio_postgres::Error> {
    let row = client
        .query_one(
            &format!(
                "INSERT INTO api_keys (id, key_hash, principal_kind, principal_id, rate_limit_per_minute)
                 VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
            ),
            &[&id, &hash, &principal.kind().as_str(), &principal.id(), &rate_limit_per_minute],
        )
        .await?;
    Ok(from_row(&row))
}

pub async fn get(client: &impl Db, id: &str) -> Result<Option<ApiKeyRecord>, tokio_postgres::Error> {
    let row = client.query_opt(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1"), &[&id]).await?;
    Ok(row.as_ref().map(from_row))
}

pub async fn list(client: &impl Db, after_seq: i64, limit: i64) -> Result<Vec<ApiKeyRecord>, tokio_postgres::Error> {
    let rows = client.query(&format!("SELECT {COLUMNS} FROM api_keys WHERE seq > $1 ORDER BY seq LIMIT $2"), &[&after_seq, &limit]).await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Revokes; `false` when no such key.
pub async fn revoke(client: &impl Db, id: &str) -> Result<bool, tokio_postgres::Error> {
    let n = client.execute("UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1", &[&id]).await?;
    Ok(n == 1)
}
