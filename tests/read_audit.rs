//! Traceability of analyst reads (トレーサビリティ, issue 19): with pgaudit loaded,
//! every SELECT by a grantee on its contract's views and snapshots reaches the
//! server log as a pgaudit OBJECT line, with the role (log_line_prefix), the view
//! and the statement. Without pgaudit, medanon works as before and says that reads
//! are not audited.
//!
//! `make test` runs this file twice: in tier 4 on the plain test cluster, and in
//! tier 5 on the same cluster restarted with `shared_preload_libraries =
//! 'pgaudit,pg_cron'`, `pgaudit.role = 'medanon_read_audit'` and `%u` in
//! `log_line_prefix` (scripts/test.sh), with MEDANON_TEST_PRELOAD naming the
//! libraries. The test first checks that the server matches MEDANON_TEST_PRELOAD,
//! so neither run can pass on the wrong cluster.

use medanon_integration::*;
use postgres::error::SqlState;
use postgres::Client;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn expected_preload() -> Vec<String> {
    let listed = std::env::var("MEDANON_TEST_PRELOAD").unwrap_or_default();
    listed.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

fn server_preload(su: &mut Client) -> Vec<String> {
    let listed: String = su.query_one("SELECT current_setting('shared_preload_libraries')", &[]).unwrap().get(0);
    listed.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

fn bool_of(client: &mut Client, sql: &str) -> bool {
    client.query_one(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e:?}")).get(0)
}

/// A string no earlier run wrote to the server log.
fn marker(what: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("medanon-audit-{what}-{nanos}")
}

/// The server log's lines that contain `needle`, waiting up to 5 s for at least
/// `at_least` of them (the log is written by another process).
fn log_lines(needle: &str, at_least: usize) -> Vec<String> {
    let path = std::env::var("MEDANON_TEST_LOG").expect("MEDANON_TEST_LOG");
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read the server log {path}: {e}"));
        let found: Vec<String> = log.lines().filter(|l| l.contains(needle)).map(String::from).collect();
        if found.len() >= at_least || started.elapsed() > Duration::from_secs(5) {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The role and the statement of a pgaudit OBJECT line for `relation`, as the
/// grantee's read of it wrote it: the one line holding `marker`.
fn audit_line_of(marker: &str, relation: &str) -> String {
    let lines = log_lines(marker, 1);
    let audit: Vec<&String> = lines.iter().filter(|l| l.contains("AUDIT: OBJECT,") && l.contains(relation)).collect();
    assert_eq!(audit.len(), 1, "one pgaudit OBJECT line for {relation} with {marker}; the log has: {lines:#?}");
    audit[0].clone()
}

#[test]
fn reads_are_audited_exactly_when_pgaudit_is_loaded() {
    let mut su = contract_warehouse();
    let preload = expected_preload();
    assert_eq!(server_preload(&mut su), preload, "the cluster must load what MEDANON_TEST_PRELOAD says");
    if preload.iter().any(|l| l == "pgaudit") {
        with_pgaudit(su);
    } else {
        without_pgaudit(su);
    }
}

/// Today's behaviour: nothing granted to medanon_read_audit, no audit line, and
/// reads_audited() says so.
fn without_pgaudit(mut su: Client) {
    let mut etl = connect_as("it_etl");
    assert!(!bool_of(&mut etl, "SELECT medanon.reads_audited()"), "reads are not audited without pgaudit");
    assert!(!bool_of(&mut etl, "SELECT medanon.reads_audited('it_a')"), "nor are a contract's");
    assert_sqlstate(&mut etl, "SELECT medanon.reads_audited('no_such_contract')", SqlState::UNDEFINED_OBJECT);
    let granted: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname LIKE 'contract\\_it\\_%' AND has_table_privilege('medanon_read_audit', c.oid, 'SELECT')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(granted, 0, "publish grants nothing to medanon_read_audit without pgaudit");
    let mark = marker("off");
    let mut lab_a = connect_as("it_lab_a");
    let n: i64 = lab_a.query_one(&format!("SELECT count(*) FROM contract_it_a.patient WHERE '{mark}' <> ''"), &[]).unwrap().get(0);
    assert!(n > 0, "the grantee reads its view as before");
    assert!(log_lines(&mark, 1).is_empty(), "no server log line shows the read without pgaudit");
}

fn with_pgaudit(mut su: Client) {
    let mut etl = connect_as("it_etl");
    assert!(bool_of(&mut etl, "SELECT medanon.reads_audited()"), "pgaudit loaded, pgaudit.role set, %u in the prefix");
    assert!(bool_of(&mut etl, "SELECT medanon.reads_audited('it_a')"), "contract it_a's views are audited");

    // A grantee's read of its view: one OBJECT line with role, view and statement.
    let mark = marker("view");
    let mut lab_a = connect_as("it_lab_a");
    let sql = format!("SELECT count(*) FROM contract_it_a.patient WHERE '{mark}' <> ''");
    let n: i64 = lab_a.query_one(&sql, &[]).unwrap().get(0);
    assert!(n > 0);
    let line = audit_line_of(&mark, "VIEW,contract_it_a.patient");
    assert!(line.contains(" it_lab_a@"), "the line names the role: {line}");
    assert!(line.contains("READ,SELECT,VIEW,contract_it_a.patient,"), "the line names the view: {line}");
    assert!(line.contains(&sql), "the line holds the statement: {line}");

    // The other grantee, on its own contract, likewise.
    let mark = marker("other");
    let mut lab_b = connect_as("it_lab_b");
    lab_b.batch_execute(&format!("SELECT sex FROM contract_it_b.patient WHERE '{mark}' <> ''")).unwrap();
    assert!(audit_line_of(&mark, "VIEW,contract_it_b.patient").contains(" it_lab_b@"));

    // safe_counts reads the view for the grantee: pgaudit logs that read too, in
    // the grantee's session.
    let needle = "READ,SELECT,VIEW,contract_it_a.patient,";
    let of_lab_a = |lines: Vec<String>| lines.into_iter().filter(|l| l.contains(" it_lab_a@")).count();
    let before = of_lab_a(log_lines(needle, 0));
    lab_a.batch_execute("SELECT * FROM medanon.safe_counts('it_a', 'patient', ARRAY['sex'], 2)").unwrap();
    let started = Instant::now();
    while of_lab_a(log_lines(needle, 0)) == before && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(of_lab_a(log_lines(needle, 0)) > before, "safe_counts' read of the view is an audit line of it_lab_a");

    // Object auditing, not session auditing: a query on no contract view is not logged.
    let mark = marker("unrelated");
    lab_a.batch_execute(&format!("SELECT '{mark}'")).unwrap();
    assert!(log_lines(&mark, 1).is_empty(), "a statement on no contract view is not an audit line");

    // A refresh replaces the data tables and keeps the views audited.
    etl.batch_execute("SELECT medanon.refresh_contract('it_a')").unwrap();
    let mark = marker("refresh");
    lab_a.batch_execute(&format!("SELECT count(*) FROM contract_it_a.visit WHERE '{mark}' <> ''")).unwrap();
    assert!(audit_line_of(&mark, "VIEW,contract_it_a.visit").contains(" it_lab_a@"));

    // A snapshot's tables are audited from its release on.
    let snap: String = etl.query_one("SELECT medanon.release_snapshot('it_a')", &[]).unwrap().get(0);
    assert!(bool_of(&mut etl, "SELECT medanon.reads_audited('it_a')"), "the snapshot is audited too");
    let mark = marker("snapshot");
    lab_a.batch_execute(&format!("SELECT count(*) FROM {snap}.patient WHERE '{mark}' <> ''")).unwrap();
    assert!(audit_line_of(&mark, &format!("TABLE,{snap}.patient")).contains(" it_lab_a@"));

    // Nobody reads through the audit role: it holds SELECT on the views, not USAGE
    // on their schemas.
    su.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_audit_member') THEN CREATE ROLE it_audit_member LOGIN; END IF;
         END $$;
         GRANT medanon_read_audit TO it_audit_member;",
    )
    .unwrap();
    let mut member = connect_as("it_audit_member");
    assert_sqlstate(&mut member, "SELECT * FROM contract_it_a.patient", SqlState::INSUFFICIENT_PRIVILEGE);
    assert_sqlstate(&mut member, &format!("SELECT * FROM {snap}.patient"), SqlState::INSUFFICIENT_PRIVILEGE);
    su.batch_execute("REVOKE medanon_read_audit FROM it_audit_member").unwrap();

    // Neither the grantee nor the operator can turn the auditing off for itself.
    assert_sqlstate(&mut lab_a, "SET pgaudit.role = ''", SqlState::INSUFFICIENT_PRIVILEGE);
    assert_sqlstate(&mut lab_a, "SET pgaudit.log_level = 'debug5'", SqlState::INSUFFICIENT_PRIVILEGE);
    assert_sqlstate(&mut etl, "SET pgaudit.role = ''", SqlState::INSUFFICIENT_PRIVILEGE);

    // reads_audited() follows the settings a superuser can change.
    su.batch_execute("SET pgaudit.role = ''").unwrap();
    assert!(!bool_of(&mut su, "SELECT medanon.reads_audited()"), "no audit role, no audit");
    su.batch_execute("SET pgaudit.role = 'it_outsider'").unwrap();
    assert!(!bool_of(&mut su, "SELECT medanon.reads_audited()"), "an audit role without medanon_read_audit's privileges");
    su.batch_execute("GRANT medanon_read_audit TO it_outsider").unwrap();
    assert!(bool_of(&mut su, "SELECT medanon.reads_audited()"), "a cluster's own audit role that has medanon_read_audit");
    su.batch_execute("REVOKE medanon_read_audit FROM it_outsider; RESET pgaudit.role; SET pgaudit.log_level = 'notice'").unwrap();
    assert!(!bool_of(&mut su, "SELECT medanon.reads_audited()"), "a level log_min_messages may filter out");
    su.batch_execute("RESET pgaudit.log_level").unwrap();
    assert!(bool_of(&mut su, "SELECT medanon.reads_audited('it_a')"));
    // A per-role setting for the grantee turns it off in the grantee's sessions.
    su.batch_execute("ALTER ROLE it_lab_a SET pgaudit.role = ''").unwrap();
    assert!(!bool_of(&mut etl, "SELECT medanon.reads_audited('it_a')"), "the grantee's own pgaudit.role is empty");
    assert!(bool_of(&mut etl, "SELECT medanon.reads_audited('it_b')"), "another grantee is still audited");
    su.batch_execute("ALTER ROLE it_lab_a RESET pgaudit.role").unwrap();
    assert!(bool_of(&mut etl, "SELECT medanon.reads_audited('it_a')"));
    // A view not granted to the audit role (as for a contract published before
    // pgaudit was loaded) makes the contract unaudited until its next refresh.
    su.batch_execute("REVOKE SELECT ON contract_it_b.visit FROM medanon_read_audit").unwrap();
    assert!(!bool_of(&mut etl, "SELECT medanon.reads_audited('it_b')"), "a view without the grant");
    etl.batch_execute("SELECT medanon.refresh_contract('it_b')").unwrap();
    assert!(bool_of(&mut etl, "SELECT medanon.reads_audited('it_b')"), "refresh grants it again");
    assert_sqlstate(&mut etl, "SELECT medanon.reads_audited('no_such_contract')", SqlState::UNDEFINED_OBJECT);
}
