//! Concurrency (issue 7): analysts query both contracts' views in loops while the
//! operator commits opt-outs one after another, links new batches (that also touch
//! persons already linked) and refreshes both contracts, all at once.
//!
//! It asserts that no query that started after an opt-out committed returns that
//! person (DESIGN.md invariant 3), that every staging record was linked or
//! quarantined (invariant 5), and that nothing failed: no deadlock, no error.

use medanon_integration::*;
use postgres::Client;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const OPTED_OUT: [&str; 5] = ["p11", "p22", "p33", "p44", "p55"];

/// The tokens of a local patient id in both contracts.
fn tokens_of(su: &mut Client, local: &str) -> (String, String) {
    let row = su
        .query_one(
            "SELECT a.token::text, b.token::text FROM medanon.contract_person a
               JOIN medanon.contract_person b USING (person_id) JOIN medanon.person_link l USING (person_id)
              WHERE a.contract_id = 'it_a' AND b.contract_id = 'it_b' AND l.local_patient_id = $1
                AND a.state = 'visible' AND b.state = 'visible'",
            &[&local],
        )
        .unwrap_or_else(|e| panic!("{local} should be visible in both contracts: {e}"));
    (row.get(0), row.get(1))
}

#[test]
fn analysts_never_see_a_person_after_the_opt_out_commits_while_everything_runs_at_once() {
    let mut su = contract_warehouse();
    // Two new batches: new patients, and new records of patients already linked.
    su.batch_execute(
        "CREATE TABLE it_clinical.batch1 (LIKE it_clinical.staging);
         CREATE TABLE it_clinical.batch2 (LIKE it_clinical.staging);
         INSERT INTO it_clinical.batch1
         SELECT 'H2', 'n' || i, 'ｽｽﾞｷ ' || chr(12450 + i), to_char(DATE '1960-01-01' + i * 211, 'YYYY-MM-DD'), (1 + i % 2)::text, '', '', ''
           FROM generate_series(1, 300) i;
         INSERT INTO it_clinical.batch2
         SELECT 'H2', 'x' || local_patient_id, name_kana, birth_date, sex, '', '', '' FROM it_clinical.staging
         UNION ALL SELECT 'H2', 'bad' || i, '', 'not a date', '9', '', '', '' FROM generate_series(1, 7) i;
         SELECT medanon.register_institution('H2', 'Clinic 2', 'clinic');
         SELECT count(medanon.record_notification(institution_code, local_patient_id, now() - interval '40 days'))
           FROM (SELECT * FROM it_clinical.batch1 UNION ALL SELECT * FROM it_clinical.batch2) b;
         GRANT SELECT ON it_clinical.batch1, it_clinical.batch2 TO it_etl;",
    )
    .unwrap();
    let targets: HashMap<&str, (String, String)> = OPTED_OUT.iter().map(|p| (*p, tokens_of(&mut su, p))).collect();
    let all_a: Vec<String> = targets.values().map(|t| t.0.clone()).collect();
    let all_b: Vec<String> = targets.values().map(|t| t.1.clone()).collect();

    // (started, finished, tokens of the targets seen) for every analyst query.
    let log: Arc<Mutex<Vec<(Instant, Instant, Vec<String>)>>> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for (role, schema, watched) in [
        ("it_lab_a", "contract_it_a", all_a.clone()),
        ("it_lab_a", "contract_it_a", all_a.clone()),
        ("it_lab_b", "contract_it_b", all_b.clone()),
        ("it_lab_b", "contract_it_b", all_b.clone()),
    ] {
        let (log, errors, stop) = (log.clone(), errors.clone(), stop.clone());
        let mut analyst = connect_as(role);
        threads.push(std::thread::spawn(move || {
            let sql = format!(
                "SELECT coalesce(array_agg(DISTINCT t::text), '{{}}') FROM (
                   SELECT person_id AS t FROM {schema}.patient WHERE person_id::text = ANY ($1)
                   UNION ALL SELECT person_id FROM {schema}.visit WHERE person_id::text = ANY ($1)) s"
            );
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                match analyst.query_one(sql.as_str(), &[&watched]) {
                    Ok(row) => log.lock().unwrap().push((started, Instant::now(), row.get(0))),
                    Err(e) => errors.lock().unwrap().push(format!("{role}: {e}")),
                }
            }
        }));
    }
    // The operator: link the batches and refresh both contracts, over and over.
    {
        let (errors, stop) = (errors.clone(), stop.clone());
        let mut etl = connect_as("it_etl");
        threads.push(std::thread::spawn(move || {
            // At least one full round, so that both batches are linked however slow
            // the machine is; then on until the opt-outs are done.
            let mut round = 0;
            while round < 4 || !stop.load(Ordering::SeqCst) {
                let sql = match round % 4 {
                    0 => "SELECT medanon.link_patients('it_clinical.batch1')",
                    1 => "SELECT medanon.refresh_contract('it_a')",
                    2 => "SELECT medanon.link_patients('it_clinical.batch2')",
                    _ => "SELECT medanon.refresh_contract('it_b')",
                };
                if let Err(e) = etl.batch_execute(sql) {
                    errors.lock().unwrap().push(format!("{sql}: {e}"));
                }
                round += 1;
            }
        }));
    }
    // The opt-outs, one every 200 ms, each timed at its commit.
    std::thread::sleep(Duration::from_millis(300));
    let mut registrar = connect_as("it_etl");
    let mut committed = Vec::new();
    for local in OPTED_OUT {
        registrar.batch_execute(&format!("SELECT medanon.opt_out('H1', '{local}', 'self')")).unwrap();
        committed.push((local, Instant::now()));
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().expect("a session panicked");
    }

    let errors = errors.lock().unwrap();
    assert!(errors.is_empty(), "errors while running at once (deadlocks included):\n{}", errors.join("\n"));
    let log = log.lock().unwrap();
    assert!(log.len() > 40, "too few analyst queries to tell ({})", log.len());
    for (local, at) in &committed {
        let (a, b) = &targets[local];
        let after: Vec<_> = log.iter().filter(|(started, ..)| started > at).collect();
        assert!(after.len() > 5, "too few queries after {local}'s opt-out ({})", after.len());
        let leaks = after.iter().filter(|(.., seen)| seen.contains(a) || seen.contains(b)).count();
        assert_eq!(leaks, 0, "{leaks} queries started after {local}'s opt-out committed saw {local}");
        let seen_before = log.iter().any(|(_, done, seen)| done < at && (seen.contains(a) || seen.contains(b)));
        assert!(seen_before || *local != OPTED_OUT[0], "{local} was never seen before its opt-out");
    }
    // Nothing lost: every record of every batch is linked or quarantined, once.
    let (records, linked, quarantined): (i64, i64, i64) = {
        let row = su
            .query_one(
                "SELECT (SELECT count(*) FROM (SELECT * FROM it_clinical.staging UNION ALL SELECT * FROM it_clinical.batch1
                                              UNION ALL SELECT * FROM it_clinical.batch2) r),
                        (SELECT count(*) FROM medanon.person_link),
                        (SELECT count(DISTINCT (institution_code, local_patient_id)) FROM medanon.link_quarantine)",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    };
    assert_eq!(records, linked + quarantined, "records in = linked + quarantined");
    assert!(quarantined >= 7, "the unreadable records are quarantined ({quarantined})");
    // And k holds in every class each contract shows, after all of it.
    let mut lab = connect_as("it_lab_a");
    let smallest: i64 = lab
        .query_one("SELECT min(n) FROM (SELECT count(DISTINCT person_id) AS n FROM contract_it_a.patient GROUP BY birth_date, sex) c", &[])
        .unwrap()
        .get(0);
    assert!(smallest >= 3, "smallest class {smallest}");
}
