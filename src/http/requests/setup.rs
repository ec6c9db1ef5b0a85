//! The bodies of set-up (API.md section 2): providers, banks, stores, partners, products and API
//! keys, each created by one body and changed by a PATCH.
//!
//! A create body (`*Request`) must carry every field its object has; a PATCH body (`*Patch`) takes
//! any of them, each three-state ([`Patch`]): absent keeps the field, `null` clears an optional one
//! (a product's defaulted fields go back to their default) and is refused for the others, a value
//! sets it. One check per object serves both ([`Mode`]), so a field is refused alike wherever it is
//! sent. The rules about the object a PATCH changes (`apr_min <= apr_max`, `min_principal <=
//! max_principal` once merged with what is stored) are checked by [`BankPatch::apply`] and
//! [`ProductPatch::apply`], after the object is found. What no schema can say (amounts above zero,
//! references to existing objects, cross-field rules, a term's months listed once, a PATCH's `id`
//! equal to the path's) is in the descriptions.

use super::typed;
use crate::auth::{Principal, PrincipalKind};
use crate::db::setup::{BankInput, PartnerInput, ProductInput, ProviderInput, StoreInput};
use crate::domain::identity::{RegionCode, RegionPattern};
use crate::domain::money::{Amount, Rate};
use crate::domain::schedule::Pricing;
use crate::domain::status::HoldConfirmation;
use crate::error::{ApiError, ApiResult};
use crate::http::body::{Obj, Patch};
use crate::service::setup::TermInput;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};

const NAME_MAX: usize = 200;
const URL_MAX: usize = 2000;
const LIST_MAX: usize = 500;
const TERMS_MAX: usize = 360;

/// A product's defaults (API.md section 2), for a field absent on create or cleared by a PATCH.
const HOLD_RATIO: Decimal = Decimal::ONE;
const GRACE_DAYS: i32 = 3;
/// API.md §13: a product's default return window.
const RETURN_WINDOW_DAYS: i32 = 7;
const PENALTY_DAILY_RATE: Decimal = Decimal::from_parts(5, 0, 0, false, 4);
const FUNDING_TIMEOUT_HOURS: i32 = 72;

/// Whether a body creates its object or changes it (PATCH).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Create,
    Change,
}

/// A field every object has: required on create; on PATCH absent (kept) or a value, never `null`.
fn must<'a, T>(o: &Obj<'a>, mode: Mode, key: &str, check: impl FnOnce(&Obj<'a>, &str) -> ApiResult<T>) -> ApiResult<Option<T>> {
    match (mode, o.patch_value(key)) {
        (Mode::Change, Patch::Absent) => Ok(None),
        (Mode::Change, Patch::Clear) => Err(ApiError::invalid(o.path(key), format!("`{key}` cannot be cleared"))),
        _ => check(o, key).map(Some),
    }
}

/// An optional field: absent or `null` (PATCH: kept or cleared), else checked.
fn may<'a, T>(o: &Obj<'a>, key: &str, check: impl FnOnce(&Obj<'a>, &str) -> ApiResult<T>) -> ApiResult<Option<T>> {
    if o.has(key) { check(o, key).map(Some) } else { Ok(None) }
}

/// A body checked as its object's (`check`, with its `fields` and `id`) and read as its type: a
/// create body without `path_id`, a PATCH with the path's id (which the body may repeat, not change).
fn read<'a, T: Deserialize<'a>>(
    v: &'a Value,
    path_id: Option<&str>,
    fields: &[&str],
    check: fn(&Obj, Mode) -> ApiResult<()>,
) -> ApiResult<T> {
    let mut keys = vec!["id"];
    keys.extend_from_slice(fields);
    let o = Obj::root(v, &keys)?;
    let mode = match path_id {
        None => {
            o.req_id("id")?;
            Mode::Create
        }
        Some(id) => {
            if let Patch::Set(given) = o.patch_value("id")
                && given.as_str() != Some(id)
            {
                return Err(ApiError::invalid("id", "`id` cannot be changed"));
            }
            Mode::Change
        }
    };
    check(&o, mode)?;
    typed(v)
}

fn name(o: &Obj, key: &str) -> ApiResult<String> {
    o.req_text(key, NAME_MAX)
}

fn webhook_url(o: &Obj, key: &str) -> ApiResult<()> {
    let s = o.req_text(key, URL_MAX)?;
    let bad = || ApiError::invalid(o.path(key), "`webhook_url` must be an http or https URL");
    let parsed = url::Url::parse(&s).map_err(|_| bad())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(bad());
    }
    Ok(())
}

fn rate(o: &Obj, key: &str) -> ApiResult<Decimal> {
    o.req_rate(key).map(|r| r.as_decimal())
}

/// A list of 2-, 4- or 6-digit region codes; `non_empty` where the object needs one.
fn regions(o: &Obj, key: &str, non_empty: bool) -> ApiResult<()> {
    let Patch::Set(v) = o.patch_value(key) else { return Err(ApiError::invalid(o.path(key), format!("`{key}` is required"))) };
    let list = o.str_list(key, v, LIST_MAX, |s, path| {
        RegionPattern::parse(s).map(drop).map_err(|_| ApiError::invalid(path, "a region code of 2, 4 or 6 digits"))
    })?;
    if non_empty && list.is_empty() {
        return Err(ApiError::invalid(o.path(key), "at least one region is required"));
    }
    Ok(())
}

