-- medanon contract API (catalog side): registering sources, classifying columns,
-- certified users. Run as the caller (medanon_operator) with a fixed search_path.

CREATE FUNCTION register_source(rel regclass, person_column text, institution_column text DEFAULT NULL)
RETURNS regclass
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE nsp name; tbl name; col text;
BEGIN
    SELECT n.nspname, c.relname INTO nsp, tbl
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel;
    FOREACH col IN ARRAY ARRAY[person_column, institution_column] LOOP
        IF col IS NOT NULL AND NOT EXISTS (SELECT FROM pg_attribute
                                             WHERE attrelid = rel AND attname = col AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION 'column "%" of relation % does not exist', col, rel
                USING ERRCODE = 'undefined_column';
        END IF;
    END LOOP;
    IF person_column IS NULL THEN
        RAISE EXCEPTION 'a source needs its person column' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    INSERT INTO medanon.source (source_schema, source_table, person_column, institution_column)
    VALUES (nsp, tbl, person_column, institution_column)
    ON CONFLICT (source_schema, source_table) DO UPDATE
       SET person_column = EXCLUDED.person_column, institution_column = EXCLUDED.institution_column,
           registered_at = now(), registered_by = session_user;
    RETURN rel;
END
$fn$;

CREATE FUNCTION classify(rel regclass, column_name text, class text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE nsp name; tbl name;
BEGIN
    SELECT n.nspname, c.relname INTO nsp, tbl
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel;
    IF NOT EXISTS (SELECT FROM medanon.source s WHERE s.source_schema = nsp AND s.source_table = tbl) THEN
        RAISE EXCEPTION 'relation % is not a registered source', rel
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'register it first with medanon.register_source()';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = rel AND attname = column_name AND attnum > 0 AND NOT attisdropped) THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', column_name, rel USING ERRCODE = 'undefined_column';
    END IF;
    IF class IS NULL OR class NOT IN ('identifier', 'quasi_identifier', 'static', 'semi_static', 'dynamic', 'image') THEN
        RAISE EXCEPTION 'invalid class %', quote_nullable(class)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'identifier, quasi_identifier, static, semi_static, dynamic or image (DICOM objects)';
    END IF;
    INSERT INTO medanon.source_column (source_schema, source_table, column_name, class)
    VALUES (nsp, tbl, classify.column_name, classify.class)
    ON CONFLICT ON CONSTRAINT source_column_pkey DO UPDATE
       SET class = EXCLUDED.class, classified_at = now(), classified_by = session_user;
END
$fn$;

CREATE FUNCTION register_certified_user(role_name name) RETURNS name
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = register_certified_user.role_name) THEN
        RAISE EXCEPTION 'role "%" does not exist', role_name USING ERRCODE = 'undefined_object';
    END IF;
    INSERT INTO medanon.certified_user (role_name) VALUES (register_certified_user.role_name) ON CONFLICT DO NOTHING;
    RETURN role_name;
END
$fn$;

COMMENT ON FUNCTION register_source(regclass, text, text) IS
    'Registers a raw table whose rows belong to linked persons (person_column holds person_id from person_link).';
COMMENT ON FUNCTION classify(regclass, text, text) IS
    'Classifies a source column as identifier, quasi_identifier, static, semi_static, dynamic or image (DICOM objects, bytea); unclassified columns are never exposed.';
COMMENT ON FUNCTION register_certified_user(name) IS
    'Registers a role as a certified user of pseudonymized data (the 2024 amendment).';
