//! Quotes and orders (API.md section 4): the matching credit line, the hold, the funding bank.

use super::Deps;
use super::lifecycle::Effects;
use super::order_notices::OrderRefs;
use super::plans::{PlanView, plan_view};
use crate::auth::{Principal, PrincipalKind, new_object_id};
use crate::db::credit_lines::CreditLine;
use crate::db::journal::{Entry, Refs, account};
use crate::db::notices::record;
use crate::db::orders::{self as orders_db, Hold, NewOrder, Order, Scope};
use crate::db::setup::{self as setup_db, Product, rate_string};
use crate::db::{self, Tx, banks, credit_lines, plans};
use crate::domain::dates::SHANGHAI;
use crate::domain::hold::hold_amount;
use crate::domain::identity::{IdNumber, Imei, Phone, RegionCode};
use crate::domain::irr::{format_apr, schedule_apr_irr};
use crate::domain::money::{Amount, Rate};
use crate::domain::notice::{About, FundingRequested, HoldMoved, HoldRequested, Notice, OrderCancelled, PlanOpened, Recipient};
use crate::domain::partner::IneligibleReason;
use crate::domain::placement::{self, BankFacts, Decision, LineFacts, PartnerFacts, Placement, PricedOrder, Refusal};
use crate::domain::schedule::{Pricing, ScheduledInstallment, build_schedule, total_repayable};
use crate::domain::status::{HoldStatus, OrderStatus, VoidReason};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::idempotency::{self, Answer, IdempotentRequest};
use actix_web::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

mod batch;

pub use batch::{BATCHED_GAUGE, Batcher, CONNECTIONS as BATCHER_CONNECTIONS, WAITING_GAUGE};

// ---------- pricing ----------

/// A product's term priced for one principal.
pub struct Priced {
    pub pricing: Pricing,
    pub rate: Rate,
    pub schedule: Vec<ScheduledInstallment>,
    pub apr: Decimal,
    pub hold_amount: Amount,
}

