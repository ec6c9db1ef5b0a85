//! Shorthands the domain's unit tests share, so that each test reads as the contract's examples do.

use super::money::Amount;
use chrono::NaiveDate;

/// A calendar date; the tests write only valid ones.
pub fn d(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("a valid test date")
}

/// An amount written as API.md writes it ("3000.00").
pub fn amount(text: &str) -> Amount {
    Amount::parse(text).expect("a valid test amount")
}
