//! Device returns (API.md §13): the owner asks within the product's return window, the order's
//! bank completes or rejects. A requested return freezes its plan (repayments, acceleration and
//! payoff quotes are refused, end of day leaves it alone) until decided; completion waives what is
//! unpaid, voids the hold's remaining and frees the bank's exposure, in one transaction through
//! `Effects` like every other balance change after placement.

use super::Deps;
use super::lifecycle::{Book, Effects};
use super::plans::lock_book;
use crate::auth::{Principal, PrincipalKind, new_object_id};
use crate::db::journal::{Entry, account};
use crate::db::orders::{self as orders_db, Order};
use crate::db::returns::{self as returns_db, NewReturn, Return};
use crate::db::{Tx, business_days, plans as plans_db};
use crate::domain::identity::Imei;
use crate::domain::money::Amount;
use crate::domain::notice::{Notice, ReturnCompleted, ReturnRejected, ReturnRequested};
use crate::domain::returns::{ReturnAmounts, return_amounts};
use crate::domain::status::{InstallmentStatus, OrderStatus, PlanStatus, ReturnStatus, VoidReason};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::idempotency::{self, Answer, IdempotentRequest};
use actix_web::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

pub struct ReturnRequest {
    pub reason: String,
    pub returned_on: NaiveDate,
    pub imei: Imei,
    pub reference: String,
    pub note: Option<String>,
}

#[derive(Debug)]
pub enum ReturnDecision {
    Completed { completed_on: NaiveDate },
    Rejected { reason: String },
}

