-- medanon finalize: SQL-language helpers, privileges, comments, and the first key.

-- top_code / bottom_code are plain SQL so the planner inlines them into a view's
-- query: no function call per row. They are not STRICT, because a STRICT SQL
-- function is not inlined; a NULL value still gives NULL, and a NULL cap or floor
-- leaves the value unchanged.
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

-- Privileges -------------------------------------------------------------------
-- Everyone may look into the schema: analysts call the generalizers and, later,
-- safe_counts. Every object in it is locked down one by one below.
GRANT USAGE ON SCHEMA medanon TO PUBLIC;

-- Keyed functions are an oracle in the wrong hands (DESIGN.md invariant 1): only
-- the operator role may run them.
REVOKE ALL ON FUNCTION
    tokenize(text, text),
    shift_date(date, text, text),
    shift_date(timestamp, text, text),
    shift_date(timestamptz, text, text),
    date_offset(text, text),
    active_key_id()
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    tokenize(text, text),
    shift_date(date, text, text),
    shift_date(timestamp, text, text),
    shift_date(timestamptz, text, text),
    date_offset(text, text),
    active_key_id()
TO medanon_operator;

-- Key management is for the superuser who owns the keyring.
REVOKE ALL ON FUNCTION rotate_key(), _install_first_key() FROM PUBLIC;

-- Comments, so \df+ documents every function ----------------------------------
COMMENT ON FUNCTION tokenize(text, text) IS
'Keyed HMAC-SHA256 token of value in domain (64 hex characters). Deterministic under the active key; unrelated across domains. NULL in, NULL out. Operator only.';
COMMENT ON FUNCTION shift_date(date, text, text) IS
'Moves a date by the keyed offset of (person, domain): never 0, uniform within +/- medanon.max_shift_days, the same for every date of that person. Operator only.';
COMMENT ON FUNCTION shift_date(timestamp, text, text) IS
'Moves a timestamp by whole 24-hour days, by the keyed offset of (person, domain), as shift_date(date, ...). Operator only.';
COMMENT ON FUNCTION shift_date(timestamptz, text, text) IS
'Moves a timestamptz by whole 24-hour days, by the keyed offset of (person, domain), as shift_date(date, ...). Operator only.';
COMMENT ON FUNCTION date_offset(text, text) IS
'The offset in days that shift_date applies to (person, domain). Operator only.';
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
COMMENT ON FUNCTION keyring_restore_guard() IS 'Internal trigger: lets pg_restore replace the unused key that CREATE EXTENSION made.';

-- The first key, so every function works at once.
SELECT _install_first_key();
