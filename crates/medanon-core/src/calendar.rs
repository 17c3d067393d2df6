//! Proleptic Gregorian calendar arithmetic, in the day numbering PostgreSQL uses
//! for `date` (days since 2000-01-01). Kept here so the parsers and the
//! generalizers can be tested without a server.

/// A calendar date. Fields are validated by [`Ymd::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ymd {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

pub fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

pub fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days between 0000-03-01 and 2000-01-01, so that day 0 is PostgreSQL's epoch.
const PG_EPOCH_SHIFT: i64 = 730_425;

impl Ymd {
    /// A date, or `None` when the month or day does not exist.
    pub fn new(year: i32, month: u32, day: u32) -> Option<Ymd> {
        if (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month) {
            Some(Ymd { year, month, day })
        } else {
            None
        }
    }

    /// Days since 2000-01-01 (PostgreSQL's `date` representation).
    /// Howard Hinnant's days_from_civil.
    pub fn to_pg_days(self) -> i64 {
        let y = self.year as i64 - if self.month <= 2 { 1 } else { 0 };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = self.month as i64;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + self.day as i64 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - PG_EPOCH_SHIFT
    }

    /// Inverse of [`Ymd::to_pg_days`] (Hinnant's civil_from_days).
    pub fn from_pg_days(days: i64) -> Ymd {
        let z = days + PG_EPOCH_SHIFT;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + if month <= 2 { 1 } else { 0 }) as i32;
        Ymd { year, month, day }
    }
}

impl std::fmt::Display for Ymd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn epoch_is_day_zero() {
        assert_eq!(Ymd::new(2000, 1, 1).unwrap().to_pg_days(), 0);
        assert_eq!(Ymd::new(1999, 12, 31).unwrap().to_pg_days(), -1);
        assert_eq!(Ymd::new(2000, 3, 1).unwrap().to_pg_days(), 60);
        // 1970-01-01 is 10957 days before the PostgreSQL epoch.
        assert_eq!(Ymd::new(1970, 1, 1).unwrap().to_pg_days(), -10_957);
    }

    #[test]
    fn invalid_dates_are_refused() {
        assert!(Ymd::new(2023, 2, 29).is_none());
        assert!(Ymd::new(2024, 2, 29).is_some());
        assert!(Ymd::new(1900, 2, 29).is_none());
        assert!(Ymd::new(2000, 2, 29).is_some());
        assert!(Ymd::new(2024, 13, 1).is_none());
        assert!(Ymd::new(2024, 4, 31).is_none());
        assert!(Ymd::new(2024, 4, 0).is_none());
    }

    proptest! {
        #[test]
        fn days_round_trip(days in -1_000_000i64..1_000_000) {
            let ymd = Ymd::from_pg_days(days);
            prop_assert!(Ymd::new(ymd.year, ymd.month, ymd.day).is_some());
            prop_assert_eq!(ymd.to_pg_days(), days);
        }

        #[test]
        fn next_day_is_one_more(days in -1_000_000i64..1_000_000) {
            let a = Ymd::from_pg_days(days);
            let b = Ymd::from_pg_days(days + 1);
            prop_assert!(b > a);
        }
    }
}
