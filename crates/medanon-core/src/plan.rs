//! The contract planner: the one place that turns a contract and what the catalog
//! says of its sources into database objects.
//!
//! `create_contract`, `publish_contract` and `refresh_contract` all go
//! describe → plan → apply:
//!
//! - **describe** (the extension's glue, `src/expose/describe.rs`) reads the
//!   catalog once into a [`Described`]: the grantee, the contract id, each source
//!   with its registration, columns, types, classes and the caller's rights;
//! - **plan** ([`plan`], here, pure) checks every rule against it and returns a
//!   complete [`ContractPlan`] (every schema and table name, each view's SQL, the
//!   person and token columns, the ledger payloads) or a [`SpecError`] that names
//!   the key, with one [`Refusal`] kind (and so one SQLSTATE) per kind of mistake;
//! - **apply** (the glue) executes the plan and records it, and stores in
//!   `medanon.contract` and `medanon.contract_table` the names SQL needs, so no
//!   SQL function derives them again.
//!
//! A new rule is a change here (its check in [`column_plan`], its SQL in
//! [`expression`]) and a test below.

use crate::contract::{Bound, ColumnSpec, Contract, HierarchyName, Kind, Refusal, Rule, SpecError};
use crate::view::{coded, ident, literal};

/// A person's state in a contract's person map (`medanon.contract_person.state`).
/// The names are written into the table's CHECK constraint at install, and every
/// statement that reads or writes a state is rendered here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonState {
    /// Shown in every view of the contract.
    Visible,
    /// In a class with fewer than k consenting persons: shown in no view.
    K,
    /// An opt-out in force, or never notified (or still waiting): no view.
    Consent,
    /// No record in person_link any more (merged away): no view.
    Unlinked,
    /// Their generalized quasi-identifiers differ from those at their first
    /// exposure in the contract: no view, so that no pair of releases joined on
    /// the token tells them apart. Shown again if the values return.
    Changed,
    /// Their shifted dates, with the public calendar (business days, national
    /// holidays, the study window), leave fewer than [`MIN_SHIFT_CANDIDATES`]
    /// possible offsets: no view.
    Calendar,
}

impl PersonState {
    pub const ALL: [PersonState; 6] = [
        PersonState::Visible,
        PersonState::K,
        PersonState::Consent,
        PersonState::Unlinked,
        PersonState::Changed,
        PersonState::Calendar,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PersonState::Visible => "visible",
            PersonState::K => "k",
            PersonState::Consent => "consent",
            PersonState::Unlinked => "unlinked",
            PersonState::Changed => "changed",
            PersonState::Calendar => "calendar",
        }
    }

    /// The state as a SQL literal.
    pub fn sql(self) -> String {
        literal(self.name())
    }

    /// What the state means, for the table's documentation.
    pub fn meaning(self) -> &'static str {
        match self {
            PersonState::Visible => "shown in every view of the contract",
            PersonState::K => "in a quasi-identifier class with fewer than k consenting persons: shown in no view",
            PersonState::Consent => "an opt-out in force, or not notified (or still waiting) at any institution: shown in no view",
            PersonState::Unlinked => "no record in person_link any more (merged into another person): shown in no view",
            PersonState::Changed => {
                "generalized quasi-identifiers (or rows in a person-level view) differ from those at the first exposure: shown in no view"
            }
            PersonState::Calendar => "shifted dates that the public calendar narrows to too few offsets: shown in no view",
        }
    }
}

/// A person whose shifted dates leave fewer possible offsets than this, once an
/// analyst applies business days, national holidays and the study window, is
/// withheld (state `calendar`): no shown person is narrowed to three or fewer.
pub const MIN_SHIFT_CANDIDATES: i32 = 4;

/// The name of the token column in a contract's data tables. A source column of
/// this name cannot be exposed.
pub const TOKEN_COLUMN: &str = "_token";

/// The `idle_in_transaction_session_timeout` publish gives every grantee role: a
/// session left idle inside a transaction holds its locks on the contract's views,
/// and a refresh or revoke waits on it (and retries, see
/// `medanon._contract_lock`), so it is ended after this long. Only a default: the
/// analyst may SET it in its own session, and a superuser may change it; no
/// opt-out ever waits on an analyst, whatever it is.
pub const GRANTEE_IDLE_IN_TRANSACTION_TIMEOUT: &str = "5min";

/// One column of a source table, as the catalog describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceColumn {
    pub name: String,
    /// `format_type` of the column, such as `integer` or `timestamp with time zone`.
    pub type_name: String,
    /// Its class in `medanon.source_column`, if it was classified.
    pub class: Option<String>,
    /// Whether the calling role may SELECT it.
    pub caller_reads: bool,
}

/// A registered source table and its columns, in table order.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub schema: String,
    pub table: String,
    pub person_column: String,
    pub institution_column: Option<String>,
    pub columns: Vec<SourceColumn>,
    /// At most one row per person (per person and institution, when the source
    /// names its institution): a person-level source, such as a registration
    /// table. Its rows count in a person's class (see [`ViewPlan::person_level`]).
    pub person_level: bool,
}

/// What the catalog says of one `tables[i].source` of a spec.
#[derive(Debug, Clone, PartialEq)]
pub enum Relation {
    /// No relation of that name.
    Missing,
    /// A relation, but not a registered source.
    Unregistered,
    Registered(Source),
}

/// Everything the planner needs from the catalog, read once by the glue.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    /// The operator's time zone (`medanon.time_zone`), in which expiry is a day.
    pub time_zone: String,
    pub grantee_exists: bool,
    pub grantee_certified: bool,
    /// A contract of this id is stored already.
    pub id_in_use: bool,
    /// One per spec table, in spec order.
    pub relations: Vec<Relation>,
}

/// What the plan is for: creating checks the id is new; publishing and
/// refreshing check that the caller may read what the contract exposes, since
/// the views run as the extension owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Create,
    Publish,
    Refresh,
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

/// How one source table is exposed under one contract.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewPlan {
    /// The view's name in the contract schema: the source table's name.
    pub name: String,
    /// The exposed columns, in source order.
    pub columns: Vec<PlannedColumn>,
    /// The source relation, quoted: `"schema"."table"`, read under the alias `s`.
    pub source: String,
    /// The source's schema, as registered (its table is `name`): the change log
    /// names sources so.
    pub source_schema: String,
    /// The source's person column, quoted, under alias `s`.
    pub person: String,
    /// The condition that keeps out records of institutions the person may not be
    /// provided from (alias `m` for the map), when the source names its institution.
    pub institution_filter: Option<String>,
    /// The expressions of the exposed quasi-identifier columns, in view order.
    pub quasi_identifiers: Vec<String>,
    /// The view column that shows the person token, if the person column is exposed.
    pub person_column: Option<String>,
    /// The source holds at most one row per person and institution: every row a
    /// person has here counts in the person's class (a person registered at two
    /// institutions is in a class only with persons who have the same two rows),
    /// so no token shows on more rows than the others of its class. In other views
    /// (visits) the class counts each distinct quasi-identifier row once.
    pub person_level: bool,
    /// Columns whose rare values are replaced (特異な記述).
    pub rare: Vec<RareColumn>,
    /// The real dates of the shifted columns (`s.col::date`), for the calendar check.
    pub shifted_dates: Vec<String>,
    /// `days_since` columns: (key in `contract_person.first_dates`, `s.col::date`).
    pub first_dates: Vec<(String, String)>,
    /// Percentile bounds of `Code` rules, computed at publish and refresh.
    pub percentiles: Vec<Percentile>,
    /// `dicom` columns (issue 20): their objects withheld for a burned-in
    /// annotation are counted into `medanon.contract_image`.
    pub images: Vec<String>,
}

/// A column whose values held by fewer than `min_persons` of the contract's
/// visible persons are replaced: by their first ancestor in `hierarchy` that
/// enough persons hold, otherwise by NULL.
#[derive(Debug, Clone, PartialEq)]
pub struct RareColumn {
    /// Its number among the contract's rare columns (the `key` of the scratch tables).
    pub key: usize,
    pub column: String,
    /// The value as shown before replacement (over `s` and `m`).
    pub expr: String,
    pub min_persons: i32,
    pub hierarchy: Option<HierarchyName>,
    /// The data table's column that keeps the value before replacement (never in
    /// the view): `_raw<key>`, with `_` added until no exposed column has the name.
    pub raw: String,
}

/// One percentile bound of a `Code` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Percentile {
    /// `<view index>.<column>.top` or `.bottom`: its row in the bounds table and the
    /// ledger.
    pub key: String,
    pub column: String,
    /// The source value, over `s`.
    pub value: String,
    pub percentile: f64,
}

/// A contract, planned: names, SQL and ledger payloads.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractPlan {
    pub id: String,
    pub grantee: String,
    pub kind: Kind,
    pub k: Option<i32>,
    /// The contract's floor for `safe_counts`.
    pub min_cell: i32,
    pub expires_on: String,
    /// The operator's time zone: the views and snapshots compare `expires_on`
    /// with today there, so no session setting of the analyst's moves the gate.
    pub time_zone: String,
    /// The schema of the grantee's views: `contract_<id>`.
    pub schema: String,
    /// The schema of the data tables behind the views, the owner's only.
    pub data_schema: String,
    /// The token and date-offset domain: a person's token and offset differ in
    /// every contract (DESIGN.md invariant 2).
    pub domain: String,
    pub views: Vec<ViewPlan>,
    /// Some source does not name its institution, so a person with an excluded
    /// institution is withheld whole (the records cannot be told apart).
    pub whole_person: bool,
    /// The contract's `min_persons` for rare values; None keeps exact values
    /// (pseudonymized).
    pub min_persons: Option<i32>,
}

fn refuse(refusal: Refusal, path: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError::new(refusal, path, message)
}

const TEXT_TYPES: &[&str] = &["text", "character varying", "character", "name"];
const NUMBER_TYPES: &[&str] = &["smallint", "integer", "bigint", "numeric", "real", "double precision"];
const DATE_TYPES: &[&str] = &["date", "timestamp without time zone", "timestamp with time zone"];
/// A person column holds person_id: one of these.
const INTEGER_TYPES: &[&str] = &["smallint", "integer", "bigint"];

