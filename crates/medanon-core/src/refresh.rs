//! The incremental refresh of a published contract: the statements that bring
//! its person map, classes, rare-value counts and data tables up to date by
//! reading only the persons who changed since the last publish or refresh.
//!
//! What changed is found three ways:
//! - **source rows**: `medanon.track_changes(source)` puts statement triggers on
//!   a source that write the persons of every inserted, updated or deleted row
//!   into `medanon.source_change`, with the writing transaction's id; a refresh
//!   reads the entries its last refresh's snapshot (`contract.refresh_snapshot`)
//!   did not see. A TRUNCATE writes an entry without a person: everything.
//! - **consent**: medanon's own triggers on the consent ledger and `person_link`
//!   write the persons of every notification, opt-out, withdrawal and link change
//!   into `medanon.consent_change`, read the same way; waiting periods that end
//!   are found by time (`notification.notified_at`, indexed).
//! - **the calendar**: when the new persons' dates widen the study window, the
//!   persons withheld by the calendar check are checked again (a wider window
//!   only adds offsets).
//!
//! Then only those persons are planned again, k is counted again in the classes
//! they leave or join (from the stored class counts, which the consent triggers
//! keep exact), and the persons whose k state flips with their class are
//! rewritten too. The rare values are counted again from the stored counts
//! (`contract_raw_value`, exact: the consent triggers decrement them as they
//! delete rows) and resolved again; the rows whose shown value changes are
//! updated in place. The data tables are updated in place, in the refresh's
//! transaction: analysts read the old rows until it commits, and never wait.
//!
//! The result is what a full refresh of the same data gives, row for row
//! (`tests/refresh.rs`). [`Fallback`] names what the incremental path cannot
//! see, for which the glue runs a full refresh instead.

use crate::plan::{ContractPlan, PersonState};
use crate::view::{ident, literal, Materialize};

/// Why a refresh recomputes everything instead of the changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// The operator asked for it (`full => true`).
    Asked,
    /// The contract has no stored refresh snapshot, or it was taken on another
    /// cluster (a restore from pg_dump: transaction ids start again).
    NoSnapshot,
    /// A source has no change tracking, or it started after the last refresh.
    Untracked(String),
    /// A source was truncated since the last refresh.
    Truncated(String),
    /// A rule has a percentile bound, which every row moves.
    Percentiles,
    /// What the contract shows changed (a column's class or type), or the
    /// waiting period after a notification did: its data tables must be written
    /// again.
    PlanChanged,
}

impl Fallback {
    /// The reason, for the NOTICE and the ledger.
    pub fn reason(&self) -> String {
        match self {
            Fallback::Asked => "a full refresh was asked for".into(),
            Fallback::NoSnapshot => "the contract has no refresh snapshot of this cluster (first refresh after an upgrade or a restore)".into(),
            Fallback::Untracked(s) => format!("source {s} has no change tracking since the last refresh (medanon.track_changes)"),
            Fallback::Truncated(s) => format!("source {s} was truncated since the last refresh"),
            Fallback::Percentiles => "a rule has a percentile bound, which any new row may move".into(),
            Fallback::PlanChanged => {
                "what the contract shows (a column's class or type), medanon.notice_wait_days, or the statements medanon plans it with (after an update of the extension) changed since the last refresh".into()
            }
        }
    }
}

/// The statements that write one view's rewritten persons again, in order:
/// `before` (record the values not shown as stored, take the old values from the
/// counts), `delete` and `insert` (whose row counts the caller adds up), `after`
/// (add the new values to the counts). `$1` the contract id.
#[derive(Debug, Clone, PartialEq)]
pub struct Rewrite {
    pub before: Vec<String>,
    pub delete: String,
    pub insert: String,
    pub after: Vec<String>,
}

impl ContractPlan {
    /// Every source of the contract as (schema, table).
    pub fn sources(&self) -> Vec<(String, String)> {
        self.views.iter().map(|v| (v.source_schema.clone(), v.name.clone())).collect()
    }

