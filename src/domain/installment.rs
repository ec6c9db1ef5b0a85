//! The live state of installments and the arithmetic of a plan's life
//! (API.md §9): penalty accrual, payoff, allocation of repayments, early
//! settlement and compensation from the hold.
//!
//! Every function takes the installments of one plan in due order (ascending
//! `seq` and `due_on`) and asserts it.
//!
//! What is forgiven (early settlement, acceleration) is kept in two amounts.
//! `waived_interest_and_fee`: waivers only ever forgive *all* that is left of an
//! installment's fee and interest at once, so it is attributed to the fee first,
//! then the interest, and never to principal. `waived_penalty`: the penalty of an
//! installment due after the payoff date, which the payoff does not count (a
//! back-dated settlement or acceleration after end of day accrued it). API.md's
//! `waived` is their sum.

use std::ops::{Add, AddAssign};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use super::money::Amount;
use super::schedule::ScheduledInstallment;

pub use super::status::InstallmentStatus;

/// An amount split into its components, as repayments and compensations are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Split {
    /// Principal part.
    pub principal: Amount,
    /// Interest part.
    pub interest: Amount,
    /// Fee part.
    pub fee: Amount,
    /// Penalty (罚息) part.
    pub penalty: Amount,
}

impl Split {
    /// principal + interest + fee + penalty.
    pub fn total(&self) -> Amount {
        self.principal + self.interest + self.fee + self.penalty
    }
}

impl Add for Split {
    type Output = Split;
    fn add(self, other: Split) -> Split {
        Split {
            principal: self.principal + other.principal,
            interest: self.interest + other.interest,
            fee: self.fee + other.fee,
            penalty: self.penalty + other.penalty,
        }
    }
}

impl AddAssign for Split {
    fn add_assign(&mut self, other: Split) {
        *self = *self + other;
    }
}

/// One installment as it stands: what was scheduled, what accrued, what was
/// paid (compensation included), compensated and waived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallmentState {
    /// 1-based position in the plan.
    pub seq: u32,
    /// Due date.
    pub due_on: NaiveDate,
    /// Scheduled principal.
    pub principal: Amount,
    /// Scheduled interest.
    pub interest: Amount,
    /// Scheduled fee.
    pub fee: Amount,
    /// Penalty accrued so far.
    pub penalty: Amount,
    /// The last date the penalty was brought up to.
    pub penalty_through: Option<NaiveDate>,
    /// Principal paid, compensation included.
    pub paid_principal: Amount,
    /// Interest paid, compensation included.
    pub paid_interest: Amount,
    /// Fee paid, compensation included.
    pub paid_fee: Amount,
    /// Penalty paid, compensation included.
    pub paid_penalty: Amount,
    /// The part of the payments that came from the hold.
    pub compensated: Amount,
    /// Interest and fee forgiven (early settlement, acceleration).
    pub waived_interest_and_fee: Amount,
    /// Penalty forgiven: accrued on an installment due after the payoff date.
    pub waived_penalty: Amount,
    /// What it still owed when its plan was written off (API.md §14); once positive it owes
    /// nothing more (`domain::write_off`).
    pub written_off: Amount,
    /// Principal forgiven: a returned device's unpaid principal (API.md §13), which the return
    /// itself repays to the bank.
    pub waived_principal: Amount,
}

impl From<&ScheduledInstallment> for InstallmentState {
    fn from(scheduled: &ScheduledInstallment) -> InstallmentState {
        InstallmentState::from_scheduled(scheduled)
    }
}

impl InstallmentState {
    /// A fresh installment: nothing accrued, paid or waived.
    pub fn from_scheduled(scheduled: &ScheduledInstallment) -> InstallmentState {
        InstallmentState {
            seq: scheduled.seq,
            due_on: scheduled.due_on,
            principal: scheduled.principal,
            interest: scheduled.interest,
            fee: scheduled.fee,
            penalty: Amount::ZERO,
            penalty_through: None,
            paid_principal: Amount::ZERO,
            paid_interest: Amount::ZERO,
            paid_fee: Amount::ZERO,
            paid_penalty: Amount::ZERO,
            compensated: Amount::ZERO,
            waived_interest_and_fee: Amount::ZERO,
            waived_penalty: Amount::ZERO,
            written_off: Amount::ZERO,
            waived_principal: Amount::ZERO,
        }
    }

    /// Everything forgiven (API.md's `waived`).
    pub fn waived(&self) -> Amount {
        self.waived_interest_and_fee + self.waived_penalty + self.waived_principal
    }

    /// The part of `waived_interest_and_fee` forgiving the fee.
    fn waived_fee(&self) -> Amount {
        self.waived_interest_and_fee.min(remaining(self.fee, self.paid_fee, "fee"))
    }

    /// The part of `waived_interest_and_fee` forgiving the interest.
    fn waived_interest(&self) -> Amount {
        remaining(self.waived_interest_and_fee, self.waived_fee(), "waived")
    }

    /// Written off with its plan: whatever was open then is the write-off's, not owed.
    pub fn is_written_off(&self) -> bool {
        self.written_off.is_positive()
    }

    /// Principal still owed.
    pub fn unpaid_principal(&self) -> Amount {
        if self.is_written_off() {
            return Amount::ZERO;
        }
        let open = remaining(self.principal, self.paid_principal, "principal");
        remaining(open, self.waived_principal, "waived principal")
    }

    /// Interest still owed (waived interest is not owed).
    pub fn unpaid_interest(&self) -> Amount {
        if self.is_written_off() {
            return Amount::ZERO;
        }
        let open = remaining(self.interest, self.paid_interest, "interest");
        remaining(open, self.waived_interest(), "waived interest")
    }

