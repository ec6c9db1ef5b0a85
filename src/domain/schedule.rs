//! Installment schedules (API.md §9): equal installments (等额本息) for
//! interest pricing, equal principal plus a spread fee for fee pricing.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::dates::checked_add_months_clamped;
use super::money::{Amount, Rate};

/// Shortest term a product may offer, in months.
pub const MIN_TERM_MONTHS: u32 = 1;
/// Longest term a product may offer, in months.
pub const MAX_TERM_MONTHS: u32 = 360;

/// How a product charges for credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pricing {
    /// Yearly interest rate, equal installments (等额本息).
    Interest,
    /// A total fee rate over the term, spread evenly (手续费).
    Fee,
}

/// Why a pricing name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("pricing must be \"interest\" or \"fee\"")]
pub struct PricingError;

impl Pricing {
    /// `"interest"` or `"fee"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Pricing::Interest => "interest",
            Pricing::Fee => "fee",
        }
    }

    /// Parses `"interest"` or `"fee"` (exact, lowercase).
    pub fn parse(text: &str) -> Result<Pricing, PricingError> {
        match text {
            "interest" => Ok(Pricing::Interest),
            "fee" => Ok(Pricing::Fee),
            _ => Err(PricingError),
        }
    }
}

impl fmt::Display for Pricing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Pricing {
    type Err = PricingError;
    fn from_str(text: &str) -> Result<Pricing, PricingError> {
        Pricing::parse(text)
    }
}

/// One installment as scheduled when the plan opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ScheduledInstallment {
    /// 1-based position in the plan.
    pub seq: u32,
    /// `funded_on + seq` months, clamped to month end.
    pub due_on: NaiveDate,
    /// Principal repaid by this installment.
    pub principal: Amount,
    /// Interest (interest pricing only).
    pub interest: Amount,
    /// Fee (fee pricing only).
    pub fee: Amount,
}

impl ScheduledInstallment {
    /// principal + interest + fee.
    pub fn total(&self) -> Amount {
        self.principal + self.interest + self.fee
    }
}

/// Why no schedule can be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The term is outside 1..=360 months.
    #[error("term_months must be 1-360, got {term_months}")]
    TermOutOfRange {
        /// The term asked for.
        term_months: u32,
    },
    /// The principal is zero.
    #[error("principal must be positive")]
    PrincipalNotPositive,
    /// Rounding would make a component of installment `seq` negative
    /// (the API answers `principal_out_of_range`).
    #[error("installment {seq} would have a negative component")]
    NegativeComponent {
        /// The installment concerned.
        seq: u32,
    },
    /// A due date falls beyond the calendar.
    #[error("due date out of range")]
    DateOutOfRange,
    /// An amount exceeds what an `Amount` can hold.
    #[error("amount overflow")]
    Overflow,
}

/// Builds the schedule exactly per API.md §9.
///
/// - interest pricing, rate > 0: `r = rate / 12` unrounded; payment
///   `P = round(principal·r·(1+r)^n / ((1+r)^n − 1))`; for k < n
///   `interest_k = round(outstanding·r)`, `principal_k = P − interest_k`;
///   the last takes the outstanding principal plus `round(outstanding·r)`.
/// - rate 0, and fee pricing: `principal_k = round(principal / n)`, the last
///   the rest; fee pricing adds `fee_k = round(round(principal·rate) / n)`,
///   the last the rest of the total fee.
///
/// Due dates are `funded_on + k` months, clamped to month end.
pub fn build_schedule(
    principal: Amount,
    term_months: u32,
    pricing: Pricing,
    rate: Rate,
    funded_on: NaiveDate,
) -> Result<Vec<ScheduledInstallment>, ScheduleError> {
    if !(MIN_TERM_MONTHS..=MAX_TERM_MONTHS).contains(&term_months) {
        return Err(ScheduleError::TermOutOfRange { term_months });
    }
    if principal.is_zero() {
        return Err(ScheduleError::PrincipalNotPositive);
    }
    let due_dates = due_dates(funded_on, term_months)?;
    let components = match pricing {
        Pricing::Interest if !rate.is_zero() => annuity_components(principal, term_months, rate)?,
        Pricing::Interest => even_components(principal, term_months, Amount::ZERO)?,
        Pricing::Fee => {
            let total_fee = round(principal.as_decimal().checked_mul(rate.as_decimal()))?;
            even_components(principal, term_months, total_fee)?
        }
    };
    let schedule: Vec<ScheduledInstallment> = components
        .into_iter()
        .zip(due_dates)
        .zip(1..)
        .map(|(((principal, interest, fee), due_on), seq)| ScheduledInstallment { seq, due_on, principal, interest, fee })
        .collect();
    assert_schedule(&schedule, principal, term_months);
    Ok(schedule)
}

