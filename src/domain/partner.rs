//! Partner (地推合作方) eligibility: the carrier's published recruiting terms.

use chrono::NaiveDate;
use serde::Serialize;

use super::money::Amount;

/// Days a partner must have existed to be eligible ("at least one year").
pub const MIN_ESTABLISHED_DAYS: i64 = 365;

/// Why a partner may not place orders (`details.reasons` of `partner_not_eligible`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IneligibleReason {
    /// Paid-in deposit below the configured minimum (default 3,000,000.00).
    DepositBelowMinimum,
    /// Established less than 365 days before today.
    EstablishedLessThanOneYear,
    /// No credit provider has authorised the partner.
    NoProviderAuthorization,
    /// A major violation in the last year.
    MajorViolation,
    /// Not authorised by any of the product's providers (checked per order,
    /// never returned by [`eligibility`]).
    NotAuthorizedForProduct,
}

impl IneligibleReason {
    /// The reason code the API shows.
    pub fn code(&self) -> &'static str {
        match self {
            IneligibleReason::DepositBelowMinimum => "deposit_below_minimum",
            IneligibleReason::EstablishedLessThanOneYear => "established_less_than_one_year",
            IneligibleReason::NoProviderAuthorization => "no_provider_authorization",
            IneligibleReason::MajorViolation => "major_violation",
            IneligibleReason::NotAuthorizedForProduct => "not_authorized_for_product",
        }
    }
}

/// The reasons a partner is ineligible today, in a fixed order; empty when eligible.
///
/// Eligible needs `deposit_paid >= min_deposit`, `today − established_on >= 365`
/// days, at least one authorising provider and no major violation in the last year.
pub fn eligibility(
    deposit_paid: Amount,
    established_on: NaiveDate,
    authorized_providers_count: usize,
    major_violation_last_year: bool,
    today: NaiveDate,
    min_deposit: Amount,
) -> Vec<IneligibleReason> {
    let established_days = (today - established_on).num_days();
    let checks = [
        (deposit_paid < min_deposit, IneligibleReason::DepositBelowMinimum),
        (established_days < MIN_ESTABLISHED_DAYS, IneligibleReason::EstablishedLessThanOneYear),
        (authorized_providers_count == 0, IneligibleReason::NoProviderAuthorization),
        (major_violation_last_year, IneligibleReason::MajorViolation),
    ];
    checks.into_iter().filter(|(failed, _)| *failed).map(|(_, reason)| reason).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_support::*;

    fn min_deposit() -> Amount {
        amount("3000000.00")
    }

    #[test]
    fn eligible_at_the_boundaries() {
        let today = d(2027, 6, 1);
        let established_on = today - chrono::Days::new(365);
        let reasons = eligibility(amount("3000000.00"), established_on, 1, false, today, min_deposit());
        assert!(reasons.is_empty(), "{reasons:?}");
    }

    #[test]
    fn deposit_boundary() {
        let today = d(2027, 6, 1);
        let reasons = eligibility(amount("2999999.99"), d(2020, 1, 1), 2, false, today, min_deposit());
        assert_eq!(reasons, vec![IneligibleReason::DepositBelowMinimum]);
        assert!(eligibility(amount("3000000.01"), d(2020, 1, 1), 2, false, today, min_deposit()).is_empty());
    }

    #[test]
    fn established_boundary() {
        let today = d(2027, 6, 1);
        let too_young = today - chrono::Days::new(364);
        let reasons = eligibility(min_deposit(), too_young, 1, false, today, min_deposit());
        assert_eq!(reasons, vec![IneligibleReason::EstablishedLessThanOneYear]);
        let future = today + chrono::Days::new(1);
        assert_eq!(eligibility(min_deposit(), future, 1, false, today, min_deposit()), reasons);
        // Across a leap day 365 days is one day short of the calendar year, and still enough.
        let leap_today = d(2028, 3, 1);
        assert!(eligibility(min_deposit(), d(2027, 3, 2), 1, false, leap_today, min_deposit()).is_empty());
    }

    #[test]
    fn every_reason_in_order() {
        let reasons = eligibility(Amount::ZERO, d(2027, 6, 1), 0, true, d(2027, 6, 1), min_deposit());
        let codes: Vec<_> = reasons.iter().map(IneligibleReason::code).collect();
        assert_eq!(codes, vec!["deposit_below_minimum", "established_less_than_one_year", "no_provider_authorization", "major_violation"]);
        assert_eq!(
            eligibility(min_deposit(), d(2020, 1, 1), 0, false, d(2027, 6, 1), min_deposit()),
            vec![IneligibleReason::NoProviderAuthorization]
        );
        assert_eq!(
            eligibility(min_deposit(), d(2020, 1, 1), 1, true, d(2027, 6, 1), min_deposit()),
            vec![IneligibleReason::MajorViolation]
        );
    }

    #[test]
    fn codes_serialize_as_codes() {
        for reason in [
            IneligibleReason::DepositBelowMinimum,
            IneligibleReason::EstablishedLessThanOneYear,
            IneligibleReason::NoProviderAuthorization,
            IneligibleReason::MajorViolation,
            IneligibleReason::NotAuthorizedForProduct,
        ] {
            assert_eq!(serde_json::to_string(&reason).unwrap(), format!("\"{}\"", reason.code()));
        }
    }
}