    /// Fee still owed (a waived fee is not owed).
    pub fn unpaid_fee(&self) -> Amount {
        if self.is_written_off() {
            return Amount::ZERO;
        }
        let open = remaining(self.fee, self.paid_fee, "fee");
        remaining(open, self.waived_fee(), "waived fee")
    }

    /// Penalty accrued and still owed (waived penalty is not owed).
    pub fn unpaid_penalty(&self) -> Amount {
        if self.is_written_off() {
            return Amount::ZERO;
        }
        let open = remaining(self.penalty, self.paid_penalty, "penalty");
        remaining(open, self.waived_penalty, "waived penalty")
    }

    /// Unpaid principal + interest + fee (waived parts excluded): the base of the hold.
    pub fn unpaid_scheduled(&self) -> Amount {
        self.unpaid_principal() + self.unpaid_interest() + self.unpaid_fee()
    }

    /// Everything still owed, penalty included.
    pub fn unpaid_total(&self) -> Amount {
        self.unpaid_scheduled() + self.unpaid_penalty()
    }

    /// Everything paid, compensation included.
    pub fn paid_total(&self) -> Amount {
        self.paid_principal + self.paid_interest + self.paid_fee + self.paid_penalty
    }

    /// Everything still owed, split by component.
    pub fn unpaid_split(&self) -> Split {
        Split {
            principal: self.unpaid_principal(),
            interest: self.unpaid_interest(),
            fee: self.unpaid_fee(),
            penalty: self.unpaid_penalty(),
        }
    }

    /// True when nothing is owed.
    pub fn is_settled(&self) -> bool {
        self.unpaid_total().is_zero()
    }

    /// Status as of a date: overdue when anything is unpaid and `due_on < as_of`;
    /// once nothing is owed, waived if anything was forgiven, else paid.
    pub fn status(&self, as_of: NaiveDate) -> InstallmentStatus {
        if self.is_written_off() {
            InstallmentStatus::WrittenOff
        } else if self.is_settled() {
            if self.waived().is_positive() { InstallmentStatus::Waived } else { InstallmentStatus::Paid }
        } else if self.due_on < as_of {
            InstallmentStatus::Overdue
        } else {
            InstallmentStatus::Pending
        }
    }

    /// Brings the penalty up to `date`: adds
    /// `round(unpaid principal × penalty_daily_rate × days)`, `days` counted from
    /// the later of `due_on` and `penalty_through`. Returns what was added; a
    /// date not after that start adds nothing. Penalty never decreases.
    ///
    /// # Panics
    /// If `penalty_daily_rate` is negative.
    pub fn bring_up_to(&mut self, date: NaiveDate, penalty_daily_rate: Decimal) -> Amount {
        assert!(!penalty_daily_rate.is_sign_negative(), "penalty rate must not be negative");
        let start = self.penalty_through.map_or(self.due_on, |through| through.max(self.due_on));
        if date <= start {
            return Amount::ZERO;
        }
        let days = (date - start).num_days();
        assert!(days > 0, "penalty accrues over at least one day");
        let base = self.unpaid_principal().as_decimal() * penalty_daily_rate * Decimal::from(days);
        let added = Amount::round_half_up(base);
        let penalty_before = self.penalty;
        self.penalty += added;
        self.penalty_through = Some(date);
        assert!(self.penalty >= penalty_before, "penalty never decreases");
        added
    }

    /// Pays up to `budget` in the order penalty → fee → interest → principal.
    fn pay_up_to(&mut self, budget: Amount) -> Split {
        let mut left = budget;
        let penalty = take(&mut left, self.unpaid_penalty());
        let fee = take(&mut left, self.unpaid_fee());
        let interest = take(&mut left, self.unpaid_interest());
        let principal = take(&mut left, self.unpaid_principal());
        let split = Split { principal, interest, fee, penalty };
        self.apply(split);
        assert_eq!(split.total() + left, budget, "a budget is paid or left over");
        split
    }

    /// Records a payment of `split`, which must not exceed what is owed.
    fn apply(&mut self, split: Split) {
        let owed = self.unpaid_split();
        assert!(split.principal <= owed.principal, "seq {}: principal overpaid", self.seq);
        assert!(split.interest <= owed.interest, "seq {}: interest overpaid", self.seq);
        assert!(split.fee <= owed.fee, "seq {}: fee overpaid", self.seq);
        assert!(split.penalty <= owed.penalty, "seq {}: penalty overpaid", self.seq);
        self.paid_principal += split.principal;
        self.paid_interest += split.interest;
        self.paid_fee += split.fee;
        self.paid_penalty += split.penalty;
        self.assert_invariants();
    }

    /// Forgives all the interest and fee still owed; returns the amount waived.
    pub(crate) fn waive_interest_and_fee(&mut self) -> Amount {
        let forgiven = self.unpaid_interest() + self.unpaid_fee();
        self.waived_interest_and_fee += forgiven;
        assert!(self.unpaid_interest().is_zero(), "seq {}: interest fully waived", self.seq);
        assert!(self.unpaid_fee().is_zero(), "seq {}: fee fully waived", self.seq);
        self.assert_invariants();
        forgiven
    }

    /// Forgives everything still owed (a returned device, API.md §13); answers what was waived.
    pub fn waive_all(&mut self) -> Split {
        let open = self.unpaid_split();
        self.waive_interest_and_fee();
        self.waive_penalty();
        self.waived_principal += open.principal;
        self.assert_invariants();
        assert!(self.is_settled(), "seq {}: a waived installment owes nothing", self.seq);
        open
    }

