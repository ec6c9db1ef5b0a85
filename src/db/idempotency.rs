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

/// [`claim`] for several keys in one statement, answered in the order of `keys` (scope, key).
/// The caller passes each key once: a transaction's advisory locks are reentrant, so a key given
/// twice would look free to its second request.
pub async fn claim_many(tx: &Tx<'_>, keys: &[(&str, &str)]) -> Result<Vec<Claim>, tokio_postgres::Error> {
    let scopes: Vec<&str> = keys.iter().map(|k| k.0).collect();
    let names: Vec<&str> = keys.iter().map(|k| k.1).collect();
    let rows = tx
        .query(
            "SELECT pg_try_advisory_xact_lock(hashtextextended(t.scope || chr(31) || t.key, 7)),
                    k.method, k.path, k.fingerprint, k.status, k.body, k.request_id
             FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(scope, key, n)
             LEFT JOIN idempotency_keys k ON k.scope = t.scope AND k.key = t.key
             ORDER BY t.n",
            &[&scopes, &names],
        )
        .await?;
    assert_eq!(rows.len(), keys.len(), "one claim per key");
    Ok(rows.iter().map(claim_of).collect())
}

fn claim_of(row: &tokio_postgres::Row) -> Claim {
    if !row.get::<_, bool>(0) {
        return Claim::InUse;
    }
    let Some(method) = row.get::<_, Option<String>>(1) else { return Claim::Free };
    Claim::Stored(StoredAnswer {
        method,
        path: row.get(2),
        fingerprint: row.get(3),
        status: row.get::<_, i16>(4) as u16,
        body: row.get(5),
        request_id: row.get(6),
    })
}

/// An answer to store for its key.
pub struct NewAnswer<'a> {
    pub scope: &'a str,
    pub key: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub fingerprint: &'a [u8],
    pub status: u16,
    pub body: &'a Value,
    pub request_id: &'a str,
}

/// [`insert`] for several answers in one statement.
pub async fn insert_many(tx: &Tx<'_>, answers: &[NewAnswer<'_>]) -> Result<(), tokio_postgres::Error> {
    if answers.is_empty() {
        return Ok(());
    }
    let scopes: Vec<&str> = answers.iter().map(|a| a.scope).collect();
    let keys: Vec<&str> = answers.iter().map(|a| a.key).collect();
    let methods: Vec<&str> = answers.iter().map(|a| a.method).collect();
    let paths: Vec<&str> = answers.iter().map(|a| a.path).collect();
    let fingerprints: Vec<&[u8]> = answers.iter().map(|a| a.fingerprint).collect();
    let statuses: Vec<i16> = answers.iter().map(|a| a.status as i16).collect();
    let bodies: Vec<&Value> = answers.iter().map(|a| a.body).collect();
    let request_ids: Vec<&str> = answers.iter().map(|a| a.request_id).collect();
    tx.execute(
        "INSERT INTO idempotency_keys (scope, key, method, path, fingerprint, status, body, request_id)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::int2[], $7::jsonb[], $8::text[])",
        &[&scopes, &keys, &methods, &paths, &fingerprints, &statuses, &bodies, &request_ids],
    )
    .await?;
    Ok(())
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
