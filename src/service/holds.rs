//! The provider's confirmation of each hold (API.md §12): a hold placed `pending` on a line whose
//! provider requires it, acknowledged, confirmed or declined by that provider, or timed out — by
//! the request that finds it past its deadline, by the sweep job, or by end of day, whichever
//! comes first. Every path locks the order, then its hold, and decides on what it locked, so a
//! confirm racing a timeout or a cancellation finds the other's result: exactly one wins.

use super::Deps;
use super::lifecycle::Effects;
use super::order_notices::OrderRefs;
use super::orders::{hold_voided, order_updated};
use crate::auth::{Principal, PrincipalKind};
use crate::db::notices::record;
use crate::db::orders::{self as orders_db, Hold, Order};
use crate::db::{self, Tx, holds as holds_db};
use crate::domain::dates::SHANGHAI;
use crate::domain::money::Amount;
use crate::domain::notice::{FundingRequested, Notice, Recipient};
use crate::domain::status::{DeclineReason, HoldStatus, OrderStatus, VoidReason};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::idempotency::{self, Answer, IdempotentRequest};
use actix_web::http::StatusCode;
use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use serde_json::json;

/// The journal kind of the bank-side entry when a reservation the bank was never shown is undone
/// (a pending hold cancelled, declined or timed out): not `exposure.released`, which the bank's
/// reconciliation reports, since nothing of a pending hold appears there (API.md §12).
pub const UNCONFIRMED_RELEASE: &str = "exposure.unconfirmed_released";

/// The `confirm_deadline` of a hold placed `now` on a line whose provider requires confirmation
/// within `timeout_minutes` (`None`: it does not).
pub fn confirm_deadline(timeout_minutes: Option<i32>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // To the microsecond, as PostgreSQL keeps it: the deadline notified is the one stored.
    timeout_minutes.map(|m| (now + chrono::Duration::minutes(i64::from(m))).trunc_subsecs(6))
}

/// Is the hold pending and past its deadline at `now` (API.md §12: "past `confirm_deadline` a
/// hold is no longer pending")?
fn is_due(hold: &Hold, now: DateTime<Utc>) -> bool {
    hold.status == HoldStatus::Pending && hold.confirm_deadline.is_some_and(|d| now > d)
}

/// Times out a pending hold past its deadline, its order and hold locked by the caller: the hold
/// voided (`confirmation_timeout`), line and exposure freed, the order `expired`, the provider
/// and the owner told; booked on `booked_on`. `false` (and nothing written) when not due.
async fn time_out_locked(tx: &Tx<'_>, order: &Order, hold: &Hold, now: DateTime<Utc>, booked_on: NaiveDate) -> ApiResult<bool> {
    if !is_due(hold, now) {
        return Ok(false);
    }
    assert_eq!(order.status, OrderStatus::AwaitingHoldConfirmation, "a pending hold's order awaits its confirmation");
    let deadline_on =
        hold.confirm_deadline.expect("a pending hold has its deadline (holds_pending_has_deadline)").with_timezone(&SHANGHAI).date_naive();
    let mut fx = Effects::default();
    fx.void(order, hold, VoidReason::ConfirmationTimeout, UNCONFIRMED_RELEASE, booked_on);
    let mut applied = fx.apply(tx).await?;
    let hold = applied.holds.remove(&hold.id).expect("apply wrote the hold it voided");
    let order = orders_db::set_status(tx, &order.id, OrderStatus::Expired, Some("confirmation_timeout"), Some(deadline_on)).await?;
    let refs = OrderRefs::of_order(&order);
    record(tx, &[hold_voided(&refs, &hold), order_updated(&refs, &order)]).await?;
    Ok(true)
}

/// Times out `hold` if it is due at `now`, locking its order and itself first (a request's own
/// timeout, before it acts: API.md §12 "the request times the hold out itself"). Booked on the
/// first open date on or after the deadline's.
pub async fn time_out_if_due(tx: &Tx<'_>, hold: &Hold, now: DateTime<Utc>) -> ApiResult<bool> {
    if !is_due(hold, now) {
        return Ok(false);
    }
    let Some((order, hold)) = orders_db::lock_by_hold(tx, &hold.id).await? else { return Ok(false) };
    let Some(deadline) = hold.confirm_deadline else { return Ok(false) };
    let booked_on = db::business_days::booking_date(tx, deadline.with_timezone(&SHANGHAI).date_naive()).await?;
    time_out_locked(tx, &order, &hold, now, booked_on).await
}

