//! Proleptic Gregorian calendar dates, in the day numbering PostgreSQL uses for
//! `date` (days since 2000-01-01). The arithmetic is chrono's; this module only
//! adapts it to PostgreSQL's day numbers and to PostgreSQL's range.
//!
//! PostgreSQL's `date` reaches 5874897 AD, chrono's `NaiveDate` about ±262,000
//! years. The Gregorian calendar repeats exactly every 400 years (146,097 days),
//! so a date beyond chrono's range is taken to its place in the cycle near 2000,
//! converted there by chrono, and moved back by whole cycles.

use chrono::{Datelike, NaiveDate};

/// A calendar date. Fields are validated by [`Ymd::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ymd {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

/// Days in one 400-year Gregorian cycle.
const CYCLE_DAYS: i64 = 146_097;
const CYCLE_YEARS: i32 = 400;

/// PostgreSQL's day 0.
fn pg_epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("2000-01-01 exists")
}

/// `year` moved by whole 400-year cycles into [2000, 2400), and the number of
/// cycles moved.
fn reduce_year(year: i32) -> (i32, i64) {
    let cycles = (year as i64 - 2000).div_euclid(CYCLE_YEARS as i64);
    ((year as i64 - cycles * CYCLE_YEARS as i64) as i32, cycles)
}

pub fn is_leap(year: i32) -> bool {
    NaiveDate::from_ymd_opt(reduce_year(year).0, 1, 1).is_some_and(|d| d.leap_year())
}

pub fn days_in_month(year: i32, month: u32) -> u32 {
    let (year, _) = reduce_year(year);
    let first = NaiveDate::from_ymd_opt(year, month, 1);
    let next = if month == 12 { NaiveDate::from_ymd_opt(year + 1, 1, 1) } else { NaiveDate::from_ymd_opt(year, month + 1, 1) };
    match (first, next) {
        (Some(a), Some(b)) => (b - a).num_days() as u32,
        _ => 0,
    }
}

impl Ymd {
    /// A date, or `None` when the month or day does not exist.
    pub fn new(year: i32, month: u32, day: u32) -> Option<Ymd> {
        NaiveDate::from_ymd_opt(reduce_year(year).0, month, day).map(|_| Ymd { year, month, day })
    }

    /// Days since 2000-01-01 (PostgreSQL's `date` representation).
    pub fn to_pg_days(self) -> i64 {
        let (year, cycles) = reduce_year(self.year);
        // A Ymd built with a struct literal may name a day that does not exist;
        // such a day counts on from the first of its month, as the civil formula would.
        let first = NaiveDate::from_ymd_opt(year, self.month.clamp(1, 12), 1).expect("the first of a month exists");
        (first - pg_epoch()).num_days() + self.day as i64 - 1 + cycles * CYCLE_DAYS
    }

    /// Inverse of [`Ymd::to_pg_days`].
    pub fn from_pg_days(days: i64) -> Ymd {
        let cycles = days.div_euclid(CYCLE_DAYS);
        let d = pg_epoch() + chrono::Days::new(days.rem_euclid(CYCLE_DAYS) as u64);
        Ymd { year: (d.year() as i64 + cycles * CYCLE_YEARS as i64) as i32, month: d.month(), day: d.day() }
    }

    /// The same day as chrono's date, when chrono's range holds it.
    pub fn to_naive(self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(self.year, self.month, self.day)
    }

    pub fn from_naive(date: NaiveDate) -> Ymd {
        Ymd { year: date.year(), month: date.month(), day: date.day() }
    }

    /// Day of the week, Monday = 0 .. Sunday = 6 (2000-01-01 was a Saturday).
    pub fn weekday(self) -> u32 {
        weekday_of_pg_day(self.to_pg_days())
    }
}

/// Day of the week of a PostgreSQL day number, Monday = 0 .. Sunday = 6.
pub fn weekday_of_pg_day(days: i64) -> u32 {
    (days + 5).rem_euclid(7) as u32
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
    fn both_ends_of_postgresqls_range_convert() {
        // PostgreSQL's date runs from 4714-11-24 BC (year -4713) to 5874897-12-31,
        // far beyond chrono's own range: the 400-year cycle carries it.
        let first = Ymd::new(-4713, 11, 24).unwrap();
        assert_eq!(first.to_pg_days(), -2_451_545);
        assert_eq!(Ymd::from_pg_days(-2_451_545), first);
        let last = Ymd::new(5_874_897, 12, 31).unwrap();
        assert_eq!(last.to_pg_days(), 2_147_483_494 - 2_451_545 - 1);
        assert_eq!(Ymd::from_pg_days(last.to_pg_days()), last);
        assert!(Ymd::new(5_874_896, 2, 29).is_some() == is_leap(5_874_896));
    }

    #[test]
    fn weekdays_and_month_lengths() {
        // 2000-01-01 was a Saturday, 2026-11-30 is a Monday.
        assert_eq!(Ymd::new(2000, 1, 1).unwrap().weekday(), 5);
        assert_eq!(Ymd::new(2026, 11, 30).unwrap().weekday(), 0);
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2024, 12), 31);
        assert_eq!(days_in_month(2024, 13), 0);
        assert!(is_leap(2000) && !is_leap(1900) && is_leap(-4) && !is_leap(-100));
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
        fn chrono_round_trip_and_weekday(days in -1_000_000i64..1_000_000) {
            let ymd = Ymd::from_pg_days(days);
            let naive = ymd.to_naive().unwrap();
            prop_assert_eq!(Ymd::from_naive(naive), ymd);
            prop_assert_eq!(ymd.weekday(), chrono::Datelike::weekday(&naive).num_days_from_monday());
        }

        #[test]
        fn far_days_round_trip(days in -2_451_545i64..2_145_031_949) {
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
