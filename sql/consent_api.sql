-- medanon consent API: recording notifications and opt-outs, eligibility, intake.
-- All run as the caller (medanon_operator), with a fixed search_path.

CREATE FUNCTION register_institution(code text, name text, kind text) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    INSERT INTO medanon.institution (code, name, kind) VALUES (code, name, kind);
    RETURN code;
EXCEPTION
    WHEN check_violation THEN
        RAISE EXCEPTION 'invalid institution %', pg_catalog.quote_literal(coalesce(code, 'NULL'))
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'kind is one of hospital, clinic, care_facility, municipality, school; code is not empty';
END
$fn$;

-- What a broken CHECK constraint of a consent ledger means, for a person: the
-- constraints are the rule (sql/consent.sql), and this is the one place that
-- explains them. The caller raises it (22023), so the error's context is the
-- caller's.
CREATE FUNCTION _ledger_refusal(broken text, value text, requested_by text DEFAULT NULL,
                                OUT message text, OUT hint text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT CASE
             WHEN broken = 'opt_out_requested_by' THEN pg_catalog.format('invalid requester %L', value)
             WHEN broken = 'opt_out_relationship' AND requested_by = 'self' THEN 'a request by the patient has no relationship'
             WHEN broken = 'opt_out_relationship'
               THEN pg_catalog.format('invalid relationship %s for a request by the bereaved family',
                                      pg_catalog.quote_literal(coalesce(value, 'NULL')))
             WHEN broken = 'opt_out_scope' THEN pg_catalog.format('invalid scope %L', value)
             WHEN broken = 'notification_method' THEN pg_catalog.format('invalid notification method %L', value)
             ELSE 'institution_code and local_patient_id must not be empty'
           END,
           CASE
             WHEN broken = 'opt_out_requested_by' THEN 'requested_by is self, guardian or bereaved_family'
             WHEN broken = 'opt_out_relationship' AND requested_by = 'self' THEN 'leave relationship NULL for a request by the patient'
             WHEN broken = 'opt_out_relationship' THEN 'the cabinet order lists spouse, child, parent, grandchild, grandparent and sibling'
             WHEN broken = 'opt_out_scope' THEN 'scope is all (every institution) or institution'
             WHEN broken = 'notification_method' THEN 'method is written, electronic or in_person'
             ELSE 'name the institution and the patient''s id there'
           END;
END;

CREATE FUNCTION record_notification(institution_code text, local_patient_id text,
                                    notified_at timestamptz DEFAULT pg_catalog.now(), method text DEFAULT 'written')
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE id bigint;
BEGIN
    IF institution_code IS NULL OR local_patient_id IS NULL OR notified_at IS NULL OR method IS NULL THEN
        RAISE EXCEPTION 'record_notification needs every argument'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF notified_at > pg_catalog.now() THEN
        RAISE EXCEPTION 'notification date is in the future'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'record a notification once it has been given';
    END IF;
    INSERT INTO medanon.notification (institution_code, local_patient_id, notified_at, method)
    VALUES (record_notification.institution_code, record_notification.local_patient_id,
            record_notification.notified_at, record_notification.method)
    RETURNING notification_id INTO id;
    RETURN id;
EXCEPTION
    WHEN foreign_key_violation THEN
        RAISE EXCEPTION 'unknown institution %', pg_catalog.quote_literal(record_notification.institution_code)
            USING ERRCODE = 'foreign_key_violation', HINT = 'register it first with medanon.register_institution()';
    -- The table's CHECK constraints are the rule (sql/consent.sql).
    WHEN check_violation THEN
        DECLARE broken text; r record;
        BEGIN
            GET STACKED DIAGNOSTICS broken = CONSTRAINT_NAME;
            r := medanon._ledger_refusal(broken, record_notification.method);
            RAISE EXCEPTION USING MESSAGE = r.message, HINT = r.hint, ERRCODE = 'invalid_parameter_value';
        END;
END
$fn$;

CREATE FUNCTION opt_out(institution_code text, local_patient_id text, requested_by text, relationship text,
                        scope text, received_at timestamptz DEFAULT pg_catalog.now())
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE id bigint;
BEGIN
    IF institution_code IS NULL OR local_patient_id IS NULL OR requested_by IS NULL OR scope IS NULL
       OR received_at IS NULL THEN
        RAISE EXCEPTION 'opt_out needs institution_code, local_patient_id, requested_by, scope and received_at'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    INSERT INTO medanon.opt_out (institution_code, local_patient_id, requested_by, relationship, received_at, scope)
    VALUES (opt_out.institution_code, opt_out.local_patient_id, opt_out.requested_by, opt_out.relationship,
            opt_out.received_at, opt_out.scope)
    RETURNING opt_out_id INTO id;
    RETURN id;
EXCEPTION
    -- The table's CHECK constraints are the rule (sql/consent.sql); this says
    -- which one a request broke, for a person.
    WHEN check_violation THEN
        DECLARE broken text; r record;
        BEGIN
            GET STACKED DIAGNOSTICS broken = CONSTRAINT_NAME;
            r := medanon._ledger_refusal(broken, CASE broken
                WHEN 'opt_out_requested_by' THEN opt_out.requested_by
                WHEN 'opt_out_relationship' THEN opt_out.relationship
                WHEN 'opt_out_scope' THEN opt_out.scope
                END, opt_out.requested_by);
            RAISE EXCEPTION USING MESSAGE = r.message, HINT = r.hint, ERRCODE = 'invalid_parameter_value';
        END;
END
$fn$;

CREATE FUNCTION opt_out(institution_code text, local_patient_id text, requested_by text DEFAULT 'self',
                        received_at timestamptz DEFAULT pg_catalog.now())
RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
RETURN medanon.opt_out(institution_code, local_patient_id, requested_by, NULL::text, 'all', received_at);

CREATE FUNCTION withdraw_opt_out(institution_code text, local_patient_id text,
                                 received_at timestamptz DEFAULT pg_catalog.now())
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE n integer;
BEGIN
    INSERT INTO medanon.opt_out_withdrawal (opt_out_id, received_at)
    SELECT o.opt_out_id, withdraw_opt_out.received_at
      FROM medanon.opt_out o
     WHERE o.institution_code = withdraw_opt_out.institution_code
       AND o.local_patient_id = withdraw_opt_out.local_patient_id
       AND NOT EXISTS (SELECT FROM medanon.opt_out_withdrawal w WHERE w.opt_out_id = o.opt_out_id);
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        RAISE EXCEPTION 'no opt-out in force for % at %', pg_catalog.quote_literal(withdraw_opt_out.local_patient_id),
                        pg_catalog.quote_literal(withdraw_opt_out.institution_code)
            USING ERRCODE = 'no_data_found';
    END IF;
    RETURN n;
END
$fn$;

-- Opt-outs in force, resolved to persons through person_link.
CREATE VIEW opt_outs_in_force AS
SELECT o.opt_out_id, o.institution_code, o.local_patient_id, l.person_id, o.scope, o.requested_by, o.received_at
  FROM medanon.opt_out o
  LEFT JOIN medanon.person_link l
    ON l.institution_code OPERATOR(pg_catalog.=) o.institution_code
   AND l.local_patient_id OPERATOR(pg_catalog.=) o.local_patient_id
 WHERE NOT EXISTS (SELECT FROM medanon.opt_out_withdrawal w WHERE w.opt_out_id OPERATOR(pg_catalog.=) o.opt_out_id);
COMMENT ON VIEW opt_outs_in_force IS 'Opt-outs not withdrawn, with the person they name once that record is linked.';

-- The consent rule (Act art. 30-31; the guideline's 通知・提供停止), written once
-- and read by eligible_records, check_intake and release_quarantine: a record
-- (institution, local patient id) may flow at time T when
--   (1) the patient was notified at that institution, under that local id, at
--       least notice_wait_days before T: a notification with eligible_from <= T;
--   (2) no opt-out in force covers it: none names the record itself, and none of
--       the person's (once linked) has scope all or names that institution.
-- Both are plain (flattenable) views, so a query that asks them about a set of
-- records is planned as semi- and anti-joins (hash joins at 1M records), where a
-- per-record function took minutes.
CREATE VIEW notified_records AS
SELECT n.institution_code, n.local_patient_id, n.notified_at,
       n.notified_at OPERATOR(pg_catalog.+) pg_catalog.make_interval(days => medanon.notice_wait_days()) AS eligible_from
  FROM medanon.notification n;
COMMENT ON VIEW notified_records IS 'Notifications, with the moment the waiting period is over (eligible_from): rule (1) of consent.';

CREATE VIEW refused_records AS
SELECT o.institution_code, o.local_patient_id, o.opt_out_id
  FROM medanon.opt_outs_in_force o
UNION ALL
SELECT l.institution_code, l.local_patient_id, o.opt_out_id
  FROM medanon.opt_outs_in_force o
  JOIN medanon.person_link l
    ON l.person_id OPERATOR(pg_catalog.=) o.person_id
   AND (o.scope OPERATOR(pg_catalog.=) 'all' OR o.institution_code OPERATOR(pg_catalog.=) l.institution_code);
COMMENT ON VIEW refused_records IS 'Records an opt-out in force covers (the record it names, and the person''s other records in its scope): rule (2) of consent.';

-- The linked records that may flow into a contract now. Read at query time, so an
-- opt-out hides the person from the next statement on. A plain (flattenable)
-- view: a query that filters it by person or record reaches it through the
-- indexes, where a DISTINCT view would be computed whole first (2.4 s against
-- 0.1 ms for 1,000 persons of 1M records in `make bench`).
CREATE VIEW eligible_records AS
SELECT l.institution_code, l.local_patient_id, l.person_id
  FROM medanon.person_link l
 WHERE EXISTS (SELECT FROM medanon.notified_records n
                WHERE n.institution_code OPERATOR(pg_catalog.=) l.institution_code
                  AND n.local_patient_id OPERATOR(pg_catalog.=) l.local_patient_id
                  AND n.eligible_from OPERATOR(pg_catalog.<=) pg_catalog.now())
   AND NOT EXISTS (SELECT FROM medanon.refused_records r
                    WHERE r.institution_code OPERATOR(pg_catalog.=) l.institution_code
                      AND r.local_patient_id OPERATOR(pg_catalog.=) l.local_patient_id);
COMMENT ON VIEW eligible_records IS 'Linked records (institution, local patient id, person) whose data may flow into contracts now.';

-- The same, as (person, institution) pairs.
CREATE VIEW eligible_persons AS
SELECT DISTINCT person_id, institution_code FROM medanon.eligible_records;
COMMENT ON VIEW eligible_persons IS 'Persons and the institutions whose records of them may flow into contracts now.';

CREATE FUNCTION is_eligible(person_id bigint, institution_code text DEFAULT NULL) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN EXISTS (SELECT FROM medanon.eligible_records e
                WHERE e.person_id = is_eligible.person_id
                  AND (is_eligible.institution_code IS NULL OR e.institution_code = is_eligible.institution_code));

-- Intake: hold back staging records that may not be sent yet, or no longer.
CREATE FUNCTION check_intake(staging regclass) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    missing text;
    arrival text;
    moved jsonb;
    checked bigint;
BEGIN
    SELECT string_agg(c, ', ') INTO missing
      FROM unnest(ARRAY['institution_code', 'local_patient_id']) c
     WHERE NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = staging AND a.attname = c AND a.attnum > 0
                                                    AND NOT a.attisdropped);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'staging relation % lacks columns check_intake reads', staging
            USING ERRCODE = 'undefined_column', DETAIL = 'missing: ' || missing;
    END IF;
    -- When a record arrived: its received_at column if the staging table has one, else now.
    arrival := CASE WHEN EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = staging AND a.attname = 'received_at'
                                                              AND a.attnum > 0 AND NOT a.attisdropped)
                    THEN 's.received_at::timestamptz' ELSE 'pg_catalog.now()' END;
    EXECUTE format('SELECT count(*) FROM %s', staging) INTO checked;
    EXECUTE format($q$
        WITH judged AS (
            SELECT s.ctid AS row_id, s.institution_code::text AS inst, s.local_patient_id::text AS local,
                   %1$s AS arrived_at,
                   CASE
                     WHEN EXISTS (SELECT FROM medanon.refused_records r
                                   WHERE r.institution_code = s.institution_code::text
                                     AND r.local_patient_id = s.local_patient_id::text)
                       THEN 'opted out'
                     WHEN NOT EXISTS (SELECT FROM medanon.notified_records n
                                       WHERE n.institution_code = s.institution_code::text
                                         AND n.local_patient_id = s.local_patient_id::text
                                         AND n.notified_at <= %1$s)
                       THEN 'not notified'
                     WHEN NOT EXISTS (SELECT FROM medanon.notified_records n
                                       WHERE n.institution_code = s.institution_code::text
                                         AND n.local_patient_id = s.local_patient_id::text
                                         AND n.eligible_from <= %1$s)
                       THEN 'waiting period not over'
                   END AS reason,
                   to_jsonb(s) AS record
              FROM %2$s AS s),
        held AS (
            INSERT INTO medanon.intake_quarantine (source, institution_code, local_patient_id, arrived_at, reason, record)
            SELECT %3$L::regclass, inst, local, arrived_at, reason, record FROM judged WHERE reason IS NOT NULL
            RETURNING institution_code, local_patient_id, reason),
        logged AS (
            INSERT INTO medanon.intake_log (event, source, institution_code, local_patient_id, reason)
            SELECT 'quarantined', %3$L, institution_code, local_patient_id, reason FROM held),
        removed AS (
            DELETE FROM %2$s AS s USING judged j WHERE s.ctid = j.row_id AND j.reason IS NOT NULL RETURNING 1)
        SELECT coalesce(jsonb_object_agg(reason, n), '{}') FROM (SELECT reason, count(*) AS n FROM held GROUP BY reason) r
        $q$, arrival, staging, staging::text)
    INTO moved;
    RETURN jsonb_build_object(
        'checked', checked,
        'passed', checked - coalesce((SELECT sum(value::bigint) FROM jsonb_each_text(moved)), 0),
        'quarantined', moved);
