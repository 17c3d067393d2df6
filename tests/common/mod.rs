//! Helpers for the integration tests: connections to the test cluster as real
//! roles, and assertions on SQLSTATEs. `scripts/test.sh` starts the cluster and
//! passes its address in MEDANON_TEST_HOST / _PORT / _DB.

use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};
use std::collections::HashMap;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the integration tests through `make test`"))
}

/// A connection as `role` (the test cluster trusts local connections, so real
/// roles log in without passwords; grants are what is being tested).
pub fn connect_as(role: &str) -> Client {
    Config::new()
        .host(&env("MEDANON_TEST_HOST"))
        .port(env("MEDANON_TEST_PORT").parse().expect("port is a number"))
        .dbname(&env("MEDANON_TEST_DB"))
        .user(role)
        .application_name("medanon-integration")
        .connect(NoTls)
        .unwrap_or_else(|e| panic!("connect as {role}: {e}"))
}

pub fn superuser() -> Client {
    connect_as("postgres")
}

/// Run `sql` and return the SQLSTATE it failed with, or `None` if it succeeded.
pub fn sqlstate_of(client: &mut Client, sql: &str) -> Option<SqlState> {
    match client.batch_execute(sql) {
        Ok(()) => None,
        Err(e) => Some(e.code().cloned().unwrap_or_else(|| panic!("{sql}: not a server error: {e}"))),
    }
}

pub fn assert_sqlstate(client: &mut Client, sql: &str, expected: SqlState) {
    assert_eq!(sqlstate_of(client, sql), Some(expected.clone()), "{sql} should fail with {}", expected.code());
}

/// A fresh medanon in the test database, with a login role outside the operator
/// group and one inside it. Each test calls it; the tests run one at a time.
pub fn fresh_install() -> Client {
    let mut su = superuser();
    su.batch_execute(
        "DROP SCHEMA IF EXISTS it_etl_area, it_trap, it_contract, it_bad CASCADE;
         DROP EXTENSION IF EXISTS medanon CASCADE;
         CREATE EXTENSION medanon;
         DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_outsider') THEN CREATE ROLE it_outsider LOGIN; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_etl') THEN CREATE ROLE it_etl LOGIN; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_auditor') THEN CREATE ROLE it_auditor LOGIN; END IF;
         END $$;
         GRANT medanon_operator TO it_etl;
         GRANT medanon_auditor TO it_auditor;",
    )
    .expect("install medanon");
    su
}

