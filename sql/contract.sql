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
    class          text NOT NULL CHECK (class IN ('identifier', 'quasi_identifier', 'static', 'semi_static', 'dynamic')),
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
    kind            text NOT NULL CHECK (kind IN ('anonymized', 'pseudonymized')),
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
    -- serialization error instead of missing what it wrote.
    status          text NOT NULL DEFAULT 'created' CHECK (status IN ('created', 'published', 'revoked', 'expired')),
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by      name NOT NULL DEFAULT session_user,
    published_at    timestamptz,
    -- Set by every publish and refresh.
    refreshed_at    timestamptz,
    CHECK (kind = 'pseudonymized' OR k IS NOT NULL)
);
COMMENT ON TABLE contract IS 'Research contracts approved by the review committee, with their spec.';

CREATE TABLE provision_ledger (
    entry_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recorded_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    recorded_by  name NOT NULL DEFAULT session_user,
    contract_id  text,
    event        text NOT NULL CHECK (event IN ('create', 'publish', 'refresh', 'snapshot', 'revoke', 'expire',
                                                'key_rotation')),
    spec_sha256  text,
    row_count    bigint,
    person_count bigint,
    detail       jsonb
);
COMMENT ON TABLE provision_ledger IS 'The provision record (提供記録): every create, publish, refresh, snapshot, revoke, expiry and key rotation. Append-only.';
CREATE TRIGGER provision_ledger_append_only BEFORE UPDATE OR DELETE ON provision_ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER provision_ledger_no_truncate BEFORE TRUNCATE ON provision_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

DO $contract$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['source', 'source_column', 'certified_user', 'contract', 'provision_ledger'] LOOP
        PERFORM pg_catalog.pg_extension_config_dump(t, '');
        EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %I FROM PUBLIC', t);
        EXECUTE pg_catalog.format('GRANT SELECT ON TABLE %I TO medanon_operator', t);
    END LOOP;
    PERFORM pg_catalog.pg_extension_config_dump('provision_ledger_entry_id_seq', '');
END
$contract$;
GRANT INSERT, UPDATE, DELETE ON source, source_column, certified_user TO medanon_operator;
GRANT INSERT ON contract, provision_ledger TO medanon_operator;
GRANT UPDATE (status) ON contract TO medanon_operator;
GRANT SELECT ON provision_ledger TO medanon_auditor;
GRANT USAGE ON SCHEMA medanon TO medanon_auditor;
