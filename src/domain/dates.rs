//! Business dates: strict `YYYY-MM-DD`, month arithmetic clamped to month end,
//! and the Asia/Shanghai calendar (UTC+08:00, no daylight saving).

use chrono::{DateTime, FixedOffset, Months, NaiveDate, Utc};

/// Asia/Shanghai as a fixed offset: China has had no daylight saving since 1991.
pub const SHANGHAI: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("+08:00 is a valid offset"),
};

/// Why a date string was refused (API: `422 invalid_date`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Not exactly `YYYY-MM-DD` (10 characters, digits and two dashes).
    #[error("date must be YYYY-MM-DD")]
    Malformed,
    /// Well formed but no such day (`2027-02-30`, month 13, year 0000).
    #[error("no such date")]
    Impossible,
}

/// Parses a strict `YYYY-MM-DD` date: exactly 10 characters, zero-padded,
/// years 0001-9999; impossible dates such as `2027-02-30` are refused.
pub fn parse_date(text: &str) -> Result<NaiveDate, DateError> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return Err(DateError::Malformed);
    }
    let year = digits(&bytes[0..4]).ok_or(DateError::Malformed)?;
    let month = digits(&bytes[5..7]).ok_or(DateError::Malformed)?;
    let day = digits(&bytes[8..10]).ok_or(DateError::Malformed)?;
    if year == 0 {
        return Err(DateError::Impossible);
    }
    let year = i32::try_from(year).map_err(|_| DateError::Malformed)?;
    NaiveDate::from_ymd_opt(year, month, day).ok_or(DateError::Impossible)
}

/// The value of a run of ASCII digits, or `None` if any byte is not a digit.
fn digits(bytes: &[u8]) -> Option<u32> {
    debug_assert!(bytes.len() <= 4, "at most 4 digits");
    bytes.iter().try_fold(0_u32, |value, b| b.is_ascii_digit().then(|| value * 10 + u32::from(b - b'0')))
}

/// The last date the API can write: `YYYY-MM-DD` has four digits of year.
pub const LAST_DATE: NaiveDate = match NaiveDate::from_ymd_opt(9999, 12, 31) {
    Some(date) => date,
    None => panic!("9999-12-31 is a valid date"),
};

/// The day after `date`; `None` past [`LAST_DATE`], which no answer may carry (chrono would
/// give `+10000-01-01`).
pub fn next_date(date: NaiveDate) -> Option<NaiveDate> {
    date.succ_opt().filter(|next| *next <= LAST_DATE)
}

/// `date + months`, clamped to the last day of the resulting month
/// (2027-01-31 + 1 → 2027-02-28); `None` beyond chrono's calendar.
pub fn checked_add_months_clamped(date: NaiveDate, months: u32) -> Option<NaiveDate> {
    date.checked_add_months(Months::new(months))
}

/// `date + months`, clamped to the last day of the resulting month
/// (2027-01-31 + 1 → 2027-02-28, 2028-01-31 + 1 → 2028-02-29).
///
/// # Panics
/// Beyond chrono's calendar (year 262142), which no parsed business date
/// (year ≤ 9999) plus a term of at most 360 months can reach.
pub fn add_months_clamped(date: NaiveDate, months: u32) -> NaiveDate {
    match checked_add_months_clamped(date, months) {
        Some(result) => result,
        None => panic!("add_months_clamped: {date} + {months} months is beyond the calendar"),
    }
}

