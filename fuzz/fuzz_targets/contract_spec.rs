//! Contract specs: any text is either a contract or a refusal that names its key.
#![no_main]
use libfuzzer_sys::fuzz_target;
use medanon_core::calendar::Ymd;
use medanon_core::contract::parse;

fuzz_target!(|input: &str| {
    if let Err(e) = parse(input, Ymd { year: 2026, month: 11, day: 25 }) {
        assert!(!e.path.is_empty() && !e.message.is_empty(), "{e:?}");
    }
});
