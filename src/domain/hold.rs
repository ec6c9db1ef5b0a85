//! Hold (预授权) amounts: what a credit line freezes for an order, and what it
//! is released down to as the plan is repaid. Hold amounts round *up* to the fen.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::money::{Amount, RateError, parse_rate_decimal};
use super::schedule::ScheduledInstallment;

/// Largest hold ratio a product may set.
pub const MAX_HOLD_RATIO: Decimal = Decimal::TEN;

/// A product's hold ratio: a decimal string in the rate grammar, in (0, 10].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct HoldRatio(Decimal);

impl HoldRatio {
    /// The default ratio, 1.00.
    pub const ONE: HoldRatio = HoldRatio(Decimal::ONE);

    /// Parses `^[0-9]{1,2}(\.[0-9]{1,8})?$` and requires `0 < ratio <= 10`.
    pub fn parse(text: &str) -> Result<HoldRatio, RateError> {
        HoldRatio::try_from_decimal(parse_rate_decimal(text)?)
    }

    /// A ratio from a decimal, requiring `0 < ratio <= 10` and at most 8 decimals.
    pub fn try_from_decimal(value: Decimal) -> Result<HoldRatio, RateError> {
        let normalized = value.normalize();
        if normalized.scale() > 8 {
            return Err(RateError::Malformed);
        }
        if normalized <= Decimal::ZERO || normalized > MAX_HOLD_RATIO {
            return Err(RateError::OutOfRange);
        }
        Ok(HoldRatio(normalized))
    }

    /// The ratio as a decimal.
    pub fn as_decimal(&self) -> Decimal {
        self.0
    }
}

impl Default for HoldRatio {
    fn default() -> HoldRatio {
        HoldRatio::ONE
    }
}

impl fmt::Display for HoldRatio {
    /// At least 2 decimals, trailing zeros beyond them dropped: `1.00`, `1.10`, `1.125`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0;
        if shown.scale() < 2 {
            shown.rescale(2);
        }
        fmt::Display::fmt(&shown, f)
    }
}

impl FromStr for HoldRatio {
    type Err = RateError;
    fn from_str(text: &str) -> Result<HoldRatio, RateError> {
        HoldRatio::parse(text)
    }
}

impl Serialize for HoldRatio {
    /// As a JSON string.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HoldRatio {
    /// From a JSON string.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<HoldRatio, D::Error> {
        let text = String::deserialize(deserializer)?;
        HoldRatio::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The hold placed for a schedule: round *up* to the fen of
/// (principal + all scheduled interest and fees) × `hold_ratio`.
///
/// # Panics
/// If `hold_ratio` is not in (0, 10].
pub fn hold_amount(schedule: &[ScheduledInstallment], hold_ratio: Decimal) -> Amount {
    let scheduled_total: Amount = schedule.iter().map(ScheduledInstallment::total).sum();
    hold_target(scheduled_total, hold_ratio)
}

/// What a hold is released down to: round-up(`unpaid_scheduled` × `hold_ratio`),
/// `unpaid_scheduled` being the unpaid principal + interest + fee, less anything waived.
///
/// # Panics
/// If `hold_ratio` is not in (0, 10].
pub fn hold_target(unpaid_scheduled: Amount, hold_ratio: Decimal) -> Amount {
    assert!(hold_ratio > Decimal::ZERO && hold_ratio <= MAX_HOLD_RATIO, "hold ratio must be in (0, 10], got {hold_ratio}");
    let target = Amount::round_up(unpaid_scheduled.as_decimal() * hold_ratio);
    debug_assert!(target >= unpaid_scheduled || hold_ratio < Decimal::ONE, "a ratio of 1+ covers the debt");
    target
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Rate;
    use crate::domain::schedule::{Pricing, build_schedule};
    use crate::domain::test_support::*;
    use chrono::NaiveDate;
    use rust_decimal_macros::dec;

    #[test]
    fn worked_example_hold() {
        let funded_on = NaiveDate::from_ymd_opt(2027, 1, 31).unwrap();
        let rate = Rate::parse("0.18").unwrap();
        let schedule = build_schedule(amount("3000"), 12, Pricing::Interest, rate, funded_on).unwrap();
        assert_eq!(hold_amount(&schedule, dec!(1.00)), amount("3300.46"));
        assert_eq!(hold_amount(&schedule, dec!(1.5)), amount("4950.69"));
        assert_eq!(hold_amount(&schedule, dec!(0.001)), amount("3.31"), "3.30046 rounds up");
    }

    #[test]
    fn hold_target_rounds_up() {
        assert_eq!(hold_target(amount("1258.77"), dec!(1.10)), amount("1384.65"));
        assert_eq!(hold_target(amount("100"), dec!(1.00000001)), amount("100.01"));
        assert_eq!(hold_target(amount("100"), dec!(1)), amount("100"));
        assert_eq!(hold_target(Amount::ZERO, dec!(10)), Amount::ZERO);
        assert_eq!(hold_target(amount("999999999999.99"), dec!(10)), Amount::from_fen(999_999_999_999_990));
    }

    #[test]
    #[should_panic(expected = "hold ratio")]
    fn hold_target_refuses_zero_ratio() {
        let _ = hold_target(amount("1"), Decimal::ZERO);
    }

    #[test]
    fn hold_ratio_parse() {
        assert_eq!(HoldRatio::parse("1.00").map(|r| r.to_string()), Ok("1.00".to_string()));
        assert_eq!(HoldRatio::parse("1").map(|r| r.to_string()), Ok("1.00".to_string()));
        assert_eq!(HoldRatio::parse("1.1").map(|r| r.to_string()), Ok("1.10".to_string()));
        assert_eq!(HoldRatio::parse("1.125").map(|r| r.to_string()), Ok("1.125".to_string()));
        assert_eq!(HoldRatio::parse("10").map(|r| r.as_decimal()), Ok(dec!(10)));
        assert_eq!(HoldRatio::parse("10.00000000").map(|r| r.as_decimal()), Ok(dec!(10)));
        assert_eq!(HoldRatio::parse("0.00000001").map(|r| r.as_decimal()), Ok(dec!(0.00000001)));
        assert_eq!(HoldRatio::parse("0"), Err(RateError::OutOfRange));
        assert_eq!(HoldRatio::parse("0.00"), Err(RateError::OutOfRange));
        assert_eq!(HoldRatio::parse("10.00000001"), Err(RateError::OutOfRange));
        assert_eq!(HoldRatio::parse("11"), Err(RateError::OutOfRange));
        for bad in ["", "-1", "+1", "1.", ".5", "100", "1e0", " 1", "1.000000001"] {
            assert_eq!(HoldRatio::parse(bad), Err(RateError::Malformed), "{bad:?}");
        }
        assert_eq!(HoldRatio::default(), HoldRatio::ONE);
        assert_eq!(HoldRatio::try_from_decimal(dec!(-1)), Err(RateError::OutOfRange));
        assert_eq!(serde_json::to_string(&HoldRatio::ONE).unwrap(), "\"1.00\"");
    }
}