/// Product active, term offered, principal within bounds with no negative component (in that order).
pub fn price(product: &Product, term_months: u32, principal: Option<Amount>, start: NaiveDate) -> ApiResult<Priced> {
    if !product.active {
        return Err(ApiError::new(ErrorCode::UnknownReference, "the product is not open for new orders").field("product_id"));
    }
    let term = product.terms.iter().find(|t| t.months as u32 == term_months).ok_or_else(|| {
        ApiError::new(ErrorCode::UnsupportedTerm, format!("the product has no {term_months}-month term")).field("term_months")
    })?;
    let out_of_range = || {
        ApiError::new(
            ErrorCode::PrincipalOutOfRange,
            format!("the principal (device price − down payment) must be from {} to {}", product.min_principal, product.max_principal),
        )
        .field("down_payment")
        .details(json!({ "min_principal": product.min_principal, "max_principal": product.max_principal }))
    };
    let principal = principal.ok_or_else(out_of_range)?;
    if principal < product.min_principal || principal > product.max_principal {
        return Err(out_of_range());
    }
    // Setup checked both before storing them; a failure here means the stored product is corrupt.
    let context = || format!("Failed to read the stored pricing of product {}", product.id);
    let pricing = Pricing::parse(&product.pricing).map_err(|e| ApiError::internal_because(context(), e))?;
    let rate = Rate::parse(&term.rate).map_err(|e| ApiError::internal_because(context(), e))?;
    let schedule = build_schedule(principal, term_months, pricing, rate, start).map_err(|_| out_of_range())?;
    let apr = schedule_apr_irr(&schedule);
    let hold_amount = hold_amount(&schedule, product.hold_ratio_decimal);
    Ok(Priced { pricing, rate, schedule, apr, hold_amount })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleLine {
    pub seq: u32,
    pub due_on: NaiveDate,
    pub principal: Amount,
    pub interest: Amount,
    pub fee: Amount,
    pub total: Amount,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Quote {
    pub product_id: String,
    pub principal: Amount,
    pub term_months: u32,
    pub pricing: String,
    pub rate: String,
    pub apr_irr: String,
    pub hold_amount: Amount,
    pub total_repayable: Amount,
    pub installments: Vec<ScheduleLine>,
}

pub struct QuoteRequest {
    pub product_id: String,
    pub term_months: u32,
    pub device_price: Amount,
    pub down_payment: Amount,
}

#[tracing::instrument(skip_all, fields(product_id = %q.product_id))]
pub async fn quote(state: &Deps, q: QuoteRequest) -> ApiResult<Quote> {
    let client = state.pool.get().await?;
    let product = setup_db::get_product(&**client, &q.product_id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownReference, "no such product").field("product_id"))?;
    let principal = q.device_price.checked_sub(q.down_payment);
    let priced = price(&product, q.term_months, principal, state.clock.today())?;
    let principal = principal.expect("price() refuses a missing principal");
    Ok(Quote {
        product_id: product.id,
        principal,
        term_months: q.term_months,
        pricing: priced.pricing.as_str().to_string(),
        rate: rate_string(priced.rate.as_decimal()),
        apr_irr: format_apr(priced.apr),
        hold_amount: priced.hold_amount,
        total_repayable: total_repayable(&priced.schedule),
        installments: priced
            .schedule
            .iter()
            .map(|i| ScheduleLine {
                seq: i.seq,
                due_on: i.due_on,
                principal: i.principal,
                interest: i.interest,
                fee: i.fee,
                total: i.total(),
            })
            .collect(),
    })
}

// ---------- views ----------

#[derive(Debug, Serialize, ToSchema)]
pub struct Device {
    pub sku: String,
    pub imei_masked: String,
    pub price: Amount,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    pub id: String,
    pub out_order_no: String,
    #[schema(value_type = String)]
    pub status: OrderStatus,
    pub channel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    pub region_code: String,
    pub product_id: String,
    pub term_months: i32,
    pub principal: Amount,
    pub apr_irr: String,
    pub device: Device,
    pub down_payment: Amount,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub consent: Option<Value>,
    pub bank_id: String,
    /// `null` while the hold awaits its provider's confirmation (API.md §12).
    pub funding_deadline: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub hold: Hold,
    pub plan: Option<PlanView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub fn order_view(o: Order, hold: Hold, plan: Option<PlanView>) -> OrderView {
    OrderView {
        id: o.id,
        out_order_no: o.out_order_no,
        status: o.status,
        channel: o.channel,
        store_id: o.store_id,
        partner_id: o.partner_id,
        agent_id: o.agent_id,
        region_code: o.region_code,
        product_id: o.product_id,
        term_months: o.term_months,
        principal: o.principal,
        apr_irr: o.apr_irr,
        device: Device { sku: o.device_sku, imei_masked: o.imei_masked, price: o.device_price },
        down_payment: o.down_payment,
        consent: o.consent,
        bank_id: o.bank_id,
        funding_deadline: o.funding_deadline,
        reason: o.reason,
        hold,
        plan,
        created_at: o.created_at,
        updated_at: o.updated_at,
    }
}

/// The order with its hold and plan, read in the same transaction or connection.
pub async fn load_view(c: &impl crate::db::Db, o: Order) -> ApiResult<OrderView> {
    let hold = orders_db::get_hold(c, &o.hold_id)
        .await?
        .ok_or_else(|| ApiError::internal_because("Failed to load an order", format!("order {} has no hold {}", o.id, o.hold_id)))?;
    let plan = match plans::get_by_order(c, &o.id).await? {
        Some(p) => {
            let insts = plans::installments(c, &p.id).await?;
            Some(plan_view(p, &insts))
        }
        None => None,
    };
    Ok(order_view(o, hold, plan))
}

/// May this caller see the order? Its owner, its bank, the admin.
pub fn can_see(caller: &Principal, o: &Order) -> bool {
    caller.is_admin() || caller.scope() == o.owner_scope || (caller.is(PrincipalKind::Bank, &o.bank_id) && o.shown_to_bank())
}

fn owner_of(o: &Order) -> Recipient {
    Recipient::seller_of(o.store_id.as_deref(), o.partner_id.as_deref()).unwrap_or_else(|| Recipient::Store(String::new()))
}

/// `order.updated` to the order's store or partner, with the order's status as stored.
pub fn order_updated(refs: &OrderRefs, o: &Order) -> Notice {
    assert_eq!(refs.order_id, o.id, "the refs are this order's");
    Notice::order_updated(refs, owner_of(o), &o.out_order_no, o.status)
}

/// A `hold.*` notice (`kind`: `Notice::HoldPlaced`…) to the hold's provider: `amount` moved,
/// `remaining` left.
pub fn hold_notice(kind: fn(About<HoldMoved>) -> Notice, refs: &OrderRefs, h: &Hold, amount: Amount) -> Notice {
    assert_eq!((&refs.hold_id, &refs.order_id), (&h.id, &h.order_id), "the refs are this hold's");
    kind(Notice::hold_moved(refs, &h.provider_id, amount, h.remaining))
}

/// `hold.voided` to the hold's provider, the hold as voided: its reason is the one it was voided for.
pub fn hold_voided(refs: &OrderRefs, h: &Hold) -> Notice {
    assert_eq!((&refs.hold_id, &refs.order_id), (&h.id, &h.order_id), "the refs are this hold's");
    let reason = h.void_reason.expect("a voided hold has its reason (sql/V19: holds_voided_with_reason)");
    Notice::hold_voided(refs, &h.provider_id, h.voided, reason)
}

// ---------- placing an order ----------

pub struct OrderRequest {
    pub out_order_no: String,
    pub product_id: String,
    pub term_months: u32,
    pub id_number: IdNumber,
    pub phone: Phone,
    pub name: Option<String>,
    pub device_sku: String,
    pub imei: Imei,
    pub device_price: Amount,
    pub down_payment: Amount,
    pub consent: Option<Value>,
    pub region_code: Option<RegionCode>,
    pub agent_id: Option<String>,
}

#[tracing::instrument(skip_all, fields(product_id = %r.product_id))]
pub async fn place(state: &Deps, caller: &Principal, request: &IdempotentRequest, r: OrderRequest) -> ApiResult<Answer> {
    // Hashed and sealed once: a retried transaction reuses them.
    let customer = Customer::of(state, &r);
    match state.order_batcher.queue() {
        Some(queue) => batch::submit(state, queue, caller, request, r, customer).await,
        None => place_alone(state, &state.pool, caller, request, &r, &customer).await,
    }
}

/// One order in its own transaction: low load, batching off, and the fallback of a failed batch.
async fn place_alone(
    state: &Deps,
    pool: &deadpool_postgres::Pool,
    caller: &Principal,
    request: &IdempotentRequest,
    r: &OrderRequest,
    customer: &Customer,
) -> ApiResult<Answer> {
    let owner_scope = caller.scope();
    let laps = std::cell::RefCell::new(batch::Laps::start(state));
    let answer = idempotency::execute(
        pool,
        request,
        async |_tx: &Tx<'_>| Ok(()),
        async |tx: &Tx<'_>, ()| {
            // Before: the connection, BEGIN and the key's claim.
            laps.borrow_mut().lap("alone_claimed");
            let placed = place_in(state, tx, caller, &owner_scope, customer, r, &laps).await;
            laps.borrow_mut().lap("alone_applied");
            placed
        },
    )
    .await;
    // After: the answer stored for its key and the commit.
    laps.borrow_mut().lap("alone_committed");
    answer
}

/// The order's customer as the transaction uses it: never in clear.
struct Customer {
    id_hash: String,
    phone_hash: String,
    sealed: Vec<u8>,
}

impl Customer {
    fn of(state: &Deps, r: &OrderRequest) -> Customer {
        Customer {
            id_hash: state.pii.lookup_hash(r.id_number.as_str()),
            phone_hash: state.pii.lookup_hash(r.phone.as_str()),
            sealed: super::credit_lines::seal_identity(state, &r.id_number, &r.phone, r.name.as_deref()),
        }
    }
}

/// One placement in its transaction: load, decide (pure), reserve a bank, apply.
async fn place_in(
    state: &Deps,
    tx: &Tx<'_>,
    caller: &Principal,
    owner_scope: &str,
    customer: &Customer,
    r: &OrderRequest,
    laps: &std::cell::RefCell<batch::Laps<'_>>,
) -> ApiResult<(StatusCode, OrderView)> {
    let now = state.clock.now();
    let created_on = now.with_timezone(&SHANGHAI).date_naive();
    let loaded = load(tx, caller, owner_scope, r, &customer.id_hash, created_on).await?;
    laps.borrow_mut().lap("alone_loaded");
    let region = order_region(&loaded.seller, r)?;
    let funding_deadline = now + chrono::Duration::hours(i64::from(loaded.product.funding_timeout_hours));
    let decision = decide_placement(state, &loaded, r, &region, &customer.phone_hash, funding_deadline)?;
    let (bank_id, exposure_stripe) = reserve(tx, &loaded.routing, &decision.banks, loaded.principal).await?;
    laps.borrow_mut().lap("alone_reserved");
    let line = &loaded.lines[decision.line];
    let confirm_deadline = super::holds::confirm_deadline(loaded.confirming.get(&line.provider_id).copied(), now);
    let placing = Placing {
        r,
        owner_scope,
        sealed: &customer.sealed,
        loaded: &loaded,
        region: &region,
        line,
        bank_id: &bank_id,
        exposure_stripe,
        funding_deadline,
        confirm_deadline,
        created_on,
        apr_text: format_apr(loaded.priced.apr),
        imei_masked: r.imei.masked(),
        imei_hash: state.pii.lookup_hash(r.imei.as_str()),
        order_id: new_object_id("ord"),
        hold_id: new_object_id("hold"),
    };
    apply(tx, &placing).await
}

/// What one placement reads, checked as far as the seller.
struct Loaded {
    product: Product,
    priced: Priced,
    principal: Amount,
    seller: Seller,
    /// Every bank, in routing order.
    routing: Vec<banks::BankCandidate>,
    booked_on: NaiveDate,
    /// All the customer's lines, locked.
    lines: Vec<CreditLine>,
    /// The confirmation timeout of each provider that requires confirming holds (API.md §12).
    confirming: std::collections::HashMap<String, i32>,
}

/// Every independent read in one pipelined round trip, the customer's lines locked with them (all
/// of them: which providers count depends on the product and the seller); then the checks of §4
/// that come before the region.
async fn load(
    tx: &Tx<'_>,
    caller: &Principal,
    owner_scope: &str,
    r: &OrderRequest,
    id_hash: &str,
    created_on: NaiveDate,
) -> ApiResult<Loaded> {
    let (taken, product, seller, routing, booked_on, lines, confirming) = futures_util::try_join!(
        orders_db::out_order_no_taken(tx, owner_scope, &r.out_order_no),
        setup_db::get_product(tx, &r.product_id),
        read_seller(tx, caller),
        banks::routing_order(tx),
        db::business_days::booking_date(tx, created_on),
        credit_lines::lock_customer_lines(tx, id_hash),
        db::holds::confirming_providers(tx),
    )?;
    checked(Read { taken, product, seller, routing, booked_on, lines, confirming }, r, created_on)
}

/// The caller's store or partner record (`None`: it was deleted since its key was made).
async fn read_seller(tx: &Tx<'_>, caller: &Principal) -> Result<Option<Seller>, tokio_postgres::Error> {
    let id = caller.id().unwrap_or_default();
    Ok(match caller.kind() {
        PrincipalKind::Store => setup_db::get_store(tx, id).await?.map(Seller::Store),
        _ => setup_db::get_partner(tx, id).await?.map(Seller::Partner),
    })
}

/// What one placement read, before any check (alone, or its share of a batch's reads).
struct Read {
    taken: bool,
    product: Option<Product>,
    seller: Option<Seller>,
    routing: Vec<banks::BankCandidate>,
    booked_on: NaiveDate,
    lines: Vec<CreditLine>,
    confirming: std::collections::HashMap<String, i32>,
}

/// The checks of §4 that come before the region, in its order: out_order_no, product, term,
/// principal, and the seller itself.
fn checked(read: Read, r: &OrderRequest, created_on: NaiveDate) -> ApiResult<Loaded> {
    let Read { taken, product, seller, routing, booked_on, lines, confirming } = read;
    if taken {
        return Err(ApiError::already_exists("this out_order_no was already used").field("out_order_no"));
    }
    let product = product.ok_or_else(|| ApiError::new(ErrorCode::UnknownReference, "no such product").field("product_id"))?;
    let principal = r.device_price.checked_sub(r.down_payment);
    let priced = price(&product, r.term_months, principal, created_on)?;
    let principal = principal.expect("price() refuses a missing principal");
    let seller = seller.ok_or_else(ApiError::forbidden)?;
    Ok(Loaded { product, priced, principal, seller, routing, booked_on, lines, confirming })
}

/// The order's region: a store's own, the one a partner's order names.
fn order_region(seller: &Seller, r: &OrderRequest) -> ApiResult<RegionCode> {
    match seller {
        Seller::Store(store) => RegionCode::parse_order(&store.region_code)
            .map_err(|e| ApiError::internal_because(format!("Failed to read the stored region code of store {}", store.id), e)),
        // http::orders::place requires it of a partner; reaching here without it is a caller's bug.
        Seller::Partner(_) => r
            .region_code
            .clone()
            .ok_or_else(|| ApiError::internal_because("Failed to place an order", "a partner's order came without its region code")),
    }
}

/// The pure decision of §4 (region, partner, line, candidate banks) on what was loaded.
fn decide_placement(
    state: &Deps,
    loaded: &Loaded,
    r: &OrderRequest,
    region: &RegionCode,
    phone_hash: &str,
    funding_deadline: DateTime<Utc>,
) -> ApiResult<Decision> {
    let seller = match &loaded.seller {
        Seller::Store(_) => placement::Seller::Store,
        Seller::Partner(p) => placement::Seller::Partner(PartnerFacts {
            regions: &p.regions,
            authorized_providers: &p.authorized_providers,
            deposit_paid: p.deposit_paid,
            established_on: p.established_on,
            major_violation_last_year: p.major_violation_last_year,
            // Judged as GET /v1/admin/partners shows it.
            min_deposit: super::setup::partner_min_deposit(state),
            today: state.clock.today(),
        }),
    };
    let order = PricedOrder {
        region,
        product_regions: &loaded.product.regions,
        product_providers: &loaded.product.providers,
        term_months: r.term_months,
        apr: loaded.priced.apr,
        hold_amount: loaded.priced.hold_amount,
        funding_deadline_on: funding_deadline.with_timezone(&SHANGHAI).date_naive(),
    };
    let lines: Vec<LineFacts<'_>> = loaded
        .lines
        .iter()
        .map(|l| LineFacts {
            provider_id: &l.provider_id,
            status: l.status,
            phone_hash: &l.phone_hash,
            expires_on: l.expires_on,
            available: l.available(),
        })
        .collect();
    let banks: Vec<BankFacts<'_>> =
        loaded.routing.iter().map(|b| BankFacts { apr_min: b.apr_min, apr_max: b.apr_max, regions: b.regions.as_deref() }).collect();
    let input = Placement { seller, order, phone_hash, lines: &lines, banks: &banks };
    placement::decide(&input).map_err(|refusal| refused(refusal, region))
}

/// A placement's refusal as the API answers it.
fn refused(refusal: Refusal, region: &RegionCode) -> ApiError {
    match refusal {
        Refusal::RegionNotOpen => {
            ApiError::new(ErrorCode::RegionNotOpen, format!("the product is not open in region {}", region.as_str())).field("region_code")
        }
        Refusal::PartnerNotEligible(reasons) => {
            let reasons: Vec<&str> = reasons.iter().map(IneligibleReason::code).collect();
            ApiError::new(ErrorCode::PartnerNotEligible, format!("the partner may not take this order: {}", reasons.join(", ")))
                .details(json!({ "reasons": reasons }))
        }
        Refusal::NoMatchingCreditLine { hold_amount, valid_until_at_least } => ApiError::new(
            ErrorCode::NoMatchingCreditLine,
            "no credit line of this customer is active, registered with this phone, valid for the whole plan and with enough available",
        )
        .details(json!({ "hold_amount": hold_amount, "valid_until_at_least": valid_until_at_least })),
        Refusal::NoFundingBank => no_funding_bank(),
    }
}

fn no_funding_bank() -> ApiError {
    ApiError::new(ErrorCode::NoFundingBank, "no funding bank can take this order now")
}

/// Reserves the principal on the first of the candidate banks (indexes into `routing`, in routing
/// order) whose exposure has room: the bank's id and the stripe reserved on.
async fn reserve(tx: &Tx<'_>, routing: &[banks::BankCandidate], candidates: &[usize], principal: Amount) -> ApiResult<(String, i16)> {
    // A random first stripe spreads concurrent orders on one bank over its stripes.
    let start_stripe = rand::random::<u16>() as i16 & i16::MAX;
    for &i in candidates {
        let bank = &routing[i];
        if let Some(stripe) = banks::try_reserve(tx, &bank.id, principal, start_stripe % banks::STRIPES).await? {
            return Ok((bank.id.clone(), stripe));
        }
    }
    Err(no_funding_bank())
}

/// A decided and reserved placement: everything its writes need.
struct Placing<'a> {
    r: &'a OrderRequest,
    owner_scope: &'a str,
    sealed: &'a [u8],
    loaded: &'a Loaded,
    region: &'a RegionCode,
    line: &'a CreditLine,
    bank_id: &'a str,
    exposure_stripe: i16,
    /// The deadline line matching counted with; the order's own only when no confirmation is due.
    funding_deadline: DateTime<Utc>,
    /// Set when the line's provider must confirm the hold first (API.md §12).
    confirm_deadline: Option<DateTime<Utc>>,
    created_on: NaiveDate,
    apr_text: String,
    imei_masked: String,
    /// API.md §13: what a return's `imei` is compared with.
    imei_hash: String,
    order_id: String,
    hold_id: String,
}

