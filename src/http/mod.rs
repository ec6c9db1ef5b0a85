//! Thin HTTP handlers: parse → one service call → response. Cross-cutting parts (request
//! context, auth, bodies, idempotency, pagination) live here once and are used by every route.

pub mod admin;
pub mod auth;
pub mod body;
pub mod context;
pub mod credit_lines;
pub mod endpoints;
pub mod holds;
pub mod openapi;
pub mod operations;
pub mod ops;
pub mod orders;
pub mod payload;
pub mod plans;
pub mod reports;
pub mod requests;
pub mod returns;
pub mod setup;
pub mod write_offs;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::idempotency::{Answer, IdempotentRequest, parse_key};
use crate::service::Deps;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, web};
pub use payload::{BodyBudget, read_body};
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What handlers share across workers: the services' dependencies, and the web layer's own
/// (the per-key rate limiter). Reads through to the dependencies, so a handler passes `&state`
/// where a service takes `&Deps`.
pub struct AppState {
    pub deps: Arc<Deps>,
    pub rate_limiter: auth::RateLimiter,
    /// Signs the operations console's session cookies (`crate::console`).
    pub console_key: Arc<crate::console::session::ConsoleKey>,
}

impl std::ops::Deref for AppState {
    type Target = Deps;
    fn deref(&self) -> &Deps {
        &self.deps
    }
}

pub type State = web::Data<AppState>;

/// The raw body, read within the request's [`BodyBudget`] (`413 payload_too_large` over the
/// limit, `408 request_timeout` when it has not arrived in full by the deadline).
pub struct Body(pub web::Bytes);

impl FromRequest for Body {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Body, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // Set by the request context; without it (never in the service) the budget runs from now.
        let budget = req
            .extensions()
            .get::<BodyBudget>()
            .copied()
            .or_else(|| req.app_data::<State>().map(|s| BodyBudget::new(&s.settings.server, tokio::time::Instant::now())));
        let payload = payload.take();
        Box::pin(async move {
            let budget = budget.ok_or_else(|| {
                ApiError::internal_because("Failed to read the body", "neither a body budget nor the application state is on the request")
            })?;
            read_body(payload, budget).await.map(Body)
        })
    }
}

pub fn request_id(req: &HttpRequest) -> String {
    req.extensions().get::<context::RequestId>().map(|r| r.0.clone()).unwrap_or_default()
}

/// The idempotency key of an (I) endpoint: `400` when missing (checked before the body).
pub fn idempotency_key(req: &HttpRequest) -> ApiResult<String> {
    parse_key(req.headers().get("Idempotency-Key").map(|v| v.as_bytes()))
}

/// The prologue of every idempotent POST, in API.md §1's order: the key (400), the body as
/// `read` checks it (422), then the key bound to the body as sent.
pub fn idempotent<T>(
    req: &HttpRequest,
    caller: &Caller,
    body: &Body,
    read: impl FnOnce(&Value) -> ApiResult<T>,
) -> ApiResult<(T, IdempotentRequest)> {
    let key = idempotency_key(req)?;
    let v = body::parse_object(&body.0)?;
    let parsed = read(&v)?;
    Ok((parsed, idempotent_request(req, caller, key, &v)))
}

/// Binds the key to this request once the body has been parsed.
pub fn idempotent_request(req: &HttpRequest, caller: &Caller, key: String, body: &Value) -> IdempotentRequest {
    IdempotentRequest::new(caller.principal.scope(), key, req.method().as_str(), req.path(), body, &request_id(req))
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> HttpResponse {
    HttpResponse::build(status).json(value)
}

pub fn ok<T: Serialize>(value: &T) -> ApiResult<HttpResponse> {
    Ok(json(StatusCode::OK, value))
}

pub fn created<T: Serialize>(value: &T) -> ApiResult<HttpResponse> {
    Ok(json(StatusCode::CREATED, value))
}

/// The response of an idempotent endpoint, replayed answers marked as such.
pub fn answer(a: Answer) -> ApiResult<HttpResponse> {
    let mut builder = HttpResponse::build(a.status);
    if let Some(original) = a.replayed_request_id {
        builder.insert_header(("Idempotent-Replayed", "true"));
        builder.insert_header((context::REQUEST_ID_HEADER, original));
    }
    Ok(builder.json(a.body))
}

/// `?limit=` (1-200, default 50) and an opaque `?cursor=`.
pub struct Page {
    pub limit: i64,
    pub cursor: Option<String>,
}

pub fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect()
}

