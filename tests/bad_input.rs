//! Bad input (DESIGN.md invariant 5): every public function is fed a corpus of
//! hostile values in each argument. Each call must give a value or an ERROR with a
//! specific SQLSTATE: never XX000 (a Rust panic or an internal error), never a
//! crashed backend. The server log is checked for "terminated by signal".
//!
//! No error may show a Rust backtrace to the client (issue 13) either: not in its
//! message, DETAIL, HINT or CONTEXT. The test cluster runs with RUST_BACKTRACE set
//! (scripts/test.sh), as a DBA's may, so any capture would show.

use medanon_integration::*;
use postgres::error::SqlState;

/// Text inputs: empty, blank, huge, emoji, mixed scripts, control characters,
/// SQL and JSON syntax, numbers and dates out of range.
fn text_corpus() -> Vec<Option<String>> {
    let mut v: Vec<Option<String>> = [
        "", " ", "\u{3000}", "\t\n", "😀", "👨‍👩‍👧‍👦", "東京Tokyo123ｶﾅかな", "\u{1}\u{7f}", "'; DROP TABLE x; --",
        "\\", "\"", "{}", "[]", "{\"a\": ", "null", "0", "-1", "99999999999999999999999", "NaN", "Infinity",
        "0000-00-00", "9999-99-99", "平成31年5月1日", "S99.13.1", "〒", "〒123-4567", "1234567", "東京都",
        "\u{FEFF}BOM", "\u{202E}rtl", "a\u{0301}", "ｰｰｰ", "ヰヱヲ", "髙﨑",
    ]
    .iter()
    .map(|s| Some(s.to_string()))
    .collect();
    v.push(None);
    v.push(Some("x".repeat(1 << 20)));
    v.push(Some("あ".repeat(1 << 18)));
    v.push(Some("1".repeat(1 << 20)));
    v
}

/// SQL calls with one text placeholder `$1`; the other arguments are valid.
const TEXT_CALLS: &[&str] = &[
    "SELECT medanon.tokenize($1, 'domain')",
    "SELECT medanon.tokenize('value', $1)",
    "SELECT medanon.shift_date(date '2026-04-01', $1, 'c')",
    "SELECT medanon.shift_date(timestamptz '2026-04-01 10:00+09', 'p', $1)",
    "SELECT medanon.date_offset($1, 'c')",
    "SELECT medanon.parse_japanese_date($1)",
    "SELECT medanon.truncate_date(date '2026-04-01', $1)",
    "SELECT medanon.generalize_postal_code($1, 3)",
    "SELECT medanon.prefecture_of($1)",
    "SELECT medanon.municipality_of($1)",
    "SELECT medanon.municipality_of('東京都千代田区', $1)",
    "SELECT medanon.municipality_of($1, 'city')",
    "SELECT medanon.region_of($1)",
    "SELECT medanon.normalize_kana($1)",
    "SELECT medanon.normalize_kanji_name($1)",
    "SELECT medanon.normalize_sex($1)",
    "SELECT medanon.normalize_insurer_number($1)",
    "SELECT medanon.normalize_insured_symbol($1)",
    "SELECT medanon.normalize_insured_number($1)",
    "SELECT medanon._link_problem('H1', '1', $1, $1, $1, $1, $1, $1)",
    "SELECT medanon._link_id1($1, $1, $1, '1975-03-01', '1')",
    "SELECT medanon._link_id2($1, '1975-03-01', '1')",
    "SELECT medanon._link_clk($1)",
    "SELECT medanon.k_anonymity('it_bad.t', ARRAY[$1])",
    "SELECT medanon.k_anonymity('it_bad.t', ARRAY['a'], $1)",
    "SELECT medanon.k_anonymity($1::regclass, ARRAY['a'])",
    "SELECT count(*) FROM medanon.k_report('it_bad.t', ARRAY['a'], $1, 2)",
    "SELECT medanon.l_diversity('it_bad.t', ARRAY['a'], $1, 'p')",
    "SELECT medanon.risk_profile('it_bad.t', ARRAY[$1], 'p', 2)",
    "SELECT medanon.suggest_generalization('it_bad.t', $1::jsonb, 2, 0.1)",
    "SELECT count(*) FROM medanon.suggest_classes($1::regclass)",
    "SELECT medanon.suggest_generalization('it_bad.t', jsonb_build_object('person_column', 'p', 'quasi_identifiers', jsonb_build_object('a', $1)), 2, 0.1)",
    "SELECT medanon.create_contract($1::jsonb)",
    "SELECT medanon.create_contract(jsonb_build_object('id', $1, 'grantee', 'it_etl', 'purpose', 'x', 'approved_on', '2026-01-01', 'expires_on', '2099-01-01', 'kind', 'anonymized', 'k', 5, 'tables', jsonb_build_array()))",
    "SELECT medanon.register_institution($1, 'n', 'hospital')",
    "SELECT medanon.record_notification('H1', $1, now() - interval '1 day')",
    "SELECT medanon.opt_out('H1', $1)",
    "SELECT medanon.opt_out('H1', 'x', $1)",
    "SELECT medanon.opt_out('H1', 'x', 'bereaved_family', $1, 'all', now())",
    "SELECT medanon.withdraw_opt_out($1, 'x')",
    "SELECT medanon.classify('it_bad.t', $1, 'static')",
    "SELECT medanon.classify('it_bad.t', 'a', $1)",
    "SELECT medanon.postal_prefix($1, 3)",
    "SELECT medanon.publish_contract($1)",
    "SELECT medanon.refresh_contract($1)",
    "SELECT medanon.revoke_contract($1)",
    "SELECT medanon.release_snapshot($1)",
    "SELECT * FROM medanon.contract_report($1)",
    "SELECT count(*) FROM medanon.safe_counts($1, 'v', ARRAY['a'])",
    "SELECT count(*) FROM medanon.safe_counts('c', $1, ARRAY['a'])",
    "SELECT count(*) FROM medanon.safe_counts('c', 'v', ARRAY[$1])",
    "SELECT medanon.track_changes($1::regclass)",
    "SELECT medanon.untrack_changes($1::regclass)",
    "SELECT medanon.refresh_contract($1, true)",
    "SELECT medanon.review_link($1, 1, 'same', 'dr. ito', 'why')",
    "SELECT medanon.review_link('conflict', 1, $1, 'dr. ito', 'why')",
    "SELECT medanon.review_link('candidate', 1, 'same', $1, $1)",
    "SELECT medanon.split_person(1, ARRAY['H1'], ARRAY[$1], 'dr. ito', 'why')",
    "SELECT medanon.split_person(1, ARRAY[$1], ARRAY['x'], $1, $1)",
    "SELECT medanon.schedule_expiry($1)",
];

