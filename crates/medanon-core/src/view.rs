//! Contract views: quoting, and the SQL that reads a source table under one
//! contract, rendered from a [`ViewPlan`] that the planner (`crate::plan`)
//! checked.
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

use crate::plan::{PersonState, ViewPlan, TOKEN_COLUMN};
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
pub(crate) fn coded(col: &str, type_name: &str, bound: f64, top: bool) -> String {
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

/// Top or bottom coding of `col` at a bound computed at publish (`bound`, a
/// scalar SQL expression), keeping the column's type; integer columns take the
/// bound rounded inward.
pub(crate) fn coded_at(col: &str, type_name: &str, bound: &str, top: bool) -> String {
    let (cmp, round) = if top { (">", "floor") } else { ("<", "ceil") };
    let bound = if INTEGER_TYPES.iter().any(|(t, _, _)| *t == type_name) {
        format!("pg_catalog.{round}({bound})::{type_name}")
    } else {
        format!("({bound})::{type_name}")
    };
    format!("CASE WHEN {col} {cmp} {bound} THEN {bound} ELSE {col} END")
}

/// The scratch table that maps each rare value of a publish or refresh to what
/// the views show instead (`key`, `v`, `shown`; `shown` NULL: suppressed).
pub const VALUES_TABLE: &str = "_values";

/// Which rows [`materialize_select`] writes, and how it shows rare values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Materialize<'a> {
    /// Every visible person's rows, rare values replaced as `data_schema._values`
    /// maps them (publish, full refresh).
    All,
    /// The rows of the visible persons of a scratch table (quoted, with a
    /// `person_id` column), rare values as the rule gives them: the incremental
    /// refresh replaces them after it has counted them.
    Persons(&'a str),
}

/// The rows of a view, as the operator writes them into the contract's data table:
/// the token first, then every other exposed column, of visible persons only. A
/// rare value (see [`crate::plan::RareColumn`]) is shown as `data_schema._values`
/// maps it: its ancestor, or NULL. A replaced value is kept in a column of its own
/// (`RareColumn::raw`, NULL where nothing was replaced, so it costs the table
/// almost nothing): the views never show it, and the consent triggers and the
/// incremental refresh count persons by `coalesce(raw, column)`, the value before
/// replacement ([`raw_value`]).
pub fn materialize_select(plan: &ViewPlan, contract_id: &str, data_schema: &str, rows: Materialize<'_>) -> String {
    let mut sql = format!("SELECT m.token AS {}", ident(TOKEN_COLUMN));
    let mut raws = String::new();
    let mut joins = String::new();
    let values = format!("{}.{}", ident(data_schema), ident(VALUES_TABLE));
    for c in plan.columns.iter().filter(|c| !c.person) {
        match plan.rare.iter().find(|r| r.column == c.name) {
            Some(r) if rows == Materialize::All => {
                let alias = format!("r{}", r.key);
                let shown = if r.hierarchy.is_some() { format!(" ELSE {alias}.shown") } else { String::new() };
                let _ = write!(sql, ", CASE WHEN {alias}.v IS NULL THEN {}{shown} END AS {}", c.expr, ident(&c.name));
                let _ = write!(joins, " LEFT JOIN {values} {alias} ON {alias}.key = {} AND {alias}.v = ({})::text", r.key, c.expr);
                let _ = write!(raws, ", CASE WHEN {alias}.v IS NOT NULL THEN {} END AS {}", c.expr, ident(&r.raw));
            }
            Some(r) => {
                let _ = write!(sql, ", {} AS {}", c.expr, ident(&c.name));
                let _ = write!(raws, ", CASE WHEN false THEN {} END AS {}", c.expr, ident(&r.raw));
            }
            None => {
                let _ = write!(sql, ", {} AS {}", c.expr, ident(&c.name));
            }
        }
    }
    sql.push_str(&raws);
    let _ = write!(sql, " {}", rows_joined(plan, contract_id, &joins));
    if let Materialize::Persons(persons) = rows {
        let _ = write!(sql, " AND m.person_id IN (SELECT x.person_id FROM {persons} x)");
    }
    sql
}

/// A data table row's value of a rare column before replacement (alias `d`):
/// the kept value where one was replaced, else the shown one.
pub fn raw_value(r: &crate::plan::RareColumn) -> String {
    format!("coalesce(d.{}, d.{})", ident(&r.raw), ident(&r.column))
}

/// `FROM ... WHERE ...` of the rows of view `plan` a contract shows: the source
/// (`s`) joined to the stored map (`m`), of visible persons, without the
/// records of institutions they may not be provided from.
pub fn contract_rows(plan: &ViewPlan, contract_id: &str) -> String {
    rows_joined(plan, contract_id, "")
}

/// [`contract_rows`], with more joins (`joins`, each starting with a space)
/// after the map's.
fn rows_joined(plan: &ViewPlan, contract_id: &str, joins: &str) -> String {
    let mut sql = format!(
        "FROM {} s JOIN medanon.contract_person m ON m.person_id = {} AND m.contract_id = {}{joins} WHERE m.state = {}",
        plan.source,
        plan.person,
        literal(contract_id),
        PersonState::Visible.sql()
    );
    if let Some(filter) = &plan.institution_filter {
        let _ = write!(sql, " AND {filter}");
    }
    sql
}

/// The expiry gate: true until the end of `expires_on` in the operator's time
/// zone. `now()` is the transaction's start, and `timezone(zone, ...)` and the
/// cast to date read no session setting (TimeZone, DateStyle), so nothing the
/// analyst sets moves it.
pub fn until_expiry(expires_on: &str, zone: &str) -> String {
    format!("pg_catalog.timezone({}, pg_catalog.now())::date <= {}::date", literal(zone), literal(expires_on))
}

/// The analyst's view over the data table `data` (quoted): the columns in source
/// order, the token under the person column's name, nothing after `expires_on`
/// (a day in the operator's time zone `zone`).
pub fn view_select(plan: &ViewPlan, data: &str, expires_on: &str, zone: &str) -> String {
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
    format!("SELECT {} FROM {data} d WHERE {}", list.join(", "), until_expiry(expires_on, zone))
}

/// The SQL expression that gives a person's class key from one view's
/// quasi-identifiers: the row of generalized values, as text.
pub fn class_row(plan: &ViewPlan, index: usize) -> Option<String> {
    if plan.quasi_identifiers.is_empty() {
        return None;
    }
    Some(format!("'{index}:' || ROW({})::text", plan.quasi_identifiers.join(", ")))
}

/// A new person's token: 64 random bits from the operating system's random
/// source (`medanon._new_token()`, volatile, drawn per row). Collisions within a
/// contract are drawn again by publish (`ContractPlan::redraw_tokens_sql`). Two
/// `gen_random_uuid()` per person, cut and XORed in SQL, took 4.6 s a million.
pub const NEW_TOKEN: &str = "medanon._new_token()";

/// The rows of `p` a person may be shown with, joined to the scratch table
/// `base` (alias `m`, see [`person_base_select`]), for persons `m.state0`
/// visible: `SELECT m.person_id, <what> ... `.
fn visible_rows(p: &ViewPlan, base: &str, what: &str) -> String {
    let filter = p.institution_filter.as_ref().map(|f| format!(" AND {f}")).unwrap_or_default();
    format!(
        "SELECT m.person_id, {what} FROM {} s JOIN {base} m ON m.person_id = {} WHERE m.state0 = {}{filter}",
        p.source,
        p.person,
        PersonState::Visible.sql()
    )
}

/// Each person of `persons` (a query or table giving `person_id`) with the
/// consent state that person's records give (`state0`: unlinked, consent or
/// visible) and the institutions whose records stay out (`excluded`), from
/// `person_link` and `eligible_records` (a record counts if its patient was
/// notified, the wait is over and no opt-out in scope is in force).
/// `whole_person`: a person with any excluded institution is withheld whole
/// (some source does not name its institution, so its records cannot be told
/// apart).
///
/// The excluded institutions are gathered as they come and sorted and made
/// distinct afterwards, for the few persons who have any: an
/// `array_agg(DISTINCT ... ORDER BY ...)` runs one small sort per person in
/// PostgreSQL 15, even when its FILTER keeps no row (3.5 s against 2.4 s at 1M
/// persons, the same arrays).
pub fn consent_select(persons: &str, whole_person: bool) -> String {
    format!(
        "SELECT p.person_id, k.excluded,
       CASE WHEN coalesce(k.records, 0) = 0 THEN {unlinked}
            WHEN coalesce(k.eligible, 0) = 0 OR ({whole_person} AND k.excluded IS NOT NULL) THEN {consent}
            ELSE {visible} END AS state0
  FROM {persons} p
  LEFT JOIN (SELECT y.person_id, y.records, y.eligible,
                    CASE WHEN y.excluded IS NOT NULL
                         THEN ARRAY(SELECT DISTINCT u.code FROM unnest(y.excluded) u(code) ORDER BY u.code) END AS excluded
               FROM (SELECT l.person_id, count(*) AS records, count(e.person_id) AS eligible,
                            array_agg(l.institution_code) FILTER (WHERE e.person_id IS NULL) AS excluded
                       FROM medanon.person_link l
                       LEFT JOIN medanon.eligible_records e
                         ON e.institution_code = l.institution_code AND e.local_patient_id = l.local_patient_id
                      WHERE l.person_id IN (SELECT q.person_id FROM {persons} q)
                      GROUP BY l.person_id) y) k ON k.person_id = p.person_id",
        visible = PersonState::Visible.sql(),
        consent = PersonState::Consent.sql(),
        unlinked = PersonState::Unlinked.sql(),
    )
}

/// The first part of a contract's person map, written to a scratch table and
/// analyzed before the rest ([`person_class_select`]) reads it: one row per
/// person of `persons` with the consent state (`state0`, see
/// [`consent_select`]), the stored or new token and offset, and the stored
/// first class and first dates. Its own table, so the planner knows how many
/// persons are visible: as a CTE it was guessed at 0.5%, and the visit rows were
/// read by a nested loop of a million index scans (54 s).
pub fn person_base_select(plan: &crate::plan::ContractPlan, persons: &str) -> String {
    format!(
        "SELECT c.person_id, c.excluded AS excluded_institutions,
       coalesce(old.token, {NEW_TOKEN}) AS token,
       coalesce(old.date_offset, medanon.date_offset(c.person_id::text, {domain})) AS date_offset,
       old.first_class, old.first_dates AS old_first_dates, c.state0
  FROM ({consent}) c
  LEFT JOIN medanon.contract_person old ON old.contract_id = {id} AND old.person_id = c.person_id",
        consent = consent_select(persons, plan.whole_person),
        id = literal(&plan.id),
        domain = literal(&plan.domain),
    )
}

/// The shifted dates of the persons of `base` that a contract shows (state0
/// visible), per person, offset and shifted column (`c`, numbered across the
/// contract's views; NULL for all columns together when there are several):
/// (person_id, o, c, ds, lo, hi), `ds` with repeats (the calendar count
/// drops them; a DISTINCT here forced a sort of every row). Written to a scratch
/// table (`_dates`) that the study window ([`window_select`]) and the calendar
/// check read.
pub fn person_dates_select(plan: &crate::plan::ContractPlan, base: &str) -> String {
    let mut dates: Vec<String> = plan
        .views
        .iter()
        .flat_map(|p| p.shifted_dates.iter().map(move |d| (p, d)))
        .enumerate()
        .map(|(c, (p, d))| visible_rows(p, base, &format!("m.date_offset AS o, {c} AS c, {d} AS d")))
        .collect();
    // With several shifted columns, an analyst may attack each alone (a column of
    // birth dates would otherwise widen the window and excuse the visits) or all
    // together: the check takes the fewest offsets of each column and of all.
    let grouping = if dates.len() > 1 {
        "GROUPING SETS ((d.person_id, d.o, d.c), (d.person_id, d.o))"
    } else {
        "d.person_id, d.o, d.c"
    };
    if dates.is_empty() {
        dates.push("SELECT NULL::bigint AS person_id, NULL::integer AS o, NULL::integer AS c, NULL::date AS d WHERE false".into());
    }
    format!(
        "SELECT d.person_id, d.o, d.c, array_agg(d.d) AS ds, min(d.d) AS lo, max(d.d) AS hi
           FROM ({}) d WHERE pg_catalog.isfinite(d.d) GROUP BY {grouping}",
        dates.join("\n      UNION ALL ")
    )
}

/// The study window of each shifted column (and of all together, `c` NULL): the
/// span of the real dates the contract shows, `dates` (see
/// [`person_dates_select`]), widened by the window stored at earlier publishes
/// and refreshes (`medanon.contract_window`). It never narrows: an analyst who
/// holds an earlier release knows its dates, and a refresh that reads only the
/// persons who changed gives the same window as one that reads everyone.
pub fn window_select(contract_id: &str, dates: &str) -> String {
    format!(
        "SELECT w.c, min(w.lo) AS lo, max(w.hi) AS hi
           FROM (SELECT d.c, d.lo, d.hi FROM {dates} d
                 UNION ALL
                 SELECT cw.date_column, cw.first_date, cw.last_date FROM medanon.contract_window cw
                  WHERE cw.contract_id = {id}) w
          GROUP BY w.c",
        id = literal(contract_id)
    )
}

/// Per person of `base` (see [`person_base_select`]), what the person's rows say,
/// before k: the class (`class0`: md5 of the generalized quasi-identifier rows
/// the views show of the person, across all tables: every row of a person-level
/// view, each distinct row of another), the first dates of `days_since`
/// columns (`new_first_dates`), and the state before k (`state1`):
/// - the consent state of the base (`state0`) if it withholds the person;
/// - with k (anonymized and statistics contracts), the class is fixed at the
///   person's first exposure (`first_class`): a person whose class differs now is
///   `changed`, shown in no view, so every token carries the same
///   quasi-identifiers in every release an analyst may join;
/// - a person whose shifted dates (`dates`, see [`person_dates_select`]) the
///   public calendar, within the study window (`window`, see [`window_select`]),
///   narrows to fewer than [`crate::plan::MIN_SHIFT_CANDIDATES`] offsets is
///   `calendar`;
/// - else visible (k decides next: [`person_map_select`], or the incremental
///   refresh's own count).
///
/// A person's rows are joined in sorted order. They reach `string_agg` from a
/// sorted subquery, not through the aggregate's own ORDER BY, which PostgreSQL 15
/// runs as one small sort per person: at 1M persons the class keys took 6.3 s
/// that way and 4.0 s this way, and came out the same. The order holds because
/// `string_agg` has no combine function in PostgreSQL 15 (no partial
/// aggregation across workers) and nothing stands between the sort and the
/// aggregate; PostgreSQL 16 gives `string_agg` a combine function, so a port
/// must go back to the aggregate's ORDER BY.
pub fn person_class_select(plan: &crate::plan::ContractPlan, base: &str, dates: &str, window: &str) -> String {
    let plans = &plan.views;
    let k = plan.k;
    let mut qi: Vec<String> = plans
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let row = class_row(p, i)?;
            let rows = visible_rows(p, base, &format!("{row} AS v"));
            // Every row of a person-level view counts; a visit view counts each distinct row once.
            Some(if p.person_level { rows } else { format!("SELECT DISTINCT * FROM ({rows}) d") })
        })
        .collect();
    if qi.is_empty() {
        qi.push("SELECT NULL::bigint AS person_id, NULL::text AS v WHERE false".into());
    }
    let shifted: usize = plans.iter().map(|p| p.shifted_dates.len()).sum();
    // Offsets the public calendar leaves each person (anonymous contracts with
    // shifted dates only): every real date a business day within the window.
    // With one shifted column `dates` holds one row per person, all of column 0
    // (see [`person_dates_select`]), so there is nothing to take the fewest of,
    // and the window is one row, read by two scalar subqueries rather than a
    // join: joined, the planner hashed the calendar below a Gather, so the leader
    // and each worker built the whole hash and counted every person's offsets
    // again (1M persons: the statement took 8.3 s that way, 6.4 s this way).
    let calendar = if k.is_some() && shifted == 1 {
        format!(
            "SELECT p.person_id, medanon._shift_candidates(p.ds, p.o, (SELECT w.lo FROM {window} w WHERE w.c = 0),
                                                    (SELECT w.hi FROM {window} w WHERE w.c = 0)) AS offsets
      FROM {dates} p"
        )
    } else if k.is_some() && shifted > 1 {
        format!(
            "SELECT p.person_id, min(medanon._shift_candidates(p.ds, p.o, w.lo, w.hi)) AS offsets
      FROM {dates} p JOIN {window} w ON w.c IS NOT DISTINCT FROM p.c GROUP BY p.person_id"
        )
    } else {
        "SELECT NULL::bigint AS person_id, NULL::integer AS offsets WHERE false".to_string()
    };
    let mut firsts: Vec<String> = plans
        .iter()
        .flat_map(|p| p.first_dates.iter().map(move |(key, d)| visible_rows(p, base, &format!("{} AS key, {d} AS d", literal(key)))))
        .collect();
    if firsts.is_empty() {
        firsts.push("SELECT NULL::bigint AS person_id, NULL::text AS key, NULL::date AS d WHERE false".into());
    }
    format!(
        "WITH qi AS (
    {qi}
), classes AS (
    SELECT o.person_id, md5(string_agg(o.v, '|'))::uuid AS class_key
      FROM (SELECT qi.person_id, qi.v FROM qi ORDER BY qi.person_id, qi.v) o GROUP BY o.person_id
), calendar AS (
    {calendar}
), firsts AS (
    SELECT f.person_id, jsonb_object_agg(f.key, f.d) AS first_dates
      FROM (SELECT x.person_id, x.key, min(x.d)::text AS d FROM ({firsts}) x WHERE x.d IS NOT NULL GROUP BY 1, 2) f
     GROUP BY f.person_id
)
SELECT m.*, coalesce(cl.class_key, {no_class}) AS class0, fi.first_dates AS new_first_dates,
       CASE WHEN m.state0 <> {visible} THEN m.state0
            WHEN {fixed} AND m.first_class IS NOT NULL
                 AND m.first_class <> coalesce(cl.class_key, {no_class}) THEN {changed}
            WHEN ca.offsets < {min_offsets} THEN {calendar_state}
            ELSE {visible} END AS state1
  FROM {base} m LEFT JOIN classes cl ON cl.person_id = m.person_id
         LEFT JOIN calendar ca ON ca.person_id = m.person_id
         LEFT JOIN firsts fi ON fi.person_id = m.person_id",
        qi = qi.join("\n    UNION ALL\n    "),
        firsts = firsts.join(" UNION ALL "),
        fixed = k.is_some(),
        no_class = NO_CLASS,
        min_offsets = crate::plan::MIN_SHIFT_CANDIDATES,
        visible = PersonState::Visible.sql(),
        changed = PersonState::Changed.sql(),
        calendar_state = PersonState::Calendar.sql(),
    )
}

