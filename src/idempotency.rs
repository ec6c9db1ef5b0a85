//! The one idempotency mechanism of every (I) endpoint (API.md section 1).
//!
//! A request runs in one transaction: the caller's object checks (404, not stored), then a
//! non-blocking per-key lock (`409 idempotency_key_in_use` while another request holds it), then the
//! stored answer if there is one (replayed, or `422 idempotency_key_reused` for another body or
//! path), then the business change inside a savepoint. Its answer, success or business refusal,
//! is written in the same transaction as the change; a refusal rolls the savepoint back first.

use crate::db::{self, Tx};
use crate::error::{ApiError, ApiResult, ErrorCode};
use actix_web::http::StatusCode;
use deadpool_postgres::Pool;
use serde_json::Value;
use sha2::{Digest, Sha256};

const KEY_MAX_LEN: usize = 255;

/// A parsed `Idempotency-Key` header with what it is bound to.
#[derive(Clone, Debug)]
pub struct IdempotentRequest {
    pub scope: String,
    pub key: String,
    pub method: String,
    pub path: String,
    pub fingerprint: Vec<u8>,
    pub request_id: String,
}

/// 1-255 visible ASCII characters, else `400 idempotency_key_required`.
pub fn parse_key(header: Option<&[u8]>) -> ApiResult<String> {
    let refuse = || {
        ApiError::new(ErrorCode::IdempotencyKeyRequired, "an Idempotency-Key header of 1-255 visible ASCII characters is required")
            .field("Idempotency-Key")
    };
    let bytes = header.ok_or_else(refuse)?;
    if bytes.is_empty() || bytes.len() > KEY_MAX_LEN || !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(refuse());
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

impl IdempotentRequest {
    /// Binds `key` to the method, the path and the body parsed as JSON (keys sorted, so
    /// formatting and key order do not matter; members whose value is `null` left out, since
    /// API.md §1 counts `null` as absent).
    pub fn new(scope: String, key: String, method: &str, path: &str, body: &Value, request_id: &str) -> Self {
        let canonical = serde_json::to_vec(&without_nulls(body)).unwrap_or_default();
        let mut hasher = Sha256::new();
        hasher.update(method.as_bytes());
        hasher.update([0]);
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(&canonical);
        IdempotentRequest {
            scope,
            key,
            method: method.to_string(),
            path: path.to_string(),
            fingerprint: hasher.finalize().to_vec(),
            request_id: request_id.to_string(),
        }
    }
}

/// `value` with every object member whose value is `null` removed, at any depth (array elements
/// stay: a `null` in a list is a value, not an absent field). Depth is bounded by the body parser.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(members) => members.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), without_nulls(v))).collect(),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// What an idempotent endpoint answers: status and JSON body; `replayed_request_id` when it is a
/// stored answer given again.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub replayed_request_id: Option<String>,
}

/// Business refusals (4xx) are stored; 5xx (database lost, bugs) are not, so a retry runs again.
pub fn is_stored_refusal(e: &ApiError) -> bool {
    e.status().is_client_error() && !e.retryable
}

/// Runs `business` at most once per key. `precheck` finds and authorises the objects involved;
/// its refusals are not stored. Transient database conflicts are retried a few times.
pub async fn execute<P, T>(
    pool: &Pool,
    request: &IdempotentRequest,
    precheck: impl AsyncFn(&Tx<'_>) -> ApiResult<P>,
    business: impl AsyncFn(&Tx<'_>, P) -> ApiResult<(StatusCode, T)>,
) -> ApiResult<Answer>
where
    T: serde::Serialize,
{
    const ATTEMPTS: u32 = 4;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match execute_once(pool, request, &precheck, &business).await {
            Err(Failure::Retry(e)) if attempt < ATTEMPTS => {
                tracing::info!(attempt, error = %e, "transient conflict, running the request again");
            }
            Err(Failure::Retry(e)) => {
                tracing::warn!(error = %e, "still conflicting after {ATTEMPTS} attempts");
                return Err(ApiError::unavailable());
            }
            Err(Failure::Api(e)) => return Err(e),
            Ok(answer) => return Ok(answer),
        }
    }
}

enum Failure {
    Api(ApiError),
    Retry(String),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        if db::is_retryable(&e) || db::unique_violation(&e) == Some("idempotency_keys_pkey") {
            Failure::Retry(e.to_string())
        } else {
            Failure::Api(crate::error::classify_db_error(&e))
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        if e.retryable { Failure::Retry(e.message) } else { Failure::Api(e) }
    }
}

impl From<deadpool_postgres::PoolError> for Failure {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Failure::Api(e.into())
    }
}

/// `409 idempotency_key_in_use`: another request holding the key is still running (never stored).
pub fn in_use() -> ApiError {
    ApiError::new(ErrorCode::IdempotencyKeyInUse, "a request with this Idempotency-Key is still running")
}

/// The stored answer given again, or `422 idempotency_key_reused` when the key was used with
/// another method, path or body (never stored).
pub fn replay(stored: db::idempotency::StoredAnswer, request: &IdempotentRequest) -> ApiResult<Answer> {
    if stored.fingerprint != request.fingerprint || stored.method != request.method || stored.path != request.path {
        return Err(
            ApiError::new(ErrorCode::IdempotencyKeyReused, "this Idempotency-Key was used with another request").field("Idempotency-Key")
        );
    }
    Ok(Answer {
        status: StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK),
        body: stored.body,
        replayed_request_id: Some(stored.request_id),
    })
}

