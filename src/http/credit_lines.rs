//! Credit lines and holds (API.md section 3), for providers.

use super::body::{Obj, parse_object};
use super::{Body, State, answer, idempotency_key, idempotent_request, ok};
use crate::auth::Caller;
use crate::domain::identity::{IdNumber, Phone};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::service::credit_lines::{self as svc, LineStatus, Registration};
use actix_web::{HttpRequest, HttpResponse, web};

/// `customer: {id_number, phone, name?}` with the API.md codes for each.
pub fn customer(o: &Obj, key: &str) -> ApiResult<(IdNumber, Phone, Option<String>)> {
    let c = o.req_obj(key, &["id_number", "phone", "name"])?;
    let id_number = IdNumber::parse(c.req_str("id_number")?).map_err(|_| {
        ApiError::new(ErrorCode::InvalidIdNumber, "`id_number` must be an 18-character PRC resident ID with a valid check character")
            .field(c.path("id_number"))
    })?;
    let phone = Phone::parse(c.req_str("phone")?)
        .map_err(|_| ApiError::new(ErrorCode::InvalidPhone, "`phone` must be 11 digits starting with 1").field(c.path("phone")))?;
    let name = c.opt_text("name", 100)?;
    Ok((id_number, phone, name))
}

pub(super) async fn register(state: State, caller: Caller, req: HttpRequest, body: Body) -> ApiResult<HttpResponse> {
    let key = idempotency_key(&req)?;
    let v = parse_object(&body.0)?;
    let o = Obj::root(&v, &["customer", "limit", "expires_on", "status"])?;
    let (id_number, phone, name) = customer(&o, "customer")?;
    let limit = o.req_money("limit")?;
    let expires_on = o.req_date("expires_on")?;
    let status = match o.opt_str("status")? {
        None => None,
        Some(s) => Some(LineStatus::parse(s).ok_or_else(|| ApiError::invalid(o.path("status"), "`status` is active, frozen or closed"))?),
    };
    let request = idempotent_request(&req, &caller, key, &v);
    let provider_id = caller.principal.id().unwrap_or_default().to_string();
    answer(svc::register(&state, &provider_id, &request, Registration { id_number, phone, name, limit, expires_on, status }).await?)
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
    let key = idempotency_key(&req)?;
    let v = parse_object(&body.0)?;
    let o = Obj::root(&v, &["amount"])?;
    let amount = o.req_positive_money("amount")?;
    let request = idempotent_request(&req, &caller, key, &v);
    answer(svc::repay_debt(&state, &caller.principal, &path, &request, amount).await?)
}

pub(super) async fn get_hold(state: State, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    ok(&crate::service::orders::get_hold(&state, &caller.principal, &path).await?)
}
