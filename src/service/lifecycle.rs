//! The life of a funded plan: repayments, compensations from the hold, releases down to the hold
//! target, settlement and default. One mechanism for a single repayment and for a chunk of end
//! of day: `Book`s are changed in memory, their `Effects` collected, then written in a few batched
//! statements.

use super::order_notices::OrderRefs;
use crate::db::banks::{self, ExposureKey};
use crate::db::compensations::{self, Compensation};
use crate::db::credit_lines::{self, CreditLine, LineDelta};
use crate::db::journal::{self, Entry, Refs, account};
use crate::db::notices::record;
use crate::db::orders::{Hold, HoldChange, Order};
use crate::db::plans::{self, Plan};
use crate::db::{Tx, orders as orders_db};
use crate::domain::hold::hold_target;
use crate::domain::installment::{InstallmentState, Split, compensate, unpaid_scheduled_total};
use crate::domain::money::Amount;
use crate::domain::notice::{About, DefaultCompensated, DefaultUncovered, HoldConverted, Notice, PlanSettled, Recipient};
use crate::domain::status::{InstallmentStatus, OrderStatus, PlanStatus, VoidReason};
use crate::error::{ApiError, ApiResult};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A plan with what moving its money needs: its order's terms, its hold, its installments.
#[derive(Debug, Clone)]
pub struct Book {
    pub plan: Plan,
    pub order_id: String,
    /// The order's store or partner, told of its status changes.
    pub seller: Recipient,
    pub out_order_no: String,
    pub hold: Hold,
    pub hold_ratio: Decimal,
    pub penalty_daily_rate: Decimal,
    pub grace_days: i64,
    pub exposure_stripe: i16,
    pub insts: Vec<InstallmentState>,
    pub statuses: Vec<InstallmentStatus>,
    changed: Vec<bool>,
}

/// Loads and locks plans (id order), their holds, and their installments.
pub async fn load_books(tx: &Tx<'_>, plan_ids: &[String]) -> ApiResult<Vec<Book>> {
    let plans = plans::lock_many(tx, plan_ids).await?;
    if plans.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = plans.iter().map(|p| p.id.clone()).collect();
    let terms = orders_db::terms_of_plans(tx, &ids).await?;
    let mut orders: BTreeMap<String, orders_db::PlanTerms> = terms.into_iter().map(|t| (t.order_id.clone(), t)).collect();
    let hold_ids: Vec<String> = orders.values().map(|t| t.hold_id.clone()).collect();
    let holds = orders_db::lock_holds(tx, &hold_ids).await?;
    let mut holds: BTreeMap<String, Hold> = holds.into_iter().map(|h| (h.id.clone(), h)).collect();
    let mut insts: BTreeMap<String, Vec<plans::InstallmentRow>> = BTreeMap::new();
    for (plan_id, row) in plans::installments_of(tx, &ids).await? {
        insts.entry(plan_id).or_default().push(row);
    }
    let mut books = Vec::with_capacity(plans.len());
    for plan in plans {
        // plans.order_id keeps its foreign key to orders (V7 dropped only the orders' and holds' own).
        let o = orders.remove(&plan.order_id).expect("plans.order_id references orders, and the join read every plan's order");
        // No constraint holds one of the two: stored data, not code, would be wrong.
        let seller = Recipient::seller_of(o.store_id.as_deref(), o.partner_id.as_deref()).ok_or_else(|| {
            ApiError::internal_because("Failed to load a plan", format!("order {} has neither store nor partner", plan.order_id))
        })?;
        let hold = holds.remove(&o.hold_id).ok_or_else(|| {
            ApiError::internal_because("Failed to load a plan", format!("order {} has no hold {}", plan.order_id, o.hold_id))
        })?;
        let rows = insts.remove(&plan.id).unwrap_or_default();
        let n = rows.len();
        books.push(Book {
            order_id: plan.order_id.clone(),
            seller,
            out_order_no: o.out_order_no,
            hold,
            hold_ratio: o.hold_ratio,
            penalty_daily_rate: o.penalty_daily_rate,
            grace_days: i64::from(o.grace_days),
            exposure_stripe: o.exposure_stripe,
            statuses: rows.iter().map(|r| r.status).collect(),
            insts: rows.into_iter().map(|r| r.state).collect(),
            changed: vec![false; n],
            plan,
        });
    }
    Ok(books)
}

