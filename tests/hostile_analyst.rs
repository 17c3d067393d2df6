//! A hostile analyst (issue 7): the grantee of contract it_a logs in and tries to
//! get at what it must not see. Every attack is named; each must fail with the
//! expected SQLSTATE or return nothing it should not. `SECURITY.md` counts them.

use medanon_integration::*;
use postgres::error::SqlState;
use postgres::Client;

/// Attacks that must fail with 42501 insufficient_privilege.
const REFUSED: &[(&str, &str)] = &[
    ("read a raw table", "SELECT * FROM it_clinical.patient"),
    ("read the staging table", "SELECT * FROM it_clinical.staging"),
    ("read the keyring", "SELECT * FROM medanon.keyring"),
    ("read person_link", "SELECT * FROM medanon.person_link"),
    ("read the provision ledger", "SELECT * FROM medanon.provision_ledger"),
    ("read the person map (tokens and offsets)", "SELECT * FROM medanon.contract_person"),
    ("read the link quarantine (raw records)", "SELECT * FROM medanon.link_quarantine"),
    ("read the intake quarantine (raw records)", "SELECT * FROM medanon.intake_quarantine"),
    ("read the opt-out ledger", "SELECT * FROM medanon.opt_out"),
    ("read another contract's view", "SELECT * FROM contract_it_b.patient"),
    ("read its own contract's data tables directly", "SELECT * FROM contract_it_a_data.t0_g1"),
    ("call tokenize", "SELECT medanon.tokenize('7', 'contract:it_a')"),
    ("call shift_date(date)", "SELECT medanon.shift_date(date '2026-01-01', '7', 'contract:it_a')"),
    ("call shift_date(timestamp)", "SELECT medanon.shift_date(timestamp '2026-01-01', '7', 'contract:it_a')"),
    ("call shift_date(timestamptz)", "SELECT medanon.shift_date(timestamptz '2026-01-01', '7', 'contract:it_a')"),
    ("call date_offset", "SELECT medanon.date_offset('7', 'contract:it_a')"),
    ("call _link_id1", "SELECT medanon._link_id1('06139999', 'A', '1', '1970-01-01', '1')"),
    ("call _link_id2", "SELECT medanon._link_id2('ﾀﾅｶ', '1970-01-01', '1')"),
    ("call _link_block", "SELECT medanon._link_block('1970-01-01', '1')"),
    ("call _link_clk", "SELECT medanon._link_clk('ﾀﾅｶ')"),
    ("learn the active key id", "SELECT medanon.active_key_id()"),
    ("rotate the key", "SELECT medanon.rotate_key()"),
    ("publish its own contract", "SELECT medanon.refresh_contract('it_a')"),
    ("take a snapshot", "SELECT medanon.release_snapshot('it_a')"),
    ("revoke another contract", "SELECT medanon.revoke_contract('it_b')"),
    ("read a contract report", "SELECT * FROM medanon.contract_report('it_a')"),
    ("opt a patient out (write the ledger)", "SELECT medanon.opt_out('H1', 'p1')"),
    ("create a table in medanon", "CREATE TABLE medanon.mine (x int)"),
    ("create a function in medanon", "CREATE FUNCTION medanon.tokenize(text) RETURNS text LANGUAGE sql RETURN $1"),
    ("create a view in its contract schema", "CREATE VIEW contract_it_a.mine AS SELECT 1"),
    ("create a table in public", "CREATE TABLE public.mine (x int)"),
    ("alter its view", "ALTER VIEW contract_it_a.patient RENAME TO p"),
    ("drop its view", "DROP VIEW contract_it_a.patient"),
    ("COPY a view to a program", "COPY (SELECT * FROM contract_it_a.patient) TO PROGRAM 'cat > /tmp/leak'"),
    ("COPY a view to a server file", "COPY (SELECT * FROM contract_it_a.patient) TO '/tmp/leak.csv'"),
    ("read a server file", "SELECT pg_read_file('postgresql.conf')"),
    ("list the server's directory", "SELECT pg_ls_dir('.')"),
    ("become the operator", "SET ROLE medanon_operator"),
    ("become the auditor", "SET ROLE medanon_auditor"),
    ("install an extension", "CREATE EXTENSION IF NOT EXISTS pgcrypto"),
    ("count another contract's persons", "SELECT * FROM medanon.safe_counts('it_b', 'patient', ARRAY['sex'])"),
];

