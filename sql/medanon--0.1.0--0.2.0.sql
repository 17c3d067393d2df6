-- medanon 0.1.0 → 0.2.0, run by ALTER EXTENSION medanon UPDATE (as the
-- extension script: the objects it creates belong to the extension, and
-- search_path is the extension's schema, medanon).
--
-- Before: install the 0.2.0 package (its medanon.so replaces 0.1.0's, so every
-- new session runs 0.2.0's C code), then in each database, as a superuser, at
-- READ COMMITTED (the default):
--     ALTER EXTENSION medanon UPDATE;
-- The catalog afterwards is that of a fresh 0.2.0 install (scripts/upgrade-test.sh
-- compares the two, object by object; only the order of columns that 0.2.0 added
-- in the middle of a table differs: ALTER TABLE appends them).
--
-- One section per file of sql/, in the order the extension_sql_file! requires of
-- src/lib.rs load them (bootstrap first, finalize last), plus one for the
-- functions pgrx writes from #[pg_extern], where the generated install script
-- has them. A change to a file of sql/ goes into its section (until 0.2.0 is
-- released; after that, into the next upgrade script), and the test
-- (scripts/upgrade-test.sh) shows, as a diff of the two catalogs, what a section
-- misses. The last section, "Data", changes what 0.1.0
-- stored to what 0.2.0 expects, and records every change to a contract in the
-- provision ledger (event 'upgrade'):
--   * keys, links, the consent ledgers, sources and the provision ledger stay as
--     they are; 0.2.0's new columns of them start empty (NULL, or their default);
--   * the provision ledger is hash-chained from here on; the entries 0.1.0 wrote
--     are chained as they stand now, in entry_id order;
--   * contracts: 0.1.0's person tokens were uuids (HMAC under the contract's
--     domain); 0.2.0's are random bigints. Every person of a published contract
--     gets a new token (unique in the contract), and the contract is rebuilt by
--     0.2.0's refresh, which keeps the stored daily date offsets; see "Data".

--------------------------------------------------------------------------------
-- bootstrap.sql: the keyring
--------------------------------------------------------------------------------
-- The key check value, written where a key is made. The active keys get theirs
-- in "Data" below (key_check_values() computes them once it exists).
ALTER TABLE keyring ADD COLUMN check_value bytea;

--------------------------------------------------------------------------------
-- citus.sql (new in 0.2.0): the key conduit to Citus workers, as in a fresh install
--------------------------------------------------------------------------------
-- medanon on Citus: the conduit that copies the coordinator's keys to every worker
-- in the coordinator's distributed transaction (src/citus.rs). Created on every
-- node, Citus or not; without Citus it stays an empty local table.
--
-- citus_sync_keys() (and rotate_key() on a coordinator) makes it a reference table
-- and inserts the coordinator's keyring into it with INSERT ... SELECT, which Citus
-- ships to every worker by COPY inside its two-phase commit (so no key is ever in a
-- statement's text, a log line or pg_stat_activity). On each worker the BEFORE
-- INSERT trigger stores the row in that node's own keyring and returns NULL: the
-- conduit itself stays empty everywhere.
CREATE TABLE keyring_transfer (
    key_id      integer NOT NULL,
    purpose     text NOT NULL,
    material    bytea NOT NULL,
    active      boolean NOT NULL,
    created_at  timestamptz NOT NULL,
    retired_at  timestamptz,
    check_value bytea
);
COMMENT ON TABLE keyring_transfer IS 'medanon on Citus: carries the coordinator''s keys to the workers; always empty. Never write it by hand.';
REVOKE ALL ON TABLE keyring_transfer FROM PUBLIC;

CREATE FUNCTION _keyring_transfer_apply() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $apply$
BEGIN
    PERFORM medanon._keyring_apply(NEW.key_id, NEW.purpose, NEW.material, NEW.active,
                                   NEW.created_at, NEW.retired_at, NEW.check_value);
    RETURN NULL;
END
$apply$;
REVOKE ALL ON FUNCTION _keyring_transfer_apply() FROM PUBLIC;

CREATE TRIGGER keyring_transfer_apply
    BEFORE INSERT ON keyring_transfer
    FOR EACH ROW EXECUTE FUNCTION _keyring_transfer_apply();

--------------------------------------------------------------------------------
-- link.sql: linking v2 (kanji names, one-edit kana, digests, review)
--------------------------------------------------------------------------------
-- New keyed columns of a record. NULL for records linked by 0.1.0: link_patients
-- keys a record again when its digest is NULL (sql/link.sql), so the first 0.2.0
-- batch that sends a record fills them.
ALTER TABLE person_link
    ADD COLUMN kanji uuid,
    ADD COLUMN name_edits bytea,
    ADD COLUMN digest uuid;

-- A conflict is pending until review_link (or the twin rule) decides it; the
-- conflicts 0.1.0 found are pending.
ALTER TABLE link_conflict
    ADD COLUMN status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'same', 'different'));
COMMENT ON TABLE link_conflict IS 'Records that share ID1 (one insurance card) but whose names contradict or cannot be compared (a name missing): not merged. Pending ones wait for review_link.';

-- The candidate's score and kanji verdict; NULL for 0.1.0's candidates
-- (link_report ranks them by their Dice similarity, coalesce(score, dice)).
ALTER TABLE link_candidates
    ADD COLUMN score double precision,
    ADD COLUMN kanji text CHECK (kanji IN ('same', 'different', 'unknown')),
    ADD COLUMN one_edit boolean;

ALTER TABLE link_batch ADD COLUMN twins bigint NOT NULL DEFAULT 0;

-- Review (review_link, split_person): every decision, append-only, with who and why.
CREATE TABLE link_review (
    review_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reviewed_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- The reviewer as named by the caller, and the database role that called.
    reviewer          text NOT NULL CHECK (pg_catalog.btrim(reviewer) <> ''),
    reviewed_by       name NOT NULL DEFAULT session_user,
    reason            text NOT NULL CHECK (pg_catalog.btrim(reason) <> ''),
    action            text NOT NULL CHECK (action IN ('same', 'different', 'split')),
    candidate_id      bigint,
    conflict_id       bigint,
    -- same: the persons merged (from, into); split: the person split and the new one.
    person_id         bigint,
    other_person_id   bigint,
    -- split: the records moved, as [[institution_code, local_patient_id], ...].
    records           jsonb
);
COMMENT ON TABLE link_review IS 'Every review decision (same, different, split): who, why, on what. Append-only.';

CREATE FUNCTION _link_review_append_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RAISE EXCEPTION 'medanon review log % is append-only', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'a decision is corrected by a new decision (review_link, split_person), never by editing the log';
END
$fn$;
REVOKE ALL ON FUNCTION _link_review_append_only() FROM PUBLIC;
COMMENT ON FUNCTION _link_review_append_only() IS 'Internal trigger: refuses UPDATE, DELETE and TRUNCATE on the link review log.';
CREATE TRIGGER link_review_append_only BEFORE UPDATE OR DELETE ON link_review
    FOR EACH ROW EXECUTE FUNCTION _link_review_append_only();
CREATE TRIGGER link_review_no_truncate BEFORE TRUNCATE ON link_review
    FOR EACH STATEMENT EXECUTE FUNCTION _link_review_append_only();

-- Pairs of records a review decided are different persons (review_link
-- 'different', split_person): link_patients never joins their persons. By record,
-- not by person id, so a decision follows the records through later merges.
CREATE TABLE link_apart (
    institution_code        text NOT NULL,
    local_patient_id        text NOT NULL,
    other_institution_code  text NOT NULL,
    other_local_patient_id  text NOT NULL,
    review_id               bigint NOT NULL,
    PRIMARY KEY (institution_code, local_patient_id, other_institution_code, other_local_patient_id)
);
COMMENT ON TABLE link_apart IS 'Records decided by review to be different persons; linking never merges their persons.';

-- The new tables in pg_dump, and read by the operator, as the others.
DO $dump$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['link_review', 'link_apart'] LOOP
        PERFORM pg_catalog.pg_extension_config_dump(t, '');
        EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %I FROM PUBLIC', t);
        EXECUTE pg_catalog.format('GRANT SELECT ON TABLE %I TO medanon_operator', t);
    END LOOP;
    PERFORM pg_catalog.pg_extension_config_dump('link_review_review_id_seq', '');
END
$dump$;
-- Reviewers decide through review_link, which logs who and why; 0.1.0 let the
-- operator update a candidate's status by hand.
REVOKE UPDATE (status) ON TABLE link_candidates FROM medanon_operator;

-- link_report moved here from finalize.sql, and reports reviews, twins and what
-- waits for a reviewer.
CREATE OR REPLACE FUNCTION link_report() RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH per_person AS (SELECT person_id, count(*) AS records FROM medanon.person_link GROUP BY person_id),
    cand AS (SELECT c.candidate_id, c.institution_code, c.local_patient_id, c.other_institution_code, c.other_local_patient_id,
                    c.dice, coalesce(c.score, c.dice) AS score, c.kanji, c.one_edit, a.person_id AS person, b.person_id AS other_person
               FROM medanon.link_candidates c
               JOIN medanon.person_link a ON (a.institution_code, a.local_patient_id) = (c.institution_code, c.local_patient_id)
               JOIN medanon.person_link b ON (b.institution_code, b.local_patient_id) = (c.other_institution_code, c.other_local_patient_id)
              WHERE c.status = 'pending' AND a.person_id <> b.person_id),
    conf AS (SELECT c.conflict_id, c.institution_code, c.local_patient_id, c.other_institution_code, c.other_local_patient_id,
                    c.reason, a.person_id AS person, b.person_id AS other_person
               FROM medanon.link_conflict c
               JOIN medanon.person_link a ON (a.institution_code, a.local_patient_id) = (c.institution_code, c.local_patient_id)
               JOIN medanon.person_link b ON (b.institution_code, b.local_patient_id) = (c.other_institution_code, c.other_local_patient_id)
              WHERE c.status = 'pending' AND a.person_id <> b.person_id)
    SELECT jsonb_build_object(
        'persons', (SELECT count(*) FROM per_person),
        'records', (SELECT coalesce(sum(records), 0) FROM per_person),
        'records_per_person', jsonb_build_object(
            'mean', (SELECT round(avg(records), 3) FROM per_person),
            'max', (SELECT max(records) FROM per_person),
            'histogram', (SELECT coalesce(jsonb_object_agg(records::text, persons ORDER BY records), '{}')
                            FROM (SELECT records, count(*) AS persons FROM per_person GROUP BY records) h)),
        'merges', (SELECT count(*) FROM medanon.person_merge_log),
        'conflicts', (SELECT count(*) FROM medanon.link_conflict),
        'conflicts_pending', (SELECT count(*) FROM conf),
        'twins', (SELECT count(*) FROM medanon.link_conflict WHERE status = 'different' AND reason LIKE '%twins'),
        'quarantine', (SELECT coalesce(jsonb_object_agg(reason, n ORDER BY reason), '{}')
                         FROM (SELECT reason, count(*) AS n FROM medanon.link_quarantine GROUP BY reason) q),
        'candidates_pending', (SELECT count(*) FROM cand),
        'reviews', (SELECT coalesce(jsonb_object_agg(action, n ORDER BY action), '{}')
                      FROM (SELECT action, count(*) AS n FROM medanon.link_review GROUP BY action) r),
        'kept_apart', (SELECT count(*) FROM medanon.link_apart),
        -- The first 100 of each, best first, with what review_link needs.
        'pending', jsonb_build_object(
            'candidates', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                'kind', 'candidate', 'id', candidate_id,
                                'record', jsonb_build_array(institution_code, local_patient_id),
                                'other_record', jsonb_build_array(other_institution_code, other_local_patient_id),
                                'persons', jsonb_build_array(person, other_person),
                                'score', round(score::numeric, 3), 'dice', round(dice::numeric, 3),
                                'kanji', kanji, 'one_edit', one_edit) ORDER BY score DESC, candidate_id), '[]')
                             FROM (SELECT * FROM cand ORDER BY score DESC, candidate_id LIMIT 100) c),
            'conflicts', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                'kind', 'conflict', 'id', conflict_id,
                                'record', jsonb_build_array(institution_code, local_patient_id),
                                'other_record', jsonb_build_array(other_institution_code, other_local_patient_id),
                                'persons', jsonb_build_array(person, other_person),
                                'reason', reason) ORDER BY conflict_id), '[]')
                            FROM (SELECT * FROM conf ORDER BY conflict_id LIMIT 100) c)),
        'batches', (SELECT count(*) FROM medanon.link_batch));
END;

--------------------------------------------------------------------------------
-- consent.sql: the consent ledgers' CHECK constraints get names
--------------------------------------------------------------------------------
-- 0.2.0 names them, because the functions of consent_api.sql explain a broken
-- constraint by its name (_ledger_refusal). Same rules; the relationship rule is
-- written so that an unknown requester breaks opt_out_requested_by instead.
-- (ALTER TABLE fires no trigger: the ledgers stay append-only.)
ALTER TABLE notification RENAME CONSTRAINT notification_method_check TO notification_method;
ALTER TABLE opt_out RENAME CONSTRAINT opt_out_requested_by_check TO opt_out_requested_by;
ALTER TABLE opt_out RENAME CONSTRAINT opt_out_scope_check TO opt_out_scope;
ALTER TABLE opt_out DROP CONSTRAINT opt_out_check;
ALTER TABLE opt_out ADD CONSTRAINT opt_out_relationship CHECK (
        (requested_by <> 'self' OR relationship IS NULL)
        AND (requested_by <> 'bereaved_family'
             OR coalesce(relationship IN ('spouse', 'child', 'parent', 'grandchild', 'grandparent', 'sibling'), false)));
