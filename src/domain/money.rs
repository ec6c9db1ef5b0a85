//! Money (CNY yuan at fen precision) and rates, as decimal newtypes.
//!
//! "Parse, don't validate": an [`Amount`] or a [`Rate`] that exists is valid.
//! An `Amount` is never negative and always carries exactly 2 decimals.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign};
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Decimal places of every [`Amount`]: the fen.
pub const AMOUNT_SCALE: u32 = 2;

/// Most integer digits a parsed amount may have (API.md §1).
pub const AMOUNT_MAX_INTEGER_DIGITS: usize = 12;

/// Why a money string was refused (API: `422 invalid_amount`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// The text does not match `^[0-9]{1,12}(\.[0-9]{1,2})?$`.
    #[error("amount must be a string of yuan matching ^[0-9]{{1,12}}(\\.[0-9]{{1,2}})?$")]
    Malformed,
    /// The amount is zero where a positive amount is required.
    #[error("amount must be positive")]
    NotPositive,
    /// A negative value was offered as an amount.
    #[error("amount must not be negative")]
    Negative,
    /// The value has more than 2 decimals or exceeds [`Amount::MAX_FEN`].
    #[error("amount out of range")]
    OutOfRange,
}

/// A non-negative amount of CNY with exactly 2 decimals (fen precision).
///
/// Invariants: `0 <= value <= Amount::MAX_FEN` fen and scale is exactly 2.
/// Parsed amounts have at most 12 integer digits; sums (schedule totals,
/// hold amounts) may be larger but always fit in an `i64` of fen.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Amount(Decimal);

impl Amount {
    /// 0.00 yuan.
    pub const ZERO: Amount = Amount(Decimal::from_parts(0, 0, 0, false, AMOUNT_SCALE));

    /// The largest amount representable, in fen (`i64::MAX`).
    pub const MAX_FEN: i64 = i64::MAX;

    /// Parses the API money format `^[0-9]{1,12}(\.[0-9]{1,2})?$` (zero allowed).
    pub fn parse(text: &str) -> Result<Amount, AmountError> {
        let (integer_part, fraction_part) = split_decimal(text);
        let integer_ok = is_digits(integer_part, 1, AMOUNT_MAX_INTEGER_DIGITS);
        let fraction_ok = fraction_part.is_none_or(|f| is_digits(f, 1, 2));
        if !integer_ok || !fraction_ok {
            return Err(AmountError::Malformed);
        }
        let integer_yuan = digits_value(integer_part);
        let fraction_fen = fraction_part.map_or(0, |f| {
            let value = digits_value(f);
            if f.len() == 1 { value * 10 } else { value }
        });
        debug_assert!(fraction_fen < 100, "fraction must be below 100 fen");
        let amount_fen = integer_yuan * 100 + fraction_fen;
        Ok(Amount::from_fen(amount_fen))
    }

    /// Parses like [`Amount::parse`] and also refuses zero (fields marked (>0)).
    pub fn parse_positive(text: &str) -> Result<Amount, AmountError> {
        let amount = Amount::parse(text)?;
        if amount.is_zero() {
            return Err(AmountError::NotPositive);
        }
        Ok(amount)
    }

    /// An amount of `amount_fen` fen.
    ///
    /// # Panics
    /// If `amount_fen` is negative (a programming error: use [`Amount::try_from_fen`]
    /// for untrusted values).
    pub fn from_fen(amount_fen: i64) -> Amount {
        assert!(amount_fen >= 0, "amount in fen must not be negative: {amount_fen}");
        Amount(Decimal::new(amount_fen, AMOUNT_SCALE))
    }

    /// An amount of `amount_fen` fen, refusing negative values.
    pub fn try_from_fen(amount_fen: i64) -> Result<Amount, AmountError> {
        if amount_fen < 0 {
            return Err(AmountError::Negative);
        }
        Ok(Amount::from_fen(amount_fen))
    }

