//! Reading the dates that Japanese hospital systems write: ISO and slash forms,
//! compact `YYYYMMDD`, full-width digits, and era (和暦) dates in kanji
//! (`昭和50年3月1日`, `平成元年1月8日`), abbreviated (`S50.3.1`, `H01/03/01`, `R6.4.1`)
//! or as the receipt code `GYYMMDD` of the レセプト電算 record format
//! (era digit 1 明治, 2 大正, 3 昭和, 4 平成, 5 令和).
//!
//! Input is NFKC-normalised first, so full-width digits and punctuation, and
//! the era ligatures ㍼ ㍻ ㋿, read like their plain forms.

use crate::calendar::Ymd;
use crate::error::{quoted, InputError, Kind, Result};
use unicode_normalization::UnicodeNormalization;

/// One era of the modern calendar, with the Gregorian day it began and ended on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Era {
    pub kanji: &'static str,
    pub romaji: &'static str,
    pub letter: char,
    /// The era digit of the receipt format.
    pub code: u32,
    pub first_day: Ymd,
    pub last_day: Option<Ymd>,
}

const fn ymd(year: i32, month: u32, day: u32) -> Ymd {
    Ymd { year, month, day }
}

/// Era boundaries in the Gregorian reckoning. Meiji starts at the proclamation of
/// the era (1868-10-23); dates before 1873 were kept in the lunisolar calendar, and
/// are read here as proleptic Gregorian, which no living patient's birth date needs.
pub const ERAS: [Era; 5] = [
    Era { kanji: "明治", romaji: "Meiji", letter: 'M', code: 1, first_day: ymd(1868, 10, 23), last_day: Some(ymd(1912, 7, 29)) },
    Era { kanji: "大正", romaji: "Taisho", letter: 'T', code: 2, first_day: ymd(1912, 7, 30), last_day: Some(ymd(1926, 12, 24)) },
    Era { kanji: "昭和", romaji: "Showa", letter: 'S', code: 3, first_day: ymd(1926, 12, 25), last_day: Some(ymd(1989, 1, 7)) },
    Era { kanji: "平成", romaji: "Heisei", letter: 'H', code: 4, first_day: ymd(1989, 1, 8), last_day: Some(ymd(2019, 4, 30)) },
    Era { kanji: "令和", romaji: "Reiwa", letter: 'R', code: 5, first_day: ymd(2019, 5, 1), last_day: None },
];

const HINT: &str = "use YYYY-MM-DD, YYYYMMDD or an era date such as 昭和50年3月1日 or S50.3.1";

fn bad(input: &str, detail: impl Into<String>) -> InputError {
    InputError::new(Kind::InvalidDatetimeFormat, format!("invalid date {}", quoted(input)))
        .detail(detail)
        .hint(HINT)
}

/// The era in force on a Gregorian date, if any.
pub fn era_of(date: Ymd) -> Option<&'static Era> {
    ERAS.iter().rev().find(|e| date >= e.first_day)
}

/// Render a date as an era date, e.g. `令和6年4月1日`; year 1 is written 元年.
pub fn to_era_string(date: Ymd) -> Option<String> {
    let era = era_of(date)?;
    let n = date.year - era.first_day.year + 1;
    let year = if n == 1 { "元".to_string() } else { n.to_string() };
    Some(format!("{}{}年{}月{}日", era.kanji, year, date.month, date.day))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Num { value: u32, digits: usize },
    /// 元 in 元年: the first year of an era.
    Gan,
    Sep(char),
}

fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_digit() {
            let mut value: u32 = 0;
            let mut digits = 0;
            while let Some(&d) = chars.peek() {
                let Some(v) = d.to_digit(10).filter(|_| d.is_ascii_digit()) else { break };
                // More than 8 digits is never a date; stop before overflowing.
                if digits >= 8 {
                    return None;
                }
                value = value * 10 + v;
                digits += 1;
                chars.next();
            }
            out.push(Tok::Num { value, digits });
        } else if c == '元' {
            out.push(Tok::Gan);
            chars.next();
        } else if matches!(c, '年' | '月' | '日' | '.' | '/' | '-') {
            out.push(Tok::Sep(c));
            chars.next();
        } else if c == ' ' {
            chars.next();
        } else {
            return None;
        }
    }
    Some(out)
}

