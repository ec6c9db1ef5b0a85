//! The outermost middleware: a request id on every response and log line, the body-size
//! check by Content-Length (413, first of all checks), the body's read budget, an access log
//! line with timing, and request metrics.

use crate::error::{ApiError, ErrorCode};
use crate::http::AppState;
use crate::http::payload::{self, BodyBudget};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError, web};
use std::time::Instant;
use tracing::Instrument;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled (`-` outside one).
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| "-".to_string())
}

#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn new_request_id() -> String {
    format!("req_{}", uuid::Uuid::new_v4().simple())
}

pub async fn request_context(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let request_id = new_request_id();
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let started = Instant::now();
    let method = req.method().to_string();
    let span = tracing::info_span!("request", request_id = %request_id, method = %method, path = %loggable_path(req.path()));
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let deadline = state
        .as_ref()
        .filter(|_| !req.path().starts_with(UNBOUNDED_PATH))
        .map(|s| std::time::Duration::from_millis(s.settings.server.request_timeout_ms));
    let too_large = state.as_ref().is_some_and(|s| content_length(&req).is_some_and(|n| n > s.settings.server.body_limit_bytes as u64));
    if let Some(s) = &state {
        // Every read of this request's body shares one budget, counted from the arrival of its head.
        req.extensions_mut().insert(BodyBudget::new(&s.settings.server, tokio::time::Instant::from_std(started)));
    }
    let body = payload::track(&mut req);

    let id = request_id.clone();
    let result = REQUEST_ID
        .scope(id, async move {
            if too_large {
                let e = ApiError::new(ErrorCode::PayloadTooLarge, "the body is over the size limit");
                return Ok(req.into_response(e.error_response()));
            }
            let Some(deadline) = deadline else { return next.call(req).await.map(ServiceResponse::map_into_boxed_body) };
            match tokio::time::timeout(deadline, next.call(req)).await {
                Ok(result) => result.map(ServiceResponse::map_into_boxed_body),
                // The request went to the handler with the ServiceRequest: the answer goes out as
                // an error carrying its response (a clone of the request would break actix).
                Err(_) => Err(timed_out(deadline)),
            }
        })
        .instrument(span.clone())
        .await;
    let mut res = match result {
        Ok(res) => res,
        Err(e) => {
            if let Some(state) = state {
                state.metrics.http_requests.with_label_values(&[&method, "timed_out", "503"]).inc();
            }
            return Err(e);
        }
    };
    if !res.headers().contains_key(REQUEST_ID_HEADER)
        && let Ok(v) = HeaderValue::from_str(&request_id)
    {
        res.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    record(state.as_ref().map(|s| s.get_ref()), &method, &res, started, &span);
    Ok(match body {
        Some(body) => body.hold_until_answered(res),
        None => res,
    })
}

/// Request metrics and the access log line of an answer.
fn record(state: Option<&AppState>, method: &str, res: &ServiceResponse<BoxBody>, started: Instant, span: &tracing::Span) {
    let status = res.status().as_u16();
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_string());
    let elapsed = started.elapsed();
    if let Some(state) = state {
        state.metrics.http_requests.with_label_values(&[method, &route, &status.to_string()]).inc();
        state.metrics.http_duration.with_label_values(&[method, &route]).observe(elapsed.as_secs_f64());
    }
    span.in_scope(|| {
        tracing::info!(status, route = %route, elapsed_ms = elapsed.as_micros() as f64 / 1000.0, "request done");
    });
}

fn timed_out(deadline: std::time::Duration) -> actix_web::Error {
    let elapsed_ms = deadline.as_millis() as u64;
    tracing::warn!(status = 503, route = "timed_out", elapsed_ms, "request unanswered within server.request_timeout_ms: 503, rolled back");
    let mut response = ApiError::unavailable().error_response();
    if let Ok(v) = HeaderValue::from_str(&current_request_id()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    actix_web::error::InternalError::from_response("request timed out", response).into()
}

/// End of day over HTTP: long by nature, so not bounded by `server.request_timeout_ms`.
const UNBOUNDED_PATH: &str = "/v1/admin/eod";

/// The path as logged: runs of 11 or more digits (with a check character) that do not follow an
/// id prefix (`ntc_0000000000000042` stays), as a raw ID number or phone pasted into a URL, are masked.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    const LONGEST_KEPT: usize = 10;
    let bytes = path.as_bytes();
    let mut out = String::new();
    let (mut i, mut copied) = (0, 0);
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let after_id_prefix = start > 0 && (bytes[start - 1] == b'_' || bytes[start - 1].is_ascii_alphabetic());
        if i - start > LONGEST_KEPT && !after_id_prefix {
            if i < bytes.len() && (bytes[i] == b'X' || bytes[i] == b'x') {
                i += 1;
            }
            out.push_str(&path[copied..start]);
            out.push_str("***");
            copied = i;
        }
    }
    if copied == 0 {
        return std::borrow::Cow::Borrowed(path);
    }
    out.push_str(&path[copied..]);
    std::borrow::Cow::Owned(out)
}

fn content_length(req: &ServiceRequest) -> Option<u64> {
    req.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

impl ResponseError for ApiError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status());
        if let Some(secs) = self.retry_after_secs {
            builder.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if self.status().is_server_error() {
            tracing::error!(error = %self, "answered with a server error");
        }
        builder.json(self.body(&current_request_id()))
    }
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn long_digit_runs_are_masked_in_logged_paths() {
        assert_eq!(loggable_path("/v1/orders/ord_01J9"), "/v1/orders/ord_01J9");
        assert_eq!(loggable_path("/v1/credit-lines/11010519491231002X"), "/v1/credit-lines/***");
        assert_eq!(loggable_path("/v1/credit-lines/11010519491231002x/holds"), "/v1/credit-lines/***/holds");
        assert_eq!(loggable_path("/v1/x/13800138000"), "/v1/x/***");
        assert_eq!(loggable_path("/v1/notices/ntc_0000000000000042"), "/v1/notices/ntc_0000000000000042");
        assert_eq!(loggable_path("/a/12345678901/b/98765432109"), "/a/***/b/***");
    }
}
