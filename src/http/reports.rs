//! Reports (API.md section 8): a bank's daily reconciliation (JSON, or CSV on `Accept: text/csv`)
//! and a partner's monthly statement.

use super::{State, ok, query_param};
use crate::auth::Caller;
use crate::domain::dates::parse_date;
use crate::error::{ApiError, ApiResult, ErrorCode};
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

pub(super) async fn reconciliation(state: State, caller: Caller, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let date = parse_date(&path)
        .map_err(|_| ApiError::new(ErrorCode::InvalidDate, "the business date must be a date YYYY-MM-DD").field("business_date"))?;
    let bank_id = query_param(&req, "bank_id");
    let report = svc::reconciliation(&state, &caller.principal, date, bank_id.as_deref()).await?;
    if wants_csv(&req) {
        let name = match &report.bank_id {
            Some(b) => format!("reconciliation-{date}-{b}.csv"),
            None => format!("reconciliation-{date}.csv"),
        };
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")))
            .body(svc::to_csv(&report)));
    }
    ok(&report)
}

pub(super) async fn statement(state: State, caller: Caller, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let month = query_param(&req, "month").ok_or_else(|| ApiError::invalid("month", "`month` (YYYY-MM) is required"))?;
    let dates =
        svc::parse_month(&month).ok_or_else(|| ApiError::new(ErrorCode::InvalidDate, "`month` must be a month YYYY-MM").field("month"))?;
    ok(&svc::statement(&state, &caller.principal, &path, &month, dates).await?)
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
    let file = crate::service::settlement::settlement(&state, &caller.principal, &provider_id, date).await?;
    if wants_csv(&req) {
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"settlement-{date}-{provider_id}.csv\"")))
            .body(crate::service::settlement::to_csv(&file)));
    }
    ok(&file)
}
