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