/// Sum of every installment's total: what the customer repays.
pub fn total_repayable(schedule: &[ScheduledInstallment]) -> Amount {
    schedule.iter().map(ScheduledInstallment::total).sum()
}

/// `(principal, interest, fee)` of one installment.
type Components = (Amount, Amount, Amount);

/// The due dates `funded_on + 1..=n` months.
fn due_dates(funded_on: NaiveDate, term_months: u32) -> Result<Vec<NaiveDate>, ScheduleError> {
    (1..=term_months).map(|k| checked_add_months_clamped(funded_on, k).ok_or(ScheduleError::DateOutOfRange)).collect()
}

/// Rounds half-up to the fen; overflow and negatives become errors.
fn round(value: Option<Decimal>) -> Result<Amount, ScheduleError> {
    let value = value.ok_or(ScheduleError::Overflow)?;
    Amount::checked_round_half_up(value).ok_or(ScheduleError::Overflow)
}

/// Equal installments (等额本息) at yearly `rate` > 0.
fn annuity_components(principal: Amount, term_months: u32, rate: Rate) -> Result<Vec<Components>, ScheduleError> {
    assert!(!rate.is_zero(), "annuity needs a positive rate");
    let yearly = rate.as_decimal();
    let monthly = yearly / Decimal::from(12);
    let payment = round(level_payment(principal.as_decimal(), monthly, term_months))?;
    let mut outstanding = principal;
    let mut components = Vec::with_capacity(term_months as usize);
    for seq in 1..=term_months {
        // outstanding × rate / 12, multiplied first so an exact midpoint stays exact.
        let interest = round(outstanding.as_decimal().checked_mul(yearly).map(|v| v / Decimal::from(12)))?;
        let principal_part =
            if seq < term_months { payment.checked_sub(interest).ok_or(ScheduleError::NegativeComponent { seq })? } else { outstanding };
        outstanding = outstanding.checked_sub(principal_part).ok_or(ScheduleError::NegativeComponent { seq: term_months })?;
        components.push((principal_part, interest, Amount::ZERO));
    }
    assert!(outstanding.is_zero(), "the last installment takes the outstanding principal");
    Ok(components)
}

/// `principal·r·x / (x − 1)` with `x = (1+r)^n`, unrounded. When `x` is too
/// large for a decimal, `x / (x − 1)` is 1 to far beyond the fen.
fn level_payment(principal: Decimal, monthly_rate: Decimal, term_months: u32) -> Option<Decimal> {
    debug_assert!(monthly_rate > Decimal::ZERO, "level payment needs a positive rate");
    let growth = Decimal::ONE + monthly_rate;
    let mut compound = Decimal::ONE;
    let mut overflowed = false;
    for _ in 0..term_months {
        match compound.checked_mul(growth) {
            Some(next) => compound = next,
            None => {
                overflowed = true;
                break;
            }
        }
    }
    let factor = if overflowed { Decimal::ONE } else { compound.checked_div(compound - Decimal::ONE)? };
    debug_assert!(factor >= Decimal::ONE, "annuity factor x/(x-1) is at least 1");
    principal.checked_mul(monthly_rate)?.checked_mul(factor)
}

/// Equal principal `round(principal / n)` and equal fee `round(total_fee / n)`,
/// the last installment taking the rest of each.
fn even_components(principal: Amount, term_months: u32, total_fee: Amount) -> Result<Vec<Components>, ScheduleError> {
    let principals = spread(principal, term_months)?;
    let fees = spread(total_fee, term_months)?;
    Ok(principals.into_iter().zip(fees).map(|(p, f)| (p, Amount::ZERO, f)).collect())
}

/// `round(total / n)` for each of the first n − 1, the last the rest.
fn spread(total: Amount, term_months: u32) -> Result<Vec<Amount>, ScheduleError> {
    let share = round(Some(total.as_decimal() / Decimal::from(term_months)))?;
    let mut shares = vec![share; term_months as usize - 1];
    let first_shares_fen = i64::from(term_months - 1).checked_mul(share.fen()).ok_or(ScheduleError::Overflow)?;
    let rest = total.checked_sub(Amount::from_fen(first_shares_fen)).ok_or(ScheduleError::NegativeComponent { seq: term_months })?;
    shares.push(rest);
    debug_assert_eq!(shares.iter().sum::<Amount>(), total, "shares add up to the total");
    Ok(shares)
}

