//! Internal rate of return of a schedule and the annualised rate (`apr_irr`):
//! 12 × the monthly IRR, rounded half-up to 4 decimals (API.md §9).
//!
//! The monthly IRR `i` solves `principal = Σ payment_k / (1+i)^k`. We solve for
//! the discount factor `v = 1/(1+i)` instead: `f(v) = Σ payment_k·v^k − principal`
//! is a polynomial with non-negative coefficients, increasing and convex for
//! `v > 0`, evaluated by Horner's scheme without overflow for `v ≤ 1`. A
//! safeguarded Newton iteration (bisection whenever Newton does not halve the
//! bracket) converges to well below 1e-20. It starts from a narrow bracket around
//! Newton's root in `f64` when decimals confirm that it brackets the root
//! (`near_bracket`): `f64` only chooses where to start, never the answer.

use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};

use super::money::{Amount, Rate};
use super::schedule::{Pricing, ScheduledInstallment};

/// Decimal places of an `apr_irr`.
pub const APR_SCALE: u32 = 4;

/// Width of the final bracket on the discount factor.
const TOLERANCE: Decimal = Decimal::from_parts(1, 0, 0, false, 24);

/// A Newton step this small leaves an error of the order of its square (times `f''/f'`, a few
/// hundred at most for terms up to 360 months), far below `TOLERANCE`.
const CLOSING_STEP: Decimal = Decimal::from_parts(1, 0, 0, false, 12);

/// Iterations after which the solver stops whatever the bracket (each at
/// least halves it, so 200 is far more than 96-bit decimals can use).
const MAX_ITERATIONS: u32 = 200;

/// Monthly IRR of paying out `principal` and receiving `payments[k-1]` at the
/// end of month k, to about 1e-20.
///
/// Payments adding up to the principal give exactly 0; less than it a negative
/// rate; all zero (nothing ever repaid) gives −1.
///
/// # Panics
/// If `principal` is zero.
pub fn monthly_irr(principal: Amount, payments: &[Amount]) -> Decimal {
    let payments: Vec<Decimal> = payments.iter().map(Amount::as_decimal).collect();
    monthly_irr_decimal(principal.as_decimal(), &payments)
}

/// `apr_irr` of a cash flow: 12 × [`monthly_irr`], rounded half-up to 4 decimals.
pub fn apr_irr(principal: Amount, payments: &[Amount]) -> Decimal {
    round_apr(monthly_irr(principal, payments) * Decimal::from(12))
}

/// `apr_irr` of a schedule: its principal paid out, its installments' totals paid back.
pub fn schedule_apr_irr(schedule: &[ScheduledInstallment]) -> Decimal {
    let principal: Amount = schedule.iter().map(|i| i.principal).sum();
    let payments: Vec<Amount> = schedule.iter().map(ScheduledInstallment::total).collect();
    apr_irr(principal, &payments)
}

/// An APR as the API shows it: exactly 4 decimals (`"0.1800"`).
pub fn format_apr(apr: Decimal) -> String {
    round_apr(apr).to_string()
}

/// A product term's `apr_irr` for the cap check, from the *unrounded* schedule
/// so it does not depend on the principal, rounded half-up to 4 decimals:
/// interest pricing → the yearly rate itself; fee pricing → the APR of `n`
/// equal payments of `(1 + rate) / n` for a principal of 1.
///
/// # Panics
/// If `term_months` is zero.
pub fn term_apr_unrounded(pricing: Pricing, rate: Rate, term_months: u32) -> Decimal {
    assert!(term_months > 0, "a term has at least one month");
    match pricing {
        Pricing::Interest => round_apr(rate.as_decimal()),
        Pricing::Fee if rate.is_zero() => round_apr(Decimal::ZERO),
        Pricing::Fee => {
            let payment = (Decimal::ONE + rate.as_decimal()) / Decimal::from(term_months);
            let payments = vec![payment; term_months as usize];
            round_apr(monthly_irr_decimal(Decimal::ONE, &payments) * Decimal::from(12))
        }
    }
}

