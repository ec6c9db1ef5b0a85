//! Identity values: resident ID numbers (GB 11643), mobile phones, IMEIs and
//! region codes (GB/T 2260). A value that exists is valid.
//!
//! `IdNumber`, `Phone` and `Imei` print only their masked form through `Debug`
//! and have no `Display`, so a raw value never reaches a log by accident; use
//! `as_str()` deliberately (hashing, encryption, the borrower endpoint).

use std::fmt;

/// GB 11643 weights of the first 17 digits.
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// GB 11643 check characters indexed by the weighted sum modulo 11.
const ID_CHECK_CHARS: &[u8; 11] = b"10X98765432";

/// Why an ID number was refused (API: `422 invalid_id_number`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdNumberError {
    /// Not 18 characters.
    #[error("id_number must be 18 characters")]
    WrongLength,
    /// The first 17 are not all digits, or the last is not a digit or X.
    #[error("id_number must be 17 digits and a check character")]
    Malformed,
    /// The check character does not match GB 11643.
    #[error("id_number check character is wrong")]
    BadCheckCharacter,
}

/// A PRC resident ID number (18 characters, valid GB 11643 check character),
/// stored canonically with an uppercase `X`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdNumber(String);

impl IdNumber {
    /// Parses 17 digits and a check character; a trailing `x` is read as `X`.
    pub fn parse(text: &str) -> Result<IdNumber, IdNumberError> {
        let bytes = text.as_bytes();
        if text.chars().count() != 18 {
            return Err(IdNumberError::WrongLength);
        }
        if bytes.len() != 18 || !bytes[..17].iter().all(u8::is_ascii_digit) {
            return Err(IdNumberError::Malformed);
        }
        let given = bytes[17].to_ascii_uppercase();
        if !(given.is_ascii_digit() || given == b'X') {
            return Err(IdNumberError::Malformed);
        }
        if given != gb11643_check_char(&bytes[..17]) {
            return Err(IdNumberError::BadCheckCharacter);
        }
        let canonical = format!("{}{}", &text[..17], char::from(given));
        debug_assert_eq!(canonical.len(), 18, "canonical id number is 18 ASCII characters");
        Ok(IdNumber(canonical))
    }

    /// The canonical number (uppercase `X`). Handle with care: personal data.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// First 6, eight `*`, last 4: `110101********1234`.
    pub fn masked(&self) -> String {
        mask(&self.0, 6, 8, 4)
    }
}

impl fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IdNumber").field(&self.masked()).finish()
    }
}

/// The GB 11643 check character of 17 ASCII digits.
fn gb11643_check_char(first_17: &[u8]) -> u8 {
    assert_eq!(first_17.len(), 17, "GB 11643 weighs exactly 17 digits");
    let weighted_sum: u32 = first_17.iter().zip(ID_WEIGHTS).map(|(digit, weight)| u32::from(digit - b'0') * weight).sum();
    ID_CHECK_CHARS[(weighted_sum % 11) as usize]
}

/// Why a phone number was refused (API: `422 invalid_phone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Not 11 digits starting with 1.
    #[error("phone must be 11 digits starting with 1")]
    Malformed,
}

/// A mainland mobile number: 11 digits starting with `1`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Parses 11 ASCII digits, the first being `1`.
    pub fn parse(text: &str) -> Result<Phone, PhoneError> {
        let bytes = text.as_bytes();
        let valid = bytes.len() == 11 && bytes[0] == b'1' && bytes.iter().all(u8::is_ascii_digit);
        if !valid {
            return Err(PhoneError::Malformed);
        }
        Ok(Phone(text.to_string()))
    }

    /// The number. Handle with care: personal data.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// First 3, four `*`, last 4: `138****5678`.
    pub fn masked(&self) -> String {
        mask(&self.0, 3, 4, 4)
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Phone").field(&self.masked()).finish()
    }
}

