//! Contract views: the SQL that exposes one source table under one contract, from
//! the contract's rules and what the catalog says of the source's columns.
//!
//! The operator materializes each view's rows into a data table of the contract
//! (`materialize_select`): the raw table (alias `s`) joined to the contract's
//! stored person map (`medanon.contract_person`, alias `m`), which holds each
//! person's per-contract token, date offset and state. Only `visible` persons get
//! rows, and the consent triggers delete a person's rows the moment the person is
//! withheld. The analyst's view (`view_select`) is a plain SELECT of that table,
//! gated by the expiry date. So no view holds a keyed function (PostgreSQL checks
//! EXECUTE on functions inside a view against the analyst), and an analyst query
//! costs what the same query costs on a raw table of that size: a join with the
//! map at query time cost 1.7x to 3.2x the raw query in `make bench`.
//!
//! The expressions of the quasi-identifier columns are returned as well: the
//! operator computes each person's class from exactly what the views show.

use crate::contract::{Contract, Rule};
use std::fmt::Write;

/// `"name"`, with embedded double quotes doubled: safe for any identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal. Backslashes are doubled under the `E''` form, so the literal
/// reads the same whatever `standard_conforming_strings` says.
pub fn literal(value: &str) -> String {
    let quoted = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// One column of a source table, as the catalog describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceColumn {
    pub name: String,
    /// `format_type` of the column, such as `integer` or `timestamp with time zone`.
    pub type_name: String,
    /// Its class in `medanon.source_column`, if it was classified.
    pub class: Option<String>,
}

/// A registered source table and its columns, in table order.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub schema: String,
    pub table: String,
    pub person_column: String,
    pub institution_column: Option<String>,
    pub columns: Vec<SourceColumn>,
}

/// One exposed column: its name (the source column's) and its expression over
/// `s` (the source row) and `m` (the person's map row).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedColumn {
    pub name: String,
    pub expr: String,
    /// The person column, shown as the person's token.
    pub person: bool,
}

/// The name of the token column in a contract's data tables. A source column of
/// this name cannot be exposed.
pub const TOKEN_COLUMN: &str = "_token";

/// How one source table is exposed under one contract.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewPlan {
    /// The view's name in the contract schema: the source table's name.
    pub name: String,
    /// The exposed columns, in source order.
    pub columns: Vec<PlannedColumn>,
    /// The source relation, quoted: `"schema"."table"`, read under the alias `s`.
    pub source: String,
    /// The source's person column, quoted, under alias `s`.
    pub person: String,
    /// The condition that keeps out records of institutions the person may not be
    /// provided from (alias `m` for the map), when the source names its institution.
    pub institution_filter: Option<String>,
    /// The expressions of the exposed quasi-identifier columns, in view order.
    pub quasi_identifiers: Vec<String>,
    /// The exposed column holding the person token, if the person column is exposed.
    pub person_token_column: Option<String>,
}

/// Why a table cannot be planned: the column and the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanError {
    pub column: String,
    pub message: String,
}

const INTEGER_TYPES: [(&str, i64, i64); 3] = [
    ("smallint", i16::MIN as i64, i16::MAX as i64),
    ("integer", i32::MIN as i64, i32::MAX as i64),
    ("bigint", i64::MIN, i64::MAX),
];

/// A number as a SQL literal. serde_json never yields NaN or infinity.
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:?}")
    }
}

/// Top or bottom coding of `col` at `bound`, keeping the column's type. Integer
/// columns take the bound rounded inward (floor for a cap, ceiling for a floor),
/// and a bound outside the type's range leaves the column as it is or pins it to
/// the range's end.
fn coded(col: &str, type_name: &str, bound: f64, top: bool) -> String {
    let (cmp, rounded) = if top { (">", bound.floor()) } else { ("<", bound.ceil()) };
    if let Some((_, min, max)) = INTEGER_TYPES.iter().find(|(t, _, _)| *t == type_name) {
        let (min, max) = (*min as f64, *max as f64);
        if (top && rounded >= max) || (!top && rounded <= min) {
            return col.to_string();
        }
        let pinned = rounded.clamp(min, max) as i64;
        return format!("CASE WHEN {col} {cmp} {pinned} THEN {pinned}::{type_name} ELSE {col} END");
    }
    let lit = format!("{}::{type_name}", literal(&number(bound)));
    format!("CASE WHEN {col} {cmp} {lit} THEN {lit} ELSE {col} END")
}

