//! Write-off and recoveries (API.md §14) for banks and the admin.

use super::requests::write_offs::{RecoveryRequest, WriteOffRequest};
use super::{Body, Page, State, answer, idempotent, page_of};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::service::write_offs as svc;
use actix_web::{HttpRequest, HttpResponse, web};

pub(super) async fn write_off(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body,
) -> ApiResult<HttpResponse> {
    let (write_off, request) = idempotent(&req, &caller, &body, WriteOffRequest::read)?;
    answer(svc::request_write_off(&state, &caller.principal, &path, &request, write_off.into()).await?)
}

pub(super) async fn record_recovery(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body,
) -> ApiResult<HttpResponse> {
    let (recovery, request) = idempotent(&req, &caller, &body, RecoveryRequest::read)?;
    answer(svc::record_recovery(&state, &caller.principal, &path, &request, recovery.into()).await?)
}

pub(super) async fn recoveries(state: State, caller: Caller, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let page = Page::from_request(&req)?;
    let items = svc::recoveries(&state, &caller.principal, &path, page.after_seq()?, page.limit + 1).await?;
    Ok(page_of(items, page.limit, |(seq, _)| *seq, |(_, v)| v))
}