/// Rounds half-up to 4 decimals and pads to exactly 4.
fn round_apr(apr: Decimal) -> Decimal {
    let mut rounded = apr.round_dp_with_strategy(APR_SCALE, RoundingStrategy::MidpointAwayFromZero);
    if rounded.is_zero() {
        rounded = Decimal::ZERO;
    }
    rounded.rescale(APR_SCALE);
    debug_assert_eq!(rounded.scale(), APR_SCALE, "an APR has 4 decimals");
    rounded
}

/// Monthly IRR of decimal cash flows (see [`monthly_irr`]).
pub(crate) fn monthly_irr_decimal(principal: Decimal, payments: &[Decimal]) -> Decimal {
    assert!(principal > Decimal::ZERO, "IRR needs a positive principal, got {principal}");
    assert!(payments.iter().all(|p| !p.is_sign_negative()), "payments must not be negative");
    let total = payments.iter().try_fold(Decimal::ZERO, |sum, p| sum.checked_add(*p));
    let Some(total) = total else { unreachable!("at most a few hundred amounts below 1e17 always add up in a decimal") };
    if total.is_zero() {
        return Decimal::NEGATIVE_ONE;
    }
    if total == principal {
        return Decimal::ZERO;
    }
    let discount = solve_discount_factor(principal, payments, total);
    assert!(discount > Decimal::ZERO, "the discount factor is positive");
    Decimal::ONE / discount - Decimal::ONE
}

/// `f(v) = Σ payment_k·v^k − principal` and `f'(v)`, or `None` if they
/// overflow (only for `v > 1`, where `f` is then hugely positive).
fn evaluate(principal: Decimal, payments: &[Decimal], v: Decimal) -> Option<(Decimal, Decimal)> {
    #[cfg(test)]
    tests::EVALUATIONS.with(|n| n.set(n.get() + 1));
    let mut value = Decimal::ZERO;
    let mut slope = Decimal::ZERO;
    for payment in payments.iter().rev() {
        slope = slope.checked_mul(v)?.checked_add(value)?;
        value = value.checked_mul(v)?.checked_add(*payment)?;
    }
    slope = slope.checked_mul(v)?.checked_add(value)?;
    value = value.checked_mul(v)?.checked_sub(principal)?;
    Some((value, slope))
}

/// The bracket `lo < root <= hi` with `f(lo) < 0 <= f(hi)` while solving.
struct Bracket {
    lo: Decimal,
    hi: Decimal,
    /// `f(hi)` and `f'(hi)`; `None` when they overflow (`f(hi)` is +∞).
    at_hi: Option<(Decimal, Decimal)>,
}

impl Bracket {
    /// Narrows the bracket with the sign of `f(point)`; true if `point` is the root.
    fn narrow(&mut self, principal: Decimal, payments: &[Decimal], point: Decimal) -> bool {
        debug_assert!(self.lo < point && point < self.hi, "point inside the bracket");
        let at_point = evaluate(principal, payments, point);
        match at_point {
            Some((value, _)) if value.is_sign_negative() && !value.is_zero() => self.lo = point,
            _ => {
                self.hi = point;
                self.at_hi = at_point;
            }
        }
        matches!(at_point, Some((value, _)) if value.is_zero())
    }

    /// Newton's step from `hi` if it lands strictly inside the bracket.
    fn newton_point(&self) -> Option<Decimal> {
        let (value, slope) = self.at_hi?;
        if slope <= Decimal::ZERO {
            return None;
        }
        let point = self.hi.checked_sub(value.checked_div(slope)?)?;
        (self.lo < point && point < self.hi).then_some(point)
    }

