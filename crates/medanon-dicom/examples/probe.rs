//! De-identifies each file named on the command line twice (the output again) and
//! says what happened: a manual check of what the fuzzer finds.
use medanon_dicom::{deidentify, AgePolicy, Options, Outcome, Person};

fn main() {
    let key = |uid: &[u8]| uid.iter().fold(0u128, |h, b| h.wrapping_mul(0x100000001b3).wrapping_add(*b as u128));
    let person = Person { token: "0123456789abcdef", date_offset: -364 };
    for path in std::env::args().skip(1) {
        let input = std::fs::read(&path).expect("readable");
        let options = Options { age: AgePolicy::Band { band: 5, top: 90 }, keep_sex: true, accept_burned_in: input.len() % 2 == 0 };
        match deidentify(&input, person, options, &key) {
            Ok(Outcome::Object(out)) => {
                std::fs::write(format!("{path}.out"), &out).expect("writable");
                println!("{path}: {} bytes -> {} bytes; again: {:?}", input.len(), out.len(), deidentify(&out, person, options, &key).err());
            }
            other => println!("{path}: {:?}", other.err()),
        }
    }
}
