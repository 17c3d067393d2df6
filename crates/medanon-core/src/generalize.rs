//! Generalization of quasi-identifiers: age bands, postal-code prefixes, date
//! truncation. The guideline's treatment for a quasi-identifier (準識別子) is to
//! coarsen it until k-anonymity holds; these are the steps of that coarsening.

use crate::calendar::Ymd;
use crate::error::{quoted, InputError, Kind, Result};
use unicode_normalization::UnicodeNormalization;

/// Age in completed years on `reference`. Someone born on 29 February completes
/// a year on 1 March in common years (the day after 28 February).
pub fn age_in_years(birth: Ymd, reference: Ymd) -> Result<i32> {
    if birth > reference {
        return Err(InputError::new(Kind::InvalidParameterValue, "birth date is after the reference date")
            .detail(format!("birth date {birth}, reference date {reference}")));
    }
    let mut age = reference.year - birth.year;
    if (reference.month, reference.day) < (birth.month, birth.day) {
        age -= 1;
    }
    Ok(age)
}

/// A half-open band `[lower, upper)`; `upper` is `None` for the top-coded band.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Band {
    pub lower: i32,
    pub upper: Option<i32>,
}

/// Put an age into bands of `band_years`, with every age at or above `top_code`
/// in one open band `[top_code,)`. A band that would straddle the top code ends at it,
/// so bands never overlap. Ages are never negative here, so the floor division is
/// exact; we still use `div_euclid` so a negative input could not round toward zero.
pub fn age_band(age: i32, band_years: i32, top_code: i32) -> Result<Band> {
    if band_years <= 0 {
        return Err(InputError::new(Kind::InvalidParameterValue, "band_years must be positive")
            .detail(format!("band_years is {band_years}")));
    }
    if top_code <= 0 {
        return Err(InputError::new(Kind::InvalidParameterValue, "top_code must be positive")
            .detail(format!("top_code is {top_code}")));
    }
    if age >= top_code {
        return Ok(Band { lower: top_code, upper: None });
    }
    let lower = age.div_euclid(band_years) * band_years;
    let upper = lower.saturating_add(band_years).min(top_code);
    Ok(Band { lower, upper: Some(upper) })
}

/// Read a Japanese postal code (郵便番号): `〒123-4567`, `1234567`, full-width digits,
/// any kind of hyphen or space. Returns the seven digits.
pub fn parse_postal_code(code: &str) -> Result<[u8; 7]> {
    let mut digits = [0u8; 7];
    let mut n = 0usize;
    for c in code.nfkc() {
        match c {
            '0'..='9' => {
                if n == 7 {
                    return Err(bad_postal(code, "more than 7 digits"));
                }
                digits[n] = c as u8;
                n += 1;
            }
            // 〒 and the hyphens and dashes that hospital systems put in postal codes.
            '〒' | '-' | '‐' | '‑' | '‒' | '–' | '—' | '―' | '−' | 'ー' | ' ' => {}
            _ => return Err(bad_postal(code, "it has characters other than digits and a hyphen")),
        }
    }
    if n != 7 {
        return Err(bad_postal(code, &format!("it has {n} digits, not 7")));
    }
    Ok(digits)
}

fn bad_postal(code: &str, why: &str) -> InputError {
    InputError::new(Kind::InvalidTextRepresentation, format!("invalid postal code {}", quoted(code)))
        .detail(why.to_string())
        .hint("a Japanese postal code has 7 digits, for example 〒123-4567 or 1234567")
}

/// Keep the first `keep_digits` digits of a postal code and mask the rest:
/// `generalize_postal_code("〒123-4567", 3) == "123-****"`. The output keeps the
/// `NNN-NNNN` shape so that generalized codes read as postal codes in a report.
pub fn generalize_postal_code(code: &str, keep_digits: i32) -> Result<String> {
    if !(0..=7).contains(&keep_digits) {
        return Err(InputError::new(Kind::InvalidParameterValue, "keep_digits must be between 0 and 7")
            .detail(format!("keep_digits is {keep_digits}")));
    }
    let digits = parse_postal_code(code)?;
    let mut out = String::with_capacity(8);
    for (i, d) in digits.iter().enumerate() {
        if i == 3 {
            out.push('-');
        }
        out.push(if (i as i32) < keep_digits { *d as char } else { '*' });
    }
    Ok(out)
}

/// The units `truncate_date` accepts: the levels of the date hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateUnit {
    Day,
    Month,
    Quarter,
    Year,
}

impl DateUnit {
    pub fn parse(unit: &str) -> Result<DateUnit> {
        match unit.trim().to_ascii_lowercase().as_str() {
            "day" => Ok(DateUnit::Day),
            "month" => Ok(DateUnit::Month),
            "quarter" => Ok(DateUnit::Quarter),
            "year" => Ok(DateUnit::Year),
            _ => Err(InputError::new(Kind::InvalidParameterValue, format!("unknown date unit {}", quoted(unit)))
                .hint("use day, month, quarter or year")),
        }
    }
}

