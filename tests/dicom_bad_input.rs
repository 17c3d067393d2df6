//! Issue 20, bad input: a truncated or non-DICOM bytea, a huge one, and hostile
//! ones (sequences nested 5,000 deep, a length of 0xFFFFFFF0) get an ERROR with a
//! SQLSTATE, a message, DETAIL and HINT, against the real server: never XX000,
//! never a Rust backtrace, never a crashed backend (the server log is read for
//! "terminated by signal"). A bad object in a source stops publish with the same
//! error and leaves nothing behind.
//!
//! Without medanon-dicom's pre-scan, dicom-rs zeroed 4.2 GB for the 0xFFFFFFF0
//! length and overflowed the stack at 5,000 levels (SIGABRT: the postmaster
//! restarts every session).

#[path = "dicom/warehouse.rs"]
mod warehouse;

use medanon_dicom::sample;
use medanon_integration::*;
use postgres::error::SqlState;
use warehouse::*;

#[test]
fn hostile_objects_get_an_error_never_a_crash() {
    let (mut su, images) = dicom_warehouse();
    let mut etl = connect_as("it_etl");
    publish_both(&mut etl);
    let person: i64 = su
        .query_one(
            "SELECT person_id FROM medanon.contract_person WHERE contract_id = 'it_da' AND state = 'visible' ORDER BY person_id LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    let good = images[0].1.clone();
    let mut magic_only = vec![0u8; 128];
    magic_only.extend_from_slice(b"DICM");
    let mut huge = good.clone();
    huge.resize(257 << 20, 0);
    let cases: Vec<(&str, Vec<u8>, SqlState)> = vec![
        ("empty", Vec::new(), SqlState::INVALID_BINARY_REPRESENTATION),
        ("not DICOM", b"%PDF-1.7 not an image".to_vec(), SqlState::INVALID_BINARY_REPRESENTATION),
        ("magic only", magic_only, SqlState::INVALID_BINARY_REPRESENTATION),
        ("truncated in the meta group", good[..150].to_vec(), SqlState::INVALID_BINARY_REPRESENTATION),
        ("truncated in the pixels", good[..good.len() / 2].to_vec(), SqlState::INVALID_BINARY_REPRESENTATION),
        ("truncated by one byte", good[..good.len() - 1].to_vec(), SqlState::INVALID_BINARY_REPRESENTATION),
        ("a length of 0xFFFFFFF0", sample::absurd_length(0xFFFF_FFF0), SqlState::INVALID_BINARY_REPRESENTATION),
        ("sequences 5,000 deep", sample::deep(5000), SqlState::PROGRAM_LIMIT_EXCEEDED),
        (
            "a meta element of 774,975,029 bytes (fuzzer)",
            include_bytes!("../crates/medanon-dicom/testdata/meta_length_bomb.dcm").to_vec(),
            SqlState::INVALID_BINARY_REPRESENTATION,
        ),
        (
            "a meta element of 875,703,863 bytes after a foreign tag (fuzzer)",
            include_bytes!("../crates/medanon-dicom/testdata/meta_foreign_tag_bomb.dcm").to_vec(),
            SqlState::INVALID_BINARY_REPRESENTATION,
        ),
        (
            "an item header where dicom-parser asserts a sequence (fuzzer: a panic)",
            include_bytes!("../crates/medanon-dicom/testdata/item_outside_sequence.dcm").to_vec(),
            SqlState::INVALID_BINARY_REPRESENTATION,
        ),
        (
            "a meta SOP Class UID not in ASCII (fuzzer)",
            include_bytes!("../crates/medanon-dicom/testdata/meta_uid_not_ascii.dcm").to_vec(),
            SqlState::INVALID_BINARY_REPRESENTATION,
        ),
        (
            "an SL value of 10 bytes, read out of step after it (fuzzer: 1.4 GB)",
            include_bytes!("../crates/medanon-dicom/testdata/partial_words.dcm").to_vec(),
            SqlState::INVALID_BINARY_REPRESENTATION,
        ),
        (
            "a meta element of VR SQ, 0xFFFF0001 bytes (fuzzer: 4 GB)",
            include_bytes!("../crates/medanon-dicom/testdata/meta_sequence.dcm").to_vec(),
            SqlState::INVALID_BINARY_REPRESENTATION,
        ),
        (
            "delimiters outside a sequence (fuzzer)",
            include_bytes!("../crates/medanon-dicom/testdata/stray_delimiters.dcm").to_vec(),
            SqlState::INVALID_BINARY_REPRESENTATION,
        ),
        ("sequences 33 deep", sample::deep(33), SqlState::PROGRAM_LIMIT_EXCEEDED),
        ("257 MiB", huge, SqlState::PROGRAM_LIMIT_EXCEEDED),
    ];
    for (what, bytes, state) in &cases {
        let e = etl
            .query_one("SELECT medanon.deidentify_dicom($1, 'it_da', $2)", &[bytes, &person])
            .expect_err(what);
        let db = e.as_db_error().unwrap_or_else(|| panic!("{what}: {e}"));
        assert_eq!(db.code(), state, "{what}: {} {:?}", db.message(), db.detail());
        assert!(!db.message().is_empty() && db.detail().is_some() && db.hint().is_some(), "{what}: {db:?}");
        assert_eq!(backtrace_in(&e), None, "{what}");
    }
    // The limit itself is fine, and the backend is alive after all of it.
    let ok: Option<Vec<u8>> = etl.query_one("SELECT medanon.deidentify_dicom($1, 'it_da', $2)", &[&sample::deep(32), &person]).unwrap().get(0);
    assert!(ok.is_some());
    let alive: i32 = etl.query_one("SELECT 1", &[]).expect("the backend survived").get(0);
    assert_eq!(alive, 1);
    let log = std::fs::read_to_string(std::env::var("MEDANON_TEST_LOG").unwrap()).unwrap_or_default();
    assert!(!log.contains("terminated by signal"), "a backend crashed");

    // A bad object in a source: publish stops with its SQLSTATE, and leaves the
    // contract as it was (created, no schema, no ledger entry).
    su.execute("INSERT INTO it_dicom.ct VALUES ($1, 'H1', $2)", &[&person, &sample::deep(5000)]).unwrap();
    etl.batch_execute(
        r#"SELECT medanon.create_contract('{"id": "it_dx", "grantee": "it_lab_da", "purpose": "x",
              "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 2,
              "tables": [{"source": "it_dicom.ct", "columns": {"person_id": "token", "object": "dicom"}}]}')"#,
    )
    .unwrap();
    assert_sqlstate(&mut etl, "SELECT medanon.publish_contract('it_dx')", SqlState::PROGRAM_LIMIT_EXCEEDED);
    let status: String = su.query_one("SELECT status FROM medanon.contract WHERE contract_id = 'it_dx'", &[]).unwrap().get(0);
    assert_eq!(status, "created");
    let schemas: i64 = su.query_one("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'contract_it_dx%'", &[]).unwrap().get(0);
    assert_eq!(schemas, 0);
    // Refresh of a published contract meets the same object the same way.
    assert_sqlstate(&mut etl, "SELECT medanon.refresh_contract('it_da', true)", SqlState::PROGRAM_LIMIT_EXCEEDED);
    su.execute("DELETE FROM it_dicom.ct WHERE object = $1", &[&sample::deep(5000)]).unwrap();
}
