//! Privileges over the wire: who may run keyed functions, who may read the
//! keyring, and whether a key rotation reaches other backends at once.

use medanon_integration::*;
use postgres::error::SqlState;

#[test]
fn outsider_gets_42501_from_every_keyed_function() {
    let _su = fresh_install();
    let mut outsider = connect_as("it_outsider");
    for sql in [
        "SELECT medanon.tokenize('12345', 'patient')",
        "SELECT medanon.shift_date(date '2026-04-01', 'p1', 'c1')",
        "SELECT medanon.shift_date(timestamp '2026-04-01 10:00', 'p1', 'c1')",
        "SELECT medanon.shift_date(timestamptz '2026-04-01 10:00+09', 'p1', 'c1')",
        "SELECT medanon.date_offset('p1', 'c1')",
        "SELECT medanon.rotate_key()",
        "SELECT medanon._install_first_key()",
        "SELECT * FROM medanon.keyring",
        "INSERT INTO medanon.keyring (material) VALUES ('\\x00')",
        "CREATE TABLE medanon.intruder (x int)",
    ] {
        assert_sqlstate(&mut outsider, sql, SqlState::INSUFFICIENT_PRIVILEGE);
    }
    // The functions without a key stay open to everyone.
    let row = outsider
        .query_one("SELECT medanon.generalize_age('1975-03-01', '2026-04-01')::text, medanon.parse_japanese_date('S50.3.1')::text", &[])
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "[50,55)");
    assert_eq!(row.get::<_, String>(1), "1975-03-01");
}

#[test]
fn operator_tokenizes_but_cannot_read_or_rotate_keys() {
    let mut su = fresh_install();
    let mut etl = connect_as("it_etl");
    let token: String = etl.query_one("SELECT medanon.tokenize('12345', 'patient')", &[]).unwrap().get(0);
    assert_eq!(token.len(), 64);
    let su_token: String = su.query_one("SELECT medanon.tokenize('12345', 'patient')", &[]).unwrap().get(0);
    assert_eq!(token, su_token, "one key for every backend");
    assert_sqlstate(&mut etl, "SELECT material FROM medanon.keyring", SqlState::INSUFFICIENT_PRIVILEGE);
    assert_sqlstate(&mut etl, "SELECT medanon.rotate_key()", SqlState::INSUFFICIENT_PRIVILEGE);
    assert_sqlstate(&mut etl, "UPDATE medanon.keyring SET active = false", SqlState::INSUFFICIENT_PRIVILEGE);
}

#[test]
fn rotation_reaches_other_backends_without_reconnecting() {
    let mut su = fresh_install();
    let mut etl = connect_as("it_etl");
    let q = "SELECT medanon.tokenize('12345', 'patient')";
    let before: String = etl.query_one(q, &[]).unwrap().get(0);
    // A rotation that rolls back changes nothing anywhere.
    su.batch_execute("BEGIN; SELECT medanon.rotate_key(); ROLLBACK;").unwrap();
    let still: String = etl.query_one(q, &[]).unwrap().get(0);
    assert_eq!(before, still);
    let id: i32 = su.query_one("SELECT medanon.rotate_key()", &[]).unwrap().get(0);
    let after: String = etl.query_one(q, &[]).unwrap().get(0);
    assert_ne!(before, after, "the cached key in the other backend was not invalidated");
    let etl_id: i32 = etl.query_one("SELECT medanon.active_key_id()", &[]).unwrap().get(0);
    assert_eq!(etl_id, id);
    let su_after: String = su.query_one(q, &[]).unwrap().get(0);
    assert_eq!(after, su_after);
}

#[test]
fn keys_never_reach_the_server_log_or_error_messages() {
    let mut su = fresh_install();
    let keys_hex: Vec<String> = su
        .query("SELECT encode(material, 'hex') FROM medanon.keyring", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(keys_hex.len(), 2, "a pseudonym key and a link key");
    let mut etl = connect_as("it_etl");
    let mut messages = Vec::new();
    for sql in [
        "SELECT medanon.tokenize('x', '')",
        "SELECT medanon.shift_date(date '2026-01-01', '', 'c')",
        "SELECT medanon.shift_date(date '5874897-12-31', 'p', 'c'), medanon.shift_date(date '4714-11-24 BC', 'p', 'c')",
        "SELECT medanon.parse_japanese_date('平成31年5月1日')",
        "SELECT material FROM medanon.keyring",
    ] {
        if let Err(e) = etl.batch_execute(sql) {
            let db = e.as_db_error().expect("server error");
            messages.push(format!("{} {:?} {:?}", db.message(), db.detail(), db.hint()));
        }
    }
    assert!(messages.len() >= 4, "expected errors, got {messages:?}");
    for m in &messages {
        for key_hex in &keys_hex {
            assert!(!m.contains(key_hex.as_str()), "key material in an error: {m}");
        }
    }
    let log_path = std::env::var("MEDANON_TEST_LOG").expect("MEDANON_TEST_LOG");
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(!log.is_empty(), "the server log at {log_path} is empty or missing");
    for key_hex in &keys_hex {
        assert!(!log.to_lowercase().contains(&key_hex[..16]), "key material in the server log");
    }
}

/// The functions PUBLIC may run, as the README lists them between its markers.
fn documented_public_functions() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let start = readme.find("<!-- public-functions:start -->").expect("start marker");
    let end = readme.find("<!-- public-functions:end -->").expect("end marker");
    let mut list: Vec<String> = readme[start..end]
        .lines()
        .map(str::trim)
        .filter(|l| l.contains('(') && !l.starts_with("<!--"))
        // regprocedure writes "f(a,b)"; the README "f(a, b)".
        .map(|l| l.replace(", ", ","))
        .collect();
    list.sort();
    list
}

#[test]
fn public_may_run_exactly_the_documented_functions() {
    let mut su = fresh_install();
    // it_outsider belongs to no role: what it may run is what PUBLIC may run.
    let mut executable = strings(
        &mut su,
        "SELECT regexp_replace(p.oid::regprocedure::text, '^medanon\\.', '')
           FROM pg_proc p
          WHERE p.pronamespace = 'medanon'::regnamespace AND has_function_privilege('it_outsider', p.oid, 'EXECUTE')",
    );
    executable.sort();
    let documented = documented_public_functions();
    assert!(documented.len() >= 20, "the README's list was not found: {documented:?}");
    assert_eq!(executable, documented, "PUBLIC's functions differ from README, \"Who may run what\"");
    // And a function created later in the schema is nobody's until it is granted:
    // the install revoked PUBLIC from every function, not from a list of names.
    let keyed = strings(
        &mut su,
        "SELECT p.proname::text FROM pg_proc p WHERE p.pronamespace = 'medanon'::regnamespace
            AND p.proname IN ('tokenize', 'shift_date', 'date_offset', 'link_patients', 'rotate_key', 'verify_ledger',
                              'create_contract', 'publish_contract')
            AND has_function_privilege('it_outsider', p.oid, 'EXECUTE')",
    );
    assert!(keyed.is_empty(), "{keyed:?}");
}
