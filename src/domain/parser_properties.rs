//! Property tests of every parser of untrusted text (money, ID numbers, phones, IMEIs, dates):
//! arbitrary and near-valid input never panics, and each parser accepts exactly what an
//! independent restatement of its rule accepts (written differently from the parser on purpose:
//! character classes instead of byte loops, a second formulation of each check digit).

use super::dates::parse_date;
use super::identity::{IdNumber, Imei, Phone};
use super::money::{Amount, Rate};
use proptest::prelude::*;

const CASES: u32 = 4000;

/// Strings of ASCII digits and the few characters the formats use, plus arbitrary Unicode: most
/// are near misses of a valid value, which is where parsers go wrong.
fn near_valid(max_len: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::collection::vec(prop_oneof![8 => proptest::char::range('0', '9'), 1 => Just('.'), 1 => Just('-'),
            1 => Just('X'), 1 => Just('x'), 1 => Just(' '), 1 => Just('+'), 1 => Just('１'), 1 => Just('e')], 0..=max_len)
            .prop_map(|cs| cs.into_iter().collect()),
        1 => any::<String>(),
    ]
}

fn all_ascii_digits(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

/// `^[0-9]{1,12}(\.[0-9]{1,2})?$`, and its value in fen, by string surgery.
fn reference_amount_fen(text: &str) -> Option<i64> {
    let (yuan, fen) = match text.split_once('.') {
        None => (text, "00".to_string()),
        Some((y, f)) => (y, format!("{f:0<2}")),
    };
    let fen_ok = text.split_once('.').is_none_or(|(_, f)| (1..=2).contains(&f.len()) && all_ascii_digits(f));
    if !(all_ascii_digits(yuan) && yuan.len() <= 12 && fen_ok) {
        return None;
    }
    format!("{yuan}{fen}").parse::<i64>().ok()
}

/// GB 11643 as ISO 7064 MOD 11-2: weights are 2^(17-i) mod 11; the check value makes the
/// weighted sum of all 18 (X = 10) congruent to 1 mod 11.
fn reference_id_number_valid(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() != 18 || !chars[..17].iter().all(char::is_ascii_digit) {
        return false;
    }
    let check = match chars[17] {
        'X' | 'x' => 10,
        c if c.is_ascii_digit() => c.to_digit(10).unwrap_or(0),
        _ => return false,
    };
    let sum: u32 = chars[..17].iter().enumerate().map(|(i, c)| c.to_digit(10).unwrap_or(0) * ((1u32 << (17 - i)) % 11)).sum();
    (sum + check) % 11 == 1
}

/// 15 digits; Luhn: from the right, every second digit doubled (digits of the product summed).
fn reference_imei_valid(text: &str) -> bool {
    if text.len() != 15 || !all_ascii_digits(text) {
        return false;
    }
    let total: u32 = text
        .chars()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = c.to_digit(10).unwrap_or(0);
            if i % 2 == 1 { [0, 2, 4, 6, 8, 1, 3, 5, 7, 9][d as usize] } else { d }
        })
        .sum();
    total % 10 == 0
}

fn reference_phone_valid(text: &str) -> bool {
    text.len() == 11 && text.starts_with('1') && all_ascii_digits(text)
}