END
$fn$;

CREATE FUNCTION release_quarantine() RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    q record;
    released bigint := 0;
    deleted bigint := 0;
    waiting bigint := 0;
BEGIN
    -- One release at a time, and no check_intake adding records meanwhile. (Not
    -- SELECT ... FOR UPDATE: that needs UPDATE on the table, which the operator
    -- does not have; the lock needs only the DELETE it has.)
    LOCK TABLE medanon.intake_quarantine IN SHARE ROW EXCLUSIVE MODE;
    FOR q IN SELECT * FROM medanon.intake_quarantine ORDER BY intake_id LOOP
        IF EXISTS (SELECT FROM medanon.refused_records r
                    WHERE r.institution_code = q.institution_code AND r.local_patient_id = q.local_patient_id) THEN
            -- An opt-out makes it final: the record goes, a ledger entry stays.
            DELETE FROM medanon.intake_quarantine WHERE intake_id = q.intake_id;
            INSERT INTO medanon.intake_log (event, source, institution_code, local_patient_id, reason)
            VALUES ('deleted', q.source::text, q.institution_code, q.local_patient_id, 'opted out');
            deleted := deleted + 1;
        ELSIF q.source IS NOT NULL
          AND EXISTS (SELECT FROM medanon.notified_records n
                       WHERE n.institution_code = q.institution_code AND n.local_patient_id = q.local_patient_id
                         AND n.eligible_from <= now()) THEN
            -- Eligible now: back into the staging table it came from.
            EXECUTE format('INSERT INTO %s SELECT * FROM jsonb_populate_record(NULL::%s, $1)', q.source, q.source)
              USING q.record;
            DELETE FROM medanon.intake_quarantine WHERE intake_id = q.intake_id;
            INSERT INTO medanon.intake_log (event, source, institution_code, local_patient_id, reason)
            VALUES ('released', q.source::text, q.institution_code, q.local_patient_id, 'eligible');
            released := released + 1;
        ELSE
            waiting := waiting + 1;
        END IF;
    END LOOP;
    RETURN jsonb_build_object('released', released, 'deleted', deleted, 'still_held', waiting);