/// Everything a batch of changes writes, collected first, then written by [`Effects::apply`]:
/// the one path by which a line's held and drawn, a hold's released, converted, voided and
/// remaining, and a bank's exposure change after placement (repayments, compensations, releases,
/// settlement, default, and the voiding of cancellation, rejection and expiry). Placement's
/// reservation (the new hold, its amount added to the line's held, the bank's exposure taken in
/// `db::banks::try_reserve`) is the one other writer: a separate mechanism that reserves under
/// its own locks in one pipelined round trip.
#[derive(Default)]
pub struct Effects {
    installments: Vec<(String, InstallmentState, InstallmentStatus)>,
    holds: BTreeMap<String, HoldChange>,
    lines: BTreeMap<String, LineDelta>,
    /// Principal no longer counting against a bank's exposure, per stripe.
    exposure_freed: BTreeMap<ExposureKey, i64>,
    plan_status: BTreeMap<String, PlanStatus>,
    order_status: BTreeMap<String, OrderStatus>,
    compensations: Vec<Compensation>,
    pub entries: Vec<Entry>,
    pub notices: Vec<Notice>,
    pub compensated: Counter,
    pub uncovered: Counter,
    pub released_fen: i64,
    /// Write-offs to record on their plans (API.md §14; `service::write_offs` decides them).
    pub write_offs: Vec<crate::db::write_offs::NewWriteOff>,
    pub written_off: Counter,
}

/// The holds and lines an [`Effects::apply`] wrote, as written.
pub struct Applied {
    pub holds: BTreeMap<String, Hold>,
    pub lines: BTreeMap<String, CreditLine>,
}

#[derive(Default, Debug, Clone, Copy)]
pub struct Counter {
    pub count: i64,
    pub amount_fen: i64,
}

impl Counter {
    pub fn add(&mut self, amount: Amount) {
        self.count += 1;
        self.amount_fen += amount.fen();
    }
    pub fn to_json(self) -> Value {
        json!({ "count": self.count, "amount": Amount::from_fen(self.amount_fen) })
    }
}

impl Book {
    pub fn refs(&self) -> Refs {
        Refs::new().order(&self.order_id).plan(&self.plan.id).hold(&self.hold.id).line(&self.hold.credit_line_id).bank(&self.plan.bank_id)
    }

    pub fn touch(&mut self, index: usize) {
        self.changed[index] = true;
    }

    pub fn is_paid_off(&self) -> bool {
        self.insts.iter().all(InstallmentState::is_settled)
    }

    /// The ids every notice about this plan's order carries: all five exist once funded.
    pub fn order_refs(&self) -> OrderRefs {
        OrderRefs::unfunded(&self.order_id, &self.hold.id, &self.hold.credit_line_id).funded(&self.plan.id, &self.plan.loan_no)
    }

    /// A notice's content about this plan, to its bank.
    pub fn bank_notice<F>(&self, fields: F) -> About<F> {
        self.order_refs().about(Recipient::Bank(self.plan.bank_id.clone()), fields)
    }

    /// Principal paid in `split` no longer counts against the bank's exposure; the payment moves in the journal.
    fn book_payment(&self, fx: &mut Effects, kind: &'static str, split: &Split, booked_on: NaiveDate, reference: Option<&str>) {
        let mut refs = self.refs();
        if let Some(r) = reference {
            refs = refs.reference(r);
        }
        let mut e = Entry::new(kind, booked_on, refs);
        self.pay_into(fx, &mut e, split);
        fx.entries.push(e);
    }

    /// The payment of `split` to the bank, on `e`.
    fn pay_into(&self, fx: &mut Effects, e: &mut Entry, split: &Split) {
        let bank = &self.plan.bank_id;
        e.transfer(account::plan_principal(&self.plan.id), account::bank_collected(bank), split.principal.fen())
            .transfer(
                account::plan_income(&self.plan.id),
                account::bank_collected(bank),
                (split.interest + split.fee + split.penalty).fen(),
            )
            .transfer(account::bank_exposure(bank), account::bank_exposure_source(bank), split.principal.fen());
        fx.free_exposure(bank, self.exposure_stripe, split.principal);
    }