/// Postconditions of every schedule built.
fn assert_schedule(schedule: &[ScheduledInstallment], principal: Amount, term_months: u32) {
    assert_eq!(schedule.len(), term_months as usize, "one installment per month");
    let principal_sum: Amount = schedule.iter().map(|i| i.principal).sum();
    assert_eq!(principal_sum, principal, "installment principals add up to the principal");
    for pair in schedule.windows(2) {
        assert!(pair[0].due_on < pair[1].due_on, "due dates strictly increase");
        assert_eq!(pair[0].seq + 1, pair[1].seq, "seq counts up by one");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::dates::add_months_clamped;
    use crate::domain::test_support::*;
    use proptest::prelude::*;

    fn rate(text: &str) -> Rate {
        Rate::parse(text).unwrap()
    }

    #[test]
    fn worked_example() {
        let schedule = build_schedule(amount("3000"), 12, Pricing::Interest, rate("0.18"), d(2027, 1, 31)).unwrap();
        assert_eq!(schedule.len(), 12);
        let first = schedule[0];
        assert_eq!((first.seq, first.due_on), (1, d(2027, 2, 28)));
        assert_eq!((first.principal, first.interest, first.fee), (amount("230.04"), amount("45.00"), Amount::ZERO));
        assert_eq!(first.total(), amount("275.04"));
        assert!(schedule[..11].iter().all(|i| i.total() == amount("275.04")));
        let last = schedule[11];
        assert_eq!((last.seq, last.due_on), (12, d(2028, 1, 31)));
        assert_eq!((last.principal, last.interest), (amount("270.96"), amount("4.06")));
        assert_eq!(total_repayable(&schedule), amount("3300.46"));
        assert_eq!(schedule[1].due_on, d(2027, 3, 31));
    }

    #[test]
    fn zero_rate_and_fee_pricing() {
        let zero = build_schedule(amount("2999"), 6, Pricing::Interest, rate("0"), d(2027, 5, 30)).unwrap();
        assert!(zero[..5].iter().all(|i| i.principal == amount("499.83") && i.interest.is_zero()));
        assert_eq!(zero[5].principal, amount("499.85"));
        let fee = build_schedule(amount("1000"), 3, Pricing::Fee, rate("0.023"), d(2028, 1, 29)).unwrap();
        let parts: Vec<_> = fee.iter().map(|i| (i.principal.to_string(), i.fee.to_string(), i.interest)).collect();
        assert_eq!(
            parts,
            vec![
                ("333.33".into(), "7.67".into(), Amount::ZERO),
                ("333.33".into(), "7.67".into(), Amount::ZERO),
                ("333.34".into(), "7.66".into(), Amount::ZERO)
            ]
        );
        assert_eq!(fee[0].due_on, d(2028, 2, 29));
        let fee_zero = build_schedule(amount("100"), 3, Pricing::Fee, rate("0"), d(2028, 1, 29)).unwrap();
        assert!(fee_zero.iter().all(|i| i.fee.is_zero()));
    }

    #[test]
    fn one_month_term() {
        let one = build_schedule(amount("1000"), 1, Pricing::Interest, rate("0.12"), d(2027, 1, 1)).unwrap();
        assert_eq!((one[0].principal, one[0].interest), (amount("1000"), amount("10.00")));
        let fee = build_schedule(amount("1000"), 1, Pricing::Fee, rate("0.05"), d(2027, 1, 1)).unwrap();
        assert_eq!((fee[0].principal, fee[0].fee), (amount("1000"), amount("50.00")));
    }

    #[test]
    fn refusals() {
        let on = d(2027, 1, 1);
        assert_eq!(
            build_schedule(amount("1000"), 0, Pricing::Interest, rate("0.1"), on),
            Err(ScheduleError::TermOutOfRange { term_months: 0 })
        );
        assert_eq!(
            build_schedule(amount("1000"), 361, Pricing::Interest, rate("0.1"), on),
            Err(ScheduleError::TermOutOfRange { term_months: 361 })
        );
        assert_eq!(build_schedule(Amount::ZERO, 12, Pricing::Fee, rate("0.1"), on), Err(ScheduleError::PrincipalNotPositive));
        // 0.05 over 7 months: 6 × round(0.00714) = 0.06 > 0.05.
        for pricing in [Pricing::Interest, Pricing::Fee] {
            assert!(matches!(build_schedule(amount("0.05"), 7, pricing, rate("0"), on), Err(ScheduleError::NegativeComponent { .. })));
        }
        assert!(matches!(
            build_schedule(amount("0.05"), 7, Pricing::Interest, rate("0.01"), on),
            Err(ScheduleError::NegativeComponent { .. })
        ));
        // A fee that cannot be spread: total fee 0.05 over 7 months.
        assert!(matches!(build_schedule(amount("1"), 7, Pricing::Fee, rate("0.05"), on), Err(ScheduleError::NegativeComponent { .. })));
        assert_eq!(build_schedule(amount("1"), 12, Pricing::Fee, rate("0.1"), NaiveDate::MAX), Err(ScheduleError::DateOutOfRange));
    }

    #[test]
    fn extreme_but_valid_inputs_do_not_overflow() {
        let big = amount("999999999999.99");
        let on = d(2027, 1, 1);
        let schedule = build_schedule(big, 360, Pricing::Interest, rate("99.99999999"), on).unwrap();
        assert_eq!(schedule.iter().map(|i| i.principal).sum::<Amount>(), big);
        let tiny_rate = build_schedule(big, 360, Pricing::Interest, rate("0.00000001"), on).unwrap();
        assert_eq!(tiny_rate.iter().map(|i| i.principal).sum::<Amount>(), big);
        let fee = build_schedule(big, 360, Pricing::Fee, rate("99.99999999"), on).unwrap();
        assert_eq!(fee.iter().map(|i| i.principal).sum::<Amount>(), big);
        let one = build_schedule(amount("0.01"), 1, Pricing::Interest, rate("99"), on).unwrap();
        assert_eq!(one[0].principal, amount("0.01"));
        assert_eq!(one[0].interest, amount("0.08"), "0.01 × 99/12 = 0.0825");
    }

    #[test]
    fn pricing_names() {
        assert_eq!(Pricing::parse("interest"), Ok(Pricing::Interest));
        assert_eq!("fee".parse::<Pricing>(), Ok(Pricing::Fee));
        assert_eq!(Pricing::parse("Fee"), Err(PricingError));
        assert_eq!(Pricing::parse(""), Err(PricingError));
        assert_eq!(Pricing::Interest.as_str(), "interest");
        assert_eq!(Pricing::Fee.to_string(), "fee");
        assert_eq!(serde_json::to_string(&Pricing::Fee).unwrap(), "\"fee\"");
    }

    /// True when n − 1 shares of round(total / n) exceed the total.
    fn overspread(total: Amount, term_months: u32) -> bool {
        let share = Amount::round_half_up(total.as_decimal() / Decimal::from(term_months));
        share.fen() * i64::from(term_months - 1) > total.fen()
    }

    fn arb_rate() -> impl Strategy<Value = Rate> {
        (0_i64..=36_000_000).prop_map(|rate_e8| Rate::try_from_decimal(Decimal::new(rate_e8, 8)).unwrap())
    }

    fn arb_date() -> impl Strategy<Value = NaiveDate> {
        (0_u32..4000).prop_map(|days| add_months_clamped(d(2026, 1, 1), 0) + chrono::Days::new(u64::from(days)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn schedules_are_consistent(
            principal_fen in 1_i64..=1_000_000_000,
            term_months in 1_u32..=360,
            rate in arb_rate(),
            fee_pricing in any::<bool>(),
            funded_on in arb_date(),
        ) {
            let principal = Amount::from_fen(principal_fen);
            let pricing = if fee_pricing { Pricing::Fee } else { Pricing::Interest };
            match build_schedule(principal, term_months, pricing, rate, funded_on) {
                Ok(schedule) => {
                    prop_assert_eq!(schedule.len(), term_months as usize);
                    prop_assert_eq!(schedule.iter().map(|i| i.principal).sum::<Amount>(), principal);
                    for (k, installment) in schedule.iter().enumerate() {
                        let seq = u32::try_from(k).unwrap() + 1;
                        prop_assert_eq!(installment.seq, seq);
                        prop_assert_eq!(installment.due_on, add_months_clamped(funded_on, seq));
                        prop_assert!(installment.due_on > funded_on);
                        match pricing {
                            Pricing::Interest => prop_assert!(installment.fee.is_zero()),
                            Pricing::Fee => prop_assert!(installment.interest.is_zero()),
                        }
                    }
                    if pricing == Pricing::Interest && term_months > 1 {
                        let level = schedule[0].total();
                        prop_assert!(schedule[..schedule.len() - 1].iter().all(|i| i.total() == level), "level payments");
                    }
                    if pricing == Pricing::Fee {
                        let total_fee = Amount::round_half_up(principal.as_decimal() * rate.as_decimal());
                        prop_assert_eq!(schedule.iter().map(|i| i.fee).sum::<Amount>(), total_fee);
                        prop_assert!(!overspread(total_fee, term_months));
                    }
                    if pricing == Pricing::Fee || rate.is_zero() {
                        prop_assert!(!overspread(principal, term_months));
                    }
                }
                Err(ScheduleError::NegativeComponent { .. }) => {
                    if pricing == Pricing::Fee || rate.is_zero() {
                        // Even spreads fail exactly when n − 1 rounded shares exceed the total.
                        let total_fee = if pricing == Pricing::Fee {
                            Amount::round_half_up(principal.as_decimal() * rate.as_decimal())
                        } else {
                            Amount::ZERO
                        };
                        prop_assert!(overspread(principal, term_months) || overspread(total_fee, term_months));
                    } else {
                        // Annuity rounding drift only matters for small principals or long terms.
                        prop_assert!(principal_fen < 100_000 || term_months > 60);
                    }
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }
}