    /// Forgives all the penalty still owed; returns the amount waived.
    fn waive_penalty(&mut self) -> Amount {
        let forgiven = self.unpaid_penalty();
        self.waived_penalty += forgiven;
        assert!(self.unpaid_penalty().is_zero(), "seq {}: penalty fully waived", self.seq);
        self.assert_invariants();
        forgiven
    }

    /// Asserts the installment's invariants: nothing paid beyond what was
    /// owed, nothing forgiven beyond what was not paid, compensation within payments.
    pub fn assert_invariants(&self) {
        assert!(self.seq >= 1, "seq is 1-based");
        assert!(
            self.paid_principal + self.waived_principal <= self.principal,
            "seq {}: paid and waived principal within principal",
            self.seq
        );
        assert!(self.paid_interest <= self.interest, "seq {}: paid interest within interest", self.seq);
        assert!(self.paid_fee <= self.fee, "seq {}: paid fee within fee", self.seq);
        assert!(self.paid_penalty <= self.penalty, "seq {}: paid penalty within penalty", self.seq);
        let open_interest_and_fee = (self.interest + self.fee).checked_sub(self.paid_interest + self.paid_fee);
        assert!(
            open_interest_and_fee.is_some_and(|open| self.waived_interest_and_fee <= open),
            "seq {}: waived within the interest and fee not paid",
            self.seq
        );
        assert!(self.paid_penalty + self.waived_penalty <= self.penalty, "seq {}: waived penalty within the penalty not paid", self.seq);
        assert!(self.compensated <= self.paid_total(), "seq {}: compensation counts inside paid", self.seq);
    }
}

/// `owed - paid`, asserting that nothing was paid beyond what is owed.
fn remaining(owed: Amount, paid: Amount, what: &str) -> Amount {
    match owed.checked_sub(paid) {
        Some(left) => left,
        None => panic!("{what}: {paid} paid exceeds {owed} owed"),
    }
}

/// Takes up to `owed` out of `left`.
fn take(left: &mut Amount, owed: Amount) -> Amount {
    let taken = (*left).min(owed);
    *left = remaining(*left, taken, "budget");
    taken
}

/// Asserts that installments are one plan's, in due order.
fn assert_due_order(insts: &[InstallmentState]) {
    for pair in insts.windows(2) {
        assert!(pair[0].seq < pair[1].seq, "installments in seq order");
        assert!(pair[0].due_on < pair[1].due_on, "installments in due order");
    }
}

/// Brings every installment's penalty up to `date` (see
/// [`InstallmentState::bring_up_to`]); returns the total penalty added.
pub fn bring_all_up_to(insts: &mut [InstallmentState], date: NaiveDate, penalty_daily_rate: Decimal) -> Amount {
    assert_due_order(insts);
    insts.iter_mut().map(|inst| inst.bring_up_to(date, penalty_daily_rate)).sum()
}

/// Unpaid principal + interest + fee of all installments (waived parts are
/// not owed): the base of the hold target.
pub fn unpaid_scheduled_total(insts: &[InstallmentState]) -> Amount {
    insts.iter().map(InstallmentState::unpaid_scheduled).sum()
}

/// How an installment counts in the payoff as of a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PayoffPart {
    /// Due on or before the date: everything unpaid.
    Due,
    /// The first due after the date: unpaid principal, interest and fee.
    Current,
    /// Later ones: unpaid principal only.
    Later,
}

/// Each installment's part in the payoff as of `as_of`.
fn payoff_parts(insts: &[InstallmentState], as_of: NaiveDate) -> Vec<PayoffPart> {
    assert_due_order(insts);
    let first_after = insts.iter().position(|inst| inst.due_on > as_of);
    (0..insts.len())
        .map(|index| match first_after {
            Some(current) if index == current => PayoffPart::Current,
            Some(current) if index > current => PayoffPart::Later,
            _ => PayoffPart::Due,
        })
        .collect()
}

/// What the payoff counts of one installment. Penalty counts only on
/// installments due by the date (API.md §9): one due after it can carry penalty
/// only when end of day ran past its due date before a back-dated payoff,
/// repayment or acceleration, and as of that date it was not late.
fn payoff_split(inst: &InstallmentState, part: PayoffPart) -> Split {
    match part {
        PayoffPart::Due => inst.unpaid_split(),
        PayoffPart::Current => Split { penalty: Amount::ZERO, ..inst.unpaid_split() },
        PayoffPart::Later => Split { principal: inst.unpaid_principal(), ..Split::default() },
    }
}

/// The payoff as of `as_of` (API.md §9): everything unpaid of installments
/// due on or before it, plus the unpaid principal, interest and fee of the
/// first due after it, plus the unpaid principal only of later ones.
/// The caller brings the penalty up to `as_of` first ([`bring_all_up_to`]).
pub fn payoff(insts: &[InstallmentState], as_of: NaiveDate) -> Split {
    let parts = payoff_parts(insts, as_of);
    insts.iter().zip(parts).fold(Split::default(), |sum, (inst, part)| sum + payoff_split(inst, part))
}

/// Forgives what the payoff as of `as_of` leaves out, as early settlement and
/// acceleration do: the penalty of every installment due after it, and the
/// interest and fee of those after the first one due after it. Returns the
/// total waived; the payoff is the same before and after.
pub fn waive_beyond_payoff(insts: &mut [InstallmentState], as_of: NaiveDate) -> Amount {
    let parts = payoff_parts(insts, as_of);
    let payoff_before = payoff(insts, as_of);
    let owed_before: Amount = insts.iter().map(InstallmentState::unpaid_total).sum();
    let waived: Amount = insts
        .iter_mut()
        .zip(parts)
        .map(|(inst, part)| match part {
            PayoffPart::Due => Amount::ZERO,
            PayoffPart::Current => inst.waive_penalty(),
            PayoffPart::Later => inst.waive_penalty() + inst.waive_interest_and_fee(),
        })
        .sum();
    let owed_after: Amount = insts.iter().map(InstallmentState::unpaid_total).sum();
    assert_eq!(owed_after + waived, owed_before, "a waiver forgives exactly what it reports");
    assert_eq!(payoff(insts, as_of), payoff_before, "a waiver forgives nothing the payoff counts");
    waived
}

