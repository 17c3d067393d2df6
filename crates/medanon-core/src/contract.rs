//! Contract specs: what a research contract may see, and how each column of each
//! source table is treated. Parsed with serde (with the path of every error, so a
//! refusal names the offending key) and checked here for everything that does not
//! need the catalog; the extension checks tables, columns, classes and types.
//!
//! ```json
//! {"id": "c2026_001", "grantee": "lab_a", "purpose": "post-marketing safety of drug X",
//!  "approved_on": "2026-11-01", "expires_on": "2027-03-31", "kind": "anonymized", "k": 5,
//!  "reference_date": "2026-04-01",
//!  "tables": [{"source": "clinical.patient",
//!              "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 5, "top": 90}}}}]}
//! ```

use crate::calendar::Ymd;
use crate::hierarchy::GeographyLevel;
use crate::municipality::WardLevel;
use crate::jpdate::parse_japanese_date;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// The kind of a refusal. Each kind has one SQLSTATE, which the extension maps
/// it to: the same mistake is refused the same way at create and at publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 22023 invalid_parameter_value: the spec itself is wrong.
    InvalidSpec,
    /// 42704 undefined_object: a role the spec names does not exist.
    UndefinedObject,
    /// 42710 duplicate_object: the contract id is taken.
    DuplicateObject,
    /// 42P01 undefined_table.
    UndefinedTable,
    /// 42703 undefined_column.
    UndefinedColumn,
    /// 0A000 feature_not_supported: a rule medanon cannot apply there.
    NotSupported,
    /// 42804 datatype_mismatch: a rule that does not fit the column's type.
    DatatypeMismatch,
    /// 42501 insufficient_privilege: the publishing role may not read a column.
    InsufficientPrivilege,
}

/// Why a spec was refused: the key path (for example `tables[1].columns.visit_date`),
/// what is wrong there, the kind of refusal and, where there is one, the fix.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    pub path: String,
    pub message: String,
    pub refusal: Refusal,
    pub hint: Option<String>,
}

impl SpecError {
    pub fn new(refusal: Refusal, path: impl Into<String>, message: impl Into<String>) -> SpecError {
        SpecError { path: path.into(), message: message.into(), refusal, hint: None }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> SpecError {
        self.hint = Some(hint.into());
        self
    }

    /// The error message a client sees. A privilege refusal reads like
    /// PostgreSQL's own; every other refusal names the key.
    pub fn client_message(&self) -> String {
        match self.refusal {
            Refusal::InsufficientPrivilege => self.message.clone(),
            _ => format!("invalid contract spec at \"{}\": {}", self.path, self.message),
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

fn err(path: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError::new(Refusal::InvalidSpec, path, message)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// 匿名加工医療情報: k-anonymous, no way back to a person.
    Anonymized,
    /// 仮名加工医療情報 (2024 amendment): identifiers removed or tokenized, k optional,
    /// only for registered certified users.
    Pseudonymized,
    /// Statistics only (統計情報として提供, the seed's example ④): the views are
    /// built as for an anonymized contract (k holds), but the grantee may not read
    /// them; it gets suppressed counts from `safe_counts`, each call recorded.
    Statistics,
}

impl Kind {
    /// The kind's name, as a spec writes it and `medanon.contract` stores it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Anonymized => "anonymized",
            Kind::Pseudonymized => "pseudonymized",
            Kind::Statistics => "statistics",
        }
    }

    /// Whether the grantee reads the contract's views row by row. A statistics
    /// grantee does not: it sees counts only.
    pub fn grantee_reads_rows(self) -> bool {
        self != Kind::Statistics
    }
}

/// The smallest cell `safe_counts` shows when a spec names no `min_cell`: the NDB
/// publication rule (cells of 1 to 9 persons are not published).
pub const DEFAULT_MIN_CELL: i32 = 10;

/// The bounds of a spec's `min_cell`. A floor of 1 would hide nothing, which is
/// the hole issue 15 names; above a million is larger than any release.
pub const MIN_CELL_BOUNDS: std::ops::RangeInclusive<i64> = 2..=1_000_000;

/// A bound of [`Rule::Code`]: a value, or a percentile of the values of the
/// contract's visible persons, computed at publish and refresh and recorded in the
/// ledger entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Value(f64),
    /// Strictly between 0 and 100.
    Percentile(f64),
}

/// How one column is treated in the contract's view.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    Drop,
    Keep,
    /// A per-contract token of the value.
    Token,
    /// The date moved by the person's per-contract offset (whole weeks).
    Shift,
    /// Whole days since the person's earliest date in this column within the
    /// contract (`{"days_since": "first"}`): intervals without a calendar.
    DaysSince,
    /// Age on the reference date, in bands.
    AgeBand { band: i32, top: i32 },
    /// The first n digits of a postal code.
    PostalPrefix(i32),
    /// The prefecture an address names.
    Prefecture,
    /// The municipality (市区町村) of an address or a postal code: `"municipality"`
    /// (a designated city's ward) or `{"municipality": "city"}` (the city).
    Municipality(WardLevel),
    /// Top and/or bottom coding of a number (`{"top_code": x, "bottom_code": y}`,
    /// either a value or `{"percentile": p}`).
    Code { top: Option<Bound>, bottom: Option<Bound> },
    TruncateDate(String),
    /// A DICOM object (`bytea`, class `image`), de-identified for the contract
    /// (issue 20): `"dicom"` or `{"dicom": {...}}`, see [`DicomRule`].
    Dicom(DicomRule),
    /// `{"auto": true}`: parsed so that the planner can refuse it with a hint
    /// (0A000): levels are chosen by the operator, from what
    /// `suggest_generalization` gives, and written as rules.
    Auto,
}