-- The notifications whose waiting period ended since a contract's last refresh.
CREATE INDEX notification_time ON notification (notified_at);

--------------------------------------------------------------------------------
-- contract.sql: statistics contracts, schema names, the hash-chained ledger
--------------------------------------------------------------------------------
ALTER TABLE contract DROP CONSTRAINT contract_kind_check;
ALTER TABLE contract ADD CONSTRAINT contract_kind_check CHECK (kind IN ('anonymized', 'pseudonymized', 'statistics'));

-- The schemas of a contract's views and data tables, as 0.1.0 named them (and as
-- 0.2.0's planner still does: medanon_core::plan::schema_of, data_schema_of).
ALTER TABLE contract ADD COLUMN view_schema name, ADD COLUMN data_schema name;
UPDATE contract SET view_schema = ('contract_' || contract_id)::name, data_schema = ('contract_' || contract_id || '_data')::name;
ALTER TABLE contract ALTER COLUMN view_schema SET NOT NULL, ALTER COLUMN data_schema SET NOT NULL;

-- The snapshot the last publish or refresh started from, the cluster it was
-- taken on and the fingerprint of its plan (medanon_core::refresh): NULL for
-- 0.1.0's contracts, so their first refresh after the upgrade is a full one
-- (the one in "Data" below).
ALTER TABLE contract ADD COLUMN refresh_snapshot pg_snapshot, ADD COLUMN refresh_system text, ADD COLUMN refresh_fingerprint text;

-- New events: safe_counts (a statistics contract's counts) and upgrade (this script).
ALTER TABLE provision_ledger DROP CONSTRAINT provision_ledger_event_check;
ALTER TABLE provision_ledger ADD CONSTRAINT provision_ledger_event_check
    CHECK (event IN ('create', 'publish', 'refresh', 'snapshot', 'revoke', 'expire', 'key_rotation', 'safe_counts', 'upgrade'));
COMMENT ON TABLE provision_ledger IS 'The provision record (提供記録): every create, publish, refresh, snapshot, revoke, expiry, key rotation and safe_counts call of a statistics contract. Append-only and hash-chained (verify_ledger).';

-- Numbers every safe_counts call of a statistics contract, in its ledger entry.
-- A sequence is not transactional: a call whose transaction rolls back (its
-- counts were seen, its entry is gone) leaves a gap in the numbers, which an
-- auditor sees; PostgreSQL has no autonomous transaction to keep the entry.
CREATE SEQUENCE safe_counts_call;
COMMENT ON SEQUENCE safe_counts_call IS 'Numbers safe_counts calls of statistics contracts; a gap in the ledger''s call numbers is a call whose transaction rolled back.';

-- The head of the provision ledger's hash chain: how many entries, the last one
-- and its hash. Every new entry updates this one row, so concurrent writers chain
-- one after the other (at READ COMMITTED the second waits and reads the first's
-- head; at REPEATABLE READ it gets a serialization failure and retries), and a
-- deleted last entry is caught too.
CREATE TABLE provision_ledger_head (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    entries     bigint NOT NULL,
    last_entry  bigint,
    last_hash   text NOT NULL
);
COMMENT ON TABLE provision_ledger_head IS 'Head of the provision ledger''s hash chain: entries, the last entry and its hash.';

-- The hash chain. The entries 0.1.0 wrote are chained here, in entry_id order,
-- as the trigger below chains a new entry (the same formula, with TimeZone UTC),
-- and the head is set to the last of them: from now on verify_ledger() verifies
-- them with the rest, so a change made to one of them after the upgrade is
-- caught. (What happened to them before the upgrade, no chain can tell; the
-- 'upgrade' entry of "Data" records how many there were.) The append-only
-- trigger is off only for this UPDATE of the new columns.
ALTER TABLE provision_ledger
    ADD COLUMN chain_seq bigint,
    ADD COLUMN prev_hash text,
    ADD COLUMN entry_hash text;
ALTER TABLE provision_ledger DISABLE TRIGGER provision_ledger_append_only;
DO $chain$
DECLARE
    zone constant text := pg_catalog.current_setting('TimeZone');
    e record;
    seq bigint := 0;
    prev text := pg_catalog.repeat('0', 64);
    last bigint;
BEGIN
    PERFORM pg_catalog.set_config('TimeZone', 'UTC', true);
    FOR e IN SELECT l.entry_id FROM medanon.provision_ledger l ORDER BY l.entry_id LOOP
        seq := seq + 1;
        UPDATE medanon.provision_ledger l SET chain_seq = seq, prev_hash = prev WHERE l.entry_id = e.entry_id;
        UPDATE medanon.provision_ledger l
           SET entry_hash = pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
                   l.prev_hash || (pg_catalog.to_jsonb(l) - 'prev_hash' - 'entry_hash')::text, 'UTF8')), 'hex')
         WHERE l.entry_id = e.entry_id
        RETURNING l.entry_hash INTO prev;
        last := e.entry_id;
    END LOOP;
    INSERT INTO medanon.provision_ledger_head (entries, last_entry, last_hash) VALUES (seq, last, prev);
    PERFORM pg_catalog.set_config('TimeZone', zone, true);
END
$chain$;
ALTER TABLE provision_ledger ENABLE TRIGGER provision_ledger_append_only;
ALTER TABLE provision_ledger
    ALTER COLUMN chain_seq SET NOT NULL,
    ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN entry_hash SET NOT NULL,
    ADD CONSTRAINT provision_ledger_entry_hash_key UNIQUE (entry_hash);

-- Chains each new entry: entry_hash = hex SHA-256 of the UTF-8 text
--   prev_hash || (to_jsonb(entry) - 'prev_hash' - 'entry_hash')::text
-- computed with TimeZone UTC (so timestamps read the same for everyone); the
-- first entry's prev_hash is 64 zeros. jsonb's text form is canonical (keys in a
-- fixed order), so an auditor recomputes it in SQL (README, "The provision ledger").
-- An entry that arrives with its chain (pg_restore copying a dumped ledger, whose
-- head row is restored beside it) is kept as it is; verify_ledger checks it.
-- medanon's functions never set these columns, and no one else may insert.
CREATE FUNCTION _ledger_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
AS $fn$
BEGIN
    IF NEW.entry_hash IS NOT NULL THEN
        RETURN NEW;
    END IF;
    INSERT INTO medanon.provision_ledger_head (entries, last_hash) VALUES (0, pg_catalog.repeat('0', 64))
        ON CONFLICT (singleton) DO NOTHING;
    UPDATE medanon.provision_ledger_head h SET entries = h.entries + 1, last_entry = NEW.entry_id
    RETURNING h.entries, h.last_hash INTO NEW.chain_seq, NEW.prev_hash;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the provision ledger has no chain head' USING ERRCODE = 'data_corrupted';
    END IF;
    NEW.entry_hash := pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
        NEW.prev_hash || (pg_catalog.to_jsonb(NEW) - 'prev_hash' - 'entry_hash')::text, 'UTF8')), 'hex');
    UPDATE medanon.provision_ledger_head SET last_hash = NEW.entry_hash;
    RETURN NEW;
END
$fn$;
REVOKE ALL ON FUNCTION _ledger_chain() FROM PUBLIC;
CREATE TRIGGER provision_ledger_chain BEFORE INSERT ON provision_ledger
    FOR EACH ROW EXECUTE FUNCTION _ledger_chain();
CREATE TRIGGER provision_ledger_head_fixed BEFORE DELETE OR TRUNCATE ON provision_ledger_head
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

-- The entry_id of the first provision-ledger entry whose chain does not verify
-- (changed, deleted, inserted out of band, or out of order), or NULL when all do.
-- A deleted last entry is reported as the id the head still names.
CREATE FUNCTION verify_ledger() RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
AS $fn$
DECLARE
    e record;
    prev text := pg_catalog.repeat('0', 64);
    seq bigint := 0;
    h medanon.provision_ledger_head;
BEGIN
    FOR e IN SELECT l.entry_id, l.chain_seq, l.prev_hash, l.entry_hash,
                    pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
                        l.prev_hash || (pg_catalog.to_jsonb(l) - 'prev_hash' - 'entry_hash')::text, 'UTF8')), 'hex') AS computed
               FROM medanon.provision_ledger l ORDER BY l.chain_seq, l.entry_id LOOP
        seq := seq + 1;
        IF e.chain_seq <> seq OR e.prev_hash <> prev OR e.entry_hash <> e.computed THEN
            RETURN e.entry_id;
        END IF;
        prev := e.entry_hash;
    END LOOP;
    SELECT * INTO h FROM medanon.provision_ledger_head;
    IF coalesce(h.entries, 0) <> seq OR coalesce(h.last_hash, pg_catalog.repeat('0', 64)) <> prev THEN
        RETURN coalesce(h.last_entry, 0);
    END IF;
    RETURN NULL;
END
$fn$;

DO $contract$
BEGIN
    PERFORM pg_catalog.pg_extension_config_dump('provision_ledger_head', '');
    REVOKE ALL ON TABLE provision_ledger_head FROM PUBLIC;
    GRANT SELECT ON TABLE provision_ledger_head TO medanon_operator;
    PERFORM pg_catalog.pg_extension_config_dump('safe_counts_call', '');
    REVOKE ALL ON SEQUENCE safe_counts_call FROM PUBLIC;
    GRANT SELECT ON SEQUENCE safe_counts_call TO medanon_operator, medanon_auditor;
END
$contract$;
-- Contracts and the provision ledger are written by medanon's own functions only
-- (as the extension owner); 0.1.0 let an operator login insert into both and set
-- a contract's status.
REVOKE INSERT ON contract, provision_ledger FROM medanon_operator;
REVOKE UPDATE (status) ON contract FROM medanon_operator;
GRANT SELECT ON provision_ledger_head TO medanon_auditor;

--------------------------------------------------------------------------------
-- contract_api.sql: unchanged.
--------------------------------------------------------------------------------

--------------------------------------------------------------------------------
-- The functions pgrx writes from #[pg_extern] (the 0.2.0 medanon.so)
--------------------------------------------------------------------------------
-- refresh_contract takes full (default false: incremental where it can be).
DROP FUNCTION refresh_contract(text);
CREATE FUNCTION "refresh_contract"(
	"id" TEXT, /* &str */
	"full" bool DEFAULT false /* bool */
) RETURNS jsonb /* pgrx::JsonB */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'refresh_contract_wrapper';

-- Gone from 0.2.0's medanon.so: the Dice similarity moved into link_patients.
-- (Its symbol no longer exists; a call would fail.)
DROP FUNCTION _dice(bytea, bytea);

-- The risk functions are no longer STRICT: a NULL argument is an error (22004),
-- not a NULL that reads as "no risk".
CREATE OR REPLACE FUNCTION "_suggest_generalization"(
	"rel" regclass, /* Option < PgRelation > */
	"spec" TEXT, /* Option < & str > */
	"k" INT, /* Option < i32 > */
	"max_suppression" double precision /* Option < f64 > */
) RETURNS jsonb /* pgrx :: JsonB */
STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_suggest_generalization_wrapper';

CREATE OR REPLACE FUNCTION "k_report"(
	"rel" regclass, /* Option < PgRelation > */
	"quasi_identifiers" TEXT[], /* :: std :: option :: Option < Vec < Option < String > > > */
	"person_column" TEXT, /* Option < & str > */
	"k" INT /* Option < i32 > */
) RETURNS TABLE (
	"class" jsonb,  /* pgrx :: JsonB */
	"persons" bigint  /* i64 */
)
STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'k_report_wrapper';

CREATE OR REPLACE FUNCTION "l_diversity"(
	"rel" regclass, /* Option < PgRelation > */
	"quasi_identifiers" TEXT[], /* :: std :: option :: Option < Vec < Option < String > > > */
	"sensitive" TEXT, /* Option < & str > */
	"person_column" TEXT /* Option < & str > */
) RETURNS bigint /* Option < i64 > */
STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'l_diversity_wrapper';

CREATE OR REPLACE FUNCTION "risk_profile"(
	"rel" regclass, /* Option < PgRelation > */
	"quasi_identifiers" TEXT[], /* :: std :: option :: Option < Vec < Option < String > > > */
	"person_column" TEXT, /* Option < & str > */
	"k" INT /* Option < i32 > */
) RETURNS jsonb /* pgrx :: JsonB */
STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'risk_profile_wrapper';