/// What one installment received from a repayment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AllocationLine {
    /// The installment.
    pub seq: u32,
    /// What it received, by component.
    pub split: Split,
}

/// The outcome of allocating a repayment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Allocation {
    /// The installments touched (received something), in due order.
    pub lines: Vec<AllocationLine>,
    /// True when the repayment was exactly the payoff: the plan is settled.
    pub settled: bool,
    /// Interest, fees and penalty forgiven by an early settlement.
    pub waived: Amount,
}

impl Allocation {
    /// The total allocated, by component.
    pub fn split(&self) -> Split {
        self.lines.iter().fold(Split::default(), |sum, line| sum + line.split)
    }
}

/// Why a repayment cannot be allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The amount is zero.
    #[error("amount must be positive")]
    NotPositive,
    /// More than the payoff (API: `422 overpayment`).
    #[error("amount exceeds the payoff of {payoff}")]
    Overpayment {
        /// The payoff as of the repayment's date.
        payoff: Amount,
    },
}

/// Allocates a repayment valued `as_of` (API.md §9). The caller brings the
/// penalty up to `as_of` first.
///
/// - more than the payoff: [`AllocError::Overpayment`];
/// - exactly the payoff: early settlement — each installment is paid what the
///   payoff counts of it, and the interest and fee left are waived;
/// - less: installments in due order, each penalty → fee → interest →
///   principal (paying ahead pays whole future installments).
pub fn allocate(insts: &mut [InstallmentState], amount: Amount, as_of: NaiveDate) -> Result<Allocation, AllocError> {
    if amount.is_zero() {
        return Err(AllocError::NotPositive);
    }
    let payoff_total = payoff(insts, as_of).total();
    if amount > payoff_total {
        return Err(AllocError::Overpayment { payoff: payoff_total });
    }
    let owed_before: Amount = insts.iter().map(InstallmentState::unpaid_total).sum();
    let allocation = if amount == payoff_total { settle(insts, as_of) } else { pay_in_due_order(insts, amount) };
    let allocated = allocation.split().total();
    assert_eq!(allocated, amount, "the whole repayment is allocated");
    let owed_after: Amount = insts.iter().map(InstallmentState::unpaid_total).sum();
    assert_eq!(owed_after + allocated + allocation.waived, owed_before, "money is conserved");
    assert!(!allocation.settled || owed_after.is_zero(), "settling leaves nothing owed");
    insts.iter().for_each(InstallmentState::assert_invariants);
    Ok(allocation)
}

/// Pays exactly the payoff and waives the rest.
fn settle(insts: &mut [InstallmentState], as_of: NaiveDate) -> Allocation {
    let parts = payoff_parts(insts, as_of);
    let mut lines = Vec::new();
    for (inst, part) in insts.iter_mut().zip(&parts) {
        let split = payoff_split(inst, *part);
        inst.apply(split);
        if split.total().is_positive() {
            lines.push(AllocationLine { seq: inst.seq, split });
        }
    }
    let waived = waive_beyond_payoff(insts, as_of);
    assert!(insts.iter().all(InstallmentState::is_settled), "early settlement settles every installment");
    Allocation { lines, settled: true, waived }
}

/// Pays installments in due order, each penalty → fee → interest → principal.
fn pay_in_due_order(insts: &mut [InstallmentState], amount: Amount) -> Allocation {
    let mut left = amount;
    let mut lines = Vec::new();
    for inst in insts.iter_mut() {
        if left.is_zero() {
            break;
        }
        let split = inst.pay_up_to(left);
        left = remaining(left, split.total(), "repayment");
        if split.total().is_positive() {
            lines.push(AllocationLine { seq: inst.seq, split });
        }
    }
    assert!(left.is_zero(), "a repayment below the payoff is fully allocated");
    Allocation { lines, settled: false, waived: Amount::ZERO }
}