/// The view expression of one exposed column.
fn expression(contract: &Contract, source: &Source, column: &SourceColumn, rule: &Rule) -> Result<String, PlanError> {
    let col = format!("s.{}", ident(&column.name));
    let fail = |message: String| Err(PlanError { column: column.name.clone(), message });
    let t = column.type_name.as_str();
    Ok(match rule {
        Rule::Drop => unreachable!("dropped columns are not planned"),
        Rule::Keep => col,
        Rule::Token if column.name == source.person_column => "m.token".to_string(),
        Rule::Token => {
            return fail(
                "only the person column can be tokenized in a view (its token is stored per contract); drop this column"
                    .into(),
            )
        }
        Rule::Shift => match t {
            "date" => format!("({col} + m.date_offset)"),
            // Whole 24-hour days, as shift_date does: intervals within a person are kept.
            "timestamp without time zone" | "timestamp with time zone" => {
                format!("({col} + m.date_offset * '24:00:00'::interval)")
            }
            _ => return fail(format!("shift does not fit a column of type {t}")),
        },
        Rule::AgeBand { band, top } => {
            let Some(reference) = contract.reference_date else {
                return fail("age_band needs the contract's reference_date".into());
            };
            let reference = format!("{}::date", literal(&reference.to_string()));
            // A birth date after the reference date, or an infinite one, is not an
            // age: NULL, rather than an error that would stop the analyst's query.
            format!(
                "CASE WHEN pg_catalog.isfinite({col}) AND {col} <= {reference} \
                 THEN medanon.generalize_age({col}, {reference}, {band}, {top}) END"
            )
        }
        Rule::PostalPrefix(n) => format!("medanon.postal_prefix({col}::text, {n})"),
        Rule::Prefecture => format!("medanon.prefecture_of({col}::text)"),
        Rule::TopCode(x) => coded(&col, t, *x, true),
        Rule::BottomCode(x) => coded(&col, t, *x, false),
        Rule::TruncateDate(unit) => format!("medanon.truncate_date({col}, {})", literal(unit)),
        Rule::Auto => return fail("the auto rule is not supported in views; write the levels suggest_generalization gives".into()),
    })
}

/// Plans the view of `contract.spec.tables[index]` over `source`.
pub fn plan(contract: &Contract, index: usize, source: &Source) -> Result<ViewPlan, PlanError> {
    let table = &contract.spec.tables[index];
    let person = source
        .columns
        .iter()
        .find(|c| c.name == source.person_column)
        .ok_or_else(|| PlanError { column: source.person_column.clone(), message: "the person column is missing".into() })?;
    if !INTEGER_TYPES.iter().any(|(t, _, _)| *t == person.type_name) {
        return Err(PlanError {
            column: person.name.clone(),
            message: format!("the person column must hold person_id (bigint), not {}", person.type_name),
        });
    }
    let mut columns = Vec::new();
    let mut quasi_identifiers = Vec::new();
    let mut person_token_column = None;
    // Source order, so the view reads like the table; unnamed columns are dropped.
    for column in &source.columns {
        let Some(rule) = table.columns.get(&column.name) else { continue };
        if *rule == Rule::Drop {
            continue;
        }
        if column.name == TOKEN_COLUMN {
            return Err(PlanError { column: column.name.clone(), message: "this name is reserved for the token column".into() });
        }
        let expr = expression(contract, source, column, rule)?;
        let person = column.name == source.person_column;
        if person {
            person_token_column = Some(column.name.clone());
        } else if column.class.as_deref() == Some("quasi_identifier") {
            quasi_identifiers.push(expr.clone());
        }
        columns.push(PlannedColumn { name: column.name.clone(), expr, person });
    }
    if columns.is_empty() {
        return Err(PlanError { column: String::new(), message: "the view exposes no column".into() });
    }
    let relation = format!("{}.{}", ident(&source.schema), ident(&source.table));
    let person = format!("s.{}", ident(&source.person_column));
    // Records from an institution where the person may not be provided (not
    // notified, or an opt-out limited to that institution) stay out.
    let institution_filter = source.institution_column.as_ref().map(|institution| {
        format!("(m.excluded_institutions IS NULL OR s.{}::text <> ALL (m.excluded_institutions))", ident(institution))
    });
    Ok(ViewPlan {
        name: source.table.clone(),
        columns,
        source: relation,
        person,
        institution_filter,
        quasi_identifiers,
        person_token_column,
    })
}

