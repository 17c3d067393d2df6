//! The SQL face of the normalizers: NULL for an empty field, an error for one that
//! cannot be what it claims to be.

use crate::error::raise;
use medanon_core::error::quoted;
use medanon_core::normalize::{normalize_insured_number, normalize_insurer_number, normalize_sex, DigitsField, SexField};
use pgrx::PgSqlErrorCode;

fn invalid(what: &str, value: &str, hint: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
        format!("invalid {what} {}", quoted(value)),
        None,
        Some(hint.into()),
    )
}

pub fn sex(code: &str) -> Option<i16> {
    match normalize_sex(code) {
        SexField::Known(s) => Some(s as i16),
        SexField::Unknown => None,
        SexField::Unrecognized => invalid("sex code", code, "use 1/2, M/F, m/f, 男/女 or 男性/女性; 0 and 9 mean unknown"),
    }
}

pub fn insurer_number(value: &str) -> Option<String> {
    match normalize_insurer_number(value) {
        DigitsField::Digits(d) => Some(d),
        DigitsField::Empty => None,
        DigitsField::Invalid => invalid("insurer number", value, "an insurer number (保険者番号) has 6 or 8 digits"),
    }
}

pub fn insured_number(value: &str) -> Option<String> {
    match normalize_insured_number(value) {
        DigitsField::Digits(d) => Some(d),
        DigitsField::Empty => None,
        DigitsField::Invalid => invalid("insured number", value, "a card number (被保険者証番号) has digits only"),
    }
}