/// Every write in one pipelined round trip; a refusal rolls them all back. This is the
/// reservation: the new hold, its amount added to the line's held and the exposure `reserve`
/// took, a separate mechanism from the `Effects` that every later balance change goes through,
/// so that placing an order stays one round trip under the locks it took while loading.
async fn apply(tx: &Tx<'_>, p: &Placing<'_>) -> ApiResult<(StatusCode, OrderView)> {
    let hold_amount = p.loaded.priced.hold_amount;
    let (new, entries, notices) = (new_order(p), placement_entries(p), placement_notices(p));
    let new_hold = new_hold(p);
    let ((), order, hold, after, (), ()) = futures_util::try_join!(
        banks::keep_reservation(tx),
        orders_db::insert(tx, &new),
        orders_db::insert_hold(tx, &new_hold),
        credit_lines::add_held(tx, &p.line.id, hold_amount),
        crate::db::journal::post_all(tx, &entries),
        record(tx, &notices),
    )?;
    let order = order.ok_or_else(|| ApiError::already_exists("this out_order_no was already used").field("out_order_no"))?;
    assert_eq!(after.held.fen(), p.line.held.fen() + hold_amount.fen(), "the hold is added to the line's held");
    assert_eq!(hold.remaining, hold_amount, "a new hold has all of its amount remaining");
    Ok((StatusCode::CREATED, order_view(order, hold, None)))
}