fn strip_era(s: &str) -> (Option<&'static Era>, &str) {
    for era in &ERAS {
        if let Some(rest) = s.strip_prefix(era.kanji) {
            return (Some(era), rest);
        }
    }
    for era in &ERAS {
        let first_kanji = era.kanji.chars().next().unwrap_or(' ');
        if let Some(rest) = s.strip_prefix(first_kanji) {
            return (Some(era), rest);
        }
        let mut cs = s.chars();
        if let Some(c) = cs.next() {
            if c.to_ascii_uppercase() == era.letter {
                return (Some(era), cs.as_str());
            }
        }
    }
    (None, s)
}

/// Reads `Y sep M sep D [日]` where sep is 年/月 or one repeated punctuation mark.
fn split_triplet(toks: &[Tok]) -> Option<(Tok, u32, u32, (usize, usize))> {
    match toks {
        [y, Tok::Sep(a), Tok::Num { value: m, digits: dm }, Tok::Sep(b), Tok::Num { value: d, digits: dd }, rest @ ..] => {
            let kanji = *a == '年' && *b == '月';
            let punct = *a == *b && matches!(a, '.' | '/' | '-');
            let tail_ok = match rest {
                [] => true,
                [Tok::Sep('日')] => kanji,
                _ => false,
            };
            if (kanji || punct) && tail_ok && *dm <= 2 && *dd <= 2 {
                Some((*y, *m, *d, (*dm, *dd)))
            } else {
                None
            }
        }
        _ => None,
    }
}

fn gregorian(input: &str, year: i32, month: u32, day: u32) -> Result<Ymd> {
    if year < 1 {
        return Err(bad(input, format!("year {year} is out of range")));
    }
    Ymd::new(year, month, day)
        .ok_or_else(|| bad(input, format!("{year:04}-{month:02}-{day:02} is not a day of the calendar")))
}

fn in_era(input: &str, era: &Era, era_year: u32, month: u32, day: u32) -> Result<Ymd> {
    if era_year == 0 {
        return Err(bad(input, format!("{} has no year 0; its first year is 元年", era.kanji)));
    }
    let year = era.first_day.year + era_year as i32 - 1;
    let date = Ymd::new(year, month, day)
        .ok_or_else(|| bad(input, format!("{year:04}-{month:02}-{day:02} is not a day of the calendar")))?;
    if date < era.first_day {
        return Err(bad(
            input,
            format!("{} ({}) began on {}", era.romaji, era.kanji, era.first_day),
        ));
    }
    if let Some(last) = era.last_day {
        if date > last {
            let mut err = bad(input, format!("{} ({}) ended on {}", era.romaji, era.kanji, last));
            if let Some(s) = to_era_string(date) {
                err = err.hint(format!("this day is written {s}"));
            }
            return Err(err);
        }
    }
    Ok(date)
}