/// The rows of a view, as the operator writes them into the contract's data table:
/// the token first, then every other exposed column, of visible persons only.
pub fn materialize_select(plan: &ViewPlan, contract_id: &str) -> String {
    let mut sql = format!("SELECT m.token AS {}", ident(TOKEN_COLUMN));
    for c in plan.columns.iter().filter(|c| !c.person) {
        let _ = write!(sql, ", {} AS {}", c.expr, ident(&c.name));
    }
    let _ = write!(
        sql,
        " FROM {} s JOIN medanon.contract_person m ON m.person_id = {} AND m.contract_id = {} WHERE m.state = 'visible'",
        plan.source,
        plan.person,
        literal(contract_id)
    );
    if let Some(filter) = &plan.institution_filter {
        let _ = write!(sql, " AND {filter}");
    }
    sql
}

/// The analyst's view over the data table `data` (quoted): the columns in source
/// order, the token under the person column's name, nothing after `expires_on`.
pub fn view_select(plan: &ViewPlan, data: &str, expires_on: &str) -> String {
    let list: Vec<String> = plan
        .columns
        .iter()
        .map(|c| {
            if c.person {
                format!("d.{} AS {}", ident(TOKEN_COLUMN), ident(&c.name))
            } else {
                format!("d.{}", ident(&c.name))
            }
        })
        .collect();
    format!("SELECT {} FROM {data} d WHERE CURRENT_DATE <= {}::date", list.join(", "), literal(expires_on))
}

/// The SQL expression that gives a person's class key from one view's
/// quasi-identifiers: the row of generalized values, as text.
pub fn class_row(plan: &ViewPlan, index: usize) -> Option<String> {
    if plan.quasi_identifiers.is_empty() {
        return None;
    }
    Some(format!("'{index}:' || ROW({})::text", plan.quasi_identifiers.join(", ")))
}

/// The persons of a contract: every person id in any of its sources. The operator
/// writes them into a scratch table and analyzes it, so the statements below are
/// planned for the real number of persons (a DISTINCT over several tables is
/// estimated at 200 rows, and planned with nested loops that took 12 s a million).
pub fn persons_select(plans: &[ViewPlan]) -> String {
    let persons: Vec<String> = plans
        .iter()
        .map(|p| format!("SELECT {}::bigint AS person_id FROM {} s", p.person, p.source))
        .collect();
    format!("SELECT DISTINCT x.person_id FROM ({}) x WHERE x.person_id IS NOT NULL", persons.join(" UNION ALL "))
}