/// Calls with numbers and dates at and beyond their edges.
const EDGE_CALLS: &[&str] = &[
    "SELECT medanon.generalize_age('1975-03-01', '2026-04-01', 0)",
    "SELECT medanon.generalize_age('1975-03-01', '2026-04-01', -2147483648)",
    "SELECT medanon.generalize_age('1975-03-01', '2026-04-01', 2147483647, 2147483647)",
    "SELECT medanon.generalize_age('4714-11-24 BC', '5874897-12-31')",
    "SELECT medanon.generalize_age('infinity', 'infinity')",
    "SELECT medanon.generalize_age('-infinity', '2026-01-01')",
    "SELECT medanon.generalize_postal_code('1234567', -2147483648)",
    "SELECT medanon.generalize_postal_code('1234567', 2147483647)",
    "SELECT medanon.postal_prefix('1234567', -1), medanon.postal_prefix('1234567', 8)",
    "SELECT count(*) FROM medanon.safe_counts('c', 'v', ARRAY[]::text[], -2147483648)",
    "SELECT count(*) FROM medanon.safe_counts('c', 'v', ARRAY['a', 'b', 'c', 'd', 'e'])",
    "SELECT count(*) FROM medanon.safe_counts('c', 'v', ARRAY[NULL]::text[])",
    "SELECT medanon.expire_contracts()",
    "SELECT medanon.shift_date('5874897-12-31'::date, 'p', 'c'), medanon.shift_date('4714-11-24 BC'::date, 'q', 'c')",
    "SELECT medanon.shift_date('294276-12-31 23:59:59'::timestamp, 'p', 'c')",
    "SELECT medanon.shift_date('-infinity'::timestamptz, 'p', 'c')",
    "SELECT medanon.truncate_date('-infinity', 'year')",
    "SELECT medanon.truncate_date('4714-11-24 BC', 'quarter')",
    "SELECT medanon.top_code('NaN'::numeric, 1), medanon.bottom_code('-Infinity'::float8, 0)",
    "SELECT medanon.top_code(9223372036854775807::bigint, -9223372036854775808::bigint)",
    "SELECT medanon.k_anonymity('it_bad.t', ARRAY[]::text[])",
    "SELECT medanon.k_anonymity('it_bad.t', ARRAY[NULL]::text[])",
    "SELECT medanon.k_anonymity('it_bad.t', (SELECT array_agg('a') FROM generate_series(1, 1000)))",
    "SELECT count(*) FROM medanon.k_report('it_bad.t', ARRAY['a'], 'p', -1)",
    "SELECT medanon.risk_profile('it_bad.t', ARRAY['a'], 'p', 2147483647)",
    "SELECT medanon.suggest_generalization('it_bad.t', '{\"person_column\": \"p\", \"quasi_identifiers\": {\"a\": \"age\"}}', -5, 0.1)",
    "SELECT medanon.suggest_generalization('it_bad.t', '{\"person_column\": \"p\", \"quasi_identifiers\": {\"a\": \"age\"}}', 2, 'NaN')",
    "SELECT medanon.suggest_generalization('it_bad.t', '{\"person_column\": \"p\", \"quasi_identifiers\": {\"a\": {\"hierarchy\": \"age\", \"top\": 1e308}}}', 2, 0.1)",
    "SELECT medanon.suggest_generalization('it_bad.t', '{\"person_column\": \"p\", \"quasi_identifiers\": {\"a\": {\"hierarchy\": \"table\", \"table\": \"it_bad.t\"}}}', 2, 0.1)",
    "SELECT medanon.record_notification('H1', 'x', 'infinity')",
    "SELECT medanon.opt_out('H1', 'x', 'self', '-infinity')",
    "SELECT medanon.link_patients('it_bad.staging')",
    "SELECT medanon.link_patients('it_bad.staging')",
    "SELECT medanon.check_intake('it_bad.staging')",
    "SELECT medanon.release_quarantine()",
    "SELECT medanon.track_changes(NULL)",
    "SELECT medanon.untrack_changes(NULL)",
    "SELECT medanon.track_changes('pg_catalog.pg_class')",
    "SELECT medanon.track_changes('it_bad.t'), medanon.track_changes('it_bad.t')",
    "SELECT medanon.untrack_changes('it_bad.t'), medanon.untrack_changes('it_bad.t')",
    "SELECT medanon.review_link('conflict', -9223372036854775808, 'same', 'r', 'w')",
    "SELECT medanon.review_link(NULL, NULL, NULL, NULL, NULL)",
    "SELECT medanon.split_person(-9223372036854775808, ARRAY[]::text[], ARRAY[]::text[], 'r', 'w')",
    "SELECT medanon.split_person(1, ARRAY['H1', 'H1'], ARRAY['x'], 'r', 'w')",
    "SELECT medanon.split_person(NULL, NULL, NULL, NULL, NULL)",
    "SELECT medanon.refresh_contract('nope', NULL)",
    "SELECT medanon.unschedule_expiry()",
];

