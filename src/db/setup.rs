//! Reference data set up by the admin: providers, banks, stores, partners, products.

use super::Db;
use crate::domain::money::Amount;
use crate::domain::status::HoldConfirmation;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use tokio_postgres::Row;
use utoipa::ToSchema;

pub fn amount(row: &Row, column: &str) -> Amount {
    Amount::from_fen(row.get::<_, i64>(column))
}

/// A rate as a normalized decimal string ("0.18", "0.0005", "0").
pub fn rate_string(d: Decimal) -> String {
    d.normalize().to_string()
}

// ---------- providers ----------

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Provider {
    pub id: String,
    pub name: String,
    pub webhook_url: Option<String>,
    /// `none` or `required` (API.md §12).
    #[schema(value_type = String)]
    pub hold_confirmation: HoldConfirmation,
    pub hold_confirmation_timeout_minutes: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub seq: i64,
}

fn provider(r: &Row) -> Provider {
    Provider {
        id: r.get("id"),
        name: r.get("name"),
        webhook_url: r.get("webhook_url"),
        hold_confirmation: r.get("hold_confirmation"),
        hold_confirmation_timeout_minutes: r.get("hold_confirmation_timeout_minutes"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        seq: r.get("seq"),
    }
}

pub struct ProviderInput {
    pub name: String,
    pub webhook_url: Option<String>,
    pub hold_confirmation: HoldConfirmation,
    pub hold_confirmation_timeout_minutes: i32,
}

pub async fn insert_provider(
    c: &impl Db,
    id: &str,
    input: &ProviderInput,
    secret: Option<&str>,
) -> Result<Option<Provider>, tokio_postgres::Error> {
    let row = c
        .query_opt(
            "INSERT INTO providers (id, name, webhook_url, webhook_secret, hold_confirmation, hold_confirmation_timeout_minutes)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO NOTHING RETURNING *",
            &[&id, &input.name, &input.webhook_url, &secret, &input.hold_confirmation, &input.hold_confirmation_timeout_minutes],
        )
        .await?;
    Ok(row.as_ref().map(provider))
}

pub async fn get_provider(c: &impl Db, id: &str) -> Result<Option<Provider>, tokio_postgres::Error> {
    Ok(c.query_opt("SELECT * FROM providers WHERE id = $1", &[&id]).await?.as_ref().map(provider))
}

pub async fn list_providers(c: &impl Db, after: i64, limit: i64) -> Result<Vec<Provider>, tokio_postgres::Error> {
    let rows = c.query("SELECT * FROM providers WHERE seq > $1 ORDER BY seq LIMIT $2", &[&after, &limit]).await?;
    Ok(rows.iter().map(provider).collect())
}

/// Updates name and webhook; a new webhook URL where there was none gets `new_secret`.
pub async fn update_provider(
    c: &impl Db,
    id: &str,
    input: &ProviderInput,
    new_secret: Option<&str>,
) -> Result<Option<Provider>, tokio_postgres::Error> {
    let row = c
        .query_opt(
            "UPDATE providers SET name = $2, webhook_url = $3,
                 webhook_secret = CASE WHEN $3::text IS NULL THEN NULL ELSE coalesce(webhook_secret, $4) END,
                 hold_confirmation = $5, hold_confirmation_timeout_minutes = $6,
                 updated_at = now()
             WHERE id = $1 RETURNING *",
            &[&id, &input.name, &input.webhook_url, &new_secret, &input.hold_confirmation, &input.hold_confirmation_timeout_minutes],
        )
        .await?;
    Ok(row.as_ref().map(provider))
}

// ---------- banks ----------

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Bank {
    pub id: String,
    pub name: String,
    pub priority: i32,
    pub apr_min: String,
    pub apr_max: String,
    pub exposure_limit: Amount,
    pub exposure_used: Amount,
    /// `null`: everywhere.
    pub regions: Option<Vec<String>>,
    pub webhook_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub seq: i64,
}

fn bank(r: &Row) -> Bank {
    Bank {
        id: r.get("id"),
        name: r.get("name"),
        priority: r.get("priority"),
        apr_min: rate_string(r.get("apr_min")),
        apr_max: rate_string(r.get("apr_max")),
        exposure_limit: amount(r, "exposure_limit_fen"),
        exposure_used: amount(r, "exposure_used_fen"),
        regions: r.get("regions"),
        webhook_url: r.get("webhook_url"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        seq: r.get("seq"),
    }
}

pub struct BankInput {
    pub name: String,
    pub priority: i32,
    pub apr_min: Decimal,
    pub apr_max: Decimal,
    pub exposure_limit: Amount,
    pub regions: Option<Vec<String>>,
    pub webhook_url: Option<String>,
}

/// A bank with its exposure in use: the sum of its stripes.
const BANK_SELECT: &str = "SELECT b.*, (SELECT coalesce(sum(s.used_fen), 0)::int8 FROM bank_exposure_stripes s WHERE s.bank_id = b.id)
    AS exposure_used_fen FROM banks b";

/// Inserts a bank with its exposure stripes; `false` when the id exists.
pub async fn insert_bank(tx: &super::Tx<'_>, id: &str, b: &BankInput, secret: Option<&str>) -> Result<bool, tokio_postgres::Error> {
    let n = tx
        .execute(
            "INSERT INTO banks (id, name, priority, apr_min, apr_max, exposure_limit_fen, regions, webhook_url, webhook_secret)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
            &[&id, &b.name, &b.priority, &b.apr_min, &b.apr_max, &b.exposure_limit.fen(), &b.regions, &b.webhook_url, &secret],
        )
        .await?;
    if n == 1 {
        super::banks::create_stripes(tx, id, b.exposure_limit).await?;
    }
    Ok(n == 1)
}

pub async fn get_bank(c: &impl Db, id: &str) -> Result<Option<Bank>, tokio_postgres::Error> {
    Ok(c.query_opt(&format!("{BANK_SELECT} WHERE b.id = $1"), &[&id]).await?.as_ref().map(bank))
}

pub async fn list_banks(c: &impl Db, after: i64, limit: i64) -> Result<Vec<Bank>, tokio_postgres::Error> {
    let rows = c.query(&format!("{BANK_SELECT} WHERE b.seq > $1 ORDER BY b.seq LIMIT $2"), &[&after, &limit]).await?;
    Ok(rows.iter().map(bank).collect())
}

/// Updates a bank (the caller holds its row lock); a limit change rebalances its stripes.
pub async fn update_bank(tx: &super::Tx<'_>, id: &str, b: &BankInput, new_secret: Option<&str>) -> Result<bool, tokio_postgres::Error> {
    let n = tx
        .execute(
            "UPDATE banks SET name = $2, priority = $3, apr_min = $4, apr_max = $5, exposure_limit_fen = $6, regions = $7,
                 webhook_url = $8,
                 webhook_secret = CASE WHEN $8::text IS NULL THEN NULL ELSE coalesce(webhook_secret, $9) END,
                 updated_at = now()
             WHERE id = $1",
            &[&id, &b.name, &b.priority, &b.apr_min, &b.apr_max, &b.exposure_limit.fen(), &b.regions, &b.webhook_url, &new_secret],
        )
        .await?;
    if n == 1 {
        super::banks::rebalance(tx, id, b.exposure_limit.fen()).await?;
    }
    Ok(n == 1)
}

/// Sets a new webhook secret on a bank or provider that has a webhook URL. `None`: no such object.
pub async fn rotate_webhook_secret(
    c: &impl Db,
    table: WebhookOwner,
    id: &str,
    secret: &str,
) -> Result<Option<bool>, tokio_postgres::Error> {
    let sql = match table {
        WebhookOwner::Bank => {
            "UPDATE banks SET webhook_secret = CASE WHEN webhook_url IS NULL THEN NULL ELSE $2 END, updated_at = now() WHERE id = $1 RETURNING webhook_url IS NOT NULL"
        }
        WebhookOwner::Provider => {
            "UPDATE providers SET webhook_secret = CASE WHEN webhook_url IS NULL THEN NULL ELSE $2 END, updated_at = now() WHERE id = $1 RETURNING webhook_url IS NOT NULL"
        }
    };
    Ok(c.query_opt(sql, &[&id, &secret]).await?.map(|r| r.get(0)))
}

#[derive(Clone, Copy, Debug)]
pub enum WebhookOwner {
    Bank,
    Provider,
}

// ---------- stores ----------

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Store {
    pub id: String,
    pub name: String,
    pub region_code: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub seq: i64,
}

fn store(r: &Row) -> Store {
    Store {
        id: r.get("id"),
        name: r.get("name"),
        region_code: r.get("region_code"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        seq: r.get("seq"),
    }
}

pub struct StoreInput {
    pub name: String,
    pub region_code: String,
}

pub async fn insert_store(c: &impl Db, id: &str, s: &StoreInput) -> Result<Option<Store>, tokio_postgres::Error> {
    let row = c
        .query_opt(
            "INSERT INTO stores (id, name, region_code) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING RETURNING *",
            &[&id, &s.name, &s.region_code],
        )
        .await?;
    Ok(row.as_ref().map(store))
}

pub async fn get_store(c: &impl Db, id: &str) -> Result<Option<Store>, tokio_postgres::Error> {
    Ok(c.query_opt("SELECT * FROM stores WHERE id = $1", &[&id]).await?.as_ref().map(store))
}

pub async fn list_stores(c: &impl Db, after: i64, limit: i64) -> Result<Vec<Store>, tokio_postgres::Error> {
    let rows = c.query("SELECT * FROM stores WHERE seq > $1 ORDER BY seq LIMIT $2", &[&after, &limit]).await?;
    Ok(rows.iter().map(store).collect())
}

pub async fn update_store(c: &impl Db, id: &str, s: &StoreInput) -> Result<Option<Store>, tokio_postgres::Error> {
    let row = c
        .query_opt(
            "UPDATE stores SET name = $2, region_code = $3, updated_at = now() WHERE id = $1 RETURNING *",
            &[&id, &s.name, &s.region_code],
        )
        .await?;
    Ok(row.as_ref().map(store))
}

// ---------- partners ----------

#[derive(Clone, Debug)]
pub struct Partner {
    pub id: String,
    pub name: String,
    pub established_on: NaiveDate,
    pub deposit_paid: Amount,
    pub authorized_providers: Vec<String>,
    pub major_violation_last_year: bool,
    pub regions: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub seq: i64,
}

fn partner(r: &Row) -> Partner {
    Partner {
        id: r.get("id"),
        name: r.get("name"),
        established_on: r.get("established_on"),
        deposit_paid: amount(r, "deposit_paid_fen"),
        authorized_providers: r.get("authorized_providers"),
        major_violation_last_year: r.get("major_violation_last_year"),
        regions: r.get("regions"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        seq: r.get("seq"),
    }
}

pub struct PartnerInput {
    pub name: String,
    pub established_on: NaiveDate,
    pub deposit_paid: Amount,
    pub authorized_providers: Vec<String>,
    pub major_violation_last_year: bool,
    pub regions: Vec<String>,
}

pub async fn insert_partner(c: &impl Db, id: &str, p: &PartnerInput) -> Result<Option<Partner>, tokio_postgres::Error> {
    let row = c
        .query_opt(
            "INSERT INTO partners (id, name, established_on, deposit_paid_fen, authorized_providers, major_violation_last_year, regions)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING RETURNING *",
            &[&id, &p.name, &p.established_on, &p.deposit_paid.fen(), &p.authorized_providers, &p.major_violation_last_year, &p.regions],
        )
        .await?;
    Ok(row.as_ref().map(partner))
}

pub async fn get_partner(c: &impl Db, id: &str) -> Result<Option<Partner>, tokio_postgres::Error> {
    Ok(c.query_opt("SELECT * FROM partners WHERE id = $1", &[&id]).await?.as_ref().map(partner))
}

pub async fn list_partners(c: &impl Db, after: i64, limit: i64) -> Result<Vec<Partner>, tokio_postgres::Error> {
    let rows = c.query("SELECT * FROM partners WHERE seq > $1 ORDER BY seq LIMIT $2", &[&after, &limit]).await?;
    Ok(rows.iter().map(partner).collect())
}

pub async fn update_partner(c: &impl Db, id: &str, p: &PartnerInput) -> Result<Option<Partner>, tokio_postgres::Error> {
    let row = c
        .query_opt(
            "UPDATE partners SET name = $2, established_on = $3, deposit_paid_fen = $4, authorized_providers = $5,
                 major_violation_last_year = $6, regions = $7, updated_at = now()
             WHERE id = $1 RETURNING *",
            &[&id, &p.name, &p.established_on, &p.deposit_paid.fen(), &p.authorized_providers, &p.major_violation_last_year, &p.regions],
        )
        .await?;
    Ok(row.as_ref().map(partner))
}

// ---------- products ----------

#[derive(Clone, Debug, Serialize, serde::Deserialize, ToSchema, PartialEq)]
pub struct ProductTerm {
    pub months: i32,
    pub rate: String,
    pub apr_irr: String,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub pricing: String,
    pub terms: Vec<ProductTerm>,
    pub providers: Vec<String>,
    pub regions: Vec<String>,
    pub min_principal: Amount,
    pub max_principal: Amount,
    pub hold_ratio: String,
    pub grace_days: i32,
    pub penalty_daily_rate: String,
    pub funding_timeout_hours: i32,
    pub partner_referral_fee: Amount,
    pub active: bool,
    pub write_off_after_days: Option<i32>,
    /// API.md §13: days after `funded_on` a device may be returned; 0 = no returns.
    pub return_window_days: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub seq: i64,
    #[serde(skip)]
    pub hold_ratio_decimal: Decimal,
    #[serde(skip)]
    pub penalty_daily_rate_decimal: Decimal,
}

fn product(r: &Row) -> Product {
    let terms: serde_json::Value = r.get("terms");
    let hold_ratio: Decimal = r.get("hold_ratio");
    let penalty: Decimal = r.get("penalty_daily_rate");
    Product {
        id: r.get("id"),
        name: r.get("name"),
        pricing: r.get("pricing"),
        terms: serde_json::from_value(terms).unwrap_or_default(),
        providers: r.get("providers"),
        regions: r.get("regions"),
        min_principal: amount(r, "min_principal_fen"),
        max_principal: amount(r, "max_principal_fen"),
        hold_ratio: ratio_string(hold_ratio),
        grace_days: r.get("grace_days"),
        penalty_daily_rate: rate_string(penalty),
        funding_timeout_hours: r.get("funding_timeout_hours"),
        partner_referral_fee: amount(r, "partner_referral_fee_fen"),
        active: r.get("active"),
        write_off_after_days: r.get("write_off_after_days"),
        return_window_days: r.get("return_window_days"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        seq: r.get("seq"),
        hold_ratio_decimal: hold_ratio,
        penalty_daily_rate_decimal: penalty,
    }
}

/// Ratios read with at least 2 decimals ("1.00", "0.5" → "0.50", "1.125").
pub fn ratio_string(d: Decimal) -> String {
    let n = d.normalize();
    if n.scale() < 2 { format!("{n:.2}") } else { n.to_string() }
}

pub struct ProductInput {
    pub name: String,
    pub pricing: String,
    pub terms: Vec<ProductTerm>,
    pub providers: Vec<String>,
    pub regions: Vec<String>,
    pub min_principal: Amount,
    pub max_principal: Amount,
    pub hold_ratio: Decimal,
    pub grace_days: i32,
    pub penalty_daily_rate: Decimal,
    pub funding_timeout_hours: i32,
    pub partner_referral_fee: Amount,
    pub active: bool,
    pub write_off_after_days: Option<i32>,
    pub return_window_days: i32,
}

impl From<&Product> for ProductInput {
    fn from(p: &Product) -> Self {
        ProductInput {
            name: p.name.clone(),
            pricing: p.pricing.clone(),
            terms: p.terms.clone(),
            providers: p.providers.clone(),
            regions: p.regions.clone(),
            min_principal: p.min_principal,
            max_principal: p.max_principal,
            hold_ratio: p.hold_ratio_decimal,
            grace_days: p.grace_days,
            penalty_daily_rate: p.penalty_daily_rate_decimal,
            funding_timeout_hours: p.funding_timeout_hours,
            partner_referral_fee: p.partner_referral_fee,
            active: p.active,
            write_off_after_days: p.write_off_after_days,
            return_window_days: p.return_window_days,
        }
    }
}

const INSERT_PRODUCT: &str = "INSERT INTO products (id, name, pricing, terms, providers, regions, min_principal_fen,
         max_principal_fen, hold_ratio, grace_days, penalty_daily_rate, funding_timeout_hours, partner_referral_fee_fen, active,
         write_off_after_days, return_window_days)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) ON CONFLICT (id) DO NOTHING RETURNING *";

const UPDATE_PRODUCT: &str = "UPDATE products SET name = $2, pricing = $3, terms = $4, providers = $5, regions = $6,
         min_principal_fen = $7, max_principal_fen = $8, hold_ratio = $9, grace_days = $10, penalty_daily_rate = $11,
         funding_timeout_hours = $12, partner_referral_fee_fen = $13, active = $14, write_off_after_days = $15,
         return_window_days = $16, updated_at = now()
     WHERE id = $1 RETURNING *";

/// `None` when a product `id` already exists.
pub async fn insert_product(c: &impl Db, id: &str, p: &ProductInput) -> Result<Option<Product>, tokio_postgres::Error> {
    write_product(c, INSERT_PRODUCT, id, p).await
}

pub async fn get_product(c: &impl Db, id: &str) -> Result<Option<Product>, tokio_postgres::Error> {
    Ok(c.query_opt("SELECT * FROM products WHERE id = $1", &[&id]).await?.as_ref().map(product))
}

pub async fn list_products(c: &impl Db, after: i64, limit: i64) -> Result<Vec<Product>, tokio_postgres::Error> {
    let rows = c.query("SELECT * FROM products WHERE seq > $1 ORDER BY seq LIMIT $2", &[&after, &limit]).await?;
    Ok(rows.iter().map(product).collect())
}

/// `None` when there is no product `id`.
pub async fn update_product(c: &impl Db, id: &str, p: &ProductInput) -> Result<Option<Product>, tokio_postgres::Error> {
    write_product(c, UPDATE_PRODUCT, id, p).await
}

/// Both statements take the id as `$1` and the input's fields as `$2`-`$16`, in this one order.
async fn write_product(c: &impl Db, sql: &str, id: &str, p: &ProductInput) -> Result<Option<Product>, tokio_postgres::Error> {
    let terms = serde_json::to_value(&p.terms).unwrap_or_default();
    let row = c
        .query_opt(
            sql,
            &[
                &id,
                &p.name,
                &p.pricing,
                &terms,
                &p.providers,
                &p.regions,
                &p.min_principal.fen(),
                &p.max_principal.fen(),
                &p.hold_ratio,
                &p.grace_days,
                &p.penalty_daily_rate,
                &p.funding_timeout_hours,
                &p.partner_referral_fee.fen(),
                &p.active,
                &p.write_off_after_days,
                &p.return_window_days,
            ],
        )
        .await?;
    Ok(row.as_ref().map(product))
}

/// Locks the row `id` of a reference-data table (`providers`, `banks`, ...) until the transaction
/// ends, so that concurrent PATCHes of one object run one after the other instead of each writing
/// back what it read and losing the other's change.
pub async fn lock_row(c: &impl Db, table: &'static str, id: &str) -> Result<(), tokio_postgres::Error> {
    c.query_opt(&format!("SELECT 1 FROM {table} WHERE id = $1 FOR UPDATE"), &[&id]).await?;
    Ok(())
}

/// Which of `ids` have no provider row.
pub async fn missing_providers(c: &impl Db, ids: &[String]) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows =
        c.query("SELECT x FROM unnest($1::text[]) AS x WHERE NOT EXISTS (SELECT 1 FROM providers p WHERE p.id = x)", &[&ids]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Does a principal's object exist (for api-key creation)?
pub async fn principal_exists(c: &impl Db, kind: crate::auth::PrincipalKind, id: &str) -> Result<bool, tokio_postgres::Error> {
    use crate::auth::PrincipalKind::*;
    let sql = match kind {
        Admin => return Ok(true),
        Store => "SELECT 1 FROM stores WHERE id = $1",
        Partner => "SELECT 1 FROM partners WHERE id = $1",
        Bank => "SELECT 1 FROM banks WHERE id = $1",
        Provider => "SELECT 1 FROM providers WHERE id = $1",
    };
    Ok(c.query_opt(sql, &[&id]).await?.is_some())
}
