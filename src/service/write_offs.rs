//! Write-off and recoveries (API.md §14): a bank writes off what the hold could not cover of a
//! defaulted plan, by request or by end of day once the plan has aged; what it collects
//! afterwards is a recovery. Both move money through the journal; the write-off frees the bank's
//! exposure, so it goes through `Effects` like every other balance change after placement.

use super::Deps;
use super::lifecycle::{Book, Effects, load_books};
use super::plans::{check_value_date, lock_book, plan_view, plan_visible};
use crate::auth::{Principal, new_object_id};
use crate::db::journal::{self, Entry, Refs, account};
use crate::db::write_offs::{self as write_offs_db, NewWriteOff, Recovery, WrittenOff};
use crate::db::{Tx, business_days, plans as plans_db};
use crate::domain::money::Amount;
use crate::domain::notice::{Notice, PlanWrittenOff, RecoveryRecorded};
use crate::domain::status::PlanStatus;
use crate::domain::write_off::write_off;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::idempotency::{self, Answer, IdempotentRequest};
use actix_web::http::StatusCode;
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// The reason end of day gives its automatic write-offs.
pub const AGED: &str = "aged";

/// The reference end of day gives its automatic write-offs of `date` (`eod-` is the engine's prefix).
pub fn eod_reference(date: NaiveDate) -> String {
    format!("eod-{date}")
}

pub struct WriteOffRequest {
    pub written_off_on: NaiveDate,
    pub reason: String,
    pub reference: String,
}

fn reference_used() -> ApiError {
    ApiError::already_exists("this reference was already used on this plan").field("reference")
}

impl Book {
    /// Writes the plan off on `on` (API.md §14): every installment then owes nothing, later
    /// interest and fees waived; the bank's exposure falls by the principal written off; what is
    /// left of the hold (a ratio above 1) is released; the bank is told, the owner too.
    pub fn write_off(&mut self, fx: &mut Effects, on: NaiveDate, reason: &str, reference: &str, booked_on: NaiveDate) -> Amount {
        assert_eq!(self.plan.status, PlanStatus::Defaulted, "only a defaulted plan is written off");
        let w = write_off(&mut self.insts, on);
        (0..self.insts.len()).for_each(|i| self.touch(i));
        let (plan, bank) = (self.plan.id.clone(), self.plan.bank_id.clone());
        let total = w.split.total();
        let mut e = Entry::new("plan.written_off", booked_on, self.refs().reference(reference));
        e.transfer(account::plan_principal(&plan), account::plan_written_off(&plan), w.split.principal.fen())
            .transfer(
                account::plan_income(&plan),
                account::plan_written_off(&plan),
                (w.split.interest + w.split.fee + w.split.penalty).fen(),
            )
            .transfer(account::bank_exposure(&bank), account::bank_exposure_source(&bank), w.split.principal.fen());
        fx.entries.push(e);
        fx.free_exposure(&bank, self.exposure_stripe, w.split.principal);
        let written_off = WrittenOff { on, reason: reason.to_string(), reference: reference.to_string(), split: w.split, booked_on };
        fx.write_offs.push(NewWriteOff { plan_id: plan, written_off });
        fx.written_off.add(total);
        let notice = PlanWrittenOff {
            written_off_on: on,
            reason: reason.to_string(),
            reference: reference.to_string(),
            booked_on,
            amount: total,
            split: w.split,
        };
        fx.notices.push(Notice::PlanWrittenOff(self.bank_notice(notice)));
        self.set_status(fx, PlanStatus::WrittenOff);
        self.release_to_target(fx, booked_on);
        self.collect_installments(fx, None);
        total
    }
}

