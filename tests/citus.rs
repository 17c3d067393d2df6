//! medanon on a Citus cluster (a coordinator and two workers), as real roles.
//!
//! These tests need the Citus tier: `make test-citus` (scripts/test-citus.sh) starts
//! the cluster, points MEDANON_TEST_* at the coordinator and MEDANON_CITUS_WORKER_PORTS
//! at the workers, and runs them with `--ignored`. In `make test` they are ignored.

use medanon_integration::*;
use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};
use std::sync::{Arc, Mutex};

const NEEDS_CITUS: &str = "needs the Citus tier: make test-citus";

fn worker_ports() -> Vec<u16> {
    std::env::var("MEDANON_CITUS_WORKER_PORTS")
        .expect("MEDANON_CITUS_WORKER_PORTS is not set: run these tests through `make test-citus`")
        .split(',')
        .map(|p| p.parse().expect("a port"))
        .collect()
}

fn config(port: u16, role: &str) -> Config {
    let mut c = Config::new();
    c.host(&std::env::var("MEDANON_TEST_HOST").expect("MEDANON_TEST_HOST"))
        .port(port)
        .dbname(&std::env::var("MEDANON_TEST_DB").expect("MEDANON_TEST_DB"))
        .user(role)
        .application_name("medanon-integration");
    c
}

fn coordinator_port() -> u16 {
    std::env::var("MEDANON_TEST_PORT").expect("MEDANON_TEST_PORT").parse().expect("a port")
}

/// A connection to a worker node, as `role`.
fn worker(i: usize, role: &str) -> Client {
    let port = worker_ports()[i];
    config(port, role).connect(NoTls).unwrap_or_else(|e| panic!("connect to worker {port} as {role}: {e}"))
}

/// A connection to the coordinator as `role` that keeps every WARNING it receives.
fn watched(role: &str) -> (Client, Arc<Mutex<Vec<String>>>) {
    let warnings: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = warnings.clone();
    let mut c = config(coordinator_port(), role);
    c.notice_callback(move |n| {
        if n.severity() == "WARNING" {
            sink.lock().unwrap().push(format!("{}: {}", n.message(), n.detail().unwrap_or("")));
        }
    });
    (c.connect(NoTls).unwrap_or_else(|e| panic!("connect as {role}: {e}")), warnings)
}