/// A PostgreSQL client program (pg_dump, pg_restore) of the server's version.
pub fn pg_program(name: &str) -> std::process::Command {
    let bin = std::env::var("MEDANON_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    let mut cmd = std::process::Command::new(format!("{bin}/{name}"));
    cmd.arg("--host").arg(env("MEDANON_TEST_HOST")).arg("--port").arg(env("MEDANON_TEST_PORT"));
    cmd
}

/// A connection to another database of the test cluster.
pub fn connect_to(dbname: &str, role: &str) -> Client {
    Config::new()
        .host(&env("MEDANON_TEST_HOST"))
        .port(env("MEDANON_TEST_PORT").parse().expect("port is a number"))
        .dbname(dbname)
        .user(role)
        .application_name("medanon-integration")
        .connect(NoTls)
        .unwrap_or_else(|e| panic!("connect to {dbname} as {role}: {e}"))
}

/// What the analysts' queries saw around the commit of an opt-out.
#[derive(Debug)]
pub struct OptOutRace {
    /// Queries in all.
    pub queries: usize,
    /// Queries that finished before the commit began and saw the person.
    pub seen_before: usize,
    /// Queries that started after the commit returned.
    pub after: usize,
    /// Of those, the ones that saw the person: each is a breach of invariant 3.
    pub leaks: usize,
}

/// Runs each probe (a connection, and a query with one text parameter that returns
/// how many rows of the person it sees) in a loop on its own thread, commits
/// `opt_out` as it_etl while they run, and reports what the queries saw.
pub fn race_an_opt_out(probes: Vec<(Client, String, String)>, opt_out: &str) -> OptOutRace {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    // (started, finished, saw the person) for every query.
    let log: Arc<Mutex<Vec<(Instant, Instant, bool)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = probes
        .into_iter()
        .map(|(mut client, sql, person)| {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                let query = client.prepare(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let seen: i64 = client.query_one(&query, &[&person]).unwrap().get(0);
                    log.lock().unwrap().push((started, Instant::now(), seen > 0));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut etl = connect_as("it_etl");
    etl.batch_execute(&format!("BEGIN; {opt_out}; SELECT pg_sleep(0.1);")).unwrap();
    let before_commit = Instant::now();
    etl.batch_execute("COMMIT").unwrap();
    let committed = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().expect("a reader failed");
    }
    let log = log.lock().unwrap();
    let after: Vec<_> = log.iter().filter(|(started, ..)| *started > committed).collect();
    OptOutRace {
        queries: log.len(),
        seen_before: log.iter().filter(|(_, done, seen)| *done < before_commit && *seen).count(),
        after: after.len(),
        leaks: after.iter().filter(|(.., seen)| *seen).count(),
    }
}

/// The assertions of invariant 3 on a race: the person was visible, enough
/// queries ran after the commit to tell, and none of them saw the person.
pub fn assert_opt_out_was_immediate(race: &OptOutRace) {
    assert!(race.seen_before > 0, "the person is visible before the opt-out: {race:?}");
    assert!(race.after > 10, "too few queries after the commit to tell: {race:?}");
    assert_eq!(race.leaks, 0, "queries started after the commit saw the person: {race:?}");
}

/// 60 patients at H1, notified 40 days ago and linked; raw tables in it_clinical
/// registered and classified; contract it_a for it_lab_a (k = 3) and it_b for
/// it_lab_b (k = 2), both published by the ETL login.
pub fn contract_warehouse() -> Client {
    let mut su = superuser();
    su.batch_execute(
        "DROP SCHEMA IF EXISTS it_clinical, contract_it_a, contract_it_b, contract_it_a_data, contract_it_b_data, contract_it_a_snap_1,
             contract_it_c, contract_it_c_data, contract_it_s, contract_it_s_data,
             contract_it_f, contract_it_f_data CASCADE;
         DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_lab_a') THEN CREATE ROLE it_lab_a LOGIN; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_lab_b') THEN CREATE ROLE it_lab_b LOGIN; END IF;
         END $$;",
    )
    .expect("roles");
    let mut su = fresh_install();
    su.batch_execute(
        "CREATE SCHEMA it_clinical;
         CREATE TABLE it_clinical.staging (institution_code text, local_patient_id text, name_kana text,
             birth_date text, sex text, insurer_number text, insured_symbol text, insured_number text);
         INSERT INTO it_clinical.staging
         SELECT 'H1', 'p' || i, 'ﾀﾅｶ ' || chr(12450 + i * 2), (DATE '1950-01-01' + i * 300)::text, (1 + i % 2)::text, '', '', ''
           FROM generate_series(1, 60) i;
         SELECT medanon.register_institution('H1', 'Hospital 1', 'hospital');
         SELECT medanon.record_notification('H1', local_patient_id, now() - interval '40 days') FROM it_clinical.staging;
         GRANT USAGE ON SCHEMA it_clinical TO it_etl;
         GRANT SELECT ON ALL TABLES IN SCHEMA it_clinical TO it_etl;",
    )
    .expect("staging");
    let mut etl = connect_as("it_etl");
    etl.batch_execute("SELECT medanon.link_patients('it_clinical.staging')").expect("link");
    su.batch_execute(
        "CREATE TABLE it_clinical.patient AS
         SELECT l.person_id, s.name_kana AS name, s.birth_date::date AS birth_date, s.sex::smallint AS sex,
                '1' || (l.person_id % 2) || '0-0001' AS postal_code
           FROM it_clinical.staging s JOIN medanon.person_link l USING (institution_code, local_patient_id);
         CREATE TABLE it_clinical.visit AS
         SELECT p.person_id, 'H1'::text AS institution_code, DATE '2024-01-01' + (p.person_id::int * 3 + g * 20) AS visit_date,
                (ARRAY['I10', 'E11'])[1 + g % 2] AS icd10
           FROM it_clinical.patient p, generate_series(1, 4) g;
         GRANT SELECT ON ALL TABLES IN SCHEMA it_clinical TO it_etl;
         SELECT medanon.register_source('it_clinical.patient', 'person_id');
         SELECT medanon.register_source('it_clinical.visit', 'person_id', 'institution_code');
         SELECT medanon.classify('it_clinical.patient', c, cls) FROM (VALUES ('person_id', 'identifier'), ('name', 'identifier'),
             ('birth_date', 'quasi_identifier'), ('sex', 'quasi_identifier'), ('postal_code', 'quasi_identifier')) v(c, cls);
         SELECT medanon.classify('it_clinical.visit', c, cls) FROM (VALUES ('person_id', 'identifier'),
             ('institution_code', 'quasi_identifier'), ('visit_date', 'static'), ('icd10', 'semi_static')) v(c, cls);",
    )
    .expect("sources");
    etl.batch_execute(
        r#"SELECT medanon.create_contract('{"id": "it_a", "grantee": "it_lab_a", "purpose": "drug safety",
              "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 3, "reference_date": "2026-04-01",
              "tables": [{"source": "it_clinical.patient", "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 50}}, "sex": "keep"}},
                         {"source": "it_clinical.visit", "columns": {"person_id": "token", "visit_date": "shift", "icd10": "keep"}}]}');
           SELECT medanon.create_contract('{"id": "it_b", "grantee": "it_lab_b", "purpose": "cohort",
              "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 2,
              "tables": [{"source": "it_clinical.patient", "columns": {"person_id": "token", "sex": "keep"}},
                         {"source": "it_clinical.visit", "columns": {"person_id": "token", "icd10": "keep"}}]}');
           SELECT medanon.publish_contract('it_a');
           SELECT medanon.publish_contract('it_b');"#,
    )
    .expect("publish");
    su
}

/// The first column of every row of `sql`, as text.
pub fn strings(client: &mut Client, sql: &str) -> Vec<String> {
    client.query(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).iter().map(|r| r.get(0)).collect()
}

/// Contract it_s, statistics only, for it_lab_s (k = 2, ages in 10-year bands and
/// sex over the 60 patients of `contract_warehouse`: classes of about 6 persons,
/// all under the default floor of 10), published by the ETL login.
pub fn statistics_contract(su: &mut Client) {
    su.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_lab_s') THEN CREATE ROLE it_lab_s LOGIN; END IF;
         END $$;",
    )
    .expect("role it_lab_s");
    let mut etl = connect_as("it_etl");
    etl.batch_execute(
        r#"SELECT medanon.create_contract('{"id": "it_s", "grantee": "it_lab_s", "purpose": "trial feasibility counts",
              "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "statistics", "k": 2, "reference_date": "2026-04-01",
              "tables": [{"source": "it_clinical.patient", "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 10}}, "sex": "keep"}},
                         {"source": "it_clinical.visit", "columns": {"person_id": "token", "icd10": "keep"}}]}');
           SELECT medanon.publish_contract('it_s');"#,
    )
    .expect("statistics contract");
}

/// Waits (up to 10 s) until another session running a statement that contains
/// `marker` waits on a lock or sleeps between lock attempts; panics otherwise.
pub fn wait_until_blocked(observer: &mut Client, marker: &str) {
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(10) {
        let waiting: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND state = 'active'
                    AND strpos(query, $1) > 0 AND (wait_event_type = 'Lock' OR wait_event = 'PgSleep')",
                &[&marker],
            )
            .expect("pg_stat_activity")
            .get(0);
        if waiting > 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("no session running {marker} came to wait on a lock");
}

/// The first line of `text` that belongs to a Rust backtrace or names a Rust source
/// location: frames (`  12: std::panicking::…`), their `at src/….rs:12:5` lines, or
/// the names of Rust's and pgrx's unwinding machinery. None if there is none.
pub fn backtrace_line(text: &str) -> Option<String> {
    const MARKERS: &[&str] = &[
        "stack backtrace",
        "std::panicking",
        "std::panic::",
        "core::panicking",
        "rust_begin_unwind",
        "__rust_",
        "pgrx::",
        "pgrx_pg_sys::",
        "{{closure}}",
        "at /rustc/",
        "at src/",
        "at ./src/",
        ".rs:",
    ];
    text.lines()
        .find(|line| {
            let trimmed = line.trim_start();
            let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
            let frame = line.len() > trimmed.len() && digits > 0 && trimmed[digits..].starts_with(": ");
            frame || MARKERS.iter().any(|m| line.contains(m))
        })
        .map(str::to_owned)
}

/// Where a failed statement's error shows a Rust backtrace to the client, if it
/// does: which field (message, DETAIL, HINT, CONTEXT) and the offending line.
pub fn backtrace_in(e: &postgres::Error) -> Option<String> {
    let db = e.as_db_error()?;
    let fields = [("message", Some(db.message())), ("DETAIL", db.detail()), ("HINT", db.hint()), ("CONTEXT", db.where_())];
    fields.into_iter().find_map(|(field, text)| backtrace_line(text?).map(|line| format!("{field}: {line:.160}")))
}

/// Whether the server runs with a Rust backtrace setting that would make std
/// capture backtraces (RUST_BACKTRACE or RUST_LIB_BACKTRACE, not "0"), read from the
/// postmaster's environment, which every backend inherits (a backend's own
/// /proc/self/environ is overwritten by its process title). `scripts/test.sh` starts
/// the test cluster so, because a DBA who debugs a crash may too: a test of "no
/// backtrace reaches a client" means something only then.
pub fn server_would_capture_rust_backtraces(su: &mut Client) -> bool {
    let environ: Vec<u8> = su
        .query_one(
            "SELECT pg_catalog.pg_read_binary_file(
                 '/proc/' || pg_catalog.split_part(pg_catalog.pg_read_file('postmaster.pid'), E'\\n', 1) || '/environ')",
            &[],
        )
        .expect("read the postmaster's environment (superuser)")
        .get(0);
    let vars: HashMap<String, String> = environ
        .split(|b| *b == 0)
        .filter_map(|kv| String::from_utf8_lossy(kv).split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    match vars.get("RUST_LIB_BACKTRACE").or(vars.get("RUST_BACKTRACE")) {
        Some(value) => value != "0",
        None => false,
    }
}
