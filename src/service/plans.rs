//! Plan views shared by orders and the plan endpoints.

use crate::db::plans::{InstallmentRow, Plan};
use crate::db::setup::rate_string;
use crate::domain::money::Amount;
use crate::domain::status::{InstallmentStatus, PlanStatus};
use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct InstallmentView {
    pub seq: u32,
    pub due_on: NaiveDate,
    pub principal: Amount,
    pub interest: Amount,
    pub fee: Amount,
    pub penalty: Amount,
    pub paid_principal: Amount,
    pub paid_interest: Amount,
    pub paid_fee: Amount,
    pub paid_penalty: Amount,
    pub compensated: Amount,
    pub waived: Amount,
    #[schema(value_type = String)]
    pub status: InstallmentStatus,
    /// API.md §14: its part of the plan's write-off, `0.00` when none.
    pub written_off: Amount,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accelerated {
    pub as_of: NaiveDate,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    pub id: String,
    pub order_id: String,
    pub bank_id: String,
    pub loan_no: String,
    pub principal: Amount,
    pub pricing: String,
    pub rate: String,
    pub apr_irr: String,
    pub term_months: i32,
    pub funded_on: NaiveDate,
    #[schema(value_type = String)]
    pub status: PlanStatus,
    pub outstanding_principal: Amount,
    pub compensated: Amount,
    pub accelerated: Option<Accelerated>,
    pub installments: Vec<InstallmentView>,
    /// API.md §14: the write-off, and what was recovered and is still recoverable; all three
    /// `null` on a plan never written off.
    pub written_off: Option<WrittenOffView>,
    pub recovered: Option<Amount>,
    pub recoverable: Option<Amount>,
    /// API.md §13: the plan's latest return (kept after a rejection), else `null`.
    pub return_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WrittenOffView {
    pub on: NaiveDate,
    pub reason: String,
    pub reference: String,
    pub principal: Amount,
    pub interest: Amount,
    pub fee: Amount,
    pub penalty: Amount,
    pub total: Amount,
}

pub fn installment_view(row: &InstallmentRow) -> InstallmentView {
    let s = &row.state;
    InstallmentView {
        seq: s.seq,
        due_on: s.due_on,
        principal: s.principal,
        interest: s.interest,
        fee: s.fee,
        penalty: s.penalty,
        paid_principal: s.paid_principal,
        paid_interest: s.paid_interest,
        paid_fee: s.paid_fee,
        paid_penalty: s.paid_penalty,
        compensated: s.compensated,
        waived: s.waived(),
        status: row.status,
        written_off: s.written_off,
    }
}

pub fn plan_view(p: Plan, installments: &[InstallmentRow]) -> PlanView {
    let outstanding: Amount = installments.iter().map(|i| i.state.unpaid_principal()).sum();
    let compensated: Amount = installments.iter().map(|i| i.state.compensated).sum();
    let written_off = p.written_off.as_ref().map(|w| WrittenOffView {
        on: w.on,
        reason: w.reason.clone(),
        reference: w.reference.clone(),
        principal: w.split.principal,
        interest: w.split.interest,
        fee: w.split.fee,
        penalty: w.split.penalty,
        total: w.split.total(),
    });
    let recoverable =
        written_off.as_ref().map(|w| w.total.checked_sub(p.recovered).expect("recovered never exceeds the write-off (CHECK)"));
    let recovered = written_off.as_ref().map(|_| p.recovered);
    PlanView {
        return_id: p.return_id.clone(),
        written_off,
        recovered,
        recoverable,
        accelerated: match (p.accelerated_as_of, p.accelerated_reason) {
            (Some(as_of), Some(reason)) => Some(Accelerated { as_of, reason }),
            _ => None,
        },
        id: p.id,
        order_id: p.order_id,
        bank_id: p.bank_id,
        loan_no: p.loan_no,
        principal: p.principal,
        pricing: p.pricing,
        rate: rate_string(p.rate),
        apr_irr: p.apr_irr,
        term_months: p.term_months,
        funded_on: p.funded_on,
        status: p.status,
        outstanding_principal: outstanding,
        compensated,
        installments: installments.iter().map(installment_view).collect(),
    }
}

// ---------- reading, repaying, paying off, accelerating ----------

use super::Deps;
use super::lifecycle::{Book, Effects, load_books};
use crate::auth::{Principal, PrincipalKind, new_object_id};
use crate::db::{self, Tx, orders as orders_db, plans as plans_db};
use crate::domain::installment::{AllocError, Split, allocate, bring_all_up_to, payoff, waive_beyond_payoff};
use crate::domain::notice::{Notice, PlanAccelerated, RepaymentRecorded};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::idempotency::{self, Answer, IdempotentRequest};
use actix_web::http::StatusCode;
use serde_json::json;

/// Its bank and the admin act on a plan; its order's owner may also read it.
pub(super) async fn plan_visible(c: &impl crate::db::Db, caller: &Principal, id: &str, owner_may_read: bool) -> ApiResult<Plan> {
    let plan = plans_db::get(c, id).await?.ok_or_else(ApiError::not_found)?;
    if caller.is_admin() || caller.is(PrincipalKind::Bank, &plan.bank_id) {
        return Ok(plan);
    }
    if owner_may_read {
        let order = orders_db::get(c, &plan.order_id).await?.ok_or_else(ApiError::not_found)?;
        if order.owner_scope == caller.scope() {
            return Ok(plan);
        }
    }
    Err(ApiError::not_found())
}

#[tracing::instrument(skip_all, fields(plan_id = %id))]
pub async fn get(state: &Deps, caller: &Principal, id: &str) -> ApiResult<PlanView> {
    let mut client = state.pool.get().await?;
    let tx = Tx::snapshot(&mut client).await?;
    let plan = plan_visible(&tx, caller, id, true).await?;
    let insts = plans_db::installments(&tx, id).await?;
    tx.commit().await?;
    Ok(plan_view(plan, &insts))
}

/// A date the bank reports: not before `funded_on`, not after today unless configured.
pub(super) fn check_value_date(state: &Deps, plan: &Plan, date: NaiveDate, field: &str) -> ApiResult<()> {
    if date < plan.funded_on {
        return Err(
            ApiError::new(ErrorCode::InvalidDate, format!("{field} is before the plan was funded on {}", plan.funded_on)).field(field)
        );
    }
    if date > state.clock.today() && !state.settings.clock.allow_future_dates {
        return Err(ApiError::new(ErrorCode::InvalidDate, format!("{field} is after today")).field(field));
    }
    Ok(())
}

/// Brings due installments' penalty up to `date` (a defaulted plan's penalty has stopped).
fn bring_up(book: &mut Book, date: NaiveDate) {
    if book.plan.status != PlanStatus::Active {
        return;
    }
    let rate = book.penalty_daily_rate;
    for i in 0..book.insts.len() {
        if bring_all_up_to(std::slice::from_mut(&mut book.insts[i]), date, rate).is_positive() {
            book.touch(i);
        }
    }
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PayoffView {
    pub as_of: NaiveDate,
    pub amount: Amount,
    pub principal: Amount,
    pub interest: Amount,
    pub fee: Amount,
    pub penalty: Amount,
}

#[tracing::instrument(skip_all, fields(plan_id = %id, as_of = ?as_of))]
pub async fn payoff_quote(state: &Deps, caller: &Principal, id: &str, as_of: Option<NaiveDate>) -> ApiResult<PayoffView> {
    let mut client = state.pool.get().await?;
    let tx = Tx::snapshot(&mut client).await?;
    let plan = plan_visible(&tx, caller, id, false).await?;
    if matches!(plan.status, PlanStatus::Settled | PlanStatus::WrittenOff | PlanStatus::Returned) {
        return Err(ApiError::invalid_state(format!("the plan is {}", plan.status)));
    }
    if plan.return_requested {
        return Err(super::returns::frozen(plan.return_id.as_deref()));
    }
    let as_of = as_of.unwrap_or_else(|| state.clock.today());
    if as_of < plan.funded_on {
        return Err(
            ApiError::new(ErrorCode::InvalidDate, format!("as_of is before the plan was funded on {}", plan.funded_on)).field("as_of")
        );
    }
    let rows = plans_db::installments(&tx, id).await?;
    let rate = orders_db::penalty_daily_rate(&tx, &plan.order_id).await?;
    tx.commit().await?;
    let mut insts: Vec<_> = rows.into_iter().map(|r| r.state).collect();
    if plan.status == PlanStatus::Active {
        bring_all_up_to(&mut insts, as_of, rate);
    }
    let s = payoff(&insts, as_of);
    Ok(PayoffView { as_of, amount: s.total(), principal: s.principal, interest: s.interest, fee: s.fee, penalty: s.penalty })
}

pub struct RepaymentRequest {
    pub amount: Amount,
    pub paid_on: NaiveDate,
    pub reference: String,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AllocationView {
    pub seq: u32,
    pub penalty: Amount,
    pub fee: Amount,
    pub interest: Amount,
    pub principal: Amount,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RepaymentView {
    pub id: String,
    pub plan_id: String,
    pub amount: Amount,
    pub paid_on: NaiveDate,
    pub booked_on: NaiveDate,
    pub reference: String,
    pub allocations: Vec<AllocationView>,
    pub hold_released: Amount,
    #[schema(value_type = String)]
    pub plan_status: PlanStatus,
}

async fn precheck_plan(tx: &Tx<'_>, caller: &Principal, id: &str) -> ApiResult<()> {
    plan_visible(tx, caller, id, false).await.map(|_| ())
}

pub(super) async fn lock_book(tx: &Tx<'_>, id: &str) -> ApiResult<Book> {
    load_books(tx, &[id.to_string()]).await?.pop().ok_or_else(ApiError::not_found)
}

#[tracing::instrument(skip_all, fields(plan_id = %id, paid_on = %r.paid_on))]
pub async fn repay(state: &Deps, caller: &Principal, id: &str, request: &IdempotentRequest, r: RepaymentRequest) -> ApiResult<Answer> {
    idempotency::execute(
        &state.pool,
        request,
        async |tx: &Tx<'_>| precheck_plan(tx, caller, id).await,
        async |tx: &Tx<'_>, ()| {
            let (mut book, booked_on) = load_repayment(state, tx, id, &r).await?;
            let repayment_id = new_object_id("rep");
            let (fx, split, view) = decide_repayment(&mut book, &r, booked_on, repayment_id)?;
            apply_repayment(tx, fx, &split, &view).await?;
            Ok((StatusCode::CREATED, view))
        },
    )
    .await
}

fn reference_used() -> ApiError {
    ApiError::already_exists("this reference was already used on this plan").field("reference")
}

/// The plan locked with its book, checked for a repayment (reference unused, plan not settled,
/// `paid_on` allowed), and the date the repayment is booked on.
async fn load_repayment(state: &Deps, tx: &Tx<'_>, id: &str, r: &RepaymentRequest) -> ApiResult<(Book, NaiveDate)> {
    if db::repayments::reference_taken(tx, id, &r.reference).await? {
        return Err(reference_used());
    }
    let book = lock_book(tx, id).await?;
    if matches!(book.plan.status, PlanStatus::Settled | PlanStatus::WrittenOff | PlanStatus::Returned) {
        return Err(ApiError::invalid_state(format!("the plan is {}", book.plan.status)));
    }
    if book.plan.return_requested {
        return Err(super::returns::frozen(book.plan.return_id.as_deref()));
    }
    check_value_date(state, &book.plan, r.paid_on, "paid_on")?;
    let booked_on = db::business_days::booking_date(tx, r.paid_on).await?;
    Ok((book, booked_on))
}

/// The repayment decided on the book, in memory: penalty brought up to `paid_on`, the amount
/// allocated, the hold released to its target, the plan settled once paid off. Answers what to
/// write and the answer.
fn decide_repayment(
    book: &mut Book,
    r: &RepaymentRequest,
    booked_on: NaiveDate,
    repayment_id: String,
) -> ApiResult<(Effects, Split, RepaymentView)> {
    bring_up(book, r.paid_on);
    let allocation = match allocate(&mut book.insts, r.amount, r.paid_on) {
        Ok(a) => a,
        Err(AllocError::Overpayment { payoff }) => {
            return Err(ApiError::new(ErrorCode::Overpayment, format!("more than the payoff of {payoff} as of {}", r.paid_on))
                .field("amount")
                .details(json!({ "payoff": payoff })));
        }
        Err(e) => return Err(ApiError::invalid("amount", e.to_string())),
    };
    for line in &allocation.lines {
        if let Some(i) = book.insts.iter().position(|x| x.seq == line.seq) {
            book.touch(i);
        }
    }
    if allocation.settled {
        (0..book.insts.len()).for_each(|i| book.touch(i));
    }
    let split = allocation.split();
    assert_eq!(split.total(), r.amount, "the allocation spends exactly the repayment");
    let mut fx = Effects::default();
    book.book_repayment(&mut fx, &split, booked_on, &repayment_id);
    book.release_to_target(&mut fx, booked_on);
    book.settle_if_paid_off(&mut fx, booked_on);
    book.collect_installments(&mut fx, None);
    let hold_released = Amount::from_fen(fx.released_fen);
    let allocations: Vec<AllocationView> = allocation
        .lines
        .iter()
        .map(|l| AllocationView {
            seq: l.seq,
            penalty: l.split.penalty,
            fee: l.split.fee,
            interest: l.split.interest,
            principal: l.split.principal,
        })
        .collect();
    let recorded = RepaymentRecorded {
        repayment_id: repayment_id.clone(),
        reference: r.reference.clone(),
        amount: r.amount,
        paid_on: r.paid_on,
        booked_on,
        hold_released,
        plan_status: book.plan.status,
        split,
    };
    fx.notices.insert(0, Notice::RepaymentRecorded(book.bank_notice(recorded)));
    let view = RepaymentView {
        id: repayment_id,
        plan_id: book.plan.id.clone(),
        amount: r.amount,
        paid_on: r.paid_on,
        booked_on,
        reference: r.reference.clone(),
        allocations,
        hold_released,
        plan_status: book.plan.status,
    };
    Ok((fx, split, view))
}

/// Records the repayment, then writes what it moved.
async fn apply_repayment(tx: &Tx<'_>, fx: Effects, split: &Split, v: &RepaymentView) -> ApiResult<()> {
    let allocations = serde_json::to_value(&v.allocations)
        .map_err(|e| ApiError::internal_because("Failed to serialize the repayment's allocations", e))?;
    let new = db::repayments::NewRepayment {
        id: &v.id,
        plan_id: &v.plan_id,
        amount: v.amount,
        paid_on: v.paid_on,
        booked_on: v.booked_on,
        reference: &v.reference,
        split,
        allocations: &allocations,
        hold_released: v.hold_released,
    };
    if !db::repayments::insert(tx, &new).await? {
        return Err(reference_used());
    }
    fx.apply(tx).await?;
    Ok(())
}

/// `POST /v1/plans/{id}/accelerate`: the payoff falls due at once; the hold converts what it covers.
#[tracing::instrument(skip_all, fields(plan_id = %id, as_of = %as_of))]
pub async fn accelerate(
    state: &Deps,
    caller: &Principal,
    id: &str,
    request: &IdempotentRequest,
    as_of: NaiveDate,
    reason: String,
) -> ApiResult<Answer> {
    idempotency::execute(
        &state.pool,
        request,
        async |tx: &Tx<'_>| precheck_plan(tx, caller, id).await,
        async |tx: &Tx<'_>, ()| {
            let mut book = lock_book(tx, id).await?;
            if book.plan.status != PlanStatus::Active {
                return Err(ApiError::invalid_state(format!("the plan is {}; only an active plan can be accelerated", book.plan.status)));
            }
            if book.plan.return_requested {
                return Err(super::returns::frozen(book.plan.return_id.as_deref()));
            }
            check_value_date(state, &book.plan, as_of, "as_of")?;
            bring_up(&mut book, as_of);
            if waive_beyond_payoff(&mut book.insts, as_of).is_positive() {
                (0..book.insts.len()).for_each(|i| book.touch(i));
            }
            let booked_on = db::business_days::booking_date(tx, as_of).await?;
            let mut fx = Effects::default();
            plans_db::set_accelerated(tx, id, as_of, &reason).await?;
            let accelerated = PlanAccelerated { as_of, reason: reason.clone(), amount: payoff(&book.insts, as_of).total() };
            fx.notices.push(Notice::PlanAccelerated(book.bank_notice(accelerated)));
            for i in 0..book.insts.len() {
                if book.insts[i].is_settled() {
                    continue;
                }
                let shortfall = book.compensate_installment(&mut fx, i, as_of, booked_on);
                if shortfall.is_positive() {
                    let total_short: Amount = book.insts.iter().map(|x| x.unpaid_total()).sum();
                    book.default_uncovered(&mut fx, i, total_short);
                    break;
                }
            }
            book.settle_if_paid_off(&mut fx, booked_on);
            if book.plan.status == PlanStatus::Defaulted {
                book.release_to_target(&mut fx, booked_on);
                book.fall_due();
            }
            book.collect_installments(&mut fx, None);
            fx.apply(tx).await?;
            let insts = plans_db::installments(tx, id).await?;
            let plan = plans_db::get(tx, id).await?.expect("lock_book found and locked this plan in this transaction");
            Ok((StatusCode::OK, plan_view(plan, &insts)))
        },
    )
    .await
}
