//! Quotes and orders (API.md section 4), for stores, partners and banks.

use super::body::{Obj, parse_object};
use super::credit_lines::customer;
use super::{Body, Page, State, answer, encode_cursor, idempotency_key, idempotent_request, ok, query_param, request_id};
use crate::auth::{Caller, PrincipalKind};
use crate::domain::identity::{Imei, RegionCode};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::service::orders::{self as svc, FundingDecision, OrderRequest, QuoteRequest};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

const TEXT_MAX: usize = 200;

pub(super) async fn quote(state: State, body: Body) -> ApiResult<HttpResponse> {
    let v = parse_object(&body.0)?;
    let o = Obj::root(&v, &["product_id", "term_months", "device_price", "down_payment"])?;
    let product_id = o.req_id("product_id")?;
    let term_months = o.req_int("term_months", 1, 360)? as u32;
    let device_price = o.req_positive_money("device_price")?;
    let down_payment = o.req_money("down_payment")?;
    ok(&svc::quote(&state, QuoteRequest { product_id, term_months, device_price, down_payment }).await?)
}

pub(super) async fn place(state: State, caller: Caller, req: HttpRequest, body: Body) -> ApiResult<HttpResponse> {
    let key = idempotency_key(&req)?;
    let v = parse_object(&body.0)?;
    let o = Obj::root(
        &v,
        &["out_order_no", "product_id", "term_months", "customer", "device", "down_payment", "consent", "region_code", "agent_id"],
    )?;
    let out_order_no = o.req_visible_ascii("out_order_no", 64)?;
    let product_id = o.req_id("product_id")?;
    let term_months = o.req_int("term_months", 1, 360)? as u32;
    let (id_number, phone, name) = customer(&o, "customer")?;
    let d = o.req_obj("device", &["sku", "imei", "price"])?;
    let device_sku = d.req_text("sku", TEXT_MAX)?;
    let imei = Imei::parse(d.req_str("imei")?).map_err(|_| {
        ApiError::new(ErrorCode::InvalidImei, "`imei` must be 15 digits with a valid Luhn check digit").field(d.path("imei"))
    })?;
    let device_price = d.req_positive_money("price")?;
    let down_payment = o.req_money("down_payment")?;
    let consent = match o.opt_obj("consent", &["method", "reference"])? {
        None => None,
        Some(c) => {
            let method = c.req_str("method")?;
            if !matches!(method, "provider_app" | "sms_otp") {
                return Err(ApiError::invalid(c.path("method"), "`method` is provider_app or sms_otp"));
            }
            let reference = c.req_text("reference", TEXT_MAX)?;
            Some(json!({ "method": method, "reference": reference }))
        }
    };
    let is_partner = caller.principal.kind() == PrincipalKind::Partner;
    let (region_code, agent_id) = if is_partner {
        let code = o.req_str("region_code")?;
        let code = RegionCode::parse_order(code).map_err(|_| ApiError::invalid(o.path("region_code"), "a 6-digit region code"))?;
        (Some(code), Some(o.req_visible_ascii("agent_id", 64)?))
    } else {
        for key in ["region_code", "agent_id"] {
            if o.has(key) {
                return Err(ApiError::invalid(o.path(key), format!("`{key}` is not allowed for a store: a store's region is its own")));
            }
        }
        (None, None)
    };
    let request = idempotent_request(&req, &caller, key, &v);
    let order = OrderRequest {
        out_order_no,
        product_id,
        term_months,
        id_number,
        phone,
        name,
        device_sku,
        imei,
        device_price,
        down_payment,
        consent,
        region_code,
        agent_id,
    };
    answer(svc::place(&state, &caller.principal, &request, order).await?)
}

pub(super) async fn get(state: State, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    ok(&svc::get(&state, &caller.principal, &path).await?)
}

const STATUSES: [&str; 7] = ["awaiting_funding", "active", "settled", "defaulted", "cancelled", "rejected", "expired"];

pub(super) async fn list(state: State, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    let page = Page::from_request(&req)?;
    let status = query_param(&req, "status");
    if let Some(s) = &status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::invalid("status", "not an order status"));
    }
    let (data, next) = svc::list(&state, &caller.principal, status.as_deref(), page.after_seq()?, page.limit).await?;
    ok(&json!({ "data": data, "next_cursor": next.map(encode_cursor) }))
}

pub(super) async fn cancel(state: State, caller: Caller, req: HttpRequest, path: web::Path<String>, body: Body) -> ApiResult<HttpResponse> {
    let key = idempotency_key(&req)?;
    let v = if body.0.iter().all(u8::is_ascii_whitespace) { json!({}) } else { parse_object(&body.0)? };
    let o = Obj::root(&v, &["reason"])?;
    let reason = o.opt_text("reason", 500)?;
    let request = idempotent_request(&req, &caller, key, &v);
    answer(svc::cancel(&state, &caller.principal, &path, &request, reason).await?)
}

pub(super) async fn funding(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: Body,
) -> ApiResult<HttpResponse> {
    let key = idempotency_key(&req)?;
    let v = parse_object(&body.0)?;
    let o = Obj::root(&v, &["decision", "loan_no", "funded_on", "reason"])?;
    let decision = match o.req_str("decision")? {
        "approved" => {
            if o.has("reason") {
                return Err(ApiError::invalid(o.path("reason"), "an approval carries no reason"));
            }
            FundingDecision::Approved { loan_no: o.req_visible_ascii("loan_no", 64)?, funded_on: o.req_date("funded_on")? }
        }
        "rejected" => {
            for key in ["loan_no", "funded_on"] {
                if o.has(key) {
                    return Err(ApiError::invalid(o.path(key), format!("a rejection carries no `{key}`")));
                }
            }
            FundingDecision::Rejected { reason: o.req_text("reason", 500)? }
        }
        _ => return Err(ApiError::invalid(o.path("decision"), "`decision` is approved or rejected")),
    };
    let request = idempotent_request(&req, &caller, key, &v);
    answer(svc::fund(&state, &caller.principal, &path, &request, decision).await?)
}

pub(super) async fn borrower(state: State, caller: Caller, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    ok(&svc::borrower(&state, &caller.principal, &path, &request_id(&req)).await?)
}
