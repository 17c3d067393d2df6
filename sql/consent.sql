-- medanon consent: the notification and opt-out ledger (通知・提供停止の求め).
--
-- Under the Act a provider may send a patient's records only after it has notified
-- the patient (in writing, at the first visit) and a waiting period has passed
-- (medanon.notice_wait_days, 30 by default). The patient, a guardian, or after
-- death the bereaved family (spouse, child, parent, grandchild, grandparent or
-- sibling, per the cabinet order) may refuse at any time.
--
-- The ledger tables are append-only: a trigger refuses UPDATE, DELETE and TRUNCATE
-- for everyone, so what was notified, refused and withdrawn, by whom and when,
-- stays as it was recorded. Requests are kept by (institution, local patient id)
-- and resolved through person_link when read, so a request naming a patient who
-- is not linked yet applies the moment that patient is linked.

CREATE FUNCTION ledger_append_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $ledger$
BEGIN
    RAISE EXCEPTION 'medanon ledger % is append-only', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = pg_catalog.format('%s on %s.%s is not allowed', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME),
              HINT = 'record a new entry instead (for example withdraw_opt_out for an opt-out)';
END
$ledger$;
REVOKE ALL ON FUNCTION ledger_append_only() FROM PUBLIC;

CREATE TABLE institution (
    code           text PRIMARY KEY CHECK (code <> ''),
    name           text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('hospital', 'clinic', 'care_facility', 'municipality', 'school')),
    registered_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    registered_by  name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE institution IS 'Provider institutions (医療機関等) that send records; append-only.';

CREATE TABLE notification (
    notification_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    institution_code  text NOT NULL REFERENCES institution,
    local_patient_id  text NOT NULL CHECK (local_patient_id <> ''),
    notified_at       timestamptz NOT NULL,
    method            text NOT NULL CONSTRAINT notification_method CHECK (method IN ('written', 'electronic', 'in_person')),
    recorded_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    recorded_by       name NOT NULL DEFAULT session_user
);
CREATE INDEX notification_record ON notification (institution_code, local_patient_id, notified_at);
-- The notifications whose waiting period ended since a contract's last refresh.
CREATE INDEX notification_time ON notification (notified_at);
COMMENT ON TABLE notification IS 'Notifications (通知) of patients, by institution; append-only.';

CREATE TABLE opt_out (
    opt_out_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Not a foreign key: a request is kept whatever it names (nothing is lost).
    institution_code  text NOT NULL CHECK (institution_code <> ''),
    local_patient_id  text NOT NULL CHECK (local_patient_id <> ''),
    requested_by      text NOT NULL CONSTRAINT opt_out_requested_by CHECK (requested_by IN ('self', 'guardian', 'bereaved_family')),
    -- A patient's own request names no relationship; the bereaved family's names
    -- one the cabinet order lists; a guardian's is free. (Written so that an
    -- unknown requester breaks opt_out_requested_by, not this.)
    relationship      text CONSTRAINT opt_out_relationship CHECK (
        (requested_by <> 'self' OR relationship IS NULL)
        AND (requested_by <> 'bereaved_family'
             OR coalesce(relationship IN ('spouse', 'child', 'parent', 'grandchild', 'grandparent', 'sibling'), false))),
    received_at       timestamptz NOT NULL,
    scope             text NOT NULL DEFAULT 'all' CONSTRAINT opt_out_scope CHECK (scope IN ('all', 'institution')),
    recorded_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    recorded_by       name NOT NULL DEFAULT session_user
);
CREATE INDEX opt_out_record ON opt_out (institution_code, local_patient_id);
COMMENT ON TABLE opt_out IS 'Opt-outs (提供停止の求め): by the patient, a guardian or the bereaved family; append-only.';

CREATE TABLE opt_out_withdrawal (
    withdrawal_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    opt_out_id     bigint NOT NULL UNIQUE REFERENCES opt_out,
    received_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    recorded_by    name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE opt_out_withdrawal IS 'Withdrawals of opt-outs, when a patient agrees again; append-only.';

-- Records held back at intake, with the reason and the raw record. Not a ledger:
-- rows leave it when released or deleted, and intake_log records which.
CREATE TABLE intake_quarantine (
    intake_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    quarantined_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    source            regclass,
    institution_code  text,
    local_patient_id  text,
    arrived_at        timestamptz NOT NULL,
    reason            text NOT NULL CHECK (reason IN ('not notified', 'waiting period not over', 'opted out')),
    record            jsonb NOT NULL
);
COMMENT ON TABLE intake_quarantine IS 'Staging records that arrived before notification and waiting period, or after an opt-out.';

CREATE TABLE intake_log (
    entry_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    logged_at         timestamptz NOT NULL DEFAULT pg_catalog.now(),
    logged_by         name NOT NULL DEFAULT session_user,
    event             text NOT NULL CHECK (event IN ('quarantined', 'released', 'deleted')),
    source            text,
    institution_code  text,
    local_patient_id  text,
    reason            text NOT NULL
);
COMMENT ON TABLE intake_log IS 'What happened to each record held at intake; a deleted record leaves only this entry. Append-only.';

DO $consent$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['institution', 'notification', 'opt_out', 'opt_out_withdrawal', 'intake_log'] LOOP
        EXECUTE pg_catalog.format(
            'CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW EXECUTE FUNCTION ledger_append_only()',
            t || '_append_only', t);
        EXECUTE pg_catalog.format(
            'CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()',
            t || '_no_truncate', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['institution', 'notification', 'opt_out', 'opt_out_withdrawal', 'intake_quarantine',
                             'intake_log'] LOOP
        PERFORM pg_catalog.pg_extension_config_dump(t, '');
        EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %I FROM PUBLIC', t);
        -- The operator records through the functions below, which run as the
        -- caller: it may read and append, never change or remove.
        EXECUTE pg_catalog.format('GRANT SELECT, INSERT ON TABLE %I TO medanon_operator', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['notification_notification_id_seq', 'opt_out_opt_out_id_seq',
                             'opt_out_withdrawal_withdrawal_id_seq', 'intake_quarantine_intake_id_seq',
                             'intake_log_entry_id_seq'] LOOP
        PERFORM pg_catalog.pg_extension_config_dump(t, '');
    END LOOP;
END
$consent$;
-- Released and deleted records leave the intake quarantine.
GRANT DELETE ON TABLE intake_quarantine TO medanon_operator;
