//! Quotes and orders (API.md section 4), for stores, partners and banks.

use super::body::parse_object;
use super::requests::orders::{CancelRequest, FundingRequest, OrderRequest, QuoteRequest};
use super::{Body, Page, State, answer, encode_cursor, idempotency_key, idempotent, idempotent_request, ok, query_param, request_id};
use crate::auth::{Caller, PrincipalKind};
use crate::domain::status::OrderStatus;
use crate::error::{ApiError, ApiResult};
use crate::service::orders as svc;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

pub(super) async fn quote(state: State, body: Body) -> ApiResult<HttpResponse> {
    let quote = QuoteRequest::read(&parse_object(&body.0)?)?;
    ok(&svc::quote(&state, quote.into()).await?)
}

pub(super) async fn place(state: State, caller: Caller, req: HttpRequest, body: Body) -> ApiResult<HttpResponse> {
    let (order, request) = idempotent(&req, &caller, &body, |v| OrderRequest::read(v, caller.principal.kind() == PrincipalKind::Partner))?;
    answer(svc::place(&state, &caller.principal, &request, order.into()).await?)
}

pub(super) async fn get(state: State, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    ok(&svc::get(&state, &caller.principal, &path).await?)
}

pub(super) async fn list(state: State, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    let page = Page::from_request(&req)?;
    let status = match query_param(&req, "status") {
        Some(s) => Some(OrderStatus::parse(&s).ok_or_else(|| ApiError::invalid("status", "not an order status"))?),
        None => None,
    };
    let (data, next) = svc::list(&state, &caller.principal, status, page.after_seq()?, page.limit).await?;
    ok(&json!({ "data": data, "next_cursor": next.map(encode_cursor) }))
}

pub(super) async fn cancel(state: State, caller: Caller, req: HttpRequest, path: web::Path<String>, body: Body) -> ApiResult<HttpResponse> {
    let key = idempotency_key(&req)?;
    let v = if body.0.iter().all(u8::is_ascii_whitespace) { json!({}) } else { parse_object(&body.0)? };
    let cancel = CancelRequest::read(&v)?;
    let request = idempotent_request(&req, &caller, key, &v);
    answer(svc::cancel(&state, &caller.principal, &path, &request, cancel.reason).await?)
}

pub(super) async fn funding(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body,
) -> ApiResult<HttpResponse> {
    let (decision, request) = idempotent(&req, &caller, &body, |v| FundingRequest::read(v)?.decision())?;
    answer(svc::fund(&state, &caller.principal, &path, &request, decision).await?)
}

pub(super) async fn borrower(state: State, caller: Caller, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    ok(&svc::borrower(&state, &caller.principal, &path, &request_id(&req)).await?)
}
