//! Collect: reading what provider institutions send, written the many ways their
//! systems write it. The parsers live in medanon-core; this is their SQL face.
//! `suggest_classes` helps the operator classify a new source table's columns.

pub mod suggest_classes;

use crate::anonymize::generalize::date_of;
use crate::error::OrRaise;
use pgrx::datum::Date;

pub fn parse_japanese_date(value: &str) -> Date {
    date_of(medanon_core::jpdate::parse_japanese_date(value).or_raise())
}
