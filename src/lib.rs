//! medanon: anonymized research views over linked Japanese medical records,
//! inside PostgreSQL (次世代医療基盤法).
//!
//! The crate follows the pipeline: `collect` (reading what institutions send),
//! `link` (one person id per patient across institutions), consent (in SQL:
//! `sql/consent*.sql`), `anonymize` (tokens, date shifts, generalization), `kanon`
//! and `risk` (measuring k and searching generalizations), `expose` (contracts),
//! with the `keyring`, `gucs` and `error` plumbing beside them. The logic itself
//! lives in the pgrx-free crate `medanon-core`; the functions below only convert
//! types. DDL, grants and comments are in `sql/`.

use pgrx::prelude::*;

mod anonymize;
mod catalog;
mod citus;
mod collect;
mod definer;
mod error;
mod expose;
mod gucs;
mod kanon;
mod keyring;
mod link;
mod risk;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
extension_sql_file!("../sql/link.sql", name = "link_tables", requires = ["bootstrap"]);
extension_sql_file!("../sql/citus.sql", name = "citus_tables", requires = ["bootstrap"]);
extension_sql_file!("../sql/consent.sql", name = "consent_tables", requires = ["link_tables"]);
extension_sql_file!("../sql/contract.sql", name = "contract_tables", requires = ["consent_tables"]);
extension_sql_file!("../sql/contract_api.sql", name = "contract_api", requires = ["contract_tables"]);
extension_sql_file!(
    "../sql/contract_live.sql",
    name = "contract_live",
    requires = ["contract_tables", "consent_api", functions::_contract_person_states, functions::contract_today]
);
extension_sql_file!("../sql/source_changes.sql", name = "source_changes", requires = ["contract_tables"]);
extension_sql_file!("../sql/read_audit.sql", name = "read_audit", requires = ["contract_live"]);
extension_sql_file!("../sql/expiry_schedule.sql", name = "expiry_schedule", requires = ["contract_live"]);
extension_sql_file!(
    "../sql/consent_api.sql",
    name = "consent_api",
    requires = ["consent_tables", functions::notice_wait_days]
);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    error::init();
    gucs::init();
    keyring::init();
}

/// The SQL functions. They are created in the extension's schema, `medanon`, which
/// the control file names; PostgreSQL creates that schema itself, so this module is
/// deliberately not a `#[pg_schema]` (that would emit a conflicting CREATE SCHEMA).
mod functions {
    use pgrx::datum::{Array, Date, Range, Timestamp, TimestampWithTimeZone};
    use pgrx::prelude::*;
    use pgrx::PgRelation;

    // tokenize(text, text) has a plain V1 entry point for speed: see
    // `anonymize::token`; it is declared in sql/finalize.sql.

    #[pg_extern(stable, strict, parallel_safe)]
    fn shift_date(value: Date, person: &str, domain: &str) -> Date {
        crate::anonymize::dates::shift_date(value, person, domain)
    }

    #[pg_extern(stable, strict, parallel_safe, name = "shift_date")]
    fn shift_timestamp(value: Timestamp, person: &str, domain: &str) -> Timestamp {
        crate::anonymize::dates::shift_timestamp(value, person, domain)
    }

    #[pg_extern(stable, strict, parallel_safe, name = "shift_date")]
    fn shift_timestamptz(value: TimestampWithTimeZone, person: &str, domain: &str) -> TimestampWithTimeZone {
        crate::anonymize::dates::shift_timestamptz(value, person, domain)
    }

    /// The date offset in days that shift_date applies to `person` in `domain`:
    /// whole weeks, never 0.
    #[pg_extern(stable, strict, parallel_safe)]
    fn date_offset(person: &str, domain: &str) -> i32 {
        crate::anonymize::dates::offset_days(person, domain)
    }

    /// Internal to publish: the offsets the calendar leaves an analyst for one
    /// person (see `anonymize::dates::shift_candidates`). IMMUTABLE: the range is
    /// an argument, whose default reads the setting at the call.
    #[pg_extern(immutable, strict, parallel_safe)]
    fn _shift_candidates(
        real_dates: Array<'_, Date>,
        date_offset: i32,
        window_start: Date,
        window_end: Date,
        max_shift_days: default!(i32, "pg_catalog.current_setting('medanon.max_shift_days')::pg_catalog.int4"),
    ) -> i32 {
        crate::anonymize::dates::shift_candidates(real_dates, date_offset, window_start, window_end, max_shift_days)
    }