fn apr_range(apr_min: Decimal, apr_max: Decimal) -> ApiResult<()> {
    if apr_min > apr_max {
        return Err(ApiError::invalid("apr_min", "apr_min must not be above apr_max"));
    }
    Ok(())
}

fn principal_range(min: Amount, max: Amount) -> ApiResult<()> {
    if min > max {
        return Err(ApiError::invalid("min_principal", "min_principal must not be above max_principal"));
    }
    Ok(())
}

// ---------- schemas JSON Schema says and the attributes cannot ----------

/// A reference-data id (API.md section 1).
fn id_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::new(Type::String)).pattern(Some("^[a-z0-9][a-z0-9_-]{1,63}$"))
}

/// Reference-data ids, each listed once; `min` items at least.
fn ids(min: usize, nullable: bool) -> RefOr<Schema> {
    let t = if nullable { SchemaType::from_iter([Type::Array, Type::Null]) } else { SchemaType::new(Type::Array) };
    ArrayBuilder::new().schema_type(t).items(id_schema()).unique_items(true).min_items(Some(min)).max_items(Some(LIST_MAX)).into()
}

/// Region codes of 2, 4 or 6 digits; `min` items at least.
fn region_list(min: usize, nullable: bool) -> RefOr<Schema> {
    let t = if nullable { SchemaType::from_iter([Type::Array, Type::Null]) } else { SchemaType::new(Type::Array) };
    let item = ObjectBuilder::new().schema_type(SchemaType::new(Type::String)).pattern(Some("^([0-9]{2}){1,3}$"));
    ArrayBuilder::new().schema_type(t).items(item).min_items(Some(min)).max_items(Some(LIST_MAX)).into()
}

fn providers_list() -> RefOr<Schema> {
    ids(1, false)
}
fn authorized_providers_list() -> RefOr<Schema> {
    ids(0, false)
}
fn product_regions() -> RefOr<Schema> {
    region_list(1, false)
}
fn partner_regions() -> RefOr<Schema> {
    region_list(0, false)
}
fn bank_regions() -> RefOr<Schema> {
    region_list(0, true)
}

// ---------- providers ----------

/// A credit provider (额度方).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderRequest {
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{1,63}$")]
    pub id: String,
    /// No control characters.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub name: String,
    /// Where its notices go: an http or https URL (a `webhook_secret` is generated).
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = r"^https?://[a-z][a-z0-9]*(-[a-z0-9]+)*(\.[a-z][a-z0-9]*(-[a-z0-9]+)*)*(:[0-9]{1,4})?(/[!-~]*)?$"
    )]
    pub webhook_url: Option<String>,
    /// v2 (API.md §12): default `none`.
    #[schema(inline)]
    pub hold_confirmation: Option<HoldConfirmationInput>,
    /// v2 (API.md §12): default 15.
    #[schema(minimum = 1, maximum = 1440)]
    pub hold_confirmation_timeout_minutes: Option<i32>,
}

/// Whether the provider confirms each hold before it counts as placed (API.md §12).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoldConfirmationInput {
    None,
    Required,
}

impl From<HoldConfirmationInput> for HoldConfirmation {
    fn from(i: HoldConfirmationInput) -> HoldConfirmation {
        match i {
            HoldConfirmationInput::None => HoldConfirmation::None,
            HoldConfirmationInput::Required => HoldConfirmation::Required,
        }
    }
}

/// A provider's defaults (API.md §12), for a field absent on create or cleared by a PATCH.
const HOLD_CONFIRMATION: HoldConfirmation = HoldConfirmation::None;
const HOLD_CONFIRMATION_TIMEOUT_MINUTES: i32 = 15;

const PROVIDER_FIELDS: &[&str] = &["name", "webhook_url", "hold_confirmation", "hold_confirmation_timeout_minutes"];

fn check_provider(o: &Obj, mode: Mode) -> ApiResult<()> {
    must(o, mode, "name", name)?;
    may(o, "webhook_url", webhook_url)?;
    may(o, "hold_confirmation", |o, k| {
        HoldConfirmation::parse(o.req_str(k)?)
            .ok_or_else(|| ApiError::invalid(o.path(k), "`hold_confirmation` is \"none\" or \"required\""))
    })?;
    may(o, "hold_confirmation_timeout_minutes", |o, k| o.req_int(k, 1, 1440))?;
    Ok(())
}

impl ProviderRequest {
    pub fn read(v: &Value) -> ApiResult<ProviderRequest> {
        read(v, None, PROVIDER_FIELDS, check_provider)
    }

    pub fn input(self) -> (String, ProviderInput) {
        let input = ProviderInput {
            name: self.name,
            webhook_url: self.webhook_url,
            hold_confirmation: self.hold_confirmation.map_or(HOLD_CONFIRMATION, Into::into),
            hold_confirmation_timeout_minutes: self.hold_confirmation_timeout_minutes.unwrap_or(HOLD_CONFIRMATION_TIMEOUT_MINUTES),
        };
        (self.id, input)
    }
}