/// Why an IMEI was refused (API: `422 invalid_imei`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ImeiError {
    /// Not 15 digits.
    #[error("imei must be 15 digits")]
    Malformed,
    /// The Luhn check digit does not match.
    #[error("imei fails the Luhn check")]
    BadCheckDigit,
}

/// A device IMEI: 15 digits, Luhn-valid.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Imei(String);

impl Imei {
    /// Parses 15 ASCII digits whose Luhn checksum is valid.
    pub fn parse(text: &str) -> Result<Imei, ImeiError> {
        let bytes = text.as_bytes();
        if bytes.len() != 15 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(ImeiError::Malformed);
        }
        if !luhn_valid(bytes) {
            return Err(ImeiError::BadCheckDigit);
        }
        Ok(Imei(text.to_string()))
    }

    /// The IMEI.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// First 6, five `*`, last 4: `490154*****3238` (the API's `imei_masked`).
    pub fn masked(&self) -> String {
        mask(&self.0, 6, 5, 4)
    }
}

impl fmt::Debug for Imei {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Imei").field(&self.masked()).finish()
    }
}

/// True when the ASCII digits (check digit last) satisfy the Luhn checksum.
pub fn luhn_valid(digits: &[u8]) -> bool {
    debug_assert!(digits.iter().all(u8::is_ascii_digit), "Luhn takes digits only");
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, b)| {
            let digit = u32::from(b - b'0');
            if position % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// `keep_head` characters, `stars` asterisks, `keep_tail` characters.
fn mask(ascii: &str, keep_head: usize, stars: usize, keep_tail: usize) -> String {
    assert!(ascii.is_ascii(), "only ASCII values are masked");
    assert!(ascii.len() >= keep_head + keep_tail, "value too short to mask");
    let head = &ascii[..keep_head];
    let tail = &ascii[ascii.len() - keep_tail..];
    let masked = format!("{head}{}{tail}", "*".repeat(stars));
    debug_assert_eq!(masked.len(), keep_head + stars + keep_tail, "mask length");
    masked
}

/// Why a region code was refused (API: `422 invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    /// An order's region must be exactly 6 digits.
    #[error("region_code must be 6 digits")]
    NotSixDigits,
    /// A listed region must be 2, 4 or 6 digits.
    #[error("region must be 2, 4 or 6 digits")]
    Malformed,
}

/// A 6-digit GB/T 2260 region code, as stores and orders carry.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct RegionCode(String);

impl RegionCode {
    /// Parses exactly 6 ASCII digits.
    pub fn parse_order(text: &str) -> Result<RegionCode, RegionError> {
        if text.len() != 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegionError::NotSixDigits);
        }
        Ok(RegionCode(text.to_string()))
    }

    /// The 6 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A listed region (products, banks, partners): 2, 4 or 6 digits.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct RegionPattern(String);

impl RegionPattern {
    /// Parses 2, 4 or 6 ASCII digits (kept as given).
    pub fn parse(text: &str) -> Result<RegionPattern, RegionError> {
        let length_ok = matches!(text.len(), 2 | 4 | 6);
        if !length_ok || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegionError::Malformed);
        }
        Ok(RegionPattern(text.to_string()))
    }

    /// The code as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The code with trailing `00` pairs removed (`440300` → `4403`, `110000` → `11`).
    pub fn prefix(&self) -> &str {
        let mut prefix = self.0.as_str();
        while let Some(shorter) = prefix.strip_suffix("00") {
            prefix = shorter;
        }
        debug_assert!(prefix.len().is_multiple_of(2), "only whole pairs are removed");
        prefix
    }

    /// True when this pattern, trailing `00` pairs removed, is a prefix of `code`
    /// (`44` and `440300` cover `440305`; `110000` covers `110105`).
    pub fn covers(&self, code: &RegionCode) -> bool {
        code.as_str().starts_with(self.prefix())
    }
}