/// What a contract's person map should hold now, one row per person of
/// `persons` (quoted relation of `persons_select`'s rows), from one pass over the
/// sources: (person_id, token, date_offset, state, excluded_institutions,
/// class_key). `whole_person`: a person with any excluded institution is withheld
/// whole (some source does not name its institution, so its records cannot be
/// told apart). The operator writes it into a scratch table and applies it to
/// `medanon.contract_person` with a plain INSERT and UPDATE: an INSERT ... ON
/// CONFLICT of the same rows took 14 s a million. The values are literals, since
/// CREATE TABLE AS takes no parameters; the contract id is `[a-z][a-z0-9_]*`.
///
/// Per person: the consent state from `eligible_records` (a record counts if its
/// patient was notified, the wait is over and no opt-out in scope is in force),
/// the stored token and offset (kept across refreshes and key rotations, computed
/// only for new persons), and the class: md5 of every distinct generalized
/// quasi-identifier row the views show of the person, across all tables.
pub fn person_map_select(
    plans: &[ViewPlan],
    persons: &str,
    contract_id: &str,
    domain: &str,
    whole_person: bool,
    k: Option<i32>,
) -> String {
    let mut qi: Vec<String> = plans
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let row = class_row(p, i)?;
            let filter = p.institution_filter.as_ref().map(|f| format!(" AND {f}")).unwrap_or_default();
            Some(format!(
                "SELECT m.person_id, {row} AS v FROM {} s JOIN m ON m.person_id = {} WHERE m.state0 = 'visible'{filter}",
                p.source, p.person
            ))
        })
        .collect();
    if qi.is_empty() {
        qi.push("SELECT NULL::bigint AS person_id, NULL::text AS v WHERE false".into());
    }
    format!(
        "WITH linked AS (
    SELECT l.person_id, count(*) AS records, count(e.person_id) AS eligible,
           array_agg(DISTINCT l.institution_code ORDER BY l.institution_code)
               FILTER (WHERE e.person_id IS NULL) AS excluded
      FROM medanon.person_link l
      LEFT JOIN medanon.eligible_records e
        ON e.institution_code = l.institution_code AND e.local_patient_id = l.local_patient_id
     WHERE l.person_id IN (SELECT p.person_id FROM {persons} p)
     GROUP BY l.person_id
), consent AS (
    SELECT p.person_id, coalesce(k.records, 0) AS records, coalesce(k.eligible, 0) AS eligible, k.excluded
      FROM {persons} p LEFT JOIN linked k ON k.person_id = p.person_id
), m AS (
    SELECT c.person_id, c.excluded AS excluded_institutions,
           coalesce(old.token, left(medanon.tokenize(c.person_id::text, {domain}), 32)::uuid) AS token,
           coalesce(old.date_offset, medanon.date_offset(c.person_id::text, {domain})) AS date_offset,
           CASE WHEN c.records = 0 THEN 'unlinked'
                WHEN c.eligible = 0 OR ({whole_person} AND c.excluded IS NOT NULL) THEN 'consent'
                ELSE 'visible' END AS state0
      FROM consent c
      LEFT JOIN medanon.contract_person old ON old.contract_id = {id} AND old.person_id = c.person_id
), qi AS (
    {qi}
), classes AS (
    SELECT qi.person_id, md5(string_agg(DISTINCT qi.v, '|' ORDER BY qi.v))::uuid AS class_key
      FROM qi GROUP BY qi.person_id
), final AS (
    SELECT m.*, CASE WHEN m.state0 = 'visible' THEN coalesce(cl.class_key, md5('')::uuid) END AS class_key
      FROM m LEFT JOIN classes cl ON cl.person_id = m.person_id
), counted AS (
    SELECT f.*, count(*) FILTER (WHERE f.state0 = 'visible') OVER (PARTITION BY f.class_key) AS class_persons
      FROM final f
)
SELECT c.person_id, c.token, c.date_offset,
       CASE WHEN c.state0 <> 'visible' THEN c.state0 WHEN c.class_persons < {k} THEN 'k' ELSE 'visible' END AS state,
       c.excluded_institutions, c.class_key
  FROM counted c",
        qi = qi.join("\n    UNION ALL\n    "),
        id = literal(contract_id),
        domain = literal(domain),
        k = k.map_or("NULL::integer".to_string(), |k| k.to_string()),
    )
}