fn classify(client: &mut postgres::Client, sql: &str, arg: Option<&str>) -> Result<(), String> {
    // The parameter is always sent as text; casts in the call make it what it must be.
    let result = if sql.contains("$1") {
        client.query(sql.replace("$1", "$1::text").as_str(), &[&arg]).map(|_| ())
    } else {
        client.batch_execute(sql)
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if backtrace_in(&e).is_some() => {
            Err(format!("a backtrace in the error of {sql} with {:.40?}: {}", arg, backtrace_in(&e).unwrap_or_default()))
        }
        Err(e) => match e.code() {
            Some(code) if *code == SqlState::INTERNAL_ERROR => Err(format!("XX000 from {sql} with {:.40?}: {e}", arg)),
            Some(_) => Ok(()),
            None => Err(format!("not a server error (crash?) from {sql} with {:.40?}: {e}", arg)),
        },
    }
}

#[test]
fn no_input_surfaces_as_xx000_or_a_backtrace_or_crashes_the_backend() {
    let mut su = fresh_install();
    assert!(server_would_capture_rust_backtraces(&mut su), "the test cluster must run with RUST_BACKTRACE=1 (scripts/test.sh)");
    su.batch_execute(
        "DROP SCHEMA IF EXISTS it_bad CASCADE; CREATE SCHEMA it_bad;
         CREATE TABLE it_bad.t (p int, a text);
         INSERT INTO it_bad.t VALUES (1, '40'), (2, '41'), (3, 'x😀'), (4, NULL);
         SELECT medanon.register_source('it_bad.t', 'p');
         SELECT medanon.register_institution('H1', 'Hospital', 'hospital');
         CREATE TABLE it_bad.staging (institution_code text, local_patient_id text, name_kana text, birth_date text,
                                      sex text, insurer_number text, insured_symbol text, insured_number text);",
    )
    .unwrap();
    // The staging table gets the whole corpus in every column.
    for value in text_corpus() {
        su.execute(
            "INSERT INTO it_bad.staging VALUES ($1, $1, $1, $1, $1, $1, $1, $1), ('H1', $1, $1, '1975-03-01', '1', $1, $1, $1)",
            &[&value],
        )
        .unwrap();
    }
    let mut failures = Vec::new();
    let mut calls = 0;
    for sql in TEXT_CALLS {
        for value in text_corpus() {
            calls += 1;
            // A fresh transaction each time, so one error does not hide the next.
            if let Err(f) = classify(&mut su, sql, value.as_deref()) {
                failures.push(f);
            }
        }
    }
    for sql in EDGE_CALLS {
        calls += 1;
        if let Err(f) = classify(&mut su, sql, None) {
            failures.push(f);
        }
    }
    // The backend is alive and the server log shows no crash.
    let alive: i32 = su.query_one("SELECT 1", &[]).expect("the backend survived").get(0);
    assert_eq!(alive, 1);
    let log = std::fs::read_to_string(std::env::var("MEDANON_TEST_LOG").unwrap()).unwrap_or_default();
    assert!(!log.contains("terminated by signal"), "a backend crashed");
    su.batch_execute("DROP SCHEMA it_bad CASCADE").unwrap();
    assert!(failures.is_empty(), "{} of {calls} calls failed:\n{}", failures.len(), failures.join("\n"));
    println!("{calls} calls, no XX000, no backtrace, no crash");
}