    /// The sources as SQL rows `('s','t'), ...`.
    fn source_values(&self) -> String {
        let rows: Vec<String> = self.sources().iter().map(|(s, t)| format!("({}::name, {}::name)", literal(s), literal(t))).collect();
        rows.join(", ")
    }

    /// One row per source of the contract, with why the incremental path cannot
    /// read its changes (NULL: it can): `(source text, untracked bool, truncated
    /// bool)`. Reads the contract's stored snapshot.
    pub fn tracking_sql(&self) -> String {
        format!(
            "SELECT pg_catalog.format('%I.%I', x.s, x.t),
                    NOT EXISTS (SELECT FROM medanon.source_tracking st
                                 WHERE st.source_schema = x.s AND st.source_table = x.t
                                   -- since before the last refresh, or restored with its triggers from another cluster
                                   AND (st.since_system <> cur.system
                                        OR pg_catalog.pg_visible_in_snapshot(st.since, c.refresh_snapshot)))
                    OR NOT medanon._source_changes_logged(pg_catalog.to_regclass(pg_catalog.format('%I.%I', x.s, x.t))),
                    EXISTS (SELECT FROM medanon.source_change sc
                             WHERE sc.source_schema = x.s AND sc.source_table = x.t AND sc.person_id IS NULL
                               AND NOT pg_catalog.pg_visible_in_snapshot(sc.xid, c.refresh_snapshot))
               FROM (VALUES {}) x(s, t), medanon.contract c,
                    (SELECT s.system_identifier::text AS system FROM pg_catalog.pg_control_system() s) cur
              WHERE c.contract_id = {}",
            self.source_values(),
            literal(&self.id)
        )
    }

    /// The scratch table of the persons whose rows or consent changed.
    pub fn touched_table(&self) -> String {
        self.scratch("_touched")
    }

    /// The scratch table of the touched persons no source holds any more.
    pub fn gone_table(&self) -> String {
        self.scratch("_gone")
    }

    /// The scratch table of the class counts the refresh changes.
    pub fn counts_table(&self) -> String {
        self.scratch("_counts")
    }

    /// The scratch table of the tokens whose rows are written again.
    pub fn rewrite_table(&self) -> String {
        self.scratch("_rewrite")
    }

    /// The scratch table of the values that were not shown as stored before the
    /// refresh (rare, or replaced live): their rows are checked again.
    pub fn rare_old_table(&self) -> String {
        self.scratch("_rare_old")
    }

    /// Writes the persons whose source rows changed since the last refresh (the
    /// change log entries its snapshot did not see), whose consent or links
    /// changed (the consent log, likewise), and whose waiting period ended since
    /// the last refresh (the time of which `refreshed_at` keeps; a day earlier, to
    /// be safe) into the touched table; then the touched persons some source still
    /// holds into the persons table, and the others the map holds into the gone
    /// table.
    pub fn touched_sql(&self) -> Vec<String> {
        let (touched, gone, persons) = (self.touched_table(), self.gone_table(), self.persons_table());
        let id = literal(&self.id);
        vec![
            format!(
                "CREATE UNLOGGED TABLE {touched} AS
                 SELECT DISTINCT x.person_id FROM (
                     SELECT sc.person_id FROM medanon.source_change sc, medanon.contract c
                      WHERE c.contract_id = {id} AND (sc.source_schema, sc.source_table) IN ({sources})
                        AND sc.person_id IS NOT NULL AND sc.xid >= pg_catalog.pg_snapshot_xmin(c.refresh_snapshot)
                        AND NOT pg_catalog.pg_visible_in_snapshot(sc.xid, c.refresh_snapshot)
                     UNION ALL
                     SELECT cc.person_id FROM medanon.consent_change cc, medanon.contract c
                      WHERE c.contract_id = {id} AND cc.xid >= pg_catalog.pg_snapshot_xmin(c.refresh_snapshot)
                        AND NOT pg_catalog.pg_visible_in_snapshot(cc.xid, c.refresh_snapshot)
                     UNION ALL
                     SELECT l.person_id FROM medanon.notification n
                       JOIN medanon.person_link l ON l.institution_code = n.institution_code AND l.local_patient_id = n.local_patient_id,
                            medanon.contract c,
                            LATERAL (SELECT pg_catalog.make_interval(days => medanon.notice_wait_days()) AS wait) w
                      -- eligible_from (notified_records) between the last refresh and now, on the index of notified_at
                      WHERE c.contract_id = {id} AND n.notified_at > c.refreshed_at - interval '1 day' - w.wait
                        AND n.notified_at <= pg_catalog.now() - w.wait
                 ) x;
                 ANALYZE {touched}",
                sources = self.source_values(),
            ),
            self.persons_of_sources(Some(&touched)),
            format!(
                "CREATE UNLOGGED TABLE {gone} AS
                 SELECT cp.person_id FROM medanon.contract_person cp JOIN {touched} t ON t.person_id = cp.person_id
                  WHERE cp.contract_id = {id} AND NOT EXISTS (SELECT FROM {persons} p WHERE p.person_id = cp.person_id)"
            ),
        ]
    }

