//! Plans (API.md section 5) for banks, and end of day (section 6) for the admin.

use super::body::parse_object;
use super::requests::plans::{AccelerateRequest, EodRequest, PayoffQuery, RepaymentRequest};
use super::{Body, State, answer, idempotent, ok, query_param};
use crate::auth::Caller;
use crate::domain::eod_run::EodTrigger;
use crate::error::ApiResult;
use crate::service::plans as svc;
use actix_web::{HttpRequest, HttpResponse, web};

pub(super) async fn get(state: State, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    ok(&svc::get(&state, &caller.principal, &path).await?)
}

pub(super) async fn payoff(state: State, caller: Caller, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let query = PayoffQuery::read(query_param(&req, "as_of").as_deref())?;
    ok(&svc::payoff_quote(&state, &caller.principal, &path, query.as_of).await?)
}

pub(super) async fn repay(state: State, caller: Caller, req: HttpRequest, path: web::Path<String>, body: Body) -> ApiResult<HttpResponse> {
    let (repayment, request) = idempotent(&req, &caller, &body, RepaymentRequest::read)?;
    answer(svc::repay(&state, &caller.principal, &path, &request, repayment.into()).await?)
}

pub(super) async fn accelerate(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body,
) -> ApiResult<HttpResponse> {
    let (acceleration, request) = idempotent(&req, &caller, &body, AccelerateRequest::read)?;
    answer(svc::accelerate(&state, &caller.principal, &path, &request, acceleration.as_of, acceleration.reason).await?)
}

pub(super) async fn eod(state: State, body: Body) -> ApiResult<HttpResponse> {
    let eod = EodRequest::read(&parse_object(&body.0)?)?;
    let s = &state.settings;
    ok(&crate::service::eod::run(
        &state.pool,
        &*state.clock,
        eod.business_date,
        s.clock.allow_future_dates,
        s.eod.chunk_size,
        EodTrigger::Api,
    )
    .await?)
}