    /// Internal to publish and refresh: a new person's token in a contract, 64
    /// bits from a CSPRNG seeded from the operating system (`anonymize::token`).
    /// VOLATILE: drawn per row.
    #[pg_extern(volatile, parallel_safe)]
    fn _new_token() -> i64 {
        crate::anonymize::token::new_token()
    }

    /// De-identifies a DICOM object for a person of a published contract, as the
    /// contract's `dicom` column shows it: for the operator's ETL. STABLE: it
    /// reads the contract and its map, and the keyring.
    #[pg_extern(stable, strict, parallel_safe)]
    fn deidentify_dicom(object: &[u8], contract_id: &str, person_id: i64) -> Option<Vec<u8>> {
        crate::anonymize::dicom::for_person(object, contract_id, person_id)
    }

    /// Internal to publish and refresh: the object of a `dicom` column, for the
    /// person whose token and offset the map holds. Keyed (the UIDs): the owner's
    /// only. Not STRICT: the age band is NULL when the rule does not band.
    #[allow(clippy::too_many_arguments)]
    #[pg_extern(stable, parallel_safe)]
    fn _dicom_object(
        object: Option<&[u8]>,
        token: Option<i64>,
        date_offset: Option<i32>,
        contract_id: Option<&str>,
        age_band: Option<i32>,
        age_top: Option<i32>,
        keep_sex: Option<bool>,
        accept_burned_in: Option<bool>,
    ) -> Option<Vec<u8>> {
        crate::anonymize::dicom::contract_object(
            object?,
            token?,
            date_offset?,
            contract_id?,
            age_band,
            age_top,
            keep_sex.unwrap_or(false),
            accept_burned_in.unwrap_or(false),
        )
    }

    /// Internal to publish: the PatientAge and PatientSex an object shows once
    /// de-identified (`age|sex`), for the person's class. Keyless and reads no
    /// table: IMMUTABLE.
    #[pg_extern(immutable, parallel_safe)]
    fn _dicom_quasi_identifiers(object: Option<&[u8]>, age_band: Option<i32>, age_top: Option<i32>, keep_sex: Option<bool>) -> Option<String> {
        Some(crate::anonymize::dicom::quasi_identifiers(object?, age_band, age_top, keep_sex.unwrap_or(false)))
    }

    /// Internal to publish: an object's study date (unshifted), for the calendar
    /// check. Keyless and reads no table: IMMUTABLE.
    #[pg_extern(immutable, strict, parallel_safe)]
    fn _dicom_study_date(object: &[u8]) -> Option<Date> {
        crate::anonymize::dicom::study_date(object)
    }

    /// Replaces the pseudonym key; the link key is never rotated (see sql/bootstrap.sql).
    #[pg_extern(volatile, parallel_unsafe)]
    fn rotate_key() -> i32 {
        crate::keyring::rotate_key(crate::keyring::KeyPurpose::Pseudonym, "rotate")
    }

    /// Used once by the install script: the first pseudonym key and the link key.
    /// Returns the pseudonym key's id.
    #[pg_extern(volatile, parallel_unsafe)]
    fn _install_first_key() -> i32 {
        use crate::keyring::{rotate_key, KeyPurpose};
        let id = rotate_key(KeyPurpose::Pseudonym, "install");
        rotate_key(KeyPurpose::Link, "install");
        id
    }

    #[pg_extern(stable, parallel_safe)]
    fn active_key_id() -> i32 {
        crate::keyring::active_key_id()
    }

    #[pg_extern(immutable, strict, parallel_safe)]
    fn generalize_age(
        birth_date: Date,
        reference_date: Date,
        band_years: default!(i32, 5),
        top_code: default!(i32, 90),
    ) -> Range<i32> {
        crate::anonymize::generalize::generalize_age(birth_date, reference_date, band_years, top_code)
    }

    #[pg_extern(immutable, strict, parallel_safe)]
    fn truncate_date(value: Date, unit: &str) -> Date {
        crate::anonymize::generalize::truncate_date(value, unit)
    }

    #[pg_extern(immutable, strict, parallel_safe)]
    fn parse_japanese_date(value: &str) -> Date {
        crate::collect::parse_japanese_date(value)
    }

    #[pg_extern(immutable, strict, parallel_safe)]
    fn generalize_postal_code(code: &str, keep_digits: i32) -> String {
        use crate::error::OrRaise;
        medanon_core::generalize::generalize_postal_code(code, keep_digits).or_raise()
    }

