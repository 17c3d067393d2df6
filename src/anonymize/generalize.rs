//! Glue for the generalizers of medanon-core: date and range conversions only.

use crate::error::{raise, OrRaise};
use medanon_core::calendar::Ymd;
use medanon_core::generalize::{self, DateUnit};
use pgrx::datum::{Date, Range};
use pgrx::PgSqlErrorCode;

/// A finite `date` as a calendar date; infinity is refused with 22008.
pub fn ymd_of(value: Date, what: &str) -> Ymd {
    if !value.is_finite() {
        raise(
            PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW,
            format!("{what} must be a finite date"),
            None,
            None,
        );
    }
    Ymd::from_pg_days(value.to_pg_epoch_days() as i64)
}

pub fn date_of(ymd: Ymd) -> Date {
    // SAFETY: every Ymd that reaches here came from a valid date or from a parser
    // that limits years to 1..=9999, well inside PostgreSQL's range.
    unsafe { Date::from_pg_epoch_days(ymd.to_pg_days() as i32) }
}

pub fn generalize_age(birth_date: Date, reference_date: Date, band_years: i32, top_code: i32) -> Range<i32> {
    let birth = ymd_of(birth_date, "birth date");
    let reference = ymd_of(reference_date, "reference date");
    let age = generalize::age_in_years(birth, reference).or_raise();
    let band = generalize::age_band(age, band_years, top_code).or_raise();
    match band.upper {
        Some(upper) => Range::from(band.lower..upper),
        None => Range::from(band.lower..),
    }
}

pub fn truncate_date(value: Date, unit: &str) -> Date {
    let unit = DateUnit::parse(unit).or_raise();
    if !value.is_finite() {
        return value;
    }
    date_of(generalize::truncate_date(Ymd::from_pg_days(value.to_pg_epoch_days() as i64), unit))
}