fn new_hold<'a>(p: &'a Placing<'a>) -> orders_db::NewHold<'a> {
    orders_db::NewHold {
        id: &p.hold_id,
        line_id: &p.line.id,
        provider_id: &p.line.provider_id,
        order_id: &p.order_id,
        amount: p.loaded.priced.hold_amount,
        confirm_deadline: p.confirm_deadline,
    }
}

fn new_order<'a>(p: &'a Placing<'a>) -> NewOrder<'a> {
    let (r, product, priced) = (p.r, &p.loaded.product, &p.loaded.priced);
    let (channel, seller_id) = p.loaded.seller.owner();
    NewOrder {
        id: &p.order_id,
        owner_scope: p.owner_scope,
        out_order_no: &r.out_order_no,
        channel,
        store_id: matches!(p.loaded.seller, Seller::Store(_)).then_some(seller_id),
        partner_id: matches!(p.loaded.seller, Seller::Partner(_)).then_some(seller_id),
        agent_id: r.agent_id.as_deref(),
        region_code: p.region.as_str(),
        product_id: &product.id,
        term_months: r.term_months as i32,
        pricing: priced.pricing.as_str(),
        rate: priced.rate.as_decimal(),
        hold_ratio: product.hold_ratio_decimal,
        grace_days: product.grace_days,
        penalty_daily_rate: product.penalty_daily_rate_decimal,
        partner_referral_fee: product.partner_referral_fee,
        principal: p.loaded.principal,
        apr_irr: &p.apr_text,
        device_sku: &r.device_sku,
        imei_masked: &p.imei_masked,
        device_price: r.device_price,
        down_payment: r.down_payment,
        consent: r.consent.as_ref(),
        identity_sealed: p.sealed,
        credit_line_id: &p.line.id,
        bank_id: p.bank_id,
        exposure_stripe: p.exposure_stripe,
        hold_id: &p.hold_id,
        // A hold awaiting confirmation starts no funding deadline: confirmation does (API.md §12).
        funding_deadline: p.confirm_deadline.is_none().then_some(p.funding_deadline),
        funding_timeout_hours: product.funding_timeout_hours,
        status: if p.confirm_deadline.is_some() { OrderStatus::AwaitingHoldConfirmation } else { OrderStatus::AwaitingFunding },
        created_on: p.created_on,
        imei_hash: &p.imei_hash,
        return_window_days: product.return_window_days,
    }
}