/// `POST /v1/plans/{id}/write-off`.
#[tracing::instrument(skip_all, fields(plan_id = %id, written_off_on = %r.written_off_on))]
pub async fn request_write_off(
    state: &Deps,
    caller: &Principal,
    id: &str,
    request: &IdempotentRequest,
    r: WriteOffRequest,
) -> ApiResult<Answer> {
    idempotency::execute(
        &state.pool,
        request,
        async |tx: &Tx<'_>| plan_visible(tx, caller, id, false).await.map(|_| ()),
        async |tx: &Tx<'_>, ()| {
            if write_offs_db::reference_taken(tx, id, &r.reference).await? {
                return Err(reference_used());
            }
            let mut book = lock_book(tx, id).await?;
            if book.plan.status != PlanStatus::Defaulted {
                return Err(ApiError::invalid_state(format!("the plan is {}; only a defaulted plan can be written off", book.plan.status))
                    .details(json!({ "status": book.plan.status })));
            }
            check_value_date(state, &book.plan, r.written_off_on, "written_off_on")?;
            if let Some(last) = write_offs_db::last_paid_on(tx, id).await?
                && r.written_off_on < last
            {
                return Err(ApiError::new(ErrorCode::InvalidDate, format!("written_off_on is before the last repayment's paid_on {last}"))
                    .field("written_off_on"));
            }
            let booked_on = business_days::booking_date(tx, r.written_off_on).await?;
            let mut fx = Effects::default();
            book.write_off(&mut fx, r.written_off_on, &r.reason, &r.reference, booked_on);
            fx.apply(tx).await?;
            let insts = plans_db::installments(tx, id).await?;
            let plan = plans_db::get(tx, id).await?.expect("lock_book found and locked this plan in this transaction");
            Ok((StatusCode::OK, plan_view(plan, &insts)))
        },
    )
    .await
}

pub struct RecoveryRequest {
    pub amount: Amount,
    pub paid_on: NaiveDate,
    pub reference: String,
}

/// A recovery, with the plan's `recovered` and `recoverable` right after it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryView {
    pub id: String,
    pub plan_id: String,
    pub amount: Amount,
    pub paid_on: NaiveDate,
    pub booked_on: NaiveDate,
    pub reference: String,
    pub recovered: Amount,
    pub recoverable: Amount,
}

fn recovery_view(r: Recovery, written_off_total: Amount) -> RecoveryView {
    let recoverable = written_off_total.checked_sub(r.recovered_after).expect("recoveries never exceed what was written off");
    RecoveryView {
        id: r.id,
        plan_id: r.plan_id,
        amount: r.amount,
        paid_on: r.paid_on,
        booked_on: r.booked_on,
        reference: r.reference,
        recovered: r.recovered_after,
        recoverable,
    }
}

/// `POST /v1/plans/{id}/recoveries`.
#[tracing::instrument(skip_all, fields(plan_id = %id, paid_on = %r.paid_on))]
pub async fn record_recovery(
    state: &Deps,
    caller: &Principal,
    id: &str,
    request: &IdempotentRequest,
    r: RecoveryRequest,
) -> ApiResult<Answer> {
    idempotency::execute(
        &state.pool,
        request,
        async |tx: &Tx<'_>| plan_visible(tx, caller, id, false).await.map(|_| ()),
        async |tx: &Tx<'_>, ()| {
            if write_offs_db::reference_taken(tx, id, &r.reference).await? {
                return Err(reference_used());
            }
            let plan = plans_db::lock(tx, id).await?.ok_or_else(ApiError::not_found)?;
            let (Some(w), PlanStatus::WrittenOff) = (&plan.written_off, plan.status) else {
                return Err(ApiError::invalid_state(format!("the plan is {}; only a written-off plan takes recoveries", plan.status))
                    .details(json!({ "status": plan.status })));
            };
            let (total, written_off_on) = (w.split.total(), w.on);
            check_recovery(state, &r, total.checked_sub(plan.recovered).unwrap_or(Amount::ZERO), written_off_on)?;
            let booked_on = business_days::booking_date(tx, r.paid_on).await?;
            let rid = new_object_id("rcv");
            let recovery = write_offs_db::insert_recovery(tx, &rid, id, r.amount, r.paid_on, booked_on, &r.reference)
                .await?
                .ok_or_else(reference_used)?;
            let view = recovery_view(recovery, total);
            let mut e =
                Entry::new("recovery.recorded", booked_on, Refs::new().order(&plan.order_id).plan(id).bank(&plan.bank_id).reference(&rid));
            e.transfer(account::plan_written_off(id), account::bank_collected(&plan.bank_id), r.amount.fen());
            journal::post_all(tx, &[e]).await?;
            crate::db::notices::record(tx, &[recovery_notice(tx, &plan, &view).await?]).await?;
            Ok((StatusCode::CREATED, view))
        },
    )
    .await
}

