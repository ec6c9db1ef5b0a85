//! Reference data: providers, banks, stores, partners (with eligibility), products (with the APR cap), API keys.

use super::Deps;
use crate::auth::{Principal, generate_api_key, hash_api_key, new_object_id};
use crate::db::api_keys;
use crate::db::setup::{self as q, BankInput, PartnerInput, ProductInput, ProviderInput, StoreInput, WebhookOwner};
use crate::domain::money::Amount;
use crate::domain::money::Rate;
use crate::domain::partner::eligibility;
use crate::domain::schedule::Pricing;
use crate::error::{ApiError, ApiResult, ErrorCode};
use rand::RngCore;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

pub fn new_webhook_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("whsec_{}", hex::encode(bytes))
}

fn exists(what: &str, id: &str) -> ApiError {
    ApiError::already_exists(format!("a {what} with id `{id}` already exists")).field("id")
}

fn with_secret(view: impl Serialize, secret: Option<String>) -> Value {
    let mut v = serde_json::to_value(view).unwrap_or(Value::Null);
    if let Some(secret) = secret {
        v["webhook_secret"] = Value::String(secret);
    }
    v
}

// ---------- providers ----------

#[tracing::instrument(skip_all, fields(provider_id = %id))]
pub async fn create_provider(state: &Deps, id: &str, input: ProviderInput) -> ApiResult<Value> {
    let client = state.pool.get().await?;
    let secret = input.webhook_url.as_ref().map(|_| new_webhook_secret());
    let created = q::insert_provider(&**client, id, &input, secret.as_deref()).await?.ok_or_else(|| exists("provider", id))?;
    Ok(with_secret(created, secret))
}

#[tracing::instrument(skip_all, fields(provider_id = %id))]
pub async fn update_provider(state: &Deps, id: &str, patch: impl FnOnce(ProviderInput) -> ApiResult<ProviderInput>) -> ApiResult<Value> {
    let mut client = state.pool.get().await?;
    let tx = crate::db::Tx::begin(&mut client).await?;
    q::lock_row(&*tx, "providers", id).await?;
    let current = q::get_provider(&*tx, id).await?.ok_or_else(ApiError::not_found)?;
    let had_url = current.webhook_url.is_some();
    let input = patch(ProviderInput {
        name: current.name,
        webhook_url: current.webhook_url,
        hold_confirmation: current.hold_confirmation,
        hold_confirmation_timeout_minutes: current.hold_confirmation_timeout_minutes,
    })?;
    let secret = (!had_url && input.webhook_url.is_some()).then(new_webhook_secret);
    let updated = q::update_provider(&*tx, id, &input, secret.as_deref()).await?.ok_or_else(ApiError::not_found)?;
    tx.commit().await?;
    Ok(with_secret(updated, secret))
}

// ---------- banks ----------

#[tracing::instrument(skip_all, fields(bank_id = %id))]
pub async fn create_bank(state: &Deps, id: &str, input: BankInput) -> ApiResult<Value> {
    let mut client = state.pool.get().await?;
    let tx = crate::db::Tx::begin(&mut client).await?;
    let secret = input.webhook_url.as_ref().map(|_| new_webhook_secret());
    if !q::insert_bank(&tx, id, &input, secret.as_deref()).await? {
        return Err(exists("bank", id));
    }
    let created = q::get_bank(&*tx, id).await?.expect("this transaction inserted the bank just above");
    tx.commit().await?;
    Ok(with_secret(created, secret))
}