    /// Takes `amount` out of the hold into the credit line's drawn (代偿), on `e`.
    fn convert(&mut self, fx: &mut Effects, e: &mut Entry, amount: Amount) {
        let remaining = self.hold.remaining.checked_sub(amount).expect("a conversion never exceeds the hold's remaining");
        self.hold.remaining = remaining;
        self.hold.converted += amount;
        self.hold.assert_balanced();
        let line = self.hold.credit_line_id.clone();
        fx.hold_change(&self.hold).converted_fen += amount.fen();
        let l = fx.lines.entry(line.clone()).or_default();
        l.held_fen -= amount.fen();
        l.drawn_fen += amount.fen();
        e.transfer(account::line_held(&line), account::line_drawn(&line), amount.fen()).transfer(
            account::hold_remaining(&self.hold.id),
            account::hold_converted(&self.hold.id),
            amount.fen(),
        );
    }

    fn release(&mut self, fx: &mut Effects, amount: Amount, booked_on: NaiveDate) {
        if amount.is_zero() {
            return;
        }
        self.hold.remaining = self.hold.remaining.checked_sub(amount).expect("a release never exceeds the hold's remaining");
        self.hold.released += amount;
        self.hold.assert_balanced();
        let line = self.hold.credit_line_id.clone();
        fx.hold_change(&self.hold).released_fen += amount.fen();
        fx.lines.entry(line.clone()).or_default().held_fen -= amount.fen();
        let mut e = Entry::new("hold.released", booked_on, self.refs());
        e.transfer(account::line_held(&line), account::line_available(&line), amount.fen()).transfer(
            account::hold_remaining(&self.hold.id),
            account::hold_released(&self.hold.id),
            amount.fen(),
        );
        fx.entries.push(e);
        fx.released_fen += amount.fen();
        fx.notices.push(Notice::HoldReleased(Notice::hold_moved(&self.order_refs(), &self.hold.provider_id, amount, self.hold.remaining)));
    }

    /// Compensates installment `index` from the hold: `min(unpaid, remaining)`; answers the shortfall.
    pub fn compensate_installment(&mut self, fx: &mut Effects, index: usize, value_date: NaiveDate, booked_on: NaiveDate) -> Amount {
        let available = self.hold.remaining;
        let (split, shortfall) = compensate(&mut self.insts[index], available);
        self.touch(index);
        let amount = split.total();
        if amount.is_positive() {
            // One entry: the hold converted into the line's drawn, and paid to the bank.
            let mut e = Entry::new("default.compensated", booked_on, self.refs());
            self.convert(fx, &mut e, amount);
            self.pay_into(fx, &mut e, &split);
            fx.entries.push(e);
            let seq = self.insts[index].seq;
            fx.compensations.push(Compensation { plan_id: self.plan.id.clone(), installment_seq: seq, split, value_date, booked_on });
            fx.compensated.add(amount);
            fx.notices.push(Notice::DefaultCompensated(self.bank_notice(DefaultCompensated { installment_seq: seq, amount, split })));
            let converted = HoldConverted { amount, remaining: self.hold.remaining, installment_seq: seq };
            fx.notices.push(Notice::HoldConverted(self.order_refs().about(Recipient::Provider(self.hold.provider_id.clone()), converted)));
        }
        shortfall
    }

    /// Reports what the hold could not cover and defaults the plan.
    pub fn default_uncovered(&mut self, fx: &mut Effects, index: usize, shortfall: Amount) {
        fx.uncovered.add(shortfall);
        let seq = self.insts[index].seq;
        fx.notices.push(Notice::DefaultUncovered(self.bank_notice(DefaultUncovered {
            installment_seq: seq,
            shortfall,
            amount: shortfall,
        })));
        self.set_status(fx, PlanStatus::Defaulted);
    }

    /// Releases the hold down to its target (everything once the plan is paid off).
    pub fn release_to_target(&mut self, fx: &mut Effects, booked_on: NaiveDate) -> Amount {
        let target = if self.is_paid_off() { Amount::ZERO } else { hold_target(unpaid_scheduled_total(&self.insts), self.hold_ratio) };
        let excess = self.hold.remaining.saturating_sub(target);
        self.release(fx, excess, booked_on);
        excess
    }

