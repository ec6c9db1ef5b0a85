//! Admin setup endpoints (API.md section 2): providers, banks, stores, partners, products, API keys.

use super::body::parse_object;
use super::requests::setup::{
    ApiKeyRequest, BankPatch, BankRequest, PartnerPatch, PartnerRequest, ProductPatch, ProductRequest, ProviderPatch, ProviderRequest,
    StorePatch, StoreRequest,
};
use super::{Body, Page, State, created, ok, page_of};
use crate::auth::{Caller, PrincipalKind};
use crate::db::setup::{self as q, WebhookOwner};
use crate::error::{ApiError, ApiResult};
use crate::service::setup as svc;
use actix_web::{HttpRequest, HttpResponse, web};

// ---------- providers ----------

pub(super) async fn create_provider(state: State, body: Body) -> ApiResult<HttpResponse> {
    let (id, input) = ProviderRequest::read(&parse_object(&body.0)?)?.input();
    created(&svc::create_provider(&state, &id, input).await?)
}

pub(super) async fn patch_provider(state: State, path: web::Path<String>, body: Body) -> ApiResult<HttpResponse> {
    let patch = ProviderPatch::read(&parse_object(&body.0)?, &path)?;
    ok(&svc::update_provider(&state, &path, |p| patch.apply(p)).await?)
}

pub(super) async fn get_provider(state: State, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let client = state.pool.get().await?;
    ok(&q::get_provider(&**client, &path).await?.ok_or_else(ApiError::not_found)?)
}

pub(super) async fn list_providers(state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let page = Page::from_request(&req)?;
    let client = state.pool.get().await?;
    let items = q::list_providers(&**client, page.after_seq()?, page.limit + 1).await?;
    Ok(page_of(items, page.limit, |p| p.seq, |p| p))
}

pub(super) async fn rotate_provider_secret(state: State, path: web::Path<String>) -> ApiResult<HttpResponse> {
    ok(&svc::rotate_webhook_secret(&state, WebhookOwner::Provider, &path).await?)
}

// ---------- banks ----------

pub(super) async fn create_bank(state: State, body: Body) -> ApiResult<HttpResponse> {
    let (id, input) = BankRequest::read(&parse_object(&body.0)?)?.input();
    created(&svc::create_bank(&state, &id, input).await?)
}

pub(super) async fn patch_bank(state: State, path: web::Path<String>, body: Body) -> ApiResult<HttpResponse> {
    let patch = BankPatch::read(&parse_object(&body.0)?, &path)?;
    ok(&svc::update_bank(&state, &path, |b| patch.apply(b)).await?)
}

pub(super) async fn get_bank(state: State, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let client = state.pool.get().await?;
    ok(&q::get_bank(&**client, &path).await?.ok_or_else(ApiError::not_found)?)
}

pub(super) async fn list_banks(state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let page = Page::from_request(&req)?;
    let client = state.pool.get().await?;
    let items = q::list_banks(&**client, page.after_seq()?, page.limit + 1).await?;
    Ok(page_of(items, page.limit, |b| b.seq, |b| b))
}

pub(super) async fn rotate_bank_secret(state: State, path: web::Path<String>) -> ApiResult<HttpResponse> {
    ok(&svc::rotate_webhook_secret(&state, WebhookOwner::Bank, &path).await?)
}

// ---------- stores ----------

pub(super) async fn create_store(state: State, body: Body) -> ApiResult<HttpResponse> {
    let (id, input) = StoreRequest::read(&parse_object(&body.0)?)?.input();
    created(&svc::create_store(&state, &id, input).await?)
}

pub(super) async fn patch_store(state: State, path: web::Path<String>, body: Body) -> ApiResult<HttpResponse> {
    let patch = StorePatch::read(&parse_object(&body.0)?, &path)?;
    ok(&svc::update_store(&state, &path, |s| patch.apply(s)).await?)
}

pub(super) async fn get_store(state: State, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let client = state.pool.get().await?;
    ok(&q::get_store(&**client, &path).await?.ok_or_else(ApiError::not_found)?)
}

pub(super) async fn list_stores(state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let page = Page::from_request(&req)?;
    let client = state.pool.get().await?;
    let items = q::list_stores(&**client, page.after_seq()?, page.limit + 1).await?;
    Ok(page_of(items, page.limit, |s| s.seq, |s| s))
}

// ---------- partners ----------

pub(super) async fn create_partner(state: State, body: Body) -> ApiResult<HttpResponse> {
    let (id, input) = PartnerRequest::read(&parse_object(&body.0)?)?.input();
    created(&svc::create_partner(&state, &id, input).await?)
}

pub(super) async fn patch_partner(state: State, path: web::Path<String>, body: Body) -> ApiResult<HttpResponse> {
    let patch = PartnerPatch::read(&parse_object(&body.0)?, &path)?;
    ok(&svc::update_partner(&state, &path, |p| patch.apply(p)).await?)
}

pub(super) async fn get_partner(state: State, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    if caller.principal.kind() == PrincipalKind::Partner && !caller.principal.is(PrincipalKind::Partner, &path) {
        return Err(ApiError::not_found());
    }
    let client = state.pool.get().await?;
    let p = q::get_partner(&**client, &path).await?.ok_or_else(ApiError::not_found)?;
    ok(&svc::partner_view(&state, p))
}

pub(super) async fn list_partners(state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let page = Page::from_request(&req)?;
    let client = state.pool.get().await?;
    let items = q::list_partners(&**client, page.after_seq()?, page.limit + 1).await?;
    Ok(page_of(items, page.limit, |p| p.seq, |p| svc::partner_view(&state, p)))
}

// ---------- products ----------

pub(super) async fn create_product(state: State, body: Body) -> ApiResult<HttpResponse> {
    let (id, input, terms) = ProductRequest::read(&parse_object(&body.0)?)?.input();
    created(&svc::create_product(&state, &id, input, Some(terms)).await?)
}

pub(super) async fn patch_product(state: State, path: web::Path<String>, body: Body) -> ApiResult<HttpResponse> {
    let patch = ProductPatch::read(&parse_object(&body.0)?, &path)?;
    ok(&svc::update_product(&state, &path, |p| patch.apply(p)).await?)
}

pub(super) async fn get_product(state: State, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let client = state.pool.get().await?;
    ok(&q::get_product(&**client, &path).await?.ok_or_else(ApiError::not_found)?)
}

pub(super) async fn list_products(state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let page = Page::from_request(&req)?;
    let client = state.pool.get().await?;
    let items = q::list_products(&**client, page.after_seq()?, page.limit + 1).await?;
    Ok(page_of(items, page.limit, |p| p.seq, |p| p))
}

// ---------- api keys ----------

pub(super) async fn create_api_key(state: State, body: Body) -> ApiResult<HttpResponse> {
    let (principal, rate) = ApiKeyRequest::read(&parse_object(&body.0)?)?.input()?;
    created(&svc::create_api_key(&state, principal, rate).await?)
}

pub(super) async fn get_api_key(state: State, path: web::Path<String>) -> ApiResult<HttpResponse> {
    ok(&svc::get_api_key(&state, &path).await?)
}

pub(super) async fn list_api_keys(state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let page = Page::from_request(&req)?;
    let client = state.pool.get().await?;
    let items = crate::db::api_keys::list(&**client, page.after_seq()?, page.limit + 1).await?;
    Ok(page_of(items, page.limit, |k| k.seq, svc::api_key_view))
}

pub(super) async fn revoke_api_key(state: State, path: web::Path<String>) -> ApiResult<HttpResponse> {
    svc::revoke_api_key(&state, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}
