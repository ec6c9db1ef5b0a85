//! A provider's answer to a pending hold (API.md §12): acknowledge, confirm, decline.

use super::requests::holds::{AcknowledgeRequest, ConfirmRequest, DeclineRequest};
use super::{Body, State, answer, idempotent};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::service::holds::{self as svc, HoldAction};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

/// Reads the body with `read`, then the one service call.
async fn act(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body,
    read: fn(&Value) -> ApiResult<HoldAction>,
) -> ApiResult<HttpResponse> {
    let (action, request) = idempotent(&req, &caller, &body, read)?;
    answer(svc::act(&state, &caller.principal, &path, &request, action).await?)
}

pub(super) async fn acknowledge(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body,
) -> ApiResult<HttpResponse> {
    act(state, caller, req, path, body, |v| AcknowledgeRequest::read(v).map(Into::into)).await
}

pub(super) async fn confirm(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body,
) -> ApiResult<HttpResponse> {
    act(state, caller, req, path, body, |v| ConfirmRequest::read(v).map(Into::into)).await
}

pub(super) async fn decline(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body,
) -> ApiResult<HttpResponse> {
    act(state, caller, req, path, body, |v| DeclineRequest::read(v).map(Into::into)).await
}