/// Deletes from the map the persons no source holds any more. `$1` the contract id.
pub fn gone_persons_sql(persons: &str) -> String {
    format!(
        "DELETE FROM medanon.contract_person m WHERE m.contract_id = $1 \
         AND NOT EXISTS (SELECT FROM {persons} p WHERE p.person_id = m.person_id)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Ymd;
    use crate::contract::parse;

    const SPEC: &str = r#"{"id": "c2026_001", "grantee": "lab_a", "purpose": "p",
        "approved_on": "2026-11-01", "expires_on": "2027-03-31", "kind": "anonymized", "k": 5,
        "reference_date": "2026-04-01",
        "tables": [
          {"source": "clinical.patient",
           "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 5, "top": 90}},
                       "sex": "keep", "postal_code": {"postal_prefix": 3}, "address": "prefecture", "name": "drop"}},
          {"source": "clinical.visit",
           "columns": {"person_id": "token", "visit_date": "shift", "icd10": "keep", "lab_value": {"top_code": 500},
                       "days": {"bottom_code": 1.5}}}
        ]}"#;

    fn contract() -> Contract {
        parse(SPEC, Ymd { year: 2026, month: 11, day: 25 }).unwrap()
    }

    fn col(name: &str, type_name: &str, class: &str) -> SourceColumn {
        SourceColumn { name: name.into(), type_name: type_name.into(), class: Some(class.into()) }
    }

    fn patient() -> Source {
        Source {
            schema: "clinical".into(),
            table: "patient".into(),
            person_column: "person_id".into(),
            institution_column: None,
            columns: vec![
                col("person_id", "bigint", "identifier"),
                col("name", "text", "identifier"),
                col("birth_date", "date", "quasi_identifier"),
                col("sex", "smallint", "quasi_identifier"),
                col("postal_code", "text", "quasi_identifier"),
                col("address", "text", "quasi_identifier"),
                col("blood_type", "text", "static"),
            ],
        }
    }

    fn visit() -> Source {
        Source {
            schema: "clinical".into(),
            table: "visit".into(),
            person_column: "person_id".into(),
            institution_column: Some("institution_code".into()),
            columns: vec![
                col("person_id", "bigint", "identifier"),
                col("institution_code", "text", "quasi_identifier"),
                col("visit_date", "date", "static"),
                col("icd10", "text", "semi_static"),
                col("lab_value", "numeric", "dynamic"),
                col("days", "integer", "dynamic"),
            ],
        }
    }

    proptest::proptest! {
        /// A quoted identifier or literal is one token: its inside has only doubled
        /// quotes, so no input closes it early (the heart of "no SQL from a user's string").
        #[test]
        fn quoting_closes_only_at_the_end(s in "\\PC{0,40}") {
            let id = ident(&s);
            let inner = &id[1..id.len() - 1];
            proptest::prop_assert!(id.starts_with('"') && id.ends_with('"'));
            proptest::prop_assert_eq!(inner.replace("\"\"", ""), s.replace('"', ""));
            let lit = literal(&s);
            let body = lit.strip_prefix('E').unwrap_or(&lit);
            let inner = &body[1..body.len() - 1];
            proptest::prop_assert!(body.starts_with('\'') && body.ends_with('\''));
            proptest::prop_assert!(!inner.replace("''", "").contains('\''));
            if lit.starts_with('E') {
                proptest::prop_assert!(!inner.replace("\\\\", "").contains('\\'));
            }
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("a\\b'"), "E'a\\\\b'''");
    }

    #[test]
    fn patient_view_keeps_source_order_and_drops_what_is_not_named() {
        let p = plan(&contract(), 0, &patient()).unwrap();
        assert_eq!(p.name, "patient");
        let names: Vec<&str> = p.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["person_id", "birth_date", "sex", "postal_code", "address"], "source order; name and blood_type not exposed");
        assert_eq!(p.quasi_identifiers.len(), 4);
        assert_eq!(p.person_token_column.as_deref(), Some("person_id"));
        assert_eq!(p.institution_filter, None);
        assert_eq!(class_row(&p, 0).unwrap(), format!("'0:' || ROW({})::text", p.quasi_identifiers.join(", ")));
        let m = materialize_select(&p, "c2026_001");
        assert!(m.starts_with("SELECT m.token AS \"_token\", CASE WHEN pg_catalog.isfinite(s.\"birth_date\")"), "{m}");
        assert!(m.contains("medanon.generalize_age(s.\"birth_date\", '2026-04-01'::date, 5, 90) END AS \"birth_date\""));
        assert!(m.contains("medanon.postal_prefix(s.\"postal_code\"::text, 3) AS \"postal_code\""));
        assert!(m.contains("medanon.prefecture_of(s.\"address\"::text) AS \"address\""));
        assert!(m.ends_with("m.person_id = s.\"person_id\" AND m.contract_id = 'c2026_001' WHERE m.state = 'visible'"), "{m}");
        assert!(!m.contains("\"name\"") && !m.contains("blood_type"));
        let v = view_select(&p, "\"contract_c2026_001_data\".\"t0_g1\"", "2027-03-31");
        assert_eq!(
            v,
            "SELECT d.\"_token\" AS \"person_id\", d.\"birth_date\", d.\"sex\", d.\"postal_code\", d.\"address\" \
             FROM \"contract_c2026_001_data\".\"t0_g1\" d WHERE CURRENT_DATE <= '2027-03-31'::date"
        );
        for sql in [&m, &v] {
            assert!(!sql.contains("tokenize") && !sql.contains("shift_date") && !sql.contains("date_offset("), "no keyed function");
        }
    }

    #[test]
    fn visit_view_shifts_codes_and_filters_institutions() {
        let p = plan(&contract(), 1, &visit()).unwrap();
        let m = materialize_select(&p, "c2026_001");
        assert!(m.contains("(s.\"visit_date\" + m.date_offset) AS \"visit_date\""));
        assert!(m.contains("CASE WHEN s.\"lab_value\" > '500'::numeric THEN '500'::numeric ELSE s.\"lab_value\" END"));
        // 1.5 as a floor of an integer column: values below 2 become 2.
        assert!(m.contains("CASE WHEN s.\"days\" < 2 THEN 2::integer ELSE s.\"days\" END"), "{m}");
        assert!(m.ends_with("AND (m.excluded_institutions IS NULL OR s.\"institution_code\"::text <> ALL (m.excluded_institutions))"));
        assert!(p.quasi_identifiers.is_empty(), "institution_code is not exposed, so it is no quasi-identifier here");
        assert_eq!(class_row(&p, 1), None);
    }

    #[test]
    fn the_person_map_reads_every_source_and_classes_from_quasi_identifiers() {
        let c = contract();
        let plans = vec![plan(&c, 0, &patient()).unwrap(), plan(&c, 1, &visit()).unwrap()];
        let persons = persons_select(&plans);
        assert!(persons.contains("SELECT s.\"person_id\"::bigint AS person_id FROM \"clinical\".\"patient\" s UNION ALL SELECT s.\"person_id\"::bigint AS person_id FROM \"clinical\".\"visit\" s"));
        let sql = person_map_select(&plans, "\"d\".\"_persons\"", "c2026_001", "contract:c2026_001", true, Some(5));
        assert!(sql.contains("FROM \"d\".\"_persons\" p LEFT JOIN linked k"));
        assert!(sql.contains("medanon.tokenize(c.person_id::text, 'contract:c2026_001')"));
        assert!(sql.contains("old.contract_id = 'c2026_001'") && sql.contains("(true AND c.excluded IS NOT NULL)"));
        assert!(sql.contains("c.class_persons < 5 THEN 'k'"));
        // Only the patient view exposes quasi-identifiers, so only it feeds the class.
        assert_eq!(sql.matches("AS v FROM").count(), 1, "{sql}");
        assert!(sql.contains(&plans[0].quasi_identifiers[0]));
        assert!(!sql.contains('$'), "no parameters: CREATE TABLE AS takes none");
        let gone = gone_persons_sql("\"d\".\"_persons\"");
        assert!(gone.ends_with("NOT EXISTS (SELECT FROM \"d\".\"_persons\" p WHERE p.person_id = m.person_id)"));
        // Without any quasi-identifier, everyone falls into one class.
        let none = person_map_select(&plans[1..], "\"d\".\"_persons\"", "c", "contract:c", false, None);
        assert!(none.contains("c.class_persons < NULL::integer"));
        assert!(none.contains("WHERE false"));
    }

    #[test]
    fn codes_outside_an_integer_range() {
        assert_eq!(coded("s.x", "smallint", 1e9, true), "s.x");
        assert_eq!(coded("s.x", "smallint", -1e9, false), "s.x");
        assert_eq!(coded("s.x", "smallint", -1e9, true), "CASE WHEN s.x > -32768 THEN -32768::smallint ELSE s.x END");
        assert_eq!(coded("s.x", "double precision", 0.25, true),
                   "CASE WHEN s.x > '0.25'::double precision THEN '0.25'::double precision ELSE s.x END");
    }

    #[test]
    fn refusals_name_the_column() {
        let c = contract();
        let mut s = patient();
        s.columns[0].type_name = "text".into();
        assert_eq!(plan(&c, 0, &s).unwrap_err().column, "person_id");
        let mut c2 = c.clone();
        c2.spec.tables[0].columns.insert("name".into(), Rule::Token);
        let e = plan(&c2, 0, &patient()).unwrap_err();
        assert_eq!(e.column, "name");
        assert!(e.message.contains("only the person column"));
        let mut c3 = c.clone();
        c3.spec.tables[1].columns.insert("icd10".into(), Rule::Shift);
        assert_eq!(plan(&c3, 1, &visit()).unwrap_err().column, "icd10");
    }

    #[test]
    fn hostile_names_stay_quoted() {
        let mut s = patient();
        s.schema = "x\"; DROP TABLE t; --".into();
        s.columns[3].name = "se\"x".into();
        let mut c = contract();
        let rule = c.spec.tables[0].columns.remove("sex").unwrap();
        c.spec.tables[0].columns.insert("se\"x".into(), rule);
        let p = plan(&c, 0, &s).unwrap();
        let m = materialize_select(&p, "c2026_001");
        assert!(m.contains("FROM \"x\"\"; DROP TABLE t; --\".\"patient\" s"), "{m}");
        assert!(m.contains("s.\"se\"\"x\" AS \"se\"\"x\""));
        let mut reserved = patient();
        reserved.columns[3].name = TOKEN_COLUMN.into();
        let mut c2 = contract();
        let rule = c2.spec.tables[0].columns.remove("sex").unwrap();
        c2.spec.tables[0].columns.insert(TOKEN_COLUMN.into(), rule);
        assert_eq!(plan(&c2, 0, &reserved).unwrap_err().column, TOKEN_COLUMN);
    }
}