/// Times out the pending holds due before `cutoff`, at most `limit`, in one transaction: each
/// locked (order, then hold) and checked again. `booked_on`: end of day books on its own date;
/// `None` books each on the first open date on or after its deadline's. Answers how many.
pub async fn time_out_due(tx: &Tx<'_>, cutoff: DateTime<Utc>, limit: i64, booked_on: Option<NaiveDate>) -> ApiResult<i64> {
    let ids = holds_db::pending_past(tx, cutoff, limit).await?;
    let mut count = 0;
    for id in &ids {
        let Some((order, hold)) = orders_db::lock_by_hold(tx, id).await? else { continue };
        let Some(deadline) = hold.confirm_deadline else { continue };
        let booked = match booked_on {
            Some(d) => d,
            None => db::business_days::booking_date(tx, deadline.with_timezone(&SHANGHAI).date_naive()).await?,
        };
        if time_out_locked(tx, &order, &hold, cutoff, booked).await? {
            count += 1;
        }
    }
    Ok(count)
}

/// One sweep (API.md §12): the pending holds past their deadline now, at most `limit`, timed out
/// in one transaction under the sweep's own lock, so one sweep runs at a time across instances
/// (another instance's sweep in progress: this one does nothing). Answers how many.
pub async fn sweep(deps: &Deps, limit: i64) -> ApiResult<i64> {
    sweep_at(deps, deps.clock.now(), limit).await
}

/// A sweep as of `now` (tests race one against requests that see an earlier instant).
pub async fn sweep_at(deps: &Deps, now: DateTime<Utc>, limit: i64) -> ApiResult<i64> {
    let mut client = deps.pool.get().await?;
    let tx = Tx::begin(&mut client).await?;
    if !holds_db::try_sweep_lock(&tx).await? {
        return Ok(0);
    }
    let count = time_out_due(&tx, now, limit, None).await?;
    tx.commit().await?;
    Ok(count)
}

/// End of day for `date` (API.md §12): every pending hold whose deadline has passed at `now` or
/// falls on a date before `date`, booked on `date`, a chunk per transaction; answers how many.
/// The sweep may run meanwhile: each hold is locked and checked again, so each times out once.
pub async fn time_out_for_end_of_day(pool: &deadpool_postgres::Pool, now: DateTime<Utc>, date: NaiveDate, chunk: i64) -> ApiResult<i64> {
    let day_starts = date.and_time(chrono::NaiveTime::MIN).and_local_timezone(SHANGHAI).single().map(|t| t.with_timezone(&Utc));
    let day_starts = day_starts.expect("Asia/Shanghai has a fixed offset");
    let cutoff = now.max(day_starts);
    let mut total = 0;
    // Bounded: each round times out what it found or stops; a hold placed meanwhile is not due.
    for _ in 0..1_000_000 {
        let mut client = pool.get().await?;
        let tx = Tx::begin(&mut client).await?;
        let count = time_out_due(&tx, cutoff, chunk, Some(date)).await?;
        tx.commit().await?;
        total += count;
        if count < chunk {
            return Ok(total);
        }
    }
    Ok(total)
}

/// What a provider does with a pending hold.
pub enum HoldAction {
    Acknowledge { sign_url: String, provider_order_no: Option<String> },
    Confirm { amount: Amount, provider_order_no: String },
    Decline { reason: DeclineReason },
}

impl HoldAction {
    fn provider_order_no(&self) -> Option<&str> {
        match self {
            HoldAction::Acknowledge { provider_order_no, .. } => provider_order_no.as_deref(),
            HoldAction::Confirm { provider_order_no, .. } => Some(provider_order_no),
            HoldAction::Decline { .. } => None,
        }
    }
}

/// `POST /v1/holds/{id}/acknowledge|confirm|decline`: the hold's provider acts on it while it is
/// pending. Checks in the order of API.md §1: the hold (404 unless the caller's), the provider's
/// order number (`already_exists`), the state (`invalid_state` with the hold's status and
/// void reason), then the amount (`hold_amount_mismatch`).
#[tracing::instrument(skip_all, fields(hold_id = %id))]
pub async fn act(state: &Deps, caller: &Principal, id: &str, request: &IdempotentRequest, action: HoldAction) -> ApiResult<Answer> {
    // One instant for the whole request: the timeout its precheck applies is the one it answers;
    // to the microsecond, as stored, so that confirmed_at and the deadline notified are those kept.
    let now = state.clock.now().trunc_subsecs(6);
    idempotency::execute(
        &state.pool,
        request,
        async |tx: &Tx<'_>| {
            let hold = orders_db::get_hold(tx, id).await?.filter(|h| caller.is(PrincipalKind::Provider, &h.provider_id));
            let hold = hold.ok_or_else(ApiError::not_found)?;
            time_out_if_due(tx, &hold, now).await?;
            Ok(hold.provider_id)
        },
        async |tx: &Tx<'_>, provider_id: String| {
            if let Some(no) = action.provider_order_no() {
                check_provider_order_no(tx, &provider_id, no, id).await?;
            }
            let (order, hold) = orders_db::lock_by_hold(tx, id).await?.ok_or_else(ApiError::not_found)?;
            require_pending(&hold)?;
            let hold = match &action {
                HoldAction::Acknowledge { sign_url, provider_order_no } => {
                    acknowledge(tx, &hold, sign_url, provider_order_no.as_deref()).await?
                }
                HoldAction::Confirm { amount, provider_order_no } => confirm(tx, order, &hold, *amount, provider_order_no, now).await?,
                HoldAction::Decline { reason } => decline(state, tx, &order, &hold, *reason).await?,
            };
            Ok((StatusCode::OK, hold))
        },
    )
    .await
}