impl fmt::Display for RegionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID_ID: &str = "11010519491231002X";

    /// Builds a valid ID from 17 digits by appending the right check character.
    fn with_check(first_17: &str) -> String {
        let check = gb11643_check_char(first_17.as_bytes());
        format!("{first_17}{}", char::from(check))
    }

    #[test]
    fn id_number_valid() {
        let id = IdNumber::parse(VALID_ID).unwrap();
        assert_eq!(id.as_str(), VALID_ID);
        assert_eq!(id.masked(), "110105********002X");
        let lower = IdNumber::parse("11010519491231002x").unwrap();
        assert_eq!(lower.as_str(), VALID_ID, "a trailing x is read as X");
        assert_eq!(lower, id);
        for first_17 in ["11010119900307123", "44030519851212001", "00000000000000000", "99999999999999999"] {
            let text = with_check(first_17);
            assert_eq!(IdNumber::parse(&text).map(|i| i.as_str().to_string()), Ok(text.clone()));
        }
        assert_eq!(IdNumber::parse(&with_check("11010119900307123")).unwrap().masked(), "110101********1233");
    }

    #[test]
    fn id_number_check_character_map() {
        // Each of the 11 check characters is reachable and validated.
        let mut seen = std::collections::BTreeSet::new();
        for n in 0..200_u32 {
            let text = with_check(&format!("110101199001{n:05}"));
            seen.insert(text.as_bytes()[17]);
            assert!(IdNumber::parse(&text).is_ok(), "{text}");
            for wrong in b"0123456789X".iter().filter(|&&c| c != text.as_bytes()[17]) {
                let bad = format!("{}{}", &text[..17], char::from(*wrong));
                assert_eq!(IdNumber::parse(&bad), Err(IdNumberError::BadCheckCharacter), "{bad}");
            }
        }
        assert_eq!(seen.len(), 11);
    }

    #[test]
    fn id_number_invalid() {
        assert_eq!(IdNumber::parse(""), Err(IdNumberError::WrongLength));
        assert_eq!(IdNumber::parse("11010519491231002"), Err(IdNumberError::WrongLength));
        assert_eq!(IdNumber::parse("11010519491231002X1"), Err(IdNumberError::WrongLength));
        assert_eq!(IdNumber::parse(" 11010519491231002X"), Err(IdNumberError::WrongLength));
        assert_eq!(IdNumber::parse("11010519491231002Y"), Err(IdNumberError::Malformed));
        assert_eq!(IdNumber::parse("1101051949123100X2"), Err(IdNumberError::Malformed));
        assert_eq!(IdNumber::parse("X10105194912310022"), Err(IdNumberError::Malformed));
        assert_eq!(IdNumber::parse("11010519491231002 "), Err(IdNumberError::Malformed));
        assert_eq!(IdNumber::parse("１1010519491231002X"), Err(IdNumberError::Malformed), "full-width digit");
        assert_eq!(IdNumber::parse("110105194912310021"), Err(IdNumberError::BadCheckCharacter));
    }

    #[test]
    fn id_number_debug_is_masked() {
        let id = IdNumber::parse(VALID_ID).unwrap();
        let debug = format!("{id:?}");
        assert_eq!(debug, "IdNumber(\"110105********002X\")");
        assert!(!debug.contains("19491231"));
    }

    #[test]
    fn phone() {
        let phone = Phone::parse("13812345678").unwrap();
        assert_eq!(phone.as_str(), "13812345678");
        assert_eq!(phone.masked(), "138****5678");
        assert_eq!(format!("{phone:?}"), "Phone(\"138****5678\")");
        assert!(Phone::parse("19999999999").is_ok());
        assert!(Phone::parse("10000000000").is_ok());
        for bad in [
            "",
            "23812345678",
            "1381234567",
            "138123456789",
            "1381234567a",
            "+8613812345678",
            " 13812345678",
            "138 1234 5678",
            "１3812345678",
        ] {
            assert_eq!(Phone::parse(bad), Err(PhoneError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid(b"490154203237518"));
        assert!(luhn_valid(b"356938035643809"));
        assert!(luhn_valid(b"79927398713"));
        assert!(!luhn_valid(b"79927398710"));
        assert!(luhn_valid(b"000000000000000"));
        assert!(!luhn_valid(b"490154203237519"));
        assert!(luhn_valid(b"0"));
        assert!(luhn_valid(b"18"), "doubling 1 -> 2, plus 8");
        assert!(luhn_valid(b"59"), "doubling 5 -> 10 -> 1, plus 9");
    }

    #[test]
    fn imei() {
        let imei = Imei::parse("490154203237518").unwrap();
        assert_eq!(imei.as_str(), "490154203237518");
        assert_eq!(imei.masked(), "490154*****7518");
        assert_eq!(format!("{imei:?}"), "Imei(\"490154*****7518\")");
        assert_eq!(Imei::parse("490154203237519"), Err(ImeiError::BadCheckDigit));
        for bad in ["", "49015420323751", "4901542032375180", "49015420323751a", " 490154203237518", "490154-20323751"] {
            assert_eq!(Imei::parse(bad), Err(ImeiError::Malformed), "{bad:?}");
        }
        // Every single-digit change of a valid IMEI is caught.
        let valid = b"356938035643809";
        for position in 0..15 {
            for digit in b'0'..=b'9' {
                let mut changed = *valid;
                if changed[position] == digit {
                    continue;
                }
                changed[position] = digit;
                let text = std::str::from_utf8(&changed).unwrap();
                assert_eq!(Imei::parse(text), Err(ImeiError::BadCheckDigit), "{text}");
            }
        }
    }

    #[test]
    fn region_code_parse() {
        assert_eq!(RegionCode::parse_order("440305").map(|c| c.to_string()), Ok("440305".to_string()));
        for bad in ["", "44", "4403", "44030", "4403050", "44030a", " 44030", "４40305"] {
            assert_eq!(RegionCode::parse_order(bad), Err(RegionError::NotSixDigits), "{bad:?}");
        }
        for good in ["44", "4403", "440305", "110000", "00"] {
            assert!(RegionPattern::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "4", "440", "44030", "4403050", "4a", " 44", "44 "] {
            assert_eq!(RegionPattern::parse(bad), Err(RegionError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn region_cover_rules() {
        let code = |s: &str| RegionCode::parse_order(s).unwrap();
        let pattern = |s: &str| RegionPattern::parse(s).unwrap();
        assert!(pattern("44").covers(&code("440305")));
        assert!(pattern("440300").covers(&code("440305")));
        assert!(pattern("4403").covers(&code("440305")));
        assert!(pattern("440305").covers(&code("440305")));
        assert!(pattern("440000").covers(&code("440305")));
        assert!(pattern("110000").covers(&code("110105")));
        assert!(pattern("11").covers(&code("110000")));
        assert!(pattern("110000").covers(&code("110000")));
        assert!(!pattern("45").covers(&code("440305")));
        assert!(!pattern("440306").covers(&code("440305")));
        assert!(!pattern("4404").covers(&code("440305")));
        assert!(!pattern("440305").covers(&code("440300")), "a district does not cover its city code");
        assert!(!pattern("110100").covers(&code("110000")));
        assert!(!pattern("11").covers(&code("011000")));
        assert_eq!(pattern("440300").prefix(), "4403");
        assert_eq!(pattern("110000").prefix(), "11");
        assert_eq!(pattern("100000").prefix(), "10");
        assert_eq!(pattern("440305").prefix(), "440305");
        assert_eq!(pattern("4400").prefix(), "44");
        // Only whole trailing pairs are removed: "4030" keeps its zero.
        assert_eq!(pattern("403000").prefix(), "4030");
        assert!(!pattern("403000").covers(&code("400000")));
        // A pattern of zeros strips to nothing and so covers everything.
        assert!(pattern("000000").covers(&code("440305")));
    }
}