fn one<T: for<'a> postgres::types::FromSql<'a>>(client: &mut Client, sql: &str) -> T {
    client.query_one(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
}

fn error_of(client: &mut Client, sql: &str) -> postgres::Error {
    match client.batch_execute(sql) {
        Ok(()) => panic!("{sql} should fail"),
        Err(e) => e,
    }
}

/// The check values of the active keys of one node.
fn check_values(client: &mut Client) -> Vec<String> {
    strings(client, "SELECT purpose || ':' || key_id || ':' || check_value FROM medanon.key_check_values() ORDER BY purpose")
}

/// A fresh medanon on the coordinator (Citus propagates CREATE EXTENSION, so every
/// worker makes keys of its own) and a distributed table of 200,000 values.
fn fresh_cluster() -> Client {
    let mut su = fresh_install();
    su.batch_execute(
        "DROP TABLE IF EXISTS it_dist, it_local, it_pushed;
         CREATE TABLE it_dist (id bigint PRIMARY KEY, v text, d date);
         SELECT create_distributed_table('it_dist', 'id');
         INSERT INTO it_dist SELECT i, 'v' || i, DATE '2020-01-01' + (i % 1000) FROM generate_series(1, 200000) i;
         GRANT SELECT ON it_dist TO it_etl;",
    )
    .expect("a distributed table");
    su
}

/// Every row's token and shifted date computed where the row lives (pushed down to
/// the workers) and on the coordinator (a local copy), compared; returns how many
/// rows agree and how many there are.
fn agreeing_rows(etl: &mut Client) -> (i64, i64) {
    etl.batch_execute(
        "DROP TABLE IF EXISTS pg_temp.pushed, pg_temp.here;
         CREATE TEMP TABLE pushed AS
           SELECT id, medanon.tokenize(v, 'x') AS t, medanon.shift_date(d, v, 'x') AS s FROM it_dist;
         CREATE TEMP TABLE here AS SELECT id, v, d FROM it_dist;
         ALTER TABLE here ADD COLUMN t text, ADD COLUMN s date;
         UPDATE here SET t = medanon.tokenize(v, 'x'), s = medanon.shift_date(d, v, 'x');",
    )
    .expect("tokens on the workers and on the coordinator");
    let agree: i64 = one(etl, "SELECT count(*) FROM pushed p JOIN here h USING (id) WHERE p.t = h.t AND p.s = h.s");
    let all: i64 = one(etl, "SELECT count(*) FROM here");
    (agree, all)
}

#[test]
#[ignore = "needs the Citus tier: make test-citus"]
fn one_key_set_for_the_whole_cluster() {
    let _ = NEEDS_CITUS;
    let mut su = fresh_cluster();
    let mut etl = connect_as("it_etl");

    // Before the keys are copied, a worker refuses rather than answer with its own.
    let e = error_of(&mut etl, "SELECT medanon.tokenize(v, 'x') FROM it_dist");
    let db = e.as_db_error().expect("a server error");
    assert_eq!(db.code(), &SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE, "{e}");
    assert!(db.message().contains("not the coordinator's"), "{e}");
    assert!(db.hint().unwrap_or("").contains("citus_sync_keys"), "{e}");
    assert_eq!(backtrace_in(&e), None);

    let workers: i64 = one(&mut su, "SELECT medanon.citus_sync_keys()");
    assert_eq!(workers, 2);
    let coordinator_kcv = check_values(&mut etl);
    assert_eq!(coordinator_kcv.len(), 2);
    for i in 0..2 {
        assert_eq!(check_values(&mut worker(i, "it_etl")), coordinator_kcv, "worker {i} holds the coordinator's keys");
    }

    // Pushed down or computed on the coordinator, every row agrees.
    let (agree, all) = agreeing_rows(&mut etl);
    assert_eq!((agree, all), (200_000, 200_000));
    // Another plan shape: a distinct count is finished on the coordinator, and a
    // filter against the coordinator's tokens runs on the workers.
    let distinct: i64 = one(&mut etl, "SELECT count(DISTINCT medanon.tokenize(v, 'x')) FROM it_dist");
    assert_eq!(distinct, 200_000);
    let matched: i64 = one(&mut etl, "SELECT count(*) FROM it_dist WHERE medanon.tokenize(v, 'x') IN (SELECT t FROM pg_temp.here)");
    assert_eq!(matched, 200_000);
    // A worker asked directly gives the coordinator's token.
    let here: String = one(&mut etl, "SELECT medanon.tokenize('v5', 'x')");
    for i in 0..2 {
        let there: String = one(&mut worker(i, "it_etl"), "SELECT medanon.tokenize('v5', 'x')");
        assert_eq!(there, here, "worker {i}");
    }

    // A rotation that rolls back changes no node.
    su.batch_execute("BEGIN; SELECT medanon.rotate_key(); ROLLBACK;").unwrap();
    for i in 0..2 {
        assert_eq!(check_values(&mut worker(i, "it_etl")), coordinator_kcv, "worker {i} after a rolled-back rotation");
    }

    // rotate_key on the coordinator rotates every node, and every node's cache
    // follows: the workers' pooled backends computed tokens above.
    let new_id: i32 = one(&mut su, "SELECT medanon.rotate_key()");
    let rotated = check_values(&mut etl);
    assert_ne!(rotated, coordinator_kcv);
    assert!(rotated.iter().any(|kcv| kcv.starts_with(&format!("pseudonym:{new_id}:"))), "{rotated:?}");
    for i in 0..2 {
        assert_eq!(check_values(&mut worker(i, "it_etl")), rotated, "worker {i} after rotate_key");
    }
    let after: String = one(&mut etl, "SELECT medanon.tokenize('v5', 'x')");
    assert_ne!(after, here);
    let pushed: String = one(&mut etl, "SELECT medanon.tokenize(v, 'x') FROM it_dist WHERE id = 5");
    assert_eq!(pushed, after);
    let (agree, all) = agreeing_rows(&mut etl);
    assert_eq!((agree, all), (200_000, 200_000));

    // Keys are the coordinator's business.
    let mut w0 = worker(0, "postgres");
    let e = error_of(&mut w0, "SELECT medanon.rotate_key()");
    assert_eq!(e.code(), Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE), "{e}");

    // A worker whose key no longer matches its check value refuses: the pushed-down
    // query fails with the worker's error instead of giving other tokens. (The
    // ALTER TABLE is only there to make the worker's backends reload their keys, as
    // a restart would.)
    w0.batch_execute(
        "UPDATE medanon.keyring SET material = pg_catalog.sha256(material) WHERE active AND purpose = 'pseudonym';
         ALTER TABLE medanon.keyring SET (fillfactor = 100);",
    )
    .unwrap();
    let e = error_of(&mut etl, "SELECT count(*) FROM it_dist WHERE medanon.tokenize(v, 'x') IS NOT NULL");
    let db = e.as_db_error().expect("a server error");
    assert_eq!(db.code(), &SqlState::DATA_CORRUPTED, "{e}");
    assert!(db.message().contains("does not match its check value"), "{e}");
    assert_eq!(backtrace_in(&e), None);
    // citus_sync_keys mends it.
    let _: i64 = one(&mut su, "SELECT medanon.citus_sync_keys()");
    let (agree, all) = agreeing_rows(&mut etl);
    assert_eq!((agree, all), (200_000, 200_000));
}

