//! The amounts of a device return (API.md §13), computed when the return is requested and never
//! again: the bank gets its principal back, the customer their repayments and down payment, and
//! whatever of the schedule and penalty is still unpaid is waived (no interest on a returned
//! device); the hold's remaining is voided. Pure: the service loads, this decides.

use super::installment::InstallmentState;
use super::money::Amount;

/// What a return moves, each field as API.md §13 names it (and as its notices send it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ReturnAmounts {
    /// The plan's principal.
    pub principal_to_bank: Amount,
    /// The sum of the plan's repayments.
    pub repayments_to_refund: Amount,
    /// What of the schedule's interest is still unpaid.
    pub interest_waived: Amount,
    /// What of the schedule's fees is still unpaid.
    pub fee_waived: Amount,
    /// The penalty accrued and unpaid at the request (not brought up to any later date).
    pub penalty_waived: Amount,
    /// The order's down payment.
    pub down_payment_to_refund: Amount,
    /// The hold's remaining.
    pub hold_to_void: Amount,
}

/// The amounts of returning a plan with these installments (as they stand at the request), its
/// repayments summing to `repaid`, bought with `down_payment`, on a hold with `hold_remaining`.
///
/// # Panics
/// When the installments' principal does not add up to `principal` (API.md: a plan's
/// installments always do; a return is refused once anything was compensated, so every payment
/// is a repayment).
pub fn return_amounts(
    principal: Amount,
    insts: &[InstallmentState],
    repaid: Amount,
    down_payment: Amount,
    hold_remaining: Amount,
) -> ReturnAmounts {
    let scheduled: Amount = insts.iter().map(|i| i.principal).sum();
    assert_eq!(scheduled, principal, "a plan's installments add up to its principal");
    ReturnAmounts {
        principal_to_bank: principal,
        repayments_to_refund: repaid,
        interest_waived: insts.iter().map(InstallmentState::unpaid_interest).sum(),
        fee_waived: insts.iter().map(InstallmentState::unpaid_fee).sum(),
        penalty_waived: insts.iter().map(InstallmentState::unpaid_penalty).sum(),
        down_payment_to_refund: down_payment,
        hold_to_void: hold_remaining,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::installment::allocate;
    use crate::domain::money::Rate;
    use crate::domain::schedule::{Pricing, build_schedule};
    use crate::domain::test_support::*;
    use proptest::prelude::*;
    use rust_decimal::Decimal;
    use rust_decimal_macros::dec;

    /// API.md §13's worked example, to the fen: the plan of §9, installment 1 repaid on
    /// 2027-02-28, returned on 2027-03-01.
    #[test]
    fn the_worked_example() {
        let schedule = build_schedule(amount("3000"), 12, Pricing::Interest, Rate::try_from_decimal(dec!(0.18)).unwrap(), d(2027, 1, 31));
        let mut insts: Vec<InstallmentState> = schedule.unwrap().iter().map(InstallmentState::from).collect();
        let paid = allocate(&mut insts, amount("275.04"), d(2027, 2, 28)).unwrap();
        assert_eq!((paid.split().principal, paid.split().interest), (amount("230.04"), amount("45.00")));
        let hold_remaining = amount("3300.46").checked_sub(amount("275.04")).unwrap();
        let r = return_amounts(amount("3000"), &insts, amount("275.04"), amount("999"), hold_remaining);
        assert_eq!(
            r,
            ReturnAmounts {
                principal_to_bank: amount("3000.00"),
                repayments_to_refund: amount("275.04"),
                interest_waived: amount("255.46"),
                fee_waived: amount("0.00"),
                penalty_waived: amount("0.00"),
                down_payment_to_refund: amount("999.00"),
                hold_to_void: amount("3025.42"),
            }
        );
        // Once completed the hold reads amount 3300.46 = released 275.04 + voided 3025.42.
        assert_eq!(amount("275.04") + r.hold_to_void, amount("3300.46"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Whatever was repaid before the return, the customer is refunded every repayment and
        /// owes nothing: refunded + waived + unpaid principal = everything the plan owed.
        #[test]
        fn a_return_leaves_nothing_owed_and_nothing_kept(
            principal_fen in 100_i64..=1_000_000_000, // 1.00 to 10,000,000.00 yuan
            term_months in 1_u32..=36,
            rate_bp in 0_i64..=3600,
            fee_pricing in any::<bool>(),
            repaid_permille in 0_i64..1000,
        ) {
            let rate = Rate::try_from_decimal(Decimal::new(rate_bp, 4)).unwrap();
            let pricing = if fee_pricing { Pricing::Fee } else { Pricing::Interest };
            let Ok(schedule) = build_schedule(Amount::from_fen(principal_fen), term_months, pricing, rate, d(2027, 1, 31)) else {
                return Ok(());
            };
            let mut insts: Vec<InstallmentState> = schedule.iter().map(InstallmentState::from).collect();
            let owed: Amount = insts.iter().map(|i| i.principal + i.interest + i.fee + i.penalty).sum();
            let repaid = Amount::from_fen(owed.fen() * repaid_permille / 1000);
            if repaid.is_positive() && allocate(&mut insts, repaid, d(2027, 1, 31)).is_err() {
                return Ok(());
            }
            let principal = Amount::from_fen(principal_fen);
            let r = return_amounts(principal, &insts, repaid, Amount::ZERO, Amount::ZERO);
            let unpaid_principal: Amount = insts.iter().map(InstallmentState::unpaid_principal).sum();
            let waived: Amount = insts.iter().map(InstallmentState::waived).sum();
            prop_assert_eq!(r.repayments_to_refund + r.interest_waived + r.fee_waived + r.penalty_waived + unpaid_principal + waived, owed);
            prop_assert_eq!(r.principal_to_bank, principal);
        }
    }
}