fn count(client: &mut Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
}

#[test]
fn every_refused_attack_fails_with_42501() {
    let _su = contract_warehouse();
    let mut lab = connect_as("it_lab_a");
    let mut failures = Vec::new();
    for (attack, sql) in REFUSED {
        let state = sqlstate_of(&mut lab, sql);
        if state != Some(SqlState::INSUFFICIENT_PRIVILEGE) {
            failures.push(format!("{attack}: {sql} gave {state:?}"));
        }
    }
    assert!(failures.is_empty(), "attacks that did not fail with 42501:\n{}", failures.join("\n"));
    assert!(REFUSED.len() >= 30);
}

#[test]
fn a_leaky_function_sees_only_the_rows_the_view_shows() {
    let mut su = contract_warehouse();
    // Opt one person out: the person's rows are gone, not hidden behind a filter.
    let mut etl = connect_as("it_etl");
    etl.batch_execute("SELECT medanon.opt_out('H1', 'p3', 'self')").unwrap();
    let raw_persons = count(&mut su, "SELECT count(*) FROM it_clinical.patient");
    let mut lab = connect_as("it_lab_a");
    lab.batch_execute(
        "CREATE TEMP TABLE seen (token bigint);
         CREATE FUNCTION pg_temp.leak(t bigint) RETURNS boolean LANGUAGE plpgsql COST 0.0000001
           AS $$ BEGIN INSERT INTO seen VALUES (t); RETURN true; END $$;",
    )
    .unwrap();
    let returned = count(&mut lab, "SELECT count(*) FROM contract_it_a.patient WHERE pg_temp.leak(person_id)");
    let seen = count(&mut lab, "SELECT count(*) FROM seen");
    assert_eq!(seen, returned, "the function saw rows the view did not return");
    assert!(returned < raw_persons, "the opted-out person is not shown ({returned} of {raw_persons})");
}

