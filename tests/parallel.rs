//! Keyed functions under parallel query (issue 13): `tokenize`, `shift_date` (date,
//! timestamp, timestamptz) and `date_offset` run in parallel workers, as ETL jobs on
//! large tables get them at PostgreSQL's default settings, and give what a serial
//! plan gives, row for row.
//!
//! The plan is forced parallel (no setup or tuple cost, no minimum table size, two
//! workers per Gather) over 200,000 rows, and EXPLAIN ANALYZE must show that the
//! workers were launched, scanned rows, and evaluated the keyed functions themselves.

use medanon_integration::*;
use postgres::Client;

const ROWS: i64 = 200_000;

/// The keyed functions, each computed below the Gather (in the workers), as text.
const QUERY: &str = "SELECT id, medanon.tokenize(v, 'it_parallel'),
        medanon.shift_date(d, v, 'it_parallel')::text,
        medanon.shift_date(ts, v, 'it_parallel')::text,
        medanon.shift_date(tz, v, 'it_parallel')::text,
        medanon.date_offset(v, 'it_parallel')
   FROM it_par.t";

const SERIAL: &str = "SET max_parallel_workers_per_gather = 0";
const FORCE_PARALLEL: &str = "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
     SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2";

type Row = (i64, String, String, String, String, i32);

/// The rows of `sql`, or a panic that says what the server said.
fn query(client: &mut Client, sql: &str) -> Vec<postgres::Row> {
    client.query(sql, &[]).unwrap_or_else(|e| match e.as_db_error() {
        Some(db) => panic!("{sql}:\n{}: {}", db.code().code(), db.message()),
        None => panic!("{sql}: {e}"),
    })
}

fn rows(client: &mut Client) -> Vec<Row> {
    let mut rows: Vec<Row> = query(client, QUERY)
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    rows.sort();
    rows
}

/// EXPLAIN (ANALYZE, VERBOSE) of QUERY: the workers launched, the rows the workers
/// (not the leader) scanned, and whether the parallel scan's own output list holds
/// the keyed functions.
fn parallel_run(client: &mut Client) -> (i64, i64, bool) {
    let plan: Vec<String> =
        query(client, &format!("EXPLAIN (ANALYZE, VERBOSE, COSTS OFF) {QUERY}")).iter().map(|r| r.get(0)).collect();
    let number_after = |line: &str, key: &str| -> Option<i64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    let launched = plan.iter().find_map(|l| number_after(l, "Workers Launched: ")).unwrap_or(0);
    let worker_rows = plan
        .iter()
        .filter(|l| l.trim_start().starts_with("Worker "))
        .filter_map(|l| number_after(l, "rows="))
        .sum();
    let scan = plan.iter().position(|l| l.contains("Parallel Seq Scan on it_par.t"));
    let in_workers = scan.is_some_and(|i| {
        plan[i + 1..].iter().take_while(|l| !l.contains("->")).any(|l| {
            let l = l.trim_start();
            l.starts_with("Output:")
                && ["tokenize(", "shift_date(", "date_offset("].iter().all(|f| l.contains(f))
        })
    });
    assert!(plan.iter().any(|l| l.contains("Gather")), "no Gather in the plan:\n{}", plan.join("\n"));
    (launched, worker_rows, in_workers)
}

/// The parallel plan first, so that in a fresh session the workers and the leader
/// all load the key during a parallel statement; then the serial plan.
fn assert_parallel_equals_serial(client: &mut Client, what: &str) -> Vec<Row> {
    client.batch_execute(FORCE_PARALLEL).unwrap();
    let (launched, worker_rows, in_workers) = parallel_run(client);
    assert!(launched > 0, "{what}: no parallel worker was launched");
    assert!(worker_rows > 0, "{what}: the workers scanned no rows");
    assert!(in_workers, "{what}: the keyed functions are not evaluated in the parallel scan");
    let parallel = rows(client);
    client.batch_execute(SERIAL).unwrap();
    let serial = rows(client);
    assert_eq!(serial.len(), ROWS as usize, "{what}: every row");
    let differing = serial.iter().zip(&parallel).filter(|(s, p)| s != p).count();
    assert_eq!(differing, 0, "{what}: {differing} of {ROWS} rows differ between the serial and the parallel plan");
    assert_eq!(serial, parallel, "{what}");
    client.batch_execute("RESET ALL").unwrap();
    parallel
}

#[test]
fn keyed_functions_in_parallel_workers_equal_a_serial_plan() {
    let mut su = fresh_install();
    su.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS it_par CASCADE; CREATE SCHEMA it_par;
         CREATE TABLE it_par.t AS
         SELECT g AS id, 'patient-' || g AS v,
                DATE '2020-01-01' + (g % 3000)::int AS d,
                TIMESTAMP '2020-01-01 08:30' + g * INTERVAL '17 minutes' AS ts,
                TIMESTAMPTZ '2020-01-01 08:30+09' + g * INTERVAL '13 minutes' AS tz
           FROM generate_series(1::bigint, {ROWS}) g;
         ANALYZE it_par.t;
         CREATE TABLE it_par.scratch (n int);
         GRANT USAGE ON SCHEMA it_par TO it_etl;
         GRANT SELECT ON it_par.t TO it_etl;
         GRANT INSERT ON it_par.scratch TO it_etl;"
    ))
    .unwrap();

    // An ETL login whose session has loaded no key yet: the leader and the workers
    // all load it during the parallel statement.
    let mut etl = connect_as("it_etl");
    let first = assert_parallel_equals_serial(&mut etl, "a fresh session");

    // In a transaction that has written: it holds a transaction id and has used its
    // command id, so no process may start a command or take a snapshot of its own.
    let mut etl = connect_as("it_etl");
    etl.batch_execute("BEGIN; INSERT INTO it_par.scratch VALUES (1)").unwrap();
    let after_write = assert_parallel_equals_serial(&mut etl, "after a write in the same transaction");
    etl.batch_execute("COMMIT").unwrap();
    assert_eq!(first, after_write, "the same key gives the same values in every session");

    // After a rotation in the same transaction, every process uses the new key.
    su.batch_execute("BEGIN; SELECT medanon.rotate_key()").unwrap();
    let rotated = assert_parallel_equals_serial(&mut su, "after rotate_key() in the same transaction");
    su.batch_execute("ROLLBACK").unwrap();
    let changed = first.iter().zip(&rotated).filter(|(a, b)| a.1 != b.1).count();
    assert_eq!(changed, ROWS as usize, "every token changes with the key");

    su.batch_execute("DROP SCHEMA it_par CASCADE").unwrap();
}
