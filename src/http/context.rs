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
    tracing::warn!(
        status = 503,
        route = "timed_out",
        elapsed_ms,
        "request unanswered within server.request_timeout_ms: 503 (its transaction rolls back, or, if already committing, completes and replays to a retry)"
    );
    let mut response = ApiError::unavailable().error_response();
    if let Ok(v) = HeaderValue::from_str(&current_request_id()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    actix_web::error::InternalError::from_response("request timed out", response).into()
}

/// End of day over HTTP: long by nature, so not bounded by `server.request_timeout_ms`.
const UNBOUNDED_PATH: &str = "/v1/admin/eod";

/// The path as logged: percent-escapes decoded (a few rounds, for escapes of escapes), then every
/// run of [`MASKED_RUN`] or more digits masked as `***` wherever it stands (`ord_***` too), `-` and
/// spaces between digits counting as part of the run and a check character `X` after it masked
/// with it: an ID number or a phone in a URL never reaches the log, however a client spelled it.
/// Control characters are escaped again so that a text log line stays one line.
fn loggable_path(path: &str) -> String {
    let mut decoded = path.to_string();
    for _ in 0..3 {
        let next = percent_decoded(&decoded);
        if next == decoded {
            break;
        }
        decoded = next;
    }
    let mut out = String::with_capacity(decoded.len());
    for c in mask_digit_runs(&decoded).chars() {
        if c.is_control() {
            let mut utf8 = [0u8; 4];
            c.encode_utf8(&mut utf8).bytes().for_each(|b| out.push_str(&format!("%{b:02X}")));
        } else {
            out.push(c);
        }
    }
    out
}

/// Digits in a row from which a run is masked. Mainland mobile numbers have 11 digits and ID
/// numbers 18 (15 before 1999); 7 also catches the telling parts of either (a phone without its
/// prefix, an ID number's birth date and sequence, a landline number) while region codes (6
/// digits), amounts, terms and years stay readable. Engine ids are prefixed random base32 and
/// seldom hold 7 digits in a row; notice ids (`ntc_` and 16 digits) are masked too, which costs
/// little: the route and the request id still say what was asked.
const MASKED_RUN: usize = 7;

fn percent_decoded(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', high, low]) => hex(*high).zip(hex(*low)),
            _ => None,
        };
        match escaped {
            Some((high, low)) => {
                out.push(high << 4 | low);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// ASCII and full-width digits (an input method may give either).
fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || ('\u{FF10}'..='\u{FF19}').contains(&c)
}

fn mask_digit_runs(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !is_digit(chars[i]) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let (end, digits) = digit_run(&chars, i);
        if digits >= MASKED_RUN && !is_date(&chars[i..end]) {
            out.push_str("***");
            i = end + usize::from(matches!(chars.get(end), Some('X' | 'x')));
        } else {
            out.extend(&chars[i..end]);
            i = end;
        }
    }
    out
}

/// The end of the digit run starting at `start` and its number of digits: `-` and spaces join
/// digits (`134-8793-6180`, `440305 19900307 123X`) but do not end a run.
fn digit_run(chars: &[char], start: usize) -> (usize, usize) {
    let (mut end, mut digits, mut j) = (start, 0, start);
    while j < chars.len() && (is_digit(chars[j]) || matches!(chars[j], '-' | ' ')) {
        if is_digit(chars[j]) {
            digits += 1;
            end = j + 1;
        }
        j += 1;
    }
    (end, digits)
}

/// `YYYY-MM-DD`: a business date (reconciliation), not a person.
fn is_date(run: &[char]) -> bool {
    run.len() == 10 && run.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == '-' } else { c.is_ascii_digit() })
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
    fn digit_runs_are_masked_in_logged_paths_wherever_they_stand() {
        let cases = [
            ("/v1/orders/ord_01J9", "/v1/orders/ord_01J9"),
            ("/v1/credit-lines/11010519491231002X", "/v1/credit-lines/***"),
            ("/v1/credit-lines/11010519491231002x/holds", "/v1/credit-lines/***/holds"),
            ("/v1/x/13800138000", "/v1/x/***"),
            ("/a/12345678901/b/98765432109", "/a/***/b/***"),
            // After an id prefix too, notice ids included.
            ("/v1/orders/ord_440305199504254110", "/v1/orders/ord_***"),
            ("/v1/notices/ntc_0000000000000042", "/v1/notices/ntc_***"),
            // `-` and spaces inside a run, escaped or not; the run ends at its last digit.
            ("/v1/orders/134-8793-6180", "/v1/orders/***"),
            ("/v1/orders/134%208793%206180/cancel", "/v1/orders/***/cancel"),
            ("/v1/orders/440305 19900307 123X", "/v1/orders/***"),
            ("/a/1234567-/b", "/a/***-/b"),
            // Percent-escaped digits, escapes of escapes, full-width digits.
            ("/v1/credit-lines/%34%34%30%33%30%35%31%39%39%30%30%33%30%37%31%32%33%58", "/v1/credit-lines/***"),
            ("/v1/orders/%2531%2533%2538%2531%2532%2533%2534%2535%2536%2537%2538", "/v1/orders/***"),
            ("/v1/orders/%EF%BC%91%EF%BC%93%EF%BC%98%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94", "/v1/orders/***"),
            // Shorter runs and dates stay readable.
            ("/a/123456/b", "/a/123456/b"),
            ("/a/1234567/b", "/a/***/b"),
            ("/v1/reconciliation/2027-03-03", "/v1/reconciliation/2027-03-03"),
            ("/v1/admin/stores/sz-440305", "/v1/admin/stores/sz-440305"),
            // A decoded control character is escaped again; a bad escape stays as it is.
            ("/a/%0Ab/%zz/%4", "/a/%0Ab/%zz/%4"),
        ];
        for (path, logged) in cases {
            assert_eq!(loggable_path(path), logged, "{path}");
        }
    }
}