/// The type families a rule accepts.
fn type_fits(rule: &Rule, type_name: &str) -> bool {
    match rule {
        Rule::Drop | Rule::Keep | Rule::Token | Rule::Auto => true,
        Rule::Shift | Rule::DaysSince => DATE_TYPES.contains(&type_name),
        Rule::AgeBand { .. } | Rule::TruncateDate(_) => type_name == "date",
        Rule::PostalPrefix(_) | Rule::Prefecture | Rule::Municipality(_) => TEXT_TYPES.contains(&type_name),
        Rule::Code { .. } => NUMBER_TYPES.contains(&type_name),
        Rule::Dicom(_) => type_name == "bytea",
    }
}

/// Checks one column's rule against the catalog. Every rule check is here.
fn column_plan(source: &Source, column: &SourceColumn, spec: &ColumnSpec, path: &str) -> Result<(), SpecError> {
    let rule = &spec.rule;
    let Some(class) = column.class.as_deref() else {
        return Err(refuse(Refusal::InvalidSpec, path, "the column is not classified, so it cannot be exposed")
            .hint("classify it with medanon.classify(), or leave it out"));
    };
    let is_person = column.name == source.person_column;
    if (class == "identifier" || is_person) && *rule != Rule::Token {
        return Err(refuse(
            Refusal::InvalidSpec,
            path,
            format!("an identifier can only be dropped or tokenized, not \"{}\"", rule.name()),
        ));
    }
    if *rule == Rule::Token && !is_person {
        return Err(refuse(Refusal::NotSupported, path, "only the person column can be tokenized (its token is stored per contract)")
            .hint("drop this column, or keep a surrogate key that identifies no one"));
    }
    dicom_column_plan(class, rule, path)?;
    if *rule == Rule::Auto {
        return Err(refuse(Refusal::NotSupported, path, "the auto rule is not supported in contract views")
            .hint("run medanon.suggest_generalization() and write the levels it gives as rules"));
    }
    if !type_fits(rule, &column.type_name) {
        return Err(refuse(
            Refusal::DatatypeMismatch,
            path,
            format!("rule \"{}\" does not fit a column of type {}", rule.name(), column.type_name),
        ));
    }
    if spec.hierarchy.is_some() && !TEXT_TYPES.contains(&column.type_name.as_str()) {
        return Err(refuse(
            Refusal::DatatypeMismatch,
            path,
            format!("a hierarchy gives text labels, so it needs a text column, not {}", column.type_name),
        )
        .hint("leave out the hierarchy: rare values of this column are then shown as NULL"));
    }
    if column.name == TOKEN_COLUMN {
        return Err(refuse(Refusal::InvalidSpec, path, "this name is reserved for the token column of contract data tables")
            .hint("rename the column in the source, or leave it out"));
    }
    Ok(())
}

/// The class of a column of DICOM objects (issue 20), and the only rule that
/// exposes it: the two go together.
pub const IMAGE_CLASS: &str = "image";

fn dicom_column_plan(class: &str, rule: &Rule, path: &str) -> Result<(), SpecError> {
    match (class == IMAGE_CLASS, matches!(rule, Rule::Dicom(_))) {
        (true, false) => Err(refuse(
            Refusal::InvalidSpec,
            path,
            format!("an image column can only be dropped or de-identified with \"dicom\", not \"{}\"", rule.name()),
        )),
        (false, true) => Err(refuse(Refusal::InvalidSpec, path, format!("the dicom rule needs a column of class image, not {class}"))
            .hint("classify the column with medanon.classify(rel, column, 'image')")),
        _ => Ok(()),
    }
}

/// The SQL arguments of a `dicom` rule's PatientAge band: the band and top of
/// the contract's `age_band` rule when the rule keeps the age, else NULL, NULL.
/// The object's expression and its quasi-identifiers take the same pair.
fn dicom_band_args(contract: &Contract, rule: &crate::contract::DicomRule) -> (String, String) {
    let band = if rule.age_band { crate::contract::dicom_age_band(&contract.spec) } else { None };
    band.map_or(("NULL".to_string(), "NULL".to_string()), |(b, t)| (b.to_string(), t.to_string()))
}

/// The expression of a `dicom` column: the object de-identified for the person
/// of the row, by `medanon._dicom_object` (keyed: the owner's only), with the
/// person's token and date offset from the map.
fn dicom_expression(contract: &Contract, col: &str, rule: &crate::contract::DicomRule) -> String {
    let (band, top) = dicom_band_args(contract, rule);
    format!(
        "medanon._dicom_object({col}, m.token, m.date_offset, {}, {band}, {top}, {}, {})",
        literal(&contract.spec.id),
        rule.keep_sex,
        rule.accept_burned_in
    )
}

/// The quasi-identifiers a `dicom` column's objects show (PatientAge's band,
/// PatientSex), as one expression of the raw object for the person's class; None
/// when the rule shows neither (the basic profile removes both).
fn dicom_quasi_identifiers(contract: &Contract, raw: &str, rule: &crate::contract::DicomRule) -> Option<String> {
    if !rule.age_band && !rule.keep_sex {
        return None;
    }
    let (band, top) = dicom_band_args(contract, rule);
    Some(format!("medanon._dicom_quasi_identifiers({raw}, {band}, {top}, {})", rule.keep_sex))
}

/// The view expression of one exposed column, whose rule passed [`column_plan`].
fn expression(contract: &Contract, index: usize, column: &SourceColumn, rule: &Rule, person: bool) -> String {
    let col = format!("s.{}", ident(&column.name));
    let t = column.type_name.as_str();
    match rule {
        // Checked: an identifier or the person column is tokenized or dropped, and only the person column is tokenized.
        Rule::Token if person => "m.token".to_string(),
        Rule::Keep | Rule::Drop | Rule::Token | Rule::Auto => col,
        // Whole 24-hour days for timestamps, as shift_date does: intervals within a person are kept.
        Rule::Shift if t == "date" => format!("({col} + m.date_offset)"),
        Rule::Shift => format!("({col} + m.date_offset * '24:00:00'::interval)"),
        // Whole days since the person's first date in this column (kept in the map).
        Rule::DaysSince => format!("({col}::date - (m.first_dates ->> {})::date)", literal(&first_date_key(index, &column.name))),
        Rule::AgeBand { band, top } => {
            // parse() refuses age_band without a reference date.
            let reference = contract.reference_date.map(|d| d.to_string()).unwrap_or_default();
            let reference = format!("{}::date", literal(&reference));
            // A birth date after the reference date, or an infinite one, is not an
            // age: NULL, rather than an error that would stop the analyst's query.
            format!(
                "CASE WHEN pg_catalog.isfinite({col}) AND {col} <= {reference} \
                 THEN medanon.generalize_age({col}, {reference}, {band}, {top}) END"
            )
        }
        Rule::PostalPrefix(n) => format!("medanon.postal_prefix({col}::text, {n})"),
        Rule::Prefecture => format!("medanon.prefecture_of({col}::text)"),
        Rule::Municipality(crate::municipality::WardLevel::Ward) => format!("medanon.municipality_of({col}::text)"),
        Rule::Municipality(crate::municipality::WardLevel::City) => format!("medanon.municipality_of({col}::text, 'city')"),
        Rule::Code { top, bottom } => {
            let mut e = col.clone();
            for (bound, is_top) in [(top, true), (bottom, false)] {
                e = match bound {
                    None => e,
                    Some(Bound::Value(x)) => coded(&e, t, *x, is_top),
                    Some(Bound::Percentile(_)) => {
                        let key = percentile_key(index, &column.name, is_top);
                        let bounds = format!("{}.{}", ident(&data_schema_of(&contract.spec.id)), ident(BOUNDS_TABLE));
                        crate::view::coded_at(&e, t, &format!("(SELECT b.value FROM {bounds} b WHERE b.key = {})", literal(&key)), is_top)
                    }
                };
            }
            e
        }
        Rule::TruncateDate(unit) => format!("medanon.truncate_date({col}, {})", literal(unit)),
        Rule::Dicom(d) => dicom_expression(contract, &col, d),
    }
}

/// The scratch table of the percentile bounds of a publish or refresh.
const BOUNDS_TABLE: &str = "_bounds";

/// The key of a `days_since` column's first date in `contract_person.first_dates`.
pub fn first_date_key(view: usize, column: &str) -> String {
    format!("{view}.{column}")
}

/// The key of a percentile bound.
pub fn percentile_key(view: usize, column: &str, top: bool) -> String {
    format!("{view}.{column}.{}", if top { "top" } else { "bottom" })
}

/// Whether the values of a column are checked for rarity: in a contract with
/// `min_persons` (not pseudonymized), a `static` or `semi_static` column, or any
/// column whose spec names `min_persons` or a hierarchy; never a personal date
/// (shifted, or days since the first), a token, or a quasi-identifier that k
/// already covers unless named.
fn rare_min(contract_min: Option<i32>, class: Option<&str>, spec: &ColumnSpec) -> Option<i32> {
    let floor = contract_min?;
    if matches!(spec.rule, Rule::Token | Rule::Drop | Rule::Auto) || spec.rule.is_personal_date() {
        return None;
    }
    let named = spec.min_persons.is_some() || spec.hierarchy.is_some();
    if named || matches!(class, Some("static" | "semi_static")) {
        return Some(spec.min_persons.unwrap_or(floor).max(floor));
    }
    None
}

