//! Orders and their holds.

use super::Db;
use super::Tx;
use crate::domain::money::Amount;
use crate::domain::status::{DeclineReason, HoldStatus, OrderStatus, VoidReason};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use std::collections::BTreeMap;
use tokio_postgres::Row;

#[derive(Debug, Clone)]
pub struct Order {
    pub id: String,
    pub seq: i64,
    pub owner_scope: String,
    pub out_order_no: String,
    pub channel: String,
    pub store_id: Option<String>,
    pub partner_id: Option<String>,
    pub agent_id: Option<String>,
    pub region_code: String,
    pub product_id: String,
    pub term_months: i32,
    pub pricing: String,
    pub rate: Decimal,
    pub hold_ratio: Decimal,
    pub grace_days: i32,
    pub penalty_daily_rate: Decimal,
    pub partner_referral_fee: Amount,
    pub principal: Amount,
    pub apr_irr: String,
    pub device_sku: String,
    pub imei_masked: String,
    pub device_price: Amount,
    pub down_payment: Amount,
    pub consent: Option<Value>,
    pub credit_line_id: String,
    pub bank_id: String,
    pub exposure_stripe: i16,
    pub hold_id: String,
    /// `None` while the hold awaits its provider's confirmation (API.md §12), and for ever after
    /// when it was never confirmed: such an order was never shown to its bank.
    pub funding_deadline: Option<DateTime<Utc>>,
    /// The product's funding timeout when the order was placed (null on orders placed before
    /// version 2): a confirmed order's funding deadline runs from its confirmation for this long.
    pub funding_timeout_hours: Option<i32>,
    pub status: OrderStatus,
    pub reason: Option<String>,
    pub created_on: NaiveDate,
    pub decided_on: Option<NaiveDate>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Order {
    /// Does the order exist for its bank? Only once its hold was placed without confirmation or
    /// confirmed, i.e. once it has a funding deadline (API.md §12).
    pub fn shown_to_bank(&self) -> bool {
        self.funding_deadline.is_some()
    }
}

const ORDER_COLUMNS: &str = "id, seq, owner_scope, out_order_no, channel, store_id, partner_id, agent_id, region_code, product_id,
    term_months, pricing, rate, hold_ratio, grace_days, penalty_daily_rate, partner_referral_fee_fen, principal_fen, apr_irr,
    device_sku, imei_masked, device_price_fen, down_payment_fen, consent, credit_line_id, bank_id, exposure_stripe, hold_id,
    funding_deadline, funding_timeout_hours, status, reason, created_on, decided_on, created_at, updated_at";

fn order(r: &Row) -> Order {
    Order {
        id: r.get("id"),
        seq: r.get("seq"),
        owner_scope: r.get("owner_scope"),
        out_order_no: r.get("out_order_no"),
        channel: r.get("channel"),
        store_id: r.get("store_id"),
        partner_id: r.get("partner_id"),
        agent_id: r.get("agent_id"),
        region_code: r.get("region_code"),
        product_id: r.get("product_id"),
        term_months: r.get("term_months"),
        pricing: r.get("pricing"),
        rate: r.get("rate"),
        hold_ratio: r.get("hold_ratio"),
        grace_days: r.get("grace_days"),
        penalty_daily_rate: r.get("penalty_daily_rate"),
        partner_referral_fee: Amount::from_fen(r.get("partner_referral_fee_fen")),
        principal: Amount::from_fen(r.get("principal_fen")),
        apr_irr: r.get("apr_irr"),
        device_sku: r.get("device_sku"),
        imei_masked: r.get("imei_masked"),
        device_price: Amount::from_fen(r.get("device_price_fen")),
        down_payment: Amount::from_fen(r.get("down_payment_fen")),
        consent: r.get("consent"),
        credit_line_id: r.get("credit_line_id"),
        bank_id: r.get("bank_id"),
        exposure_stripe: r.get("exposure_stripe"),
        hold_id: r.get::<_, Option<String>>("hold_id").unwrap_or_default(),
        funding_deadline: r.get("funding_deadline"),
        funding_timeout_hours: r.get("funding_timeout_hours"),
        status: r.get("status"),
        reason: r.get("reason"),
        created_on: r.get("created_on"),
        decided_on: r.get("decided_on"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

pub struct NewOrder<'a> {
    pub id: &'a str,
    pub owner_scope: &'a str,
    pub out_order_no: &'a str,
    pub channel: &'a str,
    pub store_id: Option<&'a str>,
    pub partner_id: Option<&'a str>,
    pub agent_id: Option<&'a str>,
    pub region_code: &'a str,
    pub product_id: &'a str,
    pub term_months: i32,
    pub pricing: &'a str,
    pub rate: Decimal,
    pub hold_ratio: Decimal,
    pub grace_days: i32,
    pub penalty_daily_rate: Decimal,
    pub partner_referral_fee: Amount,
    pub principal: Amount,
    pub apr_irr: &'a str,
    pub device_sku: &'a str,
    pub imei_masked: &'a str,
    pub device_price: Amount,
    pub down_payment: Amount,
    pub consent: Option<&'a Value>,
    pub identity_sealed: &'a [u8],
    pub credit_line_id: &'a str,
    pub bank_id: &'a str,
    pub exposure_stripe: i16,
    pub hold_id: &'a str,
    pub funding_deadline: Option<DateTime<Utc>>,
    pub funding_timeout_hours: i32,
    pub status: OrderStatus,
    pub created_on: NaiveDate,
    /// API.md §13: the device's IMEI as a keyed hash, and the product's return window as placed.
    pub imei_hash: &'a str,
    pub return_window_days: i32,
}

impl NewOrder<'_> {
    /// The row [`insert`] writes, as its `RETURNING` answers it, for a transaction whose `now()`
    /// is `now` (`created_at` and `updated_at` take it): an answer can be built before the row
    /// is written, and checked against the row once it is. `seq` is the identity's, known only
    /// once inserted: 0 here (no view shows it).
    pub fn as_inserted(&self, now: DateTime<Utc>) -> Order {
        Order {
            id: self.id.to_string(),
            seq: 0,
            owner_scope: self.owner_scope.to_string(),
            out_order_no: self.out_order_no.to_string(),
            channel: self.channel.to_string(),
            store_id: self.store_id.map(str::to_string),
            partner_id: self.partner_id.map(str::to_string),
            agent_id: self.agent_id.map(str::to_string),
            region_code: self.region_code.to_string(),
            product_id: self.product_id.to_string(),
            term_months: self.term_months,
            pricing: self.pricing.to_string(),
            rate: self.rate,
            hold_ratio: self.hold_ratio,
            grace_days: self.grace_days,
            penalty_daily_rate: self.penalty_daily_rate,
            partner_referral_fee: self.partner_referral_fee,
            principal: self.principal,
            apr_irr: self.apr_irr.to_string(),
            device_sku: self.device_sku.to_string(),
            imei_masked: self.imei_masked.to_string(),
            device_price: self.device_price,
            down_payment: self.down_payment,
            consent: self.consent.cloned(),
            credit_line_id: self.credit_line_id.to_string(),
            bank_id: self.bank_id.to_string(),
            exposure_stripe: self.exposure_stripe,
            hold_id: self.hold_id.to_string(),
            funding_deadline: self.funding_deadline.map(as_stored),
            funding_timeout_hours: Some(self.funding_timeout_hours),
            status: self.status,
            reason: None,
            created_on: self.created_on,
            decided_on: None,
            created_at: as_stored(now),
            updated_at: as_stored(now),
        }
    }
}

/// A time as a `timestamptz` keeps it: whole microseconds (the driver truncates the rest).
fn as_stored(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::Timelike;
    t.with_nanosecond(t.nanosecond() / 1000 * 1000).unwrap_or(t)
}

/// Inserts; `None` when the caller already used this `out_order_no`.
pub async fn insert(tx: &Tx<'_>, o: &NewOrder<'_>) -> Result<Option<Order>, tokio_postgres::Error> {
    let row = tx
        .query_opt(
            &format!(
                "INSERT INTO orders (id, owner_scope, out_order_no, channel, store_id, partner_id, agent_id, region_code, product_id,
                     term_months, pricing, rate, hold_ratio, grace_days, penalty_daily_rate, partner_referral_fee_fen, principal_fen,
                     apr_irr, device_sku, imei_masked, device_price_fen, down_payment_fen, consent, identity_sealed, credit_line_id,
                     bank_id, hold_id, funding_deadline, status, created_on, exposure_stripe, funding_timeout_hours, imei_hash,
                     return_window_days)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24,
                     $25, $26, $27, $28, $31, $29, $30, $32, $33, $34)
                 ON CONFLICT ON CONSTRAINT orders_out_order_no_unique DO NOTHING
                 RETURNING {ORDER_COLUMNS}"
            ),
            &[
                &o.id,
                &o.owner_scope,
                &o.out_order_no,
                &o.channel,
                &o.store_id,
                &o.partner_id,
                &o.agent_id,
                &o.region_code,
                &o.product_id,
                &o.term_months,
                &o.pricing,
                &o.rate,
                &o.hold_ratio,
                &o.grace_days,
                &o.penalty_daily_rate,
                &o.partner_referral_fee.fen(),
                &o.principal.fen(),
                &o.apr_irr,
                &o.device_sku,
                &o.imei_masked,
                &o.device_price.fen(),
                &o.down_payment.fen(),
                &o.consent,
                &o.identity_sealed,
                &o.credit_line_id,
                &o.bank_id,
                &o.hold_id,
                &o.funding_deadline,
                &o.created_on,
                &o.exposure_stripe,
                &o.status,
                &o.funding_timeout_hours,
                &o.imei_hash,
                &o.return_window_days,
            ],
        )
        .await?;
    Ok(row.as_ref().map(order))
}

