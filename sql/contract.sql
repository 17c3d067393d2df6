-- medanon contracts: the source catalog, certified users, contracts and the
-- provision ledger (提供記録). Per-contract views (publish, refresh, snapshots) are
-- built on these.

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'medanon_auditor') THEN
        -- Reads the provision ledger (for the certification audit); nothing else.
        CREATE ROLE medanon_auditor NOLOGIN;
    END IF;
END
$roles$;

-- Raw tables whose rows belong to linked persons. Kept by name, not oid, so the
-- catalog survives dump and restore.
CREATE TABLE source (
    source_schema       name NOT NULL,
    source_table        name NOT NULL,
    person_column       name NOT NULL,
    institution_column  name,
    registered_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    registered_by       name NOT NULL DEFAULT session_user,
    PRIMARY KEY (source_schema, source_table)
);
COMMENT ON TABLE source IS 'Raw tables registered as sources for contracts, with their person column.';

CREATE TABLE source_column (
    source_schema  name NOT NULL,
    source_table   name NOT NULL,
    column_name    name NOT NULL,
    -- image: DICOM objects (bytea), exposed only by the contract rule dicom (issue 20).
    class          text NOT NULL CHECK (class IN ('identifier', 'quasi_identifier', 'static', 'semi_static', 'dynamic', 'image')),
    classified_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    classified_by  name NOT NULL DEFAULT session_user,
    PRIMARY KEY (source_schema, source_table, column_name),
    FOREIGN KEY (source_schema, source_table) REFERENCES source ON DELETE CASCADE
);
COMMENT ON TABLE source_column IS 'The class of each source column (the guideline''s five); an unclassified column is never exposed.';

