// #[pg_test]s of the risk functions' refusals: every argument that can be NULL is
// refused with 22004, so that no risk function answers "no risk" by returning
// nothing. Included into `mod tests` (src/tests/mod.rs), whose schema the test
// runner calls.

#[pg_test]
fn risk_functions_refuse_null_arguments() {
    Spi::run(
        "CREATE TABLE pg_temp.cohort (person int, age int, sex text, diagnosis text);
         INSERT INTO pg_temp.cohort SELECT p, 40 + p % 3, (p % 2)::text, 'E11' FROM generate_series(1, 20) p;",
    )
    .unwrap();
    let spec = r#"'{"person_column": "person", "quasi_identifiers": {"age": "age"}}'"#;
    let suggest = |args: &str| format!("medanon.suggest_generalization({args})->>'found'");
    let found = suggest(&format!("'pg_temp.cohort', {spec}, 5, 0.01"));
    let no_rel = suggest(&format!("NULL, {spec}, 5, 0.01"));
    let no_spec = suggest("'pg_temp.cohort', NULL, 5, 0.01");
    let no_k = suggest(&format!("'pg_temp.cohort', {spec}, NULL, 0.01"));
    let no_share = suggest(&format!("'pg_temp.cohort', {spec}, 5, NULL"));
    let bad_hierarchy =
        suggest(r#"'pg_temp.cohort', '{"person_column": "person", "quasi_identifiers": {"age": "shoe size"}}', 5, 0.01"#);
    let no_table = suggest(
        r#"'pg_temp.cohort', '{"person_column": "person", "quasi_identifiers": {"age": {"hierarchy": "table", "table": "pg_temp.nothing"}}}', 5, 0.01"#,
    );
    check(&[
        // Valid calls first, so that each NULL case differs from an answer in one argument.
        ("(SELECT count(*) FROM medanon.k_report('pg_temp.cohort', ARRAY['sex'], 'person', 11))", Val(Some("2"))),
        ("medanon.l_diversity('pg_temp.cohort', ARRAY['sex'], 'diagnosis', 'person')", Val(Some("1"))),
        ("medanon.risk_profile('pg_temp.cohort', ARRAY['sex'], 'person', 5)->>'persons'", Val(Some("20"))),
        ("(SELECT count(*) FROM medanon.k_report(NULL, ARRAY['sex'], 'person', 5))", Fails("22004")),
        ("(SELECT count(*) FROM medanon.k_report('pg_temp.cohort', NULL, 'person', 5))", Fails("22004")),
        ("(SELECT count(*) FROM medanon.k_report('pg_temp.cohort', ARRAY['sex'], NULL, 5))", Fails("22004")),
        ("(SELECT count(*) FROM medanon.k_report('pg_temp.cohort', ARRAY['sex'], 'person', NULL))", Fails("22004")),
        ("medanon.l_diversity(NULL, ARRAY['sex'], 'diagnosis', 'person')", Fails("22004")),
        ("medanon.l_diversity('pg_temp.cohort', NULL, 'diagnosis', 'person')", Fails("22004")),
        ("medanon.l_diversity('pg_temp.cohort', ARRAY['sex'], NULL, 'person')", Fails("22004")),
        ("medanon.l_diversity('pg_temp.cohort', ARRAY['sex'], 'diagnosis', NULL)", Fails("22004")),
        ("medanon.risk_profile(NULL, ARRAY['sex'], 'person', 5)", Fails("22004")),
        ("medanon.risk_profile('pg_temp.cohort', NULL, 'person', 5)", Fails("22004")),
        ("medanon.risk_profile('pg_temp.cohort', ARRAY['sex'], NULL, 5)", Fails("22004")),
        ("medanon.risk_profile('pg_temp.cohort', ARRAY['sex'], 'person', NULL)", Fails("22004")),
        (found.as_str(), Val(Some("true"))),
        (no_rel.as_str(), Fails("22004")),
        (no_spec.as_str(), Fails("22004")),
        (no_k.as_str(), Fails("22004")),
        (no_share.as_str(), Fails("22004")),
        // Other refusals keep their SQLSTATE.
        ("(SELECT count(*) FROM medanon.k_report('pg_temp.cohort', ARRAY['sex'], 'person', 0))", Fails("22023")),
        ("(SELECT count(*) FROM medanon.k_report('pg_temp.cohort', ARRAY['sex', NULL], 'person', 5))", Fails("22004")),
        ("(SELECT count(*) FROM medanon.k_report('pg_temp.cohort', ARRAY['sex'], 'nobody', 5))", Fails("42703")),
        (bad_hierarchy.as_str(), Fails("22023")),
        (no_table.as_str(), Fails("22023")),
    ]);
}

/// STRICT would bring the silent answer back: PostgreSQL would return zero rows or
/// NULL without calling the function. The markings stay STABLE, PARALLEL RESTRICTED.
#[pg_test]
fn risk_functions_are_not_strict() {
    let marked = Spi::get_one::<String>(
        "SELECT string_agg(p.proname || ':' || p.proisstrict::text || p.provolatile::text || p.proparallel::text, ', '
                           ORDER BY p.proname)
           FROM pg_proc p
          WHERE p.pronamespace = 'medanon'::regnamespace
            AND p.proname IN ('k_report', 'l_diversity', 'risk_profile', 'suggest_generalization', '_suggest_generalization')",
    )
    .unwrap();
    assert_eq!(
        marked.as_deref(),
        Some("_suggest_generalization:falsesr, k_report:falsesr, l_diversity:falsesr, risk_profile:falsesr, suggest_generalization:falsesr")
    );
}