#[test]
fn catalogs_and_plans_leak_neither_raw_statistics_nor_keys() {
    let mut su = contract_warehouse();
    su.batch_execute("ANALYZE it_clinical.patient, it_clinical.visit").unwrap();
    let keys = strings(&mut su, "SELECT encode(material, 'hex') FROM medanon.keyring");
    let mut lab = connect_as("it_lab_a");
    // pg_stats shows statistics (most common values, histograms) of readable tables only.
    assert_eq!(count(&mut lab, "SELECT count(*) FROM pg_stats WHERE schemaname IN ('it_clinical', 'medanon')"), 0);
    assert_eq!(count(&mut lab, "SELECT count(*) FROM pg_seclabels"), 0);
    // EXPLAIN shows the data table and the expiry gate, never a key or a raw table.
    let plan: String = lab
        .query("EXPLAIN (VERBOSE) SELECT * FROM contract_it_a.visit WHERE icd10 = 'I10'", &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n");
    // The gate: today in the operator's time zone, not the session's CURRENT_DATE.
    assert!(plan.contains("timezone('Asia/Tokyo'") && !plan.contains("CURRENT_DATE"), "{plan}");
    assert!(!plan.contains("it_clinical"), "a raw table in the plan: {plan}");
    for key in &keys {
        assert!(!plan.contains(key.as_str()), "key material in EXPLAIN");
    }
    // Other sessions' statements (which may name patients) are hidden.
    let mut etl = connect_as("it_etl");
    let sleeper = std::thread::spawn(move || etl.batch_execute("SELECT pg_sleep(1), 'p7-secret-marker'").unwrap());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let marker = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%p7-secret-marker%' AND pid <> pg_backend_pid()";
    let to_superuser = count(&mut su, marker);
    let to_analyst = count(&mut lab, marker);
    sleeper.join().unwrap();
    assert_eq!(to_superuser, 1, "the statement was running (the check would be vacuous otherwise)");
    assert_eq!(to_analyst, 0, "the operator's statement text is visible to the analyst");
}

#[test]
fn granting_its_view_to_another_role_gives_nothing() {
    let _su = contract_warehouse();
    let mut lab = connect_as("it_lab_a");
    // Without GRANT OPTION this is only a warning; the other role still reads nothing.
    lab.batch_execute("GRANT SELECT ON contract_it_a.patient TO it_lab_b").unwrap();
    let mut other = connect_as("it_lab_b");
    assert_sqlstate(&mut other, "SELECT * FROM contract_it_a.patient", SqlState::INSUFFICIENT_PRIVILEGE);
}

/// No function an analyst may execute uses a key: the analyst has no oracle to
/// brute-force tokens with (DESIGN.md invariant 1).
#[test]
fn no_function_the_analyst_can_call_touches_a_key() {
    let _su = contract_warehouse();
    let mut lab = connect_as("it_lab_a");
    let callable = strings(&mut lab, "SELECT DISTINCT p.proname::text FROM pg_proc p
              WHERE p.pronamespace = 'medanon'::regnamespace AND has_function_privilege(p.oid, 'EXECUTE')
              ORDER BY 1");
    let keyed = [
        "tokenize", "shift_date", "date_offset", "active_key_id", "rotate_key", "_install_first_key", "_link_id1",
        "_link_id2", "_link_block", "_link_clk", "_link_problem", "link_patients", "publish_contract",
        "refresh_contract", "release_snapshot", "_contract_withhold",
    ];
    let exposed: Vec<&String> = callable.iter().filter(|f| keyed.contains(&f.as_str())).collect();
    assert!(exposed.is_empty(), "keyed functions the analyst can call: {exposed:?}");
    assert!(callable.contains(&"safe_counts".to_string()) && callable.contains(&"generalize_age".to_string()));
}

/// Every SECURITY DEFINER function runs with `search_path = pg_catalog, pg_temp`:
/// a caller whose search_path puts look-alike functions and operators first never
/// gets them run as the owner. The operator plays the attacker here (it can create
/// a schema, and its calls reach the definer functions through the triggers).
#[test]
fn a_shadow_search_path_never_runs_as_the_owner() {
    let mut su = contract_warehouse();
    su.batch_execute(
        "DROP SCHEMA IF EXISTS it_shadow CASCADE;
         CREATE SCHEMA it_shadow AUTHORIZATION it_etl;
         CREATE TABLE it_shadow.calls (what text, by_whom name DEFAULT current_user);
         GRANT ALL ON it_shadow.calls TO PUBLIC;",
    )
    .unwrap();
    let mut etl = connect_as("it_etl");
    etl.batch_execute(
        "CREATE FUNCTION it_shadow.now() RETURNS timestamptz LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO it_shadow.calls (what) VALUES ('now'); RETURN pg_catalog.now(); END $$;
         CREATE FUNCTION it_shadow.eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO it_shadow.calls (what) VALUES ('='); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
         CREATE OPERATOR it_shadow.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = it_shadow.eq);
         CREATE FUNCTION it_shadow.format(text, VARIADIC text[]) RETURNS text LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO it_shadow.calls (what) VALUES ('format'); RETURN pg_catalog.format($1, VARIADIC $2); END $$;
         CREATE FUNCTION it_shadow.unnest(anyarray) RETURNS SETOF anyelement LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO it_shadow.calls (what) VALUES ('unnest'); RETURN QUERY SELECT * FROM pg_catalog.unnest($1); END $$;
         SET search_path = it_shadow, pg_catalog, public;
         -- In the attacker's own statements the look-alikes do take over:
         SELECT now() = now(), 1::bigint = 1::bigint;
         -- and then every path into a SECURITY DEFINER function or the owner's work:
         SELECT medanon.opt_out('H1', 'p4', 'self');                  -- _contract_on_opt_out, _contract_withhold
         SELECT medanon.link_patients('it_clinical.staging');        -- _contract_on_link, _consent_changes (person_link triggers)
         CREATE TABLE it_shadow.source (person_id bigint);
         SELECT medanon.register_source('it_shadow.source', 'person_id');
         SELECT medanon.track_changes('it_shadow.source');           -- _source_tracking_set
         INSERT INTO it_shadow.source VALUES (1);                    -- _source_changes
         SELECT medanon.refresh_contract('it_a');                    -- _ledger_chain (every ledger entry)
         SELECT medanon.release_snapshot('it_a');
         SELECT medanon.revoke_contract('it_b');                     -- revoke_contract, _contract_close
         SELECT medanon.expire_contracts();
         SELECT * FROM medanon.contract_report('it_a');",
    )
    .unwrap();
    let definers = strings(&mut su, "SELECT p.proname::text FROM pg_proc p WHERE p.pronamespace = 'medanon'::regnamespace AND p.prosecdef ORDER BY 1");
    assert_eq!(
        definers,
        ["_consent_changes", "_contract_close", "_contract_on_link", "_contract_on_opt_out", "_contract_withhold",
         "_ledger_chain", "_source_changes", "_source_tracking_set", "expire_contracts", "revoke_contract"],
        "a new SECURITY DEFINER function needs a path in this test"
    );
    let calls: Vec<(String, String)> = su
        .query("SELECT what, by_whom::text FROM it_shadow.calls", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let by_attacker = calls.iter().filter(|(_, who)| who == "it_etl").count();
    assert!(by_attacker >= 2, "the look-alikes must intercept the attacker's own calls, or this test proves nothing: {calls:?}");
    let as_owner: Vec<_> = calls.iter().filter(|(_, who)| who != "it_etl").collect();
    assert!(as_owner.is_empty(), "shadow objects ran with another user's rights: {as_owner:?}");
    su.batch_execute("DROP SCHEMA it_shadow CASCADE").unwrap();
}

/// Issue 15, item 1: a contract's expiry is a day in the operator's time zone
/// (Asia/Tokyo), and no setting of the analyst's moves it. A contract that expires
/// today shows the same rows whatever TimeZone (7 days behind or ahead), DateStyle
/// or search_path the grantee sets; with the former `CURRENT_DATE` gate, a clock 7
/// days ahead hid it and one 7 days behind kept an expired contract readable.
#[test]
fn no_session_setting_of_the_analyst_moves_the_expiry_gate() {
    let mut su = contract_warehouse();
    su.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_lab_c') THEN CREATE ROLE it_lab_c LOGIN; END IF;
         END $$;",
    )
    .unwrap();
    let mut etl = connect_as("it_etl");
    let today: String = etl.query_one("SELECT medanon.contract_today()::text", &[]).unwrap().get(0);
    let tokyo: String = etl.query_one("SELECT (now() AT TIME ZONE 'Asia/Tokyo')::date::text", &[]).unwrap().get(0);
    assert_eq!(today, tokyo, "contract dates are days in Japan by default");
    etl.batch_execute(&format!(
        r#"SELECT medanon.create_contract('{{"id": "it_c", "grantee": "it_lab_c", "purpose": "expires today",
              "approved_on": "2026-01-01", "expires_on": "{today}", "kind": "anonymized", "k": 2,
              "tables": [{{"source": "it_clinical.patient", "columns": {{"person_id": "token", "sex": "keep"}}}},
                         {{"source": "it_clinical.visit", "columns": {{"person_id": "token", "icd10": "keep"}}}}]}}');
           SELECT medanon.publish_contract('it_c');"#
    ))
    .unwrap();
    let definition: String = su.query_one("SELECT pg_get_viewdef('contract_it_c.visit'::regclass)", &[]).unwrap().get(0);
    assert!(!definition.to_uppercase().contains("CURRENT_DATE"), "{definition}");
    assert!(definition.contains("Asia/Tokyo"), "{definition}");
    let mut lab = connect_as("it_lab_c");
    let count = |lab: &mut postgres::Client| -> (i64, i64) {
        let p: i64 = lab.query_one("SELECT count(*) FROM contract_it_c.patient", &[]).unwrap().get(0);
        let v: i64 = lab.query_one("SELECT count(*) FROM contract_it_c.visit", &[]).unwrap().get(0);
        (p, v)
    };
    let baseline = count(&mut lab);
    assert!(baseline.0 > 0 && baseline.1 > 0, "the contract shows rows today: {baseline:?}");
    for settings in [
        "SET TimeZone = 'XXX+167'",
        "SET TimeZone = 'XXX-167'",
        "SET TimeZone = 'Etc/GMT+12'",
        "SET TimeZone = 'Pacific/Kiritimati'",
        "SET DateStyle = 'SQL, DMY'; SET TimeZone = 'XXX-167'",
        "SET search_path = pg_temp, public; SET TimeZone = 'XXX+167'",
    ] {
        lab.batch_execute(&format!("RESET ALL; {settings}")).unwrap();
        assert_eq!(count(&mut lab), baseline, "{settings}");
    }
}