/// Which of `(owner_scope, out_order_no)` pairs an order already uses.
pub async fn out_order_nos_taken(c: &impl Db, pairs: &[(&str, &str)]) -> Result<Vec<(String, String)>, tokio_postgres::Error> {
    let scopes: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    let nos: Vec<&str> = pairs.iter().map(|p| p.1).collect();
    let rows = c
        .query(
            "SELECT o.owner_scope, o.out_order_no FROM orders o
             JOIN unnest($1::text[], $2::text[]) AS t(scope, no) ON o.owner_scope = t.scope AND o.out_order_no = t.no",
            &[&scopes, &nos],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub async fn out_order_no_taken(c: &impl Db, owner_scope: &str, out_order_no: &str) -> Result<bool, tokio_postgres::Error> {
    Ok(c.query_opt("SELECT 1 FROM orders WHERE owner_scope = $1 AND out_order_no = $2", &[&owner_scope, &out_order_no]).await?.is_some())
}

pub async fn get(c: &impl Db, id: &str) -> Result<Option<Order>, tokio_postgres::Error> {
    Ok(c.query_opt(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"), &[&id]).await?.as_ref().map(order))
}

pub async fn lock(tx: &Tx<'_>, id: &str) -> Result<Option<Order>, tokio_postgres::Error> {
    Ok(tx.query_opt(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 FOR UPDATE"), &[&id]).await?.as_ref().map(order))
}

/// Locks an order by its hold (the order first, then the hold: the lock order of every write on an
/// unfunded order), answering both; `None` when no such hold.
pub async fn lock_by_hold(tx: &Tx<'_>, hold_id: &str) -> Result<Option<(Order, Hold)>, tokio_postgres::Error> {
    let Some(row) = tx.query_opt("SELECT order_id FROM holds WHERE id = $1", &[&hold_id]).await? else { return Ok(None) };
    let order_id: String = row.get(0);
    let Some(order) = lock(tx, &order_id).await? else { return Ok(None) };
    Ok(Some((order, lock_hold(tx, hold_id).await?)))
}

/// The order's funding deadline starts (its provider confirmed the hold, API.md §12): it now
/// awaits funding and exists for its bank.
pub async fn await_funding(tx: &Tx<'_>, id: &str, funding_deadline: DateTime<Utc>) -> Result<Order, tokio_postgres::Error> {
    let row = tx
        .query_one(
            &format!(
                "UPDATE orders SET status = 'awaiting_funding', funding_deadline = $2, updated_at = now()
                 WHERE id = $1 AND status = 'awaiting_hold_confirmation' RETURNING {ORDER_COLUMNS}"
            ),
            &[&id, &funding_deadline],
        )
        .await?;
    Ok(order(&row))
}

pub async fn sealed_identity(c: &impl Db, id: &str) -> Result<Option<Vec<u8>>, tokio_postgres::Error> {
    Ok(c.query_opt("SELECT identity_sealed FROM orders WHERE id = $1", &[&id]).await?.map(|r| r.get(0)))
}

pub async fn set_status(
    tx: &Tx<'_>,
    id: &str,
    status: OrderStatus,
    reason: Option<&str>,
    decided_on: Option<NaiveDate>,
) -> Result<Order, tokio_postgres::Error> {
    let row = tx
        .query_one(
            &format!(
                "UPDATE orders SET status = $2, reason = coalesce($3, reason), decided_on = coalesce($4, decided_on), updated_at = now()
                 WHERE id = $1 RETURNING {ORDER_COLUMNS}"
            ),
            &[&id, &status, &reason, &decided_on],
        )
        .await?;
    Ok(order(&row))
}

/// Sets several orders' statuses in one statement (`statuses[i]` is `ids[i]`'s).
pub async fn set_statuses(tx: &Tx<'_>, ids: &[&str], statuses: &[OrderStatus]) -> Result<(), tokio_postgres::Error> {
    super::set_statuses(tx, "orders", ids, statuses).await
}

/// An order's terms as a funded plan's life uses them, read with the plan.
#[derive(Debug, Clone)]
pub struct PlanTerms {
    pub order_id: String,
    pub store_id: Option<String>,
    pub partner_id: Option<String>,
    pub out_order_no: String,
    pub hold_id: String,
    pub hold_ratio: Decimal,
    pub penalty_daily_rate: Decimal,
    pub grace_days: i32,
    pub exposure_stripe: i16,
}

/// The terms of the orders of these plans (one each: plans.order_id is unique).
pub async fn terms_of_plans(tx: &Tx<'_>, plan_ids: &[String]) -> Result<Vec<PlanTerms>, tokio_postgres::Error> {
    let rows = tx
        .query(
            "SELECT o.id, o.store_id, o.partner_id, o.out_order_no, o.hold_id, o.hold_ratio, o.penalty_daily_rate, o.grace_days,
                    o.exposure_stripe
             FROM orders o JOIN plans p ON p.order_id = o.id WHERE p.id = ANY($1)",
            &[&plan_ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|o| PlanTerms {
            order_id: o.get(0),
            store_id: o.get(1),
            partner_id: o.get(2),
            out_order_no: o.get(3),
            hold_id: o.get(4),
            hold_ratio: o.get(5),
            penalty_daily_rate: o.get(6),
            grace_days: o.get(7),
            exposure_stripe: o.get(8),
        })
        .collect())
}

/// The daily penalty rate the order was placed with.
pub async fn penalty_daily_rate(c: &impl Db, id: &str) -> Result<Decimal, tokio_postgres::Error> {
    Ok(c.query_one("SELECT penalty_daily_rate FROM orders WHERE id = $1", &[&id]).await?.get(0))
}

/// The orders still awaiting funding whose deadline is before `date` begins (Asia/Shanghai), in
/// creation order: what end of day for `date` expires. Read without locks.
pub async fn expirable(c: &impl Db, date: NaiveDate) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT id FROM orders WHERE status = 'awaiting_funding'
               AND funding_deadline < ($1::date::timestamp AT TIME ZONE 'Asia/Shanghai')
             ORDER BY seq",
            &[&date],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Locks those of `ids` that are still expirable on `date`, in creation order, and answers them.
/// It waits for a cancellation or funding decision in flight, then finds the order decided.
pub async fn lock_expirable(tx: &Tx<'_>, ids: &[String], date: NaiveDate) -> Result<Vec<Order>, tokio_postgres::Error> {
    let rows = tx
        .query(
            &format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE id = ANY($1) AND status = 'awaiting_funding'
                   AND funding_deadline < ($2::date::timestamp AT TIME ZONE 'Asia/Shanghai')
                 ORDER BY seq FOR UPDATE"
            ),
            &[&ids, &date],
        )
        .await?;
    Ok(rows.iter().map(order).collect())
}

/// The keyed ID-number hash of the customer of `line_id`, and how many of the seller's orders on
/// that customer's lines (one per provider) were cancelled within the last `hours`, counted up to
/// `cap` (index `orders_cancelled_by_seller`).
pub async fn recent_cancellations(
    tx: &Tx<'_>,
    owner_scope: &str,
    line_id: &str,
    hours: i32,
    cap: i64,
) -> Result<(String, i64), tokio_postgres::Error> {
    let row = tx
        .query_one(
            "WITH customer AS (SELECT id_number_hash FROM credit_lines WHERE id = $2)
             SELECT c.id_number_hash,
                    (SELECT count(*) FROM (
                        SELECT 1 FROM orders o
                        WHERE o.status = 'cancelled' AND o.owner_scope = $1
                          AND o.credit_line_id IN (SELECT l.id FROM credit_lines l WHERE l.id_number_hash = c.id_number_hash)
                          AND o.updated_at > now() - make_interval(hours => $3)
                        LIMIT $4) AS recent)
             FROM customer c",
            &[&owner_scope, &line_id, &hours, &cap],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Whose orders a list shows.
pub enum Scope<'a> {
    All,
    Owner(&'a str),
    Bank(&'a str),
}

/// Newest first, before `before_seq` (0: from the newest).
pub async fn list(
    c: &impl Db,
    scope: Scope<'_>,
    status: Option<OrderStatus>,
    before_seq: i64,
    limit: i64,
) -> Result<Vec<Order>, tokio_postgres::Error> {
    let before = if before_seq <= 0 { i64::MAX } else { before_seq };
    let (filter, who): (&str, Option<&str>) = match scope {
        Scope::All => ("true", None),
        Scope::Owner(s) => ("owner_scope = $4", Some(s)),
        // An order never confirmed by its provider does not exist for its bank (API.md §12).
        Scope::Bank(b) => ("bank_id = $4 AND funding_deadline IS NOT NULL", Some(b)),
    };
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE seq < $1 AND ($2::text IS NULL OR status = $2) AND {filter}
         ORDER BY seq DESC LIMIT $3"
    );
    let rows = match who {
        Some(w) => c.query(&sql, &[&before, &status, &limit, &w]).await?,
        None => c.query(&sql, &[&before, &status, &limit]).await?,
    };
    Ok(rows.iter().map(order).collect())
}

// ---------- holds ----------

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Hold {
    pub id: String,
    pub credit_line_id: String,
    pub provider_id: String,
    pub order_id: String,
    pub amount: Amount,
    pub released: Amount,
    pub converted: Amount,
    pub voided: Amount,
    pub remaining: Amount,
    /// active, closed or voided.
    #[schema(value_type = String)]
    pub status: HoldStatus,
    /// Why the hold was voided (API.md §12); `null` unless voided.
    #[schema(value_type = Option<String>)]
    pub void_reason: Option<VoidReason>,
    /// v2 (API.md §12): why the provider declined it, when it did.
    #[schema(value_type = Option<String>)]
    pub decline_reason: Option<DeclineReason>,
    /// v2 (API.md §12): by when a pending hold must be confirmed; null unless placed pending.
    pub confirm_deadline: Option<DateTime<Utc>>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub provider_order_no: Option<String>,
    /// The provider's page where the customer signs the freeze (for the POS to show as a QR code).
    pub sign_url: Option<String>,
}

impl Hold {
    pub fn assert_balanced(&self) {
        assert_eq!(
            self.amount,
            self.released + self.converted + self.voided + self.remaining,
            "hold {} must balance: amount = released + converted + voided + remaining",
            self.id
        );
    }
}

pub(super) const HOLD_COLUMNS: &str =
    "id, credit_line_id, provider_id, order_id, amount_fen, released_fen, converted_fen, voided_fen, remaining_fen, status, void_reason,
     decline_reason, confirm_deadline, confirmed_at, provider_order_no, sign_url";

pub(super) fn hold(r: &Row) -> Hold {
    let h = Hold {
        id: r.get("id"),
        credit_line_id: r.get("credit_line_id"),
        provider_id: r.get("provider_id"),
        order_id: r.get("order_id"),
        amount: Amount::from_fen(r.get("amount_fen")),
        released: Amount::from_fen(r.get("released_fen")),
        converted: Amount::from_fen(r.get("converted_fen")),
        voided: Amount::from_fen(r.get("voided_fen")),
        remaining: Amount::from_fen(r.get("remaining_fen")),
        status: r.get("status"),
        void_reason: r.get("void_reason"),
        decline_reason: r.get("decline_reason"),
        confirm_deadline: r.get("confirm_deadline"),
        confirmed_at: r.get("confirmed_at"),
        provider_order_no: r.get("provider_order_no"),
        sign_url: r.get("sign_url"),
    };
    h.assert_balanced();
    h
}

/// A hold to insert: `confirm_deadline` set places it `pending` (API.md §12), else `active`.
pub struct NewHold<'a> {
    pub id: &'a str,
    pub line_id: &'a str,
    pub provider_id: &'a str,
    pub order_id: &'a str,
    pub amount: Amount,
    pub confirm_deadline: Option<DateTime<Utc>>,
}

impl NewHold<'_> {
    /// The row [`insert_hold`] writes, as its `RETURNING` answers it (see [`NewOrder::as_inserted`]).
    pub fn as_inserted(&self) -> Hold {
        Hold {
            id: self.id.to_string(),
            credit_line_id: self.line_id.to_string(),
            provider_id: self.provider_id.to_string(),
            order_id: self.order_id.to_string(),
            amount: self.amount,
            released: Amount::ZERO,
            converted: Amount::ZERO,
            voided: Amount::ZERO,
            remaining: self.amount,
            status: if self.confirm_deadline.is_some() { HoldStatus::Pending } else { HoldStatus::Active },
            void_reason: None,
            decline_reason: None,
            confirm_deadline: self.confirm_deadline.map(as_stored),
            confirmed_at: None,
            provider_order_no: None,
            sign_url: None,
        }
    }
}

pub async fn insert_hold(tx: &Tx<'_>, h: &NewHold<'_>) -> Result<Hold, tokio_postgres::Error> {
    let status = if h.confirm_deadline.is_some() { HoldStatus::Pending } else { HoldStatus::Active };
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO holds (id, credit_line_id, provider_id, order_id, amount_fen, remaining_fen, status, confirm_deadline)
                 VALUES ($1, $2, $3, $4, $5, $5, $6, $7) RETURNING {HOLD_COLUMNS}"
            ),
            &[&h.id, &h.line_id, &h.provider_id, &h.order_id, &h.amount.fen(), &status, &h.confirm_deadline],
        )
        .await?;
    Ok(hold(&row))
}

pub async fn get_hold(c: &impl Db, id: &str) -> Result<Option<Hold>, tokio_postgres::Error> {
    Ok(c.query_opt(&format!("SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1"), &[&id]).await?.as_ref().map(hold))
}

pub async fn lock_hold(tx: &Tx<'_>, id: &str) -> Result<Hold, tokio_postgres::Error> {
    Ok(hold(&tx.query_one(&format!("SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1 FOR UPDATE"), &[&id]).await?))
}

/// What one batch takes out of a hold's remaining (released to its line, converted into the
/// line's drawn, voided), and the remaining the service computed it leaves: written by
/// [`take_from_holds`], which checks the row it wrote against it.
#[derive(Debug, Clone, Default)]
pub struct HoldChange {
    pub line_id: String,
    pub released_fen: i64,
    pub converted_fen: i64,
    pub voided_fen: i64,
    pub remaining_after_fen: i64,
    /// Why it is voided, when `voided_fen` is not zero (sql/V19: a voided hold has a reason).
    pub void_reason: Option<VoidReason>,
}

/// Takes each change out of its hold's remaining in one statement (the holds are locked already,
/// in id order) and sets the status: voided once anything is voided, closed at zero. Answers the
/// holds as written, each checked against its change.
pub async fn take_from_holds(tx: &Tx<'_>, changes: &BTreeMap<String, HoldChange>) -> Result<BTreeMap<String, Hold>, tokio_postgres::Error> {
    if changes.is_empty() {
        return Ok(BTreeMap::new());
    }
    let ids: Vec<&str> = changes.keys().map(String::as_str).collect();
    let released: Vec<i64> = changes.values().map(|h| h.released_fen).collect();
    let converted: Vec<i64> = changes.values().map(|h| h.converted_fen).collect();
    let voided: Vec<i64> = changes.values().map(|h| h.voided_fen).collect();
    let reasons: Vec<Option<VoidReason>> = changes.values().map(|h| h.void_reason).collect();
    let rows = tx
        .query(
            &format!(
                "UPDATE holds h SET released_fen = released_fen + t.r, converted_fen = converted_fen + t.c, voided_fen = voided_fen + t.v,
                     remaining_fen = remaining_fen - t.r - t.c - t.v,
                     status = CASE WHEN t.v > 0 THEN 'voided' WHEN remaining_fen - t.r - t.c - t.v = 0 THEN 'closed' ELSE status END,
                     void_reason = CASE WHEN t.v > 0 THEN t.why ELSE void_reason END,
                     updated_at = now()
                 FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::text[]) AS t(hold_id, r, c, v, why) WHERE h.id = t.hold_id
                 RETURNING {HOLD_COLUMNS}"
            ),
            &[&ids, &released, &converted, &voided, &reasons],
        )
        .await?;
    assert_eq!(rows.len(), ids.len(), "every hold changed was written");
    let written: BTreeMap<String, Hold> = rows.iter().map(hold).map(|h| (h.id.clone(), h)).collect();
    for (id, change) in changes {
        let h = &written[id];
        assert_eq!(h.credit_line_id, change.line_id, "hold {id}'s change moves its own credit line");
        assert_eq!(h.remaining.fen(), change.remaining_after_fen, "hold {id} keeps the remaining its change computed");
        assert!(change.voided_fen == 0 || (h.remaining.is_zero() && h.status == HoldStatus::Voided), "a voided hold is voided to zero");
        assert!(change.voided_fen == 0 || h.void_reason == change.void_reason, "a voided hold keeps the reason it was voided for");
    }
    Ok(written)
}

/// Holds locked in id order.
pub async fn lock_holds(tx: &Tx<'_>, ids: &[String]) -> Result<Vec<Hold>, tokio_postgres::Error> {
    let rows = tx.query(&format!("SELECT {HOLD_COLUMNS} FROM holds WHERE id = ANY($1) ORDER BY id FOR UPDATE"), &[&ids]).await?;
    Ok(rows.iter().map(hold).collect())
}

/// The order's device terms a return checks: its IMEI's keyed hash (`None` for orders placed
/// before returns existed) and the return window it took from its product.
pub async fn device_terms(c: &impl Db, order_id: &str) -> Result<(Option<String>, i32), tokio_postgres::Error> {
    let r = c.query_one("SELECT imei_hash, return_window_days FROM orders WHERE id = $1", &[&order_id]).await?;
    Ok((r.get(0), r.get(1)))
}