/// The class of a person whose views show no quasi-identifier.
pub const NO_CLASS: &str = "md5('')::uuid";

/// The map row of a person of the scratch class table (alias `d`, with its class
/// `class0`, its state before k `state1` and the persons of its class that k
/// counts `class_persons`): (person_id, token, date_offset, state,
/// excluded_institutions, class_key, first_class, first_dates). k withholds a
/// visible person of a small class; the class is kept for visible and k persons
/// (they count in it); the first class is fixed at the first exposure; the first
/// dates kept are the stored ones, new keys added.
pub fn map_row(k: Option<i32>) -> String {
    format!(
        "d.person_id, d.token, d.date_offset,
       CASE WHEN d.state1 <> {visible} THEN d.state1 WHEN d.class_persons < {k} THEN {k_state} ELSE {visible} END AS state,
       d.excluded_institutions,
       CASE WHEN d.state1 = {visible} THEN d.class0 END AS class_key,
       coalesce(d.first_class, CASE WHEN {fixed} AND d.state1 = {visible} AND d.class_persons >= {k} THEN d.class0 END) AS first_class,
       CASE WHEN d.new_first_dates IS NULL THEN d.old_first_dates
            ELSE d.new_first_dates || coalesce(d.old_first_dates, '{{}}'::jsonb) END AS first_dates",
        k = k.map_or("NULL::integer".to_string(), |k| k.to_string()),
        fixed = k.is_some(),
        visible = PersonState::Visible.sql(),
        k_state = PersonState::K.sql(),
    )
}

