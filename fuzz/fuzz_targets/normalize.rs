//! The linkage normalizers never panic and are idempotent: normalizing twice gives
//! what normalizing once gave (or the link keys of one person would differ).
#![no_main]
use libfuzzer_sys::fuzz_target;
use medanon_core::normalize::{normalize_insured_symbol, normalize_kana, normalize_kanji_name, normalize_sex};

fuzz_target!(|input: &str| {
    for f in [normalize_kana, normalize_kanji_name, normalize_insured_symbol] {
        if let Some(once) = f(input) {
            assert_eq!(f(&once).as_deref(), Some(once.as_str()), "not idempotent on {input:?}");
        }
    }
    let _ = normalize_sex(input);
});