    /// An exact decimal as an amount: non-negative, at most 2 decimals, in range.
    pub fn try_from_decimal(value: Decimal) -> Result<Amount, AmountError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(AmountError::Negative);
        }
        let normalized = value.normalize();
        if normalized.scale() > AMOUNT_SCALE {
            return Err(AmountError::OutOfRange);
        }
        Amount::from_rounded(normalized).ok_or(AmountError::OutOfRange)
    }

    /// The amount in fen.
    pub fn fen(&self) -> i64 {
        debug_assert_eq!(self.0.scale(), AMOUNT_SCALE, "amount scale must be 2");
        let amount_fen = i64::try_from(self.0.mantissa());
        match amount_fen {
            Ok(amount_fen) => {
                debug_assert!(amount_fen >= 0, "amount must not be negative");
                amount_fen
            }
            Err(_) => unreachable!("amount invariant: fits in i64 fen"),
        }
    }

    /// Rounds a non-negative decimal half-up (四舍五入) to the fen.
    ///
    /// # Panics
    /// If `value` is negative or the result exceeds [`Amount::MAX_FEN`].
    pub fn round_half_up(value: Decimal) -> Amount {
        match Amount::checked_round_half_up(value) {
            Some(amount) => amount,
            None => panic!("round_half_up: value must be non-negative and within Amount::MAX_FEN: {value}"),
        }
    }

    /// Rounds half-up to the fen; `None` if `value` is negative or too large.
    pub fn checked_round_half_up(value: Decimal) -> Option<Amount> {
        if value.is_sign_negative() && !value.is_zero() {
            return None;
        }
        let rounded = value.round_dp_with_strategy(AMOUNT_SCALE, RoundingStrategy::MidpointAwayFromZero);
        Amount::from_rounded(rounded)
    }

    /// Rounds a non-negative decimal *up* (ceiling) to the fen, as hold amounts do.
    ///
    /// # Panics
    /// If `value` is negative or the result exceeds [`Amount::MAX_FEN`].
    pub fn round_up(value: Decimal) -> Amount {
        match Amount::checked_round_up(value) {
            Some(amount) => amount,
            None => {
                panic!("round_up: value must be non-negative and within Amount::MAX_FEN: {value}")
            }
        }
    }

    /// Rounds up (ceiling) to the fen; `None` if `value` is negative or too large.
    pub fn checked_round_up(value: Decimal) -> Option<Amount> {
        if value.is_sign_negative() && !value.is_zero() {
            return None;
        }
        let rounded = value.round_dp_with_strategy(AMOUNT_SCALE, RoundingStrategy::ToPositiveInfinity);
        Amount::from_rounded(rounded)
    }

    /// Builds an amount from a decimal already at most 2 decimals, non-negative.
    fn from_rounded(rounded: Decimal) -> Option<Amount> {
        debug_assert!(rounded.scale() <= AMOUNT_SCALE, "value must be rounded to the fen");
        let mut value = rounded;
        if value.is_zero() {
            return Some(Amount::ZERO);
        }
        debug_assert!(!value.is_sign_negative(), "value must not be negative");
        value.rescale(AMOUNT_SCALE);
        if value.scale() != AMOUNT_SCALE || value.mantissa() > i128::from(Amount::MAX_FEN) {
            return None;
        }
        Some(Amount(value))
    }

    /// The amount as a decimal of yuan with scale 2.
    pub fn as_decimal(&self) -> Decimal {
        self.0
    }

    /// `self + other`, or `None` beyond [`Amount::MAX_FEN`].
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        let sum_fen = self.fen().checked_add(other.fen())?;
        Some(Amount::from_fen(sum_fen))
    }

    /// `self - other`, or `None` if that would be negative.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        let difference_fen = self.fen() - other.fen();
        if difference_fen < 0 {
            return None;
        }
        Some(Amount::from_fen(difference_fen))
    }

    /// `self - other`, floored at zero.
    pub fn saturating_sub(self, other: Amount) -> Amount {
        self.checked_sub(other).unwrap_or(Amount::ZERO)
    }

    /// True for 0.00.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// True for anything above 0.00.
    pub fn is_positive(&self) -> bool {
        !self.is_zero()
    }
}

impl Default for Amount {
    /// [`Amount::ZERO`] (with its 2 decimals).
    fn default() -> Amount {
        Amount::ZERO
    }
}

impl fmt::Display for Amount {
    /// Exactly 2 decimals: `2999.00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_assert_eq!(self.0.scale(), AMOUNT_SCALE, "amount scale must be 2");
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Amount {
    type Err = AmountError;
    fn from_str(text: &str) -> Result<Amount, AmountError> {
        Amount::parse(text)
    }
}

impl Add for Amount {
    type Output = Amount;
    /// # Panics
    /// Beyond [`Amount::MAX_FEN`] (no valid schedule gets near it).
    fn add(self, other: Amount) -> Amount {
        match self.checked_add(other) {
            Some(sum) => sum,
            None => panic!("amount overflow: {self} + {other}"),
        }
    }
}

impl AddAssign for Amount {
    fn add_assign(&mut self, other: Amount) {
        *self = *self + other;
    }
}

impl Sum for Amount {
    fn sum<I: Iterator<Item = Amount>>(iter: I) -> Amount {
        iter.fold(Amount::ZERO, Add::add)
    }
}

impl<'a> Sum<&'a Amount> for Amount {
    fn sum<I: Iterator<Item = &'a Amount>>(iter: I) -> Amount {
        iter.copied().sum()
    }
}

