//! Reports (API.md section 8): a bank's daily reconciliation (JSON, or CSV on `Accept: text/csv`)
//! and a partner's monthly statement.

use super::{State, query_param};
use crate::auth::Caller;
use crate::domain::dates::parse_date;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::service::report_store::{self as store, Format, ReportBytes};
use crate::service::reports as svc;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

/// Does the caller ask for CSV? `Accept` naming `text/csv` (not with `q=0`).
fn wants_csv(req: &HttpRequest) -> bool {
    let Some(accept) = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()) else { return false };
    accept.split(',').any(|part| {
        let mut params = part.split(';').map(str::trim);
        let media = params.next().unwrap_or("");
        let refused = params.any(|p| p.strip_prefix("q=").is_some_and(|q| q.starts_with('0') && q.chars().all(|c| c == '0' || c == '.')));
        media.eq_ignore_ascii_case("text/csv") && !refused
    })
}

fn format_of(req: &HttpRequest) -> Format {
    if wants_csv(req) { Format::Csv } else { Format::Json }
}

/// A report's answer (API.md §15): its bytes with `ETag: "<sha-256>"`, or `304` when
/// `If-None-Match` names that tag (or is `*`).
fn report_answer(req: &HttpRequest, r: ReportBytes, format: Format, file_name: &str) -> HttpResponse {
    let etag = format!("\"{}\"", r.sha256);
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').map(str::trim).any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag.as_str())));
    if matches {
        return HttpResponse::NotModified().insert_header((header::ETAG, etag)).finish();
    }
    let mut answer = HttpResponse::Ok();
    answer.insert_header((header::ETAG, etag));
    match format {
        Format::Json => answer.content_type("application/json").body(r.body),
        Format::Csv => answer
            .content_type("text/csv; charset=utf-8")
            .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file_name}\"")))
            .body(r.body),
    }
}

pub(super) async fn reconciliation(state: State, caller: Caller, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let date = parse_date(&path)
        .map_err(|_| ApiError::new(ErrorCode::InvalidDate, "the business date must be a date YYYY-MM-DD").field("business_date"))?;
    let bank_id = query_param(&req, "bank_id");
    let format = format_of(&req);
    let report = store::reconciliation(&state, &caller.principal, date, bank_id.as_deref(), format).await?;
    let name = match (&bank_id, caller.principal.kind()) {
        (_, crate::auth::PrincipalKind::Bank) => format!("reconciliation-{date}-{}.csv", caller.principal.id().unwrap_or_default()),
        (Some(b), _) => format!("reconciliation-{date}-{b}.csv"),
        (None, _) => format!("reconciliation-{date}.csv"),
    };
    Ok(report_answer(&req, report, format, &name))
}

pub(super) async fn statement(state: State, caller: Caller, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let month = query_param(&req, "month").ok_or_else(|| ApiError::invalid("month", "`month` (YYYY-MM) is required"))?;
    let dates =
        svc::parse_month(&month).ok_or_else(|| ApiError::new(ErrorCode::InvalidDate, "`month` must be a month YYYY-MM").field("month"))?;
    let statement = svc::statement(&state, &caller.principal, &path, &month, dates).await?;
    let body = serde_json::to_vec(&statement).map_err(|e| ApiError::internal_because("Failed to render a statement as JSON", e))?;
    Ok(report_answer(&req, ReportBytes::of(body), Format::Json, ""))
}

/// `GET /v1/providers/{id}/settlement/{business_date}` (API.md §15), JSON or CSV.
pub(super) async fn settlement(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (provider_id, date) = path.into_inner();
    let date = parse_date(&date)
        .map_err(|_| ApiError::new(ErrorCode::InvalidDate, "the business date must be a date YYYY-MM-DD").field("business_date"))?;
    let format = format_of(&req);
    let file = store::settlement(&state, &caller.principal, &provider_id, date, format).await?;
    Ok(report_answer(&req, file, format, &format!("settlement-{date}-{provider_id}.csv")))
}