/// Parse a date as Japanese hospital systems write it. See the module docs.
pub fn parse_japanese_date(input: &str) -> Result<Ymd> {
    let norm: String = input.nfkc().collect();
    let s = norm.trim();
    if s.is_empty() {
        return Err(bad(input, "the date is empty"));
    }
    let (era, rest) = strip_era(s);
    let toks = tokenize(rest.trim()).ok_or_else(|| bad(input, "unexpected characters"))?;
    match era {
        None => match toks.as_slice() {
            [Tok::Num { value, digits: 8 }] => {
                let (y, m, d) = (value / 10_000, value / 100 % 100, value % 100);
                gregorian(input, y as i32, m, d)
            }
            [Tok::Num { value, digits: 7 }] => {
                // Receipt format GYYMMDD.
                let (g, yy, m, d) = (value / 1_000_000, value / 10_000 % 100, value / 100 % 100, value % 100);
                let era = ERAS
                    .iter()
                    .find(|e| e.code == g)
                    .ok_or_else(|| bad(input, format!("era digit {g} is not 1 (明治) to 5 (令和)")))?;
                in_era(input, era, yy, m, d)
            }
            _ => match split_triplet(&toks) {
                Some((Tok::Num { value, digits: 4 }, m, d, _)) => gregorian(input, value as i32, m, d),
                Some(_) => Err(bad(input, "a Gregorian year needs four digits")),
                None => Err(bad(input, "the date has no recognised form")),
            },
        },
        Some(era) => {
            let (year, month, day) = match toks.as_slice() {
                // S500301: era letter and YYMMDD.
                [Tok::Num { value, digits: 6 }] => (value / 10_000, value / 100 % 100, value % 100),
                _ => match split_triplet(&toks) {
                    Some((Tok::Num { value, digits: 1..=2 }, m, d, _)) => (value, m, d),
                    Some((Tok::Gan, m, d, _)) => (1, m, d),
                    Some(_) => return Err(bad(input, "an era year has one or two digits")),
                    None => return Err(bad(input, "the era date has no recognised form")),
                },
            };
            in_era(input, era, year, month, day)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(s: &str) -> String {
        parse_japanese_date(s).map(|d| d.to_string()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn accepted_forms() {
        let cases = [
            ("1975-03-01", "1975-03-01"),
            ("1975/3/1", "1975-03-01"),
            ("1975.03.01", "1975-03-01"),
            ("19750301", "1975-03-01"),
            ("１９７５－０３－０１", "1975-03-01"),
            ("１９７５／３／１", "1975-03-01"),
            ("1975年3月1日", "1975-03-01"),
            ("  1975-03-01\u{3000}", "1975-03-01"),
            ("昭和50年3月1日", "1975-03-01"),
            ("昭和５０年３月１日", "1975-03-01"),
            ("昭和 50年 3月 1日", "1975-03-01"),
            ("㍼50年3月1日", "1975-03-01"),
            ("昭50.3.1", "1975-03-01"),
            ("S50.3.1", "1975-03-01"),
            ("s50.3.1", "1975-03-01"),
            ("Ｓ５０．３．１", "1975-03-01"),
            ("S500301", "1975-03-01"),
            ("3500301", "1975-03-01"),
            ("平成元年1月8日", "1989-01-08"),
            ("H01/03/01", "1989-03-01"),
            ("H元.3.1", "1989-03-01"),
            ("平成31年4月30日", "2019-04-30"),
            ("令和元年5月1日", "2019-05-01"),
            ("令和6年4月1日", "2024-04-01"),
            ("R6.4.1", "2024-04-01"),
            ("5060401", "2024-04-01"),
            ("大正15年12月24日", "1926-12-24"),
            ("昭和元年12月25日", "1926-12-25"),
            ("昭和64年1月7日", "1989-01-07"),
            ("明治45年7月29日", "1912-07-29"),
            ("T1.7.30", "1912-07-30"),
            ("2024-02-29", "2024-02-29"),
        ];
        for (input, expected) in cases {
            assert_eq!(ok(input), expected, "input {input}");
        }
    }

    #[test]
    fn refused_forms() {
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            ("平成31年5月1日", "ended on 2019-04-30"),
            ("昭和64年1月8日", "ended on 1989-01-07"),
            ("平成元年1月7日", "began on 1989-01-08"),
            ("令和0年5月1日", "no year 0"),
            ("S99.13.1", "not a day"),
            ("2023-02-29", "not a day"),
            ("2024-13-01", "not a day"),
            ("2024-04-31", "not a day"),
            ("75-03-01", "four digits"),
            ("2024/04-01", "no recognised form"),
            ("2024-04-01日", "no recognised form"),
            ("6060401", "era digit 6"),
            ("0000-01-01", "out of range"),
            ("yesterday", "unexpected"),
            ("1975-03-01 12:00", "unexpected"),
            ("123456789012", "unexpected"),
            ("S123.1.1", "one or two digits"),
            ("2024-001-01", "no recognised form"),
        ];
        for (input, needle) in cases {
            let err = parse_japanese_date(input).expect_err(input);
            assert_eq!(err.kind, Kind::InvalidDatetimeFormat, "{input}");
            let detail = err.detail.clone().unwrap_or_default();
            assert!(detail.contains(needle), "{input}: detail {detail:?} lacks {needle:?}");
            assert!(err.hint.is_some(), "{input}: no hint");
        }
    }

    #[test]
    fn era_end_hint_names_the_right_era() {
        let err = parse_japanese_date("平成31年5月1日").unwrap_err();
        assert_eq!(err.hint.as_deref(), Some("this day is written 令和元年5月1日"));
    }

    #[test]
    fn era_strings() {
        assert_eq!(to_era_string(Ymd::new(2019, 5, 1).unwrap()).unwrap(), "令和元年5月1日");
        assert_eq!(to_era_string(Ymd::new(1975, 3, 1).unwrap()).unwrap(), "昭和50年3月1日");
        assert!(to_era_string(Ymd::new(1800, 1, 1).unwrap()).is_none());
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,30}") {
            let _ = parse_japanese_date(&s);
        }

        #[test]
        fn iso_and_era_forms_agree(days in -40_000i64..20_000) {
            let date = Ymd::from_pg_days(days);
            prop_assert_eq!(parse_japanese_date(&date.to_string()).unwrap(), date);
            let compact = format!("{:04}{:02}{:02}", date.year, date.month, date.day);
            prop_assert_eq!(parse_japanese_date(&compact).unwrap(), date);
            if let Some(era) = to_era_string(date) {
                prop_assert_eq!(parse_japanese_date(&era).unwrap(), date);
            }
        }
    }
}