/// Issue 15, item 2: the planner hands no value the analyst cannot SELECT to the
/// analyst's own code. A pg_temp operator with a restriction estimator
/// (`RESTRICT = scalarltsel`) is called by the planner with histogram values of
/// the relation it filters, when it may read the statistics; behind a plain view it
/// could (they are the view owner's), and the data table's statistics still held
/// the dates of persons withheld since the last ANALYZE.
#[test]
fn a_leaky_estimator_never_receives_a_value_the_analyst_cannot_see() {
    let _su = contract_warehouse();
    let mut lab = connect_as("it_lab_a");
    lab.batch_execute(
        "CREATE TEMP TABLE leaked (v date);
         CREATE FUNCTION pg_temp.peek(a date, b date) RETURNS boolean LANGUAGE plpgsql COST 1 AS
           $$ BEGIN INSERT INTO leaked VALUES (a), (b); RETURN a < b; END $$;
         CREATE OPERATOR pg_temp.<<< (LEFTARG = date, RIGHTARG = date, FUNCTION = pg_temp.peek, RESTRICT = scalarltsel);
         -- The control: on a table of its own, the estimator does hand it histogram values.
         CREATE TEMP TABLE own AS SELECT DATE '2020-01-01' + g AS d FROM generate_series(1, 500) g;
         ANALYZE own;
         EXPLAIN SELECT * FROM own WHERE d OPERATOR(pg_temp.<<<) DATE '2020-06-01';",
    )
    .unwrap();
    let control = count(&mut lab, "SELECT count(*) FROM leaked WHERE v <> DATE '2020-06-01'");
    assert!(control > 50, "the attack does not work on this server, so the check below would be vacuous ({control})");
    lab.batch_execute("TRUNCATE leaked").unwrap();
    // Ten of the sixty persons opt out: their rows leave the views at once.
    let mut etl = connect_as("it_etl");
    for i in 1..=10 {
        etl.execute("SELECT medanon.opt_out('H1', $1, 'self')", &[&format!("p{i}")]).unwrap();
    }
    for sql in [
        "EXPLAIN SELECT * FROM contract_it_a.visit WHERE visit_date OPERATOR(pg_temp.<<<) DATE '2025-01-01'",
        "SELECT count(*) FROM contract_it_a.visit WHERE visit_date OPERATOR(pg_temp.<<<) DATE '2025-01-01'",
    ] {
        lab.batch_execute(sql).unwrap();
    }
    let unseen = count(
        &mut lab,
        "SELECT count(*) FROM (SELECT v FROM leaked WHERE v <> DATE '2025-01-01'
                               EXCEPT SELECT visit_date FROM contract_it_a.visit) x",
    );
    assert_eq!(unseen, 0, "the analyst's operator received dates of rows it cannot select");
}