/// Changes to a provider: a field absent is kept, `webhook_url: null` removes the webhook.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderPatch {
    /// May repeat the path's id; it cannot be changed.
    #[schema(value_type = Option<String>, pattern = "^[a-z0-9][a-z0-9_-]{1,63}$")]
    #[serde(default)]
    pub id: Option<String>,
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    #[serde(default)]
    pub name: Patch<String>,
    #[schema(value_type = Option<String>, min_length = 1, max_length = 2000, pattern = r"^https?://[a-z][a-z0-9]*(-[a-z0-9]+)*(\.[a-z][a-z0-9]*(-[a-z0-9]+)*)*(:[0-9]{1,4})?(/[!-~]*)?$")]
    #[serde(default)]
    pub webhook_url: Patch<String>,
    /// `null` restores the default `none`.
    #[schema(value_type = Option<HoldConfirmationInput>, inline)]
    #[serde(default)]
    pub hold_confirmation: Patch<HoldConfirmationInput>,
    /// `null` restores the default 15.
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 1440)]
    #[serde(default)]
    pub hold_confirmation_timeout_minutes: Patch<i32>,
}

impl ProviderPatch {
    pub fn read(v: &Value, id: &str) -> ApiResult<ProviderPatch> {
        read(v, Some(id), PROVIDER_FIELDS, check_provider)
    }

    /// The provider as changed.
    pub fn apply(self, p: ProviderInput) -> ApiResult<ProviderInput> {
        Ok(ProviderInput {
            name: self.name.or(p.name),
            webhook_url: self.webhook_url.or_clear(p.webhook_url),
            hold_confirmation: self.hold_confirmation.map(HoldConfirmation::from).or_default(p.hold_confirmation, HOLD_CONFIRMATION),
            hold_confirmation_timeout_minutes: self
                .hold_confirmation_timeout_minutes
                .or_default(p.hold_confirmation_timeout_minutes, HOLD_CONFIRMATION_TIMEOUT_MINUTES),
        })
    }
}

// ---------- banks ----------

/// A funding bank (资金方).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BankRequest {
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{1,63}$")]
    pub id: String,
    /// No control characters.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub name: String,
    /// Banks are tried by ascending priority, ties by creation order.
    #[schema(minimum = 0, maximum = 1000000)]
    pub priority: i32,
    /// The lowest APR it funds, not above `apr_max`.
    #[schema(value_type = String, pattern = r"^[0-9]{1,2}(\.[0-9]{1,8})?$")]
    pub apr_min: Rate,
    #[schema(value_type = String, pattern = r"^[0-9]{1,2}(\.[0-9]{1,8})?$")]
    pub apr_max: Rate,
    /// CNY yuan, above zero.
    #[schema(value_type = String, pattern = r"^[0-9]{1,12}(\.[0-9]{1,2})?$")]
    pub exposure_limit: Amount,
    /// Absent or `null`: everywhere.
    #[schema(schema_with = bank_regions)]
    pub regions: Option<Vec<String>>,
    /// Where its notices go: an http or https URL (a `webhook_secret` is generated).
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = r"^https?://[a-z][a-z0-9]*(-[a-z0-9]+)*(\.[a-z][a-z0-9]*(-[a-z0-9]+)*)*(:[0-9]{1,4})?(/[!-~]*)?$"
    )]
    pub webhook_url: Option<String>,
}

const BANK_FIELDS: &[&str] = &["name", "priority", "apr_min", "apr_max", "exposure_limit", "regions", "webhook_url"];

fn check_bank(o: &Obj, mode: Mode) -> ApiResult<()> {
    must(o, mode, "name", name)?;
    must(o, mode, "priority", |o, k| o.req_int(k, 0, 1_000_000))?;
    let apr_min = must(o, mode, "apr_min", rate)?;
    let apr_max = must(o, mode, "apr_max", rate)?;
    must(o, mode, "exposure_limit", |o, k| o.req_positive_money(k))?;
    may(o, "regions", |o, k| regions(o, k, false))?;
    may(o, "webhook_url", webhook_url)?;
    match (apr_min, apr_max) {
        (Some(min), Some(max)) => apr_range(min, max),
        _ => Ok(()),
    }
}

impl BankRequest {
    pub fn read(v: &Value) -> ApiResult<BankRequest> {
        read(v, None, BANK_FIELDS, check_bank)
    }

    pub fn input(self) -> (String, BankInput) {
        let input = BankInput {
            name: self.name,
            priority: self.priority,
            apr_min: self.apr_min.as_decimal(),
            apr_max: self.apr_max.as_decimal(),
            exposure_limit: self.exposure_limit,
            regions: self.regions,
            webhook_url: self.webhook_url,
        };
        (self.id, input)
    }
}