    /// Once a Newton step is shorter than `CLOSING_STEP`, its point is within `TOLERANCE` of
    /// the root (the error after a step is of the order of its square), on whichever side the
    /// decimal rounding of `f` put it: one evaluation `TOLERANCE` beyond it, on the root's side,
    /// closes the bracket. Without it only bisection moves the far end, a dozen evaluations more.
    /// True when the bracket is closed.
    fn close_near(&mut self, principal: Decimal, payments: &[Decimal], point: Decimal, step: Decimal) -> bool {
        if step.abs() > CLOSING_STEP {
            return false;
        }
        let beyond = if self.lo == point { point.checked_add(TOLERANCE) } else { point.checked_sub(TOLERANCE) };
        let Some(beyond) = beyond.filter(|b| self.lo < *b && *b < self.hi) else {
            return false;
        };
        self.narrow(principal, payments, beyond) || self.hi - self.lo <= TOLERANCE
    }

    /// The midpoint, if it differs from both ends at decimal precision.
    fn midpoint(&self) -> Option<Decimal> {
        let point = self.lo + (self.hi - self.lo) / Decimal::TWO;
        (self.lo < point && point < self.hi).then_some(point)
    }
}

/// The discount factor `v > 0` with `f(v) = 0`.
fn solve_discount_factor(principal: Decimal, payments: &[Decimal], total: Decimal) -> Decimal {
    let bracket = near_bracket(principal, payments).unwrap_or_else(|| initial_bracket(principal, payments, total));
    solve_from(principal, payments, bracket)
}

/// The solver proper, from a bracket of the root.
fn solve_from(principal: Decimal, payments: &[Decimal], mut bracket: Bracket) -> Decimal {
    for _ in 0..MAX_ITERATIONS {
        let width = bracket.hi - bracket.lo;
        if width <= TOLERANCE {
            break;
        }
        let newton = bracket.newton_point();
        let Some(point) = newton.or_else(|| bracket.midpoint()) else {
            break;
        };
        let hi_before = bracket.hi;
        if bracket.narrow(principal, payments, point) {
            return bracket.hi;
        }
        if newton.is_some() && bracket.close_near(principal, payments, point, hi_before - point) {
            break;
        }
        if bracket.hi - bracket.lo > width / Decimal::TWO {
            let Some(middle) = bracket.midpoint() else {
                break;
            };
            if bracket.narrow(principal, payments, middle) {
                return bracket.hi;
            }
        }
    }
    assert!(bracket.lo <= bracket.hi, "bracket stays ordered");
    bracket.hi
}

/// Newton's steps in `f64` before the decimal solver takes over: each roughly doubles the
/// correct digits, so a handful reach `f64`'s 1e-15 from `v = 1`.
const SEED_STEPS: u32 = 60;

/// Half the width of [`near_bracket`], relative to its centre: far above `f64`'s error.
const SEED_HALF_WIDTH: f64 = 1e-9;

/// A step of the `f64` iteration this small, relative to `v`, is at `f64`'s precision.
const SEED_LAST_STEP: f64 = 1e-15;

/// A bracket a hair around the root as Newton's method finds it in `f64`, checked in decimals
/// (`f(lo) < 0 <= f(hi)`), or `None` when that check or the `f64` steps fail; the solver then
/// starts from [`initial_bracket`]. Only the starting bracket comes from `f64`: the root is still
/// found, to `TOLERANCE`, in decimals: two evaluations check this bracket, then Newton closes it
/// in three or four, against up to sixteen from [`initial_bracket`] (pricing solves one per order
/// placed or quoted).
fn near_bracket(principal: Decimal, payments: &[Decimal]) -> Option<Bracket> {
    let owed = principal.to_f64()?;
    let paid: Vec<f64> = payments.iter().map(Decimal::to_f64).collect::<Option<_>>()?;
    let mut v = 1.0_f64;
    for _ in 0..SEED_STEPS {
        let (mut value, mut slope) = (0.0_f64, 0.0_f64);
        for payment in paid.iter().rev() {
            slope = slope * v + value;
            value = value * v + payment;
        }
        slope = slope * v + value;
        value = value * v - owed;
        let next = v - value / slope;
        if !(next.is_finite() && next > 0.0) {
            return None;
        }
        let step = (next - v).abs();
        v = next;
        if step <= v * SEED_LAST_STEP {
            break;
        }
    }
    let centre = Decimal::from_f64(v)?;
    let half = Decimal::from_f64(v * SEED_HALF_WIDTH)?;
    let (lo, hi) = (centre.checked_sub(half)?, centre.checked_add(half)?);
    if lo <= Decimal::ZERO {
        return None;
    }
    let (at_lo, _) = evaluate(principal, payments, lo)?;
    let at_hi = evaluate(principal, payments, hi)?;
    let below = |value: Decimal| value.is_sign_negative() && !value.is_zero();
    (below(at_lo) && !below(at_hi.0)).then_some(Bracket { lo, hi, at_hi: Some(at_hi) })
}

