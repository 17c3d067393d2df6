//! Issue 21 part 4, delivery files: `medanon-export` (the binary, connecting with
//! libpq's environment as the snapshot's grantee) writes a snapshot as CSV files
//! and manifest.json, and records the export; the recipient recomputes every hash
//! from the files alone and finds the ledger's. Only a role that reads the
//! snapshot records an export of it, and only a manifest that matches.

use medanon_core::export::{manifest_digest, record_text, snapshot_digest};
use medanon_integration::*;
use postgres::error::SqlState;
use postgres::Client;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// contract_warehouse plus a source whose kept text holds every value CSV and
/// the row text must quote (NULL, an empty string, commas, quotes, backslashes,
/// spaces, parentheses, line breaks, Japanese), and contract it_x for it_lab_x,
/// published, with a snapshot released under a session's German dates and a
/// far time zone (the hash must not depend on them).
fn warehouse() -> (Client, String) {
    let mut su = superuser();
    su.batch_execute(
        "DROP SCHEMA IF EXISTS it_export, contract_it_x, contract_it_x_data, contract_it_x_snap_1 CASCADE;
         DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_lab_x') THEN CREATE ROLE it_lab_x LOGIN; END IF;
         END $$;",
    )
    .expect("role it_lab_x");
    let mut su = contract_warehouse();
    su.batch_execute(
        r#"CREATE SCHEMA it_export;
         CREATE TABLE it_export.lab AS
         SELECT p.person_id, (ARRAY[NULL, '', 'a,b', 'say "hi"', 'c:\x', ' lead', '(1,2)', E'two\r\nlines', '東京都 新宿区', 'plain'])[1 + p.person_id::int % 10] AS comment,
                (p.person_id % 7)::numeric / 3 AS value, (p.person_id % 7)::float8 / 3 AS ratio, now() AS taken_at
           FROM it_clinical.patient p;
         GRANT USAGE ON SCHEMA it_export TO it_etl;
         GRANT SELECT ON ALL TABLES IN SCHEMA it_export TO it_etl;
         SELECT medanon.register_source('it_export.lab', 'person_id');
         SELECT medanon.classify('it_export.lab', c, cls) FROM (VALUES ('person_id', 'identifier'), ('comment', 'dynamic'),
             ('value', 'dynamic'), ('ratio', 'dynamic'), ('taken_at', 'dynamic')) v(c, cls);"#,
    )
    .expect("source it_export.lab");
    let mut etl = connect_as("it_etl");
    etl.batch_execute(
        r#"SELECT medanon.create_contract('{"id": "it_x", "grantee": "it_lab_x", "purpose": "delivery",
              "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 2, "reference_date": "2026-04-01",
              "tables": [{"source": "it_clinical.patient", "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 50}}, "sex": "keep"}},
                         {"source": "it_clinical.visit", "columns": {"person_id": "token", "visit_date": "shift", "icd10": "keep"}},
                         {"source": "it_export.lab", "columns": {"person_id": "token", "comment": "keep", "value": "keep", "ratio": "keep", "taken_at": "keep"}}]}');
           SELECT medanon.publish_contract('it_x');"#,
    )
    .expect("contract it_x");
    etl.batch_execute("SET DateStyle = 'SQL, DMY'; SET TimeZone = 'Pacific/Chatham'; SET extra_float_digits = 0").unwrap();
    let snapshot: String = etl.query_one("SELECT medanon.release_snapshot('it_x')", &[]).expect("snapshot").get(0);
    (su, snapshot)
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("medanon-export-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs the medanon-export binary as `role`, connecting with libpq's variables.
fn medanon_export(role: &str, args: &[&str]) -> std::process::Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    Command::new(cargo)
        .args(["run", "-q", "-p", "medanon-export", "--"])
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("PGHOST", std::env::var("MEDANON_TEST_HOST").expect("MEDANON_TEST_HOST"))
        .env("PGPORT", std::env::var("MEDANON_TEST_PORT").expect("MEDANON_TEST_PORT"))
        .env("PGDATABASE", std::env::var("MEDANON_TEST_DB").expect("MEDANON_TEST_DB"))
        .env("PGUSER", role)
        .env_remove("PGSERVICE")
        .output()
        .expect("run medanon-export")
}

/// The recipient's own check, independent of medanon-export's: each CSV read
/// (an unquoted empty field is NULL), each row rebuilt as PostgreSQL's row text,
/// the lines sorted bytewise, each with a newline, hashed.
fn recompute(dir: &Path, file: &str) -> (String, i64) {
    let bytes = std::fs::read(dir.join(file)).expect("csv file");
    let mut records = medanon_export::parse_csv(&bytes).expect("RFC 4180").into_iter();
    records.next().expect("a header");
    let mut lines: Vec<String> = records.map(|r| record_text(&r)).collect();
    lines.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut h = Sha256::new();
    for l in &lines {
        h.update(l.as_bytes());
        h.update(b"\n");
    }
    (h.finalize().iter().map(|b| format!("{b:02x}")).collect(), lines.len() as i64)
}

#[test]
fn the_exported_files_hash_to_the_ledgers_entry() {
    let (mut su, snapshot) = warehouse();
    let dir = out_dir("ok");
    let out = medanon_export("it_lab_x", &[&snapshot, dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let manifest_bytes = std::fs::read(dir.join("manifest.json")).expect("manifest.json");
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    // The snapshot's ledger entry, as the auditor reads it.
    let entry: String = connect_as("it_auditor")
        .query_one("SELECT detail::text FROM medanon.provision_ledger WHERE event = 'snapshot' AND detail ->> 'schema' = $1", &[&snapshot])
        .unwrap()
        .get(0);
    let entry: serde_json::Value = serde_json::from_str(&entry).unwrap();
    let tables = manifest["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 3);
    let mut per_table = vec![];
    for t in tables {
        let (name, file) = (t["table"].as_str().unwrap(), t["file"].as_str().unwrap());
        assert_eq!(file, format!("{name}.csv"));
        let (sha, rows) = recompute(&dir, file);
        assert_eq!(sha, entry["tables"][name]["sha256"].as_str().unwrap(), "{name}: the recipient's hash is the ledger's");
        assert_eq!(rows, entry["tables"][name]["rows"].as_i64().unwrap(), "{name}");
        assert!(rows > 0, "{name}");
        per_table.push((name.to_string(), sha));
    }
    assert_eq!(
        snapshot_digest(per_table.iter().map(|(n, s)| (n.as_str(), s.as_str()))),
        entry["sha256"].as_str().unwrap(),
        "the snapshot's hash too"
    );
    // The export's entry: who, which snapshot, the manifest's hash; the chain verifies.
    let row = su
        .query_one(
            "SELECT recorded_by::text, contract_id, detail ->> 'snapshot', detail ->> 'manifest_sha256', row_count, medanon.verify_ledger()
               FROM medanon.provision_ledger WHERE event = 'export'",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "it_lab_x");
    assert_eq!(row.get::<_, String>(1), "it_x");
    assert_eq!(row.get::<_, String>(2), snapshot);
    assert_eq!(row.get::<_, String>(3), manifest_digest(&manifest_bytes));
    let total: i64 = tables.iter().map(|t| t["rows"].as_i64().unwrap()).sum();
    assert_eq!(row.get::<_, i64>(4), total);
    assert_eq!(row.get::<_, Option<i64>>(5), None);
    // The files hold the values: NULL and the empty string apart, quotes and breaks intact.
    let lab = std::fs::read_to_string(dir.join("lab.csv")).unwrap();
    assert!(lab.starts_with("\"person_id\",\"comment\",\"value\",\"ratio\",\"taken_at\"\r\n"), "{lab:.80}");
    let records = medanon_export::parse_csv(lab.as_bytes()).unwrap();
    let comments: Vec<Option<String>> = records[1..].iter().map(|r| r[1].clone()).collect();
    let (nulls, empty): (usize, usize) = (comments.iter().filter(|c| c.is_none()).count(), comments.iter().filter(|c| c.as_deref() == Some("")).count());
    let expected: Vec<i64> = su
        .query_one(&format!("SELECT count(*) FILTER (WHERE comment IS NULL), count(*) FILTER (WHERE comment = '') FROM {snapshot}.lab"), &[])
        .map(|r| vec![r.get(0), r.get(1)])
        .unwrap();
    assert_eq!((nulls as i64, empty as i64), (expected[0], expected[1]));
    assert!(nulls > 0 && empty > 0);
    assert!(comments.iter().any(|c| c.as_deref() == Some("two\r\nlines")) && comments.iter().any(|c| c.as_deref() == Some("say \"hi\"")));
    // The recipient's tool agrees, and prints the manifest hash the ledger holds.
    let check = medanon_export("it_lab_x", &["verify", dir.to_str().unwrap()]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    assert!(String::from_utf8_lossy(&check.stdout).contains(&manifest_digest(&manifest_bytes)));
    // Each table as Parquet too, checked by verify against the same hash.
    for t in tables {
        let file = t["parquet_file"].as_str().expect("a parquet file");
        assert_eq!(file, format!("{}.parquet", t["table"].as_str().unwrap()));
        assert!(std::fs::metadata(dir.join(file)).unwrap().len() > 0);
    }
    // A changed file fails it: a Parquet file of other rows, then a CSV value.
    let good = std::fs::read(dir.join("visit.parquet")).unwrap();
    std::fs::copy(dir.join("patient.parquet"), dir.join("visit.parquet")).unwrap();
    let check = medanon_export("it_lab_x", &["verify", dir.to_str().unwrap()]);
    assert!(!check.status.success(), "another table's parquet must not verify");
    std::fs::write(dir.join("visit.parquet"), good).unwrap();
    assert!(medanon_export("it_lab_x", &["verify", dir.to_str().unwrap()]).status.success());
    std::fs::write(dir.join("lab.csv"), lab.replacen("plain", "plain!", 1)).unwrap();
    let check = medanon_export("it_lab_x", &["verify", dir.to_str().unwrap()]);
    assert!(!check.status.success(), "a changed file must not verify");
    let _ = std::fs::remove_dir_all(&dir);
    connect_as("it_etl").batch_execute("SELECT medanon.revoke_contract('it_x')").unwrap();
}

#[test]
fn only_a_reader_of_the_snapshot_records_a_matching_export() {
    let (mut su, snapshot) = warehouse();
    let exports = |su: &mut Client| -> i64 { su.query_one("SELECT count(*) FROM medanon.provision_ledger WHERE event = 'export'", &[]).unwrap().get(0) };
    // Another contract's analyst, the operator and an outsider cannot read it: the binary fails, nothing is recorded.
    for role in ["it_lab_a", "it_etl", "it_outsider"] {
        let dir = out_dir(role);
        let out = medanon_export(role, &[&snapshot, dir.to_str().unwrap()]);
        assert!(!out.status.success(), "{role} exported");
        assert!(!dir.join("manifest.json").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert_eq!(exports(&mut su), 0);
    // The grantee exports; its manifest, passed by others, is refused; changed, refused.
    let dir = out_dir("grantee");
    assert!(medanon_export("it_lab_x", &[&snapshot, dir.to_str().unwrap()]).status.success());
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let call = format!("SELECT medanon.record_export($m${manifest}$m$)");
    for role in ["it_lab_a", "it_etl", "it_outsider", "it_auditor"] {
        assert_sqlstate(&mut connect_as(role), &call, SqlState::INSUFFICIENT_PRIVILEGE);
    }
    let mut lab_x = connect_as("it_lab_x");
    let v: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let first_sha = v["tables"][0]["sha256"].as_str().unwrap().to_string();
    for (from, to) in [
        (first_sha.as_str(), "0000000000000000000000000000000000000000000000000000000000000000"),
        ("\"rows\": ", "\"rows\": 1"),
        ("\"format\": \"medanon-export/1\"", "\"format\": \"medanon-export/1\", \"note\": \"free text\""),
        (".csv\"", ".txt\""),
    ] {
        assert!(manifest.contains(from), "{from}");
        let changed = manifest.replacen(from, to, 1);
        assert_sqlstate(&mut lab_x, &format!("SELECT medanon.record_export($m${changed}$m$)"), SqlState::INVALID_PARAMETER_VALUE);
    }
    // Unknown snapshot: the same refusal as a forbidden one.
    let other = manifest.replace(&snapshot, "contract_it_zz_snap_1");
    assert_sqlstate(&mut lab_x, &format!("SELECT medanon.record_export($m${other}$m$)"), SqlState::INSUFFICIENT_PRIVILEGE);
    assert_eq!(exports(&mut su), 1, "only the grantee's export is recorded");
    // The same manifest again is a second delivery, recorded as such.
    lab_x.batch_execute(&call).expect("the grantee records");
    assert_eq!(exports(&mut su), 2);
    // A directory that is not empty is refused.
    let out = medanon_export("it_lab_x", &[&snapshot, dir.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    // After the contract is revoked, nothing more is recorded.
    connect_as("it_etl").batch_execute("SELECT medanon.revoke_contract('it_x')").unwrap();
    assert_sqlstate(&mut lab_x, &call, SqlState::INSUFFICIENT_PRIVILEGE);
    let _ = std::fs::remove_dir_all(&dir);
}