/// The Asia/Shanghai calendar date of an instant ("today" in the API).
pub fn shanghai_date(instant: DateTime<Utc>) -> NaiveDate {
    instant.with_timezone(&SHANGHAI).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn d(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).unwrap()
    }

    #[test]
    fn parse_valid_dates() {
        assert_eq!(parse_date("2027-01-31"), Ok(d(2027, 1, 31)));
        assert_eq!(parse_date("2028-02-29"), Ok(d(2028, 2, 29)));
        assert_eq!(parse_date("2000-02-29"), Ok(d(2000, 2, 29)));
        assert_eq!(parse_date("0001-01-01"), Ok(d(1, 1, 1)));
        assert_eq!(parse_date("9999-12-31"), Ok(d(9999, 12, 31)));
    }

    #[test]
    fn parse_impossible_dates() {
        for text in ["2027-02-29", "2027-02-30", "2100-02-29", "2027-13-01", "2027-00-10", "2027-04-31", "2027-01-00", "0000-01-01"] {
            assert_eq!(parse_date(text), Err(DateError::Impossible), "{text}");
        }
    }

    #[test]
    fn parse_malformed_dates() {
        let cases = [
            "",
            "2027-1-31",
            "2027-01-1",
            "27-01-31",
            "2027/01/31",
            "20270131",
            " 2027-01-31",
            "2027-01-31 ",
            "2027-01-31T00:00:00Z",
            "+2027-01-31",
            "-2027-01-31",
            "2027-01-3a",
            "2027-0１-31",
            "２027-01-31",
            "12027-01-31",
            "2027-01--1",
            "2027--1-31",
        ];
        for text in cases {
            assert_eq!(parse_date(text), Err(DateError::Malformed), "{text:?}");
        }
    }

    #[test]
    fn month_end_clamping() {
        assert_eq!(add_months_clamped(d(2027, 1, 31), 1), d(2027, 2, 28));
        assert_eq!(add_months_clamped(d(2027, 1, 31), 2), d(2027, 3, 31));
        assert_eq!(add_months_clamped(d(2027, 1, 31), 3), d(2027, 4, 30));
        assert_eq!(add_months_clamped(d(2028, 1, 31), 1), d(2028, 2, 29), "leap year");
        assert_eq!(add_months_clamped(d(2028, 1, 29), 1), d(2028, 2, 29));
        assert_eq!(add_months_clamped(d(2028, 1, 30), 1), d(2028, 2, 29));
        assert_eq!(add_months_clamped(d(2100, 1, 31), 1), d(2100, 2, 28), "2100 is not a leap year");
        assert_eq!(add_months_clamped(d(2000, 1, 31), 1), d(2000, 2, 29), "2000 is a leap year");
        assert_eq!(add_months_clamped(d(2027, 2, 28), 12), d(2028, 2, 28));
        assert_eq!(add_months_clamped(d(2028, 2, 29), 12), d(2029, 2, 28));
        assert_eq!(add_months_clamped(d(2028, 2, 29), 48), d(2032, 2, 29));
        assert_eq!(add_months_clamped(d(2027, 3, 31), 11), d(2028, 2, 29));
        assert_eq!(add_months_clamped(d(2027, 12, 31), 2), d(2028, 2, 29));
        assert_eq!(add_months_clamped(d(2027, 5, 15), 0), d(2027, 5, 15));
        assert_eq!(add_months_clamped(d(2027, 5, 31), 360), d(2057, 5, 31));
        assert_eq!(add_months_clamped(d(9999, 12, 31), 360), d(10029, 12, 31));
        assert_eq!(checked_add_months_clamped(NaiveDate::MAX, 1), None);
    }

    #[test]
    fn clamping_is_always_from_the_start_date() {
        let funded_on = d(2027, 1, 31);
        let dues: Vec<_> = (1..=4).map(|k| add_months_clamped(funded_on, k)).collect();
        assert_eq!(dues, vec![d(2027, 2, 28), d(2027, 3, 31), d(2027, 4, 30), d(2027, 5, 31)]);
    }

    #[test]
    fn next_date_stays_within_four_digit_years() {
        assert_eq!(next_date(d(2027, 12, 31)), Some(d(2028, 1, 1)));
        assert_eq!(next_date(d(9999, 12, 30)), Some(LAST_DATE));
        assert_eq!(next_date(LAST_DATE), None);
        assert_eq!(next_date(NaiveDate::MAX), None);
        assert_eq!(parse_date("9999-12-31"), Ok(LAST_DATE));
    }

    #[test]
    fn shanghai_calendar() {
        assert_eq!(SHANGHAI.local_minus_utc(), 8 * 3600);
        let before_midnight = Utc.with_ymd_and_hms(2027, 1, 31, 15, 59, 59).unwrap();
        let midnight = Utc.with_ymd_and_hms(2027, 1, 31, 16, 0, 0).unwrap();
        assert_eq!(shanghai_date(before_midnight), d(2027, 1, 31));
        assert_eq!(shanghai_date(midnight), d(2027, 2, 1));
        let summer = Utc.with_ymd_and_hms(2027, 7, 1, 16, 0, 0).unwrap();
        assert_eq!(shanghai_date(summer), d(2027, 7, 2), "no daylight saving");
    }
}