/// A person visible in contract it_a (its local id at H1).
fn visible_in_it_a(su: &mut Client) -> String {
    su.query_one(
        "SELECT l.local_patient_id FROM medanon.contract_person m JOIN medanon.person_link l USING (person_id)
          WHERE m.contract_id = 'it_a' AND m.state = 'visible' AND l.institution_code = 'H1'
          ORDER BY l.local_patient_id LIMIT 1",
        &[],
    )
    .unwrap()
    .get(0)
}

/// Issue 15, item 3: the grantee idles in a transaction on a view of it_a, and
/// `operation` (a refresh or a revoke of it_a, as the ETL login) waits for it. An
/// opt-out in a third session must commit in under a second, before the analyst
/// ends (on 0.1.0 the operation held the contract row FOR UPDATE while it waited,
/// and the opt-out waited with it until the analyst let go, here 3 s). Returns the
/// superuser, the person opted out, and how the operation ended, which it does only
/// after the analyst ended.
fn an_opt_out_commits_while_an_idle_analyst_holds_up(operation: &'static str) -> (Client, String, Result<(), postgres::Error>) {
    use std::time::{Duration, Instant};
    let mut su = contract_warehouse();
    let local = visible_in_it_a(&mut su);
    let mut lab = connect_as("it_lab_a");
    lab.batch_execute("BEGIN; SELECT count(*) FROM contract_it_a.patient").unwrap();
    let op = std::thread::spawn(move || {
        let result = connect_as("it_etl").batch_execute(operation);
        (result, Instant::now())
    });
    wait_until_blocked(&mut su, operation);
    // The analyst ends after 3 s whatever happens, so a build on which the opt-out
    // waits for it fails on the timing below instead of hanging.
    let analyst = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        lab.batch_execute("COMMIT").unwrap();
        Instant::now()
    });
    let mut registrar = connect_as("it_etl");
    let started = Instant::now();
    registrar.batch_execute(&format!("SELECT medanon.opt_out('H1', '{local}', 'self')")).unwrap();
    let committed = Instant::now();
    let analyst_ended = analyst.join().unwrap();
    let (result, op_ended) = op.join().unwrap();
    assert!(
        committed - started < Duration::from_secs(1),
        "the opt-out took {:?} while {operation} waited for an idle analyst",
        committed - started
    );
    assert!(committed < analyst_ended, "the opt-out committed only after the analyst ended");
    assert!(op_ended > analyst_ended, "{operation} did not wait for the analyst, so this test proved nothing");
    (su, local, result)
}

