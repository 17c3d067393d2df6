//! Postal codes: generalization never panics, and a kept prefix is a prefix of the
//! code it came from.
#![no_main]
use libfuzzer_sys::fuzz_target;
use medanon_core::generalize::{generalize_postal_code, parse_postal_code};

fuzz_target!(|input: &str| {
    if let Ok(digits) = parse_postal_code(input) {
        let full = generalize_postal_code(input, 7).expect("a parsed code generalizes");
        for keep in 0..=7 {
            let masked = generalize_postal_code(input, keep).expect("a parsed code generalizes");
            assert_eq!(masked.len(), 8);
            for (i, (m, f)) in masked.chars().zip(full.chars()).enumerate() {
                if m != '*' {
                    assert_eq!(m, f, "digit {i} of {input:?}");
                }
            }
        }
        assert_eq!(full.replace('-', "").as_bytes(), &digits[..]);
    }
});