    pub fn set_status(&mut self, fx: &mut Effects, status: PlanStatus) {
        if self.plan.status == status {
            return;
        }
        self.plan.status = status;
        fx.plan_status.insert(self.plan.id.clone(), status);
        fx.order_status.insert(self.order_id.clone(), status.into());
        fx.notices.push(Notice::order_updated(&self.order_refs(), self.seller.clone(), &self.out_order_no, status.into()));
    }

    /// Everything still owed has fallen due at once (an acceleration the hold could not cover,
    /// API.md §5): every installment left owing reads `overdue`, those due later included.
    pub fn fall_due(&mut self) {
        for i in 0..self.insts.len() {
            if !self.insts[i].is_settled() && self.statuses[i] != InstallmentStatus::Overdue {
                self.statuses[i] = InstallmentStatus::Overdue;
                self.touch(i);
            }
        }
    }

    /// Settles the plan once nothing is owed: the whole hold is released.
    pub fn settle_if_paid_off(&mut self, fx: &mut Effects, booked_on: NaiveDate) {
        if self.plan.status != PlanStatus::Settled && self.is_paid_off() {
            self.release_to_target(fx, booked_on);
            self.set_status(fx, PlanStatus::Settled);
            fx.notices.push(Notice::PlanSettled(self.bank_notice(PlanSettled { amount: self.plan.principal })));
        }
    }

    /// Records a repayment's payment in the journal (the split was already applied to the installments).
    pub fn book_repayment(&self, fx: &mut Effects, split: &Split, booked_on: NaiveDate, repayment_id: &str) {
        self.book_payment(fx, "repayment.recorded", split, booked_on, Some(repayment_id));
    }

    /// Queues every changed installment with the status it now has.
    pub fn collect_installments(&mut self, fx: &mut Effects, as_of: Option<NaiveDate>) {
        for (i, inst) in self.insts.iter().enumerate() {
            if !self.changed[i] {
                continue;
            }
            inst.assert_invariants();
            let status = match as_of {
                Some(d) => inst.status(d),
                None if inst.is_settled() => inst.status(inst.due_on),
                None => self.statuses[i],
            };
            self.statuses[i] = status;
            fx.installments.push((self.plan.id.clone(), inst.clone(), status));
        }
        self.changed.iter_mut().for_each(|c| *c = false);
    }
}

impl Effects {
    /// The change of `hold`, which the caller has just changed in memory: the remaining it leaves
    /// is the hold's now, checked against the row written.
    fn hold_change(&mut self, hold: &Hold) -> &mut HoldChange {
        let change = self
            .holds
            .entry(hold.id.clone())
            .or_insert_with(|| HoldChange { line_id: hold.credit_line_id.clone(), ..HoldChange::default() });
        change.remaining_after_fen = hold.remaining.fen();
        change
    }

    pub(super) fn free_exposure(&mut self, bank_id: &str, stripe: i16, principal: Amount) {
        *self.exposure_freed.entry(ExposureKey { bank_id: bank_id.to_string(), stripe }).or_default() += principal.fen();
    }

    /// Voids what is left of an unfunded order's hold, `hold` as locked, back to its line's
    /// available, for `reason`, and frees the principal its bank reserved (cancellation,
    /// rejection, expiry, decline, confirmation timeout): the hold's `hold.voided` entry and the
    /// bank's entry of `kind`.
    pub fn void(&mut self, order: &Order, hold: &Hold, reason: VoidReason, kind: &'static str, booked_on: NaiveDate) {
        assert_eq!((&hold.id, &hold.order_id), (&order.hold_id, &order.id), "the hold voided is the order's");
        self.free_exposure(&order.bank_id, order.exposure_stripe, order.principal);
        let refs = Refs::new().order(&order.id).hold(&hold.id).line(&hold.credit_line_id).bank(&order.bank_id);
        self.void_remaining(hold, reason, refs.clone(), booked_on);
        let mut e = Entry::new(kind, booked_on, refs);
        e.transfer(account::bank_exposure(&order.bank_id), account::bank_exposure_source(&order.bank_id), order.principal.fen());
        self.entries.push(e);
    }