/// Distributed `patient` and `visit` sources, linked persons, and contract it_a for
/// it_lab_a published by the ETL login; returns the superuser's connection.
fn distributed_warehouse() -> Client {
    let mut su = superuser();
    su.batch_execute(
        "DROP SCHEMA IF EXISTS it_clinical, contract_it_a, contract_it_a_data, contract_it_a_snap_1, contract_it_z, contract_it_z_data CASCADE;
         DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_lab_a') THEN CREATE ROLE it_lab_a LOGIN; END IF;
         END $$;",
    )
    .expect("roles");
    let mut su = fresh_install();
    let _: i64 = one(&mut su, "SELECT medanon.citus_sync_keys()");
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
    let (mut etl, warnings) = watched("it_etl");
    etl.batch_execute("SELECT medanon.link_patients('it_clinical.staging')").expect("link");
    assert_eq!(*warnings.lock().unwrap(), Vec::<String>::new(), "link_patients warns on Citus");
    su.batch_execute(
        "SET client_min_messages = warning;
         CREATE TABLE it_clinical.patient (person_id bigint, name text, birth_date date, sex smallint, postal_code text);
         CREATE TABLE it_clinical.visit (person_id bigint, institution_code text, visit_date date, icd10 text);
         SELECT create_distributed_table('it_clinical.patient', 'person_id');
         SELECT create_distributed_table('it_clinical.visit', 'person_id', colocate_with => 'it_clinical.patient');
         INSERT INTO it_clinical.patient
         SELECT l.person_id, s.name_kana, s.birth_date::date, s.sex::smallint, '1' || (l.person_id % 2) || '0-0001'
           FROM it_clinical.staging s JOIN medanon.person_link l USING (institution_code, local_patient_id);
         INSERT INTO it_clinical.visit
         SELECT p.person_id, 'H1', DATE '2024-01-01' + (p.person_id::int * 3 + g * 20), (ARRAY['I10', 'E11'])[1 + g % 2]
           FROM (SELECT person_id FROM medanon.person_link) p, generate_series(1, 4) g;
         GRANT SELECT ON ALL TABLES IN SCHEMA it_clinical TO it_etl;
         SELECT medanon.register_source('it_clinical.patient', 'person_id');
         SELECT medanon.register_source('it_clinical.visit', 'person_id', 'institution_code');
         SELECT medanon.classify('it_clinical.patient', c, cls) FROM (VALUES ('person_id', 'identifier'), ('name', 'identifier'),
             ('birth_date', 'quasi_identifier'), ('sex', 'quasi_identifier'), ('postal_code', 'quasi_identifier')) v(c, cls);
         SELECT medanon.classify('it_clinical.visit', c, cls) FROM (VALUES ('person_id', 'identifier'),
             ('institution_code', 'quasi_identifier'), ('visit_date', 'static'), ('icd10', 'semi_static')) v(c, cls);
         RESET client_min_messages;",
    )
    .expect("distributed sources");
    etl.batch_execute(
        r#"SELECT medanon.create_contract('{"id": "it_a", "grantee": "it_lab_a", "purpose": "drug safety",
              "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 3, "reference_date": "2026-04-01",
              "tables": [{"source": "it_clinical.patient", "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 50}}, "sex": "keep"}},
                         {"source": "it_clinical.visit", "columns": {"person_id": "token", "visit_date": "shift", "icd10": "keep"}}]}');
           SELECT medanon.publish_contract('it_a');"#,
    )
    .expect("publish");
    assert_eq!(*warnings.lock().unwrap(), Vec::<String>::new(), "publish_contract warns on Citus");
    su
}

