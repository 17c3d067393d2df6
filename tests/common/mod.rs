//! Helpers for the integration tests: connections to the test cluster as real
//! roles, and assertions on SQLSTATEs. `scripts/test.sh` starts the cluster and
//! passes its address in MEDANON_TEST_HOST / _PORT / _DB.

use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};

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
         END $$;
         GRANT medanon_operator TO it_etl;",
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