/// A return as API.md §13 shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReturnView {
    pub id: String,
    pub order_id: String,
    pub plan_id: String,
    #[schema(value_type = String)]
    pub status: ReturnStatus,
    pub reason: String,
    pub returned_on: NaiveDate,
    pub reference: String,
    pub note: Option<String>,
    pub principal_to_bank: Amount,
    pub repayments_to_refund: Amount,
    pub interest_waived: Amount,
    pub fee_waived: Amount,
    pub penalty_waived: Amount,
    pub down_payment_to_refund: Amount,
    pub hold_to_void: Amount,
    pub completed_on: Option<NaiveDate>,
    pub rejection_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub fn return_view(r: Return) -> ReturnView {
    let a = r.amounts;
    ReturnView {
        id: r.id,
        order_id: r.order_id,
        plan_id: r.plan_id,
        status: r.status,
        reason: r.reason,
        returned_on: r.returned_on,
        reference: r.reference,
        note: r.note,
        principal_to_bank: a.principal_to_bank,
        repayments_to_refund: a.repayments_to_refund,
        interest_waived: a.interest_waived,
        fee_waived: a.fee_waived,
        penalty_waived: a.penalty_waived,
        down_payment_to_refund: a.down_payment_to_refund,
        hold_to_void: a.hold_to_void,
        completed_on: r.completed_on,
        rejection_reason: r.rejection_reason,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

/// The refusal of acting on a plan a requested return freezes (API.md §13).
pub fn frozen(return_id: Option<&str>) -> ApiError {
    ApiError::invalid_state("a return of this plan's device is requested: the plan is frozen until the bank decides it")
        .details(json!({ "return_id": return_id }))
}

fn reference_used() -> ApiError {
    ApiError::already_exists("this reference was already used on this order").field("reference")
}

fn not_returnable(reason: &str, message: String, extra: serde_json::Value) -> ApiError {
    let mut details = json!({ "reason": reason });
    if let (Some(d), Some(extra)) = (details.as_object_mut(), extra.as_object()) {
        d.extend(extra.clone());
    }
    ApiError::invalid_state(message).details(details)
}

impl Book {
    /// Completes the return `ret` (API.md §13): every unpaid amount waived, the hold's remaining
    /// voided (`returned`), the bank's exposure freed of the outstanding principal, the plan and
    /// order `returned`; the bank, the provider and the owner are told.
    pub fn complete_return(&mut self, fx: &mut Effects, ret: &Return, completed_on: NaiveDate, booked_on: NaiveDate) {
        assert!(self.plan.status == PlanStatus::Active && self.plan.return_requested, "only a frozen active plan is returned");
        let mut outstanding = Amount::ZERO;
        for i in 0..self.insts.len() {
            if self.insts[i].is_settled() {
                continue;
            }
            outstanding += self.insts[i].waive_all().principal;
            self.statuses[i] = InstallmentStatus::Waived;
            self.touch(i);
        }
        let (plan, bank) = (self.plan.id.clone(), self.plan.bank_id.clone());
        let mut e = Entry::new("return.completed", booked_on, self.refs().reference(&ret.id));
        e.transfer(account::plan_principal(&plan), account::plan_returned(&plan), outstanding.fen()).transfer(
            account::bank_exposure(&bank),
            account::bank_exposure_source(&bank),
            outstanding.fen(),
        );
        fx.entries.push(e);
        fx.free_exposure(&bank, self.exposure_stripe, outstanding);
        let voided = fx.void_remaining(&self.hold, VoidReason::Returned, self.refs().reference(&ret.id), booked_on);
        let completed = ReturnCompleted {
            return_id: ret.id.clone(),
            reference: ret.reference.clone(),
            completed_on,
            booked_on,
            amount: ret.amounts.principal_to_bank,
            amounts: ret.amounts,
        };
        fx.notices.push(Notice::ReturnCompleted(self.bank_notice(completed)));
        fx.notices.push(Notice::hold_voided(&self.order_refs(), &self.hold.provider_id, voided, VoidReason::Returned));
        self.set_status(fx, PlanStatus::Returned);
        self.collect_installments(fx, None);
    }
}

/// `POST /v1/orders/{id}/returns`: the owner (or admin) asks to return the device.
#[tracing::instrument(skip_all, fields(order_id = %id, returned_on = %r.returned_on))]
pub async fn request(state: &Deps, caller: &Principal, id: &str, request: &IdempotentRequest, r: ReturnRequest) -> ApiResult<Answer> {
    // Hashed once, outside the transaction: compared with the order's, never logged.
    let imei_hash = state.pii.lookup_hash(r.imei.as_str());
    idempotency::execute(
        &state.pool,
        request,
        async |tx: &Tx<'_>| owned_order(tx, caller, id).await.map(|_| ()),
        async |tx: &Tx<'_>, ()| {
            if returns_db::reference_taken(tx, id, &r.reference).await? {
                return Err(reference_used());
            }
            let order = orders_db::get(tx, id).await?.ok_or_else(ApiError::not_found)?;
            let Some(plan) = plans_db::get_by_order(tx, id).await? else {
                return Err(not_returnable(
                    "status",
                    format!("the order is {}; only an active order's device can be returned", order.status),
                    json!({ "status": order.status }),
                ));
            };
            let book = lock_book(tx, &plan.id).await?;
            check_returnable(&order, &book)?;
            check_device(state, tx, &order, &book, &r, &imei_hash).await?;
            let repaid = crate::db::repayments::total_of_plan(tx, &book.plan.id).await?;
            let amounts = return_amounts(book.plan.principal, &book.insts, repaid, order.down_payment, book.hold.remaining);
            let ret = insert_requested(tx, &book, &r, &amounts).await?;
            Ok((StatusCode::CREATED, return_view(ret)))
        },
    )
    .await
}

/// The order's owner or the admin; anyone else finds nothing (404).
async fn owned_order(tx: &Tx<'_>, caller: &Principal, id: &str) -> ApiResult<Order> {
    match orders_db::get(tx, id).await? {
        Some(o) if caller.is_admin() || o.owner_scope == caller.scope() => Ok(o),
        _ => Err(ApiError::not_found()),
    }
}

/// The state checks, in API.md §13's order: the order and plan `active`, no return in progress,
/// nothing ever compensated.
fn check_returnable(order: &Order, book: &Book) -> ApiResult<()> {
    if order.status != OrderStatus::Active || book.plan.status != PlanStatus::Active {
        return Err(not_returnable(
            "status",
            format!("the order is {}; only an active order's device can be returned", order.status),
            json!({ "status": order.status }),
        ));
    }
    if book.plan.return_requested {
        return Err(not_returnable(
            "return_in_progress",
            "a return of this order is already requested".to_string(),
            json!({ "return_id": book.plan.return_id }),
        ));
    }
    if book.insts.iter().any(|i| i.compensated.is_positive()) {
        return Err(not_returnable("compensated", "the hold already paid part of this plan".to_string(), json!({})));
    }
    Ok(())
}

/// The business rules, in API.md §13's order: the IMEI, then `returned_on` against today, then
/// the window the order took from its product.
async fn check_device(state: &Deps, tx: &Tx<'_>, order: &Order, book: &Book, r: &ReturnRequest, imei_hash: &str) -> ApiResult<()> {
    let (stored_hash, window) = orders_db::device_terms(tx, &order.id).await?;
    if stored_hash.as_deref() != Some(imei_hash) {
        return Err(ApiError::new(ErrorCode::ImeiMismatch, "imei is not the order's device").field("imei"));
    }
    if r.returned_on > state.clock.today() && !state.settings.clock.allow_future_dates {
        return Err(ApiError::new(ErrorCode::InvalidDate, "returned_on is after today").field("returned_on"));
    }
    let funded_on = book.plan.funded_on;
    let last = funded_on + chrono::Duration::days(i64::from(window));
    if window == 0 || r.returned_on < funded_on || r.returned_on > last {
        return Err(ApiError::new(
            ErrorCode::ReturnWindowClosed,
            format!("returned_on must lie within the {window}-day return window from funded_on {funded_on}"),
        )
        .field("returned_on")
        .details(json!({ "funded_on": funded_on, "return_window_days": window })));
    }
    Ok(())
}

/// Records the requested return, freezes the plan and tells the bank.
async fn insert_requested(tx: &Tx<'_>, book: &Book, r: &ReturnRequest, amounts: &ReturnAmounts) -> ApiResult<Return> {
    let rid = new_object_id("ret");
    let new = NewReturn {
        id: &rid,
        order_id: &book.order_id,
        plan_id: &book.plan.id,
        reason: &r.reason,
        returned_on: r.returned_on,
        reference: &r.reference,
        note: r.note.as_deref(),
        amounts,
    };
    let ret = returns_db::insert(tx, &new).await?.ok_or_else(reference_used)?;
    plans_db::set_return(tx, &book.plan.id, &rid, true).await?;
    let requested = ReturnRequested {
        return_id: rid.clone(),
        reference: r.reference.clone(),
        reason: r.reason.clone(),
        returned_on: r.returned_on,
        amount: amounts.principal_to_bank,
        amounts: *amounts,
    };
    crate::db::notices::record(tx, &[Notice::ReturnRequested(book.bank_notice(requested))]).await?;
    Ok(ret)
}

/// A return visible to the caller: the order's owner, its bank, or the admin; 404 otherwise.
async fn visible_return(c: &impl crate::db::Db, caller: &Principal, id: &str, bank_only: bool) -> ApiResult<Return> {
    let ret = returns_db::get(c, id).await?.ok_or_else(ApiError::not_found)?;
    let order = orders_db::get(c, &ret.order_id).await?.ok_or_else(ApiError::not_found)?;
    let is_bank = caller.is(PrincipalKind::Bank, &order.bank_id);
    let may = if bank_only { is_bank } else { is_bank || caller.is_admin() || order.owner_scope == caller.scope() };
    if may { Ok(ret) } else { Err(ApiError::not_found()) }
}

/// `POST /v1/returns/{id}/decision`: the order's bank completes or rejects a requested return.
#[tracing::instrument(skip_all, fields(return_id = %id))]
pub async fn decide(state: &Deps, caller: &Principal, id: &str, request: &IdempotentRequest, d: ReturnDecision) -> ApiResult<Answer> {
    idempotency::execute(
        &state.pool,
        request,
        async |tx: &Tx<'_>| visible_return(tx, caller, id, true).await.map(|r| r.plan_id),
        async |tx: &Tx<'_>, plan_id: String| {
            // The plan first, then the return: the lock order of a return's request.
            let mut book = lock_book(tx, &plan_id).await?;
            let ret = returns_db::lock(tx, id).await?.ok_or_else(ApiError::not_found)?;
            if ret.status != ReturnStatus::Requested {
                return Err(ApiError::invalid_state(format!("the return is {}; only a requested return is decided", ret.status))
                    .details(json!({ "status": ret.status })));
            }
            let decided = match d {
                ReturnDecision::Completed { completed_on } => complete(state, tx, &mut book, &ret, completed_on).await?,
                ReturnDecision::Rejected { ref reason } => reject(state, tx, &book, &ret, reason).await?,
            };
            Ok((StatusCode::OK, return_view(decided)))
        },
    )
    .await
}