impl Rule {
    /// The rule's name, as a spec writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Rule::Drop => "drop",
            Rule::Keep => "keep",
            Rule::Token => "token",
            Rule::Shift => "shift",
            Rule::DaysSince => "days_since",
            Rule::AgeBand { .. } => "age_band",
            Rule::PostalPrefix(_) => "postal_prefix",
            Rule::Prefecture => "prefecture",
            Rule::Municipality(_) => "municipality",
            Rule::Code { top: Some(_), bottom: None } => "top_code",
            Rule::Code { top: None, bottom: Some(_) } => "bottom_code",
            Rule::Code { .. } => "top_code and bottom_code",
            Rule::TruncateDate(_) => "truncate_date",
            Rule::Dicom(_) => "dicom",
            Rule::Auto => "auto",
        }
    }

    /// Whether the view shows the person's dates on no calendar, or moved by a
    /// secret offset: such values are not checked for rarity (a shifted date is
    /// meant to be the person's own).
    pub fn is_personal_date(&self) -> bool {
        matches!(self, Rule::Shift | Rule::DaysSince)
    }
}

/// A hierarchy a rare value climbs: built in, or a user's table whose first
/// column is the value and each next column the next level up (as
/// `suggest_generalization` reads them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HierarchyName {
    /// ICD-10 codes: full code, 3-character category, chapter.
    Icd10,
    /// A table, as `schema.table`.
    Table(String),
}

impl HierarchyName {
    /// As `medanon.contract_column.hierarchy` stores it: `icd10` or `table:<name>`.
    pub fn stored(&self) -> String {
        match self {
            HierarchyName::Icd10 => "icd10".into(),
            HierarchyName::Table(t) => format!("table:{t}"),
        }
    }
}

/// One column of a spec table: its rule, and for rare values (特異な記述) the
/// smallest number of persons a shown value needs and the hierarchy a rarer
/// value climbs.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    pub rule: Rule,
    pub min_persons: Option<i32>,
    pub hierarchy: Option<HierarchyName>,
}

impl From<Rule> for ColumnSpec {
    fn from(rule: Rule) -> ColumnSpec {
        ColumnSpec { rule, min_persons: None, hierarchy: None }
    }
}

impl PartialEq<Rule> for ColumnSpec {
    fn eq(&self, rule: &Rule) -> bool {
        self.rule == *rule
    }
}

/// The options of a `dicom` rule (issue 20). By default the object gets the
/// basic profile alone: PatientAge removed, PatientSex emptied, and an object that
/// says BurnedInAnnotation = YES withheld (NULL in the view).
///
/// ```json
/// {"dicom": {"patient_age": "age_band", "patient_sex": "keep", "burned_in_annotation": "accept"}}
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DicomRule {
    /// PatientAge as the lower bound of the contract's `age_band` rule's band
    /// (the spec must have exactly one such band), instead of removed.
    pub age_band: bool,
    /// PatientSex kept (M, F or O), instead of emptied.
    pub keep_sex: bool,
    /// Objects with BurnedInAnnotation = YES are shown, not withheld.
    pub accept_burned_in: bool,
}

fn dicom_rule_of(value: &serde_json::Value) -> Result<DicomRule, String> {
    const USE: &str = "dicom takes {\"patient_age\": \"age_band\" or \"remove\", \"patient_sex\": \"keep\" or \"remove\", \"burned_in_annotation\": \"accept\" or \"withhold\"}";
    let serde_json::Value::Object(o) = value else { return Err(USE.into()) };
    let mut rule = DicomRule::default();
    for (key, v) in o {
        let flag = match (key.as_str(), v.as_str()) {
            ("patient_age", Some("age_band" | "remove")) => &mut rule.age_band,
            ("patient_sex", Some("keep" | "remove")) => &mut rule.keep_sex,
            ("burned_in_annotation", Some("accept" | "withhold")) => &mut rule.accept_burned_in,
            _ => return Err(format!("dicom has no option \"{key}\": {v}; {USE}")),
        };
        *flag = matches!(v.as_str(), Some("age_band" | "keep" | "accept"));
    }
    Ok(rule)
}

