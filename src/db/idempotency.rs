//! Stored answers of idempotent requests.

use super::Tx;
use serde_json::Value;

pub struct StoredAnswer {
    pub method: String,
    pub path: String,
    pub fingerprint: Vec<u8>,
    pub status: u16,
    pub body: Value,
    pub request_id: String,
}

/// Takes the per-key transaction lock without waiting: `false` while another request holds the key.
pub async fn try_lock(tx: &Tx<'_>, scope: &str, key: &str) -> Result<bool, tokio_postgres::Error> {
    let row = tx
        .query_one("SELECT pg_try_advisory_xact_lock(hashtextextended($1 || chr(31) || $2, 7))", &[&scope, &key])
        .await?;
    Ok(row.get(0))
}

pub async fn find(tx: &Tx<'_>, scope: &str, key: &str) -> Result<Option<StoredAnswer>, tokio_postgres::Error> {
    let row = tx
        .query_opt(
            "SELECT method, path, fingerprint, status, body, request_id FROM idempotency_keys WHERE scope = $1 AND key = $2",
            &[&scope, &key],
        )
        .await?;
    Ok(row.map(|r| StoredAnswer {
        method: r.get(0),
        path: r.get(1),
        fingerprint: r.get(2),
        status: r.get::<_, i16>(3) as u16,
        body: r.get(4),
        request_id: r.get(5),
    }))
}

#[allow(clippy::too_many_arguments)]
pub async fn insert(
    tx: &Tx<'_>,
    scope: &str,
    key: &str,
    method: &str,
    path: &str,
    fingerprint: &[u8],
    status: u16,
    body: &Value,
    request_id: &str,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO idempotency_keys (scope, key, method, path, fingerprint, status, body, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[&scope, &key, &method, &path, &fingerprint, &(status as i16), body, &request_id],
    )
    .await?;
    Ok(())
}

/// Deletes answers older than the retention; returns how many.
pub async fn purge_older_than_days(client: &tokio_postgres::Client, days: u32) -> Result<u64, tokio_postgres::Error> {
    client
        .execute("DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(days => $1)", &[&(days as i32)])
        .await
}
