//! `medanon-export SNAPSHOT DIR`: writes a released snapshot to DIR as delivery
//! files and records the export in the provision ledger. It connects as libpq
//! would: PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGSERVICE (with
//! PGSERVICEFILE / PGSYSCONFDIR), PGPASSFILE, or a connection string given with
//! `--dbname` (`host=... user=...`, `postgresql://...` or `service=...`).
//!
//! `medanon-export verify DIR`: the recipient's check of DIR, from the files alone;
//! prints the manifest's SHA-256 (the ledger's `manifest_sha256`).

use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: medanon-export [--dbname CONNINFO] SNAPSHOT DIR
       medanon-export verify DIR";

fn connect(conninfo: Option<&str>) -> Result<postgres::Client, String> {
    let mut config = pg_client_config::load_config(conninfo).map_err(|e| format!("connection settings: {e}"))?;
    // libpq reads PGPASSWORD too; pg-client-config reads the password file only.
    if config.get_password().is_none() {
        if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        }
    }
    if config.get_user().is_none() {
        // libpq's default: the operating-system user.
        if let Ok(user) = std::env::var("USER") {
            config.user(&user);
        }
    }
    if config.get_application_name().is_none() {
        config.application_name("medanon-export");
    }
    postgres::Config::from(config).connect(postgres::NoTls).map_err(|e| format!("could not connect: {}", medanon_export::db_error(&e)))
}

fn run(args: &[String]) -> Result<(), String> {
    match args {
        [verb, dir] if verb == "verify" => {
            let (manifest, digest) = medanon_export::verify(Path::new(dir))?;
            for t in &manifest.tables {
                println!("{}\t{} rows\tsha256 {}", t.file, t.rows, t.sha256);
            }
            println!("snapshot {}\tsha256 {}", manifest.snapshot, manifest.snapshot_sha256);
            println!("manifest.json\tsha256 {digest}");
            Ok(())
        }
        [flag, conninfo, snapshot, dir] if flag == "--dbname" || flag == "-d" => export(Some(conninfo), snapshot, dir),
        [snapshot, dir] if !snapshot.starts_with('-') => export(None, snapshot, dir),
        _ => Err(USAGE.into()),
    }
}

fn export(conninfo: Option<&str>, snapshot: &str, dir: &str) -> Result<(), String> {
    let mut client = connect(conninfo)?;
    let (manifest, digest) = medanon_export::export(&mut client, snapshot, Path::new(dir))?;
    for t in &manifest.tables {
        println!("{}\t{} rows\tsha256 {}", t.file, t.rows, t.sha256);
    }
    println!("manifest.json\tsha256 {digest} (recorded in the provision ledger)");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("medanon-export: {e}");
            ExitCode::FAILURE
        }
    }
}