/// `provider_order_no` is unique per provider for ever; the hold may repeat its own.
async fn check_provider_order_no(tx: &Tx<'_>, provider_id: &str, no: &str, hold_id: &str) -> ApiResult<()> {
    match holds_db::provider_order_no_owner(tx, provider_id, no).await? {
        Some(owner) if owner != hold_id => {
            Err(ApiError::already_exists("this provider_order_no was already used").field("provider_order_no"))
        }
        _ => Ok(()),
    }
}

/// Records the number for the hold; a concurrent request that took it first is `already_exists`.
async fn claim_provider_order_no(tx: &Tx<'_>, hold: &Hold, no: &str) -> ApiResult<()> {
    if !holds_db::claim_provider_order_no(tx, &hold.provider_id, no, &hold.id).await? {
        return Err(ApiError::already_exists("this provider_order_no was already used").field("provider_order_no"));
    }
    Ok(())
}

/// `409 invalid_state` unless pending, with the hold's status and void reason: a late confirm
/// learns `confirmation_timeout`.
pub fn require_pending(hold: &Hold) -> ApiResult<()> {
    if hold.status == HoldStatus::Pending {
        return Ok(());
    }
    Err(ApiError::invalid_state(format!("the hold is {}, not pending", hold.status))
        .details(json!({ "status": hold.status, "void_reason": hold.void_reason })))
}

async fn acknowledge(tx: &Tx<'_>, hold: &Hold, sign_url: &str, provider_order_no: Option<&str>) -> ApiResult<Hold> {
    if let Some(no) = provider_order_no {
        claim_provider_order_no(tx, hold, no).await?;
    }
    Ok(holds_db::acknowledge(tx, &hold.id, sign_url, provider_order_no).await?)
}

/// The hold becomes `active`; its order awaits funding from now for the hours it took from its
/// product when placed, and its bank learns of it (`funding.requested`). A line frozen, closed or
/// re-limited since placement does not stop it: existing holds run on.
async fn confirm(tx: &Tx<'_>, order: Order, hold: &Hold, amount: Amount, no: &str, now: DateTime<Utc>) -> ApiResult<Hold> {
    if amount != hold.amount {
        return Err(ApiError::new(ErrorCode::HoldAmountMismatch, format!("the hold's amount is {}", hold.amount))
            .field("amount")
            .details(json!({ "hold_amount": hold.amount })));
    }
    claim_provider_order_no(tx, hold, no).await?;
    let booked_on = db::business_days::booking_date(tx, now.with_timezone(&SHANGHAI).date_naive()).await?;
    let confirmed = holds_db::confirm(tx, &hold.id, no, now, booked_on).await?;
    // Every order placed pending was placed by this version, which keeps its funding timeout.
    let hours = order
        .funding_timeout_hours
        .ok_or_else(|| ApiError::internal_because("Failed to confirm a hold", format!("order {} has no funding timeout", order.id)))?;
    let deadline = now + chrono::Duration::hours(i64::from(hours));
    let order = orders_db::await_funding(tx, &order.id, deadline).await?;
    let refs = OrderRefs::of_order(&order);
    let funding = FundingRequested {
        amount: order.principal,
        principal: order.principal,
        term_months: u32::try_from(order.term_months).expect("a term is 1-360 months"),
        apr_irr: order.apr_irr.clone(),
        funding_deadline: deadline,
    };
    record(tx, &[Notice::FundingRequested(refs.about(Recipient::Bank(order.bank_id.clone()), funding)), order_updated(&refs, &order)])
        .await?;
    Ok(confirmed)
}

/// The provider refused: the hold voided (`declined`, its reason kept), line and exposure freed,
/// the order `rejected` with reason `hold_declined`; the provider and the owner told.
async fn decline(state: &Deps, tx: &Tx<'_>, order: &Order, hold: &Hold, reason: DeclineReason) -> ApiResult<Hold> {
    let today = state.clock.today();
    let booked_on = db::business_days::booking_date(tx, today).await?;
    let mut fx = Effects::default();
    fx.void(order, hold, VoidReason::Declined, UNCONFIRMED_RELEASE, booked_on);
    fx.apply(tx).await?;
    let hold = holds_db::set_decline_reason(tx, &hold.id, reason).await?;
    let order = orders_db::set_status(tx, &order.id, OrderStatus::Rejected, Some("hold_declined"), Some(today)).await?;
    let refs = OrderRefs::of_order(&order);
    record(tx, &[hold_voided(&refs, &hold), order_updated(&refs, &order)]).await?;
    Ok(hold)
}