/// The band and top of a spec's `age_band` rules, if they all agree; the
/// `dicom` rule's `patient_age` uses it.
pub fn dicom_age_band(spec: &ContractSpec) -> Option<(i32, i32)> {
    let mut bands = spec.tables.iter().flat_map(|t| t.columns.values()).filter_map(|c| match c.rule {
        Rule::AgeBand { band, top } => Some((band, top)),
        _ => None,
    });
    let first = bands.next()?;
    bands.all(|b| b == first).then_some(first)
}

/// Checks the `dicom` rules of a spec against the rest of it.
fn check_dicom(spec: &ContractSpec) -> Result<(), SpecError> {
    for (i, t) in spec.tables.iter().enumerate() {
        for (column, c) in &t.columns {
            if let Rule::Dicom(d) = c.rule {
                if d.age_band && dicom_age_band(spec).is_none() {
                    return Err(err(
                        format!("tables[{i}].columns.{column}"),
                        "patient_age \"age_band\" needs one age_band rule in the spec (or several with the same band and top)",
                    )
                    .hint("band the birth date with {\"age_band\": {...}} in a table of the contract, or leave out patient_age"));
                }
            }
        }
    }
    Ok(())
}

const RULES: &str = "drop, keep, token, shift, prefecture, municipality, {\"municipality\": \"city\"}, dicom, {\"age_band\": {...}}, {\"postal_prefix\": n}, \
                     {\"top_code\": x, \"bottom_code\": y}, {\"truncate_date\": \"month\"}, {\"days_since\": \"first\"} \
                     or {\"auto\": true}; an object may add \"min_persons\": n and \"hierarchy\": \"icd10\" or \"schema.table\"";

/// The bounds of `min_persons`, in a spec or on a column.
pub const MIN_PERSONS_BOUNDS: std::ops::RangeInclusive<i64> = 2..=1_000_000;

impl<'de> Deserialize<'de> for ColumnSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ColumnSpec, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        column_of(&value).map_err(de::Error::custom)
    }
}

fn bound_of(key: &str, value: &serde_json::Value) -> Result<Bound, String> {
    use serde_json::Value;
    match value {
        Value::Number(n) => n.as_f64().map(Bound::Value).ok_or_else(|| format!("{key} takes a number")),
        Value::Object(o) if o.len() == 1 && o.contains_key("percentile") => o["percentile"]
            .as_f64()
            .filter(|p| *p > 0.0 && *p < 100.0)
            .map(Bound::Percentile)
            .ok_or_else(|| format!("{key}.percentile must be a number strictly between 0 and 100")),
        _ => Err(format!("{key} takes a number or {{\"percentile\": p}}")),
    }
}

/// `{"municipality": "ward"}` or `{"municipality": "city"}`: what a designated
/// city's address becomes.
fn municipality_level(arg: &serde_json::Value) -> Result<WardLevel, String> {
    match arg.as_str() {
        Some("ward") => Ok(WardLevel::Ward),
        Some("city") => Ok(WardLevel::City),
        _ => Err("municipality takes \"ward\" (a designated city's ward, the default) or \"city\"".into()),
    }
}

impl Rule {
    /// How much of an address the rule shows, on the order that
    /// [`crate::hierarchy::GeographyLevel`] defines; `None` for a rule that is no
    /// geography rule.
    pub fn geography_level(&self) -> Option<GeographyLevel> {
        match self {
            Rule::Keep => Some(GeographyLevel::AsStored),
            Rule::Municipality(level) => Some(GeographyLevel::Municipality(*level)),
            Rule::Prefecture => Some(GeographyLevel::Prefecture),
            Rule::Drop => Some(GeographyLevel::National),
            _ => None,
        }
    }
}

