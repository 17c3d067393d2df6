//! DICOM objects (issue 20): any bytes are de-identified or refused with a kind,
//! through the whole path publish takes (pre-scan, parse, profile, write), and a
//! de-identified object reads back. Seed it with crates/medanon-dicom's samples:
//!   cargo run -p medanon-dicom --example seeds fuzz/corpus/dicom
#![no_main]
use libfuzzer_sys::fuzz_target;
use medanon_dicom::{deidentify, readable, study_date, AgePolicy, Options, Outcome, Person};

fuzz_target!(|input: &[u8]| {
    let key = |uid: &[u8]| uid.iter().fold(0u128, |h, b| h.wrapping_mul(0x100000001b3).wrapping_add(*b as u128));
    let person = Person { token: "0123456789abcdef", date_offset: -364 };
    let options = Options { age: AgePolicy::Band { band: 5, top: 90 }, keep_sex: true, accept_burned_in: input.len() % 2 == 0 };
    let _ = study_date(input);
    match deidentify(input, person, options, &key) {
        Ok(Outcome::Object(out)) => {
            // What medanon writes, it reads again.
            if let Err(e) = readable(&out) {
                panic!("output does not read back: {e:?}");
            }
        }
        Ok(Outcome::BurnedInAnnotation) => {}
        Err(e) => assert!(!e.message.is_empty() && !e.detail.is_empty() && !e.hint.is_empty(), "{e:?}"),
    }
});
