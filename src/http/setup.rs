//! Admin setup endpoints (API.md section 2): providers, banks, stores, partners, products, API keys.

use super::body::{Obj, Patch, parse_object};
use super::{Body, Page, State, created, ok, page_of};
use crate::auth::{Caller, Principal, PrincipalKind};
use crate::db::setup::{self as q, BankInput, PartnerInput, ProductInput, ProviderInput, StoreInput, WebhookOwner};
use crate::domain::identity::{RegionCode, RegionPattern};
use crate::domain::money::Amount;
use crate::domain::schedule::Pricing;
use crate::error::{ApiError, ApiResult};
use crate::service::setup::{self as svc, TermInput};
use actix_web::{HttpRequest, HttpResponse, web};
use rust_decimal::Decimal;

const NAME_MAX: usize = 200;
const URL_MAX: usize = 2000;
const LIST_MAX: usize = 500;

/// A required field: on create it must be there; on PATCH absent keeps `current`, `null` is refused.
fn field<'a, T>(o: &Obj<'a>, key: &str, current: Option<T>, read: impl FnOnce(&Obj<'a>, &str) -> ApiResult<T>) -> ApiResult<T> {
    match (current, o.patch_value(key)) {
        (Some(current), Patch::Absent) => Ok(current),
        (Some(_), Patch::Clear) => Err(ApiError::invalid(o.path(key), format!("`{key}` cannot be cleared"))),
        _ => read(o, key),
    }
}

/// An optional field: on PATCH absent keeps `current`, `null` clears it.
fn opt_field<'a, T>(
    o: &Obj<'a>,
    key: &str,
    current: Option<Option<T>>,
    read: impl FnOnce(&Obj<'a>, &str) -> ApiResult<Option<T>>,
) -> ApiResult<Option<T>> {
    match (current, o.patch_value(key)) {
        (Some(current), Patch::Absent) => Ok(current),
        (Some(_), Patch::Clear) => Ok(None),
        _ => read(o, key),
    }
}

/// The body of a PATCH may repeat the path's id but not change it.
fn patch_obj<'a>(v: &'a serde_json::Value, id: &str, allowed: &[&str]) -> ApiResult<Obj<'a>> {
    let mut keys: Vec<&str> = allowed.to_vec();
    keys.push("id");
    let o = Obj::root(v, &keys)?;
    if let Patch::Set(given) = o.patch_value("id")
        && given.as_str() != Some(id)
    {
        return Err(ApiError::invalid("id", "`id` cannot be changed"));
    }
    Ok(o)
}

