//! Device returns (API.md §13): the owner asks, the order's bank decides, both read.

use super::requests::returns::{ReturnDecisionRequest, ReturnRequest};
use super::{Body, Page, State, answer, idempotent, ok, page_of};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::service::returns as svc;
use actix_web::{HttpRequest, HttpResponse, web};

pub(super) async fn request(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body,
) -> ApiResult<HttpResponse> {
    let (ret, request) = idempotent(&req, &caller, &body, ReturnRequest::read)?;
    answer(svc::request(&state, &caller.principal, &path, &request, ret.into()).await?)
}

pub(super) async fn decide(state: State, caller: Caller, req: HttpRequest, path: web::Path<String>, body: Body) -> ApiResult<HttpResponse> {
    let (decision, request) = idempotent(&req, &caller, &body, ReturnDecisionRequest::read)?;
    answer(svc::decide(&state, &caller.principal, &path, &request, decision.decision()?).await?)
}

pub(super) async fn get(state: State, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    ok(&svc::get(&state, &caller.principal, &path).await?)
}

pub(super) async fn of_order(state: State, caller: Caller, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let page = Page::from_request(&req)?;
    let items = svc::of_order(&state, &caller.principal, &path, page.after_seq()?, page.limit + 1).await?;
    Ok(page_of(items, page.limit, |(seq, _)| *seq, |(_, v)| v))
}