/// What a contract's person map should hold now, from the scratch class table
/// `class` of every person of the contract ([`person_class_select`]): k counted
/// over everyone. The operator writes it into a scratch table and applies it to
/// `medanon.contract_person` with a plain INSERT and UPDATE: an INSERT ... ON
/// CONFLICT of the same rows took 14 s a million. The values are literals, since
/// CREATE TABLE AS takes no parameters; the contract id is `[a-z][a-z0-9_]*`.
pub fn person_map_select(plan: &crate::plan::ContractPlan, class: &str) -> String {
    format!(
        "SELECT {row}
  FROM (SELECT f.*, count(*) FILTER (WHERE f.state1 = {visible}) OVER (PARTITION BY f.class0) AS class_persons
          FROM {class} f) d",
        row = map_row(plan.k),
        visible = PersonState::Visible.sql(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plans() -> Vec<ViewPlan> {
        crate::plan::tests::planned().views
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
        let p = &plans()[0];
        assert_eq!(p.name, "patient");
        let names: Vec<&str> = p.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["person_id", "birth_date", "sex", "postal_code", "address"], "source order; name and blood_type not exposed");
        assert_eq!(p.quasi_identifiers.len(), 4);
        assert_eq!(p.person_column.as_deref(), Some("person_id"));
        assert_eq!(p.institution_filter, None);
        assert_eq!(class_row(p, 0).unwrap(), format!("'0:' || ROW({})::text", p.quasi_identifiers.join(", ")));
        let m = materialize_select(p, "c2026_001", "contract_c2026_001_data", Materialize::All);
        assert!(m.starts_with("SELECT m.token AS \"_token\", CASE WHEN pg_catalog.isfinite(s.\"birth_date\")"), "{m}");
        assert!(m.contains("medanon.generalize_age(s.\"birth_date\", '2026-04-01'::date, 5, 90) END AS \"birth_date\""));
        assert!(m.contains("medanon.postal_prefix(s.\"postal_code\"::text, 3) AS \"postal_code\""));
        assert!(m.contains("medanon.prefecture_of(s.\"address\"::text) AS \"address\""));
        assert!(m.ends_with("m.person_id = s.\"person_id\" AND m.contract_id = 'c2026_001' WHERE m.state = 'visible'"), "{m}");
        assert!(!m.contains("\"name\"") && !m.contains("blood_type"));
        let v = view_select(p, "\"contract_c2026_001_data\".\"t0_g1\"", "2027-03-31", "Asia/Tokyo");
        assert_eq!(
            v,
            "SELECT d.\"_token\" AS \"person_id\", d.\"birth_date\", d.\"sex\", d.\"postal_code\", d.\"address\" \
             FROM \"contract_c2026_001_data\".\"t0_g1\" d WHERE pg_catalog.timezone('Asia/Tokyo', pg_catalog.now())::date <= '2027-03-31'::date"
        );
        for sql in [&m, &v] {
            assert!(!sql.contains("tokenize") && !sql.contains("shift_date") && !sql.contains("date_offset("), "no keyed function");
        }
    }

    #[test]
    fn visit_view_shifts_codes_and_filters_institutions() {
        let p = &plans()[1];
        let m = materialize_select(p, "c2026_001", "contract_c2026_001_data", Materialize::All);
        assert!(m.contains("(s.\"visit_date\" + m.date_offset) AS \"visit_date\""));
        assert!(m.contains("CASE WHEN s.\"lab_value\" > '500'::numeric THEN '500'::numeric ELSE s.\"lab_value\" END"));
        // 1.5 as a floor of an integer column: values below 2 become 2.
        assert!(m.contains("CASE WHEN s.\"days\" < 2 THEN 2::integer ELSE s.\"days\" END"), "{m}");
        assert!(m.ends_with("AND (m.excluded_institutions IS NULL OR s.\"institution_code\"::text <> ALL (m.excluded_institutions))"));
        assert!(p.quasi_identifiers.is_empty(), "institution_code is not exposed, so it is no quasi-identifier here");
        assert_eq!(class_row(p, 1), None);
    }

    #[test]
    fn the_person_map_reads_every_source_and_classes_from_quasi_identifiers() {
        let planned = crate::plan::tests::planned();
        let plans = &planned.views;
        let persons = planned.persons_sql();
        assert!(persons.contains("SELECT s.\"person_id\"::bigint AS person_id FROM \"clinical\".\"patient\" s UNION ALL SELECT s.\"person_id\"::bigint AS person_id FROM \"clinical\".\"visit\" s"));
        let base = person_base_select(&planned, "\"d\".\"_persons\"");
        assert!(base.contains("FROM \"d\".\"_persons\" p"), "{base}");
        assert!(base.contains("coalesce(old.token, medanon._new_token())"), "{base}");
        assert!(!base.contains("tokenize("), "a token is drawn, not computed");
        assert!(base.contains("old.contract_id = 'c2026_001'") && base.contains("(true AND k.excluded IS NOT NULL)"), "{base}");
        let sql = person_class_select(&planned, "\"d\".\"_base\"", "\"d\".\"_dates\"", "\"d\".\"_window\"");
        // Only the patient view exposes quasi-identifiers, so only it feeds the class;
        // it is person-level, so every row of it counts (no DISTINCT).
        assert_eq!(sql.matches("AS v FROM").count(), 1, "{sql}");
        assert!(!sql.contains("SELECT DISTINCT * FROM"), "{sql}");
        assert!(sql.contains(&plans[0].quasi_identifiers[0]));
        assert!(sql.contains("JOIN \"d\".\"_base\" m ON m.person_id = s.\"person_id\""), "the analyzed base table, not a CTE: {sql}");
        // The class is fixed at the first exposure, and a changed person is withheld.
        assert!(sql.contains("m.first_class <> coalesce(cl.class_key, md5('')::uuid) THEN 'changed'"), "{sql}");
        // The visit dates are shifted, so the calendar is checked over them, within the window.
        // One shifted column: one row per person in the dates, nothing to take the fewest of.
        assert!(sql.contains("SELECT p.person_id, medanon._shift_candidates(p.ds, p.o, (SELECT w.lo FROM \"d\".\"_window\" w WHERE w.c = 0),") && sql.contains("ca.offsets < 4 THEN 'calendar'"), "{sql}");
        assert!(sql.contains("(SELECT w.hi FROM \"d\".\"_window\" w WHERE w.c = 0)) AS offsets\n      FROM \"d\".\"_dates\" p\n"), "{sql}");
        // A person's class rows reach string_agg sorted, from the subquery.
        assert!(sql.contains("md5(string_agg(o.v, '|'))::uuid AS class_key\n      FROM (SELECT qi.person_id, qi.v FROM qi ORDER BY qi.person_id, qi.v) o GROUP BY o.person_id"), "{sql}");
        let map = person_map_select(&planned, "\"d\".\"_class\"");
        assert!(map.contains("d.class_persons < 5 THEN 'k'"), "{map}");
        assert!(map.contains("coalesce(d.first_class, CASE WHEN true AND d.state1 = 'visible' AND d.class_persons >= 5 THEN d.class0 END)"), "{map}");
        let dates = person_dates_select(&planned, "b");
        assert!(dates.contains("s.\"visit_date\"::date AS d FROM \"clinical\".\"visit\" s"), "{dates}");
        assert!(dates.contains("GROUP BY d.person_id, d.o, d.c"), "one shifted column: no grouping sets");
        let window = window_select("c2026_001", "\"d\".\"_dates\"");
        assert!(window.contains("FROM medanon.contract_window cw") && window.contains("cw.contract_id = 'c2026_001'"), "the window never narrows: {window}");
        let mut two = planned.clone();
        two.views[0].shifted_dates.push("s.\"birth_date\"::date".into());
        let dates = person_dates_select(&two, "b");
        assert!(dates.contains("GROUPING SETS ((d.person_id, d.o, d.c), (d.person_id, d.o))"), "{dates}");
        // Several shifted columns: each person's fewest offsets, over each column and all together.
        let several = person_class_select(&two, "b", "d", "w");
        assert!(several.contains("min(medanon._shift_candidates(p.ds, p.o, w.lo, w.hi)) AS offsets") && several.contains("GROUP BY p.person_id"), "{several}");
        assert!(dates.contains("0 AS c, s.\"birth_date\"::date AS d") && dates.contains("1 AS c, s.\"visit_date\"::date AS d"), "{dates}");
        for sql in [&sql, &map, &dates, &window] {
            assert!(!sql.contains('$'), "no parameters: CREATE TABLE AS takes none");
        }
        let full = planned.map_sql();
        // Publish and full refresh class everyone and count k in one statement, with no _class table.
        let class = person_class_select(&planned, &planned.base_table(), &planned.dates_table(), &planned.window_table());
        assert!(full.contains(&format!("CREATE UNLOGGED TABLE \"contract_c2026_001_data\".\"_map\" AS {}; ANALYZE \"contract_c2026_001_data\".\"_map\";",
            person_map_select(&planned, &format!("({class})")))), "{full}");
        assert!(!full.contains("\"_class\""), "{full}");
        assert!(planned.class_sql().contains(&format!("CREATE UNLOGGED TABLE {} AS {class};", planned.class_table())));
        assert!(!planned.drop_scratch_sql(true).contains("\"_class\"") && planned.drop_scratch_sql(false).contains("\"_class\""));
        let gone = planned.gone_persons_sql();
        assert!(gone.ends_with("NOT EXISTS (SELECT FROM \"contract_c2026_001_data\".\"_persons\" p WHERE p.person_id = m.person_id)"));
        // A visit-level view with a quasi-identifier counts each distinct row once.
        let mut visits = planned.clone();
        visits.views[1].quasi_identifiers.push("s.\"institution_code\"".into());
        let sql = person_class_select(&visits, "b", "d", "w");
        assert_eq!(sql.matches("SELECT DISTINCT * FROM (SELECT m.person_id, '1:' || ROW").count(), 1, "{sql}");
        // Without any quasi-identifier or k, everyone falls into one class and nothing is fixed.
        let mut none = planned.clone();
        none.views.remove(0);
        none.k = None;
        let sql = person_class_select(&none, "b", "d", "w");
        assert!(sql.contains("WHERE false") && !sql.contains("_shift_candidates"), "no calendar check without k");
        let map = person_map_select(&none, "c");
        assert!(map.contains("d.class_persons < NULL::integer") && map.contains("CASE WHEN false AND d.state1"), "{map}");
    }

    #[test]
    fn codes_outside_an_integer_range() {
        assert_eq!(coded("s.x", "smallint", 1e9, true), "s.x");
        assert_eq!(coded("s.x", "smallint", -1e9, false), "s.x");
        assert_eq!(coded("s.x", "smallint", -1e9, true), "CASE WHEN s.x > -32768 THEN -32768::smallint ELSE s.x END");
        assert_eq!(coded("s.x", "double precision", 0.25, true),
                   "CASE WHEN s.x > '0.25'::double precision THEN '0.25'::double precision ELSE s.x END");
    }
}
