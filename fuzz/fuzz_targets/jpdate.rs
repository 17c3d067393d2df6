//! parse_japanese_date never panics, and what it accepts is a real calendar date
//! that prints and parses back to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use medanon_core::jpdate::parse_japanese_date;

fuzz_target!(|input: &str| {
    if let Ok(date) = parse_japanese_date(input) {
        let again = parse_japanese_date(&date.to_string()).expect("an ISO date it printed must parse");
        assert_eq!(again, date);
    }
});