fn webhook_url(o: &Obj, key: &str) -> ApiResult<Option<String>> {
    let Some(s) = o.opt_text(key, URL_MAX)? else { return Ok(None) };
    let parsed = url::Url::parse(&s).map_err(|_| ApiError::invalid(o.path(key), "`webhook_url` must be an http or https URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(ApiError::invalid(o.path(key), "`webhook_url` must be an http or https URL"));
    }
    Ok(Some(s))
}

fn region_patterns(o: &Obj, key: &str, v: &serde_json::Value) -> ApiResult<Vec<String>> {
    o.str_list(key, v, LIST_MAX, |s, path| {
        RegionPattern::parse(s).map(|_| s.to_string()).map_err(|_| ApiError::invalid(path, "a region code of 2, 4 or 6 digits"))
    })
}

fn req_regions(o: &Obj, key: &str) -> ApiResult<Vec<String>> {
    let v = o.patch_value(key);
    match v {
        Patch::Set(v) => region_patterns(o, key, v),
        _ => Err(ApiError::invalid(o.path(key), format!("`{key}` is required"))),
    }
}

fn opt_regions(o: &Obj, key: &str) -> ApiResult<Option<Vec<String>>> {
    match o.patch_value(key) {
        Patch::Set(v) => region_patterns(o, key, v).map(Some),
        _ => Ok(None),
    }
}

pub(super) async fn parse_body(body: &Body) -> ApiResult<serde_json::Value> {
    parse_object(&body.0)
}

// ---------- providers ----------

fn provider_input(o: &Obj, base: Option<ProviderInput>) -> ApiResult<ProviderInput> {
    let (name, url) = match base {
        Some(b) => (Some(b.name), Some(b.webhook_url)),
        None => (None, None),
    };
    Ok(ProviderInput {
        name: field(o, "name", name, |o, k| o.req_text(k, NAME_MAX))?,
        webhook_url: opt_field(o, "webhook_url", url, webhook_url)?,
    })
}

pub(super) async fn create_provider(state: State, body: Body) -> ApiResult<HttpResponse> {
    let v = parse_body(&body).await?;
    let o = Obj::root(&v, &["id", "name", "webhook_url"])?;
    let id = o.req_id("id")?;
    let input = provider_input(&o, None)?;
    created(&svc::create_provider(&state, &id, input).await?)
}

pub(super) async fn patch_provider(state: State, path: web::Path<String>, body: Body) -> ApiResult<HttpResponse> {
    let v = parse_body(&body).await?;
    let o = patch_obj(&v, &path, &["name", "webhook_url"])?;
    ok(&svc::update_provider(&state, &path, |base| provider_input(&o, Some(base))).await?)
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

fn bank_input(o: &Obj, base: Option<BankInput>) -> ApiResult<BankInput> {
    let b = base.map(|b| (b.name, b.priority, b.apr_min, b.apr_max, b.exposure_limit, b.regions, b.webhook_url));
    let (name, priority, apr_min, apr_max, limit, regions, url) = match b {
        Some((a, b, c, d, e, f, g)) => (Some(a), Some(b), Some(c), Some(d), Some(e), Some(f), Some(g)),
        None => (None, None, None, None, None, None, None),
    };
    let input = BankInput {
        name: field(o, "name", name, |o, k| o.req_text(k, NAME_MAX))?,
        priority: field(o, "priority", priority, |o, k| o.req_int(k, 0, 1_000_000).map(|n| n as i32))?,
        apr_min: field(o, "apr_min", apr_min, |o, k| o.req_rate(k).map(|r| r.as_decimal()))?,
        apr_max: field(o, "apr_max", apr_max, |o, k| o.req_rate(k).map(|r| r.as_decimal()))?,
        exposure_limit: field(o, "exposure_limit", limit, |o, k| o.req_positive_money(k))?,
        regions: opt_field(o, "regions", regions, opt_regions)?,
        webhook_url: opt_field(o, "webhook_url", url, webhook_url)?,
    };
    if input.apr_min > input.apr_max {
        return Err(ApiError::invalid(o.path("apr_min"), "apr_min must not be above apr_max"));
    }
    Ok(input)
}

pub(super) async fn create_bank(state: State, body: Body) -> ApiResult<HttpResponse> {
    let v = parse_body(&body).await?;
    let o = Obj::root(&v, &["id", "name", "priority", "apr_min", "apr_max", "exposure_limit", "regions", "webhook_url"])?;
    let id = o.req_id("id")?;
    let input = bank_input(&o, None)?;
    created(&svc::create_bank(&state, &id, input).await?)
}

pub(super) async fn patch_bank(state: State, path: web::Path<String>, body: Body) -> ApiResult<HttpResponse> {
    let v = parse_body(&body).await?;
    let o = patch_obj(&v, &path, &["name", "priority", "apr_min", "apr_max", "exposure_limit", "regions", "webhook_url"])?;
    ok(&svc::update_bank(&state, &path, |base| bank_input(&o, Some(base))).await?)
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

fn store_input(o: &Obj, base: Option<StoreInput>) -> ApiResult<StoreInput> {
    let (name, region) = match base {
        Some(b) => (Some(b.name), Some(b.region_code)),
        None => (None, None),
    };
    Ok(StoreInput {
        name: field(o, "name", name, |o, k| o.req_text(k, NAME_MAX))?,
        region_code: field(o, "region_code", region, |o, k| {
            let s = o.req_str(k)?;
            RegionCode::parse_order(s).map(|_| s.to_string()).map_err(|_| ApiError::invalid(o.path(k), "a 6-digit region code"))
        })?,
    })
}

pub(super) async fn create_store(state: State, body: Body) -> ApiResult<HttpResponse> {
    let v = parse_body(&body).await?;
    let o = Obj::root(&v, &["id", "name", "region_code"])?;
    let id = o.req_id("id")?;
    let input = store_input(&o, None)?;
    created(&svc::create_store(&state, &id, input).await?)
}

pub(super) async fn patch_store(state: State, path: web::Path<String>, body: Body) -> ApiResult<HttpResponse> {
    let v = parse_body(&body).await?;
    let o = patch_obj(&v, &path, &["name", "region_code"])?;
    ok(&svc::update_store(&state, &path, |base| store_input(&o, Some(base))).await?)
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

fn partner_input(o: &Obj, base: Option<PartnerInput>) -> ApiResult<PartnerInput> {
    let b = base.map(|b| (b.name, b.established_on, b.deposit_paid, b.authorized_providers, b.major_violation_last_year, b.regions));
    let (name, est, dep, auth, viol, regions) = match b {
        Some((a, b, c, d, e, f)) => (Some(a), Some(b), Some(c), Some(d), Some(e), Some(f)),
        None => (None, None, None, None, None, None),
    };
    Ok(PartnerInput {
        name: field(o, "name", name, |o, k| o.req_text(k, NAME_MAX))?,
        established_on: field(o, "established_on", est, |o, k| o.req_date(k))?,
        deposit_paid: field(o, "deposit_paid", dep, |o, k| o.req_money(k))?,
        authorized_providers: field(o, "authorized_providers", auth, |o, k| o.req_id_list(k, LIST_MAX))?,
        major_violation_last_year: field(o, "major_violation_last_year", viol, |o, k| o.req_bool(k))?,
        regions: field(o, "regions", regions, req_regions)?,
    })
}

const PARTNER_FIELDS: [&str; 6] =
    ["name", "established_on", "deposit_paid", "authorized_providers", "major_violation_last_year", "regions"];

pub(super) async fn create_partner(state: State, body: Body) -> ApiResult<HttpResponse> {
    let v = parse_body(&body).await?;
    let mut allowed = PARTNER_FIELDS.to_vec();
    allowed.push("id");
    let o = Obj::root(&v, &allowed)?;
    let id = o.req_id("id")?;
    let input = partner_input(&o, None)?;
    created(&svc::create_partner(&state, &id, input).await?)
}

pub(super) async fn patch_partner(state: State, path: web::Path<String>, body: Body) -> ApiResult<HttpResponse> {
    let v = parse_body(&body).await?;
    let o = patch_obj(&v, &path, &PARTNER_FIELDS)?;
    ok(&svc::update_partner(&state, &path, |base| partner_input(&o, Some(base))).await?)
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

const PRODUCT_FIELDS: [&str; 13] = [
    "name",
    "pricing",
    "terms",
    "providers",
    "regions",
    "min_principal",
    "max_principal",
    "hold_ratio",
    "grace_days",
    "penalty_daily_rate",
    "funding_timeout_hours",
    "partner_referral_fee",
    "active",
];

fn terms_input(o: &Obj, key: &str) -> ApiResult<Vec<TermInput>> {
    let items = o.req_obj_list(key, &["months", "rate"], 360)?;
    if items.is_empty() {
        return Err(ApiError::invalid(o.path(key), "at least one term is required"));
    }
    let mut terms: Vec<TermInput> = Vec::with_capacity(items.len());
    for t in &items {
        let months = t.req_int("months", 1, 360)? as u32;
        if terms.iter().any(|x| x.months == months) {
            return Err(ApiError::invalid(t.path("months"), "the same months twice"));
        }
        terms.push(TermInput { months, rate: t.req_rate("rate")? });
    }
    Ok(terms)
}

fn ratio(o: &Obj, key: &str) -> ApiResult<Decimal> {
    let r = o.req_rate(key)?.as_decimal();
    if r <= Decimal::ZERO || r > Decimal::from(10) {
        return Err(ApiError::invalid(o.path(key), "`hold_ratio` must be above 0 and at most 10"));
    }
    Ok(r)
}

/// Parses a product (create: `base` None, defaults applied; PATCH: changes onto `base`), without the
/// cap check; answers the new terms when given.
fn product_input(o: &Obj, base: Option<ProductInput>) -> ApiResult<(ProductInput, Option<Vec<TermInput>>)> {
    let creating = base.is_none();
    let (name, pricing, terms, providers, regions, min_p, max_p, ratio_v, grace, penalty, timeout, fee, active) = match base {
        Some(b) => (
            Some(b.name),
            Some(b.pricing),
            b.terms,
            Some(b.providers),
            Some(b.regions),
            Some(b.min_principal),
            Some(b.max_principal),
            Some(b.hold_ratio),
            Some(b.grace_days),
            Some(b.penalty_daily_rate),
            Some(b.funding_timeout_hours),
            Some(b.partner_referral_fee),
            Some(b.active),
        ),
        None => (None, None, Vec::new(), None, None, None, None, None, None, None, None, None, None),
    };
    let name = field(o, "name", name, |o, k| o.req_text(k, NAME_MAX))?;
    let pricing = field(o, "pricing", pricing, |o, k| {
        let s = o.req_str(k)?;
        Pricing::parse(s).map(|p| p.as_str().to_string()).map_err(|_| ApiError::invalid(o.path(k), "`pricing` is \"interest\" or \"fee\""))
    })?;
    let new_terms = match o.patch_value("terms") {
        Patch::Clear if !creating => return Err(ApiError::invalid(o.path("terms"), "`terms` cannot be cleared")),
        Patch::Absent if !creating => None,
        _ => Some(terms_input(o, "terms")?),
    };
    let providers = field(o, "providers", providers, |o, k| {
        let ids = o.req_id_list(k, LIST_MAX)?;
        if ids.is_empty() { Err(ApiError::invalid(o.path(k), "at least one provider is required")) } else { Ok(ids) }
    })?;
    let regions = field(o, "regions", regions, |o, k| {
        let r = req_regions(o, k)?;
        if r.is_empty() { Err(ApiError::invalid(o.path(k), "at least one region is required")) } else { Ok(r) }
    })?;
    let min_principal = field(o, "min_principal", min_p, |o, k| o.req_positive_money(k))?;
    let max_principal = field(o, "max_principal", max_p, |o, k| o.req_positive_money(k))?;
    if min_principal > max_principal {
        return Err(ApiError::invalid(o.path("min_principal"), "min_principal must not be above max_principal"));
    }
    let input = ProductInput {
        name,
        pricing,
        terms,
        providers,
        regions,
        min_principal,
        max_principal,
        hold_ratio: optional_with_default(o, "hold_ratio", ratio_v, Decimal::ONE, ratio)?,
        grace_days: optional_with_default(o, "grace_days", grace, 3, |o, k| o.req_int(k, 0, 30).map(|n| n as i32))?,
        penalty_daily_rate: optional_with_default(o, "penalty_daily_rate", penalty, Decimal::new(5, 4), |o, k| {
            o.req_rate(k).map(|r| r.as_decimal())
        })?,
        funding_timeout_hours: optional_with_default(o, "funding_timeout_hours", timeout, 72, |o, k| {
            o.req_int(k, 1, 720).map(|n| n as i32)
        })?,
        partner_referral_fee: optional_with_default(o, "partner_referral_fee", fee, Amount::ZERO, |o, k| o.req_money(k))?,
        active: optional_with_default(o, "active", active, true, |o, k| o.req_bool(k))?,
    };
    Ok((input, new_terms))
}

/// An optional field with a default: on create absent/null → default; on PATCH absent keeps, null restores the default.
fn optional_with_default<'a, T>(
    o: &Obj<'a>,
    key: &str,
    current: Option<T>,
    default: T,
    read: impl FnOnce(&Obj<'a>, &str) -> ApiResult<T>,
) -> ApiResult<T> {
    match (current, o.patch_value(key)) {
        (_, Patch::Set(_)) => read(o, key),
        (Some(current), Patch::Absent) => Ok(current),
        _ => Ok(default),
    }
}

pub(super) async fn create_product(state: State, body: Body) -> ApiResult<HttpResponse> {
    let v = parse_body(&body).await?;
    let mut allowed = PRODUCT_FIELDS.to_vec();
    allowed.push("id");
    let o = Obj::root(&v, &allowed)?;
    let id = o.req_id("id")?;
    let (input, terms) = product_input(&o, None)?;
    created(&svc::create_product(&state, &id, input, terms).await?)
}

pub(super) async fn patch_product(state: State, path: web::Path<String>, body: Body) -> ApiResult<HttpResponse> {
    let v = parse_body(&body).await?;
    let o = patch_obj(&v, &path, &PRODUCT_FIELDS)?;
    ok(&svc::update_product(&state, &path, |base| product_input(&o, Some(base))).await?)
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
    let v = parse_body(&body).await?;
    let o = Obj::root(&v, &["principal", "rate_limit_per_minute"])?;
    let p = o.req_obj("principal", &["kind", "id"])?;
    let kind_text = p.req_str("kind")?;
    let kind = PrincipalKind::parse(kind_text)
        .ok_or_else(|| ApiError::invalid(p.path("kind"), "`kind` is admin, store, partner, bank or provider"))?;
    let id = if kind == PrincipalKind::Admin {
        if p.has("id") {
            return Err(ApiError::invalid(p.path("id"), "an admin key has no id"));
        }
        None
    } else {
        Some(p.req_id("id")?)
    };
    let principal = Principal::new(kind, id).ok_or_else(|| ApiError::invalid(p.path("id"), "`id` is required for this kind"))?;
    let rate = o.opt_int("rate_limit_per_minute", 1, 1_000_000)?.map(|n| n as i32);
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