/// Changes to a bank: a field absent is kept; `regions: null` is everywhere again,
/// `webhook_url: null` removes the webhook.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BankPatch {
    /// May repeat the path's id; it cannot be changed.
    #[schema(value_type = Option<String>, pattern = "^[a-z0-9][a-z0-9_-]{1,63}$")]
    #[serde(default)]
    pub id: Option<String>,
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    #[serde(default)]
    pub name: Patch<String>,
    #[schema(value_type = i32, minimum = 0, maximum = 1000000)]
    #[serde(default)]
    pub priority: Patch<i32>,
    /// Not above `apr_max` (the new one, or the stored one).
    #[schema(value_type = String, pattern = r"^[0-9]{1,2}(\.[0-9]{1,8})?$")]
    #[serde(default)]
    pub apr_min: Patch<Rate>,
    #[schema(value_type = String, pattern = r"^[0-9]{1,2}(\.[0-9]{1,8})?$")]
    #[serde(default)]
    pub apr_max: Patch<Rate>,
    /// CNY yuan, above zero.
    #[schema(value_type = String, pattern = r"^[0-9]{1,12}(\.[0-9]{1,2})?$")]
    #[serde(default)]
    pub exposure_limit: Patch<Amount>,
    #[schema(schema_with = bank_regions)]
    #[serde(default)]
    pub regions: Patch<Vec<String>>,
    #[schema(value_type = Option<String>, min_length = 1, max_length = 2000, pattern = r"^https?://[a-z][a-z0-9]*(-[a-z0-9]+)*(\.[a-z][a-z0-9]*(-[a-z0-9]+)*)*(:[0-9]{1,4})?(/[!-~]*)?$")]
    #[serde(default)]
    pub webhook_url: Patch<String>,
}

impl BankPatch {
    pub fn read(v: &Value, id: &str) -> ApiResult<BankPatch> {
        read(v, Some(id), BANK_FIELDS, check_bank)
    }

    /// The bank as changed; its APR range checked as merged.
    pub fn apply(self, b: BankInput) -> ApiResult<BankInput> {
        let changed = BankInput {
            name: self.name.or(b.name),
            priority: self.priority.or(b.priority),
            apr_min: self.apr_min.map(|r| r.as_decimal()).or(b.apr_min),
            apr_max: self.apr_max.map(|r| r.as_decimal()).or(b.apr_max),
            exposure_limit: self.exposure_limit.or(b.exposure_limit),
            regions: self.regions.or_clear(b.regions),
            webhook_url: self.webhook_url.or_clear(b.webhook_url),
        };
        apr_range(changed.apr_min, changed.apr_max)?;
        Ok(changed)
    }
}

// ---------- stores ----------

/// A store (门店): its region is the region of its orders.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreRequest {
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{1,63}$")]
    pub id: String,
    /// No control characters.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub name: String,
    /// A 6-digit GB/T 2260 code.
    #[schema(pattern = "^[0-9]{6}$")]
    pub region_code: String,
}

const STORE_FIELDS: &[&str] = &["name", "region_code"];

fn check_store(o: &Obj, mode: Mode) -> ApiResult<()> {
    must(o, mode, "name", name)?;
    must(o, mode, "region_code", |o, k| {
        RegionCode::parse_order(o.req_str(k)?).map_err(|_| ApiError::invalid(o.path(k), "a 6-digit region code"))
    })?;
    Ok(())
}

impl StoreRequest {
    pub fn read(v: &Value) -> ApiResult<StoreRequest> {
        read(v, None, STORE_FIELDS, check_store)
    }

    pub fn input(self) -> (String, StoreInput) {
        (self.id, StoreInput { name: self.name, region_code: self.region_code })
    }
}

/// Changes to a store: a field absent is kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StorePatch {
    /// May repeat the path's id; it cannot be changed.
    #[schema(value_type = Option<String>, pattern = "^[a-z0-9][a-z0-9_-]{1,63}$")]
    #[serde(default)]
    pub id: Option<String>,
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    #[serde(default)]
    pub name: Patch<String>,
    #[schema(value_type = String, pattern = "^[0-9]{6}$")]
    #[serde(default)]
    pub region_code: Patch<String>,
}

impl StorePatch {
    pub fn read(v: &Value, id: &str) -> ApiResult<StorePatch> {
        read(v, Some(id), STORE_FIELDS, check_store)
    }

    pub fn apply(self, s: StoreInput) -> ApiResult<StoreInput> {
        Ok(StoreInput { name: self.name.or(s.name), region_code: self.region_code.or(s.region_code) })
    }
}

// ---------- partners ----------

/// A field-agent partner (地推); its eligibility is evaluated on every read and order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerRequest {
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{1,63}$")]
    pub id: String,
    /// No control characters.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub name: String,
    pub established_on: NaiveDate,
    /// CNY yuan.
    #[schema(value_type = String, pattern = r"^[0-9]{1,12}(\.[0-9]{1,2})?$")]
    pub deposit_paid: Amount,
    /// Providers that exist (else 422 unknown_reference).
    #[schema(schema_with = authorized_providers_list)]
    pub authorized_providers: Vec<String>,
    pub major_violation_last_year: bool,
    #[schema(schema_with = partner_regions)]
    pub regions: Vec<String>,
}

const PARTNER_FIELDS: &[&str] = &["name", "established_on", "deposit_paid", "authorized_providers", "major_violation_last_year", "regions"];

fn check_partner(o: &Obj, mode: Mode) -> ApiResult<()> {
    must(o, mode, "name", name)?;
    must(o, mode, "established_on", |o, k| o.req_date(k))?;
    must(o, mode, "deposit_paid", |o, k| o.req_money(k))?;
    must(o, mode, "authorized_providers", |o, k| o.req_id_list(k, LIST_MAX))?;
    must(o, mode, "major_violation_last_year", |o, k| o.req_bool(k))?;
    must(o, mode, "regions", |o, k| regions(o, k, false))?;
    Ok(())
}

