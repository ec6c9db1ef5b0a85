//! Authentication (401) and per-key rate limiting (429), before routing as API.md orders the checks.

use crate::auth::{Caller, Principal, hash_api_key, secrets_equal};
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::payload::exceeds_limit;
use crate::http::{AppState, BodyBudget, read_body};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError, web};
use std::collections::HashMap;
use std::future::{Ready, ready};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `401`: no key, or not one the service knows.
pub fn unauthenticated() -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, "a valid API key is required: Authorization: Bearer <key>")
}

pub async fn authenticate(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // The console signs its users in itself (a session cookie), never with an API key.
    if super::endpoints::is_public(req.path()) || crate::console::is_console_path(req.path()) {
        return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
    }
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        let e = ApiError::internal_because("Failed to authenticate", "the application state is not registered on the app");
        return Ok(req.into_response(e.error_response()));
    };
    let caller = match resolve(&state, &req).await {
        Ok(caller) => caller,
        Err(e) => {
            let e = over_limit_before_unauthenticated(&mut req, e).await;
            return Ok(req.into_response(e.error_response()));
        }
    };
    if let Err(e) = read_unknown_length_body(&mut req).await {
        return Ok(req.into_response(e.error_response()));
    }
    let limit = caller_limit(&state, &caller);
    if let Err(retry_after_secs) = state.rate_limiter.check(caller.key_id.as_deref().unwrap_or("bootstrap-admin"), limit) {
        let mut e = ApiError::new(ErrorCode::RateLimited, format!("over this key's rate of {limit} requests a minute"));
        e.retry_after_secs = Some(retry_after_secs);
        return Ok(req.into_response(e.error_response()));
    }
    tracing::Span::current().record("principal", tracing::field::debug(&caller.principal));
    req.extensions_mut().insert(caller);
    next.call(req).await.map(ServiceResponse::map_into_boxed_body)
}

/// How long a caller without a valid key may keep the service counting its chunked body: long
/// enough for a body sent at once to show it is over the limit, short enough that a stalled one
/// costs next to nothing.
const UNAUTHENTICATED_BODY_GRACE: Duration = Duration::from_secs(1);

/// A refused caller's chunked body (its size unknown from the headers) is counted, never kept, for
/// at most [`UNAUTHENTICATED_BODY_GRACE`]: over the limit it answers `413` (before `401`, as API.md
/// §1 orders the checks); otherwise, or stalled, the refusal stands.
async fn over_limit_before_unauthenticated(req: &mut ServiceRequest, refusal: ApiError) -> ApiError {
    let Some(budget) = req.extensions().get::<BodyBudget>().copied() else { return refusal };
    if !has_unknown_length(req) {
        return refusal;
    }
    let deadline = budget.deadline.min(tokio::time::Instant::now() + UNAUTHENTICATED_BODY_GRACE);
    if exceeds_limit(req.take_payload(), budget.limit, deadline).await {
        return ApiError::new(ErrorCode::PayloadTooLarge, "the body is over the size limit");
    }
    refusal
}

fn has_unknown_length(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    !headers.contains_key(header::CONTENT_LENGTH) && headers.contains_key(header::TRANSFER_ENCODING)
}

/// A body of unknown length (chunked) is read here, up to the limit and within the body's
/// deadline, so that `413` still comes before `429` and the route's checks. Only now: a caller
/// without a valid key never makes the service keep its body (see above).
async fn read_unknown_length_body(req: &mut ServiceRequest) -> ApiResult<()> {
    if !has_unknown_length(req) {
        return Ok(());
    }
    let Some(budget) = req.extensions().get::<BodyBudget>().copied() else { return Ok(()) };
    let bytes = read_body(req.take_payload(), budget).await?;
    req.set_payload(bytes.into());
    Ok(())
}

fn caller_limit(state: &AppState, caller: &Caller) -> u32 {
    caller.rate_limit_per_minute.unwrap_or(state.settings.auth.default_rate_limit_per_minute)
}

async fn resolve(state: &AppState, req: &ServiceRequest) -> ApiResult<Caller> {
    let value = req.headers().get(header::AUTHORIZATION).ok_or_else(unauthenticated)?;
    let text = value.to_str().map_err(|_| unauthenticated())?;
    // The scheme is case-insensitive (RFC 9110 §11.1): `Bearer`, `bearer`, `BEARER`.
    let key = text
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .ok_or_else(unauthenticated)?;
    let admin_key = state.settings.auth.admin_key.expose();
    if !admin_key.is_empty() && secrets_equal(admin_key.as_bytes(), key.as_bytes()) {
        return Ok(Caller { principal: Principal::admin(), key_id: None, rate_limit_per_minute: None });
    }
    let client = state.pool.get().await?;
    // Through the pool's wrapper, whose statements are prepared once per connection: every request
    // runs this lookup, and the bare client would parse and plan it again each time, in a round
    // trip of its own before the one that runs it.
    let found = db::api_keys::find_active_by_hash(&*client, &hash_api_key(key)).await?;
    found.ok_or_else(unauthenticated)
}

/// The caller, as an extractor for handlers.
impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(req.extensions().get::<Caller>().cloned().ok_or_else(unauthenticated))
    }
}

/// Token buckets per key: `limit` requests a minute, refilled continuously, bursts up to `limit`.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

const RATE_LIMITER_MAX_KEYS: usize = 100_000;

impl RateLimiter {
    /// `Ok` to go on, or `Err(seconds until a request would be allowed)`.
    pub fn check(&self, key: &str, limit_per_minute: u32) -> Result<(), u64> {
        let now = Instant::now();
        let capacity = f64::from(limit_per_minute.max(1));
        let per_sec = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= RATE_LIMITER_MAX_KEYS && !buckets.contains_key(key) {
            buckets.retain(|_, b| now.duration_since(b.updated).as_secs() < 60);
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket { tokens: capacity, updated: now });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_sec).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / per_sec).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refuse_over_the_limit_per_key() {
        let limiter = RateLimiter::default();
        for _ in 0..3 {
            assert!(limiter.check("a", 3).is_ok());
        }
        let retry = limiter.check("a", 3).unwrap_err();
        assert!((1..=20).contains(&retry));
        assert!(limiter.check("b", 3).is_ok());
    }
}
