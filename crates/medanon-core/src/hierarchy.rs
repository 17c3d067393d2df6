//! Generalization hierarchies for the lattice search: for each quasi-identifier,
//! what its value becomes at each level. Level 0 is the value as stored; the top
//! level is always `*` (suppressed to one class), so every lattice has an anonymous
//! top when enough persons exist.
//!
//! * `age` (an age in years): 1, 5, 10, 20-year bands, then `*`, with every age at
//!   or above the top code in `[top,)`;
//! * `date` (YYYY-MM-DD): day, month, quarter, year, `*`;
//! * `postal` (a Japanese postal code): 7, 3, 1, 0 digits kept;
//! * `geography` (an address or municipality): as stored, prefecture, region (地方),
//!   national (`*`).
//!
//! A value the hierarchy cannot read (an unparseable date, a postal code without 7
//! digits) generalizes to `?` at every level below the top, so it forms its own
//! class rather than disappearing.

use crate::generalize::{age_band, parse_postal_code, truncate_date, DateUnit};
use crate::prefecture::{prefecture_of, region_of};

#[derive(Debug, Clone, PartialEq)]
pub enum BuiltIn {
    Age { top: i32 },
    Date,
    Postal,
    Geography,
}

pub const SUPPRESSED: &str = "*";
const UNREADABLE: &str = "?";

impl BuiltIn {
    pub fn parse(name: &str, top: Option<i32>) -> Option<BuiltIn> {
        match name {
            "age" => Some(BuiltIn::Age { top: top.unwrap_or(90) }),
            "date" => Some(BuiltIn::Date),
            "postal" => Some(BuiltIn::Postal),
            "geography" => Some(BuiltIn::Geography),
            _ => None,
        }
    }

    /// The highest level (which is `*`).
    pub fn max_level(&self) -> u8 {
        match self {
            BuiltIn::Age { .. } | BuiltIn::Date => 4,
            BuiltIn::Postal | BuiltIn::Geography => 3,
        }
    }

    /// A short description of a level, for reports.
    pub fn label(&self, level: u8) -> String {
        let labels: &[&str] = match self {
            BuiltIn::Age { .. } => &["1 year", "5 years", "10 years", "20 years", "suppressed"],
            BuiltIn::Date => &["day", "month", "quarter", "year", "suppressed"],
            BuiltIn::Postal => &["7 digits", "3 digits", "1 digit", "0 digits"],
            BuiltIn::Geography => &["as stored", "prefecture", "region", "national"],
        };
        labels.get(level as usize).unwrap_or(&"?").to_string()
    }

    /// Whether the hierarchy can read a value. Geography reads every address (one
    /// that names no prefecture stays itself at level 0 and is `?` above).
    pub fn reads(&self, value: &str) -> bool {
        match self {
            BuiltIn::Geography => true,
            _ => self.generalize(value, 0) != UNREADABLE,
        }
    }

    pub fn generalize(&self, value: &str, level: u8) -> String {
        if level >= self.max_level() {
            return SUPPRESSED.to_string();
        }
        match self {
            BuiltIn::Age { top } => {
                let Ok(age) = value.trim().parse::<i32>() else { return UNREADABLE.to_string() };
                let band = [1, 5, 10, 20][level as usize];
                match age_band(age, band, *top) {
                    Ok(b) => match b.upper {
                        Some(u) => format!("[{},{})", b.lower, u),
                        None => format!("[{},)", b.lower),
                    },
                    Err(_) => UNREADABLE.to_string(),
                }
            }
            BuiltIn::Date => {
                let Ok(day) = crate::jpdate::parse_japanese_date(value) else { return UNREADABLE.to_string() };
                let unit = [DateUnit::Day, DateUnit::Month, DateUnit::Quarter, DateUnit::Year][level as usize];
                truncate_date(day, unit).to_string()
            }
            BuiltIn::Postal => {
                let Ok(digits) = parse_postal_code(value) else { return UNREADABLE.to_string() };
                let keep = [7usize, 3, 1][level as usize];
                let shown: String = digits.iter().enumerate().map(|(i, &d)| if i < keep { char::from(d) } else { '*' }).collect();
                format!("{}-{}", &shown[..3], &shown[3..])
            }
            BuiltIn::Geography => match level {
                0 => value.trim().to_string(),
                1 => prefecture_of(value).unwrap_or(UNREADABLE).to_string(),
                _ => prefecture_of(value).and_then(region_of).unwrap_or(UNREADABLE).to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        let age = BuiltIn::Age { top: 90 };
        let got: Vec<String> = (0..=4).map(|l| age.generalize("47", l)).collect();
        assert_eq!(got, ["[47,48)", "[45,50)", "[40,50)", "[40,60)", "*"]);
        assert_eq!(age.generalize("93", 2), "[90,)");
        assert_eq!(age.generalize("x", 1), "?");
        let date = BuiltIn::Date;
        let got: Vec<String> = (0..=4).map(|l| date.generalize("2026-11-24", l)).collect();
        assert_eq!(got, ["2026-11-24", "2026-11-01", "2026-10-01", "2026-01-01", "*"]);
        let postal = BuiltIn::Postal;
        let got: Vec<String> = (0..=3).map(|l| postal.generalize("〒123-4567", l)).collect();
        assert_eq!(got, ["123-4567", "123-****", "1**-****", "*"]);
        let geo = BuiltIn::Geography;
        let got: Vec<String> = (0..=3).map(|l| geo.generalize("横浜市中区山下町", l)).collect();
        assert_eq!(got, ["横浜市中区山下町", "神奈川県", "関東地方", "*"]);
    }

    #[test]
    fn levels_only_coarsen() {
        // Two values in one class at a level stay in one class at every higher level.
        let date = BuiltIn::Date;
        let days = ["2026-01-01", "2026-01-31", "2026-02-01", "2026-03-31", "2026-12-31", "2025-12-31"];
        for l in 0..date.max_level() {
            for a in days {
                for b in days {
                    if date.generalize(a, l) == date.generalize(b, l) {
                        assert_eq!(date.generalize(a, l + 1), date.generalize(b, l + 1), "{a} {b} at {l}");
                    }
                }
            }
        }
    }
}