impl PartnerRequest {
    pub fn read(v: &Value) -> ApiResult<PartnerRequest> {
        read(v, None, PARTNER_FIELDS, check_partner)
    }

    pub fn input(self) -> (String, PartnerInput) {
        let input = PartnerInput {
            name: self.name,
            established_on: self.established_on,
            deposit_paid: self.deposit_paid,
            authorized_providers: self.authorized_providers,
            major_violation_last_year: self.major_violation_last_year,
            regions: self.regions,
        };
        (self.id, input)
    }
}

/// Changes to a partner: a field absent is kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerPatch {
    /// May repeat the path's id; it cannot be changed.
    #[schema(value_type = Option<String>, pattern = "^[a-z0-9][a-z0-9_-]{1,63}$")]
    #[serde(default)]
    pub id: Option<String>,
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    #[serde(default)]
    pub name: Patch<String>,
    #[schema(value_type = NaiveDate)]
    #[serde(default)]
    pub established_on: Patch<NaiveDate>,
    #[schema(value_type = String, pattern = r"^[0-9]{1,12}(\.[0-9]{1,2})?$")]
    #[serde(default)]
    pub deposit_paid: Patch<Amount>,
    #[schema(schema_with = authorized_providers_list)]
    #[serde(default)]
    pub authorized_providers: Patch<Vec<String>>,
    #[schema(value_type = bool)]
    #[serde(default)]
    pub major_violation_last_year: Patch<bool>,
    #[schema(schema_with = partner_regions)]
    #[serde(default)]
    pub regions: Patch<Vec<String>>,
}

impl PartnerPatch {
    pub fn read(v: &Value, id: &str) -> ApiResult<PartnerPatch> {
        read(v, Some(id), PARTNER_FIELDS, check_partner)
    }

    pub fn apply(self, p: PartnerInput) -> ApiResult<PartnerInput> {
        Ok(PartnerInput {
            name: self.name.or(p.name),
            established_on: self.established_on.or(p.established_on),
            deposit_paid: self.deposit_paid.or(p.deposit_paid),
            authorized_providers: self.authorized_providers.or(p.authorized_providers),
            major_violation_last_year: self.major_violation_last_year.or(p.major_violation_last_year),
            regions: self.regions.or(p.regions),
        })
    }
}

// ---------- products ----------

/// Interest (`rate` yearly) or a fee (`rate` over the term).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PricingInput {
    Interest,
    Fee,
}

impl PricingInput {
    fn as_str(self) -> &'static str {
        match self {
            PricingInput::Interest => Pricing::Interest.as_str(),
            PricingInput::Fee => Pricing::Fee.as_str(),
        }
    }
}

/// A term a product offers.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TermRequest {
    /// Listed once per product.
    #[schema(minimum = 1, maximum = 360)]
    pub months: u32,
    /// Its annualised `apr_irr` not above the cap (else 422 apr_above_cap).
    #[schema(value_type = String, pattern = r"^[0-9]{1,2}(\.[0-9]{1,8})?$")]
    pub rate: Rate,
}

/// At least one term, at most one per month count.
fn terms_list() -> RefOr<Schema> {
    ArrayBuilder::new().items(TermRequest::schema()).min_items(Some(1)).max_items(Some(TERMS_MAX)).into()
}

fn terms(o: &Obj, key: &str) -> ApiResult<()> {
    let items = o.req_obj_list(key, &["months", "rate"], TERMS_MAX)?;
    if items.is_empty() {
        return Err(ApiError::invalid(o.path(key), "at least one term is required"));
    }
    let mut seen: Vec<i64> = Vec::with_capacity(items.len());
    for t in &items {
        let months = t.req_int("months", 1, 360)?;
        if seen.contains(&months) {
            return Err(ApiError::invalid(t.path("months"), "the same months twice"));
        }
        seen.push(months);
        t.req_rate("rate")?;
    }
    Ok(())
}

fn hold_ratio(o: &Obj, key: &str) -> ApiResult<()> {
    let r = rate(o, key)?;
    if r <= Decimal::ZERO || r > Decimal::from(10) {
        return Err(ApiError::invalid(o.path(key), "`hold_ratio` must be above 0 and at most 10"));
    }
    Ok(())
}

const PRODUCT_FIELDS: &[&str] = &[
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
    "write_off_after_days",
    "return_window_days",
];

fn check_product(o: &Obj, mode: Mode) -> ApiResult<()> {
    must(o, mode, "name", name)?;
    must(o, mode, "pricing", |o, k| {
        Pricing::parse(o.req_str(k)?).map_err(|_| ApiError::invalid(o.path(k), "`pricing` is \"interest\" or \"fee\""))
    })?;
    must(o, mode, "terms", terms)?;
    must(o, mode, "providers", |o, k| {
        let ids = o.req_id_list(k, LIST_MAX)?;
        if ids.is_empty() { Err(ApiError::invalid(o.path(k), "at least one provider is required")) } else { Ok(()) }
    })?;
    must(o, mode, "regions", |o, k| regions(o, k, true))?;
    let min = must(o, mode, "min_principal", |o, k| o.req_positive_money(k))?;
    let max = must(o, mode, "max_principal", |o, k| o.req_positive_money(k))?;
    if let (Some(min), Some(max)) = (min, max) {
        principal_range(min, max)?;
    }
    may(o, "hold_ratio", hold_ratio)?;
    may(o, "grace_days", |o, k| o.req_int(k, 0, 30))?;
    may(o, "penalty_daily_rate", rate)?;
    may(o, "funding_timeout_hours", |o, k| o.req_int(k, 1, 720))?;
    may(o, "partner_referral_fee", |o, k| o.req_money(k))?;
    may(o, "active", |o, k| o.req_bool(k))?;
    may(o, "write_off_after_days", |o, k| o.req_int(k, 30, 3650))?;
    may(o, "return_window_days", |o, k| o.req_int(k, 0, 30))?;
    Ok(())
}