/// Plans the view of `contract.spec.tables[index]` over `source`. `rare_keys`
/// numbers the contract's rare columns across views.
fn view_plan(contract: &Contract, index: usize, source: &Source, rare_keys: &mut usize) -> Result<ViewPlan, SpecError> {
    let table = &contract.spec.tables[index];
    let at = |key: &str| format!("tables[{index}].{key}");
    let Some(person) = source.columns.iter().find(|c| c.name == source.person_column) else {
        return Err(refuse(
            Refusal::UndefinedColumn,
            at("source"),
            format!("the person column \"{}\" of \"{}\" is missing", source.person_column, table.source),
        )
        .hint("register the source again with medanon.register_source()"));
    };
    if !INTEGER_TYPES.contains(&person.type_name.as_str()) {
        return Err(refuse(
            Refusal::DatatypeMismatch,
            at("source"),
            format!("the person column \"{}\" must hold person_id (bigint), not {}", person.name, person.type_name),
        ));
    }
    for (column, spec) in &table.columns {
        let path = at(&format!("columns.{column}"));
        let Some(described) = source.columns.iter().find(|c| c.name == *column) else {
            return Err(refuse(Refusal::UndefinedColumn, path, format!("column \"{column}\" does not exist in \"{}\"", table.source)));
        };
        if spec.rule != Rule::Drop {
            column_plan(source, described, spec, &path)?;
        }
    }
    let mut columns = Vec::new();
    let mut quasi_identifiers = Vec::new();
    let mut person_column = None;
    let (mut rare, mut shifted_dates, mut first_dates, mut percentiles) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut images = Vec::new();
    // Source order, so the view reads like the table; unnamed columns are dropped.
    for column in &source.columns {
        let Some(spec) = table.columns.get(&column.name).filter(|r| r.rule != Rule::Drop) else { continue };
        let person = column.name == source.person_column;
        let expr = expression(contract, index, column, &spec.rule, person);
        let raw = format!("s.{}", ident(&column.name));
        if person {
            person_column = Some(column.name.clone());
        } else if column.class.as_deref() == Some("quasi_identifier") {
            quasi_identifiers.push(expr.clone());
        }
        match &spec.rule {
            Rule::Shift => shifted_dates.push(format!("{raw}::date")),
            // An image's study date moves by the same offset: the calendar check counts it.
            Rule::Dicom(d) => {
                shifted_dates.push(format!("medanon._dicom_study_date({raw})"));
                images.push(column.name.clone());
                // PatientAge and PatientSex, where the rule shows them, are
                // quasi-identifiers of the person's class like any other.
                if let Some(qi) = dicom_quasi_identifiers(contract, &raw, d) {
                    quasi_identifiers.push(qi);
                }
            }
            Rule::DaysSince => first_dates.push((first_date_key(index, &column.name), format!("{raw}::date"))),
            Rule::Code { top, bottom } => {
                for (bound, is_top) in [(top, true), (bottom, false)] {
                    if let Some(Bound::Percentile(p)) = bound {
                        percentiles.push(Percentile {
                            key: percentile_key(index, &column.name, is_top),
                            column: column.name.clone(),
                            value: raw.clone(),
                            percentile: *p,
                        });
                    }
                }
            }
            _ => {}
        }
        if !person {
            if let Some(min_persons) = rare_min(contract.min_persons(), column.class.as_deref(), spec) {
                rare.push(RareColumn {
                    key: *rare_keys,
                    column: column.name.clone(),
                    expr: expr.clone(),
                    min_persons,
                    hierarchy: spec.hierarchy.clone(),
                    raw: String::new(),
                });
                *rare_keys += 1;
            }
        }
        columns.push(PlannedColumn { name: column.name.clone(), expr, person });
    }
    for r in &mut rare {
        let mut raw = format!("_raw{}", r.key);
        while raw == TOKEN_COLUMN || columns.iter().any(|c: &PlannedColumn| c.name == raw) {
            raw.push('_');
        }
        r.raw = raw;
    }
    let person = format!("s.{}", ident(&source.person_column));
    // Records from an institution where the person may not be provided (not
    // notified, or an opt-out limited to that institution) stay out.
    let institution_filter = source.institution_column.as_ref().map(|institution| {
        format!("(m.excluded_institutions IS NULL OR s.{}::text <> ALL (m.excluded_institutions))", ident(institution))
    });
    Ok(ViewPlan {
        name: source.table.clone(),
        columns,
        source: format!("{}.{}", ident(&source.schema), ident(&source.table)),
        source_schema: source.schema.clone(),
        person,
        institution_filter,
        quasi_identifiers,
        person_column,
        person_level: source.person_level,
        rare,
        shifted_dates,
        first_dates,
        percentiles,
        images,
    })
}

/// The caller must be able to read every column a contract exposes or filters
/// on: the views run as the extension owner, so without this check an operator
/// could publish a table it may not read to a grantee it chose.
fn check_caller_reads(contract: &Contract, index: usize, source: &Source) -> Result<(), SpecError> {
    let table = &contract.spec.tables[index];
    let used = table
        .columns
        .iter()
        .filter(|(_, c)| c.rule != Rule::Drop)
        .map(|(c, _)| c.as_str())
        .chain(std::iter::once(source.person_column.as_str()))
        .chain(source.institution_column.as_deref());
    for column in used {
        let reads = source.columns.iter().any(|c| c.name == column && c.caller_reads);
        if !reads {
            return Err(refuse(
                Refusal::InsufficientPrivilege,
                format!("tables[{index}].columns.{column}"),
                format!("permission denied for column \"{column}\" of \"{}\"", table.source),
            )
            .hint("the role that publishes a contract must be able to read what the contract exposes"));
        }
    }
    Ok(())
}

/// The schema of a contract's views. Contract ids are `[a-z][a-z0-9_]{0,39}`
/// (checked by the spec parser), so the name is a plain identifier.
pub fn schema_of(id: &str) -> String {
    format!("contract_{id}")
}

/// The schema of a contract's data tables, the owner's only.
pub fn data_schema_of(id: &str) -> String {
    format!("{}_data", schema_of(id))
}

/// The schema of snapshot `n` of the contract whose views are in `view_schema`.
pub fn snapshot_schema(view_schema: &str, n: i64) -> String {
    format!("{view_schema}_snap_{n}")
}

/// The DDL of one table of a snapshot: a frozen copy of a view, readable by the
/// grantee until the contract expires (a row-level security policy). Its comment,
/// like every comment of a contract's objects, says nothing of the contract.
pub fn snapshot_table_ddl(snapshot: &str, view_schema: &str, view: &str, grantee: &str, expires_on: &str, zone: &str) -> String {
    let table = format!("{}.{}", ident(snapshot), ident(view));
    let who = ident(grantee);
    format!(
        "CREATE TABLE {table} AS SELECT * FROM {}.{};
         ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
         CREATE POLICY until_expiry ON {table} FOR SELECT TO {who} USING ({});
         REVOKE ALL ON {table} FROM PUBLIC;
         GRANT SELECT ON {table} TO {who};",
        ident(view_schema),
        ident(view),
        crate::view::until_expiry(expires_on, zone)
    )
}

/// The DDL of a snapshot's schema.
pub fn snapshot_schema_ddl(snapshot: &str, grantee: &str) -> String {
    let schema = ident(snapshot);
    format!(
        "CREATE SCHEMA {schema};
         COMMENT ON SCHEMA {schema} IS 'medanon contract snapshot, frozen for delivery';
         REVOKE ALL ON SCHEMA {schema} FROM PUBLIC;
         GRANT USAGE ON SCHEMA {schema} TO {};",
        ident(grantee)
    )
}

/// The smallest cell `safe_counts` shows: what the caller asks, raised to the
/// contract's floor (its spec's `min_cell`). Raised rather than refused, so the
/// function's default (10) works under a contract with a higher floor.
pub fn effective_min_cell(asked: i32, floor: i32) -> i32 {
    asked.max(floor)
}

/// One `safe_counts` call, as the provision ledger records it for a statistics
/// contract (event `safe_counts`): the statistics are the provision.
#[derive(Debug, Clone, PartialEq)]
pub struct CountsCall<'a> {
    /// Its number in `medanon.safe_counts_call` (a sequence, so a call whose
    /// transaction rolled back leaves a gap an auditor sees).
    pub call: i64,
    /// The role that called (the session user is the entry's `recorded_by`).
    pub role: &'a str,
    pub view: &'a str,
    pub group_by: &'a [String],
    pub min_cell_asked: i32,
    pub min_cell: i32,
    pub cells_shown: usize,
    pub cells_suppressed: usize,
}

impl CountsCall<'_> {
    pub fn detail(&self) -> serde_json::Value {
        serde_json::json!({
            "call": self.call, "role": self.role, "view": self.view, "group_by": self.group_by,
            "min_cell_asked": self.min_cell_asked, "min_cell": self.min_cell,
            "cells_shown": self.cells_shown, "cells_suppressed": self.cells_suppressed,
        })
    }
}

/// Plans a contract: every check that needs the catalog, in the order a person
/// fixing a spec meets them (grantee, id, then each table and its columns), and
/// every name and statement of its objects.
pub fn plan(contract: &Contract, described: &Described, purpose: Purpose) -> Result<ContractPlan, SpecError> {
    let spec = &contract.spec;
    if !described.grantee_exists {
        return Err(refuse(Refusal::UndefinedObject, "grantee", format!("role \"{}\" does not exist", spec.grantee)));
    }
    if spec.kind == Kind::Pseudonymized && !described.grantee_certified {
        return Err(refuse(
            Refusal::InvalidSpec,
            "grantee",
            format!("\"{}\" is not a registered certified user, required for a pseudonymized contract", spec.grantee),
        )
        .hint("register it with medanon.register_certified_user()"));
    }
    if purpose == Purpose::Create && described.id_in_use {
        return Err(refuse(Refusal::DuplicateObject, "id", format!("contract \"{}\" exists already", spec.id)));
    }
    if described.relations.len() != spec.tables.len() {
        return Err(refuse(Refusal::InvalidSpec, "tables", "the catalog was described for another spec"));
    }
    let mut views = Vec::with_capacity(spec.tables.len());
    let mut whole_person = false;
    let mut rare_keys = 0;
    for (i, (table, relation)) in spec.tables.iter().zip(&described.relations).enumerate() {
        let source = match relation {
            Relation::Missing => {
                return Err(refuse(Refusal::UndefinedTable, format!("tables[{i}].source"), format!("table \"{}\" does not exist", table.source)))
            }
            Relation::Unregistered => {
                return Err(refuse(Refusal::InvalidSpec, format!("tables[{i}].source"), format!("\"{}\" is not a registered source", table.source))
                    .hint("register it with medanon.register_source() and classify its columns"))
            }
            Relation::Registered(source) => source,
        };
        let view = view_plan(contract, i, source, &mut rare_keys)?;
        if purpose != Purpose::Create {
            check_caller_reads(contract, i, source)?;
        }
        if views.iter().any(|v: &ViewPlan| v.name == view.name) {
            return Err(refuse(
                Refusal::InvalidSpec,
                format!("tables[{i}].source"),
                format!("another source of this contract is also named \"{}\": each view is named after its table", view.name),
            ));
        }
        whole_person |= source.institution_column.is_none();
        views.push(view);
    }
    let schema = schema_of(&spec.id);
    Ok(ContractPlan {
        id: spec.id.clone(),
        grantee: spec.grantee.clone(),
        kind: spec.kind,
        k: spec.k.map(|k| k as i32),
        min_cell: contract.min_cell(),
        expires_on: contract.expires_on.to_string(),
        time_zone: described.time_zone.clone(),
        data_schema: data_schema_of(&spec.id),
        schema,
        domain: format!("contract:{}", spec.id),
        views,
        whole_person,
        min_persons: contract.min_persons(),
    })
}

