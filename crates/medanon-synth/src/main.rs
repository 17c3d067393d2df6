//! medanon-synth: a deterministic, seeded generator of Japanese hospital data.
//!
//! It prints one SQL script (DDL plus `COPY ... FROM stdin` blocks) for psql:
//!
//!     medanon-synth --patients 1000 --seed 42 | psql -d warehouse
//!
//! The same person appears at several institutions, written the way each
//! institution's system writes it (half-width kana, hiragana, spaces, era or
//! Gregorian birth dates, full-width digits, kanji variants), with a little noise:
//! kana typos, changed insurance after a job change, missing fields and a few
//! unreadable birth dates. Who is who is kept apart in `<schema>.truth`.

mod generator;
mod kana;
mod names;
mod rng;

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

const USAGE: &str = "usage: medanon-synth [--patients N] [--seed S] [--schema NAME] [--visits-per-patient V]

  --patients N            persons to generate (default 1000; 1,000,000 works)
  --seed S                random seed; the same seed gives the same data (default 42)
  --schema NAME           schema to (re)create (default synth)
  --visits-per-patient V  mean visits per registration; 0 for linkage-only data (default 3)";

fn parse_args() -> Result<generator::Config, String> {
    let mut config = generator::Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|_| format!("{flag}: {value:?} is not a whole number"));
        match flag.as_str() {
            "--patients" => config.patients = number()?,
            "--seed" => config.seed = number()?,
            "--visits-per-patient" => config.visits_per_patient = number()? as u32,
            "--schema" => {
                if value.is_empty() || !value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                    return Err(format!("--schema: {value:?} must be lowercase letters, digits and _"));
                }
                config.schema = value;
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if config.patients == 0 {
        return Err("--patients must be at least 1".into());
    }
    Ok(config)
}

fn main() -> ExitCode {
    let config = match parse_args() {
        Ok(c) => c,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("medanon-synth: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    match generator::write_script(&config, &mut out).and_then(|_| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (psql stopped) is not worth a panic.
        Err(e) => {
            eprintln!("medanon-synth: {e}");
            ExitCode::FAILURE
        }
    }
}
