-- One publish of bench/publish_jit.sql: contract w:n with the session's jit = :jit,
-- after a CHECKPOINT; revoked afterwards, so the next publish starts from the same state.
CHECKPOINT;
SET jit = :jit;
SELECT format($$SELECT medanon.publish_contract('w%s')$$, :n) AS publish \gset
INSERT INTO publish_jit SELECT :n, current_setting('jit'), pg_temp.elapsed_ms(:'publish');
RESET jit;
SELECT medanon.revoke_contract('w' || :n);