impl Serialize for Amount {
    /// As a JSON string with exactly 2 decimals.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    /// From a JSON string in the API money format (a JSON number is refused).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Amount, D::Error> {
        let text = String::deserialize(deserializer)?;
        Amount::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Why a rate or ratio string was refused (API: `422 invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// The text does not match `^[0-9]{1,2}(\.[0-9]{1,8})?$`.
    #[error("rate must be a decimal string matching ^[0-9]{{1,2}}(\\.[0-9]{{1,8}})?$")]
    Malformed,
    /// The value is outside the range allowed for this kind of ratio.
    #[error("ratio out of range")]
    OutOfRange,
}

/// A non-negative rate (yearly, daily or per term: the field name says which).
///
/// Stored normalized (no trailing zeros), so `"0.180"` and `"0.18"` are the
/// same rate and both display as `0.18`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Rate(Decimal);

impl Rate {
    /// Zero.
    pub const ZERO: Rate = Rate(Decimal::ZERO);

    /// Parses `^[0-9]{1,2}(\.[0-9]{1,8})?$`.
    pub fn parse(text: &str) -> Result<Rate, RateError> {
        parse_rate_decimal(text).map(Rate)
    }

    /// A rate from a decimal that must itself satisfy the rate grammar
    /// (non-negative, below 100, at most 8 decimals).
    pub fn try_from_decimal(value: Decimal) -> Result<Rate, RateError> {
        let normalized = value.normalize();
        let in_range = !normalized.is_sign_negative() && normalized < Decimal::ONE_HUNDRED;
        if !in_range || normalized.scale() > 8 {
            return Err(RateError::Malformed);
        }
        Ok(Rate(normalized))
    }

    /// The rate as a decimal.
    pub fn as_decimal(&self) -> Decimal {
        self.0
    }

    /// True for a zero rate.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl fmt::Display for Rate {
    /// The normalized decimal: `0.18`, `0.0005`, `0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Rate {
    type Err = RateError;
    fn from_str(text: &str) -> Result<Rate, RateError> {
        Rate::parse(text)
    }
}

impl Serialize for Rate {
    /// As a JSON string.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    /// From a JSON string in the rate format.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Rate, D::Error> {
        let text = String::deserialize(deserializer)?;
        Rate::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Parses the rate grammar `^[0-9]{1,2}(\.[0-9]{1,8})?$` into a normalized decimal.
pub(crate) fn parse_rate_decimal(text: &str) -> Result<Decimal, RateError> {
    let (integer_part, fraction_part) = split_decimal(text);
    let integer_ok = is_digits(integer_part, 1, 2);
    let fraction_ok = fraction_part.is_none_or(|f| is_digits(f, 1, 8));
    if !integer_ok || !fraction_ok {
        return Err(RateError::Malformed);
    }
    let fraction = fraction_part.unwrap_or("");
    let scale = u32::try_from(fraction.len()).map_err(|_| RateError::Malformed)?;
    let mantissa = digits_value(integer_part) * 10_i64.pow(scale) + digits_value(fraction);
    let value = Decimal::new(mantissa, scale).normalize();
    debug_assert!(!value.is_sign_negative() && value < Decimal::ONE_HUNDRED, "rate in [0, 100)");
    Ok(value)
}

/// Splits `"12.34"` into `("12", Some("34"))`; a text without a dot has no fraction.
fn split_decimal(text: &str) -> (&str, Option<&str>) {
    match text.split_once('.') {
        Some((integer_part, fraction_part)) => (integer_part, Some(fraction_part)),
        None => (text, None),
    }
}

/// True when `text` is `min..=max` ASCII digits.
fn is_digits(text: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

/// The value of an ASCII digit string of at most 12 digits.
fn digits_value(text: &str) -> i64 {
    debug_assert!(text.len() <= AMOUNT_MAX_INTEGER_DIGITS, "digit string too long");
    text.bytes().fold(0_i64, |value, b| {
        debug_assert!(b.is_ascii_digit(), "digits only");
        value * 10 + i64::from(b - b'0')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn parse_valid_amounts() {
        let cases = [
            ("2999", "2999.00", 299_900),
            ("2999.5", "2999.50", 299_950),
            ("2999.50", "2999.50", 299_950),
            ("0", "0.00", 0),
            ("0.01", "0.01", 1),
            ("0.1", "0.10", 10),
            ("007", "7.00", 700),
            ("999999999999.99", "999999999999.99", 99_999_999_999_999),
            ("999999999999", "999999999999.00", 99_999_999_999_900),
            ("3000000.00", "3000000.00", 300_000_000),
        ];
        for (text, shown, amount_fen) in cases {
            let amount = Amount::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(amount.to_string(), shown, "{text}");
            assert_eq!(amount.fen(), amount_fen, "{text}");
            assert_eq!(amount.as_decimal().scale(), 2, "{text}");
        }
    }

    #[test]
    fn parse_invalid_amounts() {
        let cases = [
            "",
            " ",
            "1.",
            ".5",
            ".",
            "1.234",
            "0.001",
            "1000000000000",
            "1000000000000.00",
            "+1",
            "-1",
            "-0",
            " 1",
            "1 ",
            "1\n",
            "1e3",
            "1E3",
            "1.0e1",
            "1,00",
            "1..0",
            "1.2.3",
            "abc",
            "１２",
            "0x10",
            "NaN",
            "inf",
            "1_000",
            "٣",
        ];
        for text in cases {
            assert_eq!(Amount::parse(text), Err(AmountError::Malformed), "{text:?}");
        }
    }

    #[test]
    fn parse_positive_refuses_zero() {
        assert_eq!(Amount::parse_positive("0"), Err(AmountError::NotPositive));
        assert_eq!(Amount::parse_positive("0.00"), Err(AmountError::NotPositive));
        assert_eq!(Amount::parse_positive("0.01").map(|a| a.fen()), Ok(1));
        assert_eq!(Amount::parse_positive("x"), Err(AmountError::Malformed));
    }

    #[test]
    fn rounding_half_up_and_up() {
        assert_eq!(Amount::round_half_up(dec!(0.115)).to_string(), "0.12");
        assert_eq!(Amount::round_half_up(dec!(0.11502)).to_string(), "0.12");
        assert_eq!(Amount::round_half_up(dec!(0.1149999)).to_string(), "0.11");
        assert_eq!(Amount::round_half_up(dec!(2.5)).to_string(), "2.50");
        assert_eq!(Amount::round_half_up(dec!(0.005)).to_string(), "0.01");
        assert_eq!(Amount::round_half_up(dec!(0.004)).to_string(), "0.00");
        assert_eq!(Amount::round_half_up(dec!(0)).to_string(), "0.00");
        assert_eq!(Amount::round_half_up(dec!(-0.00)).to_string(), "0.00");
        assert_eq!(Amount::round_up(dec!(1384.647)).to_string(), "1384.65");
        assert_eq!(Amount::round_up(dec!(1384.641)).to_string(), "1384.65");
        assert_eq!(Amount::round_up(dec!(1384.64)).to_string(), "1384.64");
        assert_eq!(Amount::round_up(dec!(0.0000001)).to_string(), "0.01");
        assert_eq!(Amount::checked_round_half_up(dec!(-0.01)), None);
        assert_eq!(Amount::checked_round_up(dec!(-0.001)), None);
        assert_eq!(Amount::checked_round_half_up(dec!(100000000000000000)), None);
    }

    #[test]
    #[should_panic(expected = "round_half_up")]
    fn round_half_up_panics_on_negative() {
        let _ = Amount::round_half_up(dec!(-1));
    }

    #[test]
    #[should_panic(expected = "must not be negative")]
    fn from_fen_panics_on_negative() {
        let _ = Amount::from_fen(-1);
    }

    #[test]
    fn fen_round_trip_and_extremes() {
        assert_eq!(Amount::from_fen(27504).to_string(), "275.04");
        assert_eq!(Amount::from_fen(Amount::MAX_FEN).fen(), Amount::MAX_FEN);
        assert_eq!(Amount::try_from_fen(-5), Err(AmountError::Negative));
        assert_eq!(Amount::ZERO.to_string(), "0.00");
        assert_eq!(Amount::default(), Amount::ZERO);
        assert_eq!(Amount::default().to_string(), "0.00");
        assert_eq!(Amount::try_from_decimal(dec!(1.5)).map(|a| a.to_string()), Ok("1.50".into()));
        assert_eq!(Amount::try_from_decimal(dec!(1.500)).map(|a| a.fen()), Ok(150));
        assert_eq!(Amount::try_from_decimal(dec!(1.505)), Err(AmountError::OutOfRange));
        assert_eq!(Amount::try_from_decimal(dec!(-1)), Err(AmountError::Negative));
    }

    #[test]
    fn arithmetic() {
        let a = Amount::from_fen(1050);
        let b = Amount::from_fen(25);
        assert_eq!((a + b).fen(), 1075);
        assert_eq!(a.checked_sub(b).map(|x| x.fen()), Some(1025));
        assert_eq!(b.checked_sub(a), None);
        assert_eq!(b.saturating_sub(a), Amount::ZERO);
        assert_eq!(a.min(b), b);
        let mut c = a;
        c += b;
        assert_eq!(c.fen(), 1075);
        assert_eq!([a, b, c].iter().sum::<Amount>().fen(), 2150);
        assert_eq!(vec![a, b].into_iter().sum::<Amount>().fen(), 1075);
        assert!(Amount::ZERO.is_zero() && !Amount::ZERO.is_positive());
        assert!(b.is_positive());
        assert!(a > b);
        assert_eq!(Amount::from_fen(Amount::MAX_FEN).checked_add(Amount::from_fen(1)), None);
    }

    #[test]
    fn amount_serde_is_a_string() {
        let amount = Amount::parse("2999.5").unwrap_or(Amount::ZERO);
        assert_eq!(serde_json::to_string(&amount).ok(), Some("\"2999.50\"".to_string()));
        let back: Result<Amount, _> = serde_json::from_str("\"12.3\"");
        assert_eq!(back.ok().map(|a| a.fen()), Some(1230));
        assert!(serde_json::from_str::<Amount>("12.3").is_err(), "a JSON number is refused");
        assert!(serde_json::from_str::<Amount>("\"1.234\"").is_err());
    }

    #[test]
    fn parse_valid_rates() {
        let cases = [
            ("0.18", "0.18"),
            ("0.180", "0.18"),
            ("0", "0"),
            ("0.00", "0"),
            ("0.0005", "0.0005"),
            ("99.99999999", "99.99999999"),
            ("1.00", "1"),
            ("12", "12"),
            ("0.00000001", "0.00000001"),
        ];
        for (text, shown) in cases {
            let rate = Rate::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(rate.to_string(), shown, "{text}");
        }
        assert_eq!(Rate::parse("0.18"), Rate::parse("0.1800"));
        assert_eq!(Rate::parse("0.18").map(|r| r.as_decimal()), Ok(dec!(0.18)));
    }

    #[test]
    fn parse_invalid_rates() {
        let cases = ["", "100", "123.4", "0.123456789", "1.", ".5", "+0.1", "-0.1", " 0.1", "0.1 ", "1e-2", "0,1", "0..1", "a", "0.1.2"];
        for text in cases {
            assert_eq!(Rate::parse(text), Err(RateError::Malformed), "{text:?}");
        }
    }

    #[test]
    fn rate_from_decimal() {
        assert_eq!(Rate::try_from_decimal(dec!(0.1800)).map(|r| r.to_string()), Ok("0.18".to_string()));
        assert_eq!(Rate::try_from_decimal(dec!(-0.1)), Err(RateError::Malformed));
        assert_eq!(Rate::try_from_decimal(dec!(100)), Err(RateError::Malformed));
        assert_eq!(Rate::try_from_decimal(dec!(0.000000001)), Err(RateError::Malformed));
        assert!(Rate::ZERO.is_zero());
        let json = serde_json::to_string(&Rate::parse("0.075").unwrap_or(Rate::ZERO)).ok();
        assert_eq!(json, Some("\"0.075\"".to_string()));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Display and parse are inverse on every parseable amount.
        #[test]
        fn amount_display_round_trips(amount_fen in 0_i64..=99_999_999_999_999) {
            let amount = Amount::from_fen(amount_fen);
            let shown = amount.to_string();
            proptest::prop_assert_eq!(Amount::parse(&shown), Ok(amount));
            proptest::prop_assert_eq!(shown.split_once('.').map(|(_, f)| f.len()), Some(2));
        }

        /// Every string the API grammar allows parses, to the value it spells.
        #[test]
        fn grammar_strings_parse(text in "[0-9]{1,12}(\\.[0-9]{1,2})?") {
            let amount = Amount::parse(&text);
            proptest::prop_assert!(amount.is_ok(), "{}", text);
            let value = amount.map(|a| a.as_decimal()).unwrap_or_default();
            proptest::prop_assert_eq!(Some(value), text.parse::<Decimal>().ok());
        }

        /// Strings with signs, blanks, exponents or stray dots never parse.
        #[test]
        fn other_strings_do_not_parse(text in "[0-9.+ eE-]{0,16}") {
            let plain = text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            let one_dot_at_most = text.matches('.').count() <= 1;
            let parsed = Amount::parse(&text);
            if !plain || !one_dot_at_most || text.starts_with('.') || text.ends_with('.') || text.is_empty() {
                proptest::prop_assert_eq!(parsed, Err(AmountError::Malformed), "{}", text);
            }
        }
    }
}