-- safe_counts writes the ledger for a statistics contract: VOLATILE, PARALLEL UNSAFE.
CREATE OR REPLACE FUNCTION "safe_counts"(
	"contract_id" TEXT, /* & str */
	"view_name" TEXT, /* & str */
	"group_by" TEXT[], /* Vec < Option < String > > */
	"min_cell" INT DEFAULT 10 /* i32 */
) RETURNS TABLE (
	"cell" jsonb,  /* pgrx :: JsonB */
	"persons" bigint,  /* Option < i64 > */
	"suppression" TEXT  /* Option < String > */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'safe_counts_wrapper';

-- New in 0.2.0.
CREATE  FUNCTION "_contract_person_states"() RETURNS jsonb /* pgrx :: JsonB */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_contract_person_states_wrapper';

CREATE  FUNCTION "contract_today"() RETURNS date /* Date */
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'contract_today_wrapper';

CREATE  FUNCTION "_new_token"() RETURNS bigint /* i64 */
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_new_token_wrapper';

CREATE  FUNCTION "_shift_candidates"(
	"real_dates" date[], /* Array < '_, Date > */
	"date_offset" INT, /* i32 */
	"window_start" date, /* Date */
	"window_end" date, /* Date */
	"max_shift_days" INT DEFAULT pg_catalog.current_setting('medanon.max_shift_days')::pg_catalog.int4 /* i32 */
) RETURNS INT /* i32 */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_shift_candidates_wrapper';

CREATE  FUNCTION "_icd10_parent"(
	"label" TEXT, /* & str */
	"level" INT /* i32 */
) RETURNS TEXT /* Option < String > */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_icd10_parent_wrapper';

CREATE  FUNCTION "icd10_category"(
	"code" TEXT /* & str */
) RETURNS TEXT /* Option < String > */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'icd10_category_wrapper';

CREATE  FUNCTION "icd10_chapter"(
	"code" TEXT /* & str */
) RETURNS TEXT /* Option < String > */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'icd10_chapter_wrapper';

CREATE  FUNCTION "_link_kanji"(
	"name_kanji" TEXT, /* Option < & str > */
	"birth_date" TEXT, /* Option < & str > */
	"sex" TEXT /* Option < & str > */
) RETURNS uuid /* Option < Uuid > */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_link_kanji_wrapper';

CREATE  FUNCTION "_link_edits"(
	"name_kana" TEXT, /* Option < & str > */
	"birth_date" TEXT, /* Option < & str > */
	"sex" TEXT /* Option < & str > */
) RETURNS bytea /* :: std :: option :: Option < Vec < u8 > > */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_link_edits_wrapper';

CREATE  FUNCTION "_link_digest"(
	"institution_code" TEXT, /* Option < & str > */
	"local_patient_id" TEXT, /* Option < & str > */
	"name_kana" TEXT, /* Option < & str > */
	"name_kanji" TEXT, /* Option < & str > */
	"birth_date" TEXT, /* Option < & str > */
	"sex" TEXT, /* Option < & str > */
	"insurer_number" TEXT, /* Option < & str > */
	"insured_symbol" TEXT, /* Option < & str > */
	"insured_number" TEXT /* Option < & str > */
) RETURNS uuid /* Uuid */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_link_digest_wrapper';

CREATE  FUNCTION "review_link"(
	"kind" TEXT, /* Option < & str > */
	"id" bigint, /* Option < i64 > */
	"decision" TEXT, /* Option < & str > */
	"reviewer" TEXT, /* Option < & str > */
	"reason" TEXT /* Option < & str > */
) RETURNS jsonb /* JsonB */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'review_link_wrapper';

CREATE  FUNCTION "split_person"(
	"person_id" bigint, /* Option < i64 > */
	"institution_codes" TEXT[], /* :: std :: option :: Option < Vec < Option < String > > > */
	"local_patient_ids" TEXT[], /* :: std :: option :: Option < Vec < Option < String > > > */
	"reviewer" TEXT, /* Option < & str > */
	"reason" TEXT /* Option < & str > */
) RETURNS bigint /* i64 */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'split_person_wrapper';

CREATE  FUNCTION "citus_sync_keys"() RETURNS bigint /* i64 */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'citus_sync_keys_wrapper';

CREATE  FUNCTION "key_check_values"() RETURNS TABLE (
	"purpose" TEXT,  /* String */
	"key_id" INT,  /* i32 */
	"check_value" TEXT  /* String */
)
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'key_check_values_wrapper';

CREATE  FUNCTION "_keyring_apply"(
	"key_id" INT, /* i32 */
	"purpose" TEXT, /* & str */
	"material" bytea, /* & [u8] */
	"active" bool, /* bool */
	"created_at" timestamp with time zone, /* pgrx :: datum :: TimestampWithTimeZone */
	"retired_at" timestamp with time zone, /* Option < pgrx :: datum :: TimestampWithTimeZone > */
	"check_value" bytea /* Option < & [u8] > */
) RETURNS bool /* bool */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_keyring_apply_wrapper';

--------------------------------------------------------------------------------
-- consent_api.sql: the consent rule written once (notified_records,
-- refused_records), refusals explained from the named constraints
--------------------------------------------------------------------------------
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

-- The constraints are the rule; these explain a broken one (_ledger_refusal).
CREATE OR REPLACE FUNCTION record_notification(institution_code text, local_patient_id text,
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

CREATE OR REPLACE FUNCTION opt_out(institution_code text, local_patient_id text, requested_by text, relationship text,
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

-- The views of the consent rule: each clause once, read by eligible_records,
-- check_intake and release_quarantine.
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

CREATE OR REPLACE VIEW eligible_records AS
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

-- Intake: hold back staging records that may not be sent yet, or no longer.
CREATE OR REPLACE FUNCTION check_intake(staging regclass) RETURNS jsonb
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

CREATE OR REPLACE FUNCTION release_quarantine() RETURNS jsonb
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

REVOKE ALL ON notified_records, refused_records FROM PUBLIC;
GRANT SELECT ON notified_records, refused_records TO medanon_operator;
COMMENT ON FUNCTION _ledger_refusal(text, text, text) IS
    'Internal: the message and hint, for a person, of a broken CHECK constraint of a consent ledger (the constraints are the rule).';

--------------------------------------------------------------------------------
-- contract_live.sql: the person map, rare values, the lock protocol
--------------------------------------------------------------------------------
-- Tokens: 0.1.0 kept a uuid per person and contract (128 bits of HMAC under the
-- contract's domain); 0.2.0 draws a random bigint (medanon_core::view::NEW_TOKEN,
-- the same expression), kept for the life of the contract. Every person of a
-- published contract gets a new token here, drawn again until it is unique in
-- its contract; "Data" rebuilds the contracts' data tables and views with them
-- and records it in the ledger. The date offsets stay as they are.
ALTER TABLE contract_person ALTER COLUMN token TYPE bigint
    USING (('x' || left(replace(pg_catalog.gen_random_uuid()::text, '-', ''), 16))::bit(64)::bigint
           # ('x' || right(replace(pg_catalog.gen_random_uuid()::text, '-', ''), 16))::bit(64)::bigint);
DO $unique$
BEGIN
    LOOP
        UPDATE medanon.contract_person m
           SET token = (('x' || left(replace(pg_catalog.gen_random_uuid()::text, '-', ''), 16))::bit(64)::bigint
                        # ('x' || right(replace(pg_catalog.gen_random_uuid()::text, '-', ''), 16))::bit(64)::bigint)
         WHERE (m.contract_id, m.token) IN (SELECT d.contract_id, d.token FROM medanon.contract_person d
                                             GROUP BY d.contract_id, d.token HAVING count(*) > 1);
        EXIT WHEN NOT FOUND;
    END LOOP;
END
$unique$;
-- A token names one person of a contract.
CREATE UNIQUE INDEX contract_person_token ON contract_person (contract_id, token);

-- Two new states, changed and calendar; the names are the planner's, read through
-- _contract_person_states() (created with the pgrx functions above).
ALTER TABLE contract_person DROP CONSTRAINT contract_person_state_check;
ALTER TABLE contract_person ADD CONSTRAINT contract_person_state_check
    CHECK (state IN (_contract_person_states() ->> 'visible', _contract_person_states() ->> 'k',
                     _contract_person_states() ->> 'consent', _contract_person_states() ->> 'unlinked',
                     _contract_person_states() ->> 'changed', _contract_person_states() ->> 'calendar'));

-- The class at first exposure and the first dates: NULL here; the refresh in
-- "Data" fixes the first class of every person it shows (as a publish would).
ALTER TABLE contract_person ADD COLUMN first_class uuid, ADD COLUMN first_dates jsonb;

-- The columns of a contract whose rare values are replaced (特異な記述): a value
-- held by fewer than min_persons of the contract's visible persons is shown as
-- its first ancestor in the hierarchy that enough persons hold, or NULL.
CREATE TABLE contract_column (
    contract_id      text NOT NULL REFERENCES contract ON DELETE CASCADE,
    view_name        name NOT NULL,
    column_name      name NOT NULL,
    min_persons      integer NOT NULL CHECK (min_persons >= 2),
    -- 'icd10', or 'table:<schema.table>' (first column the value, each next the level up).
    hierarchy        text,
    -- Values replaced so far: at the last publish or refresh, and live since.
    values_replaced  integer NOT NULL DEFAULT 0,
    -- The data table's column that keeps a row's value before replacement where
    -- one was replaced (NULL elsewhere; never in the view): persons are counted
    -- by coalesce(raw_column, column_name).
    raw_column       name,
    PRIMARY KEY (contract_id, view_name, column_name)
);
COMMENT ON TABLE contract_column IS 'Columns of each contract whose rare values are replaced, with their min_persons and hierarchy.';

-- The values the views show of each such column, with the visible persons who
-- hold them (a lower bound: the consent triggers decrement it, and replace a
-- value in the same transaction once it falls below min_persons).
CREATE TABLE contract_value (
    contract_id  text NOT NULL,
    view_name    name NOT NULL,
    column_name  name NOT NULL,
    label        text NOT NULL,
    -- 0 a value as stored; n its n-th ancestor in the hierarchy.
    level        integer NOT NULL,
    persons      bigint NOT NULL,
    PRIMARY KEY (contract_id, view_name, column_name, label),
    FOREIGN KEY (contract_id, view_name, column_name) REFERENCES contract_column ON DELETE CASCADE
);
COMMENT ON TABLE contract_value IS 'Values shown by each rare-checked column of a contract, and the visible persons holding them.';

-- Every value of each such column before replacement, with the visible persons
-- who hold it: exact, since the consent triggers decrement it as they delete a
-- withheld person's rows. An incremental refresh counts from it.
CREATE TABLE contract_raw_value (
    contract_id  text NOT NULL,
    view_name    name NOT NULL,
    column_name  name NOT NULL,
    value        text NOT NULL,
    persons      bigint NOT NULL,
    PRIMARY KEY (contract_id, view_name, column_name, value),
    FOREIGN KEY (contract_id, view_name, column_name) REFERENCES contract_column ON DELETE CASCADE
);
COMMENT ON TABLE contract_raw_value IS 'Values of each rare-checked column of a contract before replacement, and the visible persons holding them.';

-- The study window of each shifted column of a contract (date_column: its number
-- across the contract's views; NULL: all of them together), against which the
-- calendar check counts a person's offsets: the span of the real dates shown,
-- widened at each refresh, never narrowed. Filled by the refresh in "Data".
CREATE TABLE contract_window (
    contract_id  text NOT NULL REFERENCES contract ON DELETE CASCADE,
    date_column  integer,
    first_date   date NOT NULL,
    last_date    date NOT NULL,
    UNIQUE NULLS NOT DISTINCT (contract_id, date_column)
);
COMMENT ON TABLE contract_window IS 'The study window of each shifted column of a contract, widened by every refresh.';

-- The person and token columns of each view, and whether its source is one row
-- per person (for the class): set for 0.1.0's views here and in "Data".
ALTER TABLE contract_table
    ADD COLUMN person_column name,
    ADD COLUMN token_column name,
    ADD COLUMN person_level boolean NOT NULL DEFAULT false,
    -- The rows of the data table: set by publish and refresh, decremented by the
    -- consent triggers as they delete (for the ledger, without counting them).
    ADD COLUMN row_count bigint NOT NULL DEFAULT 0;
-- 0.1.0's data tables named the token column _token (medanon_core::plan::TOKEN_COLUMN),
-- and _contract_person_column (0.1.0, dropped below) names the view's person column.
UPDATE contract_table SET token_column = '_token', person_column = _contract_person_column(contract_id, view_name::text);
ALTER TABLE contract_table ALTER COLUMN token_column SET NOT NULL;
COMMENT ON TABLE contract_table IS 'The data table behind each view of a contract, and its person and token columns, as publish wrote them.';

DO $live$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['contract_column', 'contract_value', 'contract_raw_value', 'contract_window'] LOOP
        PERFORM pg_catalog.pg_extension_config_dump(t, '');
        EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %I FROM PUBLIC', t);
        EXECUTE pg_catalog.format('GRANT SELECT ON TABLE %I TO medanon_operator', t);
    END LOOP;
END
$live$;

-- safe_counts finds a view's person column in contract_table now.
DROP FUNCTION _contract_person_column(text, text);

-- Rare values (特異な記述): the hierarchy climb, at publish and live.
-- The parent of `label` (at `level`: 0 a value as stored) in a contract
-- column's hierarchy: 'icd10', or 'table:<name>', a table whose first column is
-- the value and each next column the next level up (read as the extension
-- owner, which publishes). NULL at the top, or for a label the hierarchy does
-- not know.
CREATE FUNCTION _hierarchy_parent(hierarchy text, label text, level integer) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    rel regclass;
    cols name[];
    parent text;
BEGIN
    IF hierarchy IS NULL OR label IS NULL THEN
        RETURN NULL;
    ELSIF hierarchy = 'icd10' THEN
        RETURN medanon._icd10_parent(label, level);
    ELSIF hierarchy LIKE 'table:%' THEN
        rel := pg_catalog.to_regclass(substr(hierarchy, 7));
        IF rel IS NULL THEN
            RAISE EXCEPTION 'hierarchy table "%" does not exist', substr(hierarchy, 7) USING ERRCODE = 'undefined_table';
        END IF;
        cols := ARRAY(SELECT a.attname FROM pg_catalog.pg_attribute a
                       WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum);
        IF level + 2 > pg_catalog.cardinality(cols) THEN
            RETURN NULL;
        END IF;
        EXECUTE format('SELECT %I::text FROM %s WHERE %I::text = $1 AND %I IS NOT NULL ORDER BY 1 LIMIT 1',
                       cols[level + 2], rel, cols[level + 1], cols[level + 2])
            INTO parent USING label;
        RETURN parent;
    END IF;
    RAISE EXCEPTION 'unknown hierarchy "%"', hierarchy USING ERRCODE = 'invalid_parameter_value';
END
$fn$;

-- Resolves the rare values of one rare column of a publish or refresh, in the
-- scratch tables of data schema `data_schema` (ContractPlan::prepare_sql):
-- _rare_counts holds every value with its visible persons; the holders of the
-- rare ones climb the hierarchy together, level by level: a label that is shown
-- already takes them, a label that min_persons of them hold is shown, the rest
-- climb on; what reaches the top is NULL. Writes _values (value -> what is
-- shown, NULL suppressed) and _shown (labels rare values climbed to).
CREATE FUNCTION _contract_rare_resolve(data_schema name, key integer, min_persons integer, hierarchy text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    counts constant text := format('%I._rare_counts', data_schema);
    holders constant text := format('%I._holders', data_schema);
    shown constant text := format('%I._shown', data_schema);
    vals constant text := format('%I._values', data_schema);
    steps integer := 0;
    left_over boolean;
BEGIN
    IF hierarchy IS NULL THEN
        EXECUTE format('INSERT INTO %s (key, v, shown) SELECT c.key, c.v, NULL FROM %s c WHERE c.key = $1 AND c.persons < $2', vals, counts)
            USING key, min_persons;
        RETURN;
    END IF;
    LOOP
        steps := steps + 1;
        EXECUTE format('UPDATE %s h SET label = medanon._hierarchy_parent($2, h.label, h.level), level = h.level + 1
                         WHERE h.key = $1 AND NOT h.done', holders) USING key, hierarchy;
        -- Suppressed at the top, or taken by a label shown already (as stored or climbed to).
        EXECUTE format('UPDATE %1$s h SET done = true WHERE h.key = $1 AND NOT h.done
                           AND (h.label IS NULL
                                OR EXISTS (SELECT FROM %2$s c WHERE c.key = $1 AND c.v = h.label AND c.persons >= $2)
                                OR EXISTS (SELECT FROM %3$s s WHERE s.key = $1 AND s.label = h.label))',
                       holders, counts, shown) USING key, min_persons;
        EXECUTE format('WITH g AS (SELECT h.label, max(h.level) AS level, count(DISTINCT h.person_id) AS n
                                     FROM %1$s h WHERE h.key = $1 AND NOT h.done
                                    GROUP BY h.label HAVING count(DISTINCT h.person_id) >= $2),
                             ins AS (INSERT INTO %2$s (key, label, level, persons) SELECT $1, g.label, g.level, g.n FROM g)
                        UPDATE %1$s h SET done = true FROM g WHERE h.key = $1 AND NOT h.done AND h.label = g.label',
                       holders, shown) USING key, min_persons;
        EXECUTE format('SELECT EXISTS (SELECT FROM %s h WHERE h.key = $1 AND NOT h.done)', holders) INTO left_over USING key;
        EXIT WHEN NOT left_over OR steps >= 32;
    END LOOP;
    EXECUTE format('INSERT INTO %1$s (key, v, shown)
                    SELECT DISTINCT ON (h.v) $1, h.v, CASE WHEN h.done THEN h.label END
                      FROM %2$s h WHERE h.key = $1 ORDER BY h.v', vals, holders) USING key;
END
$fn$;

-- A shown value of a rare-checked column fell below its min_persons (an opt-out,
-- a merge or a suppressed class took its holders): it is replaced in the data
-- table now, by its first ancestor that enough persons hold already, else NULL,
-- and the ancestor counts its new holders. Called by _contract_withhold only.
CREATE FUNCTION _contract_value_fall(id text, view_nm name, col name, fallen text, data_schema name, data_table name, token_column name)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    c medanon.contract_column;
    lvl integer;
    up text;
    target text;
    holders bigint[];
    joined bigint;
    keep text;
BEGIN
    SELECT * INTO c FROM medanon.contract_column cc WHERE cc.contract_id = id AND cc.view_name = view_nm AND cc.column_name = col;
    SELECT v.level INTO lvl FROM medanon.contract_value v
     WHERE v.contract_id = id AND v.view_name = view_nm AND v.column_name = col AND v.label = fallen;
    up := fallen;
    WHILE c.hierarchy IS NOT NULL AND target IS NULL LOOP
        up := medanon._hierarchy_parent(c.hierarchy, up, lvl);
        lvl := lvl + 1;
        EXIT WHEN up IS NULL OR lvl > 32;
        SELECT v.label INTO target FROM medanon.contract_value v
         WHERE v.contract_id = id AND v.view_name = view_nm AND v.column_name = col AND v.label = up AND v.persons >= c.min_persons;
    END LOOP;
    EXECUTE format('SELECT array_agg(DISTINCT %I) FROM %I.%I WHERE %I::text = $1', token_column, data_schema, data_table, col)
        INTO holders USING fallen;
    IF target IS NOT NULL AND holders IS NOT NULL THEN
        EXECUTE format('SELECT count(*) FROM unnest($1) h(token)
                         WHERE NOT EXISTS (SELECT FROM %I.%I d WHERE d.%I = h.token AND d.%I::text = $2)',
                       data_schema, data_table, token_column, col)
            INTO joined USING holders, target;
        UPDATE medanon.contract_value v SET persons = v.persons + joined
         WHERE v.contract_id = id AND v.view_name = view_nm AND v.column_name = col AND v.label = target;
    END IF;
    -- A hierarchy's labels are text, and only text columns take one; without a
    -- target the value is suppressed, whatever the column's type.
    -- The value before replacement is kept (c.raw_column), as publish keeps it.
    keep := CASE WHEN c.raw_column IS NOT NULL THEN format(', %1$I = coalesce(%1$I, %2$I)', c.raw_column, col) ELSE '' END;
    IF target IS NULL THEN
        EXECUTE format('UPDATE %I.%I SET %I = NULL%s WHERE %I = ANY ($1) AND %I::text = $2',
                       data_schema, data_table, col, keep, token_column, col)
            USING holders, fallen;
    ELSE
        EXECUTE format('UPDATE %I.%I SET %I = $3%s WHERE %I = ANY ($1) AND %I::text = $2',
                       data_schema, data_table, col, keep, token_column, col)
            USING holders, fallen, target;
    END IF;
    DELETE FROM medanon.contract_value v
     WHERE v.contract_id = id AND v.view_name = view_nm AND v.column_name = col AND v.label = fallen;
    UPDATE medanon.contract_column cc SET values_replaced = cc.values_replaced + 1
     WHERE cc.contract_id = id AND cc.view_name = view_nm AND cc.column_name = col;
END
$fn$;

-- Withholding also replaces the rare values its persons took below min_persons,
-- and reads the state names and token columns from where they are kept.
CREATE OR REPLACE FUNCTION _contract_withhold(persons bigint[]) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    withheld bigint;
    low_contracts text[];
    low_classes uuid[];
    gone_contracts text[];
    gone_tokens bigint[];
    more_contracts text[];
    more_tokens bigint[];
    t record;
    col record;
    fallen record;
    labels text[];
    counts bigint[];
    deleted bigint;
    st constant jsonb := medanon._contract_person_states();
BEGIN
    IF persons IS NULL OR pg_catalog.cardinality(persons) = 0 THEN
        RETURN 0;
    END IF;
    -- Wait for a publish or refresh in progress, and make the next statements see
    -- what it wrote (each statement here takes a new snapshot at READ COMMITTED;
    -- at REPEATABLE READ a refresh committed meanwhile is a serialization error).
    -- Publish, refresh, snapshots and revoke take these rows through
    -- _contract_lock, which never holds one while it waits for an analyst longer
    -- than its lock_timeout: this waits for their own work, not for analysts.
    PERFORM FROM medanon.contract c WHERE c.status IN ('created', 'published') ORDER BY c.contract_id FOR SHARE;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    WITH gone AS (
        UPDATE medanon.contract_person m
           SET state = CASE WHEN EXISTS (SELECT FROM medanon.person_link l WHERE l.person_id = m.person_id)
                            THEN st ->> 'consent' ELSE st ->> 'unlinked' END,
               changed_at = now()
         WHERE m.person_id = ANY (persons)
           AND m.state IN (st ->> 'visible', st ->> 'k')
           AND (NOT EXISTS (SELECT FROM medanon.person_link l WHERE l.person_id = m.person_id)
                OR EXISTS (SELECT FROM medanon.opt_outs_in_force o WHERE o.person_id = m.person_id))
        RETURNING m.contract_id, m.class_key, m.token
    ), shrunk AS (
        UPDATE medanon.contract_class cc
           SET persons = cc.persons - g.n
          FROM (SELECT gone.contract_id, gone.class_key, count(*) AS n FROM gone GROUP BY 1, 2) g
         WHERE cc.contract_id = g.contract_id AND cc.class_key = g.class_key
        RETURNING cc.contract_id, cc.class_key, cc.persons
    )
    SELECT (SELECT count(*) FROM gone), (SELECT array_agg(g.contract_id) FROM gone g), (SELECT array_agg(g.token) FROM gone g),
           array_agg(s.contract_id), array_agg(s.class_key)
      INTO withheld, gone_contracts, gone_tokens, low_contracts, low_classes
      FROM shrunk s JOIN medanon.contract c ON c.contract_id = s.contract_id
     WHERE s.persons < c.k;
    IF low_contracts IS NOT NULL THEN
        WITH suppressed AS (
            UPDATE medanon.contract_person m
               SET state = st ->> 'k', changed_at = now()
              FROM unnest(low_contracts, low_classes) AS low(contract_id, class_key)
             WHERE m.contract_id = low.contract_id AND m.class_key = low.class_key AND m.state = st ->> 'visible'
            RETURNING m.contract_id, m.token)
        SELECT array_agg(x.contract_id), array_agg(x.token) INTO more_contracts, more_tokens FROM suppressed x;
        gone_contracts := gone_contracts || more_contracts;
        gone_tokens := gone_tokens || more_tokens;
    END IF;
    -- Their rows leave every data table now (the views read nothing else), and
    -- the values they held lose them: a value that falls below its column's
    -- min_persons is replaced in the same transaction (_contract_value_fall).
    FOR t IN SELECT ct.contract_id, ct.view_name, ct.data_schema, ct.data_table, ct.token_column,
                    ARRAY(SELECT x.token FROM unnest(gone_contracts, gone_tokens) AS x(contract_id, token)
                           WHERE x.contract_id = ct.contract_id) AS tokens
               FROM medanon.contract_table ct
              WHERE ct.contract_id = ANY (gone_contracts)
              ORDER BY ct.contract_id, ct.view_name LOOP
        FOR col IN SELECT cc.* FROM medanon.contract_column cc
                    WHERE cc.contract_id = t.contract_id AND cc.view_name = t.view_name ORDER BY cc.column_name LOOP
            EXECUTE format('SELECT array_agg(x.label), array_agg(x.n) FROM (SELECT %1$I::text AS label, count(DISTINCT %2$I) AS n
                              FROM %3$I.%4$I WHERE %2$I = ANY ($1) AND %1$I IS NOT NULL GROUP BY 1) x',
                           col.column_name, t.token_column, t.data_schema, t.data_table)
                INTO labels, counts USING t.tokens;
            IF labels IS NOT NULL THEN
                UPDATE medanon.contract_value v SET persons = v.persons - x.n
                  FROM unnest(labels, counts) AS x(label, n)
                 WHERE v.contract_id = col.contract_id AND v.view_name = col.view_name
                   AND v.column_name = col.column_name AND v.label = x.label;
            END IF;
            CONTINUE WHEN col.raw_column IS NULL;
            -- The values before replacement: kept where one was replaced, else shown.
            EXECUTE format('SELECT array_agg(x.v), array_agg(x.n) FROM (SELECT coalesce(%1$I, %5$I)::text AS v, count(DISTINCT %2$I) AS n
                              FROM %3$I.%4$I WHERE %2$I = ANY ($1) AND coalesce(%1$I, %5$I) IS NOT NULL GROUP BY 1) x',
                           col.raw_column, t.token_column, t.data_schema, t.data_table, col.column_name)
                INTO labels, counts USING t.tokens;
            IF labels IS NOT NULL THEN
                UPDATE medanon.contract_raw_value v SET persons = v.persons - x.n
                  FROM unnest(labels, counts) AS x(value, n)
                 WHERE v.contract_id = col.contract_id AND v.view_name = col.view_name
                   AND v.column_name = col.column_name AND v.value = x.value;
            END IF;
        END LOOP;
        EXECUTE format('DELETE FROM %I.%I WHERE %I = ANY ($1)', t.data_schema, t.data_table, t.token_column) USING t.tokens;
        GET DIAGNOSTICS deleted = ROW_COUNT;
        UPDATE medanon.contract_table ct SET row_count = ct.row_count - deleted
         WHERE ct.contract_id = t.contract_id AND ct.view_name = t.view_name;
        FOR fallen IN SELECT v.* FROM medanon.contract_value v JOIN medanon.contract_column cc USING (contract_id, view_name, column_name)
                       WHERE v.contract_id = t.contract_id AND v.view_name = t.view_name AND v.persons < cc.min_persons
                       ORDER BY v.column_name, v.level, v.label LOOP
            PERFORM medanon._contract_value_fall(fallen.contract_id, fallen.view_name, fallen.column_name, fallen.label,
                                                 t.data_schema, t.data_table, t.token_column);
        END LOOP;
        -- Its statistics go too: they may hold the withheld persons' values (a
        -- histogram bound, a most common value), and an estimate is read by
        -- EXPLAIN. The planner falls back to defaults until the next refresh
        -- analyzes new data tables.
        DELETE FROM pg_catalog.pg_statistic s
         WHERE s.starelid = pg_catalog.format('%I.%I', t.data_schema, t.data_table)::regclass;
    END LOOP;
    RETURN withheld;
END
$fn$;

-- Takes, for each contract of `ids`, its row FOR UPDATE and, by `scope`, the
-- ACCESS EXCLUSIVE locks the caller's DDL will need:
--   'row'      the row alone (publish, snapshots);
--   'views'    also its views and their current data tables (refresh replaces them);
--   'schemas'  also every relation of its schemas: views, data tables, snapshots
--              (revoke and expire drop them).
-- An analyst that reads a view holds ACCESS SHARE on it until its transaction
-- ends, idle or not. Waiting for it while holding the contract row would make
-- every opt-out wait too (the consent triggers lock the rows FOR SHARE), for as
-- long as the analyst likes. So each attempt takes the row and the locks together
-- in a subtransaction, under lock_timeout (200 ms): when the timeout fires the
-- subtransaction rolls back, which lets go of the row, and a waiting opt-out goes
-- on at once. Rows first, then relations, as the consent triggers do (rows, then
-- the data tables they delete from), so the two never deadlock. Attempts are
-- retried after a growing pause (opt-outs run meanwhile) for `patience`; then
-- 55P03, naming the sessions that hold the relations. Once it returns, the
-- caller holds everything until it commits: analysts' new queries on those views
-- wait for the refresh or revoke to finish, and then read what it left.
CREATE FUNCTION _contract_lock(ids text[], scope text, patience interval DEFAULT '30 s') RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '200ms'
AS $fn$
DECLARE
    started constant timestamptz := clock_timestamp();
    pause double precision := 0.05;
    attempts integer := 0;
    rels oid[];
    holders text;
BEGIN
    IF scope IS NULL OR scope NOT IN ('row', 'views', 'schemas') THEN
        RAISE EXCEPTION 'unknown lock scope "%"', scope USING ERRCODE = 'invalid_parameter_value';
    END IF;
    LOOP
        attempts := attempts + 1;
        BEGIN
            PERFORM FROM medanon.contract c WHERE c.contract_id = ANY (ids) ORDER BY c.contract_id FOR UPDATE;
            -- Read after the row lock: a refresh that committed meanwhile named new tables.
            IF scope = 'views' THEN
                rels := ARRAY(SELECT x.oid FROM medanon.contract c
                                JOIN medanon.contract_table ct ON ct.contract_id = c.contract_id,
                                LATERAL (VALUES (to_regclass(format('%I.%I', c.view_schema, ct.view_name))::oid),
                                                (to_regclass(format('%I.%I', ct.data_schema, ct.data_table))::oid)) x(oid)
                               WHERE c.contract_id = ANY (ids) AND x.oid IS NOT NULL ORDER BY 1);
            ELSIF scope = 'schemas' THEN
                rels := ARRAY(SELECT r.oid FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace
                               WHERE r.relkind IN ('r', 'v', 'm', 'p', 'f')
                                 AND n.nspname IN (SELECT s FROM unnest(ids) i, medanon._contract_schemas(i) s)
                               ORDER BY 1);
            END IF;
            IF pg_catalog.cardinality(rels) > 0 THEN
                EXECUTE 'LOCK TABLE ' || (SELECT string_agg(r::regclass::text, ', ') FROM unnest(rels) r)
                     || ' IN ACCESS EXCLUSIVE MODE';
            END IF;
            RETURN;
        EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
            -- Rolled back: the row is free again until the next attempt.
        END;
        IF clock_timestamp() - started >= patience THEN
            SELECT string_agg(DISTINCT format('pid %s (%s, %s)', a.pid, a.usename, a.state), ', ')
              INTO holders
              FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.granted AND l.pid <> pg_backend_pid() AND l.relation = ANY (rels);
            RAISE EXCEPTION 'could not lock contract "%": it is in use', array_to_string(ids, '", "')
                USING ERRCODE = 'lock_not_available',
                      DETAIL = format('%s attempts in %s; sessions holding its views: %s', attempts,
                                      date_trunc('second', clock_timestamp() - started), coalesce(holders, 'none now')),
                      HINT = 'an analyst''s open transaction on the contract''s views holds them until it ends (publish sets '
                             || 'idle_in_transaction_session_timeout for grantees); try again, or end that session with pg_terminate_backend(pid)';
        END IF;
        PERFORM pg_sleep(pause * (0.5 + random()));
        pause := least(pause * 2, 2.0);
    END LOOP;
END
$fn$;

COMMENT ON FUNCTION _contract_lock(text[], text, interval) IS 'Internal: locks contract rows and the relations their DDL needs, retrying under lock_timeout so that no opt-out waits on an analyst.';

REVOKE ALL ON FUNCTION _contract_withhold(bigint[]), _contract_on_opt_out(), _contract_on_link(),
    _contract_lock(text[], text, interval), _hierarchy_parent(text, text, integer),
    _contract_rare_resolve(name, integer, integer, text),
    _contract_value_fall(text, name, name, text, name, name, name) FROM PUBLIC;
COMMENT ON FUNCTION _hierarchy_parent(text, text, integer) IS 'Internal: the parent of a label in a contract column''s hierarchy (icd10, or a table), NULL at the top.';
COMMENT ON FUNCTION _contract_rare_resolve(name, integer, integer, text) IS 'Internal: resolves the rare values of one column during publish or refresh, climbing its hierarchy.';
COMMENT ON FUNCTION _contract_value_fall(text, name, name, text, name, name, name) IS 'Internal: replaces a shown value that fell below min_persons, in the same transaction as the opt-out that took it there.';

-- contract_report: more states, values replaced, reads audited (a new result
-- type, so dropped and created again).
DROP FUNCTION contract_report(text);
-- What a contract shows now. Runs as the caller (the operator reads the map).
CREATE FUNCTION contract_report(id text)
RETURNS TABLE (contract_id text, status text, k integer, expires_on date,
               persons_exposed bigint, persons_suppressed_k bigint, persons_excluded_consent bigint,
               persons_unlinked bigint, persons_changed bigint, persons_calendar bigint,
               classes bigint, classes_suppressed bigint, min_class_size integer, values_replaced bigint,
               reads_audited boolean)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE st constant jsonb := medanon._contract_person_states();
BEGIN
    IF NOT EXISTS (SELECT FROM medanon.contract c WHERE c.contract_id = id) THEN
        RAISE EXCEPTION 'contract "%" does not exist', id USING ERRCODE = 'undefined_object';
    END IF;
    -- One pass over the map and one over the classes (publish reads this too).
    RETURN QUERY
    SELECT c.contract_id, c.status, c.k, c.expires_on,
           p.visible, p.k_suppressed, p.consent, p.unlinked, p.changed, p.calendar, cl.classes, cl.suppressed, cl.smallest,
           (SELECT coalesce(sum(cc.values_replaced), 0)::bigint FROM medanon.contract_column cc WHERE cc.contract_id = c.contract_id),
           -- Whether the grantee's reads reach the server log (pgaudit; sql/read_audit.sql).
           medanon.reads_audited(c.contract_id)
      FROM medanon.contract c,
           LATERAL (SELECT count(*) FILTER (WHERE m.state = st ->> 'visible') AS visible,
                           count(*) FILTER (WHERE m.state = st ->> 'k') AS k_suppressed,
                           count(*) FILTER (WHERE m.state = st ->> 'consent') AS consent,
                           count(*) FILTER (WHERE m.state = st ->> 'unlinked') AS unlinked,
                           count(*) FILTER (WHERE m.state = st ->> 'changed') AS changed,
                           count(*) FILTER (WHERE m.state = st ->> 'calendar') AS calendar
                      FROM medanon.contract_person m WHERE m.contract_id = c.contract_id) p,
           LATERAL (SELECT count(*) FILTER (WHERE cc.persons > 0) AS classes,
                           count(*) FILTER (WHERE cc.persons > 0 AND cc.persons < c.k) AS suppressed,
                           min(cc.persons) FILTER (WHERE cc.persons >= coalesce(c.k, 1)) AS smallest
                      FROM medanon.contract_class cc WHERE cc.contract_id = c.contract_id) cl
     WHERE c.contract_id = id;
END
$fn$;

-- The schemas from the contract row; close and expire through _contract_lock.
CREATE OR REPLACE FUNCTION _contract_schemas(id text) RETURNS SETOF name
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT n.nspname FROM pg_namespace n
     WHERE n.nspname IN (SELECT unnest(ARRAY[c.view_schema, c.data_schema]) FROM medanon.contract c WHERE c.contract_id = id)
        OR n.nspname IN (SELECT (l.detail ->> 'schema')::name FROM medanon.provision_ledger l
                          WHERE l.contract_id = id AND l.event = 'snapshot');
END;

CREATE OR REPLACE FUNCTION _contract_close(id text, event text) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- The views and snapshots dropped are listed in the ledger, not as NOTICEs.
SET client_min_messages = warning
AS $fn$
DECLARE
    c medanon.contract;
    exposed bigint;
    schemas text[];
    s name;
BEGIN
    -- The row and every relation DROP SCHEMA will take, without holding the row
    -- while an analyst idles; then the status again (another session may have
    -- closed it meanwhile).
    PERFORM medanon._contract_lock(ARRAY[id], 'schemas');
    SELECT * INTO c FROM medanon.contract WHERE contract_id = id;
    IF c.status NOT IN ('created', 'published') THEN
        RAISE EXCEPTION 'contract "%" is % already', id, c.status USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT r.persons_exposed INTO exposed FROM medanon.contract_report(id) r;
    FOR s IN SELECT * FROM medanon._contract_schemas(id) LOOP
        EXECUTE format('DROP SCHEMA %I CASCADE', s);
        schemas := schemas || s::text;
    END LOOP;
    DELETE FROM medanon.contract_person m WHERE m.contract_id = id;
    DELETE FROM medanon.contract_class cc WHERE cc.contract_id = id;
    DELETE FROM medanon.contract_table ct WHERE ct.contract_id = id;
    DELETE FROM medanon.contract_column cc WHERE cc.contract_id = id;
    DELETE FROM medanon.contract_window cw WHERE cw.contract_id = id;
    UPDATE medanon.contract SET status = CASE event WHEN 'revoke' THEN 'revoked' ELSE 'expired' END
     WHERE contract_id = id;
    INSERT INTO medanon.provision_ledger (contract_id, event, spec_sha256, person_count, detail)
    VALUES (id, event, c.spec_sha256, exposed,
            jsonb_build_object('dropped_schemas', coalesce(to_jsonb(schemas), '[]'), 'status_before', c.status,
                               'expires_on', c.expires_on));
    RETURN exposed;
END
$fn$;

CREATE OR REPLACE FUNCTION expire_contracts() RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE id text;
BEGIN
    -- All of them at once: a contract closed here stays locked until the commit,
    -- and no opt-out may wait on it while the next one waits for an analyst.
    PERFORM medanon._contract_lock(ARRAY(SELECT c.contract_id FROM medanon.contract c
                                          WHERE c.status IN ('created', 'published')
                                            AND c.expires_on < medanon.contract_today()), 'schemas');
    FOR id IN SELECT c.contract_id FROM medanon.contract c
               WHERE c.status IN ('created', 'published')
                 AND c.expires_on < medanon.contract_today()
               ORDER BY c.contract_id LOOP
        PERFORM medanon._contract_close(id, 'expire');
        RETURN NEXT id;
    END LOOP;
END
$fn$;



-- Values of rel.column_name held by fewer than min_persons distinct persons
-- (特異な記述), with how many hold each: what an anonymized contract would
-- replace. Runs as the caller, over what the caller may read.
CREATE FUNCTION rare_values(rel regclass, column_name text, person_column text, min_persons integer)
RETURNS TABLE (value text, persons bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF rel IS NULL OR column_name IS NULL OR person_column IS NULL OR min_persons IS NULL THEN
        RAISE EXCEPTION 'rare_values needs a table, a column, the person column and min_persons'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF min_persons < 2 THEN
        RAISE EXCEPTION 'min_persons must be at least 2, not %', min_persons
            USING ERRCODE = 'invalid_parameter_value', HINT = 'a value held by one person is the rarest there is: ask for 2 or more';
    END IF;
    FOR i IN 1..2 LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
                          AND a.attname = (ARRAY[column_name, person_column])[i]) THEN
            RAISE EXCEPTION 'column "%" of relation % does not exist', (ARRAY[column_name, person_column])[i], rel
                USING ERRCODE = 'undefined_column';
        END IF;
    END LOOP;
    RETURN QUERY EXECUTE format(
        'SELECT x.v, count(*) FROM (SELECT DISTINCT t.%1$I::text AS v, t.%2$I AS p FROM %3$s t
                                     WHERE t.%1$I IS NOT NULL AND t.%2$I IS NOT NULL) x
          GROUP BY x.v HAVING count(*) < $1 ORDER BY 2, 1', column_name, person_column, rel)
        USING min_persons;
END
$fn$;
COMMENT ON FUNCTION rare_values(regclass, text, text, integer) IS
'Values of a column held by fewer than min_persons distinct persons (unusual descriptions, 特異な記述), with their counts, fewest first. Runs as the caller.';

--------------------------------------------------------------------------------
-- source_changes.sql (new in 0.2.0): change logs for incremental refreshes, as in a fresh install
--------------------------------------------------------------------------------
-- medanon change tracking of sources: what an incremental refresh reads
-- (src/expose/publish.rs, medanon_core::refresh).
--
-- track_changes(source) puts four statement triggers on a registered source
-- (insert, update, delete, truncate; ENABLE ALWAYS, so session_replication_role
-- does not silence them). They write the person of every row a statement
-- inserts, updates (before and after) or deletes into source_change, once per
-- statement and person, with the writing transaction's id; a TRUNCATE writes one
-- entry without a person (everything changed). refresh_contract reads the
-- entries the snapshot of the contract's last refresh did not see, so a change
-- committed while a refresh ran is read by the next one, never lost.

-- Sources whose changes are tracked, and since which transaction: a contract
-- refreshed before tracking started refreshes in full once.
CREATE TABLE source_tracking (
    source_schema  name NOT NULL,
    source_table   name NOT NULL,
    since          xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    -- The cluster (pg_control_system().system_identifier) `since` counts in: after a
    -- restore into another cluster transaction ids start again.
    since_system   text NOT NULL,
    tracked_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    tracked_by     name NOT NULL DEFAULT session_user,
    PRIMARY KEY (source_schema, source_table),
    FOREIGN KEY (source_schema, source_table) REFERENCES source ON DELETE CASCADE
);
COMMENT ON TABLE source_tracking IS 'Sources whose changes are logged for incremental refreshes (track_changes), and since which transaction.';

-- The persons whose rows of a tracked source changed, by transaction. Pruned by
-- refresh_contract once every published contract's last refresh has seen them.
CREATE TABLE source_change (
    source_schema  name NOT NULL,
    source_table   name NOT NULL,
    -- NULL: the source was truncated.
    person_id      bigint,
    xid            xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id()
);
CREATE INDEX source_change_source ON source_change (source_schema, source_table, xid);
COMMENT ON TABLE source_change IS 'Persons whose source rows changed, by writing transaction: what an incremental refresh reads.';

-- The persons whose consent may have changed, by transaction: a notification,
-- an opt-out or its withdrawal names one of their records, or a link of theirs was
-- added, moved or removed. Filled by medanon's own triggers (below), always; the
-- consent ledger is append-only, so inserts are all there is to log. Waiting
-- periods that end are found by time (notified_records.eligible_from).
CREATE TABLE consent_change (
    person_id  bigint NOT NULL,
    xid        xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id()
);
CREATE INDEX consent_change_xid ON consent_change (xid);
COMMENT ON TABLE consent_change IS 'Persons whose consent or links changed, by writing transaction: what an incremental refresh reads.';

DO $changes$
BEGIN
    PERFORM pg_catalog.pg_extension_config_dump('source_tracking', '');
    REVOKE ALL ON TABLE source_tracking, source_change, consent_change FROM PUBLIC;
    GRANT SELECT ON TABLE source_tracking TO medanon_operator;
END
$changes$;

-- Logs the persons of a consent-ledger or person_link statement's rows.
CREATE FUNCTION _consent_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF TG_TABLE_NAME = 'person_link' THEN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO medanon.consent_change (person_id) SELECT DISTINCT n.person_id FROM new_rows n;
        ELSIF TG_OP = 'UPDATE' THEN
            INSERT INTO medanon.consent_change (person_id)
            SELECT n.person_id FROM new_rows n UNION SELECT o.person_id FROM old_rows o;
        ELSE
            INSERT INTO medanon.consent_change (person_id) SELECT DISTINCT o.person_id FROM old_rows o;
        END IF;
    ELSIF TG_TABLE_NAME = 'opt_out_withdrawal' THEN
        INSERT INTO medanon.consent_change (person_id)
        SELECT DISTINCT l.person_id FROM new_rows n
          JOIN medanon.opt_out o ON o.opt_out_id = n.opt_out_id
          JOIN medanon.person_link l ON l.institution_code = o.institution_code AND l.local_patient_id = o.local_patient_id;
    ELSE
        -- notification, opt_out: the person of the record they name, once linked
        -- (linking it later is logged by person_link's trigger).
        INSERT INTO medanon.consent_change (person_id)
        SELECT DISTINCT l.person_id FROM new_rows n
          JOIN medanon.person_link l ON l.institution_code = n.institution_code AND l.local_patient_id = n.local_patient_id;
    END IF;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER consent_changes AFTER INSERT ON notification
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION _consent_changes();
CREATE TRIGGER consent_changes AFTER INSERT ON opt_out
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION _consent_changes();
CREATE TRIGGER consent_changes AFTER INSERT ON opt_out_withdrawal
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION _consent_changes();
CREATE TRIGGER consent_changes_insert AFTER INSERT ON person_link
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION _consent_changes();
CREATE TRIGGER consent_changes_update AFTER UPDATE ON person_link
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION _consent_changes();
CREATE TRIGGER consent_changes_delete AFTER DELETE ON person_link
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION _consent_changes();
-- Under any session_replication_role, as track_changes' triggers.
ALTER TABLE notification ENABLE ALWAYS TRIGGER consent_changes;
ALTER TABLE opt_out ENABLE ALWAYS TRIGGER consent_changes;
ALTER TABLE opt_out_withdrawal ENABLE ALWAYS TRIGGER consent_changes;
ALTER TABLE person_link ENABLE ALWAYS TRIGGER consent_changes_insert;
ALTER TABLE person_link ENABLE ALWAYS TRIGGER consent_changes_update;
ALTER TABLE person_link ENABLE ALWAYS TRIGGER consent_changes_delete;

-- The triggers' function: logs the persons of the statement's rows. A definer,
-- since the log is the owner's; trigger functions cannot be called directly.
CREATE FUNCTION _source_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    col name;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO medanon.source_change (source_schema, source_table, person_id) VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, NULL);
        RETURN NULL;
    END IF;
    SELECT s.person_column INTO col FROM medanon.source s
     WHERE s.source_schema = TG_TABLE_SCHEMA AND s.source_table = TG_TABLE_NAME;
    IF col IS NULL THEN
        -- No longer registered: nothing reads its changes.
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        EXECUTE format('INSERT INTO medanon.source_change (source_schema, source_table, person_id)
                        SELECT DISTINCT $1, $2, n.%1$I::bigint FROM new_rows n WHERE n.%1$I IS NOT NULL', col)
            USING TG_TABLE_SCHEMA, TG_TABLE_NAME;
    ELSIF TG_OP = 'UPDATE' THEN
        EXECUTE format('INSERT INTO medanon.source_change (source_schema, source_table, person_id)
                        SELECT $1, $2, x.p FROM (SELECT n.%1$I::bigint AS p FROM new_rows n
                                                 UNION SELECT o.%1$I::bigint FROM old_rows o) x WHERE x.p IS NOT NULL', col)
            USING TG_TABLE_SCHEMA, TG_TABLE_NAME;
    ELSE
        EXECUTE format('INSERT INTO medanon.source_change (source_schema, source_table, person_id)
                        SELECT DISTINCT $1, $2, o.%1$I::bigint FROM old_rows o WHERE o.%1$I IS NOT NULL', col)
            USING TG_TABLE_SCHEMA, TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END
$fn$;

-- The trigger names track_changes gives, by event.
CREATE FUNCTION _source_change_triggers() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN ARRAY['medanon_changes_insert', 'medanon_changes_update', 'medanon_changes_delete', 'medanon_changes_truncate'];

-- Whether `rel` carries all of track_changes' triggers, enabled.
CREATE FUNCTION _source_changes_logged(rel regclass) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT count(*) = 4 FROM pg_catalog.pg_trigger t
     WHERE t.tgrelid = rel AND t.tgname = ANY (medanon._source_change_triggers()) AND t.tgenabled = 'A'
       AND t.tgfoid = 'medanon._source_changes()'::pg_catalog.regprocedure;
END;

-- Records (or forgets) that a source's changes are logged, once its triggers are
-- there (or gone): the owner's table, written only through here.
CREATE FUNCTION _source_tracking_set(rel regclass, tracked boolean) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE nsp name; tbl name;
BEGIN
    SELECT n.nspname, c.relname INTO nsp, tbl FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel;
    IF tracked AND NOT medanon._source_changes_logged(rel) THEN
        RAISE EXCEPTION 'relation % does not log its changes', rel
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'call medanon.track_changes()';
    END IF;
    IF tracked THEN
        INSERT INTO medanon.source_tracking (source_schema, source_table, since_system)
        VALUES (nsp, tbl, (SELECT s.system_identifier::text FROM pg_catalog.pg_control_system() s))
        ON CONFLICT (source_schema, source_table) DO NOTHING;
    ELSE
        DELETE FROM medanon.source_tracking st WHERE st.source_schema = nsp AND st.source_table = tbl;
    END IF;
END
$fn$;

CREATE FUNCTION track_changes(source regclass) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    nsp name; tbl name; kind "char";
    distributed boolean := false;
    names constant text[] := medanon._source_change_triggers();
BEGIN
    IF source IS NULL THEN
        RAISE EXCEPTION 'track_changes needs a source table' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT n.nspname, c.relname, c.relkind INTO nsp, tbl, kind
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = source;
    IF NOT EXISTS (SELECT FROM medanon.source s WHERE s.source_schema = nsp AND s.source_table = tbl) THEN
        RAISE EXCEPTION 'relation % is not a registered source', source
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'register it first with medanon.register_source()';
    END IF;
    -- Creating the triggers needs the TRIGGER privilege, but enabling them ALWAYS
    -- (and dropping them) needs the table's owner: say so before anything is done.
    IF NOT pg_catalog.pg_has_role(current_user, (SELECT c.relowner FROM pg_class c WHERE c.oid = source), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table % to track its changes', source
            USING ERRCODE = 'insufficient_privilege', HINT = 'run medanon.track_changes() as the table''s owner';
    END IF;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'relation % is not a table, so its changes cannot be tracked', source
            USING ERRCODE = 'wrong_object_type', HINT = 'refresh_contract refreshes contracts over it in full';
    END IF;
    IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        -- Citus's catalog, read only where Citus is installed.
        EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d WHERE d.logicalrelid = $1)' INTO distributed USING source;
    END IF;
    IF distributed THEN
        RAISE EXCEPTION 'relation % is a Citus distributed or reference table: its changes cannot be tracked', source
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'refresh_contract refreshes contracts over it in full';
    END IF;
    IF medanon._source_changes_logged(source) THEN
        PERFORM medanon._source_tracking_set(source, true);
        RETURN false;
    END IF;
    -- Only the triggers that are there: DROP TRIGGER IF EXISTS would tell the
    -- caller about every one that is not.
    FOR i IN 1..4 LOOP
        IF EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid = source AND t.tgname = names[i]) THEN
            EXECUTE format('DROP TRIGGER %I ON %s', names[i], source);
        END IF;
    END LOOP;
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION medanon._source_changes()', names[1], source);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION medanon._source_changes()', names[2], source);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION medanon._source_changes()', names[3], source);
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s
                    FOR EACH STATEMENT EXECUTE FUNCTION medanon._source_changes()', names[4], source);
    FOR i IN 1..4 LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', source, names[i]);
    END LOOP;
    PERFORM medanon._source_tracking_set(source, false);
    PERFORM medanon._source_tracking_set(source, true);
    RETURN true;
END
$fn$;

CREATE FUNCTION untrack_changes(source regclass) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    names constant text[] := medanon._source_change_triggers();
    had boolean;
BEGIN
    IF source IS NULL THEN
        RAISE EXCEPTION 'untrack_changes needs a source table' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT pg_catalog.pg_has_role(current_user, (SELECT c.relowner FROM pg_class c WHERE c.oid = source), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table % to stop tracking its changes', source
            USING ERRCODE = 'insufficient_privilege', HINT = 'run medanon.untrack_changes() as the table''s owner';
    END IF;
    had := EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid = source AND t.tgname = ANY (names));
    -- Only the triggers that are there: DROP TRIGGER IF EXISTS would tell the
    -- caller about every one that is not.
    FOR i IN 1..4 LOOP
        IF EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid = source AND t.tgname = names[i]) THEN
            EXECUTE format('DROP TRIGGER %I ON %s', names[i], source);
        END IF;
    END LOOP;
    PERFORM medanon._source_tracking_set(source, false);
    RETURN had;
END
$fn$;

REVOKE ALL ON FUNCTION _source_changes(), _source_tracking_set(regclass, boolean), _source_change_triggers(),
    _source_changes_logged(regclass), _consent_changes() FROM PUBLIC;
COMMENT ON FUNCTION _consent_changes() IS 'Internal: the trigger function that logs the persons of consent-ledger and person_link changes.';
COMMENT ON FUNCTION _source_changes() IS 'Internal: the trigger function of track_changes; logs the persons of the changed rows.';
COMMENT ON FUNCTION _source_change_triggers() IS 'Internal: the names of the triggers track_changes puts on a source.';
COMMENT ON FUNCTION _source_changes_logged(regclass) IS 'Internal: whether a source carries all of track_changes'' triggers, enabled.';
COMMENT ON FUNCTION _source_tracking_set(regclass, boolean) IS 'Internal: records that a source''s changes are logged (checked) or no longer are.';
COMMENT ON FUNCTION track_changes(regclass) IS
'Logs the persons of every row a registered source inserts, updates, deletes (and its truncations), so refresh_contract rewrites only what changed. Run it as the table''s owner; true if it added the triggers, false if they were there.';
COMMENT ON FUNCTION untrack_changes(regclass) IS
'Removes track_changes'' triggers from a source (as its owner); contracts over it refresh in full from then on. True if it had them.';

--------------------------------------------------------------------------------
-- read_audit.sql (new in 0.2.0): pgaudit, as in a fresh install
--------------------------------------------------------------------------------
-- Traceability of analyst reads (トレーサビリティ, the certified operator's log
-- monitoring requirement), with pgaudit's object auditing.
--
-- pgaudit logs a statement when the role named by its superuser-only setting
-- `pgaudit.role` holds a privilege the statement uses on a relation; privileges
-- inherited through role membership count. medanon grants SELECT on every
-- relation a grantee may read (its contract's views and snapshots) to one NOLOGIN
-- role, medanon_read_audit, at publish, refresh and snapshot, when pgaudit is
-- loaded. The DBA then either sets `pgaudit.role = 'medanon_read_audit'`, or, if
-- the cluster already audits with a role of its own, grants medanon_read_audit to
-- that role. medanon never changes a server setting itself: pgaudit.role is the
-- DBA's (ALTER SYSTEM, superuser), and a function cannot run ALTER SYSTEM.
--
-- medanon_read_audit holds SELECT on the views but no USAGE on their schemas, so a
-- login that is made a member of it still reads nothing through it.

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'medanon_read_audit') THEN
        CREATE ROLE medanon_read_audit NOLOGIN;
    END IF;
END
$roles$;

-- Whether this cluster loaded pgaudit (it must be in shared_preload_libraries):
-- its settings exist only then. A `pgaudit.*` line in postgresql.conf without the
-- library is a placeholder, which pg_settings does not list.
CREATE FUNCTION _pgaudit_loaded() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT EXISTS (SELECT FROM pg_catalog.pg_settings s WHERE s.name = 'pgaudit.role');
END;

-- Called by publish, refresh and release_snapshot as the extension owner
-- (src/expose/audit.rs): grants SELECT on every relation of the contract's view
-- and snapshot schemas to medanon_read_audit when pgaudit is loaded, and does
-- nothing otherwise. The data schema is left out: only the owner reads it.
-- Returns how many relations it granted.
CREATE FUNCTION _audit_contract_reads(id text) RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    rel regclass;
    granted integer := 0;
BEGIN
    IF NOT medanon._pgaudit_loaded() THEN
        RETURN 0;
    END IF;
    FOR rel IN
        SELECT c.oid::regclass
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN (SELECT s FROM medanon._contract_schemas(id) s)
           AND n.nspname IS DISTINCT FROM (SELECT k.data_schema FROM medanon.contract k WHERE k.contract_id = id)
           AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
         ORDER BY c.oid
    LOOP
        EXECUTE pg_catalog.format('GRANT SELECT ON %s TO medanon_read_audit', rel);
        granted := granted + 1;
    END LOOP;
    RETURN granted;
END
$fn$;

-- Whether an audit role and a pgaudit log level, as a session would have them,
-- log a read of a relation granted to medanon_read_audit: the role is
-- medanon_read_audit or has its privileges, and the level is LOG (a lower level
-- may be filtered out by log_min_messages).
CREATE FUNCTION _audit_setting_ok(role_name text, log_level text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT coalesce((SELECT pg_catalog.pg_has_role(r.oid, a.oid, 'USAGE')
                       FROM pg_catalog.pg_roles r, pg_catalog.pg_roles a
                      WHERE r.rolname = role_name AND a.rolname = 'medanon_read_audit'), false)
       AND pg_catalog.lower(log_level) = 'log';
END;

-- Whether a SELECT on a contract view reaches the server log as a pgaudit line
-- with the role, the view and the statement: pgaudit is loaded, its settings in
-- this session pass _audit_setting_ok, and each log line names the role (%u in
-- log_line_prefix, or csvlog/jsonlog, which always do).
CREATE FUNCTION reads_audited() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT medanon._pgaudit_loaded()
       AND medanon._audit_setting_ok(pg_catalog.current_setting('pgaudit.role', true),
                                     pg_catalog.current_setting('pgaudit.log_level', true))
       AND (pg_catalog.strpos(pg_catalog.replace(pg_catalog.current_setting('log_line_prefix'), '%%', ''), '%u') > 0
            OR pg_catalog.current_setting('log_destination') ~ '(csvlog|jsonlog)');
END;

-- One contract: reads_audited(), every relation its grantee may read (views and
-- snapshots) granted to medanon_read_audit, and no setting for its grantee
-- (ALTER ROLE ... [IN DATABASE ...] SET) or this database that would turn pgaudit
-- off in the grantee's sessions. A contract published before pgaudit was loaded
-- is audited from its next refresh.
CREATE FUNCTION reads_audited(id text) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE c medanon.contract;
BEGIN
    SELECT * INTO c FROM medanon.contract k WHERE k.contract_id = id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'contract "%" does not exist', id USING ERRCODE = 'undefined_object';
    END IF;
    -- The view schema and the snapshot schemas, as medanon._contract_schemas (which
    -- is the owner's) lists them, from what the operator may read.
    RETURN medanon.reads_audited()
       AND NOT EXISTS (
           SELECT FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
            WHERE (n.nspname = c.view_schema
                   OR n.nspname IN (SELECT (l.detail ->> 'schema')::name FROM medanon.provision_ledger l
                                     WHERE l.contract_id = id AND l.event = 'snapshot'))
              AND r.relkind IN ('r', 'v', 'm', 'p', 'f')
              AND NOT pg_catalog.has_table_privilege('medanon_read_audit', r.oid, 'SELECT'))
       AND NOT EXISTS (
           SELECT FROM pg_catalog.pg_db_role_setting s, pg_catalog.unnest(s.setconfig) setting
            WHERE s.setdatabase IN (0, (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()))
              AND s.setrole IN (0, (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = c.grantee))
              AND CASE pg_catalog.split_part(setting, '=', 1)
                  WHEN 'pgaudit.role' THEN
                      NOT medanon._audit_setting_ok(pg_catalog.substr(setting, 14), 'log')
                  WHEN 'pgaudit.log_level' THEN
                      pg_catalog.lower(pg_catalog.substr(setting, 19)) <> 'log'
                  ELSE false END);
END
$fn$;

--------------------------------------------------------------------------------
-- expiry_schedule.sql (new in 0.2.0): pg_cron, as in a fresh install
--------------------------------------------------------------------------------
-- Scheduled expiry: expire_contracts() once a day from pg_cron, in one call.
--
-- The job runs as the role that schedules it (pg_cron's rule; these functions are
-- not SECURITY DEFINER, so no operator makes the extension owner a cron job): a
-- superuser, or a medanon_operator that was granted USAGE on schema cron. The
-- views of an expired contract already show nothing from the day after
-- expires_on, so the job only drops them and writes the ledger; its hour matters
-- little.
--
-- pg_cron 1.4 (Debian 12's postgresql-15-cron) reads schedules in GMT: the
-- default, 15:05 GMT, is 00:05 in Japan, just after a contract's last day ends in
-- the operator's time zone.

-- pg_cron's job name; one per database owner of the job (pg_cron's rule).
-- Scheduling again replaces the schedule of the same job.
CREATE FUNCTION _expiry_job_name() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 'medanon_expire_contracts';

-- What is needed before a job can be scheduled or removed here, or the error that
-- says what is missing. pg_cron's settings and shared_preload_libraries are
-- superuser-only reading, so an operator is told what a superuser must do; a
-- superuser is told exactly which step is missing.
CREATE FUNCTION _require_pg_cron() RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    other_way constant text := 'or run "psql -c ''SELECT medanon.expire_contracts()''" daily from the system''s cron';
    reads_settings constant boolean := pg_catalog.pg_has_role('pg_read_all_settings', 'USAGE');
    cron_db text;
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_cron') THEN
        IF NOT pg_catalog.has_schema_privilege('cron', 'USAGE') THEN
            RAISE EXCEPTION 'permission denied for schema cron'
                USING ERRCODE = 'insufficient_privilege',
                      DETAIL = pg_catalog.format('role %s may not schedule pg_cron jobs', pg_catalog.quote_ident(current_user)),
                      HINT = 'call it as a superuser, or GRANT USAGE ON SCHEMA cron TO the calling role';
        END IF;
        RETURN;
    END IF;
    IF NOT reads_settings THEN
        RAISE EXCEPTION 'extension pg_cron is not installed in database %', pg_catalog.current_database()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'a superuser loads pg_cron (shared_preload_libraries, cron.database_name) and runs CREATE EXTENSION pg_cron here; '
                      || other_way;
    END IF;
    IF NOT 'pg_cron' = ANY (pg_catalog.string_to_array(pg_catalog.replace(pg_catalog.current_setting('shared_preload_libraries'), ' ', ''), ',')) THEN
        RAISE EXCEPTION 'pg_cron is not loaded'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = pg_catalog.format('shared_preload_libraries is "%s"', pg_catalog.current_setting('shared_preload_libraries')),
                  HINT = 'add pg_cron to shared_preload_libraries, set cron.database_name to this database and restart; ' || other_way;
    END IF;
    cron_db := pg_catalog.current_setting('cron.database_name', true);
    RAISE EXCEPTION 'extension pg_cron is not installed in database %', pg_catalog.current_database()
        USING ERRCODE = 'object_not_in_prerequisite_state',
              DETAIL = pg_catalog.format('cron.database_name is "%s"', cron_db),
              HINT = CASE WHEN cron_db = pg_catalog.current_database()
                          THEN 'run CREATE EXTENSION pg_cron here first; ' || other_way
                          ELSE pg_catalog.format('in database %s, run SELECT cron.schedule_in_database(%L, %L, %L, %L); ',
                                                 pg_catalog.quote_ident(cron_db), medanon._expiry_job_name(),
                                                 '5 15 * * *', 'SELECT medanon.expire_contracts()',
                                                 pg_catalog.current_database()) || other_way END;
END
$fn$;

CREATE FUNCTION schedule_expiry(at text DEFAULT '5 15 * * *') RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE job bigint;
BEGIN
    IF at IS NULL THEN
        RAISE EXCEPTION 'the schedule must not be NULL'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'give a cron schedule such as ''5 15 * * *'' (GMT)';
    END IF;
    PERFORM medanon._require_pg_cron();
    -- The job runs as the caller: it must be able to run expire_contracts itself.
    IF NOT pg_catalog.has_function_privilege('medanon.expire_contracts()', 'EXECUTE') THEN
        RAISE EXCEPTION 'permission denied for function expire_contracts'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'the job would run medanon.expire_contracts() as the role that schedules it',
                  HINT = 'schedule it as a superuser or a member of medanon_operator';
    END IF;
    EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO job
        USING medanon._expiry_job_name(), at, 'SELECT medanon.expire_contracts()';
    RETURN job;
END
$fn$;

CREATE FUNCTION unschedule_expiry() RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE found boolean;
BEGIN
    PERFORM medanon._require_pg_cron();
    -- cron.job shows each role its own jobs; unschedule removes the caller's.
    EXECUTE 'SELECT EXISTS (SELECT FROM cron.job j WHERE j.jobname = $1 AND j.username = current_user)' INTO found
        USING medanon._expiry_job_name();
    IF found THEN
        EXECUTE 'SELECT cron.unschedule($1)' USING medanon._expiry_job_name();
    END IF;
    RETURN found;
END
$fn$;

--------------------------------------------------------------------------------
-- finalize.sql: suggest_generalization, then every function's privileges and
-- comment as a fresh install sets them
--------------------------------------------------------------------------------
-- Not STRICT, like the other risk functions: a NULL argument is an error (22004).
CREATE OR REPLACE FUNCTION suggest_generalization(rel regclass, spec jsonb, k integer, max_suppression double precision) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL RESTRICTED
    RETURN medanon._suggest_generalization(rel, spec::text, k, max_suppression);

-- Privileges: 0.2.0 denies every function by default and grants from lists. The
-- functions 0.1.0 made keep the privileges 0.1.0 gave them through CREATE OR
-- REPLACE, so first every grant of every function of the schema goes (the
-- owner's stays); then finalize.sql's blocks, as they are, grant what 0.2.0 does.
DO $reset$
DECLARE r record;
BEGIN
    FOR r IN SELECT p.oid::regprocedure AS f,
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS grantee
               FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
              WHERE p.pronamespace OPERATOR(pg_catalog.=) 'medanon'::regnamespace
                AND a.grantee OPERATOR(pg_catalog.<>) p.proowner LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM %s', r.f, r.grantee);
    END LOOP;
END
$reset$;

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
        '_suggest_generalization(regclass, text, integer, double precision)',
        'safe_counts(text, text, text[], integer)'
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
'Internal to publish and refresh: a new person''s token in a contract, 64 random bits from the operating system''s CSPRNG. Granted to nobody.';
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
COMMENT ON FUNCTION suggest_generalization(regclass, jsonb, integer, double precision) IS
    'Searches the generalization lattice (Flash-style) for the lowest-loss levels that reach k with at most max_suppression of persons suppressed.';
COMMENT ON FUNCTION create_contract(jsonb) IS
    'Checks a contract spec (every refusal names its key), stores the contract and records it in the provision ledger; returns its id.';
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
    'Revokes a contract: drops its views and snapshots, deletes its person map, and records the revocation in the ledger.';
COMMENT ON FUNCTION expire_contracts() IS
    'Closes every contract past expires_on (its views already show nothing): drops views and snapshots and records the expiry. Returns the ids closed. Run it daily.';
COMMENT ON FUNCTION release_snapshot(text) IS
    'Copies a published contract''s views into a frozen schema contract_<id>_snap_<n> for the grantee (readable until expiry); rows, persons and SHA-256 go in the ledger. Returns the schema name.';
COMMENT ON FUNCTION contract_report(text) IS
    'Persons exposed, suppressed by k, excluded by consent and unlinked, classes and the smallest class shown, for one contract.';
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

--------------------------------------------------------------------------------
-- Data: what 0.1.0 stored, as 0.2.0 expects it
--------------------------------------------------------------------------------
-- The active keys' check values (a node checks its key against them before use;
-- retired keys are never used again and keep none). The keys themselves, and so
-- every token, link key and stored offset, stay as they are.
UPDATE keyring k SET check_value = pg_catalog.decode(v.check_value, 'hex')
  FROM medanon.key_check_values() v
 WHERE k.key_id OPERATOR(pg_catalog.=) v.key_id AND k.purpose OPERATOR(pg_catalog.=) v.purpose;

-- One entry for the upgrade itself (no contract): the versions, and the entries
-- that 0.1.0 wrote without a chain and this script chained as they stood.
INSERT INTO provision_ledger (event, detail)
SELECT 'upgrade', pg_catalog.jsonb_build_object(
           'from', '0.1.0', 'to', '0.2.0',
           'chained_at_upgrade', h.entries,
           'chain', 'entries 1 to ' || h.entries || ' in chain order were written by 0.1.0, which kept no hash chain; the upgrade chained them as they stood, so verify_ledger() covers them from here on',
           'contracts', (SELECT coalesce(pg_catalog.jsonb_object_agg(x.status, x.n), '{}')
                           FROM (SELECT k.status, pg_catalog.count(*) AS n FROM medanon.contract k GROUP BY k.status) x))
  FROM provision_ledger_head h;

-- Contracts, one at a time, in id order; each change is recorded in the provision
-- ledger as an 'upgrade' entry of the contract before anything else happens to it:
--   * every contract: spec_sha256 becomes 0.2.0's form, the SHA-256 of the stored
--     jsonb's text (README, "The spec hash"). 0.1.0 hashed the spec as its
--     create_contract serialized it (compact JSON, from serde_json), which an
--     auditor cannot recompute from medanon.contract. The entries before the
--     'upgrade' entry keep the 0.1.0 form; the entry names both.
--   * a published contract past its expiry date is closed as expire_contracts()
--     would close it (its views show nothing already): an 'expire' entry follows.
--   * a published contract is rebuilt by 0.2.0's refresh (a 'refresh' entry
--     follows): its views are dropped, the refresh writes new data tables from the
--     map, whose tokens are the new bigints and whose date offsets are the stored
--     ones, and creates the views again as 0.2.0 renders them (security barrier,
--     expiry counted in medanon.time_zone); then the grantee's SELECT, the
--     comments publish writes (which no longer name the contract's purpose,
--     grantee or expiry; 0.1.0's schema and snapshot comments did) and the
--     grantee's idle-in-transaction timeout, as publish sets them. The refresh
--     applies 0.2.0's rules: it fixes the first class of every person it shows
--     (first_class; a person whose class differs at a later refresh is 'changed'
--     and withheld), fills first_dates, withholds a person whose shifted dates the
--     public calendar narrows to too few offsets ('calendar'), and replaces rare
--     values of columns with min_persons. Its entry counts the persons per state.
--   * snapshots are left as released: frozen copies, with 0.1.0's uuid tokens,
--     which do not join with the new tokens. The entry lists them.
-- Objects the refresh creates are the contract's, not the extension's: this
-- script runs as the extension script, whose new objects PostgreSQL records as
-- members of the extension, and whose GRANTs as its initial privileges. Both
-- are taken back for everything in the contract's schemas, so pg_dump dumps a
-- contract's views, tables and grants as it does a fresh 0.2.0 contract's.
DO $contracts$
DECLARE
    c medanon.contract;
    ext constant oid := (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'medanon');
    old_sha text;
    new_sha text;
    today constant date := medanon.contract_today();
    detail jsonb;
    snapshots jsonb;
    levels jsonb;
    t record;
    src regclass;
    tspec jsonb;
    s medanon.source;
    shows_qi boolean;
    one_row boolean;
    obj record;
    persons bigint;
BEGIN
    FOR c IN SELECT * FROM medanon.contract k ORDER BY k.contract_id LOOP
        old_sha := c.spec_sha256;
        new_sha := pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(c.spec::text, 'UTF8')), 'hex');
        UPDATE medanon.contract k SET spec_sha256 = new_sha WHERE k.contract_id = c.contract_id;
        snapshots := coalesce((SELECT pg_catalog.jsonb_agg(l.detail ->> 'schema' ORDER BY l.entry_id)
                                 FROM medanon.provision_ledger l
                                WHERE l.contract_id = c.contract_id AND l.event = 'snapshot'
                                  AND pg_catalog.to_regnamespace(l.detail ->> 'schema') IS NOT NULL), '[]');
        detail := pg_catalog.jsonb_build_object(
            'from', '0.1.0', 'to', '0.2.0', 'status', c.status,
            'spec_sha256', pg_catalog.jsonb_build_object(
                'before', old_sha,
                'before_form', 'SHA-256 of the spec as 0.1.0''s create_contract serialized it (compact JSON, serde_json); the entries before this one carry it',
                'after', new_sha,
                'after_form', 'encode(sha256(convert_to(spec::text, ''UTF8'')), ''hex'') of the stored spec (0.2.0, README "The spec hash")'));

        IF c.status = 'published' AND c.expires_on < today THEN
            INSERT INTO medanon.provision_ledger (contract_id, event, spec_sha256, detail)
            VALUES (c.contract_id, 'upgrade', new_sha, detail || pg_catalog.jsonb_build_object(
                'closed', pg_catalog.format('expired on %s: closed by the upgrade as expire_contracts() closes it (the expire entry follows)', c.expires_on)));
            PERFORM medanon._contract_close(c.contract_id, 'expire');

        ELSIF c.status = 'published' THEN
            -- Whether each source holds at most one row per person (and institution),
            -- measured as publish measures it (src/expose/describe.rs, person_level):
            -- only for a view that shows a quasi-identifier.
            levels := '{}';
            FOR t IN SELECT ct.view_name FROM medanon.contract_table ct WHERE ct.contract_id = c.contract_id ORDER BY ct.view_name LOOP
                SELECT x.spec_table, x.rel INTO tspec, src
                  FROM (SELECT j AS spec_table, pg_catalog.to_regclass(j ->> 'source') AS rel
                          FROM pg_catalog.jsonb_array_elements(c.spec -> 'tables') j) x
                  JOIN pg_catalog.pg_class r ON r.oid = x.rel
                 WHERE r.relname = t.view_name;
                SELECT so.* INTO s FROM medanon.source so JOIN pg_catalog.pg_class r ON r.oid = src
                 WHERE so.source_schema = r.relnamespace::regnamespace::name AND so.source_table = r.relname;
                shows_qi := EXISTS (SELECT FROM pg_catalog.jsonb_each(tspec -> 'columns') col
                                      JOIN medanon.source_column sc
                                        ON sc.source_schema = s.source_schema AND sc.source_table = s.source_table
                                       AND sc.column_name = col.key AND sc.class = 'quasi_identifier'
                                     WHERE col.value IS DISTINCT FROM '"drop"'::jsonb);
                one_row := false;
                IF shows_qi THEN
                    EXECUTE pg_catalog.format('SELECT NOT EXISTS (SELECT 1 FROM %s t GROUP BY %s HAVING pg_catalog.count(*) > 1)',
                                              src, 't.' || pg_catalog.quote_ident(s.person_column)
                                                   || coalesce(', t.' || pg_catalog.quote_ident(s.institution_column), ''))
                        INTO one_row;
                END IF;
                UPDATE medanon.contract_table ct SET person_level = one_row
                 WHERE ct.contract_id = c.contract_id AND ct.view_name = t.view_name;
                levels := levels || pg_catalog.jsonb_build_object(t.view_name, one_row);
            END LOOP;
            SELECT pg_catalog.count(*) INTO persons FROM medanon.contract_person m WHERE m.contract_id = c.contract_id;

            INSERT INTO medanon.provision_ledger (contract_id, event, spec_sha256, person_count, detail)
            VALUES (c.contract_id, 'upgrade', new_sha, persons, detail || pg_catalog.jsonb_build_object(
                'tokens', pg_catalog.jsonb_build_object(
                    'persons', persons,
                    'before', 'uuid: 128 bits of HMAC-SHA256 under the contract''s domain (0.1.0)',
                    'after', 'bigint: a random 64-bit surrogate per person, unique in the contract, kept for its life (0.2.0)',
                    'changed', 'every person of the contract has a new token from this entry on; rows released before it do not join with the views on the token'),
                'snapshots_kept', snapshots,
                'date_offsets', 'kept as stored (0.1.0: whole days within +/- max_shift_days); a person new to the contract gets a whole-week offset (0.2.0)',
                'person_level', levels,
                'rebuilt', 'by the refresh entry that follows: new data tables and views as 0.2.0 renders them, the comments and the grantee''s settings of a 0.2.0 publish; first_class fixed for every person it shows, first_dates filled, the states changed and calendar and rare-value replacement in force from then on'));

            -- 0.1.0's views show a uuid token; the refresh creates them again.
            FOR t IN SELECT ct.view_name FROM medanon.contract_table ct WHERE ct.contract_id = c.contract_id ORDER BY ct.view_name LOOP
                EXECUTE pg_catalog.format('DROP VIEW IF EXISTS %I.%I', c.view_schema, t.view_name);
            END LOOP;
            PERFORM medanon.refresh_contract(c.contract_id, full => true);
            -- What publish (medanon_core::plan::ContractPlan::schemas_ddl, view_sql,
            -- grantee_settings_sql) sets and refresh leaves alone.
            EXECUTE pg_catalog.format('COMMENT ON SCHEMA %I IS %L', c.view_schema, 'medanon contract views');
            EXECUTE pg_catalog.format('COMMENT ON SCHEMA %I IS %L', c.data_schema,
                                      'medanon contract data: the rows behind a contract''s views, the extension owner''s only');
            FOR t IN SELECT ct.view_name, ct.person_column FROM medanon.contract_table ct
                      WHERE ct.contract_id = c.contract_id ORDER BY ct.view_name LOOP
                EXECUTE pg_catalog.format('COMMENT ON VIEW %I.%I IS %L', c.view_schema, t.view_name,
                                          'medanon contract view: anonymized per the contract; shows nothing after it expires');
                EXECUTE pg_catalog.format('REVOKE ALL ON %I.%I FROM PUBLIC', c.view_schema, t.view_name);
                EXECUTE pg_catalog.format('GRANT SELECT ON %I.%I TO %I', c.view_schema, t.view_name, c.grantee);
                IF t.person_column IS NOT NULL THEN
                    EXECUTE pg_catalog.format('COMMENT ON COLUMN %I.%I.%I IS %L', c.view_schema, t.view_name, t.person_column,
                                              'person token of this contract: the same in every view of it, unrelated to any other contract');
                END IF;
            END LOOP;
            EXECUTE pg_catalog.format('ALTER ROLE %I SET idle_in_transaction_session_timeout = %L', c.grantee, '5min');

        ELSE
            INSERT INTO medanon.provision_ledger (contract_id, event, spec_sha256, detail)
            VALUES (c.contract_id, 'upgrade', new_sha, detail);
        END IF;

        -- Snapshot schemas: 0.2.0's comment, which does not name the contract or its expiry.
        FOR t IN SELECT pg_catalog.jsonb_array_elements_text(snapshots) AS schema LOOP
            EXECUTE pg_catalog.format('COMMENT ON SCHEMA %I IS %L', t.schema, 'medanon contract snapshot, frozen for delivery');
        END LOOP;

        -- The contract's objects are not the extension's (see above).
        FOR obj IN SELECT d.classid, d.objid, r.relkind, pg_catalog.format('%I.%I', n.nspname, r.relname) AS name
                     FROM pg_catalog.pg_depend d
                     JOIN pg_catalog.pg_class r ON d.classid = 'pg_catalog.pg_class'::regclass AND r.oid = d.objid
                     JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
                    WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.refobjid = ext AND d.deptype = 'e'
                      AND n.nspname IN (c.view_schema, c.data_schema) LOOP
            EXECUTE pg_catalog.format('ALTER EXTENSION medanon DROP %s %s',
                                      CASE obj.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                                       WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, obj.name);
        END LOOP;
        DELETE FROM pg_catalog.pg_init_privs ip
         WHERE ip.classoid = 'pg_catalog.pg_class'::regclass
           AND ip.objoid IN (SELECT r.oid FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
                              WHERE n.nspname IN (SELECT pg_catalog.jsonb_array_elements_text(snapshots)
                                                  UNION ALL SELECT c.view_schema UNION ALL SELECT c.data_schema));
    END LOOP;
END
$contracts$;
