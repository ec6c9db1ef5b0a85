//! Fixtures for the tests (`tests/common`) and the bench (`bench/api.rs`): valid, distinct
//! identities per seed. They live in the library, once, because both the test crates and the bench
//! binary need them and neither can import the other; the service itself never calls them.

/// GB 11643 weights of the first 17 characters of an ID number.
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Birth dates span this many days from 1950-01-01 (about 54 years), so any seed gives a real date.
const BIRTH_DAYS: u64 = 20_000;

/// A valid PRC resident ID number (GB 11643 check character), distinct for each seed below
/// 20,000,000: the seed picks the birth date (`seed / 1000`) and the serial (`seed % 1000`).
pub fn id_number(seed: u64) -> String {
    let base = chrono::NaiveDate::from_ymd_opt(1950, 1, 1).expect("a real date");
    let born = base + chrono::Duration::days(((seed / 1000) % BIRTH_DAYS) as i64);
    let body = format!("440305{}{:03}", born.format("%Y%m%d"), seed % 1000);
    let sum: u32 = body.bytes().zip(ID_WEIGHTS).map(|(c, w)| u32::from(c - b'0') * w).sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{body}{check}")
}

/// A valid mainland mobile number, distinct for each seed below 100,000,000.
pub fn phone(seed: u64) -> String {
    format!("138{:08}", seed % 100_000_000)
}

/// A Luhn-valid IMEI, distinct for each seed below 10^14.
pub fn imei(seed: u64) -> String {
    let body = format!("{:014}", seed % 100_000_000_000_000);
    let mut total = 0;
    for (k, c) in body.bytes().rev().enumerate() {
        let mut d = u32::from(c - b'0');
        if k % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        total += d;
    }
    format!("{body}{}", (10 - total % 10) % 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::identity::{IdNumber, Imei, Phone};

    #[test]
    fn generated_identities_are_valid_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for i in (0..40_000).step_by(7).chain([u64::MAX, 19_999_999]) {
            assert!(IdNumber::parse(&id_number(i)).is_ok(), "{}", id_number(i));
            assert!(seen.insert(id_number(i)), "{} repeats", id_number(i));
            assert!(Phone::parse(&phone(i)).is_ok(), "{}", phone(i));
            assert!(Imei::parse(&imei(i)).is_ok(), "{}", imei(i));
        }
    }
}