#[tracing::instrument(skip_all, fields(bank_id = %id))]
pub async fn update_bank(state: &Deps, id: &str, patch: impl FnOnce(BankInput) -> ApiResult<BankInput>) -> ApiResult<Value> {
    let mut client = state.pool.get().await?;
    let tx = crate::db::Tx::begin(&mut client).await?;
    q::lock_row(&*tx, "banks", id).await?;
    let current = q::get_bank(&*tx, id).await?.ok_or_else(ApiError::not_found)?;
    let had_url = current.webhook_url.is_some();
    let input = patch(BankInput {
        name: current.name,
        priority: current.priority,
        apr_min: current.apr_min.parse().unwrap_or_default(),
        apr_max: current.apr_max.parse().unwrap_or_default(),
        exposure_limit: current.exposure_limit,
        regions: current.regions,
        webhook_url: current.webhook_url,
    })?;
    let secret = (!had_url && input.webhook_url.is_some()).then(new_webhook_secret);
    if !q::update_bank(&tx, id, &input, secret.as_deref()).await? {
        return Err(ApiError::not_found());
    }
    let updated = q::get_bank(&*tx, id).await?.expect("this transaction locked and updated the bank just above");
    tx.commit().await?;
    Ok(with_secret(updated, secret))
}

#[tracing::instrument(skip_all, fields(owner = ?owner, owner_id = %id))]
pub async fn rotate_webhook_secret(state: &Deps, owner: WebhookOwner, id: &str) -> ApiResult<Value> {
    let client = state.pool.get().await?;
    let secret = new_webhook_secret();
    match q::rotate_webhook_secret(&**client, owner, id, &secret).await? {
        None => Err(ApiError::not_found()),
        Some(false) => Err(ApiError::invalid_state("there is no webhook_url to sign for; set one first")),
        Some(true) => Ok(json!({ "webhook_secret": secret })),
    }
}

// ---------- stores ----------

#[tracing::instrument(skip_all, fields(store_id = %id))]
pub async fn create_store(state: &Deps, id: &str, input: StoreInput) -> ApiResult<q::Store> {
    let client = state.pool.get().await?;
    q::insert_store(&**client, id, &input).await?.ok_or_else(|| exists("store", id))
}

#[tracing::instrument(skip_all, fields(store_id = %id))]
pub async fn update_store(state: &Deps, id: &str, patch: impl FnOnce(StoreInput) -> ApiResult<StoreInput>) -> ApiResult<q::Store> {
    let mut client = state.pool.get().await?;
    let tx = crate::db::Tx::begin(&mut client).await?;
    q::lock_row(&*tx, "stores", id).await?;
    let current = q::get_store(&*tx, id).await?.ok_or_else(ApiError::not_found)?;
    let input = patch(StoreInput { name: current.name, region_code: current.region_code })?;
    let updated = q::update_store(&*tx, id, &input).await?.ok_or_else(ApiError::not_found)?;
    tx.commit().await?;
    Ok(updated)
}

// ---------- partners ----------

