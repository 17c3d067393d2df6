//! Writes seed objects for the fuzzer (fuzz/fuzz_targets/dicom.rs) into a directory:
//! a small CT slice, one with a burned-in annotation, and the hostile samples.
use medanon_dicom::sample::{absurd_length, ct, deep, Ct};

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus/dicom".into());
    std::fs::create_dir_all(&dir)?;
    let small = Ct { rows: 4, columns: 4, ..Ct::default() };
    let seeds = [
        ("ct", ct(&small)),
        ("burned_in", ct(&Ct { burned_in: Some("YES"), ..small.clone() })),
        ("deep40", deep(40)),
        ("deep8", deep(8)),
        ("absurd_length", absurd_length(0xFFFF_FFF0)),
    ];
    for (name, bytes) in seeds {
        std::fs::write(format!("{dir}/{name}.dcm"), bytes)?;
    }
    Ok(())
}