fn term_inputs(terms: Vec<TermRequest>) -> Vec<TermInput> {
    terms.into_iter().map(|t| TermInput { months: t.months, rate: t.rate }).collect()
}

/// A product: what is sold on installments, priced per term, and where.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductRequest {
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{1,63}$")]
    pub id: String,
    /// No control characters.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub name: String,
    #[schema(inline)]
    pub pricing: PricingInput,
    /// Each `months` listed once.
    #[schema(schema_with = terms_list)]
    pub terms: Vec<TermRequest>,
    /// Providers that exist, in preference order for matching.
    #[schema(schema_with = providers_list)]
    pub providers: Vec<String>,
    #[schema(schema_with = product_regions)]
    pub regions: Vec<String>,
    /// CNY yuan, above zero, not above `max_principal`.
    #[schema(value_type = String, pattern = r"^[0-9]{1,12}(\.[0-9]{1,2})?$")]
    pub min_principal: Amount,
    /// CNY yuan, above zero.
    #[schema(value_type = String, pattern = r"^[0-9]{1,12}(\.[0-9]{1,2})?$")]
    pub max_principal: Amount,
    /// Above 0 and at most 10; default 1.
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{1,2}(\.[0-9]{1,8})?$")]
    pub hold_ratio: Option<Rate>,
    /// Default 3.
    #[schema(minimum = 0, maximum = 30)]
    pub grace_days: Option<i32>,
    /// Default 0.0005; × 365 not above the cap (else 422 apr_above_cap).
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{1,2}(\.[0-9]{1,8})?$")]
    pub penalty_daily_rate: Option<Rate>,
    /// Default 72.
    #[schema(minimum = 1, maximum = 720)]
    pub funding_timeout_hours: Option<i32>,
    /// CNY yuan; default 0.
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{1,12}(\.[0-9]{1,2})?$")]
    pub partner_referral_fee: Option<Amount>,
    /// Default true; false takes no new orders.
    pub active: Option<bool>,
    /// API.md §14: end of day writes off a defaulted plan this many days after its oldest unpaid
    /// installment fell due; default null (never).
    #[schema(minimum = 30, maximum = 3650)]
    pub write_off_after_days: Option<i32>,
    /// API.md §13: days after `funded_on` a device may be returned; default 7, 0 = no returns.
    #[schema(minimum = 0, maximum = 30)]
    pub return_window_days: Option<i32>,
}

impl ProductRequest {
    pub fn read(v: &Value) -> ApiResult<ProductRequest> {
        read(v, None, PRODUCT_FIELDS, check_product)
    }

    /// The id, the product (terms not yet priced) and its terms.
    pub fn input(self) -> (String, ProductInput, Vec<TermInput>) {
        let input = ProductInput {
            name: self.name,
            pricing: self.pricing.as_str().to_string(),
            terms: Vec::new(),
            providers: self.providers,
            regions: self.regions,
            min_principal: self.min_principal,
            max_principal: self.max_principal,
            hold_ratio: self.hold_ratio.map_or(HOLD_RATIO, |r| r.as_decimal()),
            grace_days: self.grace_days.unwrap_or(GRACE_DAYS),
            penalty_daily_rate: self.penalty_daily_rate.map_or(PENALTY_DAILY_RATE, |r| r.as_decimal()),
            funding_timeout_hours: self.funding_timeout_hours.unwrap_or(FUNDING_TIMEOUT_HOURS),
            partner_referral_fee: self.partner_referral_fee.unwrap_or(Amount::ZERO),
            active: self.active.unwrap_or(true),
            write_off_after_days: self.write_off_after_days,
            return_window_days: self.return_window_days.unwrap_or(RETURN_WINDOW_DAYS),
        };
        (self.id, input, term_inputs(self.terms))
    }
}