pub fn query_param(req: &HttpRequest, name: &str) -> Option<String> {
    query_pairs(req).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

impl Page {
    pub fn from_request(req: &HttpRequest) -> ApiResult<Page> {
        let limit = match query_param(req, "limit") {
            None => 50,
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=200).contains(n))
                .ok_or_else(|| ApiError::invalid("limit", "limit must be an integer from 1 to 200"))?,
        };
        let cursor = query_param(req, "cursor");
        Ok(Page { limit, cursor })
    }

    /// A cursor over a sequence number.
    pub fn after_seq(&self) -> ApiResult<i64> {
        match &self.cursor {
            None => Ok(0),
            Some(c) => decode_cursor(c).ok_or_else(|| ApiError::invalid("cursor", "not a cursor this API gave")),
        }
    }
}

/// The shape of every cursor [`encode_cursor`] gives for a sequence number of up to 16 digits: the
/// unpadded base64url of `s<digits>`, group by group (`s` and two digits, then three digits, then
/// a last one or two without trailing bits). The document states it so that a client (or a fuzzer)
/// can tell a cursor from garbage; only cursors this API answered point anywhere.
pub const CURSOR_PATTERN: &str = "^cz[AEIMQUYcgk](?:[w-z0-5](?:(?:[MN][DTjz]|O[DT])[AEIMQUYcgk][w-z0-5]){0,4}\
                                  (?:(?:[MN][DTjz]|O[DT])[AEIMQUYcgk]|[MN][AQgw]|O[AQ])?)?$";

pub fn encode_cursor(seq: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("s{seq}"))
}

pub fn decode_cursor(c: &str) -> Option<i64> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    text.strip_prefix('s')?.parse::<i64>().ok().filter(|n| *n >= 0)
}

/// A `{data, next_cursor}` page from items fetched with `limit + 1` rows.
pub fn page_of<T, V: Serialize>(mut items: Vec<T>, limit: i64, seq: impl Fn(&T) -> i64, view: impl Fn(T) -> V) -> HttpResponse {
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = if more { items.last().map(|i| encode_cursor(seq(i))) } else { None };
    let data: Vec<V> = items.into_iter().map(view).collect();
    json(StatusCode::OK, &serde_json::json!({ "data": data, "next_cursor": next_cursor }))
}

pub async fn not_found() -> ApiResult<HttpResponse> {
    Err(ApiError::new(ErrorCode::NotFound, "no such path"))
}

/// `405` with the `Allow` header RFC 9110 requires, from the endpoint table.
pub async fn method_not_allowed(req: actix_web::HttpRequest) -> HttpResponse {
    use actix_web::ResponseError;
    let mut response = ApiError::new(ErrorCode::MethodNotAllowed, "this path does not take that method").error_response();
    let allowed = req.match_pattern().and_then(|p| endpoints::allowed_methods(&p));
    if let Some(v) = allowed.and_then(|a| actix_web::http::header::HeaderValue::from_str(a).ok()) {
        response.headers_mut().insert(actix_web::http::header::ALLOW, v);
    }
    response
}

/// A resource whose other methods answer `405 method_not_allowed` in the API's error format. A path
/// with a NUL character (`%00`) matches no resource (`404 not_found`): no id holds one, and
/// PostgreSQL text cannot (it would be a 500).
pub fn resource(path: &str) -> actix_web::Resource {
    web::resource(path)
        .guard(actix_web::guard::fn_guard(|ctx| !ctx.head().uri.path().contains("%00")))
        .default_service(web::to(method_not_allowed))
}

/// The whole route table: every row of [`endpoints::ENDPOINTS`].
pub fn routes(cfg: &mut web::ServiceConfig) {
    endpoints::register(cfg);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("zzz"), None);
        assert_eq!(decode_cursor(""), None);
    }
}