fn column_of(value: &serde_json::Value) -> Result<ColumnSpec, String> {
    use serde_json::Value;
    let o = match value {
        Value::String(s) => {
            return match s.as_str() {
                "drop" => Ok(Rule::Drop.into()),
                "keep" => Ok(Rule::Keep.into()),
                "token" => Ok(Rule::Token.into()),
                "shift" => Ok(Rule::Shift.into()),
                "prefecture" => Ok(Rule::Prefecture.into()),
                "dicom" => Ok(Rule::Dicom(DicomRule::default()).into()),
                "municipality" => Ok(Rule::Municipality(WardLevel::Ward).into()),
                other => Err(format!("unknown rule \"{other}\"; use {RULES}")),
            }
        }
        Value::Object(o) if !o.is_empty() => o,
        _ => return Err(format!("a rule is a name or an object; use {RULES}")),
    };
    let mut rule: Option<Rule> = None;
    let set = |r: Rule, rule: &mut Option<Rule>| -> Result<(), String> {
        match rule.replace(r.clone()) {
            Some(before) => Err(format!("one column takes one rule, not both \"{}\" and \"{}\"", before.name(), r.name())),
            None => Ok(()),
        }
    };
    let (mut top, mut bottom) = (None, None);
    let mut min_persons = None;
    let mut hierarchy = None;
    for (name, arg) in o {
        match name.as_str() {
            "min_persons" => {
                let n = arg.as_i64().filter(|n| MIN_PERSONS_BOUNDS.contains(n)).ok_or_else(|| {
                    format!("min_persons must be a whole number from {} to {}", MIN_PERSONS_BOUNDS.start(), MIN_PERSONS_BOUNDS.end())
                })?;
                min_persons = Some(n as i32);
            }
            "hierarchy" => {
                let h = arg.as_str().ok_or("hierarchy takes \"icd10\" or a table as \"schema.table\"")?;
                hierarchy = Some(match h {
                    "icd10" => HierarchyName::Icd10,
                    t if !t.trim().is_empty() => HierarchyName::Table(t.to_string()),
                    _ => return Err("hierarchy takes \"icd10\" or a table as \"schema.table\"".into()),
                });
            }
            "keep" => match arg {
                Value::Bool(true) => set(Rule::Keep, &mut rule)?,
                _ => return Err("keep takes true".into()),
            },
            "top_code" => top = Some(bound_of("top_code", arg)?),
            "bottom_code" => bottom = Some(bound_of("bottom_code", arg)?),
            "age_band" => {
                let Value::Object(a) = arg else { return Err("age_band takes {\"band\": n, \"top\": n}".into()) };
                for key in a.keys() {
                    if key != "band" && key != "top" {
                        return Err(format!("age_band has no \"{key}\"; it takes band and top"));
                    }
                }
                let int = |k: &str, default: i64| match a.get(k) {
                    None => Ok(default),
                    Some(v) => v.as_i64().filter(|n| (1..=150).contains(n)).ok_or(format!("age_band.{k} must be a whole number from 1 to 150")),
                };
                set(Rule::AgeBand { band: int("band", 5)? as i32, top: int("top", 90)? as i32 }, &mut rule)?;
            }
            "postal_prefix" => set(
                arg.as_i64()
                    .filter(|n| (0..=7).contains(n))
                    .map(|n| Rule::PostalPrefix(n as i32))
                    .ok_or("postal_prefix takes a number of digits from 0 to 7")?,
                &mut rule,
            )?,
            "truncate_date" => match arg.as_str() {
                Some(u @ ("month" | "quarter" | "year")) => set(Rule::TruncateDate(u.to_string()), &mut rule)?,
                _ => return Err("truncate_date takes \"month\", \"quarter\" or \"year\"".into()),
            },
            "days_since" => match arg.as_str() {
                Some("first") => set(Rule::DaysSince, &mut rule)?,
                _ => return Err("days_since takes \"first\" (the person's earliest date in the column)".into()),
            },
            "dicom" => set(Rule::Dicom(dicom_rule_of(arg)?), &mut rule)?,
            "municipality" => set(Rule::Municipality(municipality_level(arg)?), &mut rule)?,
            "auto" => match arg {
                Value::Bool(true) => set(Rule::Auto, &mut rule)?,
                _ => return Err("auto takes true".into()),
            },
            other => return Err(format!("unknown rule \"{other}\"; use {RULES}")),
        }
    }
    if top.is_some() || bottom.is_some() {
        set(Rule::Code { top, bottom }, &mut rule)?;
        if let (Some(Bound::Value(t)), Some(Bound::Value(b))) = (top, bottom) {
            if b > t {
                return Err(format!("bottom_code {b} is above top_code {t}"));
            }
        }
        if let (Some(Bound::Percentile(t)), Some(Bound::Percentile(b))) = (top, bottom) {
            if b >= t {
                return Err(format!("bottom_code percentile {b} is not below top_code percentile {t}"));
            }
        }
    }
    // Modifiers alone keep the value: {"hierarchy": "icd10"} is a kept column whose
    // rare values climb the ICD-10 hierarchy.
    let rule = rule.unwrap_or(Rule::Keep);
    if hierarchy.is_some() && rule != Rule::Keep {
        return Err(format!("a hierarchy applies to kept values, not to \"{}\"", rule.name()));
    }
    if (min_persons.is_some() || hierarchy.is_some()) && matches!(rule, Rule::Drop | Rule::Token | Rule::Shift | Rule::DaysSince | Rule::Auto | Rule::Dicom(_)) {
        return Err(format!("min_persons and hierarchy apply to shown values, not to \"{}\"", rule.name()));
    }
    Ok(ColumnSpec { rule, min_persons, hierarchy })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub source: String,
    pub columns: BTreeMap<String, ColumnSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractSpec {
    pub id: String,
    pub grantee: String,
    pub purpose: String,
    pub approved_on: String,
    pub expires_on: String,
    pub kind: Kind,
    #[serde(default)]
    pub k: Option<i64>,
    #[serde(default)]
    pub reference_date: Option<String>,
    /// The contract's floor for `safe_counts`: no cell under it is shown, whatever
    /// the caller asks (default [`DEFAULT_MIN_CELL`]).
    #[serde(default)]
    pub min_cell: Option<i64>,
    /// The fewest visible persons a shown value of a kept `static` or
    /// `semi_static` column needs (特異な記述); default k. Raises, never lowers.
    #[serde(default)]
    pub min_persons: Option<i64>,
    /// Onward provision (第三者提供): the id of the contract whose data this one
    /// hands on. Never less protective than it (`crate::derive::check_derived`).
    #[serde(default)]
    pub derived_from: Option<String>,
    pub tables: Vec<TableSpec>,
}

/// A spec that passed every check that needs no catalog, with its dates read.
#[derive(Debug, Clone)]
pub struct Contract {
    pub spec: ContractSpec,
    pub approved_on: Ymd,
    pub expires_on: Ymd,
    pub reference_date: Option<Ymd>,
}

impl Contract {
    /// The contract's floor for `safe_counts` (checked by [`parse`]).
    pub fn min_cell(&self) -> i32 {
        self.spec.min_cell.map_or(DEFAULT_MIN_CELL, |n| n as i32)
    }

    /// The contract's `min_persons` (checked by [`parse`]): its spec's, or k. None
    /// for a contract without k (pseudonymized), which keeps exact values.
    pub fn min_persons(&self) -> Option<i32> {
        let k = self.spec.k? as i32;
        Some(self.spec.min_persons.map_or(k, |n| n as i32))
    }
}

fn date_at(path: &str, value: &str) -> Result<Ymd, SpecError> {
    parse_japanese_date(value).map_err(|e| err(path, format!("not a date: {}", e.message)))
}

/// Parses and checks a spec. `today` decides whether it has already expired.
pub fn parse(json: &str, today: Ymd) -> Result<Contract, SpecError> {
    let mut de = serde_json::Deserializer::from_str(json);
    let spec: ContractSpec = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // serde_json appends " at line L column C"; the path says where already.
        let message = message.split(" at line ").next().unwrap_or(&message).to_string();
        // The root, or an unknown key that is the empty string: name the spec itself.
        err(if path == "." || path.is_empty() { "(spec)".to_string() } else { path }, message)
    })?;
    let id_ok = |id: &str| {
        !id.is_empty()
            && id.len() <= 40
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && id.as_bytes()[0].is_ascii_lowercase()
    };
    if !id_ok(&spec.id) {
        return Err(err("id", "must be 1 to 40 characters of a-z, 0-9 and _, starting with a letter (it names schema contract_<id>)"));
    }
    match spec.derived_from.as_deref() {
        Some(parent) if !id_ok(parent) => return Err(err("derived_from", "must be a contract id")),
        Some(parent) if parent == spec.id => return Err(err("derived_from", "a contract cannot derive from itself")),
        _ => {}
    }
    if spec.grantee.trim().is_empty() {
        return Err(err("grantee", "must name a role"));
    }
    if spec.purpose.trim().is_empty() {
        return Err(err("purpose", "must say what the data is for"));
    }
    let approved_on = date_at("approved_on", &spec.approved_on)?;
    let expires_on = date_at("expires_on", &spec.expires_on)?;
    if expires_on < approved_on {
        return Err(err("expires_on", "is before approved_on"));
    }
    if expires_on < today {
        return Err(err("expires_on", format!("the contract expired on {expires_on}")));
    }
    let reference_date = spec.reference_date.as_deref().map(|d| date_at("reference_date", d)).transpose()?;
    match (spec.kind, spec.k) {
        (Kind::Anonymized, None) => return Err(err("k", "an anonymized contract needs k")),
        (Kind::Statistics, None) => return Err(err("k", "a statistics contract needs k (its views are k-anonymous)")),
        (_, Some(k)) if k < 2 => return Err(err("k", format!("must be at least 2, not {k}"))),
        (_, Some(k)) if k > 1_000_000 => return Err(err("k", "is larger than any release")),
        _ => {}
    }
    if let Some(n) = spec.min_cell {
        if !MIN_CELL_BOUNDS.contains(&n) {
            return Err(err(
                "min_cell",
                format!("must be from {} to {}, not {n}", MIN_CELL_BOUNDS.start(), MIN_CELL_BOUNDS.end()),
            )
            .hint("the NDB publication rule is 10"));
        }
    }
    if let Some(n) = spec.min_persons {
        if spec.kind == Kind::Pseudonymized {
            return Err(err("min_persons", "a pseudonymized contract keeps exact values: it takes no min_persons"));
        }
        if !MIN_PERSONS_BOUNDS.contains(&n) || spec.k.is_some_and(|k| n < k) {
            return Err(err("min_persons", format!("must be from k ({}) to {}, not {n}", spec.k.unwrap_or(2), MIN_PERSONS_BOUNDS.end()))
                .hint("min_persons may raise the contract's k for rare values, never lower it"));
        }
    }
    if spec.tables.is_empty() {
        return Err(err("tables", "must name at least one source table"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, t) in spec.tables.iter().enumerate() {
        if !seen.insert(t.source.as_str()) {
            return Err(err(format!("tables[{i}].source"), format!("\"{}\" is listed twice", t.source)));
        }
        if t.columns.values().all(|r| *r == Rule::Drop) {
            return Err(err(format!("tables[{i}].columns"), "exposes no column"));
        }
        for (column, c) in &t.columns {
            let at = || format!("tables[{i}].columns.{column}");
            if matches!(c.rule, Rule::AgeBand { .. }) && reference_date.is_none() {
                return Err(err(at(), "age_band needs the contract's reference_date"));
            }
            if (c.min_persons.is_some() || c.hierarchy.is_some()) && spec.kind == Kind::Pseudonymized {
                return Err(err(at(), "a pseudonymized contract keeps exact values: it takes no min_persons or hierarchy"));
            }
            let floor = spec.min_persons.or(spec.k).unwrap_or(2);
            if let Some(n) = c.min_persons.filter(|n| (*n as i64) < floor) {
                return Err(err(at(), format!("min_persons {n} is below the contract's {floor}"))
                    .hint("a column may raise the contract's min_persons, never lower it"));
            }
        }
    }
    check_dicom(&spec)?;
    Ok(Contract { spec, approved_on, expires_on, reference_date })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: Ymd = Ymd { year: 2026, month: 11, day: 24 };

    const EXAMPLE: &str = r#"{"id": "c2026_001", "grantee": "lab_a", "purpose": "post-marketing safety of drug X",
        "approved_on": "2026-11-01", "expires_on": "2027-03-31", "kind": "anonymized", "k": 5,
        "reference_date": "2026-04-01",
        "tables": [
          {"source": "clinical.patient",
           "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 5, "top": 90}},
                       "sex": "keep", "postal_code": {"postal_prefix": 3}, "address": "prefecture"}},
          {"source": "clinical.visit",
           "columns": {"person_id": "token", "visit_date": "shift", "icd10": "keep", "lab_value": {"top_code": 500}}}
        ]}"#;

    #[test]
    fn the_example_of_the_issue_parses() {
        let c = parse(EXAMPLE, TODAY).unwrap();
        assert_eq!(c.spec.kind, Kind::Anonymized);
        assert_eq!(c.spec.tables.len(), 2);
        assert_eq!(c.spec.tables[0].columns["birth_date"], Rule::AgeBand { band: 5, top: 90 });
        assert_eq!(c.spec.tables[0].columns["postal_code"], Rule::PostalPrefix(3));
        assert_eq!(c.spec.tables[1].columns["lab_value"], Rule::Code { top: Some(Bound::Value(500.0)), bottom: None });
        assert_eq!(c.expires_on, Ymd { year: 2027, month: 3, day: 31 });
    }

    fn refused(json: &str) -> SpecError {
        parse(json, TODAY).expect_err("should be refused")
    }

    fn with(from: &str, to: &str) -> String {
        assert!(EXAMPLE.contains(from), "{from}");
        EXAMPLE.replacen(from, to, 1)
    }

    #[test]
    fn every_refusal_names_its_key() {
        let cases = [
            (with(r#""visit_date": "shift""#, r#""visit_date": "shiftt""#), "tables[1].columns.visit_date"),
            (with(r#"{"postal_prefix": 3}"#, r#"{"postal_prefix": 9}"#), "tables[0].columns.postal_code"),
            (with(r#""band": 5"#, r#""width": 5"#), "tables[0].columns.birth_date"),
            (with(r#""k": 5"#, r#""k": 1"#), "k"),
            (with(r#", "k": 5"#, ""), "k"),
            (with(r#""expires_on": "2027-03-31""#, r#""expires_on": "2026-03-31""#), "expires_on"),
            (with(r#""expires_on": "2027-03-31""#, r#""expires_on": "2027-02-30""#), "expires_on"),
            (with(r#""kind": "anonymized""#, r#""kind": "public""#), "kind"),
            (with(r#""id": "c2026_001""#, r#""id": "C 2026; DROP""#), "id"),
            (with(r#""purpose": "post-marketing safety of drug X","#, r#""purpose": "x", "colour": "red","#), "colour"),
            (with(r#""source": "clinical.visit""#, r#""source": "clinical.patient""#), "tables[1].source"),
            (with(r#""reference_date": "2026-04-01","#, ""), "tables[0].columns.birth_date"),
            (with(r#""lab_value": {"top_code": 500}"#, r#""lab_value": {"top_code": "high"}"#), "tables[1].columns.lab_value"),
            (with(r#""grantee": "lab_a""#, r#""grantee": 7"#), "grantee"),
            (with(r#""k": 5"#, r#""k": 5, "min_cell": 1"#), "min_cell"),
            (with(r#""k": 5"#, r#""k": 5, "min_cell": 0"#), "min_cell"),
            (with(r#""k": 5"#, r#""k": 5, "min_cell": -10"#), "min_cell"),
            (with(r#""k": 5"#, r#""k": 5, "min_cell": 1000001"#), "min_cell"),
            (with(r#""k": 5"#, r#""k": 5, "min_cell": 10.5"#), "min_cell"),
            (with(r#""k": 5"#, r#""k": 5, "min_cell": "10""#), "min_cell"),
            (with(r#""kind": "anonymized", "k": 5"#, r#""kind": "statistics""#), "k"),
        ];
        for (json, path) in cases {
            let e = refused(&json);
            assert_eq!(e.path, path, "{e}");
            assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn municipality_rule() {
        let c = parse(&with(r#""address": "prefecture""#, r#""address": "municipality""#), TODAY).unwrap();
        assert_eq!(c.spec.tables[0].columns["address"], Rule::Municipality(WardLevel::Ward));
        let c = parse(&with(r#""address": "prefecture""#, r#""address": {"municipality": "city"}"#), TODAY).unwrap();
        assert_eq!(c.spec.tables[0].columns["address"], Rule::Municipality(WardLevel::City));
        assert_eq!(c.spec.tables[0].columns["address"].rule.name(), "municipality");
        for bad in [r#"{"municipality": "town"}"#, r#"{"municipality": true}"#, r#"{"municipality": "city", "prefecture": true}"#] {
            let e = refused(&with(r#""address": "prefecture""#, &format!(r#""address": {bad}"#)));
            assert_eq!(e.path, "tables[0].columns.address", "{bad}");
        }
        let e = refused(&with(r#""address": "prefecture""#, r#""address": {"municipality": "town"}"#));
        assert!(e.message.contains("\"ward\"") && e.message.contains("\"city\""), "{}", e.message);
        // The geography order the rules follow.
        let levels: Vec<_> = [Rule::Keep, Rule::Municipality(WardLevel::Ward), Rule::Municipality(WardLevel::City), Rule::Prefecture, Rule::Drop]
            .iter()
            .map(|r| r.geography_level().unwrap())
            .collect();
        assert!(levels.windows(2).all(|w| w[0] < w[1]), "{levels:?}");
        assert_eq!(Rule::Shift.geography_level(), None);
    }

    #[test]
    fn rare_value_options_and_two_sided_coding() {
        let c = parse(
            &with(
                r#""icd10": "keep", "lab_value": {"top_code": 500}"#,
                r#""icd10": {"hierarchy": "icd10", "min_persons": 8}, "lab_value": {"top_code": {"percentile": 99.5}, "bottom_code": 0},
                   "visit_date2": {"days_since": "first"}, "dept": {"keep": true, "hierarchy": "ref.dept_levels"}"#,
            ),
            TODAY,
        )
        .unwrap();
        let cols = &c.spec.tables[1].columns;
        assert_eq!(cols["icd10"], ColumnSpec { rule: Rule::Keep, min_persons: Some(8), hierarchy: Some(HierarchyName::Icd10) });
        assert_eq!(cols["lab_value"].rule, Rule::Code { top: Some(Bound::Percentile(99.5)), bottom: Some(Bound::Value(0.0)) });
        assert_eq!(cols["visit_date2"].rule, Rule::DaysSince);
        assert_eq!(cols["dept"].hierarchy, Some(HierarchyName::Table("ref.dept_levels".into())));
        assert_eq!(c.min_persons(), Some(5), "k by default");
        let c = parse(&with(r#""k": 5"#, r#""k": 5, "min_persons": 7"#), TODAY).unwrap();
        assert_eq!(c.min_persons(), Some(7));
        let pseudo = parse(&with(r#""kind": "anonymized", "k": 5"#, r#""kind": "pseudonymized""#), TODAY).unwrap();
        assert_eq!(pseudo.min_persons(), None, "a pseudonymized contract keeps exact values");
        let refusals = [
            (with(r#""icd10": "keep""#, r#""icd10": {"min_persons": 3}"#), "tables[1].columns.icd10"),
            (with(r#""icd10": "keep""#, r#""icd10": {"min_persons": 1}"#), "tables[1].columns.icd10"),
            (with(r#""icd10": "keep""#, r#""icd10": {"hierarchy": "icd10", "postal_prefix": 3}"#), "tables[1].columns.icd10"),
            (with(r#""icd10": "keep""#, r#""icd10": {"hierarchy": 5}"#), "tables[1].columns.icd10"),
            (with(r#""icd10": "keep""#, r#""icd10": {"keep": true, "prefecture": true}"#), "tables[1].columns.icd10"),
            (with(r#""visit_date": "shift""#, r#""visit_date": {"days_since": "last"}"#), "tables[1].columns.visit_date"),
            (with(r#""visit_date": "shift""#, r#""visit_date": {"days_since": "first", "min_persons": 9}"#), "tables[1].columns.visit_date"),
            (with(r#""lab_value": {"top_code": 500}"#, r#""lab_value": {"top_code": 5, "bottom_code": 10}"#), "tables[1].columns.lab_value"),
            (with(r#""lab_value": {"top_code": 500}"#, r#""lab_value": {"top_code": {"percentile": 100}}"#), "tables[1].columns.lab_value"),
            (with(r#""lab_value": {"top_code": 500}"#, r#""lab_value": {"top_code": {"percentile": 1}, "bottom_code": {"percentile": 2}}"#), "tables[1].columns.lab_value"),
            (with(r#""k": 5"#, r#""k": 5, "min_persons": 4"#), "min_persons"),
            (with(r#""kind": "anonymized", "k": 5"#, r#""kind": "pseudonymized", "min_persons": 5"#), "min_persons"),
        ];
        for (json, path) in refusals {
            let e = refused(&json);
            assert_eq!(e.path, path, "{json}: {e}");
        }
    }

    #[test]
    fn dicom_rules_parse_and_check_the_age_band() {
        let c = parse(&with(r#""icd10": "keep""#, r#""icd10": "keep", "ct": "dicom""#), TODAY).unwrap();
        assert_eq!(c.spec.tables[1].columns["ct"].rule, Rule::Dicom(DicomRule::default()));
        let c = parse(
            &with(r#""icd10": "keep""#, r#""icd10": "keep", "ct": {"dicom": {"patient_age": "age_band", "patient_sex": "keep", "burned_in_annotation": "accept"}}"#),
            TODAY,
        )
        .unwrap();
        assert_eq!(c.spec.tables[1].columns["ct"].rule, Rule::Dicom(DicomRule { age_band: true, keep_sex: true, accept_burned_in: true }));
        assert_eq!(dicom_age_band(&c.spec), Some((5, 90)));
        assert_eq!(Rule::Dicom(DicomRule::default()).name(), "dicom");
        let refusals = [
            r#""ct": {"dicom": {"burned_in_annotation": "yes"}}"#,
            r#""ct": {"dicom": {"colour": "red"}}"#,
            r#""ct": {"dicom": true}"#,
            r#""ct": {"dicom": {}, "min_persons": 9}"#,
        ];
        for r in refusals {
            let e = refused(&with(r#""icd10": "keep""#, &format!(r#""icd10": "keep", {r}"#)));
            assert_eq!(e.path, "tables[1].columns.ct", "{r}: {e}");
        }
        // patient_age needs the contract's age band.
        let no_band = with(r#""birth_date": {"age_band": {"band": 5, "top": 90}},"#, "");
        let e = refused(&no_band.replacen(r#""icd10": "keep""#, r#""icd10": "keep", "ct": {"dicom": {"patient_age": "age_band"}}"#, 1));
        assert_eq!(e.path, "tables[1].columns.ct");
        assert!(e.hint.is_some());
    }

    #[test]
    fn pseudonymized_contracts_may_leave_out_k() {
        let json = with(r#""kind": "anonymized", "k": 5"#, r#""kind": "pseudonymized""#);
        assert_eq!(parse(&json, TODAY).unwrap().spec.k, None);
    }

    #[test]
    fn statistics_contracts_need_k_and_keep_their_floor() {
        let c = parse(&with(r#""kind": "anonymized""#, r#""kind": "statistics""#), TODAY).unwrap();
        assert_eq!(c.spec.kind, Kind::Statistics);
        assert_eq!(c.spec.kind.name(), "statistics");
        assert!(!c.spec.kind.grantee_reads_rows());
        assert!(Kind::Anonymized.grantee_reads_rows() && Kind::Pseudonymized.grantee_reads_rows());
        assert_eq!(c.min_cell(), DEFAULT_MIN_CELL, "the NDB rule by default");
        assert_eq!(DEFAULT_MIN_CELL, 10);
        let c = parse(&with(r#""k": 5"#, r#""k": 5, "min_cell": 20"#), TODAY).unwrap();
        assert_eq!(c.min_cell(), 20);
        for edge in [2, 1_000_000] {
            let json = with(r#""k": 5"#, &format!(r#""k": 5, "min_cell": {edge}"#));
            assert_eq!(parse(&json, TODAY).unwrap().min_cell(), edge);
        }
        let e = refused(&with(r#""k": 5"#, r#""k": 5, "min_cell": 1"#));
        assert_eq!((e.refusal, e.path.as_str()), (Refusal::InvalidSpec, "min_cell"));
        assert!(e.client_message().starts_with("invalid contract spec at \"min_cell\": must be from 2"), "{}", e.client_message());
        assert!(e.hint.is_some());
    }

    use proptest::prelude::*;

    /// Arbitrary JSON, nested a few levels, with the spec's own keys mixed in so the
    /// parser gets past its first checks.
    fn json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let key = prop_oneof![
            Just("id".to_string()), Just("k".to_string()), Just("tables".to_string()), Just("columns".to_string()),
            Just("source".to_string()), Just("age_band".to_string()), Just("top_code".to_string()), "[a-z_]{0,8}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| Value::from(n)),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text, TODAY);
        }

        #[test]
        fn arbitrary_json_never_panics_and_refusals_name_a_key(value in json()) {
            if let Err(e) = parse(&value.to_string(), TODAY) {
                prop_assert!(!e.path.is_empty() && !e.message.is_empty(), "{e:?}");
            }
        }

        #[test]
        fn the_example_with_any_one_rule_replaced_never_panics(rule in json()) {
            let json = with(r#""icd10": "keep""#, &format!(r#""icd10": {rule}"#));
            let _ = parse(&json, TODAY);
        }
    }

    #[test]
    fn garbage_never_panics() {
        for json in ["", "null", "[]", "{", r#"{"tables": 5}"#, "\"x\"", &"[".repeat(10_000)] {
            assert!(parse(json, TODAY).is_err(), "{json:.20}");
        }
    }
}
