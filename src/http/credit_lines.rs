//! Credit lines and holds (API.md section 3), for providers.

use super::requests::credit_lines::{CreditLineRequest, DebtRepaymentRequest};
use super::{Body, State, answer, idempotent, ok};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::service::credit_lines as svc;
use actix_web::{HttpRequest, HttpResponse, web};

pub(super) async fn register(state: State, caller: Caller, req: HttpRequest, body: Body) -> ApiResult<HttpResponse> {
    let (line, request) = idempotent(&req, &caller, &body, CreditLineRequest::read)?;
    let provider_id = caller.principal.id().unwrap_or_default().to_string();
    answer(svc::register(&state, &provider_id, &request, line.into()).await?)
}

pub(super) async fn get_line(state: State, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    ok(&svc::get(&state, &caller.principal, &path).await?)
}

pub(super) async fn repay_debt(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body,
) -> ApiResult<HttpResponse> {
    let (debt, request) = idempotent(&req, &caller, &body, DebtRepaymentRequest::read)?;
    answer(svc::repay_debt(&state, &caller.principal, &path, &request, debt.amount).await?)
}

pub(super) async fn get_hold(state: State, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    ok(&crate::service::orders::get_hold(&state, &caller.principal, &path).await?)
}