    /// Voids `hold`'s remaining (as locked) back to its line's available, for `reason`: its
    /// `hold.voided` entry. Answers the amount voided.
    pub fn void_remaining(&mut self, hold: &Hold, reason: VoidReason, refs: Refs, booked_on: NaiveDate) -> Amount {
        let voided = hold.remaining;
        let mut after = hold.clone();
        after.voided += voided;
        after.remaining = Amount::ZERO;
        after.assert_balanced();
        let change = self.hold_change(&after);
        change.voided_fen += voided.fen();
        change.void_reason = Some(reason);
        let line = &hold.credit_line_id;
        self.lines.entry(line.clone()).or_default().held_fen -= voided.fen();
        let mut e = Entry::new("hold.voided", booked_on, refs);
        e.transfer(account::line_held(line), account::line_available(line), voided.fen()).transfer(
            account::hold_remaining(&hold.id),
            account::hold_voided(&hold.id),
            voided.fen(),
        );
        self.entries.push(e);
        voided
    }

    /// The customer repaid `amount` of the line's drawn to its provider (debt repayment `id`).
    pub fn repay_debt(&mut self, line_id: &str, amount: Amount, booked_on: NaiveDate, id: &str) {
        self.lines.entry(line_id.to_string()).or_default().drawn_fen -= amount.fen();
        let mut e = Entry::new("line.debt_repaid", booked_on, Refs::new().line(line_id).reference(id));
        e.transfer(account::line_drawn(line_id), account::line_available(line_id), amount.fen());
        self.entries.push(e);
    }

    /// Writes everything in a few statements, in the fixed lock order: holds, lines, banks.
    pub async fn apply(self, tx: &Tx<'_>) -> ApiResult<Applied> {
        let rows: Vec<(&str, &InstallmentState, InstallmentStatus)> =
            self.installments.iter().map(|(p, s, st)| (p.as_str(), s, *st)).collect();
        plans::save_installments(tx, &rows).await?;
        let holds = orders_db::take_from_holds(tx, &self.holds).await?;
        let lines = move_lines(tx, &self.lines).await?;
        banks::release_many(tx, &self.exposure_freed).await?;
        let (ids, statuses): (Vec<&str>, Vec<PlanStatus>) = self.plan_status.iter().map(|(id, s)| (id.as_str(), *s)).unzip();
        plans::set_statuses(tx, &ids, &statuses).await?;
        let (ids, statuses): (Vec<&str>, Vec<OrderStatus>) = self.order_status.iter().map(|(id, s)| (id.as_str(), *s)).unzip();
        orders_db::set_statuses(tx, &ids, &statuses).await?;
        compensations::insert_all(tx, &self.compensations).await?;
        crate::db::write_offs::record_all(tx, &self.write_offs).await?;
        journal::post_all(tx, &self.entries).await?;
        record(tx, &self.notices).await?;
        Ok(Applied { holds, lines })
    }
}

/// Locks the lines (id order), adds the deltas, and checks both sides: each line written moved
/// by exactly its delta from what was locked.
async fn move_lines(tx: &Tx<'_>, deltas: &BTreeMap<String, LineDelta>) -> ApiResult<BTreeMap<String, CreditLine>> {
    if deltas.is_empty() {
        return Ok(BTreeMap::new());
    }
    let ids: Vec<&str> = deltas.keys().map(String::as_str).collect();
    let before: BTreeMap<String, CreditLine> = credit_lines::lock_many(tx, &ids).await?.into_iter().map(|l| (l.id.clone(), l)).collect();
    // holds.credit_line_id lost its foreign key (V7): a missing line is stored data gone wrong.
    if let Some(missing) = ids.iter().find(|id| !before.contains_key(**id)) {
        return Err(ApiError::internal_because("Failed to move credit line balances", format!("credit line {missing} does not exist")));
    }
    let after = credit_lines::move_balances(tx, deltas).await?;
    let after: BTreeMap<String, CreditLine> = after.into_iter().map(|l| (l.id.clone(), l)).collect();
    for (id, d) in deltas {
        let (b, a) = (&before[id], &after[id]);
        assert_eq!(
            (a.held.fen(), a.drawn.fen()),
            (b.held.fen() + d.held_fen, b.drawn.fen() + d.drawn_fen),
            "line {id}'s held and drawn move by exactly their delta"
        );
    }
    Ok(after)
}
