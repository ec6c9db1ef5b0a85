//! Plans (API.md section 5) for banks, and end of day (section 6) for the admin.

use super::body::{Obj, parse_object};
use super::{Body, State, answer, idempotency_key, idempotent_request, ok, query_param};
use crate::auth::Caller;
use crate::domain::dates::parse_date;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::service::plans::{self as svc, RepaymentRequest};
use actix_web::{HttpRequest, HttpResponse, web};

pub(super) async fn get(state: State, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    ok(&svc::get(&state, &caller.principal, &path).await?)
}

pub(super) async fn payoff(state: State, caller: Caller, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let as_of = match query_param(&req, "as_of") {
        None => None,
        Some(s) => {
            Some(parse_date(&s).map_err(|_| ApiError::new(ErrorCode::InvalidDate, "`as_of` must be a date YYYY-MM-DD").field("as_of"))?)
        }
    };
    ok(&svc::payoff_quote(&state, &caller.principal, &path, as_of).await?)
}

pub(super) async fn repay(state: State, caller: Caller, req: HttpRequest, path: web::Path<String>, body: Body) -> ApiResult<HttpResponse> {
    let key = idempotency_key(&req)?;
    let v = parse_object(&body.0)?;
    let o = Obj::root(&v, &["amount", "paid_on", "reference"])?;
    let amount = o.req_positive_money("amount")?;
    let paid_on = o.req_date("paid_on")?;
    let reference = o.req_visible_ascii("reference", 64)?;
    let request = idempotent_request(&req, &caller, key, &v);
    answer(svc::repay(&state, &caller.principal, &path, &request, RepaymentRequest { amount, paid_on, reference }).await?)
}

pub(super) async fn accelerate(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body,
) -> ApiResult<HttpResponse> {
    let key = idempotency_key(&req)?;
    let v = parse_object(&body.0)?;
    let o = Obj::root(&v, &["as_of", "reason"])?;
    let as_of = o.req_date("as_of")?;
    let reason = o.req_text("reason", 500)?;
    let request = idempotent_request(&req, &caller, key, &v);
    answer(svc::accelerate(&state, &caller.principal, &path, &request, as_of, reason).await?)
}

pub(super) async fn eod(state: State, body: Body) -> ApiResult<HttpResponse> {
    let v = parse_object(&body.0)?;
    let o = Obj::root(&v, &["business_date"])?;
    let date = o.req_date("business_date")?;
    let s = &state.settings;
    ok(&crate::service::eod::run(&state.pool, &*state.clock, date, s.clock.allow_future_dates, s.eod.chunk_size).await?)
}
