//! The municipality (市区町村) level of geography: glue over
//! `medanon_core::municipality`, whose data is compiled into the library (each
//! backend or parallel worker parses it once, on first use).

use crate::error::OrRaise;
use medanon_core::municipality::{municipality_of as resolve, WardLevel};

/// `prefecture + municipality` of an address or a postal code; NULL when it names
/// none, or names one ambiguously. `designated_city` is `ward` or `city`.
pub fn municipality_of(value: &str, designated_city: Option<&str>) -> Option<String> {
    let level = designated_city.map(|l| WardLevel::parse(l).or_raise()).unwrap_or(WardLevel::Ward);
    resolve(value, level)
}
