-- Pairwise precision and recall of person_link against the synthetic ground truth.
-- A pair is two records (institution_code, local_patient_id) of one person.
WITH j AS (
  SELECT l.person_id, t.true_person_id
    FROM medanon.person_link l JOIN synth.truth t USING (institution_code, local_patient_id)),
pred AS (SELECT sum(n * (n - 1) / 2) AS pairs FROM (SELECT count(*) AS n FROM j GROUP BY person_id) s),
truth AS (SELECT sum(n * (n - 1) / 2) AS pairs FROM (SELECT count(*) AS n FROM j GROUP BY true_person_id) s),
tp AS (SELECT sum(n * (n - 1) / 2) AS pairs FROM (SELECT count(*) AS n FROM j GROUP BY person_id, true_person_id) s)
SELECT pred.pairs AS predicted_pairs, truth.pairs AS true_pairs, tp.pairs AS true_positives,
       round(tp.pairs::numeric / nullif(pred.pairs, 0), 5) AS precision,
       round(tp.pairs::numeric / nullif(truth.pairs, 0), 5) AS recall
  FROM pred, truth, tp;
