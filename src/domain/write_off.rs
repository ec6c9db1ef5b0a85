//! Writing off a defaulted plan (API.md §14), pure: what the bank writes off of each installment
//! and of the plan, split by component, and what it waives.
//!
//! All unpaid principal is written off; interest and fee only of installments due on or before
//! the write-off date (those of later installments are waived, never written off); all accrued
//! unpaid penalty. Afterwards nothing is owed: for every installment, what was owed before =
//! what is written off + what is waived now, and the plan owes nothing more.

use super::installment::{InstallmentState, Split};
use super::money::Amount;
use chrono::NaiveDate;

/// What one write-off took, installment by installment and in sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOff {
    /// `(seq, its part)`, for every installment (`0.00` where none).
    pub parts: Vec<(u32, Amount)>,
    /// The plan's amounts: `principal`, `interest`, `fee`, `penalty`; `total()` their sum.
    pub split: Split,
    /// Later installments' interest and fees forgiven.
    pub waived: Amount,
}

/// Writes off `insts` (one plan's, in due order) on `on`: every installment then owes nothing.
pub fn write_off(insts: &mut [InstallmentState], on: NaiveDate) -> WriteOff {
    let owed_before: Amount = insts.iter().map(InstallmentState::unpaid_total).sum();
    let mut split = Split::default();
    let mut waived = Amount::ZERO;
    let mut parts = Vec::with_capacity(insts.len());
    for inst in insts.iter_mut() {
        assert!(!inst.is_written_off(), "seq {}: an installment is written off once", inst.seq);
        if inst.due_on > on {
            waived += inst.waive_interest_and_fee();
        }
        let open = inst.unpaid_split();
        inst.written_off = open.total();
        inst.assert_invariants();
        assert!(inst.unpaid_total().is_zero(), "seq {}: a written-off installment owes nothing", inst.seq);
        split += open;
        parts.push((inst.seq, open.total()));
    }
    assert_eq!(split.total() + waived, owed_before, "what was owed is written off or waived, nothing else");
    assert_eq!(parts.iter().map(|(_, a)| *a).sum::<Amount>(), split.total(), "the installments' parts add up to the total");
    WriteOff { parts, split, waived }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::schedule::ScheduledInstallment;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn a(s: &str) -> Amount {
        s.parse().unwrap()
    }

    fn inst(seq: u32, due: &str, principal: &str, interest: &str) -> InstallmentState {
        InstallmentState::from_scheduled(&ScheduledInstallment {
            seq,
            due_on: d(due),
            principal: a(principal),
            interest: a(interest),
            fee: Amount::ZERO,
        })
    }

    #[test]
    fn later_interest_is_waived_and_earlier_interest_written_off() {
        let mut insts = vec![inst(1, "2027-02-28", "230.04", "45.00"), inst(2, "2027-03-31", "233.49", "41.55")];
        insts[0].penalty = a("1.20");
        insts[0].paid_penalty = a("0.20");
        let w = write_off(&mut insts, d("2027-03-01"));
        assert_eq!(w.split, Split { principal: a("463.53"), interest: a("45.00"), fee: Amount::ZERO, penalty: a("1.00") });
        assert_eq!(w.waived, a("41.55"));
        assert_eq!(w.parts, vec![(1, a("276.04")), (2, a("233.49"))]);
        assert!(insts.iter().all(|i| i.unpaid_total().is_zero() && i.is_written_off()));
    }

    #[test]
    fn a_paid_installment_has_no_part() {
        let mut insts = vec![inst(1, "2027-02-28", "100.00", "10.00"), inst(2, "2027-03-31", "100.00", "10.00")];
        insts[0].paid_principal = a("100.00");
        insts[0].paid_interest = a("10.00");
        let w = write_off(&mut insts, d("2027-04-30"));
        assert_eq!(w.parts, vec![(1, Amount::ZERO), (2, a("110.00"))]);
        assert!(!insts[0].is_written_off());
    }

    proptest! {
        /// Conservation on random plans and dates: written off + waived = owed before, nothing owed after.
        #[test]
        fn written_off_and_waived_are_what_was_owed(
            parts in proptest::collection::vec((0i64..100_000, 0i64..10_000, 0i64..5_000, 0u8..=100), 1..24),
            on_month in 0u32..30,
        ) {
            let mut insts: Vec<InstallmentState> = parts.iter().enumerate().map(|(k, (p, i, pen, paid_pct))| {
                let due = d("2027-01-15").checked_add_months(chrono::Months::new(k as u32 + 1)).unwrap();
                let mut s = InstallmentState::from_scheduled(&ScheduledInstallment {
                    seq: k as u32 + 1, due_on: due, principal: Amount::from_fen(*p), interest: Amount::from_fen(*i),
                    fee: Amount::ZERO,
                });
                s.penalty = Amount::from_fen(*pen);
                s.paid_principal = Amount::from_fen(p * i64::from(*paid_pct) / 100);
                s
            }).collect();
            let owed: Amount = insts.iter().map(InstallmentState::unpaid_total).sum();
            let on = d("2027-01-15").checked_add_months(chrono::Months::new(on_month)).unwrap();
            let w = write_off(&mut insts, on);
            prop_assert_eq!(w.split.total() + w.waived, owed);
            prop_assert!(insts.iter().all(|i| i.unpaid_total().is_zero()));
            let later_interest: Amount = parts.iter().enumerate()
                .filter(|(k, _)| insts[*k].due_on > on).map(|(_, (_, i, _, _))| Amount::from_fen(*i)).sum();
            prop_assert_eq!(w.waived, later_interest);
        }
    }
}