    #[pg_extern(immutable, strict, parallel_safe)]
    fn prefecture_of(address: &str) -> Option<&'static str> {
        medanon_core::prefecture::prefecture_of(address)
    }

    /// The municipality (市区町村) of an address or a postal code, a designated city's
    /// ward as the ward (大阪府大阪市北区).
    #[pg_extern(immutable, strict, parallel_safe)]
    fn municipality_of(value: &str) -> Option<String> {
        crate::anonymize::municipality::municipality_of(value, None)
    }

    /// The same, with a designated city's addresses at `ward` or `city` level.
    #[pg_extern(immutable, strict, parallel_safe, name = "municipality_of")]
    fn municipality_of_level(value: &str, designated_city: &str) -> Option<String> {
        crate::anonymize::municipality::municipality_of(value, Some(designated_city))
    }

    #[pg_extern(immutable, strict, parallel_safe)]
    fn region_of(prefecture: &str) -> Option<&'static str> {
        medanon_core::prefecture::region_of(prefecture)
    }

    /// The 3-character ICD-10 category of a code (`E11.9` → `E11`), NULL if it is none.
    #[pg_extern(immutable, strict, parallel_safe)]
    fn icd10_category(code: &str) -> Option<String> {
        medanon_core::icd10::category(code)
    }

    /// The WHO ICD-10 chapter of a code, as its range (`E11.9` → `E00-E90`).
    #[pg_extern(immutable, strict, parallel_safe)]
    fn icd10_chapter(code: &str) -> Option<String> {
        medanon_core::icd10::chapter(code)
    }

    /// The parent of an ICD-10 label at `level` (0 a code, 1 a category, 2 a chapter).
    #[pg_extern(immutable, strict, parallel_safe)]
    fn _icd10_parent(label: &str, level: i32) -> Option<String> {
        medanon_core::icd10::parent(label, level)
    }

    // --- Consent -----------------------------------------------------------------

    /// The waiting period in days (`medanon.notice_wait_days`), for the consent views.
    #[pg_extern(stable, parallel_safe)]
    pub fn notice_wait_days() -> i32 {
        crate::gucs::NOTICE_WAIT_DAYS.get()
    }

    // --- Link (名寄せ): normalizers, open to all (no key) -------------------------

    #[pg_extern(immutable, strict, parallel_safe)]
    fn normalize_kana(name: &str) -> Option<String> {
        medanon_core::normalize::normalize_kana(name)
    }

    #[pg_extern(immutable, strict, parallel_safe)]
    fn normalize_kanji_name(name: &str) -> Option<String> {
        medanon_core::normalize::normalize_kanji_name(name)
    }

    #[pg_extern(immutable, strict, parallel_safe)]
    fn normalize_sex(code: &str) -> Option<i16> {
        crate::link::normalize::sex(code)
    }

    #[pg_extern(immutable, strict, parallel_safe)]
    fn normalize_insurer_number(value: &str) -> Option<String> {
        crate::link::normalize::insurer_number(value)
    }

    #[pg_extern(immutable, strict, parallel_safe)]
    fn normalize_insured_symbol(value: &str) -> Option<String> {
        medanon_core::normalize::normalize_insured_symbol(value)
    }

    #[pg_extern(immutable, strict, parallel_safe)]
    fn normalize_insured_number(value: &str) -> Option<String> {
        crate::link::normalize::insured_number(value)
    }

    // --- Link: keyed, medanon_operator only -----------------------------------

    #[pg_extern(volatile, parallel_unsafe)]
    fn link_patients(staging: PgRelation) -> pgrx::JsonB {
        crate::citus::ddl_stays_local(|| crate::link::link_patients(staging.oid()))
    }

    #[allow(clippy::too_many_arguments)]
    #[pg_extern(stable, parallel_safe)]
    fn _link_problem(
        institution_code: Option<&str>,
        local_patient_id: Option<&str>,
        name_kana: Option<&str>,
        birth_date: Option<&str>,
        sex: Option<&str>,
        insurer_number: Option<&str>,
        insured_symbol: Option<&str>,
        insured_number: Option<&str>,
    ) -> Option<&'static str> {
        crate::link::keys::problem(
            institution_code,
            local_patient_id,
            name_kana,
            birth_date,
            sex,
            insurer_number,
            insured_symbol,
            insured_number,
        )
    }

    #[pg_extern(stable, parallel_safe)]
    fn _link_id1(
        insurer_number: Option<&str>,
        insured_symbol: Option<&str>,
        insured_number: Option<&str>,
        birth_date: Option<&str>,
        sex: Option<&str>,
    ) -> Option<pgrx::Uuid> {
        crate::link::keys::id1(insurer_number, insured_symbol, insured_number, birth_date, sex)
    }

    #[pg_extern(stable, parallel_safe)]
    fn _link_id2(name_kana: Option<&str>, birth_date: Option<&str>, sex: Option<&str>) -> Option<pgrx::Uuid> {
        crate::link::keys::id2(name_kana, birth_date, sex)
    }

    #[pg_extern(stable, parallel_safe)]
    fn _link_block(birth_date: Option<&str>, sex: Option<&str>) -> Option<i64> {
        crate::link::keys::block(birth_date, sex)
    }

    #[pg_extern(stable, parallel_safe)]
    fn _link_clk(name_kana: Option<&str>) -> Option<Vec<u8>> {
        crate::link::keys::name_clk(name_kana)
    }

    /// The first `digits` digits of a postal code, the rest masked (123-****);
    /// NULL for a value that is not a postal code, so a contract view never stops
    /// on one bad record. A `digits` outside 0-7 is an error.
    #[pg_extern(immutable, strict, parallel_safe)]
    fn postal_prefix(code: &str, digits: i32) -> Option<String> {
        use crate::error::OrRaise;
        use medanon_core::generalize::generalize_postal_code;
        // Checked on a valid code first, so a bad `digits` is an error whatever the value.
        generalize_postal_code("000-0000", digits).or_raise();
        generalize_postal_code(code, digits).ok()
    }

    // --- Contracts ----------------------------------------------------------------

    /// `create_contract(spec jsonb)` is a SQL wrapper (sql/finalize.sql) that passes
    /// the spec as text: pgrx's jsonb argument conversion fails as XX000 on JSON nested
    /// deeper than serde_json's limit, where this parse refuses it with 22023.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    fn _create_contract(spec: &str) -> String {
        crate::expose::create::create_contract(spec)
    }

    /// Today in the operator's time zone (`medanon.time_zone`, Asia/Tokyo by
    /// default): the day a contract's expiry is counted in.
    #[pg_extern(stable, parallel_restricted)]
    fn contract_today() -> Date {
        let today = crate::expose::today();
        Date::new(today.year, today.month as u8, today.day as u8)
            .unwrap_or_else(|e| crate::error::raise(pgrx::PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW, "today is not a date", Some(e.to_string()), None))
    }

    /// The names of a person's states in a contract's map, keyed by meaning, from
    /// the planner that owns them (`medanon_core::plan::PersonState`): the SQL
    /// side (the map's CHECK constraint, the consent triggers, contract_report)
    /// reads them here instead of spelling them again.
    #[pg_extern(immutable, parallel_safe)]
    fn _contract_person_states() -> pgrx::JsonB {
        use medanon_core::plan::PersonState;
        let keyed = [
            ("visible", PersonState::Visible),
            ("k", PersonState::K),
            ("consent", PersonState::Consent),
            ("unlinked", PersonState::Unlinked),
            ("changed", PersonState::Changed),
            ("calendar", PersonState::Calendar),
        ];
        pgrx::JsonB(serde_json::Value::Object(
            keyed.iter().map(|(key, state)| (key.to_string(), serde_json::Value::from(state.name()))).collect(),
        ))
    }

    #[pg_extern(volatile, strict, parallel_unsafe)]
    fn publish_contract(id: &str) -> pgrx::JsonB {
        crate::citus::ddl_stays_local(|| crate::expose::publish::publish_contract(id))
    }

    #[pg_extern(volatile, strict, parallel_unsafe)]
    fn refresh_contract(id: &str, full: pgrx::default!(bool, false)) -> pgrx::JsonB {
        crate::citus::ddl_stays_local(|| crate::expose::publish::refresh_contract(id, full))
    }

    #[pg_extern(volatile, strict, parallel_unsafe)]
    fn release_snapshot(id: &str) -> String {
        crate::citus::ddl_stays_local(|| crate::expose::snapshot::release_snapshot(id))
    }

    /// Records in the provision ledger that a snapshot was written out as delivery
    /// files (`medanon-export`): `manifest` is manifest.json's text, checked against
    /// the snapshot's ledger entry; the caller must be able to read the snapshot.
    /// Returns the manifest's SHA-256.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    fn record_export(manifest: &str) -> String {
        crate::expose::export::record_export(manifest)
    }

    /// VOLATILE, PARALLEL UNSAFE: a call on a statistics contract writes the ledger.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    fn safe_counts(
        contract_id: &str,
        view_name: &str,
        group_by: Vec<Option<String>>,
        min_cell: default!(i32, 10),
    ) -> TableIterator<
        'static,
        (name!(cell, pgrx::JsonB), name!(persons, Option<i64>), name!(suppression, Option<String>)),
    > {
        TableIterator::new(crate::expose::stats::safe_counts(contract_id, view_name, group_by, min_cell))
    }

    // --- Risk analysis ----------------------------------------------------------
    // Not STRICT: a NULL argument is an error (22004), because a STRICT function's
    // empty or NULL answer would read as "no risk".

    /// A suggested class for every column of a table, with the evidence, from the
    /// column names and a bounded sample of values read with the caller's rights.
    /// VOLATILE: the sample is the first rows a scan meets, which may change between
    /// two scans of one snapshot (synchronized scans).
    #[pg_extern(volatile, parallel_restricted)]
    fn suggest_classes(
        rel: Option<PgRelation>,
    ) -> TableIterator<'static, (name!(column_name, String), name!(class, String), name!(evidence, String))> {
        TableIterator::new(crate::collect::suggest_classes::suggest_classes(rel.map(|r| r.oid())))
    }

    #[pg_extern(stable, parallel_restricted)]
    fn k_report(
        rel: Option<PgRelation>,
        quasi_identifiers: Option<Vec<Option<String>>>,
        person_column: Option<&str>,
        k: Option<i32>,
    ) -> TableIterator<'static, (name!(class, pgrx::JsonB), name!(persons, i64))> {
        TableIterator::new(crate::risk::k_report(rel.map(|r| r.oid()), quasi_identifiers.as_deref(), person_column, k))
    }

    #[pg_extern(stable, parallel_restricted)]
    fn l_diversity(
        rel: Option<PgRelation>,
        quasi_identifiers: Option<Vec<Option<String>>>,
        sensitive: Option<&str>,
        person_column: Option<&str>,
    ) -> Option<i64> {
        crate::risk::l_diversity(rel.map(|r| r.oid()), quasi_identifiers.as_deref(), sensitive, person_column)
    }

    #[pg_extern(stable, parallel_restricted)]
    fn risk_profile(
        rel: Option<PgRelation>,
        quasi_identifiers: Option<Vec<Option<String>>>,
        person_column: Option<&str>,
        k: Option<i32>,
    ) -> pgrx::JsonB {
        crate::risk::risk_profile(rel.map(|r| r.oid()), quasi_identifiers.as_deref(), person_column, k)
    }

    /// Behind the SQL wrapper `suggest_generalization(regclass, jsonb, ...)`, for the
    /// reason given at `_create_contract`.
    #[pg_extern(stable, parallel_restricted)]
    fn _suggest_generalization(
        rel: Option<PgRelation>,
        spec: Option<&str>,
        k: Option<i32>,
        max_suppression: Option<f64>,
    ) -> pgrx::JsonB {
        let spec = spec.map(|s| crate::error::json_arg("spec", s));
        crate::risk::suggest_generalization(rel.map(|r| r.oid()), spec.as_ref(), k, max_suppression)
    }

    /// Not STRICT, because `person_column` defaults to NULL; a NULL relation or
    /// array still gives NULL (see the README).
    /// PARALLEL RESTRICTED: it runs a query through SPI, which may read a
    /// temporary table that a parallel worker cannot see.
    #[pg_extern(stable, parallel_restricted)]
    fn k_anonymity(
        rel: Option<PgRelation>,
        quasi_identifiers: Option<Vec<Option<String>>>,
        person_column: default!(Option<&str>, "NULL"),
    ) -> Option<i64> {
        crate::kanon::k_anonymity(rel?.oid(), quasi_identifiers?, person_column)
    }
}

extension_sql_file!(
    "../sql/dicom.sql",
    name = "dicom",
    requires = ["contract_live", functions::deidentify_dicom, functions::_dicom_object, functions::_dicom_study_date, functions::_dicom_quasi_identifiers]
);
extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

#[cfg(any(test, feature = "pg_test"))]
mod tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