    /// Whether the touched persons' dates widen the study window stored at the
    /// last refresh: one row, a boolean. Reads the scratch window.
    pub fn window_widened_sql(&self) -> String {
        format!(
            "SELECT EXISTS (SELECT FROM {} w
                             LEFT JOIN medanon.contract_window cw
                               ON cw.contract_id = {} AND cw.date_column IS NOT DISTINCT FROM w.c
                            WHERE w.lo IS NOT NULL AND (cw.contract_id IS NULL OR w.lo < cw.first_date OR w.hi > cw.last_date))",
            self.window_table(),
            literal(&self.id)
        )
    }

    /// Adds the persons the calendar withholds to the persons table (checked
    /// again under a wider window), and drops the scratch tables of
    /// [`ContractPlan::class_sql`] so that it runs again.
    pub fn recheck_calendar_sql(&self) -> Vec<String> {
        let persons = self.persons_table();
        vec![
            format!(
                "INSERT INTO {persons} SELECT cp.person_id FROM medanon.contract_person cp
                  WHERE cp.contract_id = {} AND cp.state = {}
                    AND NOT EXISTS (SELECT FROM {persons} p WHERE p.person_id = cp.person_id);
                 ANALYZE {persons}",
                literal(&self.id),
                PersonState::Calendar.sql()
            ),
            format!("DROP TABLE {}, {}, {}, {}", self.base_table(), self.dates_table(), self.window_table(), self.class_table()),
        ]
    }

    /// k in the classes the refresh changes, then the map rows to write: the
    /// planned persons with their new state, and the persons of those classes
    /// whose k state flips. The class counts come from the stored ones
    /// (`contract_class`, exact), less the planned and gone persons who counted,
    /// plus the planned persons who count now; a class's state flips when it
    /// crosses k.
    pub fn incremental_map_sql(&self) -> Vec<String> {
        let (class, gone, counts, map) = (self.class_table(), self.gone_table(), self.counts_table(), self.map_table());
        let id = literal(&self.id);
        let (visible, k_state) = (PersonState::Visible.sql(), PersonState::K.sql());
        let k = self.k.map_or("NULL::integer".to_string(), |k| k.to_string());
        vec![
            format!(
                "CREATE UNLOGGED TABLE {counts} AS
                 WITH leaving AS (
                     SELECT cp.class_key FROM medanon.contract_person cp
                      WHERE cp.contract_id = {id} AND cp.state IN ({visible}, {k_state}) AND cp.class_key IS NOT NULL
                        AND cp.person_id IN (SELECT f.person_id FROM {class} f UNION ALL SELECT g.person_id FROM {gone} g)
                 ), joining AS (
                     SELECT f.class0 AS class_key FROM {class} f WHERE f.state1 = {visible}
                 ), affected AS (
                     SELECT class_key FROM leaving UNION SELECT class_key FROM joining
                 )
                 SELECT a.class_key, coalesce(cc.persons, 0) AS old_persons,
                        coalesce(cc.persons, 0) - coalesce(l.n, 0) + coalesce(j.n, 0) AS persons
                   FROM affected a
                   LEFT JOIN (SELECT class_key, count(*) AS n FROM leaving GROUP BY 1) l ON l.class_key = a.class_key
                   LEFT JOIN (SELECT class_key, count(*) AS n FROM joining GROUP BY 1) j ON j.class_key = a.class_key
                   LEFT JOIN medanon.contract_class cc ON cc.contract_id = {id} AND cc.class_key = a.class_key;
                 ANALYZE {counts}"
            ),
            format!(
                "CREATE UNLOGGED TABLE {map} AS
                 SELECT {row}
                   FROM (SELECT f.*, c.persons AS class_persons FROM {class} f LEFT JOIN {counts} c ON c.class_key = f.class0) d
                 UNION ALL
                 SELECT cp.person_id, cp.token, cp.date_offset, x.state, cp.excluded_institutions, cp.class_key,
                        coalesce(cp.first_class, CASE WHEN {fixed} AND x.state = {visible} THEN cp.class_key END), cp.first_dates
                   FROM {counts} c
                   JOIN medanon.contract_person cp ON cp.contract_id = {id} AND cp.class_key = c.class_key
                   CROSS JOIN LATERAL (SELECT CASE WHEN c.persons < {k} THEN {k_state} ELSE {visible} END AS state) x
                  WHERE (c.old_persons < {k}) IS DISTINCT FROM (c.persons < {k})
                    AND cp.state IN ({visible}, {k_state}) AND cp.state <> x.state
                    AND NOT EXISTS (SELECT FROM {class} f WHERE f.person_id = cp.person_id)
                    AND NOT EXISTS (SELECT FROM {gone} g WHERE g.person_id = cp.person_id);
                 ANALYZE {map}",
                row = crate::view::map_row(self.k),
                fixed = self.k.is_some(),
            ),
        ]
    }

    /// Saves the tokens whose rows are written again (the map's persons and the
    /// gone ones), before the map changes. `$1` the contract id.
    pub fn rewrite_sql(&self) -> String {
        let rewrite = self.rewrite_table();
        format!(
            "CREATE UNLOGGED TABLE {rewrite} AS
             SELECT cp.token FROM medanon.contract_person cp
              WHERE cp.contract_id = {} AND cp.person_id IN (SELECT m.person_id FROM {} m UNION ALL SELECT g.person_id FROM {} g);
             ANALYZE {rewrite}",
            literal(&self.id),
            self.map_table(),
            self.gone_table()
        )
    }

    /// Applies the scratch map to `medanon.contract_person`: deletes the gone
    /// persons, updates the planned ones and inserts the new. `$1` the contract id.
    pub fn apply_incremental_map_sql(&self) -> Vec<String> {
        let mut sql = vec![format!(
            "DELETE FROM medanon.contract_person m WHERE m.contract_id = $1 AND m.person_id IN (SELECT g.person_id FROM {} g)",
            self.gone_table()
        )];
        // The UPDATE and INSERT of a full refresh: only the map's persons are in it.
        sql.extend(self.write_map_sql(true));
        sql
    }

    /// Replaces the counts of the classes the refresh changed. `$1` the contract id.
    pub fn incremental_classes_sql(&self) -> [String; 2] {
        let counts = self.counts_table();
        [
            format!("DELETE FROM medanon.contract_class cc WHERE cc.contract_id = $1 AND cc.class_key IN (SELECT c.class_key FROM {counts} c)"),
            format!("INSERT INTO medanon.contract_class (contract_id, class_key, persons) SELECT $1, c.class_key, c.persons FROM {counts} c WHERE c.persons > 0"),
        ]
    }

    /// Writes the rows of the rewritten persons of view `index` again, in its
    /// data table `data` (the current generation): the rare values they held
    /// leave the counts, their rows are deleted, the rows of those of them who are
    /// visible now are inserted with rare values as the rule gives them, and the
    /// values they hold join the counts. Records first which values were not
    /// shown as stored (rare, or replaced live), for [`ContractPlan::incremental_rare_sql`].
    /// The rows are found by the data table's token index: `= ANY (ARRAY(...))`
    /// rather than `IN (SELECT ...)`, which the planner costed as random reads
    /// and answered with a scan of every row (1.8 s for 10,000 persons among 10M
    /// rows). The caller runs `before`, `delete` and `after` with sequential and
    /// bitmap scans off (`by_token_index` in the extension's publish step): a
    /// lossy bitmap re-checks each row against the whole array. `$1` the contract id.
    pub fn rewrite_rows_sql(&self, index: usize, data: &str) -> Rewrite {
        let view = &self.views[index];
        let (rewrite, map, rare_old) = (self.rewrite_table(), self.map_table(), self.rare_old_table());
        let data = format!("{}.{}", ident(&self.data_schema), ident(data));
        let token = ident(crate::plan::TOKEN_COLUMN);
        let mut before = Vec::new();
        for r in &view.rare {
            let (name, column, raw) = (literal(&view.name), literal(&r.column), crate::view::raw_value(r));
            let same = format!("v.contract_id = $1 AND v.view_name = {name} AND v.column_name = {column}");
            before.push(format!(
                "INSERT INTO {rare_old} (key, v)
                 SELECT {key}, v.value FROM medanon.contract_raw_value v
                  WHERE {same} AND NOT EXISTS (SELECT FROM medanon.contract_value s
                                                WHERE s.contract_id = $1 AND s.view_name = {name} AND s.column_name = {column}
                                                  AND s.label = v.value AND s.level = 0)",
                key = r.key
            ));
            before.push(format!(
                "UPDATE medanon.contract_raw_value v SET persons = v.persons - x.n
                   FROM (SELECT {raw}::text AS value, count(DISTINCT d.{token}) AS n FROM {data} d
                          WHERE d.{token} = ANY (ARRAY(SELECT w.token FROM {rewrite} w)) AND {raw} IS NOT NULL GROUP BY 1) x
                  WHERE {same} AND v.value = x.value"
            ));
        }
        let delete = format!("DELETE FROM {data} d WHERE d.{token} = ANY (ARRAY(SELECT w.token FROM {rewrite} w))");
        let insert = format!(
            "INSERT INTO {data} {}",
            crate::view::materialize_select(view, &self.id, &self.data_schema, Materialize::Persons(&map))
        );
        let mut after = Vec::new();
        for r in &view.rare {
            // The new rows show every value as the rule gives it, nothing replaced yet.
            let (name, column, raw) = (literal(&view.name), literal(&r.column), ident(&r.column));
            after.push(format!(
                "INSERT INTO medanon.contract_raw_value AS v (contract_id, view_name, column_name, value, persons)
                 SELECT $1, {name}, {column}, x.value, x.n
                   FROM (SELECT d.{raw}::text AS value, count(DISTINCT d.{token}) AS n FROM {data} d
                          WHERE d.{token} = ANY (ARRAY(SELECT m.token FROM {map} m)) AND d.{raw} IS NOT NULL GROUP BY 1) x
                 ON CONFLICT (contract_id, view_name, column_name, value) DO UPDATE SET persons = v.persons + EXCLUDED.persons"
            ));
            after.push(format!(
                "DELETE FROM medanon.contract_raw_value v WHERE v.contract_id = $1 AND v.view_name = {name} AND v.column_name = {column} AND v.persons <= 0"
            ));
        }
        Rewrite { before, delete, insert, after }
    }

    /// The rare values of view `index` resolved again from the stored counts and
    /// the holders in its data table `data`, and the rows whose shown value
    /// changes updated: every row of a value that is rare now or was not shown as
    /// stored before ([`ContractPlan::rewrite_rows_sql`]) shows what the new
    /// resolution says, or the value itself. Needs the scratch tables of
    /// [`ContractPlan::prepare_tables_sql`] and the rare_old table.
    pub fn incremental_rare_sql(&self, index: usize, data: &str) -> Vec<String> {
        let view = &self.views[index];
        let (counts, holders, values, rare_old) =
            (self.scratch("_rare_counts"), self.scratch("_holders"), self.scratch(crate::view::VALUES_TABLE), self.rare_old_table());
        let data = format!("{}.{}", ident(&self.data_schema), ident(data));
        let token = ident(crate::plan::TOKEN_COLUMN);
        let mut sql = Vec::new();
        for r in &view.rare {
            let (name, column, raw, col, kept) =
                (literal(&view.name), literal(&r.column), crate::view::raw_value(r), ident(&r.column), ident(&r.raw));
            let key = r.key;
            sql.push(format!(
                "INSERT INTO {counts} (key, v, persons) SELECT {key}, v.value, v.persons FROM medanon.contract_raw_value v
                  WHERE v.contract_id = {id} AND v.view_name = {name} AND v.column_name = {column}",
                id = literal(&self.id)
            ));
            if r.hierarchy.is_some() {
                sql.push(format!(
                    "INSERT INTO {holders} (key, person_id, v, label)
                     SELECT DISTINCT {key}, d.{token}, {raw}::text, {raw}::text FROM {data} d
                      WHERE {raw}::text IN (SELECT c.v FROM {counts} c WHERE c.key = {key} AND c.persons < {min})",
                    min = r.min_persons
                ));
            }
            sql.push(format!(
                "SELECT medanon._contract_rare_resolve({}, {key}, {}, {})",
                literal(&self.data_schema),
                r.min_persons,
                r.hierarchy.as_ref().map_or("NULL".to_string(), |h| literal(&h.stored()))
            ));
            let shown = if r.hierarchy.is_some() { " ELSE x.shown" } else { "" };
            let expected = format!("CASE WHEN x.v IS NULL THEN {raw}{shown} END");
            sql.push(format!(
                "UPDATE {data} d SET {col} = {expected}, {kept} = CASE WHEN x.v IS NOT NULL THEN {raw} END
                   FROM (SELECT o.v FROM {rare_old} o WHERE o.key = {key} UNION SELECT n.v FROM {values} n WHERE n.key = {key}) a
                   LEFT JOIN {values} x ON x.key = {key} AND x.v = a.v
                  WHERE {raw}::text = a.v AND d.{col} IS DISTINCT FROM {expected}"
            ));
        }
        sql
    }

    /// Drops the scratch tables of an incremental refresh that
    /// [`ContractPlan::drop_scratch_sql`] does not.
    pub fn drop_incremental_sql(&self) -> String {
        format!(
            "DROP TABLE {}",
            [self.touched_table(), self.gone_table(), self.counts_table(), self.rewrite_table(), self.rare_old_table()].join(", ")
        )
    }

    /// The scratch table of rare_old, empty.
    pub fn rare_old_create_sql(&self) -> String {
        format!("CREATE UNLOGGED TABLE {} (key integer NOT NULL, v text NOT NULL)", self.rare_old_table())
    }

    /// A fingerprint of what the contract writes into its data tables and how it
    /// classes persons: a refresh whose plan has another one rewrites everything.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for (i, v) in self.views.iter().enumerate() {
            h.update(crate::view::materialize_select(v, &self.id, &self.data_schema, Materialize::All).as_bytes());
            h.update(crate::view::class_row(v, i).unwrap_or_default().as_bytes());
            h.update([0]);
        }
        h.update(crate::view::person_class_select(self, "b", "d", "w").as_bytes());
        h.update(format!("{:?}|{:?}|{}", self.k, self.min_persons, self.whole_person).as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_incremental_statements_read_the_log_the_map_and_the_scratch_tables() {
        let plan = crate::plan::tests::planned();
        let touched = plan.touched_sql();
        assert!(touched[0].contains("NOT pg_catalog.pg_visible_in_snapshot(sc.xid, c.refresh_snapshot)"), "{}", touched[0]);
        assert!(touched[0].contains("IN (('clinical'::name, 'patient'::name), ('clinical'::name, 'visit'::name))"), "{}", touched[0]);
        // Consent changes from their log, and waiting periods that ended by time.
        assert!(touched[0].contains("FROM medanon.consent_change cc"), "{}", touched[0]);
        assert!(touched[0].contains("n.notified_at > c.refreshed_at - interval '1 day' - w.wait"), "{}", touched[0]);
        // The touched persons some source still holds: a semi-join on the small table, per source.
        assert!(touched[1].contains("WHERE s.\"person_id\" IN (SELECT o.person_id FROM \"contract_c2026_001_data\".\"_touched\" o)"), "{}", touched[1]);
        let map = plan.incremental_map_sql();
        // Class counts from the stored ones, and only the classes that cross k bring their other persons.
        assert!(map[0].contains("coalesce(cc.persons, 0) - coalesce(l.n, 0) + coalesce(j.n, 0)"), "{}", map[0]);
        assert!(map[1].contains("(c.old_persons < 5) IS DISTINCT FROM (c.persons < 5)"), "{}", map[1]);
        let tracking = plan.tracking_sql();
        assert!(tracking.contains("medanon._source_changes_logged") && tracking.contains("sc.person_id IS NULL"), "{tracking}");
        for sql in touched.iter().chain(&map).chain([&plan.rewrite_sql(), &plan.window_widened_sql()]) {
            assert!(!sql.contains('$'), "literals only (CREATE TABLE AS takes no parameters): {sql}");
        }
    }

    #[test]
    fn rows_are_rewritten_with_raw_values_counted_before_and_after() {
        let mut plan = crate::plan::tests::planned();
        // A rare column on the visit view, with a hierarchy.
        plan.views[1].rare.push(crate::plan::RareColumn {
            key: 0,
            column: "icd10".into(),
            expr: "s.\"icd10\"".into(),
            min_persons: 5,
            hierarchy: Some(crate::contract::HierarchyName::Icd10),
            raw: "_raw0".into(),
        });
        let sql = plan.rewrite_rows_sql(1, "t1_g1");
        assert!(sql.delete.starts_with("DELETE FROM \"contract_c2026_001_data\".\"t1_g1\""), "{}", sql.delete);
        assert!(sql.before.iter().any(|s| s.contains("SET persons = v.persons - x.n")), "{sql:#?}");
        assert!(sql.after.iter().any(|s| s.contains("persons = v.persons + EXCLUDED.persons")), "{sql:#?}");
        // The new rows show the value as the rule gives it, nothing kept yet.
        let insert = &sql.insert;
        assert!(insert.contains("s.\"icd10\" AS \"icd10\"") && insert.contains("CASE WHEN false THEN s.\"icd10\" END AS \"_raw0\""), "{insert}");
        assert!(insert.contains("AND m.person_id IN (SELECT x.person_id FROM \"contract_c2026_001_data\".\"_map\" x)"), "{insert}");
        let rare = plan.incremental_rare_sql(1, "t1_g1");
        assert!(rare.iter().any(|s| s.contains("_contract_rare_resolve('contract_c2026_001_data', 0, 5, 'icd10')")), "{rare:#?}");
        let fix = rare.last().unwrap();
        assert!(fix.contains("SET \"icd10\" = CASE WHEN x.v IS NULL THEN coalesce(d.\"_raw0\", d.\"icd10\") ELSE x.shown END"), "{fix}");
        assert!(fix.contains("\"_raw0\" = CASE WHEN x.v IS NOT NULL THEN coalesce(d.\"_raw0\", d.\"icd10\") END"), "the replaced value is kept: {fix}");
        assert!(fix.contains("d.\"icd10\" IS DISTINCT FROM"), "only rows whose shown value changes: {fix}");
    }

    #[test]
    fn the_fingerprint_follows_what_the_contract_shows() {
        let plan = crate::plan::tests::planned();
        assert_eq!(plan.fingerprint(), plan.clone().fingerprint());
        let mut other = plan.clone();
        other.views[0].quasi_identifiers.pop();
        assert_ne!(plan.fingerprint(), other.fingerprint());
        let mut other = plan.clone();
        other.k = Some(10);
        assert_ne!(plan.fingerprint(), other.fingerprint());
        for f in [Fallback::Asked, Fallback::NoSnapshot, Fallback::Percentiles, Fallback::PlanChanged] {
            assert!(!f.reason().is_empty());
        }
        assert!(Fallback::Untracked("\"s\".\"t\"".into()).reason().contains("track_changes"));
    }
}