impl ContractPlan {
    /// `"data_schema"."name"`.
    pub(crate) fn scratch(&self, name: &str) -> String {
        format!("{}.{}", ident(&self.data_schema), ident(name))
    }

    /// The scratch table of the contract's persons (a temporary table is not
    /// allowed under the owner's security-restricted context).
    pub fn persons_table(&self) -> String {
        self.scratch("_persons")
    }

    /// The scratch table of the map as it should be now.
    pub fn map_table(&self) -> String {
        self.scratch("_map")
    }

    /// The scratch table of the map's first part: consent, token, offset.
    pub fn base_table(&self) -> String {
        self.scratch("_base")
    }

    /// The data table of view `index` in `generation`. Short names: a source
    /// table's name may already use all of PostgreSQL's 63 bytes.
    pub fn data_table(&self, index: usize, generation: i32) -> String {
        format!("t{index}_g{generation}")
    }

    /// The schema of snapshot `n`.
    pub fn snapshot_schema(&self, n: i64) -> String {
        snapshot_schema(&self.schema, n)
    }

    /// The schemas of a new contract. Their comments say nothing of the contract
    /// (purpose, grantee, expiry): pg_description is readable by every role,
    /// including other contracts' analysts; those facts stay in medanon.contract.
    /// The grantee gets USAGE on the view schema unless the contract is
    /// statistics-only: that grantee reads no view at all (`safe_counts` reads
    /// them for it, as the owner).
    pub fn schemas_ddl(&self) -> String {
        let schema = ident(&self.schema);
        let data = ident(&self.data_schema);
        let usage = if self.kind.grantee_reads_rows() {
            format!("GRANT USAGE ON SCHEMA {schema} TO {};", ident(&self.grantee))
        } else {
            String::new()
        };
        format!(
            "CREATE SCHEMA {schema};
             COMMENT ON SCHEMA {schema} IS 'medanon contract views';
             REVOKE ALL ON SCHEMA {schema} FROM PUBLIC;
             {usage}
             CREATE SCHEMA {data};
             COMMENT ON SCHEMA {data} IS 'medanon contract data: the rows behind a contract''s views, the extension owner''s only';
             REVOKE ALL ON SCHEMA {data} FROM PUBLIC;"
        )
    }

    /// What the grantee may do with view `view` (quoted): SELECT, or nothing for
    /// a statistics-only contract.
    fn view_grant_sql(&self, view: &str) -> String {
        if self.kind.grantee_reads_rows() {
            format!("GRANT SELECT ON {view} TO {};", ident(&self.grantee))
        } else {
            String::new()
        }
    }

    /// The settings publish gives the grantee role: an idle-in-transaction timeout
    /// ([`GRANTEE_IDLE_IN_TRANSACTION_TIMEOUT`]), so a forgotten open transaction
    /// does not hold the contract's views for long.
    pub fn grantee_settings_sql(&self) -> String {
        format!(
            "ALTER ROLE {} SET idle_in_transaction_session_timeout = {}",
            ident(&self.grantee),
            literal(GRANTEE_IDLE_IN_TRANSACTION_TIMEOUT)
        )
    }

    /// Writes the contract's persons into the scratch table, analyzed, so the
    /// statements after it are planned for the real number of persons (a DISTINCT
    /// over several tables is estimated at 200 rows, and planned with nested loops
    /// that took 12 s a million).
    pub fn persons_sql(&self) -> String {
        self.persons_of_sources(None)
    }

    /// [`ContractPlan::persons_sql`], of the persons of the scratch table `only`
    /// (quoted, with a `person_id` column) when given: those of them that some
    /// source still holds.
    pub(crate) fn persons_of_sources(&self, only: Option<&str>) -> String {
        let filter = |person: &str| only.map(|t| format!(" WHERE {person} IN (SELECT o.person_id FROM {t} o)")).unwrap_or_default();
        let persons: Vec<String> = self
            .views
            .iter()
            .map(|p| format!("SELECT {}::bigint AS person_id FROM {} s{}", p.person, p.source, filter(&p.person)))
            .collect();
        let table = self.persons_table();
        format!(
            "CREATE UNLOGGED TABLE {table} AS SELECT DISTINCT x.person_id FROM ({}) x WHERE x.person_id IS NOT NULL; ANALYZE {table};",
            persons.join(" UNION ALL ")
        )
    }

    /// The scratch table of the persons' shifted dates (see
    /// [`crate::view::person_dates_select`]).
    pub fn dates_table(&self) -> String {
        self.scratch("_dates")
    }

    /// The scratch table of the study window of each shifted column.
    pub fn window_table(&self) -> String {
        self.scratch("_window")
    }

    /// The scratch table of each person's class and state before k.
    pub fn class_table(&self) -> String {
        self.scratch("_class")
    }

    /// Writes, for the persons of the scratch persons table, the map's first part
    /// (consent, token, offset: `_base`), their shifted dates (`_dates`) and the
    /// study window (`_window`), each analyzed before the next statement reads it.
    fn person_steps_sql(&self) -> String {
        let (base, dates, window) = (self.base_table(), self.dates_table(), self.window_table());
        format!(
            "CREATE UNLOGGED TABLE {base} AS {}; ANALYZE {base};
             CREATE UNLOGGED TABLE {dates} AS {}; ANALYZE {dates};
             CREATE UNLOGGED TABLE {window} AS {}; ANALYZE {window};",
            crate::view::person_base_select(self, &self.persons_table()),
            crate::view::person_dates_select(self, &base),
            crate::view::window_select(&self.id, &dates),
        )
    }

    /// The persons' class and state before k, from the tables of
    /// [`ContractPlan::person_steps_sql`] ([`crate::view::person_class_select`]).
    fn person_class_sql(&self) -> String {
        crate::view::person_class_select(self, &self.base_table(), &self.dates_table(), &self.window_table())
    }

    /// [`ContractPlan::person_steps_sql`], then each person's class and state
    /// before k in its own analyzed table (`_class`), which an incremental
    /// refresh counts the changed classes from.
    pub fn class_sql(&self) -> String {
        let class = self.class_table();
        format!("{} CREATE UNLOGGED TABLE {class} AS {}; ANALYZE {class};", self.person_steps_sql(), self.person_class_sql())
    }

    /// Writes what the person map should hold now into the scratch map table,
    /// analyzed, for a publish or full refresh: [`ContractPlan::person_steps_sql`],
    /// then every person's class and k over everyone in one statement
    /// ([`crate::view::person_map_select`] over
    /// [`crate::view::person_class_select`]). Not through a `_class` table, as an
    /// incremental refresh goes: writing and analyzing a million rows cost 1.5 s.
    pub fn map_sql(&self) -> String {
        let table = self.map_table();
        format!(
            "{} CREATE UNLOGGED TABLE {table} AS {}; ANALYZE {table};",
            self.person_steps_sql(),
            crate::view::person_map_select(self, &format!("({})", self.person_class_sql()))
        )
    }

    /// Stores the study window of this publish or refresh (`medanon.contract_window`).
    /// `$1` the contract id.
    pub fn store_window_sql(&self) -> [String; 2] {
        [
            "DELETE FROM medanon.contract_window WHERE contract_id = $1".to_string(),
            format!(
                "INSERT INTO medanon.contract_window (contract_id, date_column, first_date, last_date)
                 SELECT $1, w.c, w.lo, w.hi FROM {} w WHERE w.lo IS NOT NULL",
                self.window_table()
            ),
        ]
    }