fn reference_date(text: &str) -> Option<(i32, u32, u32)> {
    let parts: Vec<&str> = text.split('-').collect();
    let shape_ok = text.len() == 10 && parts.len() == 3 && [4, 2, 2] == [parts[0].len(), parts[1].len(), parts[2].len()];
    if !shape_ok || !parts.iter().all(|p| all_ascii_digits(p)) {
        return None;
    }
    let (y, m, d): (i32, u32, u32) = (parts[0].parse().ok()?, parts[1].parse().ok()?, parts[2].parse().ok()?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (y >= 1 && (1..=days_in_month).contains(&d)).then_some((y, m, d))
}

/// A valid ID number built from 17 digits by the reference rule.
fn id_number_from(first_17: &str) -> String {
    (0..=10u32)
        .map(|check| format!("{first_17}{}", if check == 10 { 'X' } else { char::from_digit(check, 10).unwrap_or('0') }))
        .find(|candidate| reference_id_number_valid(candidate))
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn amounts_parse_exactly_the_api_format(text in prop_oneof![near_valid(18), "[0-9]{0,14}(\\.[0-9]{0,3})?"]) {
        let parsed = Amount::parse(&text);
        let expected = reference_amount_fen(&text);
        prop_assert_eq!(parsed.as_ref().ok().map(Amount::fen), expected, "{:?}", text);
        if let Ok(amount) = parsed {
            prop_assert_eq!(Amount::parse(&amount.to_string()), Ok(amount), "display round-trips");
            prop_assert_eq!(Amount::parse_positive(&text).is_ok(), amount.fen() > 0);
        }
    }

    #[test]
    fn any_amount_in_range_round_trips(amount_fen in 0_i64..=999_999_999_999_99) {
        let amount = Amount::from_fen(amount_fen);
        let text = amount.to_string();
        prop_assert_eq!(Amount::parse(&text).map(|a| a.fen()), Ok(amount_fen), "{}", text);
    }

    #[test]
    fn rates_never_panic_and_round_trip(text in near_valid(12)) {
        if let Ok(rate) = Rate::parse(&text) {
            prop_assert_eq!(Rate::parse(&rate.to_string()), Ok(rate));
        }
    }

    #[test]
    fn id_numbers_parse_exactly_gb_11643(text in prop_oneof![near_valid(20), "[0-9]{16,18}[0-9Xx ]{0,2}", "[0-9]{17}[0-9Xx]"]) {
        prop_assert_eq!(IdNumber::parse(&text).is_ok(), reference_id_number_valid(&text), "{:?}", text);
    }

    #[test]
    fn valid_id_numbers_are_canonical_and_any_one_digit_change_is_refused(
        first_17 in "[0-9]{17}",
        position in 0_usize..17,
        bump in 1_u32..=9,
    ) {
        let valid = id_number_from(&first_17);
        let lower = valid.to_lowercase();
        let parsed = IdNumber::parse(&lower);
        prop_assert!(parsed.is_ok(), "{}", valid);
        prop_assert_eq!(parsed.map(|p| p.as_str().to_string()), Ok(valid.clone()), "x is read as X");
        let mut chars: Vec<char> = valid.chars().collect();
        let digit = chars[position].to_digit(10).unwrap_or(0);
        chars[position] = char::from_digit((digit + bump) % 10, 10).unwrap_or('0');
        let changed: String = chars.into_iter().collect();
        prop_assert!(IdNumber::parse(&changed).is_err(), "{} → {}", valid, changed);
        prop_assert!(!IdNumber::parse(&valid).map(|p| format!("{p:?}")).unwrap_or_default().contains(&valid[6..14]), "Debug masks");
    }

    #[test]
    fn phones_parse_exactly_11_digits_starting_with_1(text in prop_oneof![near_valid(13), "[0-9+ -]{10,12}", "1[0-9]{9,11}", "[0-9]{11}"]) {
        prop_assert_eq!(Phone::parse(&text).is_ok(), reference_phone_valid(&text), "{:?}", text);
    }

    #[test]
    fn imeis_parse_exactly_luhn_valid_15_digits(text in prop_oneof![near_valid(16), "[0-9]{14,16}", "[0-9]{15}"]) {
        prop_assert_eq!(Imei::parse(&text).is_ok(), reference_imei_valid(&text), "{:?}", text);
    }

    #[test]
    fn an_imei_with_one_digit_changed_is_refused(first_14 in "[0-9]{14}", position in 0_usize..15, bump in 1_u32..=9) {
        let valid = (0..=9).map(|d| format!("{first_14}{d}")).find(|c| reference_imei_valid(c)).unwrap_or_default();
        prop_assert!(Imei::parse(&valid).is_ok(), "{}", valid);
        let mut chars: Vec<char> = valid.chars().collect();
        let digit = chars[position].to_digit(10).unwrap_or(0);
        chars[position] = char::from_digit((digit + bump) % 10, 10).unwrap_or('0');
        let changed: String = chars.into_iter().collect();
        prop_assert!(Imei::parse(&changed).is_err(), "{} → {}", valid, changed);
    }

    #[test]
    fn dates_parse_exactly_real_yyyy_mm_dd(text in prop_oneof![near_valid(11), "[0-9]{4}-[0-1][0-9]-[0-3][0-9]", "[0-9]{3,5}-[0-9]{1,3}-[0-9]{1,3}",
        "000[0-9]-0[1-9]-[0-2][0-9]", "[0-9]{2}(00|04|96)-02-(28|29|30)"]) {
        let parsed = parse_date(&text).ok().map(|d| (chrono::Datelike::year(&d), chrono::Datelike::month(&d), chrono::Datelike::day(&d)));
        prop_assert_eq!(parsed, reference_date(&text), "{:?}", text);
    }

    #[test]
    fn every_calendar_date_round_trips(days in 0_i64..3_652_058) {
        let date = chrono::NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or_default() + chrono::Duration::days(days);
        let text = date.format("%Y-%m-%d").to_string();
        prop_assert_eq!(parse_date(&text), Ok(date), "{}", text);
    }
}