/// The first day of the unit that contains `date`.
pub fn truncate_date(date: Ymd, unit: DateUnit) -> Ymd {
    let month = match unit {
        DateUnit::Day => return date,
        DateUnit::Month => date.month,
        DateUnit::Quarter => (date.month - 1) / 3 * 3 + 1,
        DateUnit::Year => 1,
    };
    Ymd { year: date.year, month, day: 1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> Ymd {
        Ymd::new(y, m, day).unwrap()
    }

    #[test]
    fn completed_years() {
        let cases = [
            (d(2000, 2, 29), d(2001, 2, 28), 0),
            (d(2000, 2, 29), d(2001, 3, 1), 1),
            (d(2000, 2, 29), d(2004, 2, 29), 4),
            (d(1975, 3, 1), d(2026, 2, 28), 50),
            (d(1975, 3, 1), d(2026, 3, 1), 51),
            (d(2026, 4, 1), d(2026, 4, 1), 0),
        ];
        for (birth, reference, age) in cases {
            assert_eq!(age_in_years(birth, reference).unwrap(), age, "{birth} on {reference}");
        }
        let err = age_in_years(d(2026, 4, 2), d(2026, 4, 1)).unwrap_err();
        assert_eq!(err.kind, Kind::InvalidParameterValue);
    }

    #[test]
    fn bands() {
        let cases = [
            (0, 5, 90, 0, Some(5)),
            (4, 5, 90, 0, Some(5)),
            (5, 5, 90, 5, Some(10)),
            (89, 5, 90, 85, Some(90)),
            (90, 5, 90, 90, None),
            (120, 5, 90, 90, None),
            (91, 10, 95, 90, Some(95)),
            (37, 1, 90, 37, Some(38)),
            (37, 20, 90, 20, Some(40)),
            (0, 5, 1, 0, Some(1)),
        ];
        for (age, band, top, lower, upper) in cases {
            assert_eq!(age_band(age, band, top).unwrap(), Band { lower, upper }, "age {age} band {band} top {top}");
        }
        assert_eq!(age_band(10, 0, 90).unwrap_err().kind, Kind::InvalidParameterValue);
        assert_eq!(age_band(10, -5, 90).unwrap_err().kind, Kind::InvalidParameterValue);
        assert_eq!(age_band(10, 5, 0).unwrap_err().kind, Kind::InvalidParameterValue);
    }

    #[test]
    fn postal_codes() {
        let good = [
            ("〒123-4567", 3, "123-****"),
            ("1234567", 7, "123-4567"),
            ("１２３－４５６７", 1, "1**-****"),
            ("〒１２３ー４５６７", 0, "***-****"),
            (" 123 4567 ", 5, "123-45**"),
        ];
        for (code, keep, expected) in good {
            assert_eq!(generalize_postal_code(code, keep).unwrap(), expected, "{code}");
        }
        for bad in ["", "123-456", "12345678", "123-456a", "〒", "abc-defg"] {
            let err = generalize_postal_code(bad, 3).unwrap_err();
            assert_eq!(err.kind, Kind::InvalidTextRepresentation, "{bad}");
        }
        assert_eq!(generalize_postal_code("1234567", 8).unwrap_err().kind, Kind::InvalidParameterValue);
        assert_eq!(generalize_postal_code("1234567", -1).unwrap_err().kind, Kind::InvalidParameterValue);
    }

    #[test]
    fn truncation() {
        let date = d(2026, 11, 24);
        assert_eq!(truncate_date(date, DateUnit::Day), date);
        assert_eq!(truncate_date(date, DateUnit::Month), d(2026, 11, 1));
        assert_eq!(truncate_date(date, DateUnit::Quarter), d(2026, 10, 1));
        assert_eq!(truncate_date(d(2026, 3, 31), DateUnit::Quarter), d(2026, 1, 1));
        assert_eq!(truncate_date(date, DateUnit::Year), d(2026, 1, 1));
        assert_eq!(DateUnit::parse(" Month ").unwrap(), DateUnit::Month);
        assert_eq!(DateUnit::parse("week").unwrap_err().kind, Kind::InvalidParameterValue);
    }

    proptest! {
        #[test]
        fn band_contains_age(age in 0i32..150, band in 1i32..30, top in 1i32..120) {
            let b = age_band(age, band, top).unwrap();
            prop_assert!(b.lower <= age);
            match b.upper {
                Some(u) => { prop_assert!(age < u); prop_assert!(u <= top); }
                None => { prop_assert!(age >= top); prop_assert_eq!(b.lower, top); }
            }
        }

        #[test]
        fn postal_never_panics(s in "\\PC{0,20}", keep in -3i32..10) {
            let _ = generalize_postal_code(&s, keep);
        }
    }
}