/// The hold moves the line's available to held; the bank's exposure takes the principal.
fn placement_entries(p: &Placing<'_>) -> [Entry; 2] {
    let (line_id, hold_id, bank_id) = (&p.line.id, &p.hold_id, p.bank_id);
    let refs = Refs::new().order(&p.order_id).hold(hold_id).line(line_id).bank(bank_id);
    let amount = p.loaded.priced.hold_amount.fen();
    let mut placed = Entry::new("hold.placed", p.loaded.booked_on, refs.clone());
    placed.transfer(account::line_available(line_id), account::line_held(line_id), amount).transfer(
        account::hold_origin(hold_id),
        account::hold_remaining(hold_id),
        amount,
    );
    let mut reserved = Entry::new("exposure.reserved", p.loaded.booked_on, refs);
    reserved.transfer(account::bank_exposure_source(bank_id), account::bank_exposure(bank_id), p.loaded.principal.fen());
    [placed, reserved]
}

/// `funding.requested` to the bank, `hold.placed` to the provider, `order.updated` to the seller;
/// when the provider must confirm first, `hold.requested` to it, `order.updated`, and nothing to
/// the bank yet (API.md §12).
fn placement_notices(p: &Placing<'_>) -> Vec<Notice> {
    let (r, principal, hold_amount) = (p.r, p.loaded.principal, p.loaded.priced.hold_amount);
    let (channel, seller_id) = p.loaded.seller.owner();
    let refs = OrderRefs::unfunded(&p.order_id, &p.hold_id, &p.line.id);
    if let Some(confirm_deadline) = p.confirm_deadline {
        let requested = HoldRequested { amount: hold_amount, confirm_deadline, consent: r.consent.clone() };
        return vec![
            Notice::HoldRequested(refs.about(Recipient::Provider(p.line.provider_id.clone()), requested)),
            Notice::order_updated(&refs, Recipient::seller(channel, seller_id), &r.out_order_no, OrderStatus::AwaitingHoldConfirmation),
        ];
    }
    let funding = FundingRequested {
        amount: principal,
        principal,
        term_months: r.term_months,
        apr_irr: p.apr_text.clone(),
        funding_deadline: p.funding_deadline,
    };
    vec![
        Notice::FundingRequested(refs.about(Recipient::Bank(p.bank_id.to_string()), funding)),
        Notice::HoldPlaced(Notice::hold_moved(&refs, &p.line.provider_id, hold_amount, hold_amount)),
        Notice::order_updated(&refs, Recipient::seller(channel, seller_id), &r.out_order_no, OrderStatus::AwaitingFunding),
    ]
}