/// Above `recoverable` is an overpayment; `paid_on` before the write-off or after today an invalid date.
fn check_recovery(state: &Deps, r: &RecoveryRequest, recoverable: Amount, written_off_on: NaiveDate) -> ApiResult<()> {
    if r.amount > recoverable {
        return Err(ApiError::new(ErrorCode::Overpayment, format!("more than the {recoverable} still recoverable"))
            .field("amount")
            .details(json!({ "recoverable": recoverable })));
    }
    if r.paid_on < written_off_on {
        return Err(ApiError::new(ErrorCode::InvalidDate, format!("paid_on is before the plan was written off on {written_off_on}"))
            .field("paid_on"));
    }
    if r.paid_on > state.clock.today() && !state.settings.clock.allow_future_dates {
        return Err(ApiError::new(ErrorCode::InvalidDate, "paid_on is after today").field("paid_on"));
    }
    Ok(())
}

async fn recovery_notice(tx: &Tx<'_>, plan: &plans_db::Plan, v: &RecoveryView) -> ApiResult<Notice> {
    let order = crate::db::orders::get(tx, &plan.order_id).await?.ok_or_else(|| {
        ApiError::internal_because("Failed to tell the bank of a recovery", format!("plan {} has no order {}", plan.id, plan.order_id))
    })?;
    let refs = super::order_notices::OrderRefs::of_order(&order).funded(&plan.id, &plan.loan_no);
    let recorded = RecoveryRecorded {
        recovery_id: v.id.clone(),
        reference: v.reference.clone(),
        amount: v.amount,
        paid_on: v.paid_on,
        booked_on: v.booked_on,
        recovered: v.recovered,
        recoverable: v.recoverable,
    };
    Ok(Notice::RecoveryRecorded(refs.about(crate::domain::notice::Recipient::Bank(plan.bank_id.clone()), recorded)))
}

/// `GET /v1/plans/{id}/recoveries`: oldest first, `limit + 1` fetched for the page.
#[tracing::instrument(skip_all, fields(plan_id = %id))]
pub async fn recoveries(state: &Deps, caller: &Principal, id: &str, after: i64, limit: i64) -> ApiResult<Vec<(i64, RecoveryView)>> {
    let mut client = state.pool.get().await?;
    let tx = Tx::snapshot(&mut client).await?;
    let plan = plan_visible(&tx, caller, id, true).await?;
    let rows = write_offs_db::list(&tx, id, after, limit).await?;
    tx.commit().await?;
    let total = plan.written_off.as_ref().map_or(Amount::ZERO, |w| w.split.total());
    Ok(rows.into_iter().map(|r| (r.seq, recovery_view(r, total))).collect())
}

/// End of day for `date` (API.md §14): every defaulted plan aged past its product's
/// `write_off_after_days` is written off on `date`, reason `aged`, reference `eod-<date>`; set-based
/// as the rest of end of day, a chunk of plans per transaction, one batched apply each. Booked on
/// `date` (still open while its end of day runs), after its conversions.
pub async fn write_off_aged(pool: &deadpool_postgres::Pool, date: NaiveDate, chunk: i64) -> ApiResult<super::lifecycle::Counter> {
    let found = write_offs_db::aged_plan_ids(&**pool.get().await?, date).await?;
    let chunk = usize::try_from(chunk).expect("the chunk size is clamped to 1..=100000");
    let reference = eod_reference(date);
    let mut total = super::lifecycle::Counter::default();
    for ids in found.chunks(chunk) {
        let mut client = pool.get().await?;
        let tx = Tx::begin(&mut client).await?;
        let mut books = load_books(&tx, ids).await?;
        // Locked in id order; booked in the plans' creation order, the order `aged_plan_ids` answers.
        let position: std::collections::HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
        books.sort_by_key(|b| position.get(b.plan.id.as_str()).copied());
        let mut fx = Effects::default();
        // A plan repaid, settled or written off since it was found is left alone.
        for book in books.iter_mut().filter(|b| b.plan.status == PlanStatus::Defaulted) {
            book.write_off(&mut fx, date, AGED, &reference, date);
        }
        total.count += fx.written_off.count;
        total.amount_fen += fx.written_off.amount_fen;
        fx.apply(&tx).await?;
        tx.commit().await?;
        tracing::info!(business_date = %date, plans = total.count, "end of day: aged plans written off");
    }
    Ok(total)
}
