//! De-identification throughput for a typical CT slice (512x512, 16-bit,
//! Explicit VR Little Endian, about 0.5 MB), against a baseline measured in the
//! same run: reading and writing back the same object with dicom-rs (pre-scan
//! included), without any change. `bench/dicom.sh` runs it; BENCHMARKS.md has the
//! figures.
use medanon_dicom::sample::{ct, Ct};
use medanon_dicom::{deidentify, roundtrip, Options, Outcome, Person};
use std::time::Instant;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let object = ct(&Ct::default());
    let mb = object.len() as f64 / 1e6;
    let key = |uid: &[u8]| uid.iter().fold(0u128, |h, b| h.wrapping_mul(0x100000001b3).wrapping_add(*b as u128));
    let person = Person { token: "3f9a0c1d2e4b5a6f", date_offset: -91 };
    // Warm up both paths.
    for _ in 0..20 {
        roundtrip(&object).unwrap();
        deidentify(&object, person, Options::default(), &key).unwrap();
    }
    // Interleaved, one object each in turn, so that the machine's load and clock
    // weigh on both alike (2 cores shared with other jobs).
    let (mut t_base, mut t_deid) = (0f64, 0f64);
    for _ in 0..n {
        let t = Instant::now();
        std::hint::black_box(roundtrip(std::hint::black_box(&object)).unwrap());
        let u = Instant::now();
        match deidentify(std::hint::black_box(&object), person, Options::default(), &key).unwrap() {
            Outcome::Object(o) => {
                std::hint::black_box(o);
            }
            Outcome::BurnedInAnnotation => unreachable!(),
        }
        t_deid += u.elapsed().as_secs_f64();
        t_base += (u - t).as_secs_f64();
    }
    let best = (t_base, t_deid);
    let (base, deid) = (n as f64 / best.0, n as f64 / best.1);
    println!("object: {} bytes (512x512, 16-bit CT, Explicit VR LE); {n} objects, each path in turn", object.len());
    println!("baseline parse+write: {base:.0} images/s, {:.0} MB/s", base * mb);
    println!("de-identify:          {deid:.0} images/s, {:.0} MB/s", deid * mb);
    println!("ratio de-identify/baseline time: {:.2}", best.1 / best.0);
}