#[derive(Clone)]
enum Seller {
    Store(setup_db::Store),
    Partner(setup_db::Partner),
}

impl Seller {
    /// The order's channel and its seller's id: who the order and its notices belong to.
    fn owner(&self) -> (&'static str, &str) {
        match self {
            Seller::Store(s) => ("store", &s.id),
            Seller::Partner(p) => ("partner", &p.id),
        }
    }
}

// ---------- reading ----------

#[tracing::instrument(skip_all, fields(order_id = %id))]
pub async fn get(state: &Deps, caller: &Principal, id: &str) -> ApiResult<OrderView> {
    let mut client = state.pool.get().await?;
    let tx = Tx::snapshot(&mut client).await?;
    let o = orders_db::get(&tx, id).await?.filter(|o| can_see(caller, o)).ok_or_else(ApiError::not_found)?;
    let view = load_view(&tx, o).await?;
    tx.commit().await?;
    Ok(view)
}

#[tracing::instrument(skip_all)]
pub async fn list(
    state: &Deps,
    caller: &Principal,
    status: Option<OrderStatus>,
    before_seq: i64,
    limit: i64,
) -> ApiResult<(Vec<OrderView>, Option<i64>)> {
    let mut client = state.pool.get().await?;
    let tx = Tx::snapshot(&mut client).await?;
    let scope_text = caller.scope();
    let scope = match caller.kind() {
        PrincipalKind::Admin => Scope::All,
        PrincipalKind::Bank => Scope::Bank(caller.id().unwrap_or_default()),
        _ => Scope::Owner(&scope_text),
    };
    let mut rows = orders_db::list(&tx, scope, status, before_seq, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(|o| o.seq) } else { None };
    let mut out = Vec::with_capacity(rows.len());
    for o in rows {
        out.push(load_view(&tx, o).await?);
    }
    tx.commit().await?;
    Ok((out, next))
}

#[tracing::instrument(skip_all, fields(hold_id = %id))]
pub async fn get_hold(state: &Deps, caller: &Principal, id: &str) -> ApiResult<Hold> {
    let client = state.pool.get().await?;
    let hold = orders_db::get_hold(&**client, id).await?.ok_or_else(ApiError::not_found)?;
    if caller.is_admin() || caller.is(PrincipalKind::Provider, &hold.provider_id) {
        return Ok(hold);
    }
    let order = orders_db::get(&**client, &hold.order_id).await?.ok_or_else(ApiError::not_found)?;
    if caller.kind() != PrincipalKind::Provider && can_see(caller, &order) { Ok(hold) } else { Err(ApiError::not_found()) }
}

/// The borrower in clear for the order's funding bank; every read is written to the audit log.
#[tracing::instrument(skip_all, fields(order_id = %id))]
pub async fn borrower(state: &Deps, caller: &Principal, id: &str, request_id: &str) -> ApiResult<Value> {
    let client = state.pool.get().await?;
    let o = orders_db::get(&**client, id)
        .await?
        .filter(|o| caller.is(PrincipalKind::Bank, &o.bank_id) && o.shown_to_bank())
        .ok_or_else(ApiError::not_found)?;
    let sealed = orders_db::sealed_identity(&**client, id).await?.ok_or_else(ApiError::not_found)?;
    let plain = state.pii.decrypt(&sealed).ok_or_else(|| {
        ApiError::internal_because(
            format!("Failed to decrypt the borrower of order {}", o.id),
            "the sealed identity does not open with the configured key",
        )
    })?;
    // serde_json's syntax errors name a position, never the text: the identity stays out of the log.
    let identity: Value = serde_json::from_slice(&plain)
        .map_err(|e| ApiError::internal_because(format!("Failed to parse the decrypted borrower of order {}", o.id), e))?;
    db::audit::record_borrower_read(&**client, &caller.scope(), &o.id, request_id).await?;
    tracing::info!(order_id = %o.id, actor = %caller.scope(), "borrower identity read");
    Ok(identity)
}

// ---------- cancel, fund, reject ----------