/// Applies up to `available_from_hold` to an installment as a compensation
/// payment (penalty → fee → interest → principal), counted in both `paid_*`
/// and `compensated`. Returns the split paid and the shortfall the hold could
/// not cover. The caller brings the penalty up to date first.
pub fn compensate(inst: &mut InstallmentState, available_from_hold: Amount) -> (Split, Amount) {
    let owed = inst.unpaid_total();
    let budget = owed.min(available_from_hold);
    let split = inst.pay_up_to(budget);
    assert_eq!(split.total(), budget, "compensation pays what it can");
    inst.compensated += split.total();
    let shortfall = remaining(owed, split.total(), "compensation");
    assert_eq!(inst.unpaid_total(), shortfall, "the shortfall is what is still owed");
    inst.assert_invariants();
    (split, shortfall)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Rate;
    use crate::domain::schedule::{Pricing, build_schedule};
    use crate::domain::test_support::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    const PENALTY_RATE: Decimal = dec!(0.0005);

    fn split(principal: &str, interest: &str, fee: &str, penalty: &str) -> Split {
        Split { principal: amount(principal), interest: amount(interest), fee: amount(fee), penalty: amount(penalty) }
    }

    /// The API.md worked example: 3000.00 at 0.18 over 12 months from 2027-01-31.
    fn worked_plan() -> Vec<InstallmentState> {
        let rate = Rate::parse("0.18").unwrap();
        let schedule = build_schedule(amount("3000"), 12, Pricing::Interest, rate, d(2027, 1, 31)).unwrap();
        schedule.iter().map(InstallmentState::from).collect()
    }

    fn fee_plan() -> Vec<InstallmentState> {
        let rate = Rate::parse("0.075").unwrap();
        let schedule = build_schedule(amount("5000"), 12, Pricing::Fee, rate, d(2027, 8, 29)).unwrap();
        schedule.iter().map(InstallmentState::from).collect()
    }

    #[test]
    fn worked_example_penalty_and_compensation() {
        let mut plan = worked_plan();
        let first = &mut plan[0];
        assert_eq!(first.due_on, d(2027, 2, 28));
        assert_eq!(first.bring_up_to(d(2027, 2, 28), PENALTY_RATE), Amount::ZERO, "not past due yet");
        assert_eq!(first.penalty_through, None);
        assert_eq!(first.status(d(2027, 2, 28)), InstallmentStatus::Pending);
        assert_eq!(first.status(d(2027, 3, 1)), InstallmentStatus::Overdue);
        assert_eq!(first.bring_up_to(d(2027, 3, 1), PENALTY_RATE), amount("0.12"));
        assert_eq!(first.bring_up_to(d(2027, 3, 3), PENALTY_RATE), amount("0.23"));
        assert_eq!(first.bring_up_to(d(2027, 3, 3), PENALTY_RATE), Amount::ZERO, "the same date again adds nothing");
        assert_eq!(first.bring_up_to(d(2027, 3, 2), PENALTY_RATE), Amount::ZERO, "an earlier date adds nothing");
        assert_eq!(first.penalty, amount("0.35"));
        assert_eq!(first.penalty_through, Some(d(2027, 3, 3)));
        let (paid, shortfall) = compensate(first, amount("3300.46"));
        assert_eq!(paid, split("230.04", "45.00", "0", "0.35"));
        assert_eq!(paid.total(), amount("275.39"));
        assert_eq!(shortfall, Amount::ZERO);
        assert_eq!(first.compensated, amount("275.39"));
        assert_eq!(first.paid_total(), amount("275.39"));
        assert_eq!(first.status(d(2027, 3, 3)), InstallmentStatus::Paid);
        assert_eq!(first.bring_up_to(d(2027, 3, 10), PENALTY_RATE), Amount::ZERO, "nothing accrues on paid principal");
    }

    #[test]
    fn compensation_with_a_shortfall() {
        let mut plan = worked_plan();
        bring_all_up_to(&mut plan, d(2027, 3, 3), PENALTY_RATE);
        let first = &mut plan[0];
        let (paid, shortfall) = compensate(first, amount("100"));
        assert_eq!(paid, split("54.65", "45.00", "0", "0.35"));
        assert_eq!(shortfall, amount("175.39"));
        assert_eq!(first.unpaid_total(), amount("175.39"));
        assert_eq!(first.compensated, amount("100"));
        assert_eq!(first.status(d(2027, 3, 3)), InstallmentStatus::Overdue);
        // Later penalty accrues on the principal still unpaid: 175.39 × 0.0005 × 2.
        assert_eq!(first.bring_up_to(d(2027, 3, 5), PENALTY_RATE), amount("0.18"));
        let (nothing, all) = compensate(first, Amount::ZERO);
        assert_eq!((nothing, all), (Split::default(), amount("175.57")));
    }

    #[test]
    fn penalty_from_a_later_start_and_zero_rate() {
        let mut plan = worked_plan();
        let first = &mut plan[0];
        assert_eq!(first.bring_up_to(d(2027, 3, 10), Decimal::ZERO), Amount::ZERO);
        assert_eq!(first.penalty_through, Some(d(2027, 3, 10)));
        // Accrues again only from 2027-03-10 on.
        assert_eq!(first.bring_up_to(d(2027, 3, 12), PENALTY_RATE), amount("0.23"));
        assert_eq!(first.bring_up_to(d(2027, 3, 31), PENALTY_RATE), amount("2.19"), "230.04 × 0.0005 × 19 = 2.18538");
    }

    #[test]
    fn bring_all_up_to_only_touches_past_due() {
        let mut plan = worked_plan();
        let added = bring_all_up_to(&mut plan, d(2027, 4, 2), PENALTY_RATE);
        // inst 1: 230.04 × 0.0005 × 33 = 3.79566; inst 2: 233.49 × 0.0005 × 2 = 0.23349.
        assert_eq!(added, amount("4.03"));
        assert_eq!(plan[0].penalty, amount("3.80"));
        assert_eq!(plan[1].penalty, amount("0.23"));
        assert!(plan[2..].iter().all(|i| i.penalty.is_zero() && i.penalty_through.is_none()));
    }

    #[test]
    fn payoff_as_of_various_dates() {
        let mut plan = worked_plan();
        assert_eq!(payoff(&plan, d(2027, 1, 31)), split("3000", "45.00", "0", "0"));
        assert_eq!(payoff(&plan, d(2027, 2, 27)), split("3000", "45.00", "0", "0"));
        assert_eq!(payoff(&plan, d(2027, 2, 28)), split("3000", "86.55", "0", "0"), "due on the day counts as due");
        bring_all_up_to(&mut plan, d(2027, 3, 3), PENALTY_RATE);
        assert_eq!(payoff(&plan, d(2027, 3, 3)), split("3000", "86.55", "0", "0.35"));
        assert_eq!(payoff(&plan, d(2028, 2, 1)).interest, amount("300.46"), "after the last due date: everything");
        let total_due: Amount = plan.iter().map(InstallmentState::unpaid_total).sum();
        assert_eq!(payoff(&plan, d(2028, 2, 1)).total(), total_due);
        assert_eq!(unpaid_scheduled_total(&plan), amount("3300.46"));
    }

    #[test]
    fn early_settlement_waives_future_interest() {
        let mut plan = worked_plan();
        let payoff_amount = payoff(&plan, d(2027, 2, 10)).total();
        assert_eq!(payoff_amount, amount("3045.00"));
        let allocation = allocate(&mut plan, payoff_amount, d(2027, 2, 10)).unwrap();
        assert!(allocation.settled);
        assert_eq!(allocation.waived, amount("255.46"));
        assert_eq!(allocation.split(), split("3000", "45.00", "0", "0"));
        assert_eq!(allocation.lines.len(), 12);
        assert_eq!(allocation.lines[0].split, split("230.04", "45.00", "0", "0"));
        assert_eq!(allocation.lines[1].split, split("233.49", "0", "0", "0"));
        assert_eq!(plan[0].status(d(2027, 2, 10)), InstallmentStatus::Paid);
        assert!(plan[1..].iter().all(|i| i.status(d(2027, 2, 10)) == InstallmentStatus::Waived));
        assert_eq!(plan[1].waived(), amount("41.55"));
        assert_eq!(plan[1].unpaid_interest(), Amount::ZERO);
        assert_eq!(unpaid_scheduled_total(&plan), Amount::ZERO);
        assert_eq!(payoff(&plan, d(2027, 2, 10)).total(), Amount::ZERO);
        assert_eq!(allocate(&mut plan, amount("0.01"), d(2027, 2, 10)), Err(AllocError::Overpayment { payoff: Amount::ZERO }));
    }

    #[test]
    fn early_settlement_with_overdue_and_penalty() {
        let mut plan = worked_plan();
        bring_all_up_to(&mut plan, d(2027, 3, 3), PENALTY_RATE);
        let allocation = allocate(&mut plan, amount("3086.90"), d(2027, 3, 3)).unwrap();
        assert!(allocation.settled);
        assert_eq!(allocation.lines[0].split, split("230.04", "45.00", "0", "0.35"));
        assert_eq!(allocation.lines[1].split, split("233.49", "41.55", "0", "0"));
        assert_eq!(allocation.waived, amount("213.91"), "300.46 − 86.55");
        assert_eq!(plan[1].status(d(2027, 3, 3)), InstallmentStatus::Paid);
    }

    #[test]
    fn partial_repayment_in_due_order() {
        let mut plan = worked_plan();
        let allocation = allocate(&mut plan, amount("300"), d(2027, 2, 28)).unwrap();
        assert!(!allocation.settled);
        assert_eq!(allocation.waived, Amount::ZERO);
        assert_eq!(
            allocation.lines,
            vec![
                AllocationLine { seq: 1, split: split("230.04", "45.00", "0", "0") },
                AllocationLine { seq: 2, split: split("0", "24.96", "0", "0") },
            ]
        );
        assert_eq!(plan[0].status(d(2027, 2, 28)), InstallmentStatus::Paid);
        assert_eq!(plan[1].unpaid_interest(), amount("16.59"));
        assert_eq!(plan[1].status(d(2027, 2, 28)), InstallmentStatus::Pending);
    }

    #[test]
    fn penalty_fee_interest_principal_order() {
        let mut plan = fee_plan();
        bring_all_up_to(&mut plan, d(2027, 10, 9), PENALTY_RATE);
        // 416.67 × 0.0005 × 10 = 2.08335.
        assert_eq!(plan[0].penalty, amount("2.08"));
        let allocation = allocate(&mut plan, amount("10"), d(2027, 10, 9)).unwrap();
        assert_eq!(allocation.lines, vec![AllocationLine { seq: 1, split: split("0", "0", "7.92", "2.08") }]);
        let allocation = allocate(&mut plan, amount("500"), d(2027, 10, 9)).unwrap();
        assert_eq!(
            allocation.lines,
            vec![
                AllocationLine { seq: 1, split: split("416.67", "0", "23.33", "0") },
                AllocationLine { seq: 2, split: split("28.75", "0", "31.25", "0") },
            ]
        );
    }

    #[test]
    fn paying_ahead_pays_whole_future_installments() {
        let mut plan = worked_plan();
        let allocation = allocate(&mut plan, amount("550.08"), d(2027, 2, 1)).unwrap();
        assert!(!allocation.settled);
        assert_eq!(allocation.lines.len(), 2);
        assert_eq!(allocation.lines[1].split, split("233.49", "41.55", "0", "0"));
        assert!(plan[0].is_settled() && plan[1].is_settled());
        // The first installment due after 2027-02-01 is installment 1, already paid:
        // the payoff counts only the principal of the later ones.
        let rest = payoff(&plan, d(2027, 2, 1));
        assert_eq!(rest, split("2536.47", "0", "0", "0"));
        // A month later installment 3 is the current one and its interest counts.
        assert_eq!(payoff(&plan, d(2027, 3, 31)), split("2536.47", "38.05", "0", "0"));
        let allocation = allocate(&mut plan, rest.total(), d(2027, 2, 1)).unwrap();
        assert!(allocation.settled);
        assert!(plan.iter().all(InstallmentState::is_settled));
    }

    #[test]
    fn refusals() {
        let mut plan = worked_plan();
        let before = plan.clone();
        assert_eq!(allocate(&mut plan, amount("3045.01"), d(2027, 2, 1)), Err(AllocError::Overpayment { payoff: amount("3045.00") }));
        assert_eq!(allocate(&mut plan, Amount::ZERO, d(2027, 2, 1)), Err(AllocError::NotPositive));
        assert_eq!(plan, before, "a refused repayment changes nothing");
    }

    /// API.md §9: penalty counts in the payoff only for installments due on or before the
    /// date. End of day for 2027-03-01 accrued 0.12 on installment 1 (due 2027-02-28); as of
    /// 2027-02-27 it is the first installment due after the date, so that penalty is not owed
    /// and an exact payoff waives it (issue 15).
    #[test]
    fn backdated_payoff_leaves_out_penalty_of_installments_not_yet_due() {
        let mut plan = worked_plan();
        bring_all_up_to(&mut plan, d(2027, 3, 1), PENALTY_RATE);
        assert_eq!(plan[0].penalty, amount("0.12"));
        bring_all_up_to(&mut plan, d(2027, 2, 27), PENALTY_RATE);
        assert_eq!(payoff(&plan, d(2027, 2, 27)), split("3000", "45.00", "0", "0"));
        let allocation = allocate(&mut plan, amount("3045.00"), d(2027, 2, 27)).unwrap();
        assert!(allocation.settled, "the exact payoff settles: {allocation:?}");
        assert_eq!(allocation.lines[0].split, split("230.04", "45.00", "0", "0"));
        assert_eq!(allocation.waived, amount("255.58"), "300.46 − 45.00 of interest, and the 0.12 of penalty");
        assert!(plan.iter().all(InstallmentState::is_settled));
        assert_eq!(plan[0].status(d(2027, 2, 27)), InstallmentStatus::Waived, "its penalty was forgiven");
    }

    #[test]
    fn acceleration_waives_beyond_the_payoff() {
        let mut plan = worked_plan();
        let waived = waive_beyond_payoff(&mut plan, d(2027, 3, 1));
        // Installment 1 is due, installment 2 is the current one, 3..=12 are later.
        assert_eq!(waived, amount("213.91"), "300.46 − 86.55");
        assert_eq!(unpaid_scheduled_total(&plan), amount("3086.55"));
        assert_eq!(payoff(&plan, d(2027, 3, 1)).total(), amount("3086.55"));
        let (paid, shortfall) = compensate(&mut plan[2], amount("1000"));
        assert_eq!(paid, split("236.99", "0", "0", "0"));
        assert_eq!(shortfall, Amount::ZERO);
        assert_eq!(plan[2].status(d(2027, 3, 1)), InstallmentStatus::Waived);
        assert_eq!(plan[2].compensated, amount("236.99"));
    }

    #[test]
    fn statuses() {
        assert_eq!(InstallmentStatus::Pending.as_str(), "pending");
        assert_eq!(InstallmentStatus::Overdue.as_str(), "overdue");
        assert_eq!(InstallmentStatus::Paid.as_str(), "paid");
        assert_eq!(InstallmentStatus::Waived.as_str(), "waived");
        assert_eq!(serde_json::to_string(&InstallmentStatus::Overdue).unwrap(), "\"overdue\"");
    }

    /// Principal, term, rate (1e-4), pricing and funded date of a random plan.
    fn arb_plan() -> impl Strategy<Value = Vec<InstallmentState>> {
        (1_i64..=1_000_000_000, 1_u32..=60, 0_i64..=3600, any::<bool>()).prop_filter_map(
            "schedulable",
            |(principal_fen, term_months, rate_bp, fee_pricing)| {
                let rate = Rate::try_from_decimal(Decimal::new(rate_bp, 4)).ok()?;
                let pricing = if fee_pricing { Pricing::Fee } else { Pricing::Interest };
                let schedule = build_schedule(Amount::from_fen(principal_fen), term_months, pricing, rate, d(2027, 1, 31)).ok()?;
                Some(schedule.iter().map(InstallmentState::from).collect())
            },
        )
    }

    /// What was owed in all: scheduled plus penalty accrued.
    fn owed(plan: &[InstallmentState]) -> Amount {
        plan.iter().map(|i| i.principal + i.interest + i.fee + i.penalty).sum()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Random repayments on random dates: every allocation adds up to its
        /// amount, nothing is paid beyond what is owed, paid + waived +
        /// unpaid = owed, and paying the payoff settles everything.
        #[test]
        fn allocation_conserves_money(
            plan in arb_plan(),
            steps in proptest::collection::vec((0_u64..60, 1_u32..=1000), 1..8),
        ) {
            let mut plan = plan;
            let mut as_of = d(2027, 1, 31);
            for (days, per_mille) in steps {
                as_of = as_of + chrono::Days::new(days);
                bring_all_up_to(&mut plan, as_of, PENALTY_RATE);
                let payoff_amount = payoff(&plan, as_of).total();
                if payoff_amount.is_zero() {
                    break;
                }
                let amount_fen = (payoff_amount.fen() * i64::from(per_mille) / 1000).max(1);
                let amount = Amount::from_fen(amount_fen);
                let paid_before: Amount = plan.iter().map(InstallmentState::paid_total).sum();
                let allocation = allocate(&mut plan, amount, as_of).unwrap();
                prop_assert_eq!(allocation.split().total(), amount);
                let paid_after: Amount = plan.iter().map(InstallmentState::paid_total).sum();
                prop_assert_eq!(paid_after, paid_before + amount);
                let waived: Amount = plan.iter().map(InstallmentState::waived).sum();
                let unpaid: Amount = plan.iter().map(InstallmentState::unpaid_total).sum();
                prop_assert_eq!(paid_after + waived + unpaid, owed(&plan));
                for inst in &plan {
                    inst.assert_invariants();
                }
                prop_assert_eq!(allocation.settled, amount == payoff_amount);
                if allocation.settled {
                    prop_assert!(plan.iter().all(InstallmentState::is_settled));
                    prop_assert_eq!(payoff(&plan, as_of).total(), Amount::ZERO);
                }
            }
        }

        /// Whatever happened before, allocating the payoff settles the plan.
        #[test]
        fn allocating_the_payoff_settles(
            plan in arb_plan(),
            first_days in 0_u64..400,
            first_per_mille in 0_u32..1000,
            settle_days in 0_u64..400,
        ) {
            let mut plan = plan;
            let first_date = d(2027, 1, 31) + chrono::Days::new(first_days);
            bring_all_up_to(&mut plan, first_date, PENALTY_RATE);
            let first_payoff = payoff(&plan, first_date).total();
            let partial = Amount::from_fen(first_payoff.fen() * i64::from(first_per_mille) / 1000);
            if partial.is_positive() {
                allocate(&mut plan, partial, first_date).unwrap();
            }
            let settle_date = first_date + chrono::Days::new(settle_days);
            bring_all_up_to(&mut plan, settle_date, PENALTY_RATE);
            let payoff_amount = payoff(&plan, settle_date).total();
            // Only later installments' fee or interest left (behind a zero
            // principal) makes a zero payoff: nothing to settle by repayment.
            prop_assume!(payoff_amount.is_positive());
            prop_assert_eq!(
                allocate(&mut plan, payoff_amount + Amount::from_fen(1), settle_date),
                Err(AllocError::Overpayment { payoff: payoff_amount })
            );
            let allocation = allocate(&mut plan, payoff_amount, settle_date).unwrap();
            prop_assert!(allocation.settled);
            prop_assert!(plan.iter().all(InstallmentState::is_settled));
            prop_assert_eq!(unpaid_scheduled_total(&plan), Amount::ZERO);
            for inst in &plan {
                let status = inst.status(settle_date);
                prop_assert!(matches!(status, InstallmentStatus::Paid | InstallmentStatus::Waived));
                prop_assert_eq!(status == InstallmentStatus::Waived, inst.waived().is_positive());
            }
        }

        /// End of day ran up to `eod`, then a payoff is asked as of an earlier date (a back-dated
        /// quote, repayment or acceleration): the payoff counts no penalty of installments due
        /// after that date; paying it (after any partial repayment) settles, forgives exactly
        /// the penalty left on those installments and leaves every installment due by the date
        /// paid in full; acceleration leaves exactly the payoff owed. Money is conserved.
        #[test]
        fn backdated_payoff_counts_no_penalty_of_installments_not_yet_due(
            plan in arb_plan(),
            eod_days in 0_u64..800,
            back_days in 0_u64..400,
            partial_per_mille in 0_u32..1000,
        ) {
            let funded_on = d(2027, 1, 31);
            let mut plan = plan;
            let eod = funded_on + chrono::Days::new(eod_days);
            bring_all_up_to(&mut plan, eod, PENALTY_RATE);
            let as_of = (eod - chrono::Days::new(back_days)).max(funded_on);
            prop_assert_eq!(bring_all_up_to(&mut plan, as_of, PENALTY_RATE), Amount::ZERO, "an earlier date adds nothing");
            let quote = payoff(&plan, as_of);
            let due_penalty: Amount = plan.iter().filter(|i| i.due_on <= as_of).map(InstallmentState::unpaid_penalty).sum();
            prop_assert_eq!(quote.penalty, due_penalty);

            let mut accelerated = plan.clone();
            waive_beyond_payoff(&mut accelerated, as_of);
            let owed_after_waiver: Amount = accelerated.iter().map(InstallmentState::unpaid_total).sum();
            prop_assert_eq!(owed_after_waiver, quote.total(), "acceleration leaves the payoff owed, nothing more");

            let partial = Amount::from_fen(quote.total().fen() * i64::from(partial_per_mille) / 1000);
            if partial.is_positive() {
                allocate(&mut plan, partial, as_of).unwrap();
            }
            let quote = payoff(&plan, as_of);
            prop_assume!(quote.total().is_positive());
            let not_due_penalty: Amount = plan.iter().filter(|i| i.due_on > as_of).map(InstallmentState::unpaid_penalty).sum();
            let allocation = allocate(&mut plan, quote.total(), as_of).unwrap();
            prop_assert!(allocation.settled);
            prop_assert!(plan.iter().all(InstallmentState::is_settled));
            let waived_penalty: Amount = plan.iter().map(|i| i.waived_penalty).sum();
            prop_assert_eq!(waived_penalty, not_due_penalty);
            prop_assert!(plan.iter().filter(|i| i.due_on <= as_of).all(|i| i.waived().is_zero()), "what was due is paid, not forgiven");
            let paid: Amount = plan.iter().map(InstallmentState::paid_total).sum();
            let waived: Amount = plan.iter().map(InstallmentState::waived).sum();
            prop_assert_eq!(paid, partial + quote.total());
            prop_assert_eq!(paid + waived, owed(&plan));
        }

        /// Compensation pays min(owed, available) and reports the rest as shortfall.
        #[test]
        fn compensation_pays_what_the_hold_covers(
            plan in arb_plan(),
            days_late in 0_u64..200,
            available_fen in 0_i64..=2_000_000_000,
        ) {
            let mut plan = plan;
            let date = plan[0].due_on + chrono::Days::new(days_late);
            bring_all_up_to(&mut plan, date, PENALTY_RATE);
            let owed_now = plan[0].unpaid_total();
            let available = Amount::from_fen(available_fen);
            let (paid, shortfall) = compensate(&mut plan[0], available);
            prop_assert_eq!(paid.total(), owed_now.min(available));
            prop_assert_eq!(paid.total() + shortfall, owed_now);
            prop_assert_eq!(plan[0].compensated, paid.total());
            prop_assert_eq!(plan[0].is_settled(), available >= owed_now);
        }
    }
}