/// Hostile contract specs get a specific SQLSTATE, never XX000; and names built to
/// break quoting (quotes, spaces, semicolons, emoji) go through publish intact.
#[test]
fn hostile_specs_are_refused_and_hostile_names_stay_quoted() {
    let mut su = fresh_install();
    su.batch_execute(
        r#"DROP SCHEMA IF EXISTS "it bad""; DROP", contract_it_q, contract_it_q_data CASCADE;
           CREATE SCHEMA "it bad""; DROP";
           CREATE TABLE "it bad""; DROP"."vi""sit; --" ("pe""rson" bigint, "na me😀" text, "when" date);
           INSERT INTO "it bad""; DROP"."vi""sit; --" SELECT l.person_id, 'x', DATE '2025-01-01' FROM medanon.person_link l;
           SELECT medanon.register_source('"it bad""; DROP"."vi""sit; --"', 'pe"rson');
           SELECT medanon.classify('"it bad""; DROP"."vi""sit; --"', c, cls)
             FROM (VALUES ('pe"rson', 'identifier'), ('na me😀', 'semi_static'), ('when', 'static')) v(c, cls);"#,
    )
    .unwrap();
    let base = r#"{"id": "it_q", "grantee": "it_etl", "purpose": "x", "approved_on": "2026-01-01", "expires_on": "2099-01-01",
                   "kind": "anonymized", "k": 2, "tables": TABLES}"#;
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let many: Vec<String> = (0..10_000).map(|i| format!(r#"{{"source": "it_bad_{i}.t", "columns": {{"a": "keep"}}}}"#)).collect();
    let huge_key = "k".repeat(1 << 20);
    let cases: Vec<(String, postgres::error::SqlState)> = vec![
        (base.replace("TABLES", &format!(r#"[{{"source": "x", "columns": {{"a": {{"top_code": {deep}}}}}}}]"#)), SqlState::INVALID_PARAMETER_VALUE),
        (base.replace("TABLES", &format!("[{}]", many.join(","))), SqlState::UNDEFINED_TABLE),
        (base.replace("TABLES", r#"[{"source": "pg_catalog.pg_authid; DROP TABLE medanon.keyring", "columns": {"rolname": "keep"}}]"#),
         SqlState::INVALID_NAME),
        (base.replace("TABLES", r#"[{"source": "pg_catalog.pg_authid", "columns": {"rolpassword": "keep"}}]"#),
         SqlState::INVALID_PARAMETER_VALUE),
        (base.replace("TABLES", &format!(r#"[{{"source": "x", "columns": {{"{huge_key}": "keep"}}}}]"#)), SqlState::UNDEFINED_TABLE),
        (base.replace("TABLES", "[]").replace("it_q", "it q\\\"; DROP SCHEMA medanon CASCADE; --"), SqlState::INVALID_PARAMETER_VALUE),
        (base.replace("TABLES", "[]").replace("it_q", "it q\"; DROP"), SqlState::INVALID_TEXT_REPRESENTATION),
        (base.replace("TABLES", "null"), SqlState::INVALID_PARAMETER_VALUE),
        (base.replace("\"k\": 2", "\"k\": 1e400").replace("TABLES", "[]"), SqlState::INVALID_PARAMETER_VALUE),
    ];
    let mut etl = connect_as("it_etl");
    for (spec, expected) in &cases {
        let state = match etl.query("SELECT medanon.create_contract($1::text::jsonb)", &[spec]) {
            Ok(_) => None,
            Err(e) => e.code().cloned(),
        };
        assert_eq!(state.as_ref(), Some(expected), "spec {:.120}", spec);
    }
    // The hostile names, published and read back through the view.
    let spec = base.replace(
        "TABLES",
        r#"[{"source": "\"it bad\"\"; DROP\".\"vi\"\"sit; --\"", "columns": {"pe\"rson": "token", "na me😀": "keep", "when": "shift"}}]"#,
    );
    su.batch_execute(r#"GRANT USAGE ON SCHEMA "it bad""; DROP" TO it_etl; GRANT SELECT ON ALL TABLES IN SCHEMA "it bad""; DROP" TO it_etl"#)
        .unwrap();
    etl.query("SELECT medanon.create_contract($1::text::jsonb)", &[&spec]).expect("a spec with hostile names is valid");
    etl.batch_execute("SELECT medanon.publish_contract('it_q')").expect("publish quotes every name");
    let columns: Vec<String> = su
        .query(
            "SELECT column_name::text FROM information_schema.columns
              WHERE table_schema = 'contract_it_q' AND table_name = 'vi\"sit; --' ORDER BY ordinal_position",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(columns, ["pe\"rson", "na me😀", "when"]);
    let rows: i64 = etl.query_one(r#"SELECT count(*) FROM contract_it_q."vi""sit; --""#, &[]).unwrap().get(0);
    let linked: i64 = su.query_one("SELECT count(*) FROM medanon.person_link", &[]).unwrap().get(0);
    assert_eq!(rows, linked, "every linked person's row, and nothing dropped along the way");
    let keyring: i64 = su.query_one("SELECT count(*) FROM medanon.keyring", &[]).unwrap().get(0);
    assert!(keyring >= 2, "the keyring is still there");
    etl.batch_execute("SELECT medanon.revoke_contract('it_q')").unwrap();
    su.batch_execute(r#"DROP SCHEMA "it bad""; DROP" CASCADE"#).unwrap();
}

/// Errors that PostgreSQL raises inside medanon's own queries (SPI) and in parallel
/// workers leave medanon with their own SQLSTATE and message, and no Rust backtrace:
/// a cancelled query, a privilege the caller lacks, a role dropped while a publish
/// waits, and keyed functions under a forced parallel plan (which must simply work).
#[test]
fn errors_raised_inside_medanon_carry_no_backtrace() {
    let mut su = fresh_install();
    assert!(server_would_capture_rust_backtraces(&mut su), "the test cluster must run with RUST_BACKTRACE=1 (scripts/test.sh)");
    su.batch_execute(
        "DROP SCHEMA IF EXISTS it_bad, contract_it_gone, contract_it_gone_data CASCADE; CREATE SCHEMA it_bad;
         DROP ROLE IF EXISTS it_gone; CREATE ROLE it_gone;
         CREATE TABLE it_bad.big AS
         SELECT g AS p, 'patient-' || g AS v, DATE '2020-01-01' + (g % 3000)::int AS d, g % 97 AS a, g % 89 AS b
           FROM generate_series(1, 200000) g;
         ANALYZE it_bad.big;
         CREATE TABLE it_bad.staging (institution_code text, local_patient_id text, name_kana text, birth_date text,
                                      sex text, insurer_number text, insured_symbol text, insured_number text);
         GRANT USAGE ON SCHEMA it_bad TO it_etl;
         GRANT SELECT ON it_bad.big TO it_etl;
         SELECT medanon.register_source('it_bad.big', 'p');
         SELECT medanon.classify('it_bad.big', c, cls)
           FROM (VALUES ('p', 'identifier'), ('v', 'identifier'), ('d', 'static'), ('a', 'quasi_identifier'),
                        ('b', 'quasi_identifier')) x(c, cls);",
    )
    .unwrap();
    let mut etl = connect_as("it_etl");
    let mut problems = Vec::new();
    let mut check = |what: &str, result: Result<(), postgres::Error>, expected: Option<SqlState>| {
        match (&result, &expected) {
            (Err(e), _) if backtrace_in(e).is_some() => {
                problems.push(format!("{what}: a backtrace in the error: {}", backtrace_in(e).unwrap_or_default()))
            }
            (Err(e), Some(code)) if e.code() == Some(code) => {}
            (Ok(()), None) => {}
            (Err(e), _) => problems.push(format!("{what}: expected {expected:?}, got {e}")),
            (Ok(()), Some(code)) => problems.push(format!("{what}: expected {}, but it succeeded", code.code())),
        }
    };

    // Keyed functions under a forced parallel plan, as an ETL login.
    etl.batch_execute(
        "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
         SET max_parallel_workers_per_gather = 2",
    )
    .unwrap();
    for sql in [
        "SELECT count(medanon.tokenize(v, 'x')) FROM it_bad.big",
        "SELECT count(medanon.shift_date(d, v, 'x')) FROM it_bad.big",
        "SELECT sum(medanon.date_offset(v, 'x')) FROM it_bad.big",
    ] {
        check(sql, etl.batch_execute(sql), None);
    }
    etl.batch_execute("RESET ALL").unwrap();

    // A query medanon runs itself, cancelled by the caller's statement_timeout.
    check(
        "k_anonymity cancelled by statement_timeout",
        etl.batch_execute(
            "SET statement_timeout = '20ms';
             SELECT medanon.k_anonymity('it_bad.big', ARRAY['v', 'a', 'b', 'd'], 'p');",
        ),
        Some(SqlState::QUERY_CANCELED),
    );
    etl.batch_execute("RESET statement_timeout").unwrap();

    // A privilege the caller lacks, found by a query medanon runs as the caller.
    check(
        "link_patients on a staging table the caller may not read",
        etl.batch_execute("SELECT medanon.link_patients('it_bad.staging')"),
        Some(SqlState::INSUFFICIENT_PRIVILEGE),
    );

    // The grantee is dropped while publish_contract waits for the contract's row
    // lock, after it checked that the role exists: GRANT then fails inside medanon.
    etl.batch_execute(
        r#"SELECT medanon.create_contract('{"id": "it_gone", "grantee": "it_gone", "purpose": "x",
              "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 2,
              "tables": [{"source": "it_bad.big", "columns": {"p": "token", "a": "keep"}}]}')"#,
    )
    .unwrap();
    let mut holder = superuser();
    holder.batch_execute("BEGIN; SELECT FROM medanon.contract WHERE contract_id = 'it_gone' FOR UPDATE").unwrap();
    let publisher = std::thread::spawn(|| {
        let mut etl = connect_as("it_etl");
        etl.batch_execute("SELECT medanon.publish_contract('it_gone')")
    });
    let waiting = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let n: i64 = su
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE wait_event_type = 'Lock' AND query LIKE '%publish_contract(''it_gone'')%'",
                &[],
            )
            .unwrap()
            .get(0);
        n > 0
    });
    assert!(waiting, "publish_contract never waited for the contract's lock");
    su.batch_execute("DROP ROLE it_gone").unwrap();
    holder.batch_execute("COMMIT").unwrap();
    check(
        "publish_contract after its grantee was dropped",
        publisher.join().expect("the publishing thread"),
        Some(SqlState::UNDEFINED_OBJECT),
    );

    su.batch_execute("DROP SCHEMA it_bad CASCADE").unwrap();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
