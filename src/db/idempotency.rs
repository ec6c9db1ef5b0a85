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

/// What a key is when a request arrives.
pub enum Claim {
    /// Another request holds the key right now.
    InUse,
    /// A finished request's answer.
    Stored(StoredAnswer),
    /// Free: this transaction holds the key now.
    Free,
}

/// Takes the per-key transaction lock without waiting, and reads the stored answer, in one
/// statement. A request that commits the same key between this statement's snapshot and the lock
/// is not seen here, but its row is: inserting ours then fails on the primary key and the whole
/// request runs again (and replays).
pub async fn claim(tx: &Tx<'_>, scope: &str, key: &str) -> Result<Claim, tokio_postgres::Error> {
    let row = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock(hashtextextended($1 || chr(31) || $2, 7)),
                    k.method, k.path, k.fingerprint, k.status, k.body, k.request_id
             FROM (SELECT 1) AS one LEFT JOIN idempotency_keys k ON k.scope = $1 AND k.key = $2",
            &[&scope, &key],
        )
        .await?;
    if !row.get::<_, bool>(0) {
        return Ok(Claim::InUse);
    }
    let Some(method) = row.get::<_, Option<String>>(1) else { return Ok(Claim::Free) };
    Ok(Claim::Stored(StoredAnswer {
        method,
        path: row.get(2),
        fingerprint: row.get(3),
        status: row.get::<_, i16>(4) as u16,
        body: row.get(5),
        request_id: row.get(6),
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
    client.execute("DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(days => $1)", &[&(days as i32)]).await
}