CREATE TABLE certified_user (
    role_name      name PRIMARY KEY,
    registered_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    registered_by  name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE certified_user IS 'Roles of users certified for pseudonymized data (仮名加工医療情報利用事業者).';

CREATE TABLE contract (
    contract_id     text PRIMARY KEY,
    -- statistics: the grantee reads no view; safe_counts counts them for it.
    kind            text NOT NULL CHECK (kind IN ('anonymized', 'pseudonymized', 'statistics')),
    grantee         name NOT NULL,
    purpose         text NOT NULL,
    approved_on     date NOT NULL,
    expires_on      date NOT NULL,
    k               integer CHECK (k >= 2),
    reference_date  date,
    spec            jsonb NOT NULL,
    -- encode(sha256(convert_to(spec::text, 'UTF8')), 'hex'): the stored spec's
    -- canonical jsonb text, so an auditor recomputes it (README, "The spec hash").
    spec_sha256     text NOT NULL,
    -- The schemas of the contract's views and of the data tables behind them, as
    -- the planner (medanon_core::plan) named them; SQL reads them here.
    view_schema     name NOT NULL,
    data_schema     name NOT NULL,
    -- Publish, refresh and snapshots lock this row FOR UPDATE. Consent triggers
    -- lock it FOR SHARE before they withhold anyone, so they wait for a refresh in
    -- progress, and a REPEATABLE READ opt-out that overlaps a refresh fails with a
    -- serialization error instead of missing what it wrote. Refresh and revoke take
    -- this row and the locks they need on the views together, with a lock timeout
    -- and retries (_contract_lock in contract_live.sql), so they never hold it
    -- while they wait for an analyst.
    status          text NOT NULL DEFAULT 'created' CHECK (status IN ('created', 'published', 'revoked', 'expired')),
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by      name NOT NULL DEFAULT session_user,
    published_at    timestamptz,
    -- Set by every publish and refresh.
    refreshed_at    timestamptz,
    -- The snapshot the last publish or refresh started from, the cluster it was
    -- taken on (pg_control_system().system_identifier) and the fingerprint of its
    -- plan (medanon_core::refresh): the next refresh reads the source changes this
    -- snapshot did not see, or recomputes everything when any of them does not fit.
    refresh_snapshot     pg_snapshot,
    refresh_system       text,
    refresh_fingerprint  text,
    CHECK (kind = 'pseudonymized' OR k IS NOT NULL),
    -- Onward provision (第三者提供): the contract whose data this one hands on,
    -- checked live and no less protective at create (src/expose/derive.rs);
    -- revoking it revokes this one. No foreign key: the rows are restored by
    -- pg_dump in physical order, a parent's (updated) row after its child's.
    derived_from    text CHECK (derived_from <> contract_id)
);
COMMENT ON TABLE contract IS 'Research contracts approved by the review committee, with their spec.';

CREATE TABLE provision_ledger (
    entry_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recorded_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    recorded_by  name NOT NULL DEFAULT session_user,
    contract_id  text,
    -- safe_counts: one call of safe_counts on a statistics contract (its counts
    -- are the provision). upgrade: ALTER EXTENSION medanon UPDATE changed the
    -- contract (sql/medanon--0.1.0--0.2.0.sql; the detail says what). export: a
    -- snapshot written out as delivery files (medanon-export, record_export).
    event        text NOT NULL CHECK (event IN ('create', 'publish', 'refresh', 'snapshot', 'revoke', 'expire',
                                                'key_rotation', 'safe_counts', 'upgrade', 'export')),
    spec_sha256  text,
    row_count    bigint,
    person_count bigint,
    detail       jsonb,
    -- The hash chain (set by the trigger below; see verify_ledger): the entry's
    -- place in the chain, the hash of the entry before it, and its own hash.
    chain_seq    bigint NOT NULL,
    prev_hash    text NOT NULL,
    entry_hash   text NOT NULL UNIQUE
);
COMMENT ON TABLE provision_ledger IS 'The provision record (提供記録): every create, publish, refresh, snapshot, revoke, expiry, key rotation and safe_counts call of a statistics contract. Append-only and hash-chained (verify_ledger).';

-- Numbers every safe_counts call of a statistics contract, in its ledger entry.
-- A sequence is not transactional: a call whose transaction rolls back (its
-- counts were seen, its entry is gone) leaves a gap in the numbers, which an
-- auditor sees; PostgreSQL has no autonomous transaction to keep the entry.
CREATE SEQUENCE safe_counts_call;
COMMENT ON SEQUENCE safe_counts_call IS 'Numbers safe_counts calls of statistics contracts; a gap in the ledger''s call numbers is a call whose transaction rolled back.';
CREATE TRIGGER provision_ledger_append_only BEFORE UPDATE OR DELETE ON provision_ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER provision_ledger_no_truncate BEFORE TRUNCATE ON provision_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

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
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['source', 'source_column', 'certified_user', 'contract', 'provision_ledger',
                             'provision_ledger_head'] LOOP
        PERFORM pg_catalog.pg_extension_config_dump(t, '');
        EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %I FROM PUBLIC', t);
        EXECUTE pg_catalog.format('GRANT SELECT ON TABLE %I TO medanon_operator', t);
    END LOOP;
    PERFORM pg_catalog.pg_extension_config_dump('provision_ledger_entry_id_seq', '');
    PERFORM pg_catalog.pg_extension_config_dump('safe_counts_call', '');
    REVOKE ALL ON SEQUENCE safe_counts_call FROM PUBLIC;
    GRANT SELECT ON SEQUENCE safe_counts_call TO medanon_operator, medanon_auditor;
END
$contract$;
GRANT INSERT, UPDATE, DELETE ON source, source_column, certified_user TO medanon_operator;
-- Contracts and the provision ledger are written by medanon's own functions only
-- (as the extension owner): an operator login can neither forge a ledger entry
-- nor change a contract's status without publishing or revoking it.
GRANT SELECT ON provision_ledger, provision_ledger_head TO medanon_auditor;
GRANT USAGE ON SCHEMA medanon TO medanon_auditor;
