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