/// Sent before the business change, in one round trip with the claim.
///
/// Business changes are key lookups and small batched writes (`unnest` of a few rows). With the
/// default `plan_cache_mode`, PostgreSQL plans such a statement afresh at every execution: it
/// estimates a parameter array's length only in a custom plan, so the custom plan always looks
/// cheaper than the generic one (10 rows assumed). The generic plan is the same plan; planning
/// again took about a tenth of the database's CPU per order (perf, docs/BENCHMARKS.md). Only this
/// transaction is affected (`SET LOCAL`); end of day and reports keep custom plans.
const BUSINESS_PROLOGUE: &str = "SET LOCAL plan_cache_mode = force_generic_plan; SAVEPOINT business";

async fn execute_once<P, T: serde::Serialize>(
    pool: &Pool,
    request: &IdempotentRequest,
    precheck: &impl AsyncFn(&Tx<'_>) -> ApiResult<P>,
    business: &impl AsyncFn(&Tx<'_>, P) -> ApiResult<(StatusCode, T)>,
) -> Result<Answer, Failure> {
    let mut client = pool.get().await?;
    let tx = Tx::begin(&mut client).await?;
    let outcome = match run_in(&tx, request, precheck, business).await {
        Ok((answer, true)) => return tx.commit().await.map(|()| answer).map_err(Failure::from),
        replayed_or_failed => replayed_or_failed.map(|(answer, _)| answer),
    };
    // Dropping the transaction would only queue its `ROLLBACK`: the key's advisory lock would stay
    // held until the server got to it, and a rerun of this very request on another connection
    // would find its own key "in use" (a spurious 409). So the rollback is awaited.
    if let Err(e) = tx.rollback().await {
        tracing::warn!(error = %e, "rolling back a request's transaction failed; the connection is dropped");
        drop(deadpool_postgres::Object::take(client));
    }
    outcome
}

/// The request inside its transaction: the answer, and whether it is a new one to commit
/// (`false` for a replay, which changed nothing).
async fn run_in<P, T: serde::Serialize>(
    tx: &Tx<'_>,
    request: &IdempotentRequest,
    precheck: &impl AsyncFn(&Tx<'_>) -> ApiResult<P>,
    business: &impl AsyncFn(&Tx<'_>, P) -> ApiResult<(StatusCode, T)>,
) -> Result<(Answer, bool), Failure> {
    let checked = precheck(tx).await?;
    // The savepoint a refusal rolls back to is set in the same round trip as the claim.
    let (claim, ()) =
        futures_util::try_join!(db::idempotency::claim(tx, &request.scope, &request.key), tx.batch_execute(BUSINESS_PROLOGUE),)?;
    match claim {
        db::idempotency::Claim::InUse => return Err(in_use().into()),
        db::idempotency::Claim::Stored(stored) => return Ok((replay(stored, request)?, false)),
        db::idempotency::Claim::Free => {}
    }
    let (status, body) = match business(tx, checked).await {
        Ok((status, value)) => {
            let body = serde_json::to_value(value).map_err(|e| ApiError::internal_because("Failed to serialize the answer", e))?;
            (status, body)
        }
        Err(e) if is_stored_refusal(&e) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT business").await?;
            (e.status(), e.body(&request.request_id))
        }
        Err(e) => return Err(e.into()),
    };
    db::idempotency::insert(
        tx,
        &request.scope,
        &request.key,
        &request.method,
        &request.path,
        &request.fingerprint,
        status.as_u16(),
        &body,
        &request.request_id,
    )
    .await?;
    Ok((Answer { status, body, replayed_request_id: None }, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(parse_key(None).is_err());
        assert!(parse_key(Some(b"")).is_err());
        assert!(parse_key(Some(b"a b")).is_err());
        assert!(parse_key(Some("ключ".as_bytes())).is_err());
        assert!(parse_key(Some(&[b'a'; 256])).is_err());
        assert_eq!(parse_key(Some(&[b'a'; 255])).unwrap().len(), 255);
        assert_eq!(parse_key(Some(b"k-1")).unwrap(), "k-1");
    }

    #[test]
    fn fingerprint_ignores_formatting_but_not_content() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":"x"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{ "b" : "x", "a" : 1 }"#).unwrap();
        let c: Value = serde_json::from_str(r#"{"a":2,"b":"x"}"#).unwrap();
        let f = |v: &Value, p: &str| IdempotentRequest::new("s".into(), "k".into(), "POST", p, v, "r").fingerprint;
        assert_eq!(f(&a, "/x"), f(&b, "/x"));
        assert_ne!(f(&a, "/x"), f(&c, "/x"));
        assert_ne!(f(&a, "/x"), f(&a, "/y"));
    }

    #[test]
    fn fingerprint_counts_null_members_as_absent_at_any_depth() {
        let f = |text: &str| {
            let v: Value = serde_json::from_str(text).unwrap();
            IdempotentRequest::new("s".into(), "k".into(), "POST", "/x", &v, "r").fingerprint
        };
        assert_eq!(f(r#"{"a":1}"#), f(r#"{"a":1,"consent":null}"#));
        assert_eq!(f(r#"{"c":{"id":"x"}}"#), f(r#"{"c":{"id":"x","name":null}}"#));
        assert_eq!(f(r#"{"l":[{"m":1}]}"#), f(r#"{"l":[{"m":1,"n":null}]}"#));
        assert_ne!(f(r#"{"l":[1]}"#), f(r#"{"l":[1,null]}"#), "a null element of a list is a value");
        assert_ne!(f(r#"{"a":1}"#), f(r#"{"a":1,"consent":{}}"#));
    }
}