/// The state in `contract`'s map of the person behind record ('H1', `local`).
fn state_in(su: &mut Client, contract: &str, local: &str) -> String {
    su.query_one(
        "SELECT m.state FROM medanon.contract_person m JOIN medanon.person_link l USING (person_id)
          WHERE m.contract_id = $1 AND l.institution_code = 'H1' AND l.local_patient_id = $2",
        &[&contract, &local],
    )
    .unwrap()
    .get(0)
}

#[test]
fn an_opt_out_commits_at_once_while_a_refresh_waits_for_an_idle_analyst() {
    let (mut su, local, result) =
        an_opt_out_commits_while_an_idle_analyst_holds_up("SELECT medanon.refresh_contract('it_a')");
    result.expect("the refresh completes once the analyst ends");
    // The refresh did not undo the opt-out: the person is withheld and in no view.
    assert_eq!(state_in(&mut su, "it_a", &local), "consent");
    let shown: i64 = su
        .query_one(
            "SELECT (SELECT count(*) FROM contract_it_a.patient p WHERE p.person_id = m.token)
                  + (SELECT count(*) FROM contract_it_a.visit v WHERE v.person_id = m.token)
               FROM medanon.contract_person m JOIN medanon.person_link l USING (person_id)
              WHERE m.contract_id = 'it_a' AND l.institution_code = 'H1' AND l.local_patient_id = $1",
            &[&local],
        )
        .unwrap()
        .get(0);
    assert_eq!(shown, 0, "the refreshed views show the person who opted out during the refresh");
    let refreshes: i64 = count(&mut su, "SELECT count(*) FROM medanon.provision_ledger WHERE event = 'refresh' AND contract_id = 'it_a'");
    assert_eq!(refreshes, 1);
}

