-- Quality of person_link against the synthetic ground truth (synth.truth).
-- A pair is two records (institution_code, local_patient_id) of one person.
--
--   precision          linked pairs that are truly one person / linked pairs
--   recall (linkable)  over the pairs a perfect normalizer could link: records of
--                      one true person connected, transitively, by equal clean
--                      kana name or by equal clean card, both with a readable
--                      birth date. A card shared by twins counts: telling the
--                      twin with a kana typo or no kana from the other is the
--                      linker's work (kanji names, one-edit evidence)
--   recall (overall)   over all pairs of one true person, quarantined records included
--   candidates         true pairs left unlinked that a fuzzy candidate names directly
\set QUIET on
\pset footer off
SET client_min_messages = warning;
DROP TABLE IF EXISTS pg_temp.q;
RESET client_min_messages;
CREATE TEMP TABLE q AS
SELECT t.institution_code, t.local_patient_id, t.true_person_id, l.person_id,
       t.clean_kana, t.clean_card, t.clean_birth,
       row_number() OVER (ORDER BY t.institution_code, t.local_patient_id) AS label
  FROM synth.truth t LEFT JOIN medanon.person_link l USING (institution_code, local_patient_id);
CREATE INDEX ON q (true_person_id);
ANALYZE q;
-- Connected components of what a perfect normalizer could link, by label propagation.
DO $$
DECLARE changed bigint;
BEGIN
  LOOP
    UPDATE q SET label = m.label
      FROM (SELECT a.institution_code, a.local_patient_id, min(b.label) AS label
              FROM q a JOIN q b ON a.true_person_id = b.true_person_id
             WHERE a.clean_birth IS NOT NULL AND b.clean_birth IS NOT NULL
               AND (a.clean_kana = b.clean_kana OR a.clean_card = b.clean_card)
             GROUP BY 1, 2) m
     WHERE (q.institution_code, q.local_patient_id) = (m.institution_code, m.local_patient_id) AND m.label < q.label;
    GET DIAGNOSTICS changed = ROW_COUNT;
    EXIT WHEN changed = 0;
  END LOOP;
END $$;
CREATE OR REPLACE FUNCTION pg_temp.pairs(n bigint) RETURNS numeric LANGUAGE sql IMMUTABLE RETURN n * (n - 1) / 2;
\unset QUIET
WITH
predicted AS (SELECT sum(pg_temp.pairs(n)) AS v FROM (SELECT count(*) n FROM q WHERE person_id IS NOT NULL GROUP BY person_id) s),
correct AS (SELECT sum(pg_temp.pairs(n)) AS v FROM (SELECT count(*) n FROM q WHERE person_id IS NOT NULL GROUP BY person_id, true_person_id) s),
all_true AS (SELECT sum(pg_temp.pairs(n)) AS v FROM (SELECT count(*) n FROM q GROUP BY true_person_id) s),
linkable AS (SELECT sum(pg_temp.pairs(n)) AS v FROM (SELECT count(*) n FROM q GROUP BY true_person_id, label) s),
linkable_found AS (SELECT sum(pg_temp.pairs(n)) AS v FROM (SELECT count(*) n FROM q WHERE person_id IS NOT NULL
                                                         GROUP BY true_person_id, label, person_id) s),
twins AS (SELECT count(*) AS planted,
                 count(*) FILTER (WHERE EXISTS (SELECT FROM q a JOIN q b ON a.person_id = b.person_id
                                                 WHERE a.true_person_id = p.true_person_id AND b.true_person_id = p.twin_of)) AS merged
            FROM synth.person p WHERE p.twin_of IS NOT NULL),
cand AS (SELECT count(*) AS proposed,
                count(*) FILTER (WHERE a.true_person_id = b.true_person_id) AS same_person,
                count(*) FILTER (WHERE a.true_person_id = b.true_person_id AND a.person_id <> b.person_id) AS would_add
           FROM medanon.link_candidates c
           JOIN q a ON (a.institution_code, a.local_patient_id) = (c.institution_code, c.local_patient_id)
           JOIN q b ON (b.institution_code, b.local_patient_id) = (c.other_institution_code, c.other_local_patient_id))
SELECT (SELECT count(*) FROM q) AS records,
       predicted.v AS linked_pairs,
       round(correct.v / nullif(predicted.v, 0), 5) AS precision,
       linkable.v AS linkable_pairs,
       round(linkable_found.v / nullif(linkable.v, 0), 5) AS recall_linkable,
       all_true.v AS true_pairs,
       round(correct.v / nullif(all_true.v, 0), 5) AS recall_overall,
       cand.proposed AS candidates, cand.same_person AS candidates_same_person,
       round((correct.v + cand.would_add) / nullif(all_true.v, 0), 5) AS recall_with_candidates,
       twins.planted AS twin_pairs, twins.merged AS twins_merged,
       (SELECT count(*) FROM medanon.link_conflict WHERE status = 'pending') AS conflicts_pending
  FROM predicted, correct, all_true, linkable, linkable_found, cand, twins;