    /// Draws again the token of every new person of the scratch map whose token
    /// another person of the contract holds (64 random bits: a pair in about
    /// 2^64 / n^2 draws; run until it changes nothing). A stored token is never
    /// drawn again. `whole`: the scratch map holds every person of the contract
    /// (publish, full refresh); otherwise (an incremental refresh) a new token is
    /// also checked against the stored map, and [`ContractPlan::tokens_shared_sql`]
    /// checks the result once it is written.
    pub fn redraw_tokens_sql(&self, whole: bool) -> String {
        let map = self.map_table();
        let id = literal(&self.id);
        let stored = if whole {
            String::new()
        } else {
            format!(
                " OR m.token IN (SELECT o.token FROM medanon.contract_person o
                                  JOIN {map} d ON d.token = o.token AND d.person_id <> o.person_id
                                 WHERE o.contract_id = {id})"
            )
        };
        format!(
            "UPDATE {map} m SET token = {new}
              WHERE (m.token IN (SELECT d.token FROM {map} d GROUP BY d.token HAVING count(*) > 1){stored})
                AND NOT EXISTS (SELECT FROM medanon.contract_person cp
                                 WHERE cp.contract_id = {id} AND cp.person_id = m.person_id AND cp.token = m.token)",
            new = crate::view::NEW_TOKEN,
        )
    }

    /// Whether a token of the scratch map is held by two persons of the contract,
    /// once an incremental refresh has written the map. A token names one person
    /// of a contract; publish and refresh are the only writers of tokens and draw
    /// again until none is shared ([`ContractPlan::redraw_tokens_sql`]). Over a
    /// whole map (publish, full refresh) the redraw's last pass is itself this
    /// check, since the map then holds every token of the contract. This check
    /// and the redraw stand where a unique index on (contract_id, token) stood
    /// until 0.3.0, whose random inserts cost 4 s of a publish at 1M persons.
    /// `$1` the contract id.
    pub fn tokens_shared_sql(&self) -> String {
        format!(
            "SELECT EXISTS (SELECT FROM medanon.contract_person cp
                             WHERE cp.contract_id = $1 AND cp.token IN (SELECT n.token FROM {} n)
                             GROUP BY cp.token HAVING count(*) > 1)",
            self.map_table()
        )
    }

    /// Deletes from the map the persons no source holds any more. `$1` the contract id.
    pub fn gone_persons_sql(&self) -> String {
        format!(
            "DELETE FROM medanon.contract_person m WHERE m.contract_id = $1 \
             AND NOT EXISTS (SELECT FROM {} p WHERE p.person_id = m.person_id)",
            self.persons_table()
        )
    }

    /// Applies the scratch map to `medanon.contract_person`: on refresh, updates
    /// the persons whose state, exclusions or class changed; then inserts the new
    /// persons (on publish, all of them). Plain INSERT and UPDATE: an INSERT ...
    /// ON CONFLICT of the same rows took 14 s a million. `$1` the contract id.
    pub fn apply_map_sql(&self, purpose: Purpose) -> Vec<String> {
        let refresh = purpose == Purpose::Refresh;
        let mut sql = if refresh { vec![self.gone_persons_sql()] } else { Vec::new() };
        sql.extend(self.write_map_sql(refresh));
        sql
    }

    /// Writes the scratch map into `medanon.contract_person`: with `known`
    /// persons (a refresh), updates those whose state, exclusions or class changed
    /// and inserts the others; otherwise (publish) inserts them all, in person
    /// order, so that two of the map's four indexes take each row at their end
    /// (11.2 s a million in random order, 9.8 s in order). `$1` the contract id.
    pub(crate) fn write_map_sql(&self, known: bool) -> Vec<String> {
        let map = self.map_table();
        let mut sql = Vec::new();
        if known {
            sql.push(format!(
                "UPDATE medanon.contract_person cp
                    SET state = n.state, excluded_institutions = n.excluded_institutions, class_key = n.class_key,
                        first_class = n.first_class, first_dates = n.first_dates, changed_at = now()
                   FROM {map} n
                  WHERE cp.contract_id = $1 AND cp.person_id = n.person_id
                    AND (cp.state, cp.excluded_institutions, cp.class_key, cp.first_class, cp.first_dates)
                        IS DISTINCT FROM (n.state, n.excluded_institutions, n.class_key, n.first_class, n.first_dates)"
            ));
        }
        let only_new = if known {
            " WHERE NOT EXISTS (SELECT FROM medanon.contract_person cp WHERE cp.contract_id = $1 AND cp.person_id = n.person_id)"
        } else {
            ""
        };
        sql.push(format!(
            "INSERT INTO medanon.contract_person
                    (contract_id, person_id, token, date_offset, state, excluded_institutions, class_key, first_class, first_dates)
             SELECT $1, n.person_id, n.token, n.date_offset, n.state, n.excluded_institutions, n.class_key,
                    n.first_class, n.first_dates
               FROM {map} n{only_new} ORDER BY n.person_id"
        ));
        sql
    }

    /// Drops the scratch tables; `whole` (after a publish or full refresh, which
    /// write no `_class` table: [`ContractPlan::map_sql`]): and analyzes the map
    /// (fresh statistics, or the data tables are planned as if the contract had
    /// one person: nested loops over 10M rows, 20 s).
    pub fn drop_scratch_sql(&self, whole: bool) -> String {
        let mut tables = vec![self.persons_table(), self.base_table(), self.dates_table(), self.window_table(), self.map_table()];
        if !whole {
            tables.push(self.class_table());
        }
        let analyze = if whole { "; ANALYZE medanon.contract_person" } else { "" };
        format!("DROP TABLE {}{analyze}", tables.join(", "))
    }

    /// Rebuilds the contract's class counts from the map. `$1` the contract id.
    pub fn classes_sql(&self) -> [String; 2] {
        [
            "DELETE FROM medanon.contract_class WHERE contract_id = $1".to_string(),
            format!(
                "INSERT INTO medanon.contract_class (contract_id, class_key, persons)
                 SELECT $1, class_key, count(*) FROM medanon.contract_person
                  WHERE contract_id = $1 AND state IN ({}, {}) GROUP BY class_key",
                PersonState::Visible.sql(),
                PersonState::K.sql()
            ),
        ]
    }

    /// Writes the rows of view `index` into its data table of `generation` (alone,
    /// so that SPI counts the rows).
    pub fn materialize_sql(&self, index: usize, generation: i32) -> String {
        let data = self.scratch(&self.data_table(index, generation));
        let select = crate::view::materialize_select(&self.views[index], &self.id, &self.data_schema, crate::view::Materialize::All);
        format!("CREATE TABLE {data} AS {select}")
    }

    /// Every rare column of the contract, with its view's index.
    pub fn rare_columns(&self) -> impl Iterator<Item = (usize, &RareColumn)> {
        self.views.iter().enumerate().flat_map(|(i, v)| v.rare.iter().map(move |r| (i, r)))
    }

    /// The scratch tables of [`ContractPlan::prepare_sql`], empty.
    pub fn prepare_tables_sql(&self) -> Vec<String> {
        let scratch = |n: &str| self.scratch(n);
        let (bounds, values, counts, holders, shown) =
            (scratch(BOUNDS_TABLE), scratch(crate::view::VALUES_TABLE), scratch("_rare_counts"), scratch("_holders"), scratch("_shown"));
        vec![
            format!("CREATE UNLOGGED TABLE {bounds} (key text PRIMARY KEY, value double precision)"),
            format!("CREATE UNLOGGED TABLE {values} (key integer NOT NULL, v text NOT NULL, shown text, PRIMARY KEY (key, v))"),
            format!("CREATE UNLOGGED TABLE {counts} (key integer NOT NULL, v text NOT NULL, persons bigint NOT NULL)"),
            format!(
                "CREATE UNLOGGED TABLE {holders} (key integer NOT NULL, person_id bigint NOT NULL, v text NOT NULL,                  label text, level integer NOT NULL DEFAULT 0, done boolean NOT NULL DEFAULT false)"
            ),
            format!("CREATE UNLOGGED TABLE {shown} (key integer NOT NULL, label text NOT NULL, level integer NOT NULL, persons bigint NOT NULL)"),
        ]
    }

    /// Computes, after the map is applied (the persons' states are final), what
    /// publish and refresh need before writing data tables: the percentile bounds
    /// of `Code` rules (`_bounds`: key, value) and the rare values of each rare
    /// column with what the views show instead (`_values`: key, v, shown), from
    /// the visible persons' rows. `_rare_counts` holds every shown value's
    /// persons (key, v, persons), `_shown` the labels rare values climbed to.
    /// `$1` the contract id is not used: the statements are literal.
    pub fn prepare_sql(&self) -> Vec<String> {
        let scratch = |n: &str| self.scratch(n);
        let (bounds, values, counts, holders) =
            (scratch(BOUNDS_TABLE), scratch(crate::view::VALUES_TABLE), scratch("_rare_counts"), scratch("_holders"));
        let mut sql = self.prepare_tables_sql();
        for view in &self.views {
            let rows = crate::view::contract_rows(view, &self.id);
            for p in &view.percentiles {
                sql.push(format!(
                    "INSERT INTO {bounds} SELECT {}, percentile_cont({}) WITHIN GROUP (ORDER BY ({})::double precision) {rows}",
                    literal(&p.key),
                    p.percentile / 100.0,
                    p.value
                ));
            }
            for r in &view.rare {
                // Counted into a table of its own, then copied: PostgreSQL 15 plans an
                // INSERT ... SELECT without parallel workers, a CREATE TABLE AS with them.
                // count(DISTINCT), which PostgreSQL 15 always sorts, not a hashed
                // DISTINCT of (value, person) counted per value: that one was
                // planned as a partial hash in each worker and a hash over their
                // groups in the leader, and once the leader's hash spilled it reset
                // and scanned its whole bucket array for every one of a great many
                // small batches: at 1M persons and 10M visits it had not finished
                // after 150 s at work_mem 4MB (the default) nor after 60 s at 16MB,
                // and took 6.1 s at 64MB. Sorted, the count takes 7.7 s at 4MB and
                // 7.6 to 8.0 s at 256MB, against 6.0 to 6.6 s hashed at 256MB.
                let one = scratch(&format!("_rare_counts_{}", r.key));
                sql.push(format!(
                    "CREATE UNLOGGED TABLE {one} AS SELECT {key} AS key, ({expr})::text AS v, count(DISTINCT {person}) AS persons
                       {rows} AND ({expr})::text IS NOT NULL GROUP BY 2",
                    key = r.key,
                    expr = r.expr,
                    person = view.person,
                ));
                sql.push(format!("INSERT INTO {counts} SELECT * FROM {one}"));
                sql.push(format!("DROP TABLE {one}"));
                if r.hierarchy.is_some() {
                    sql.push(format!(
                        "INSERT INTO {holders} (key, person_id, v, label)                          SELECT DISTINCT {key}, {person}, ({expr})::text, ({expr})::text {rows}                            AND ({expr})::text IN (SELECT c.v FROM {counts} c WHERE c.key = {key} AND c.persons < {min})",
                        key = r.key,
                        expr = r.expr,
                        person = view.person,
                        min = r.min_persons,
                    ));
                }
                sql.push(format!(
                    "SELECT medanon._contract_rare_resolve({}, {}, {}, {})",
                    literal(&self.data_schema),
                    r.key,
                    r.min_persons,
                    r.hierarchy.as_ref().map_or("NULL".to_string(), |h| literal(&h.stored()))
                ));
            }
        }
        sql.push(format!("ANALYZE {values}"));
        sql
    }

    /// Records the rare columns and the values they show (`medanon.contract_column`
    /// and `medanon.contract_value`), which the consent triggers keep true, from
    /// the scratch tables of [`ContractPlan::prepare_sql`]. `$1` the contract id.
    pub fn record_values_sql(&self) -> Vec<String> {
        let (values, counts, shown) = (self.scratch(crate::view::VALUES_TABLE), self.scratch("_rare_counts"), self.scratch("_shown"));
        let mut sql = vec![
            "DELETE FROM medanon.contract_column WHERE contract_id = $1".to_string(),
            "DELETE FROM medanon.contract_value WHERE contract_id = $1".to_string(),
            "DELETE FROM medanon.contract_raw_value WHERE contract_id = $1".to_string(),
        ];
        for (i, r) in self.rare_columns() {
            let view = literal(&self.views[i].name);
            let column = literal(&r.column);
            let hierarchy = r.hierarchy.as_ref().map_or("NULL".to_string(), |h| literal(&h.stored()));
            sql.push(format!(
                "INSERT INTO medanon.contract_column (contract_id, view_name, column_name, min_persons, hierarchy, values_replaced, raw_column)                  SELECT $1, {view}, {column}, {min}, {hierarchy}, (SELECT count(*) FROM {values} v WHERE v.key = {key}), {raw}",
                min = r.min_persons,
                key = r.key,
                raw = literal(&r.raw),
            ));
            sql.push(format!(
                "INSERT INTO medanon.contract_raw_value (contract_id, view_name, column_name, value, persons)                  SELECT $1, {view}, {column}, c.v, c.persons FROM {counts} c WHERE c.key = {key}",
                key = r.key
            ));
            sql.push(format!(
                "INSERT INTO medanon.contract_value (contract_id, view_name, column_name, label, level, persons)                  SELECT $1, {view}, {column}, s.label, s.level, s.persons FROM {shown} s WHERE s.key = {key}                  UNION ALL                  SELECT $1, {view}, {column}, c.v, 0, c.persons FROM {counts} c WHERE c.key = {key} AND c.persons >= {min}                     AND NOT EXISTS (SELECT FROM {shown} s WHERE s.key = {key} AND s.label = c.v)",
                key = r.key,
                min = r.min_persons
            ));
        }
        sql
    }

    /// What the ledger records of the preparation: each percentile bound's value,
    /// and the values each rare column replaced. Reads the scratch tables.
    pub fn prepared_detail_sql(&self) -> String {
        let bounds = self.scratch(BOUNDS_TABLE);
        format!(
            "SELECT jsonb_build_object(
                 'bounds', coalesce((SELECT jsonb_object_agg(b.key, b.value) FROM {bounds} b), '{{}}'::jsonb),
                 'values_replaced', coalesce((SELECT jsonb_object_agg(c.view_name || '.' || c.column_name, c.values_replaced)
                                                FROM medanon.contract_column c WHERE c.contract_id = $1), '{{}}'::jsonb))"
        )
    }

    /// Drops the scratch tables of [`ContractPlan::prepare_sql`], once the data
    /// tables are written.
    pub fn drop_prepared_sql(&self) -> String {
        let names = [BOUNDS_TABLE, crate::view::VALUES_TABLE, "_rare_counts", "_holders", "_shown"];
        format!("DROP TABLE {}", names.iter().map(|n| self.scratch(n)).collect::<Vec<_>>().join(", "))
    }

    /// Indexes and analyzes a new data table; the consent triggers delete a
    /// withheld person's rows by the token.
    pub fn index_sql(&self, index: usize, generation: i32) -> String {
        let data = self.scratch(&self.data_table(index, generation));
        format!(
            "CREATE INDEX ON {data} ({});
             ANALYZE {data};
             COMMENT ON TABLE {data} IS 'medanon contract data behind one view';",
            ident(TOKEN_COLUMN)
        )
    }

    /// Points view `index` at its data table of `generation`; on publish, creates
    /// it, grants it to the grantee only, and comments it; on refresh, drops the
    /// data table of the generation before.
    ///
    /// A security_barrier view: the data table holds only what the grantee may
    /// see (withheld persons' rows are deleted, not filtered), but the planner's
    /// statistics of it may still hold values of persons withheld since it was
    /// last analyzed, and PostgreSQL hands statistics to an analyst's own
    /// (non-leakproof) operator's estimator unless the view is a security barrier
    /// (issue 15: a pg_temp operator with RESTRICT = scalarltsel read histogram
    /// values of an opted-out person through EXPLAIN). The expiry gate has no
    /// column in it, so it runs once, before any row is read.
    pub fn view_sql(&self, index: usize, generation: i32, purpose: Purpose) -> String {
        let p = &self.views[index];
        let view = format!("{}.{}", ident(&self.schema), ident(&p.name));
        let data = self.scratch(&self.data_table(index, generation));
        let define = if purpose == Purpose::Publish { "CREATE VIEW" } else { "CREATE OR REPLACE VIEW" };
        let mut ddl = format!(
            "{define} {view} WITH (security_barrier) AS {};",
            crate::view::view_select(p, &data, &self.expires_on, &self.time_zone)
        );
        if purpose == Purpose::Publish {
            ddl.push_str(&format!(
                "COMMENT ON VIEW {view} IS 'medanon contract view: anonymized per the contract; shows nothing after it expires';
                 REVOKE ALL ON {view} FROM PUBLIC;
                 {}",
                self.view_grant_sql(&view)
            ));
            if let Some(person) = &p.person_column {
                ddl.push_str(&format!(
                    "COMMENT ON COLUMN {view}.{} IS 'person token of this contract: the same in every view of it, unrelated to any other contract';",
                    ident(person)
                ));
            }
        }
        if generation > 1 {
            ddl.push_str(&format!("DROP TABLE IF EXISTS {};", self.scratch(&self.data_table(index, generation - 1))));
        }
        ddl
    }

    /// Counts, for each `dicom` column of view `index` whose current data table is
    /// `data_table`, the objects withheld for a burned-in annotation: the
    /// contract's rows with an object in the source, less the rows with one in
    /// the data table (a bad object stops publish with an error, so every other
    /// NULL is a withheld one). Into `medanon.contract_image`, which
    /// `contract_report` sums. `$1` the contract id.
    pub fn images_withheld_sql(&self, index: usize, data_table: &str) -> Vec<String> {
        let view = &self.views[index];
        let data = self.scratch(data_table);
        let name = literal(&view.name);
        let mut sql = vec![format!("DELETE FROM medanon.contract_image WHERE contract_id = $1 AND view_name = {name}")];
        let rows = crate::view::contract_rows(view, &self.id);
        for column in &view.images {
            let col = ident(column);
            sql.push(format!(
                "INSERT INTO medanon.contract_image (contract_id, view_name, column_name, images_shown, images_withheld)
                 SELECT $1, {name}, {}, d.shown, s.stored - d.shown
                   FROM (SELECT count(*) AS stored {rows} AND s.{col} IS NOT NULL) s,
                        (SELECT count(*) AS shown FROM {data} x WHERE x.{col} IS NOT NULL) d",
                literal(column)
            ));
        }
        sql
    }

    /// The provision-ledger detail of `create`.
    pub fn create_detail(&self) -> serde_json::Value {
        serde_json::json!({
            "grantee": self.grantee, "kind": self.kind.name(), "expires_on": self.expires_on, "tables": self.views.len(),
            "min_cell": self.min_cell,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::calendar::Ymd;
    use crate::contract::parse;

    pub const SPEC: &str = r#"{"id": "c2026_001", "grantee": "lab_a", "purpose": "p",
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

    pub fn contract() -> Contract {
        parse(SPEC, Ymd { year: 2026, month: 11, day: 25 }).unwrap()
    }

    fn col(name: &str, type_name: &str, class: &str) -> SourceColumn {
        SourceColumn { name: name.into(), type_name: type_name.into(), class: Some(class.into()), caller_reads: true }
    }

    pub fn patient() -> Source {
        Source {
            schema: "clinical".into(),
            table: "patient".into(),
            person_column: "person_id".into(),
            institution_column: None,
            person_level: true,
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

    pub fn visit() -> Source {
        Source {
            schema: "clinical".into(),
            table: "visit".into(),
            person_column: "person_id".into(),
            institution_column: Some("institution_code".into()),
            person_level: false,
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

    pub fn described(patient: Source, visit: Source) -> Described {
        Described {
            time_zone: "Asia/Tokyo".into(),
            grantee_exists: true,
            grantee_certified: false,
            id_in_use: false,
            relations: vec![Relation::Registered(patient), Relation::Registered(visit)],
        }
    }

    pub fn planned() -> ContractPlan {
        plan(&contract(), &described(patient(), visit()), Purpose::Publish).unwrap()
    }

    #[test]
    fn municipality_rules_plan_their_expressions_on_text_only() {
        for (rule, expr) in [
            (r#""municipality""#, "medanon.municipality_of(s.\"address\"::text)"),
            (r#"{"municipality": "city"}"#, "medanon.municipality_of(s.\"address\"::text, 'city')"),
        ] {
            let spec = SPEC.replacen(r#""address": "prefecture""#, &format!(r#""address": {rule}"#), 1);
            let c = parse(&spec, Ymd { year: 2026, month: 11, day: 25 }).unwrap();
            let p = plan(&c, &described(patient(), visit()), Purpose::Publish).unwrap();
            assert!(p.views[0].quasi_identifiers.iter().any(|q| q == expr), "{rule}: {:?}", p.views[0].quasi_identifiers);
            // On a column that is no text, the rule is refused (42804).
            let spec = SPEC.replacen(r#""sex": "keep""#, &format!(r#""sex": {rule}"#), 1);
            let c = parse(&spec, Ymd { year: 2026, month: 11, day: 25 }).unwrap();
            let e = plan(&c, &described(patient(), visit()), Purpose::Publish).unwrap_err();
            assert_eq!(e.refusal, Refusal::DatatypeMismatch, "{rule}");
            assert_eq!(e.path, "tables[0].columns.sex");
        }
    }

    #[test]
    fn names_come_from_the_plan() {
        let p = planned();
        assert_eq!(p.schema, "contract_c2026_001");
        assert_eq!(p.data_schema, "contract_c2026_001_data");
        assert_eq!(p.domain, "contract:c2026_001");
        assert_eq!(p.data_table(1, 3), "t1_g3");
        assert_eq!(p.snapshot_schema(2), "contract_c2026_001_snap_2");
        assert_eq!(p.persons_table(), "\"contract_c2026_001_data\".\"_persons\"");
        assert!(p.whole_person, "patient names no institution");
        assert_eq!(p.views[0].person_column.as_deref(), Some("person_id"));
        assert_eq!(p.create_detail()["tables"], 2);
    }

    #[test]
    fn schema_comments_say_nothing_of_the_contract() {
        let p = planned();
        let ddl = p.schemas_ddl() + &p.view_sql(0, 1, Purpose::Publish) + &p.index_sql(0, 1);
        let comments: Vec<&str> = ddl.split(" IS '").skip(1).map(|rest| rest.split("';").next().unwrap_or(rest)).collect();
        assert_eq!(comments.len(), 5, "{ddl}");
        for secret in ["lab_a", "2027", "c2026_001", "clinical", "patient"] {
            assert!(comments.iter().all(|c| !c.contains(secret)), "{secret}: {comments:?}");
        }
        assert!(ddl.contains("GRANT SELECT ON \"contract_c2026_001\".\"patient\" TO \"lab_a\""));
    }

    #[test]
    fn a_statistics_grantee_gets_no_view_and_the_floor_is_the_contracts() {
        let mut c = contract();
        c.spec.kind = Kind::Statistics;
        c.spec.min_cell = Some(20);
        let p = plan(&c, &described(patient(), visit()), Purpose::Publish).unwrap();
        assert_eq!(p.min_cell, 20);
        let ddl = p.schemas_ddl() + &p.view_sql(0, 1, Purpose::Publish) + &p.view_sql(1, 1, Purpose::Publish);
        assert!(!ddl.contains("GRANT"), "a statistics grantee reads no view: {ddl}");
        assert!(ddl.contains("REVOKE ALL ON \"contract_c2026_001\".\"patient\" FROM PUBLIC"));
        assert!(ddl.contains("REVOKE ALL ON SCHEMA \"contract_c2026_001\" FROM PUBLIC"));
        assert_eq!(p.create_detail()["kind"], "statistics");
        assert_eq!(p.create_detail()["min_cell"], 20);
        // An anonymized contract grants both, and its floor is the NDB rule.
        let a = planned();
        assert_eq!(a.min_cell, 10);
        let ddl = a.schemas_ddl() + &a.view_sql(0, 1, Purpose::Publish);
        assert!(ddl.contains("GRANT USAGE ON SCHEMA \"contract_c2026_001\" TO \"lab_a\""));
        assert!(ddl.contains("GRANT SELECT ON \"contract_c2026_001\".\"patient\" TO \"lab_a\""));
        // Every grantee gets the idle-in-transaction timeout, its name quoted.
        assert_eq!(
            a.grantee_settings_sql(),
            "ALTER ROLE \"lab_a\" SET idle_in_transaction_session_timeout = '5min'"
        );
        let mut hostile = contract();
        hostile.spec.grantee = "lab\"; DROP ROLE x; --".into();
        let h = plan(&hostile, &described(patient(), visit()), Purpose::Publish).unwrap();
        assert!(h.grantee_settings_sql().starts_with("ALTER ROLE \"lab\"\"; DROP ROLE x; --\" SET"));
    }

    #[test]
    fn safe_counts_never_goes_under_the_floor_and_records_the_call() {
        for (asked, floor, applied) in [(1, 10, 10), (10, 10, 10), (12, 10, 12), (10, 20, 20), (i32::MAX, 2, i32::MAX)] {
            assert_eq!(effective_min_cell(asked, floor), applied, "{asked} under {floor}");
        }
        let group_by = ["sex".to_string(), "icd10".to_string()];
        let d = CountsCall {
            call: 7, role: "lab_s", view: "visit", group_by: &group_by, min_cell_asked: 1, min_cell: 10,
            cells_shown: 3, cells_suppressed: 4,
        }
        .detail();
        assert_eq!(d["group_by"], serde_json::json!(["sex", "icd10"]));
        assert_eq!((d["min_cell_asked"].as_i64(), d["min_cell"].as_i64()), (Some(1), Some(10)));
        assert_eq!((d["cells_shown"].as_i64(), d["cells_suppressed"].as_i64(), d["call"].as_i64()), (Some(3), Some(4), Some(7)));
        assert_eq!((d["view"].as_str(), d["role"].as_str()), (Some("visit"), Some("lab_s")));
    }

    #[test]
    fn a_token_is_drawn_again_until_no_two_persons_share_it() {
        let plan = planned();
        let map = plan.map_table();
        // Over the whole map (publish, full refresh): duplicates within the map.
        let whole = plan.redraw_tokens_sql(true);
        assert!(whole.contains(&format!("m.token IN (SELECT d.token FROM {map} d GROUP BY d.token HAVING count(*) > 1)")), "{whole}");
        assert!(!whole.contains("o.token"), "{whole}");
        // An incremental refresh also checks new tokens against the stored map, set-wise
        // (no index on the token: a correlated lookup would scan the map per row).
        let some = plan.redraw_tokens_sql(false);
        assert!(some.contains(&format!("JOIN {map} d ON d.token = o.token AND d.person_id <> o.person_id")), "{some}");
        assert!(!some.contains("EXISTS (SELECT FROM medanon.contract_person o"), "{some}");
        // A person's stored token is never drawn again.
        assert!(some.contains("cp.person_id = m.person_id AND cp.token = m.token") && whole.contains("cp.person_id = m.person_id AND cp.token = m.token"));
        let shared = plan.tokens_shared_sql();
        assert!(shared.contains("cp.contract_id = $1") && shared.contains(&format!("cp.token IN (SELECT n.token FROM {map} n)")), "{shared}");
        assert!(shared.contains("GROUP BY cp.token HAVING count(*) > 1"), "{shared}");
    }

    #[test]
    fn refresh_points_views_at_the_new_generation_and_drops_the_old() {
        let p = planned();
        let v = p.view_sql(1, 2, Purpose::Refresh);
        assert!(v.starts_with("CREATE OR REPLACE VIEW \"contract_c2026_001\".\"visit\" WITH (security_barrier) AS SELECT"), "{v}");
        assert!(v.contains("FROM \"contract_c2026_001_data\".\"t1_g2\" d"));
        assert!(v.ends_with("DROP TABLE IF EXISTS \"contract_c2026_001_data\".\"t1_g1\";"), "{v}");
        assert!(!v.contains("GRANT"), "grants stay from publish");
        let first = p.view_sql(1, 1, Purpose::Publish);
        assert!(!first.contains("DROP TABLE"));
        let apply = p.apply_map_sql(Purpose::Refresh);
        assert_eq!(apply.len(), 3);
        assert!(apply[2].contains("WHERE NOT EXISTS"));
        assert_eq!(p.apply_map_sql(Purpose::Publish).len(), 1);
    }

    #[test]
    fn every_state_has_a_name_and_meaning() {
        let names: Vec<&str> = PersonState::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["visible", "k", "consent", "unlinked", "changed", "calendar"]);
        assert!(PersonState::ALL.iter().all(|s| !s.meaning().is_empty()));
        assert!(planned().classes_sql()[1].contains("state IN ('visible', 'k')"));
    }

    #[test]
    fn rare_values_percentiles_and_first_dates_are_planned() {
        let p = planned();
        // icd10 (semi_static, kept) is checked for rare values at the contract's k;
        // dynamic lab values, shifted dates, tokens and quasi-identifiers are not.
        let rare: Vec<(usize, &str, i32)> = p.rare_columns().map(|(i, r)| (i, r.column.as_str(), r.min_persons)).collect();
        assert_eq!(rare, [(1, "icd10", 5)]);
        let m = p.materialize_sql(1, 1);
        assert!(m.contains("CASE WHEN r0.v IS NULL THEN s.\"icd10\" END AS \"icd10\""), "{m}");
        assert!(m.contains("LEFT JOIN \"contract_c2026_001_data\".\"_values\" r0 ON r0.key = 0 AND r0.v = (s.\"icd10\")::text"), "{m}");
        let prep = p.prepare_sql().join(";\n");
        assert!(prep.contains("SELECT 0 AS key, (s.\"icd10\")::text AS v, count(DISTINCT s.\"person_id\") AS persons\n                       FROM \"clinical\".\"visit\" s"), "{prep}");
        assert!(prep.contains("AND (s.\"icd10\")::text IS NOT NULL GROUP BY 2"), "{prep}");
        assert!(prep.contains("CREATE UNLOGGED TABLE \"contract_c2026_001_data\".\"_rare_counts_0\" AS"), "counted in parallel: {prep}");
        assert!(prep.contains("medanon._contract_rare_resolve('contract_c2026_001_data', 0, 5, NULL)"));
        assert!(!prep.contains("percentile_cont"), "no percentile bound in this spec");
        // A spec with a hierarchy, a raised min_persons and a percentile bound.
        let mut c = contract();
        c.spec.tables[1].columns.insert(
            "icd10".into(),
            ColumnSpec { rule: Rule::Keep, min_persons: Some(8), hierarchy: Some(HierarchyName::Icd10) },
        );
        c.spec.tables[1].columns.insert(
            "lab_value".into(),
            Rule::Code { top: Some(Bound::Percentile(99.5)), bottom: Some(Bound::Value(0.0)) }.into(),
        );
        c.spec.tables[1].columns.insert("visit_date".into(), Rule::DaysSince.into());
        let p = plan(&c, &described(patient(), visit()), Purpose::Publish).unwrap();
        let m = p.materialize_sql(1, 1);
        assert!(m.contains("CASE WHEN r0.v IS NULL THEN s.\"icd10\" ELSE r0.shown END"), "{m}");
        assert!(m.contains("(SELECT b.value FROM \"contract_c2026_001_data\".\"_bounds\" b WHERE b.key = '1.lab_value.top')"), "{m}");
        assert!(m.contains("(s.\"visit_date\"::date - (m.first_dates ->> '1.visit_date')::date) AS \"visit_date\""), "{m}");
        let prep = p.prepare_sql().join(";\n");
        assert!(prep.contains("percentile_cont(0.995) WITHIN GROUP (ORDER BY (s.\"lab_value\")::double precision)"), "{prep}");
        assert!(prep.contains("medanon._contract_rare_resolve('contract_c2026_001_data', 0, 8, 'icd10')"));
        assert!(prep.contains("c.persons < 8)"), "holders of values under 8 persons climb: {prep}");
        assert_eq!(p.views[1].first_dates, [("1.visit_date".to_string(), "s.\"visit_date\"::date".to_string())]);
        assert!(p.views[1].shifted_dates.is_empty(), "days_since is no calendar date");
        // A hierarchy needs a text column; a pseudonymized contract checks no value.
        let mut c2 = c.clone();
        c2.spec.tables[1].columns.insert("days".into(), ColumnSpec { rule: Rule::Keep, min_persons: None, hierarchy: Some(HierarchyName::Icd10) });
        let e = refused(&c2, &described(patient(), visit()), Purpose::Create);
        assert_eq!((e.refusal, e.path.as_str()), (Refusal::DatatypeMismatch, "tables[1].columns.days"));
        let mut pseudo = contract();
        pseudo.spec.kind = Kind::Pseudonymized;
        pseudo.spec.k = None;
        let mut d = described(patient(), visit());
        d.grantee_certified = true;
        assert_eq!(plan(&pseudo, &d, Purpose::Publish).unwrap().rare_columns().count(), 0);
    }

    fn refused(c: &Contract, d: &Described, purpose: Purpose) -> SpecError {
        plan(c, d, purpose).expect_err("should be refused")
    }

    #[test]
    fn each_refusal_names_its_key_and_kind() {
        let c = contract();
        let ok = described(patient(), visit());
        let mut d = ok.clone();
        d.grantee_exists = false;
        let e = refused(&c, &d, Purpose::Create);
        assert_eq!((e.refusal, e.path.as_str()), (Refusal::UndefinedObject, "grantee"));
        let mut d = ok.clone();
        d.id_in_use = true;
        assert_eq!(refused(&c, &d, Purpose::Create).refusal, Refusal::DuplicateObject);
        assert!(plan(&c, &d, Purpose::Refresh).is_ok(), "a stored contract's own id is in use");
        let mut d = ok.clone();
        d.relations[1] = Relation::Missing;
        let e = refused(&c, &d, Purpose::Create);
        assert_eq!((e.refusal, e.path.as_str()), (Refusal::UndefinedTable, "tables[1].source"));
        d.relations[1] = Relation::Unregistered;
        let e = refused(&c, &d, Purpose::Create);
        assert_eq!((e.refusal, e.hint.is_some()), (Refusal::InvalidSpec, true));

        let mut v = visit();
        v.columns.retain(|c| c.name != "icd10");
        let e = refused(&c, &described(patient(), v), Purpose::Create);
        assert_eq!((e.refusal, e.path.as_str()), (Refusal::UndefinedColumn, "tables[1].columns.icd10"));
        let mut v = visit();
        v.columns[3].class = None;
        assert_eq!(refused(&c, &described(patient(), v), Purpose::Create).refusal, Refusal::InvalidSpec);
        let mut v = visit();
        v.columns[3].type_name = "integer".into();
        let mut c2 = c.clone();
        c2.spec.tables[1].columns.insert("icd10".into(), Rule::Shift.into());
        let e = refused(&c2, &described(patient(), visit()), Purpose::Create);
        assert_eq!((e.refusal, e.path.as_str()), (Refusal::DatatypeMismatch, "tables[1].columns.icd10"));
        assert!(e.client_message().starts_with("invalid contract spec at \"tables[1].columns.icd10\": rule \"shift\""));

        // Token off the person column, and auto: one SQLSTATE each, whether creating or publishing.
        let mut c3 = c.clone();
        c3.spec.tables[0].columns.insert("blood_type".into(), Rule::Token.into());
        for purpose in [Purpose::Create, Purpose::Publish] {
            assert_eq!(refused(&c3, &ok, purpose).refusal, Refusal::NotSupported);
        }
        let mut c4 = c.clone();
        c4.spec.tables[0].columns.insert("blood_type".into(), Rule::Auto.into());
        assert_eq!(refused(&c4, &ok, Purpose::Publish).refusal, Refusal::NotSupported);
        let mut c5 = c.clone();
        c5.spec.tables[0].columns.insert("name".into(), Rule::Keep.into());
        assert!(refused(&c5, &ok, Purpose::Create).message.contains("an identifier can only be dropped or tokenized"));
    }

    #[test]
    fn dicom_columns_are_planned_with_the_map_and_need_the_image_class() {
        let mut c = contract();
        c.spec.tables[1].columns.insert(
            "ct".into(),
            Rule::Dicom(crate::contract::DicomRule { age_band: true, keep_sex: false, accept_burned_in: true }).into(),
        );
        let mut visit = visit();
        visit.columns.push(col("ct", "bytea", IMAGE_CLASS));
        let p = plan(&c, &described(patient(), visit.clone()), Purpose::Publish).unwrap();
        let ct = p.views[1].columns.iter().find(|x| x.name == "ct").unwrap();
        assert_eq!(ct.expr, "medanon._dicom_object(s.\"ct\", m.token, m.date_offset, 'c2026_001', 5, 90, false, true)");
        assert_eq!(p.views[1].images, ["ct"]);
        assert!(p.views[1].shifted_dates.contains(&"medanon._dicom_study_date(s.\"ct\")".to_string()), "the calendar check sees image dates");
        // The age band the objects show is a quasi-identifier of the person's class
        // (k counts it); with the basic profile alone they show none.
        assert!(p.views[1].quasi_identifiers.contains(&"medanon._dicom_quasi_identifiers(s.\"ct\", 5, 90, false)".to_string()));
        let mut basic = c.clone();
        basic.spec.tables[1].columns.insert("ct".into(), Rule::Dicom(crate::contract::DicomRule::default()).into());
        let b = plan(&basic, &described(patient(), visit.clone()), Purpose::Publish).unwrap();
        assert!(b.views[1].quasi_identifiers.iter().all(|q| !q.contains("ct")));
        let sql = p.images_withheld_sql(1, "t1_g1").join(";");
        assert!(sql.contains("medanon.contract_image") && sql.contains("s.\"ct\" IS NOT NULL") && sql.contains("\"t1_g1\""), "{sql}");
        // The rule needs the class, and the class the rule.
        let mut wrong = visit.clone();
        wrong.columns.last_mut().unwrap().class = Some("dynamic".into());
        let e = refused(&c, &described(patient(), wrong), Purpose::Publish);
        assert_eq!((e.refusal, e.path.as_str()), (Refusal::InvalidSpec, "tables[1].columns.ct"));
        let mut kept = c.clone();
        kept.spec.tables[1].columns.insert("ct".into(), Rule::Keep.into());
        let e = refused(&kept, &described(patient(), visit.clone()), Purpose::Publish);
        assert_eq!((e.refusal, e.path.as_str()), (Refusal::InvalidSpec, "tables[1].columns.ct"));
        let mut text = visit;
        text.columns.last_mut().unwrap().type_name = "text".into();
        let e = refused(&c, &described(patient(), text), Purpose::Publish);
        assert_eq!((e.refusal, e.path.as_str()), (Refusal::DatatypeMismatch, "tables[1].columns.ct"));
    }

    #[test]
    fn the_person_column_is_checked() {
        let c = contract();
        let mut p = patient();
        p.columns[0].type_name = "text".into();
        let e = refused(&c, &described(p, visit()), Purpose::Create);
        assert_eq!((e.refusal, e.path.as_str()), (Refusal::DatatypeMismatch, "tables[0].source"));
        let mut p = patient();
        p.person_column = "gone".into();
        assert_eq!(refused(&c, &described(p, visit()), Purpose::Create).refusal, Refusal::UndefinedColumn);
    }

    #[test]
    fn publishing_needs_the_callers_read_rights_and_creating_does_not() {
        let c = contract();
        let mut v = visit();
        v.columns[1].caller_reads = false; // institution_code: filtered on, not exposed
        let d = described(patient(), v);
        assert!(plan(&c, &d, Purpose::Create).is_ok());
        let e = refused(&c, &d, Purpose::Publish);
        assert_eq!(e.refusal, Refusal::InsufficientPrivilege);
        assert_eq!(e.client_message(), "permission denied for column \"institution_code\" of \"clinical.visit\"");
    }

    #[test]
    fn reserved_names_and_twin_view_names_are_refused() {
        let mut p = patient();
        p.columns[3].name = TOKEN_COLUMN.into();
        let mut c = contract();
        let rule = c.spec.tables[0].columns.remove("sex").unwrap();
        c.spec.tables[0].columns.insert(TOKEN_COLUMN.into(), rule);
        let e = refused(&c, &described(p, visit()), Purpose::Create);
        assert_eq!(e.path, format!("tables[0].columns.{TOKEN_COLUMN}"));
        let mut other = visit();
        other.schema = "archive".into();
        other.table = "patient".into();
        let mut c = contract();
        c.spec.tables[1].columns.clear();
        c.spec.tables[1].columns.insert("person_id".into(), Rule::Token.into());
        let e = refused(&c, &described(patient(), other), Purpose::Create);
        assert_eq!(e.path, "tables[1].source");
    }

    #[test]
    fn hostile_names_stay_quoted() {
        let mut s = patient();
        s.schema = "x\"; DROP TABLE t; --".into();
        s.columns[3].name = "se\"x".into();
        let mut c = contract();
        let rule = c.spec.tables[0].columns.remove("sex").unwrap();
        c.spec.tables[0].columns.insert("se\"x".into(), rule);
        let p = plan(&c, &described(s, visit()), Purpose::Publish).unwrap();
        let m = p.materialize_sql(0, 1);
        assert!(m.contains("FROM \"x\"\"; DROP TABLE t; --\".\"patient\" s"), "{m}");
        assert!(m.contains("s.\"se\"\"x\" AS \"se\"\"x\""));
    }
}