/// The contract's data tables that Citus knows, with their colocation groups.
fn distributed_data_tables(su: &mut Client) -> Vec<(String, i32)> {
    su.query(
        "SELECT logicalrelid::text, colocationid FROM pg_dist_partition
          WHERE logicalrelid::text LIKE 'contract\\_it\\_a%' ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[test]
#[ignore = "needs the Citus tier: make test-citus"]
fn a_contract_over_distributed_sources_runs_on_the_workers() {
    let mut su = distributed_warehouse();
    let tables = distributed_data_tables(&mut su);
    assert_eq!(tables.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(), ["contract_it_a_data.t0_g1", "contract_it_a_data.t1_g1"]);
    assert_eq!(tables[0].1, tables[1].1, "the data tables are colocated");
    // The views, the map and the ledgers stay on the coordinator.
    let local: i64 = one(
        &mut su,
        "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'medanon.%' AND logicalrelid::text <> 'medanon.keyring_transfer'",
    );
    assert_eq!(local, 0);

    let mut lab = connect_as("it_lab_a");
    // An analyst's aggregate runs on the workers: each task aggregates its shard.
    let plan = strings(&mut lab, "EXPLAIN (COSTS OFF) SELECT icd10, count(*) FROM contract_it_a.visit GROUP BY icd10").join("\n");
    assert!(plan.contains("Custom Scan (Citus Adaptive)"), "{plan}");
    let shards: i64 = one(&mut su, "SELECT current_setting('citus.shard_count')::bigint");
    assert!(plan.contains(&format!("Task Count: {shards}")), "one task per shard:\n{plan}");
    let task = &plan[plan.find("->  Task").expect("a task")..];
    assert!(task.contains("Aggregate"), "the aggregate runs in the task, on a worker:\n{plan}");
    let ports = worker_ports();
    assert!(ports.iter().any(|p| task.contains(&format!("port={p}"))), "{plan}");
    // Every visible person's four visits, and nobody else's. The calendar check may
    // withhold a person whose offset, drawn under this install's random key, the
    // public calendar narrows (a short study window): so the persons shown are
    // counted, not assumed to be all 60.
    let (visible, calendar): (i64, i64) =
        (one(&mut su, "SELECT persons_exposed FROM medanon.contract_report('it_a')"), one(&mut su, "SELECT persons_calendar FROM medanon.contract_report('it_a')"));
    assert_eq!(visible + calendar, 60, "only the calendar check withholds anyone here");
    assert!(visible >= 50, "{visible} of 60 persons shown");
    let rows: i64 = one(&mut lab, "SELECT count(*) FROM contract_it_a.visit");
    assert_eq!(rows, 4 * visible);
    let joined: i64 = one(
        &mut lab,
        "SELECT count(DISTINCT v.person_id) FROM contract_it_a.visit v JOIN contract_it_a.patient p USING (person_id)",
    );
    assert_eq!(joined, visible);
    // The data tables themselves stay closed on the coordinator.
    assert_sqlstate(&mut lab, "SELECT * FROM contract_it_a_data.t1_g1", SqlState::INSUFFICIENT_PRIVILEGE);

    // An opt-out hides the person from every view from its commit on: the first
    // visible person from p7 on.
    let (token, local): (String, String) = {
        let row = su
            .query_one(
                "SELECT m.token::text, l.local_patient_id FROM medanon.contract_person m JOIN medanon.person_link l USING (person_id)
                  WHERE m.contract_id = 'it_a' AND m.state = 'visible' AND substr(l.local_patient_id, 2)::int >= 7
                  ORDER BY substr(l.local_patient_id, 2)::int LIMIT 1",
                &[],
            )
            .expect("a visible person");
        (row.get(0), row.get(1))
    };
    let probes = vec![
        (connect_as("it_lab_a"), "SELECT count(*) FROM contract_it_a.visit WHERE person_id::text = $1".to_string(), token.clone()),
        (connect_as("it_lab_a"), "SELECT count(*) FROM contract_it_a.patient WHERE person_id::text = $1".to_string(), token.clone()),
    ];
    let race = race_an_opt_out(probes, &format!("SELECT medanon.opt_out('H1', '{local}')"));
    assert_opt_out_was_immediate(&race);
    let rows: i64 = one(&mut lab, "SELECT count(*) FROM contract_it_a.visit");
    assert_eq!(rows, 4 * (visible - 1));

    // Refresh writes a new generation, distributed again, and the old one's shards go.
    let (mut etl, warnings) = watched("it_etl");
    etl.batch_execute("SELECT medanon.refresh_contract('it_a')").expect("refresh");
    let tables = distributed_data_tables(&mut su);
    assert_eq!(tables.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(), ["contract_it_a_data.t0_g2", "contract_it_a_data.t1_g2"]);
    for i in 0..2 {
        let old: i64 = one(&mut worker(i, "postgres"), "SELECT count(*) FROM pg_class WHERE relname LIKE 't1\\_g1%'");
        assert_eq!(old, 0, "worker {i} still holds shards of the old generation");
    }
    let rows: i64 = one(&mut lab, "SELECT count(*) FROM contract_it_a.visit");
    assert_eq!(rows, 4 * (visible - 1));
    let seen: i64 = lab
        .query_one("SELECT count(*) FROM contract_it_a.visit WHERE person_id::text = $1", &[&token])
        .unwrap()
        .get(0);
    assert_eq!(seen, 0, "the opted-out person came back with the refresh");

    // A snapshot is a frozen copy on the coordinator.
    let snap: String = one(&mut etl, "SELECT medanon.release_snapshot('it_a')");
    let frozen: i64 = one(&mut lab, &format!("SELECT count(*) FROM {snap}.visit"));
    assert_eq!(frozen, 4 * (visible - 1));
    assert_eq!(*warnings.lock().unwrap(), Vec::<String>::new(), "refresh or snapshot warns on Citus");

    // Revoke drops the views and the data tables on every node.
    etl.batch_execute("SELECT medanon.revoke_contract('it_a')").expect("revoke");
    assert_eq!(distributed_data_tables(&mut su), Vec::<(String, i32)>::new());
    for i in 0..2 {
        let left: i64 = one(&mut worker(i, "postgres"), "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'contract\\_it\\_a%'");
        assert_eq!(left, 0, "worker {i} keeps contract schemas");
    }
    assert_eq!(*warnings.lock().unwrap(), Vec::<String>::new(), "revoke warns on Citus");
}

#[test]
#[ignore = "needs the Citus tier: make test-citus"]
fn a_grantee_missing_on_a_worker_is_a_clear_error() {
    let mut su = distributed_warehouse();
    // A role made on the coordinator alone.
    for i in 0..2 {
        worker(i, "postgres").batch_execute("DROP ROLE IF EXISTS it_lab_z").unwrap();
    }
    su.batch_execute(
        "SET citus.enable_create_role_propagation = off;
         DROP ROLE IF EXISTS it_lab_z;
         CREATE ROLE it_lab_z LOGIN;
         RESET citus.enable_create_role_propagation;",
    )
    .unwrap();
    let mut etl = connect_as("it_etl");
    etl.batch_execute(
        r#"SELECT medanon.create_contract('{"id": "it_z", "grantee": "it_lab_z", "purpose": "cohort",
              "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 2,
              "tables": [{"source": "it_clinical.visit", "columns": {"person_id": "token", "icd10": "keep"}}]}');"#,
    )
    .expect("create");
    let e = error_of(&mut etl, "SELECT medanon.publish_contract('it_z')");
    let db = e.as_db_error().expect("a server error");
    assert_eq!(db.code(), &SqlState::UNDEFINED_OBJECT, "{e}");
    assert!(db.message().contains("does not exist on every Citus node"), "{e}");
    assert!(db.detail().unwrap_or("").contains(&worker_ports()[0].to_string()), "{e}");
    assert_eq!(backtrace_in(&e), None);
    // Nothing was left behind: no schema, and the contract can still be published.
    let schemas: i64 = one(&mut su, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'contract\\_it\\_z%'");
    assert_eq!(schemas, 0);
    for i in 0..2 {
        worker(i, "postgres").batch_execute("DROP ROLE IF EXISTS it_lab_z; CREATE ROLE it_lab_z LOGIN").unwrap();
    }
    etl.batch_execute("SELECT medanon.publish_contract('it_z')").expect("publish once the role is everywhere");
    etl.batch_execute("SELECT medanon.revoke_contract('it_z')").expect("revoke");
}

/// What linking left, without ids or times: per record its keys and its person
/// (as the first record of that person), then the conflicts, the quarantine (by
/// reason, not by raw record) and the candidates, as sorted text.
fn linked_state(su: &mut Client) -> Vec<String> {
    strings(
        su,
        "WITH p AS (SELECT l.*, min(l.institution_code || '/' || l.local_patient_id) OVER (PARTITION BY l.person_id) AS person
                      FROM medanon.person_link l)
         SELECT * FROM (
           SELECT 'link ' || concat_ws(' ', institution_code, local_patient_id, person, id1, id2, block, encode(name_clk, 'hex'),
                                       kanji, encode(name_edits, 'hex'), digest) AS s FROM p
           UNION ALL
           -- A pair's two records in either order: which comes first follows the
           -- order rows arrive in, which Citus does not keep.
           SELECT 'conflict ' || concat_ws(' ', least(a, b), greatest(a, b), status, reason)
             FROM (SELECT institution_code || '/' || local_patient_id AS a, other_institution_code || '/' || other_local_patient_id AS b,
                          status, reason FROM medanon.link_conflict) c
           UNION ALL
           SELECT 'quarantine ' || concat_ws(' ', institution_code, local_patient_id, reason) FROM medanon.link_quarantine
           UNION ALL
           SELECT 'candidate ' || concat_ws(' ', least(a, b), greatest(a, b), round(dice::numeric, 6), round(score::numeric, 6), kanji, one_edit)
             FROM (SELECT institution_code || '/' || local_patient_id AS a, other_institution_code || '/' || other_local_patient_id AS b,
                          dice, score, kanji, one_edit FROM medanon.link_candidates) c
         ) x ORDER BY s",
    )
}

const FORGET_LINKS: &str = "TRUNCATE medanon.person_link, medanon.person, medanon.person_merge_log, medanon.link_conflict,
                                     medanon.link_quarantine, medanon.link_candidates, medanon.link_batch";

/// Issue 16, item 4: link_patients over a distributed staging table keys its rows
/// on the workers, and links them exactly as over a local copy.
#[test]
#[ignore = "needs the Citus tier: make test-citus"]
fn link_patients_keys_a_distributed_staging_table_on_the_workers() {
    let mut su = fresh_install();
    let _: i64 = one(&mut su, "SELECT medanon.citus_sync_keys()");
    // 3,000 records of 1,500 persons at three hospitals, with the mess linking is for:
    // spaces and hiragana in the kana, era and slashed dates, full-width card digits,
    // kanji variants and missing kanji, kana typos on a shared card, twins on a family
    // card, records without kana or without any name, unreadable dates, duplicates.
    su.batch_execute(
        "SET client_min_messages = warning;
         DROP SCHEMA IF EXISTS it_link CASCADE;
         CREATE SCHEMA it_link;
         CREATE TABLE it_link.local_staging (institution_code text, local_patient_id text, name_kana text, name_kanji text,
             birth_date text, sex text, insurer_number text, insured_symbol text, insured_number text, note text);
         INSERT INTO it_link.local_staging
         SELECT 'H' || (i % 3), 'r' || i,
                CASE WHEN i % 41 = 0 OR i % 97 = 0 THEN ''
                     WHEN i % 53 = 0 THEN sn.k || left(gn.k, -1) || 'キ'
                     WHEN i % 2 = 0 THEN sn.k || '　' || gn.k
                     ELSE sn.h || gn.h END,
                CASE WHEN i % 9 = 0 OR i % 97 = 0 THEN NULL
                     WHEN i % 2 = 0 THEN sn.c || ' ' || gn.c ELSE replace(sn.c, '辺', '邊') || gn.c END,
                CASE WHEN i % 113 = 0 THEN '不明'
                     WHEN i % 2 = 0 THEN to_char(b, 'YYYY-MM-DD') ELSE to_char(b, 'YYYY/FMMM/FMDD') END,
                CASE WHEN i % 2 = 0 THEN (1 + tw % 2)::text ELSE (ARRAY['M', 'F'])[1 + tw % 2] END,
                CASE WHEN i % 2 = 0 THEN '0612' || lpad((tw / 2)::text, 4, '0')
                     ELSE translate('0612' || lpad((tw / 2)::text, 4, '0'), '0123456789', '０１２３４５６７８９') END,
                '7', (tw % 90)::text, 'row ' || i
           FROM generate_series(1, 3000) i,
                LATERAL (SELECT (i - 1) / 2 AS p) pp,
                -- Persons 100k and 100k+1 are twins: one card, birth date and sex.
                LATERAL (SELECT CASE WHEN pp.p % 100 = 1 THEN pp.p - 1 ELSE pp.p END AS tw) t,
                LATERAL (SELECT DATE '1940-01-01' + (t.tw * 37) % 25000 AS b) bb,
                LATERAL (SELECT (ARRAY['ヤマダ', 'スズキ', 'ワタナベ', 'タナカ', 'イトウ', 'サトウ', 'コバヤシ'])[1 + pp.p % 7] AS k,
                                (ARRAY['やまだ', 'すずき', 'わたなべ', 'たなか', 'いとう', 'さとう', 'こばやし'])[1 + pp.p % 7] AS h,
                                (ARRAY['山田', '鈴木', '渡辺', '田中', '伊藤', '佐藤', '小林'])[1 + pp.p % 7] AS c) sn,
                LATERAL (SELECT (ARRAY['タロウ', 'ハナコ', 'ユウト', 'ユウマ', 'ケンイチ', 'ミサキ', 'ジロウ', 'アイ', 'ケン', 'ユイ', 'マコト'])[1 + (pp.p / 7) % 11] AS k,
                                (ARRAY['たろう', 'はなこ', 'ゆうと', 'ゆうま', 'けんいち', 'みさき', 'じろう', 'あい', 'けん', 'ゆい', 'まこと'])[1 + (pp.p / 7) % 11] AS h,
                                (ARRAY['太郎', '花子', '悠人', '悠真', '健一', '美咲', '次郎', '愛', '健', '結', '誠'])[1 + (pp.p / 7) % 11] AS c) gn;
         -- Sent twice: once the same, once with other content.
         INSERT INTO it_link.local_staging SELECT * FROM it_link.local_staging WHERE local_patient_id IN ('r10', 'r20');
         UPDATE it_link.local_staging SET name_kana = 'ベツジン' WHERE local_patient_id = 'r20' AND ctid = (
             SELECT max(ctid) FROM it_link.local_staging WHERE local_patient_id = 'r20');
         CREATE TABLE it_link.dist_staging (LIKE it_link.local_staging);
         SELECT create_distributed_table('it_link.dist_staging', 'local_patient_id');
         INSERT INTO it_link.dist_staging SELECT * FROM it_link.local_staging;
         GRANT USAGE ON SCHEMA it_link TO it_etl;
         GRANT SELECT ON ALL TABLES IN SCHEMA it_link TO it_etl;
         RESET client_min_messages;",
    )
    .expect("staging tables");
    let (mut etl, warnings) = watched("it_etl");
    let local: serde_json::Value =
        serde_json::from_str(&one::<String>(&mut etl, "SELECT medanon.link_patients('it_link.local_staging')::text")).unwrap();
    let from_local = linked_state(&mut su);
    // The data has what it should: twins, conflicts, quarantine, candidates.
    for (what, at_least) in [("twins", 10), ("conflicts", 5), ("quarantined", 20), ("new_persons", 1400)] {
        assert!(local[what].as_i64().unwrap_or(0) >= at_least, "{what}: {local}");
    }
    assert!(from_local.iter().any(|s| s.contains("conflicting duplicate")), "{from_local:?}");

    su.batch_execute(FORGET_LINKS).unwrap();
    let dist: serde_json::Value =
        serde_json::from_str(&one::<String>(&mut etl, "SELECT medanon.link_patients('it_link.dist_staging')::text")).unwrap();
    assert_eq!(*warnings.lock().unwrap(), Vec::<String>::new(), "link_patients warns on Citus");
    assert_eq!(dist, local, "the same counts");
    let from_dist = linked_state(&mut su);
    assert_eq!(from_dist.len(), from_local.len());
    for (d, l) in from_dist.iter().zip(&from_local) {
        assert_eq!(d, l, "the same person_link, conflicts, quarantine and candidates");
    }
    // A conflicting duplicate keeps the fields link_patients read (its other columns
    // stay on the workers); from a local table, the whole row.
    let record: String = one(&mut su, "SELECT record::text FROM medanon.link_quarantine WHERE reason = 'conflicting duplicate in batch'");
    assert!(record.contains("ベツジン") && !record.contains("row 20"), "{record}");

    // Where the keys were computed. The coordinator keys nothing of a distributed
    // staging table: with its own link key unusable (no longer matching its check
    // value), the distributed table links all the same, with the workers' copies,
    // and the local table, keyed on the coordinator, is refused.
    su.batch_execute(
        "CREATE TABLE it_link.saved AS SELECT key_id, material FROM medanon.keyring WHERE active AND purpose = 'link';
         UPDATE medanon.keyring SET material = pg_catalog.sha256(material) WHERE active AND purpose = 'link';
         ALTER TABLE medanon.keyring SET (fillfactor = 100);",
    )
    .unwrap();
    su.batch_execute(FORGET_LINKS).unwrap();
    let e = error_of(&mut etl, "SELECT medanon.link_patients('it_link.local_staging')");
    assert_eq!(e.code(), Some(&SqlState::DATA_CORRUPTED), "{e}");
    etl.batch_execute("SELECT medanon.link_patients('it_link.dist_staging')").expect("keyed on the workers alone");
    assert_eq!(linked_state(&mut su), from_local);
    su.batch_execute(
        "UPDATE medanon.keyring k SET material = s.material FROM it_link.saved s WHERE k.key_id = s.key_id AND k.purpose = 'link';
         ALTER TABLE medanon.keyring SET (fillfactor = 100);",
    )
    .unwrap();
    // The other way round: a worker whose link key no longer matches its
    // check value refuses to key. Linking the distributed table then fails with that
    // worker's error, while the local table, keyed on the coordinator, still links.
    let mut w0 = worker(0, "postgres");
    w0.batch_execute(
        "UPDATE medanon.keyring SET material = pg_catalog.sha256(material) WHERE active AND purpose = 'link';
         ALTER TABLE medanon.keyring SET (fillfactor = 100);",
    )
    .unwrap();
    su.batch_execute(FORGET_LINKS).unwrap();
    let e = error_of(&mut etl, "SELECT medanon.link_patients('it_link.dist_staging')");
    let db = e.as_db_error().expect("a server error");
    assert_eq!(db.code(), &SqlState::DATA_CORRUPTED, "{e}");
    assert!(db.message().contains("does not match its check value"), "{e}");
    assert_eq!(backtrace_in(&e), None);
    etl.batch_execute("SELECT medanon.link_patients('it_link.local_staging')").expect("the local table is keyed on the coordinator");
    assert_eq!(linked_state(&mut su), from_local);
    // Mended, the distributed table links again, the same.
    let _: i64 = one(&mut su, "SELECT medanon.citus_sync_keys()");
    su.batch_execute(FORGET_LINKS).unwrap();
    etl.batch_execute("SELECT medanon.link_patients('it_link.dist_staging')").expect("link after citus_sync_keys");
    assert_eq!(linked_state(&mut su), from_local);
    su.batch_execute("DROP SCHEMA it_link CASCADE").unwrap();
}