/// Changes to a product: a field absent is kept; `null` puts a defaulted field back to its default
/// and is refused for the others; `"active": false` takes no new orders.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    /// May repeat the path's id; it cannot be changed.
    #[schema(value_type = Option<String>, pattern = "^[a-z0-9][a-z0-9_-]{1,63}$")]
    #[serde(default)]
    pub id: Option<String>,
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    #[serde(default)]
    pub name: Patch<String>,
    #[schema(value_type = PricingInput, inline)]
    #[serde(default)]
    pub pricing: Patch<PricingInput>,
    /// Each `months` listed once; the terms are priced again on any change of pricing or penalty.
    #[schema(schema_with = terms_list)]
    #[serde(default)]
    pub terms: Patch<Vec<TermRequest>>,
    #[schema(schema_with = providers_list)]
    #[serde(default)]
    pub providers: Patch<Vec<String>>,
    #[schema(schema_with = product_regions)]
    #[serde(default)]
    pub regions: Patch<Vec<String>>,
    /// Not above `max_principal` (the new one, or the stored one).
    #[schema(value_type = String, pattern = r"^[0-9]{1,12}(\.[0-9]{1,2})?$")]
    #[serde(default)]
    pub min_principal: Patch<Amount>,
    #[schema(value_type = String, pattern = r"^[0-9]{1,12}(\.[0-9]{1,2})?$")]
    #[serde(default)]
    pub max_principal: Patch<Amount>,
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{1,2}(\.[0-9]{1,8})?$")]
    #[serde(default)]
    pub hold_ratio: Patch<Rate>,
    #[schema(value_type = Option<i32>, minimum = 0, maximum = 30)]
    #[serde(default)]
    pub grace_days: Patch<i32>,
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{1,2}(\.[0-9]{1,8})?$")]
    #[serde(default)]
    pub penalty_daily_rate: Patch<Rate>,
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 720)]
    #[serde(default)]
    pub funding_timeout_hours: Patch<i32>,
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{1,12}(\.[0-9]{1,2})?$")]
    #[serde(default)]
    pub partner_referral_fee: Patch<Amount>,
    #[schema(value_type = Option<bool>)]
    #[serde(default)]
    pub active: Patch<bool>,
    /// `null` clears it (never write off).
    #[schema(value_type = Option<i32>, minimum = 30, maximum = 3650)]
    #[serde(default)]
    pub write_off_after_days: Patch<i32>,
    /// `null` puts back the default (7); orders already placed keep the window they took.
    #[schema(value_type = Option<i32>, minimum = 0, maximum = 30)]
    #[serde(default)]
    pub return_window_days: Patch<i32>,
}

impl ProductPatch {
    pub fn read(v: &Value, id: &str) -> ApiResult<ProductPatch> {
        read(v, Some(id), PRODUCT_FIELDS, check_product)
    }

    /// The product as changed, and its new terms when given; its principal bounds checked as merged.
    pub fn apply(self, p: ProductInput) -> ApiResult<(ProductInput, Option<Vec<TermInput>>)> {
        let changed = ProductInput {
            name: self.name.or(p.name),
            pricing: self.pricing.map(|x| x.as_str().to_string()).or(p.pricing),
            terms: p.terms,
            providers: self.providers.or(p.providers),
            regions: self.regions.or(p.regions),
            min_principal: self.min_principal.or(p.min_principal),
            max_principal: self.max_principal.or(p.max_principal),
            hold_ratio: self.hold_ratio.map(|r| r.as_decimal()).or_default(p.hold_ratio, HOLD_RATIO),
            grace_days: self.grace_days.or_default(p.grace_days, GRACE_DAYS),
            penalty_daily_rate: self.penalty_daily_rate.map(|r| r.as_decimal()).or_default(p.penalty_daily_rate, PENALTY_DAILY_RATE),
            funding_timeout_hours: self.funding_timeout_hours.or_default(p.funding_timeout_hours, FUNDING_TIMEOUT_HOURS),
            partner_referral_fee: self.partner_referral_fee.or_default(p.partner_referral_fee, Amount::ZERO),
            active: self.active.or_default(p.active, true),
            write_off_after_days: self.write_off_after_days.or_clear(p.write_off_after_days),
            return_window_days: self.return_window_days.or_default(p.return_window_days, RETURN_WINDOW_DAYS),
        };
        principal_range(changed.min_principal, changed.max_principal)?;
        let terms = match self.terms {
            Patch::Set(t) => Some(term_inputs(t)),
            _ => None,
        };
        Ok((changed, terms))
    }
}

// ---------- api keys ----------

/// Whose key it is.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KindInput {
    Admin,
    Store,
    Partner,
    Bank,
    Provider,
}

/// The principal a key acts as: the admin (no id), or a store, partner, bank or provider that exists.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrincipalInput {
    #[schema(inline)]
    pub kind: KindInput,
    /// Required for every kind but `admin`, refused for `admin`.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{1,63}$")]
    pub id: Option<String>,
}

/// A new API key; its secret is answered once.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRequest {
    #[schema(inline)]
    pub principal: PrincipalInput,
    /// Requests a minute; absent: the configured default.
    #[schema(minimum = 1, maximum = 1000000)]
    pub rate_limit_per_minute: Option<i32>,
}

impl ApiKeyRequest {
    pub fn read(v: &Value) -> ApiResult<ApiKeyRequest> {
        let o = Obj::root(v, &["principal", "rate_limit_per_minute"])?;
        let p = o.req_obj("principal", &["kind", "id"])?;
        let kind = PrincipalKind::parse(p.req_str("kind")?)
            .ok_or_else(|| ApiError::invalid(p.path("kind"), "`kind` is admin, store, partner, bank or provider"))?;
        if kind == PrincipalKind::Admin {
            if p.has("id") {
                return Err(ApiError::invalid(p.path("id"), "an admin key has no id"));
            }
        } else {
            p.req_id("id")?;
        }
        o.opt_int("rate_limit_per_minute", 1, 1_000_000)?;
        typed(v)
    }