#[test]
fn an_opt_out_commits_at_once_while_a_revoke_waits_for_an_idle_analyst() {
    let (mut su, local, result) = an_opt_out_commits_while_an_idle_analyst_holds_up("SELECT medanon.revoke_contract('it_a')");
    result.expect("the revoke completes once the analyst ends");
    let status: String = su.query_one("SELECT status FROM medanon.contract WHERE contract_id = 'it_a'", &[]).unwrap().get(0);
    assert_eq!(status, "revoked");
    assert_eq!(count(&mut su, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'contract_it_a%'"), 0);
    // The opt-out took effect in the contract that stays.
    assert_eq!(state_in(&mut su, "it_b", &local), "consent");
}

/// When the analyst does not let go, the lock attempts end in 55P03, naming the
/// session that holds the views and how to end it; and every grantee role gets an
/// idle-in-transaction timeout at publish.
#[test]
fn a_refresh_that_cannot_lock_the_views_fails_clearly_and_grantees_have_an_idle_timeout() {
    let mut su = contract_warehouse();
    let mut lab = connect_as("it_lab_a");
    let timeout: String = lab.query_one("SHOW idle_in_transaction_session_timeout", &[]).unwrap().get(0);
    assert_eq!(timeout, "5min", "publish sets the grantee's idle-in-transaction timeout");
    let configured = strings(&mut su, "SELECT unnest(rolconfig) FROM pg_roles WHERE rolname IN ('it_lab_a', 'it_lab_b') ORDER BY 1");
    assert_eq!(configured, ["idle_in_transaction_session_timeout=5min", "idle_in_transaction_session_timeout=5min"]);
    lab.batch_execute("BEGIN; SELECT count(*) FROM contract_it_a.visit").unwrap();
    let lab_pid: i32 = lab.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    // The lock step of refresh, with 1 s of patience instead of 30 (owner only).
    let started = std::time::Instant::now();
    let err = su
        .batch_execute("BEGIN; SELECT medanon._contract_lock(ARRAY['it_a'], 'views', '1 s')")
        .expect_err("the analyst holds the views");
    let waited = started.elapsed();
    su.batch_execute("ROLLBACK").unwrap();
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code(), &SqlState::LOCK_NOT_AVAILABLE);
    assert_eq!(db.message(), "could not lock contract \"it_a\": it is in use");
    assert!(db.detail().unwrap_or_default().contains(&format!("pid {lab_pid} (it_lab_a, idle in transaction)")), "{:?}", db.detail());
    assert!(db.hint().unwrap_or_default().contains("pg_terminate_backend"), "{:?}", db.hint());
    assert!(waited < std::time::Duration::from_secs(5), "retried for {waited:?}");
    // The operator cannot call it (nor hold a contract with it).
    let mut etl = connect_as("it_etl");
    assert_sqlstate(&mut etl, "SELECT medanon._contract_lock(ARRAY['it_a'], 'views')", SqlState::INSUFFICIENT_PRIVILEGE);
    lab.batch_execute("COMMIT").unwrap();
    su.batch_execute("BEGIN; SELECT medanon._contract_lock(ARRAY['it_a'], 'views', '1 s'); ROLLBACK").unwrap();
}

/// Issue 15, item 4: a statistics contract. Its grantee reads no row (42501 on its
/// views, their data tables, a snapshot), and gets from safe_counts counts of at
/// least the contract's floor (10) whatever min_cell it passes; suppressed cells are
/// left out. Each call is in the provision ledger; a call whose transaction rolled
/// back leaves a gap in the call numbers. No one but the grantee and the operator
/// gets counts (42501).
#[test]
fn a_statistics_grantee_gets_suppressed_counts_only_and_every_call_is_recorded() {
    let mut su = contract_warehouse();
    statistics_contract(&mut su);
    let mut lab = connect_as("it_lab_s");
    for sql in [
        "SELECT * FROM contract_it_s.patient",
        "SELECT count(*) FROM contract_it_s.visit",
        "SELECT * FROM contract_it_s_data.t0_g1",
        "SELECT medanon.release_snapshot('it_s')",
        "SELECT * FROM medanon.provision_ledger",
        "SELECT * FROM medanon.safe_counts('it_a', 'patient', ARRAY['sex'])",
    ] {
        assert_sqlstate(&mut lab, sql, SqlState::INSUFFICIENT_PRIVILEGE);
    }
    // The cells under the floor exist: classes of about 6 persons (as the superuser).
    let smallest = count(&mut su, "SELECT min(n) FROM (SELECT count(DISTINCT person_id) AS n FROM contract_it_s.patient GROUP BY birth_date, sex) c");
    assert!(smallest < 10, "the test needs cells under 10 ({smallest})");
    let persons = count(&mut su, "SELECT count(DISTINCT person_id) FROM contract_it_s.patient");
    let rows = lab
        .query("SELECT cell::text, persons, suppression FROM medanon.safe_counts('it_s', 'patient', ARRAY['birth_date', 'sex'], 1)", &[])
        .unwrap();
    assert!(!rows.is_empty());
    for r in &rows {
        let (cell, shown, suppression): (String, Option<i64>, Option<String>) = (r.get(0), r.get(1), r.get(2));
        assert!(shown.is_some_and(|n| n >= 10) && suppression.is_none(), "{cell}: {shown:?} {suppression:?}");
    }
    let total = rows.iter().find(|r| r.get::<_, String>(0) == "{}").map(|r| r.get::<_, Option<i64>>(1));
    assert_eq!(total, Some(Some(persons)), "the grand total is shown");
    // The ledger: who, which view and grouping, the floor applied, cells shown and hidden.
    let entry = su
        .query_one(
            "SELECT recorded_by::text, person_count, detail::text FROM medanon.provision_ledger
              WHERE event = 'safe_counts' AND contract_id = 'it_s'",
            &[],
        )
        .unwrap();
    let (by, person_count, detail): (String, Option<i64>, String) = (entry.get(0), entry.get(1), entry.get(2));
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(by, "it_lab_s");
    assert_eq!(person_count, Some(persons));
    assert_eq!(detail["view"], "patient");
    assert_eq!(detail["role"], "it_lab_s");
    assert_eq!(detail["group_by"], serde_json::json!(["birth_date", "sex"]));
    assert_eq!((detail["min_cell_asked"].as_i64(), detail["min_cell"].as_i64()), (Some(1), Some(10)));
    assert_eq!(detail["cells_shown"].as_u64(), Some(rows.len() as u64));
    assert!(detail["cells_suppressed"].as_u64().is_some_and(|n| n > 0), "{detail}");
    // A rolled-back call is gone from the ledger, but not from the numbering.
    lab.batch_execute(
        "BEGIN; SELECT * FROM medanon.safe_counts('it_s', 'visit', ARRAY['icd10']); ROLLBACK;
         SELECT * FROM medanon.safe_counts('it_s', 'visit', ARRAY['icd10']);",
    )
    .unwrap();
    let calls = strings(&mut su, "SELECT detail ->> 'call' FROM medanon.provision_ledger WHERE event = 'safe_counts' ORDER BY entry_id");
    assert_eq!(calls, ["1", "3"]);
    assert_eq!(count(&mut su, "SELECT count(*) FROM medanon.provision_ledger WHERE medanon.verify_ledger() IS NOT NULL"), 0);
    // No one else gets counts of it: neither another contract's grantee nor an outsider.
    for role in ["it_lab_a", "it_lab_b", "it_outsider"] {
        let mut other = connect_as(role);
        assert_sqlstate(&mut other, "SELECT * FROM medanon.safe_counts('it_s', 'patient', ARRAY['sex'], 10)", SqlState::INSUFFICIENT_PRIVILEGE);
    }
    // Nothing row-level is released for it: no snapshot, even for the operator.
    let mut etl = connect_as("it_etl");
    assert_sqlstate(&mut etl, "SELECT medanon.release_snapshot('it_s')", SqlState::FEATURE_NOT_SUPPORTED);
    // The operator may count (it computes the statistics); its calls are recorded too.
    assert!(!etl.query("SELECT * FROM medanon.safe_counts('it_s', 'patient', ARRAY['sex'])", &[]).unwrap().is_empty());
    let by = strings(&mut su, "SELECT recorded_by::text FROM medanon.provision_ledger WHERE event = 'safe_counts' ORDER BY entry_id");
    assert_eq!(by, ["it_lab_s", "it_lab_s", "it_etl"]);
}