/// Voids what is left of the hold and frees the bank's exposure: cancellation, rejection, expiry.
/// Written through [`Effects`] like every balance change; answers the hold as written.
pub async fn unwind(tx: &Tx<'_>, order: &Order, reason: VoidReason, kind: &'static str, booked_on: NaiveDate) -> ApiResult<Hold> {
    let before = orders_db::lock_hold(tx, &order.hold_id).await?;
    let mut fx = Effects::default();
    fx.void(order, &before, reason, kind, booked_on);
    let mut applied = fx.apply(tx).await?;
    let hold = applied.holds.remove(&before.id).expect("apply wrote the hold it voided");
    assert!(hold.remaining.is_zero() && hold.status == HoldStatus::Voided, "an unwound hold is voided to zero");
    Ok(hold)
}

/// Finds the order for a write: 404 unless the caller may act on it.
async fn visible_order(tx: &Tx<'_>, id: &str, allowed: impl Fn(&Order) -> bool) -> ApiResult<()> {
    match orders_db::get(tx, id).await? {
        Some(o) if allowed(&o) => Ok(()),
        _ => Err(ApiError::not_found()),
    }
}

/// A seller's cancellations against one customer within `PROBE_WINDOW_HOURS` from which each
/// further one is counted as suspected probing: placing and cancelling at bisected prices reads a
/// line's available credit in about 21 tries (half of them cancelled), while a customer who
/// changes their mind at the counter accounts for one or two.
const PROBE_THRESHOLD: i64 = 3;
const PROBE_WINDOW_HOURS: i32 = 24;

#[tracing::instrument(skip_all, fields(order_id = %id))]
pub async fn cancel(state: &Deps, caller: &Principal, id: &str, request: &IdempotentRequest, reason: Option<String>) -> ApiResult<Answer> {
    let scope = caller.scope();
    // What the committed attempt found of the seller's recent cancellations (a rerun overwrites it).
    let recent = std::sync::Mutex::new(None);
    let answer = idempotency::execute(
        &state.pool,
        request,
        async |tx: &Tx<'_>| {
            visible_order(tx, id, |o| caller.is_admin() || o.owner_scope == scope).await?;
            // Past its confirm deadline a pending hold is no longer pending (API.md §12): the
            // request times it out itself, and is refused below.
            if let Some(o) = orders_db::get(tx, id).await? {
                let hold = orders_db::get_hold(tx, &o.hold_id).await?;
                if let Some(hold) = hold {
                    super::holds::time_out_if_due(tx, &hold, state.clock.now()).await?;
                }
            }
            Ok(())
        },
        async |tx: &Tx<'_>, ()| {
            let order = orders_db::lock(tx, id).await?.ok_or_else(ApiError::not_found)?;
            if !matches!(order.status, OrderStatus::AwaitingFunding | OrderStatus::AwaitingHoldConfirmation) {
                return Err(ApiError::invalid_state(format!(
                    "only an order awaiting funding or its hold's confirmation can be cancelled; this one is {}",
                    order.status
                )));
            }
            let today = state.clock.today();
            let booked_on = db::business_days::booking_date(tx, today).await?;
            let order = cancel_locked(tx, order, reason.as_deref(), today, booked_on).await?;
            if !caller.is_admin() {
                let (customer_hash, count) =
                    orders_db::recent_cancellations(tx, &scope, &order.credit_line_id, PROBE_WINDOW_HOURS, 100).await?;
                let found = RecentCancellations { order_id: order.id.clone(), line_id: order.credit_line_id.clone(), customer_hash, count };
                *recent.lock().unwrap_or_else(|e| e.into_inner()) = Some(found);
            }
            Ok((StatusCode::OK, load_view(tx, order).await?))
        },
    )
    .await?;
    if answer.replayed_request_id.is_none() {
        flag_probing(state, &scope, recent.into_inner().unwrap_or_else(|e| e.into_inner()));
    }
    Ok(answer)
}

/// Cancels the locked order: its hold voided, its exposure freed; the bank told only of an order
/// it was shown (a pending one never existed for it, API.md §12), the provider and the owner.
async fn cancel_locked(tx: &Tx<'_>, order: Order, reason: Option<&str>, today: NaiveDate, booked_on: NaiveDate) -> ApiResult<Order> {
    let shown = order.shown_to_bank();
    let kind = if shown { "exposure.released" } else { super::holds::UNCONFIRMED_RELEASE };
    let hold = unwind(tx, &order, VoidReason::Cancelled, kind, booked_on).await?;
    let order = orders_db::set_status(tx, &order.id, OrderStatus::Cancelled, reason, Some(today)).await?;
    let refs = OrderRefs::of_order(&order);
    let mut notices = Vec::with_capacity(3);
    if shown {
        let cancelled = OrderCancelled { amount: order.principal, reason: order.reason.clone() };
        notices.push(Notice::OrderCancelled(refs.about(Recipient::Bank(order.bank_id.clone()), cancelled)));
    }
    notices.extend([hold_voided(&refs, &hold), order_updated(&refs, &order)]);
    record(tx, &notices).await?;
    Ok(order)
}

/// What a seller's cancellation found of that seller's recent ones against the same customer.
struct RecentCancellations {
    order_id: String,
    line_id: String,
    customer_hash: String,
    count: i64,
}

/// Counts and logs a committed cancellation at or past `PROBE_THRESHOLD`. The customer is named
/// by a prefix of the keyed hash only: enough to follow one customer across lines and warnings,
/// nothing to read an identity from.
fn flag_probing(state: &Deps, seller: &str, recent: Option<RecentCancellations>) {
    let Some(r) = recent.filter(|r| r.count >= PROBE_THRESHOLD) else { return };
    state.metrics.order_probes_suspected.inc();
    tracing::warn!(
        seller,
        order_id = r.order_id,
        credit_line_id = r.line_id,
        customer_ref = &r.customer_hash[..r.customer_hash.len().min(16)],
        cancellations = r.count,
        window_hours = PROBE_WINDOW_HOURS,
        "a seller keeps placing and cancelling orders against one customer: probing the customer's credit?"
    );
}