#[derive(Serialize, ToSchema)]
pub struct PartnerView {
    pub id: String,
    pub name: String,
    pub established_on: chrono::NaiveDate,
    pub deposit_paid: Amount,
    pub authorized_providers: Vec<String>,
    pub major_violation_last_year: bool,
    pub regions: Vec<String>,
    pub eligible: bool,
    pub ineligible_reasons: Vec<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The configured minimum deposit of an eligible partner, in whole fen.
pub fn partner_min_deposit(state: &Deps) -> Amount {
    Amount::round_half_up(state.settings.business.partner_min_deposit)
}

/// Partner eligibility against today (API.md section 2), as reason codes.
pub fn partner_reasons(state: &Deps, p: &q::Partner) -> Vec<String> {
    let min_deposit = partner_min_deposit(state);
    let today = state.clock.today();
    eligibility(p.deposit_paid, p.established_on, p.authorized_providers.len(), p.major_violation_last_year, today, min_deposit)
        .into_iter()
        .map(|r| r.code().to_string())
        .collect()
}

pub fn partner_view(state: &Deps, p: q::Partner) -> PartnerView {
    let reasons = partner_reasons(state, &p);
    PartnerView {
        eligible: reasons.is_empty(),
        ineligible_reasons: reasons,
        id: p.id,
        name: p.name,
        established_on: p.established_on,
        deposit_paid: p.deposit_paid,
        authorized_providers: p.authorized_providers,
        major_violation_last_year: p.major_violation_last_year,
        regions: p.regions,
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

async fn check_providers_exist(c: &impl crate::db::Db, ids: &[String], field: &str) -> ApiResult<()> {
    let missing = q::missing_providers(c, ids).await?;
    if let Some(first) = missing.first() {
        let index = ids.iter().position(|x| x == first).unwrap_or(0);
        return Err(ApiError::new(ErrorCode::UnknownReference, format!("no provider `{first}`"))
            .field(format!("{field}[{index}]"))
            .details(json!({ "missing": missing })));
    }
    Ok(())
}

#[tracing::instrument(skip_all, fields(partner_id = %id))]
pub async fn create_partner(state: &Deps, id: &str, input: PartnerInput) -> ApiResult<PartnerView> {
    let client = state.pool.get().await?;
    if q::get_partner(&**client, id).await?.is_some() {
        return Err(exists("partner", id));
    }
    check_providers_exist(&**client, &input.authorized_providers, "authorized_providers").await?;
    let created = q::insert_partner(&**client, id, &input).await?.ok_or_else(|| exists("partner", id))?;
    Ok(partner_view(state, created))
}

#[tracing::instrument(skip_all, fields(partner_id = %id))]
pub async fn update_partner(state: &Deps, id: &str, patch: impl FnOnce(PartnerInput) -> ApiResult<PartnerInput>) -> ApiResult<PartnerView> {
    let mut client = state.pool.get().await?;
    let tx = crate::db::Tx::begin(&mut client).await?;
    q::lock_row(&*tx, "partners", id).await?;
    let p = q::get_partner(&*tx, id).await?.ok_or_else(ApiError::not_found)?;
    let input = patch(PartnerInput {
        name: p.name,
        established_on: p.established_on,
        deposit_paid: p.deposit_paid,
        authorized_providers: p.authorized_providers,
        major_violation_last_year: p.major_violation_last_year,
        regions: p.regions,
    })?;
    check_providers_exist(&*tx, &input.authorized_providers, "authorized_providers").await?;
    let updated = q::update_partner(&*tx, id, &input).await?.ok_or_else(ApiError::not_found)?;
    tx.commit().await?;
    Ok(partner_view(state, updated))
}

// ---------- products ----------

/// A term as given: months and its rate; `apr_irr` is computed here.
pub struct TermInput {
    pub months: u32,
    pub rate: Rate,
}

/// Computes each term's `apr_irr` and checks the cap (API.md section 2): `422 apr_above_cap`.
pub fn price_terms(state: &Deps, pricing: Pricing, terms: &[TermInput], penalty_daily_rate: Decimal) -> ApiResult<Vec<q::ProductTerm>> {
    let cap = state.settings.business.apr_cap;
    let mut out = Vec::with_capacity(terms.len());
    for (i, t) in terms.iter().enumerate() {
        let apr = crate::domain::irr::term_apr_unrounded(pricing, t.rate, t.months)
            .round_dp_with_strategy(4, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        if apr > cap {
            return Err(ApiError::new(
                ErrorCode::AprAboveCap,
                format!("the term of {} months prices at an annualised {apr}, above the cap of {cap}", t.months),
            )
            .field(format!("terms[{i}].rate"))
            .details(json!({ "apr_irr": crate::domain::irr::format_apr(apr), "cap": cap.to_string() })));
        }
        out.push(q::ProductTerm { months: t.months as i32, rate: t.rate.to_string(), apr_irr: crate::domain::irr::format_apr(apr) });
    }
    let penalty_apr = penalty_daily_rate * Decimal::from(365);
    if penalty_apr > cap {
        return Err(ApiError::new(ErrorCode::AprAboveCap, format!("the penalty rate × 365 is {penalty_apr}, above the cap of {cap}"))
            .field("penalty_daily_rate"));
    }
    Ok(out)
}

/// Prices new terms, or the current ones again (pricing or penalty may have changed), under the cap.
fn priced(state: &Deps, mut input: ProductInput, new_terms: Option<Vec<TermInput>>) -> ApiResult<ProductInput> {
    // The request's pricing was parsed by http and a kept one was checked when stored: a failure is corrupt data.
    let context = "Failed to reprice a product from its stored terms";
    let pricing = Pricing::parse(&input.pricing).map_err(|e| ApiError::internal_because(context, e))?;
    let terms = match new_terms {
        Some(t) => t,
        None => input
            .terms
            .iter()
            .map(|t| {
                Ok(TermInput { months: t.months as u32, rate: Rate::parse(&t.rate).map_err(|e| ApiError::internal_because(context, e))? })
            })
            .collect::<ApiResult<Vec<_>>>()?,
    };
    input.terms = price_terms(state, pricing, &terms, input.penalty_daily_rate)?;
    Ok(input)
}

#[tracing::instrument(skip_all, fields(product_id = %id))]
pub async fn create_product(state: &Deps, id: &str, input: ProductInput, terms: Option<Vec<TermInput>>) -> ApiResult<q::Product> {
    let client = state.pool.get().await?;
    if q::get_product(&**client, id).await?.is_some() {
        return Err(exists("product", id));
    }
    check_providers_exist(&**client, &input.providers, "providers").await?;
    let input = priced(state, input, terms)?;
    q::insert_product(&**client, id, &input).await?.ok_or_else(|| exists("product", id))
}

/// `patch` receives the current product and answers the new input and any new terms.
#[tracing::instrument(skip_all, fields(product_id = %id))]
pub async fn update_product(
    state: &Deps,
    id: &str,
    patch: impl FnOnce(ProductInput) -> ApiResult<(ProductInput, Option<Vec<TermInput>>)>,
) -> ApiResult<q::Product> {
    let mut client = state.pool.get().await?;
    let tx = crate::db::Tx::begin(&mut client).await?;
    q::lock_row(&*tx, "products", id).await?;
    let current = q::get_product(&*tx, id).await?.ok_or_else(ApiError::not_found)?;
    let (input, terms) = patch(ProductInput::from(&current))?;
    check_providers_exist(&*tx, &input.providers, "providers").await?;
    let input = priced(state, input, terms)?;
    let updated = q::update_product(&*tx, id, &input).await?.ok_or_else(ApiError::not_found)?;
    tx.commit().await?;
    Ok(updated)
}

// ---------- api keys ----------

#[derive(Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    #[schema(value_type = Object)]
    pub principal: Value,
    pub rate_limit_per_minute: Option<i32>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub fn api_key_view(k: api_keys::ApiKeyRecord) -> ApiKeyView {
    ApiKeyView {
        id: k.id,
        principal: k.principal.to_json(),
        rate_limit_per_minute: k.rate_limit_per_minute,
        created_at: k.created_at,
        revoked_at: k.revoked_at,
    }
}

#[tracing::instrument(skip_all, fields(for_principal = %principal.scope()))]
pub async fn create_api_key(state: &Deps, principal: Principal, rate_limit_per_minute: Option<i32>) -> ApiResult<Value> {
    let client = state.pool.get().await?;
    if let Some(id) = principal.id()
        && !q::principal_exists(&**client, principal.kind(), id).await?
    {
        return Err(ApiError::new(ErrorCode::UnknownReference, format!("no {} `{id}`", principal.kind().as_str())).field("principal.id"));
    }
    let key = generate_api_key();
    let record = api_keys::insert(&**client, &new_object_id("key"), &hash_api_key(&key), &principal, rate_limit_per_minute).await?;
    let mut v = serde_json::to_value(api_key_view(record)).unwrap_or(Value::Null);
    v["key"] = Value::String(key);
    Ok(v)
}

#[tracing::instrument(skip_all, fields(key_id = %id))]
pub async fn revoke_api_key(state: &Deps, id: &str) -> ApiResult<()> {
    let client = state.pool.get().await?;
    if api_keys::revoke(&**client, id).await? { Ok(()) } else { Err(ApiError::not_found()) }
}

#[tracing::instrument(skip_all, fields(key_id = %id))]
pub async fn get_api_key(state: &Deps, id: &str) -> ApiResult<ApiKeyView> {
    let client = state.pool.get().await?;
    api_keys::get(&**client, id).await?.map(api_key_view).ok_or_else(ApiError::not_found)
}