    /// The principal and the key's rate.
    pub fn input(self) -> ApiResult<(Principal, Option<i32>)> {
        let kind = match self.principal.kind {
            KindInput::Admin => PrincipalKind::Admin,
            KindInput::Store => PrincipalKind::Store,
            KindInput::Partner => PrincipalKind::Partner,
            KindInput::Bank => PrincipalKind::Bank,
            KindInput::Provider => PrincipalKind::Provider,
        };
        let principal =
            Principal::new(kind, self.principal.id).ok_or_else(|| ApiError::invalid("principal.id", "`id` is required for this kind"))?;
        Ok((principal, self.rate_limit_per_minute))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body::parse_object;
    use crate::http::requests::tests::same_fields;

    fn body(text: &str) -> Value {
        parse_object(text.as_bytes()).expect("a JSON object")
    }

    /// A create type takes `id` and its object's fields; a PATCH type the same.
    fn takes<C: utoipa::PartialSchema, P: utoipa::PartialSchema>(fields: &[&str]) {
        let mut all = vec!["id"];
        all.extend_from_slice(fields);
        same_fields::<C>(&all);
        same_fields::<P>(&all);
    }

    #[test]
    fn checks_and_types_take_the_same_fields() {
        takes::<ProviderRequest, ProviderPatch>(PROVIDER_FIELDS);
        takes::<BankRequest, BankPatch>(BANK_FIELDS);
        takes::<StoreRequest, StorePatch>(STORE_FIELDS);
        takes::<PartnerRequest, PartnerPatch>(PARTNER_FIELDS);
        takes::<ProductRequest, ProductPatch>(PRODUCT_FIELDS);
        same_fields::<TermRequest>(&["months", "rate"]);
        same_fields::<ApiKeyRequest>(&["principal", "rate_limit_per_minute"]);
        same_fields::<PrincipalInput>(&["kind", "id"]);
    }

    fn bank() -> BankInput {
        let (_, b) = BankRequest::read(&body(
            r#"{"id":"bk","name":"B","priority":1,"apr_min":"0.1","apr_max":"0.2","exposure_limit":"100","regions":["44"],"webhook_url":"https://b.example/h"}"#,
        ))
        .expect("a bank")
        .input();
        b
    }

    #[test]
    fn a_patch_keeps_what_is_absent_clears_what_is_null_and_sets_the_rest() {
        let changed = BankPatch::read(&body(r#"{"id":"bk","regions":null,"priority":7}"#), "bk").unwrap().apply(bank()).unwrap();
        assert_eq!((changed.priority, changed.regions, changed.webhook_url.as_deref()), (7, None, Some("https://b.example/h")));
        let e = BankPatch::read(&body(r#"{"priority":null}"#), "bk").unwrap_err();
        assert_eq!((e.field.as_deref(), e.message.as_str()), (Some("priority"), "`priority` cannot be cleared"));
        assert_eq!(BankPatch::read(&body(r#"{"id":"other"}"#), "bk").unwrap_err().field.as_deref(), Some("id"));
        // The APR range holds once merged with the stored bank (apr_max 0.2).
        let e = BankPatch::read(&body(r#"{"apr_min":"0.3"}"#), "bk").unwrap().apply(bank()).err().unwrap();
        assert_eq!(e.field.as_deref(), Some("apr_min"));
    }

    #[test]
    fn a_product_takes_its_defaults_and_a_null_restores_them() {
        let (_, p, terms) = ProductRequest::read(&body(
            r#"{"id":"p1","name":"P","pricing":"fee","terms":[{"months":12,"rate":"0.1"}],"providers":["wld"],"regions":["44"],
                "min_principal":"500","max_principal":"20000","grace_days":null}"#,
        ))
        .expect("a product")
        .input();
        assert_eq!((p.pricing.as_str(), p.grace_days, p.hold_ratio, p.active, terms.len()), ("fee", 3, Decimal::ONE, true, 1));
        let mut changed = p;
        changed.grace_days = 9;
        let (restored, new_terms) = ProductPatch::read(&body(r#"{"grace_days":null}"#), "p1").unwrap().apply(changed).unwrap();
        assert_eq!((restored.grace_days, new_terms.is_none()), (3, true));
        let twice = ProductRequest::read(&body(
            r#"{"id":"p1","name":"P","pricing":"fee","terms":[{"months":12,"rate":"0.1"},{"months":12,"rate":"0.2"}]}"#,
        ));
        assert_eq!(twice.unwrap_err().field.as_deref(), Some("terms[1].months"));
    }

    #[test]
    fn an_api_key_names_an_id_for_every_kind_but_admin() {
        let (admin, _) = ApiKeyRequest::read(&body(r#"{"principal":{"kind":"admin"}}"#)).unwrap().input().unwrap();
        assert_eq!(admin.kind(), PrincipalKind::Admin);
        assert_eq!(
            ApiKeyRequest::read(&body(r#"{"principal":{"kind":"admin","id":"x1"}}"#)).unwrap_err().field.as_deref(),
            Some("principal.id")
        );
        assert_eq!(ApiKeyRequest::read(&body(r#"{"principal":{"kind":"bank"}}"#)).unwrap_err().field.as_deref(), Some("principal.id"));
    }
}