pub enum FundingDecision {
    Approved { loan_no: String, funded_on: NaiveDate },
    Rejected { reason: String },
}

#[tracing::instrument(skip_all, fields(order_id = %id))]
pub async fn fund(state: &Deps, caller: &Principal, id: &str, request: &IdempotentRequest, decision: FundingDecision) -> ApiResult<Answer> {
    idempotency::execute(
        &state.pool,
        request,
        async |tx: &Tx<'_>| visible_order(tx, id, |o| caller.is(PrincipalKind::Bank, &o.bank_id) && o.shown_to_bank()).await,
        async |tx: &Tx<'_>, ()| {
            if let FundingDecision::Approved { loan_no, .. } = &decision {
                let bank_id = caller.id().unwrap_or_default();
                if plans::loan_no_taken(tx, bank_id, loan_no).await? {
                    return Err(ApiError::already_exists("this bank already used this loan_no").field("loan_no"));
                }
            }
            let order = orders_db::lock(tx, id).await?.ok_or_else(ApiError::not_found)?;
            if order.status != OrderStatus::AwaitingFunding {
                return Err(ApiError::invalid_state(format!("the order is {}, not awaiting funding", order.status)));
            }
            if state.clock.now() > funding_deadline(&order)? {
                return Err(ApiError::invalid_state("the funding deadline has passed"));
            }
            match &decision {
                FundingDecision::Approved { loan_no, funded_on } => approve(tx, order, loan_no, *funded_on).await,
                FundingDecision::Rejected { reason } => reject(tx, order, reason, state.clock.today()).await,
            }
        },
    )
    .await
}

/// The deadline of an order awaiting funding: every such order has one (placed without
/// confirmation, or confirmed).
fn funding_deadline(order: &Order) -> ApiResult<DateTime<Utc>> {
    order.funding_deadline.ok_or_else(|| {
        ApiError::internal_because("Failed to decide funding", format!("order {} awaits funding without a deadline", order.id))
    })
}

async fn approve(tx: &Tx<'_>, order: Order, loan_no: &str, funded_on: NaiveDate) -> ApiResult<(StatusCode, OrderView)> {
    let deadline_date = funding_deadline(&order)?.with_timezone(&SHANGHAI).date_naive();
    if funded_on < order.created_on || funded_on > deadline_date {
        return Err(ApiError::new(ErrorCode::InvalidDate, format!("funded_on must be from {} to {}", order.created_on, deadline_date))
            .field("funded_on"));
    }
    // The order was priced when placed; failing now means its stored terms are corrupt.
    let context = || format!("Failed to build the schedule of order {}", order.id);
    let pricing = Pricing::parse(&order.pricing).map_err(|e| ApiError::internal_because(context(), e))?;
    let rate = Rate::try_from_decimal(order.rate.normalize()).map_err(|e| ApiError::internal_because(context(), e))?;
    let schedule = build_schedule(order.principal, order.term_months as u32, pricing, rate, funded_on)
        .map_err(|e| ApiError::internal_because(context(), e))?;
    let plan_id = new_object_id("plan");
    let new = plans::NewPlan {
        id: &plan_id,
        order_id: &order.id,
        bank_id: &order.bank_id,
        loan_no,
        principal: order.principal,
        pricing: &order.pricing,
        rate: order.rate,
        apr_irr: &order.apr_irr,
        term_months: order.term_months,
        funded_on,
    };
    plans::insert(tx, &new, &schedule)
        .await?
        .ok_or_else(|| ApiError::already_exists("this bank already used this loan_no").field("loan_no"))?;
    let booked_on = db::business_days::booking_date(tx, funded_on).await?;
    let refs = Refs::new().order(&order.id).plan(&plan_id).bank(&order.bank_id).reference(loan_no);
    let mut e = Entry::new("plan.opened", booked_on, refs);
    e.transfer(account::bank_funded(&order.bank_id), account::plan_principal(&plan_id), order.principal.fen());
    e.post(tx).await?;
    let order = orders_db::set_status(tx, &order.id, OrderStatus::Active, None, None).await?;
    let refs = OrderRefs::of_order(&order).funded(&plan_id, loan_no);
    record(
        tx,
        &[
            Notice::PlanOpened(refs.about(
                Recipient::Bank(order.bank_id.clone()),
                PlanOpened { amount: order.principal, principal: order.principal, funded_on },
            )),
            order_updated(&refs, &order),
        ],
    )
    .await?;
    Ok((StatusCode::OK, load_view(tx, order).await?))
}

async fn reject(tx: &Tx<'_>, order: Order, reason: &str, today: NaiveDate) -> ApiResult<(StatusCode, OrderView)> {
    let booked_on = db::business_days::booking_date(tx, today).await?;
    let hold = unwind(tx, &order, VoidReason::Rejected, "exposure.released", booked_on).await?;
    let order = orders_db::set_status(tx, &order.id, OrderStatus::Rejected, Some(reason), Some(today)).await?;
    let refs = OrderRefs::of_order(&order);
    record(tx, &[hold_voided(&refs, &hold), order_updated(&refs, &order)]).await?;
    Ok((StatusCode::OK, load_view(tx, order).await?))
}