/// A first bracket: `[0, 1]` when payments exceed the principal (IRR > 0),
/// else `[1, principal/total]` widened until `f(hi) >= 0` (IRR < 0).
fn initial_bracket(principal: Decimal, payments: &[Decimal], total: Decimal) -> Bracket {
    if total > principal {
        let at_hi = evaluate(principal, payments, Decimal::ONE);
        debug_assert!(at_hi.is_some_and(|(value, _)| value > Decimal::ZERO), "f(1) = total − principal > 0");
        return Bracket { lo: Decimal::ZERO, hi: Decimal::ONE, at_hi };
    }
    // f(v) >= total·v − principal for v >= 1, so twice principal/total is
    // past the root; the loop only guards against rounding.
    let mut hi = principal / total * Decimal::TWO;
    let mut at_hi = evaluate(principal, payments, hi);
    for _ in 0..MAX_ITERATIONS {
        let below_root = matches!(at_hi, Some((value, _)) if value.is_sign_negative() && !value.is_zero());
        if !below_root {
            break;
        }
        match hi.checked_mul(Decimal::TWO) {
            Some(wider) => hi = wider,
            None => unreachable!("f(v) >= total·v − principal cannot stay negative up to the decimal limit"),
        }
        at_hi = evaluate(principal, payments, hi);
    }
    Bracket { lo: Decimal::ONE, hi, at_hi }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::schedule::build_schedule;
    use crate::domain::test_support::*;
    use chrono::NaiveDate;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn rate(text: &str) -> Rate {
        Rate::parse(text).unwrap()
    }
    fn funded_on() -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, 1, 31).unwrap()
    }

    thread_local! {
        /// How many times this thread evaluated `f` (the solver's cost).
        pub(super) static EVALUATIONS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }

    fn evaluations_of(solve: impl FnOnce()) -> u32 {
        EVALUATIONS.with(|n| n.set(0));
        solve();
        EVALUATIONS.with(|n| n.get())
    }

    #[test]
    fn the_f64_seed_and_newton_close_the_bracket_in_a_few_evaluations() {
        // Bisection alone from [0, 1] to 1e-24 takes some 80 evaluations; before the closing step
        // these took 8, 21, 86, 13 and 14, and up to 16 with it. From the `f64` seed
        // (`near_bracket`) they take 5 or 6: two to check the seed's bracket, then Newton.
        for (term, text) in [(3, "0.18"), (12, "0.18"), (24, "0.05"), (36, "0.2399"), (360, "0.06")] {
            let schedule = build_schedule(amount("3000"), term, Pricing::Interest, rate(text), funded_on()).unwrap();
            let n = evaluations_of(|| {
                schedule_apr_irr(&schedule);
            });
            assert!(n <= 8, "{term} months at {text}: {n} evaluations");
        }
    }

    #[test]
    fn worked_example_apr() {
        let schedule = build_schedule(amount("3000"), 12, Pricing::Interest, rate("0.18"), funded_on()).unwrap();
        let apr = schedule_apr_irr(&schedule);
        assert_eq!(format_apr(apr), "0.1800");
        assert_eq!(apr.to_string(), "0.1800");
    }

    #[test]
    fn single_payment_irr_is_exact() {
        // 1000 out, 1010 back a month later: 1% a month.
        let monthly = monthly_irr(amount("1000"), &[amount("1010")]);
        assert!((monthly - dec!(0.01)).abs() < dec!(1e-20), "{monthly}");
        assert_eq!(apr_irr(amount("1000"), &[amount("1010")]), dec!(0.1200));
    }

    #[test]
    fn two_payment_irr_matches_closed_form() {
        // 100 out, 60 and 60 back: 60v² + 60v − 100 = 0 → v = (−60 + √(3600 + 24000)) / 120.
        let monthly = monthly_irr(amount("100"), &[amount("60"), amount("60")]);
        let expected = dec!(0.1306623862918074852584262745); // 1/v − 1, to 28 places
        assert!((monthly - expected).abs() < dec!(1e-18), "{monthly}");
    }

    #[test]
    fn degenerate_cash_flows() {
        assert_eq!(monthly_irr(amount("100"), &[amount("50"), amount("50")]), Decimal::ZERO);
        assert_eq!(monthly_irr(amount("100"), &[Amount::ZERO, Amount::ZERO]), Decimal::NEGATIVE_ONE);
        assert_eq!(monthly_irr(amount("100"), &[]), Decimal::NEGATIVE_ONE);
        let negative = monthly_irr(amount("100"), &[amount("45"), amount("45")]);
        assert!(negative < Decimal::ZERO, "{negative}");
        // 45v + 45v² = 100 at v = 1/(1+i): check by substitution.
        let v = Decimal::ONE / (Decimal::ONE + negative);
        let residual = dec!(45) * v + dec!(45) * v * v - dec!(100);
        assert!(residual.abs() < dec!(1e-18), "{residual}");
        let tiny = monthly_irr(amount("100"), &[Amount::ZERO, amount("0.01")]);
        assert!(tiny < dec!(-0.98), "{tiny}");
        let huge = monthly_irr(amount("0.01"), &[amount("1000000")]);
        assert!((huge - dec!(99999999)).abs() < dec!(1e-12), "{huge}");
    }

    #[test]
    fn format_apr_has_four_decimals() {
        assert_eq!(format_apr(dec!(0.18)), "0.1800");
        assert_eq!(format_apr(dec!(0)), "0.0000");
        assert_eq!(format_apr(dec!(0.13565)), "0.1357");
        assert_eq!(format_apr(dec!(0.135649999)), "0.1356");
        assert_eq!(format_apr(dec!(-0.00001)), "0.0000");
        assert_eq!(format_apr(dec!(1.23456789)), "1.2346");
    }

    #[test]
    fn term_apr_for_the_cap() {
        assert_eq!(term_apr_unrounded(Pricing::Interest, rate("0.18"), 12), dec!(0.1800));
        assert_eq!(term_apr_unrounded(Pricing::Interest, rate("0.24004"), 12).to_string(), "0.2400");
        assert_eq!(term_apr_unrounded(Pricing::Interest, rate("0.24005"), 12).to_string(), "0.2401");
        assert_eq!(term_apr_unrounded(Pricing::Fee, rate("0"), 12).to_string(), "0.0000");
        // One month: a fee of rate is a monthly rate of rate.
        assert_eq!(term_apr_unrounded(Pricing::Fee, rate("0.01"), 1).to_string(), "0.1200");
        // Unrounded fee schedules: independent of principal, close to the rounded ones.
        assert_eq!(term_apr_unrounded(Pricing::Fee, rate("0.075"), 12).to_string(), "0.1357");
        assert_eq!(term_apr_unrounded(Pricing::Fee, rate("0.023"), 3).to_string(), "0.1375");
        assert_eq!(term_apr_unrounded(Pricing::Fee, rate("0.5"), 360).to_string(), "0.0291");
    }

    #[test]
    fn high_rates_converge() {
        let schedule = build_schedule(amount("1000000"), 360, Pricing::Interest, rate("0.36"), funded_on()).unwrap();
        let apr = schedule_apr_irr(&schedule);
        assert!((apr - dec!(0.36)).abs() <= dec!(0.0001), "{apr}");
        let schedule = build_schedule(amount("10000"), 24, Pricing::Interest, rate("12"), funded_on()).unwrap();
        assert_eq!(format_apr(schedule_apr_irr(&schedule)), "12.0000");
        let fee = term_apr_unrounded(Pricing::Fee, rate("99"), 360);
        assert!(fee > dec!(3) && fee < dec!(4), "{fee}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]

        /// The IRR of a rate-r interest schedule is r within 0.0001.
        #[test]
        fn interest_schedule_apr_is_its_rate(
            principal_fen in 100_000_i64..=1_000_000_000,
            term_months in 1_u32..=360,
            rate_bp in 1_i64..=3600,
        ) {
            let yearly = Rate::try_from_decimal(Decimal::new(rate_bp, 4)).unwrap();
            let principal = Amount::from_fen(principal_fen);
            if let Ok(schedule) = build_schedule(principal, term_months, Pricing::Interest, yearly, funded_on()) {
                let apr = schedule_apr_irr(&schedule);
                prop_assert!((apr - yearly.as_decimal()).abs() <= dec!(0.0001), "apr {} rate {}", apr, yearly);
                prop_assert_eq!(term_apr_unrounded(Pricing::Interest, yearly, term_months), yearly.as_decimal());
            } else {
                prop_assert!(term_months > 60, "short terms over 1000 yuan always schedule");
            }
        }

        /// Seeded from `f64` or not, the solver finds the same root (to `TOLERANCE`, twice: each
        /// answer is within it of the root) and so the same APR.
        #[test]
        fn the_f64_seed_changes_no_answer(
            principal_fen in 1_i64..=1_000_000_000,
            payments_fen in proptest::collection::vec(0_i64..=100_000_000, 1..60),
        ) {
            let principal = Decimal::new(principal_fen, 2);
            let payments: Vec<Decimal> = payments_fen.iter().map(|&f| Decimal::new(f, 2)).collect();
            let total: Decimal = payments.iter().sum();
            prop_assume!(!total.is_zero() && total != principal);
            let seeded = solve_discount_factor(principal, &payments, total);
            let unseeded = solve_from(principal, &payments, initial_bracket(principal, &payments, total));
            prop_assert!((seeded - unseeded).abs() <= TOLERANCE * Decimal::TWO, "{} against {}", seeded, unseeded);
            let apr = |v: Decimal| round_apr((Decimal::ONE / v - Decimal::ONE) * Decimal::from(12));
            prop_assert_eq!(apr(seeded), apr(unseeded));
        }

        /// The solver's root really zeroes the present value.
        #[test]
        fn irr_zeroes_present_value(
            principal_fen in 1_i64..=1_000_000_000,
            payments_fen in proptest::collection::vec(0_i64..=100_000_000, 1..40),
        ) {
            let principal = Amount::from_fen(principal_fen);
            let payments: Vec<Amount> = payments_fen.iter().map(|&f| Amount::from_fen(f)).collect();
            let monthly = monthly_irr(principal, &payments);
            if payments.iter().all(Amount::is_zero) {
                prop_assert_eq!(monthly, Decimal::NEGATIVE_ONE);
            } else {
                prop_assert!(monthly > Decimal::NEGATIVE_ONE);
                let v = Decimal::ONE / (Decimal::ONE + monthly);
                if let Some((value, slope)) = evaluate(principal.as_decimal(), &payments.iter().map(Amount::as_decimal).collect::<Vec<_>>(), v) {
                    // |f(v)| within what a 1e-20 error on v can explain.
                    let allowed = slope.abs() * dec!(1e-18) + principal.as_decimal() * dec!(1e-18);
                    prop_assert!(value.abs() <= allowed, "f(v) = {} at v = {}", value, v);
                }
            }
        }
    }
}