END
$fn$;

REVOKE ALL ON opt_outs_in_force, notified_records, refused_records, eligible_records, eligible_persons FROM PUBLIC;
GRANT SELECT ON opt_outs_in_force, notified_records, refused_records, eligible_records, eligible_persons TO medanon_operator;

COMMENT ON FUNCTION ledger_append_only() IS 'Internal trigger: refuses UPDATE, DELETE and TRUNCATE on the consent ledgers.';
COMMENT ON FUNCTION _ledger_refusal(text, text, text) IS
    'Internal: the message and hint, for a person, of a broken CHECK constraint of a consent ledger (the constraints are the rule).';
COMMENT ON FUNCTION register_institution(text, text, text) IS
    'Registers a provider institution (hospital, clinic, care_facility, municipality or school).';
COMMENT ON FUNCTION record_notification(text, text, timestamptz, text) IS
    'Records that a patient was notified at an institution (method written, electronic or in_person); returns its id.';
COMMENT ON FUNCTION opt_out(text, text, text, text, text, timestamptz) IS
    'Records an opt-out by self, guardian (relationship free) or bereaved_family (spouse, child, parent, grandchild, grandparent, sibling), scope all or institution; effective from commit.';
COMMENT ON FUNCTION opt_out(text, text, text, timestamptz) IS
    'Records an opt-out for every institution (scope all); effective from commit. Returns its id.';
COMMENT ON FUNCTION withdraw_opt_out(text, text, timestamptz) IS
    'Withdraws the opt-outs in force for a patient record, when the patient agrees again; returns how many.';
COMMENT ON FUNCTION is_eligible(bigint, text) IS
    'Whether a person''s records (from one institution, or from any when NULL) may flow into contracts now.';
COMMENT ON FUNCTION check_intake(regclass) IS
    'Moves staging records that arrived before notification and waiting period, or after an opt-out, to intake_quarantine; returns counts.';
COMMENT ON FUNCTION release_quarantine() IS
    'Returns now-eligible held records to their staging table, and deletes (with a log entry) those an opt-out makes final.';
