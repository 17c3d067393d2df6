-- One round of bench/link.sql step 2: the 10k batch into the empty database,
-- then into the 1M linked records, each inside BEGIN ... ROLLBACK, so that every
-- round sees the same state. :phase names the state of person_link's statistics.
\c :emptydb
BEGIN;
SELECT public.timed_link('synth_batch.registration') AS t \gset
ROLLBACK;
\c :linkdb
INSERT INTO public.link_timing VALUES ('10k into empty (' || :'phase' || ')', 0, :t, NULL);
BEGIN;
SELECT public.timed_link('synth_batch.registration', '10k into 1M (' || :'phase' || ')') AS t2 \gset
ROLLBACK;
INSERT INTO public.link_timing VALUES ('10k into 1M (' || :'phase' || ')', 0, :t2, NULL);
