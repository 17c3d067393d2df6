//! Scheduled expiry (issue 19): `medanon.schedule_expiry()` puts
//! `expire_contracts()` in pg_cron in one call, when pg_cron is loaded; without it,
//! it says what is missing and how to use the system's cron instead.
//!
//! Like tests/read_audit.rs, `make test` runs this on the plain test cluster (tier 4)
//! and on the cluster restarted with pg_cron loaded and `cron.database_name` set to
//! the test database (tier 5), as MEDANON_TEST_PRELOAD says; the test checks that
//! the server matches first.

use medanon_integration::*;
use postgres::error::SqlState;
use postgres::Client;
use std::time::{Duration, Instant};

fn loads_pg_cron(su: &mut Client) -> bool {
    let expected = std::env::var("MEDANON_TEST_PRELOAD").unwrap_or_default();
    let expected = expected.split(',').any(|l| l.trim() == "pg_cron");
    let listed: String = su.query_one("SELECT current_setting('shared_preload_libraries')", &[]).unwrap().get(0);
    let loaded = listed.split(',').any(|l| l.trim() == "pg_cron");
    assert_eq!(loaded, expected, "the cluster must load what MEDANON_TEST_PRELOAD says (it loads \"{listed}\")");
    loaded
}

#[test]
fn expiry_is_scheduled_in_one_call_exactly_when_pg_cron_is_loaded() {
    let mut su = contract_warehouse();
    if loads_pg_cron(&mut su) {
        with_pg_cron(su);
    } else {
        without_pg_cron(su);
    }
}

fn without_pg_cron(mut su: Client) {
    // The superuser is told what is missing; the operator, who may not read
    // pg_cron's settings, what a superuser must do. Both get the other way.
    let mut etl = connect_as("it_etl");
    let db: String = su.query_one("SELECT current_database()", &[]).unwrap().get(0);
    let not_installed = format!("extension pg_cron is not installed in database {db}");
    for (client, message) in [(&mut su, "pg_cron is not loaded"), (&mut etl, not_installed.as_str())] {
        for sql in ["SELECT medanon.schedule_expiry()", "SELECT medanon.unschedule_expiry()"] {
            let e = client.batch_execute(sql).expect_err("no pg_cron");
            let db = e.as_db_error().expect("a server error");
            assert_eq!(db.code(), &SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE, "{sql}: {db:?}");
            assert_eq!(db.message(), message);
            assert!(db.hint().unwrap_or_default().contains("system's cron"), "the hint gives the other way: {db:?}");
        }
    }
    // The other way the README shows: the system's cron runs this with psql.
    let closed = strings(&mut etl, "SELECT medanon.expire_contracts()");
    assert!(closed.is_empty(), "no contract of the warehouse has expired: {closed:?}");
}

fn job(su: &mut Client) -> Vec<(i64, String, String, String, String)> {
    su.query(
        "SELECT jobid, schedule, command, username, database FROM cron.job WHERE jobname = 'medanon_expire_contracts' ORDER BY jobid",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
    .collect()
}

fn with_pg_cron(mut su: Client) {
    let db: String = su.query_one("SELECT current_database()", &[]).unwrap().get(0);
    su.batch_execute(
        "SET client_min_messages = warning;
         CREATE EXTENSION IF NOT EXISTS pg_cron;
         SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'medanon_expire_contracts';
         REVOKE USAGE ON SCHEMA cron FROM medanon_operator;",
    )
    .unwrap();

    // The operator without pg_cron's USAGE is told so; the analyst may not call it.
    let mut etl = connect_as("it_etl");
    assert_sqlstate(&mut etl, "SELECT medanon.schedule_expiry()", SqlState::INSUFFICIENT_PRIVILEGE);
    let mut lab_a = connect_as("it_lab_a");
    assert_sqlstate(&mut lab_a, "SELECT medanon.schedule_expiry()", SqlState::INSUFFICIENT_PRIVILEGE);

    // One call, as the DBA; again with another schedule replaces it.
    let id: i64 = su.query_one("SELECT medanon.schedule_expiry()", &[]).unwrap().get(0);
    assert_eq!(
        job(&mut su),
        vec![(id, "5 15 * * *".into(), "SELECT medanon.expire_contracts()".into(), "postgres".into(), db.clone())]
    );
    let again: i64 = su.query_one("SELECT medanon.schedule_expiry('0 3 * * *')", &[]).unwrap().get(0);
    assert_eq!(again, id, "scheduling again keeps one job");
    assert_eq!(job(&mut su).iter().map(|j| j.1.as_str()).collect::<Vec<_>>(), ["0 3 * * *"]);
    assert!(sqlstate_of(&mut su, "SELECT medanon.schedule_expiry('every day')").is_some(), "pg_cron refuses a bad schedule");
    assert_sqlstate(&mut su, "SELECT medanon.schedule_expiry(NULL)", SqlState::NULL_VALUE_NOT_ALLOWED);
    assert!(su.query_one("SELECT medanon.unschedule_expiry()", &[]).unwrap().get::<_, bool>(0));
    assert!(!su.query_one("SELECT medanon.unschedule_expiry()", &[]).unwrap().get::<_, bool>(0), "nothing left");
    assert!(job(&mut su).is_empty());

    // pg_cron runs it: contract it_b ends, as if its last day had passed; the
    // operator, granted pg_cron's USAGE, schedules the job every minute, and the
    // job closes it_b as that operator.
    su.batch_execute(
        "UPDATE medanon.contract SET expires_on = medanon.contract_today() - 1 WHERE contract_id = 'it_b';
         GRANT USAGE ON SCHEMA cron TO medanon_operator;",
    )
    .unwrap();
    let id: i64 = etl.query_one("SELECT medanon.schedule_expiry('* * * * *')", &[]).unwrap().get(0);
    let started = Instant::now();
    let status = loop {
        let status: String =
            su.query_one("SELECT status FROM medanon.contract WHERE contract_id = 'it_b'", &[]).unwrap().get(0);
        if status != "published" || started.elapsed() > Duration::from_secs(80) {
            break status;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(status, "expired", "pg_cron ran expire_contracts within 80 s");
    let run: (String, String) = su
        .query_one("SELECT d.status, d.username FROM cron.job_run_details d WHERE d.jobid = $1
                     ORDER BY runid LIMIT 1", &[&id])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(run, ("succeeded".into(), "it_etl".into()));
    let recorded_by: String = su
        .query_one("SELECT recorded_by::text FROM medanon.provision_ledger WHERE contract_id = 'it_b' AND event = 'expire'", &[])
        .unwrap()
        .get(0);
    assert_eq!(recorded_by, "it_etl", "the ledger names the role that scheduled the job");
    let it_a: String = su.query_one("SELECT status FROM medanon.contract WHERE contract_id = 'it_a'", &[]).unwrap().get(0);
    assert_eq!(it_a, "published", "a contract that has not expired stays");
    assert!(etl.query_one("SELECT medanon.unschedule_expiry()", &[]).unwrap().get::<_, bool>(0));
    su.batch_execute("REVOKE USAGE ON SCHEMA cron FROM medanon_operator").unwrap();
}