async fn complete(state: &Deps, tx: &Tx<'_>, book: &mut Book, ret: &Return, completed_on: NaiveDate) -> ApiResult<Return> {
    if completed_on < ret.returned_on {
        return Err(
            ApiError::new(ErrorCode::InvalidDate, format!("completed_on is before returned_on {}", ret.returned_on)).field("completed_on")
        );
    }
    if completed_on > state.clock.today() && !state.settings.clock.allow_future_dates {
        return Err(ApiError::new(ErrorCode::InvalidDate, "completed_on is after today").field("completed_on"));
    }
    let booked_on = business_days::booking_date(tx, completed_on).await?;
    let mut fx = Effects::default();
    book.complete_return(&mut fx, ret, completed_on, booked_on);
    fx.apply(tx).await?;
    plans_db::set_return(tx, &book.plan.id, &ret.id, false).await?;
    Ok(returns_db::complete(tx, &ret.id, completed_on, booked_on).await?)
}

/// Rejection changes nothing but the return: the plan runs on (end of day catches it up).
async fn reject(state: &Deps, tx: &Tx<'_>, book: &Book, ret: &Return, reason: &str) -> ApiResult<Return> {
    plans_db::set_return(tx, &book.plan.id, &ret.id, false).await?;
    let rejected = returns_db::reject(tx, &ret.id, reason, state.clock.today()).await?;
    let notice = ReturnRejected {
        return_id: ret.id.clone(),
        reference: ret.reference.clone(),
        reason: reason.to_string(),
        amount: ret.amounts.principal_to_bank,
    };
    crate::db::notices::record(tx, &[Notice::ReturnRejected(book.bank_notice(notice))]).await?;
    Ok(rejected)
}

/// `GET /v1/returns/{id}`.
#[tracing::instrument(skip_all, fields(return_id = %id))]
pub async fn get(state: &Deps, caller: &Principal, id: &str) -> ApiResult<ReturnView> {
    let client = state.pool.get().await?;
    Ok(return_view(visible_return(&**client, caller, id, false).await?))
}

/// `GET /v1/orders/{id}/returns`: newest first, `limit + 1` fetched for the page.
#[tracing::instrument(skip_all, fields(order_id = %id))]
pub async fn of_order(state: &Deps, caller: &Principal, id: &str, before_seq: i64, limit: i64) -> ApiResult<Vec<(i64, ReturnView)>> {
    let mut client = state.pool.get().await?;
    let tx = Tx::snapshot(&mut client).await?;
    orders_db::get(&tx, id).await?.filter(|o| super::orders::can_see(caller, o)).ok_or_else(ApiError::not_found)?;
    let rows = returns_db::of_order(&tx, id, before_seq, limit).await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(|r| (r.seq, return_view(r))).collect())
}
