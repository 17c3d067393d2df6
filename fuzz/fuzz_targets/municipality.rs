//! Addresses and postal codes: any text resolves to a listed municipality in the
//! prefecture it reads as, or to nothing; suggest_classes takes any column.
#![no_main]
use libfuzzer_sys::fuzz_target;
use medanon_core::classify_suggest::suggest;
use medanon_core::municipality::{resolve, WardLevel};

fuzz_target!(|input: &str| {
    let ward = resolve(input, WardLevel::Ward);
    let city = resolve(input, WardLevel::City);
    if let Ok(w) = &ward {
        let c = city.as_ref().expect("a value resolved at ward level resolves at city level");
        assert_eq!(w.prefecture, c.prefecture);
        assert!(w.label.starts_with(w.prefecture));
    }
    let values: Vec<String> = input.split('\n').map(str::to_string).collect();
    let s = suggest(input, "text", &values);
    assert!(!s.evidence.is_empty());
});
