#!/usr/bin/env python3
"""Cross-checks medanon's k, l and suppression counts against pycanon (PyPI), an
independent implementation, on generated data. Run by scripts/test.sh (tier 4)
against the test cluster; exits non-zero on the first disagreement.

The data: 3,000 persons with fixed quasi-identifiers, each with 1 to 3 visit rows
carrying a diagnosis (the sensitive attribute). medanon counts distinct persons per
class; pycanon counts rows, so it gets one row per person for k and the
suppression count, and every row for l (distinct diagnoses per class).
"""
import io
import itertools
import json
import os
import subprocess
import sys

import pandas as pd
from pycanon import anonymity

HOST, PORT, DB = (os.environ[v] for v in ("MEDANON_TEST_HOST", "MEDANON_TEST_PORT", "MEDANON_TEST_DB"))


def psql(sql: str, csv: bool = False) -> str:
    args = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", HOST, "-p", PORT, "-U", "postgres", "-d", DB]
    args += ["--csv"] if csv else ["-A", "-t"]
    return subprocess.run(args + ["-c", sql], check=True, capture_output=True, text=True).stdout.strip()


psql("""
DROP EXTENSION IF EXISTS medanon CASCADE;
CREATE EXTENSION medanon;
DROP TABLE IF EXISTS public.risk_visits;
SELECT setseed(0.42);
CREATE TABLE public.risk_visits AS
WITH persons AS (
  SELECT p AS person,
         (20 + floor(random() * 60))::int / 5 * 5 AS age_band,
         (1 + floor(random() * 2))::int AS sex,
         (ARRAY['東京都','大阪府','北海道','沖縄県','島根県','愛知県'])[1 + floor(random() * 6)::int] AS prefecture,
         (ARRAY['A','B','C','D'])[1 + floor(random() * 4)::int] AS blood,
         1 + floor(random() * 3)::int AS visits
    FROM generate_series(1, 3000) p)
SELECT person, age_band, sex, prefecture, blood,
       (ARRAY['E11','I10','J45','K21','M54','F32'])[1 + floor(random() * 6)::int] AS diagnosis
  FROM persons, generate_series(1, visits);
""")
rows = pd.read_csv(io.StringIO(psql("SELECT * FROM public.risk_visits", csv=True)), dtype=str)
persons = rows.drop_duplicates("person")

qi_columns = ["age_band", "sex", "prefecture", "blood"]
failures = []
checked = 0
for n in range(1, len(qi_columns) + 1):
    for qis in itertools.combinations(qi_columns, n):
        arr = "ARRAY[" + ",".join(f"'{q}'" for q in qis) + "]"
        ours_k = int(psql(f"SELECT medanon.k_anonymity('public.risk_visits', {arr}, 'person')"))
        theirs_k = int(anonymity.k_anonymity(persons, list(qis)))
        ours_l = int(psql(f"SELECT medanon.l_diversity('public.risk_visits', {arr}, 'diagnosis', 'person')"))
        theirs_l = int(anonymity.l_diversity(rows, list(qis), ["diagnosis"]))
        for k in (2, 5, 10):
            ours_s = int(psql(f"SELECT coalesce(sum(persons), 0) FROM medanon.k_report('public.risk_visits', {arr}, 'person', {k})"))
            sizes = persons.groupby(list(qis)).size()
            theirs_s = int(sizes[sizes < k].sum())
            checked += 1
            if ours_s != theirs_s:
                failures.append(f"{qis} k={k}: suppressed persons medanon {ours_s}, pandas {theirs_s}")
        checked += 2
        if ours_k != theirs_k:
            failures.append(f"{qis}: k medanon {ours_k}, pycanon {theirs_k}")
        if ours_l != theirs_l:
            failures.append(f"{qis}: l medanon {ours_l}, pycanon {theirs_l}")

# The search's reported suppression, for its chosen levels, against pycanon on the
# data generalized to those levels (age bands of 10 or 20 years, sex kept or not).
spec = ('{"person_column": "person", "quasi_identifiers": {"age_band": "age", "sex": {"hierarchy": "table", '
        '"table": "public.risk_sex"}, "prefecture": "geography"}}')
psql("DROP TABLE IF EXISTS public.risk_sex; CREATE TABLE public.risk_sex (value text, level1 text);"
     "INSERT INTO public.risk_sex VALUES ('1', '*'), ('2', '*');")
result = json.loads(psql(f"SELECT medanon.suggest_generalization('public.risk_visits', '{spec}', 50, 0.02)"))
levels = {q: v["level"] for q, v in result["levels"].items()}
g = persons.copy()
age = g["age_band"].astype(int)
band = [1, 5, 10, 20][levels["age_band"]] if levels["age_band"] < 4 else None
g["age_band"] = (age // band * band).astype(str) if band else "*"
g["sex"] = g["sex"] if levels["sex"] == 0 else "*"
# Geography: the values are prefectures already, so levels 0 to 2 (as stored,
# municipality: 東京都?, prefecture) coincide; level 3 is the region (taken from
# region_of: the mapping is not what is checked here).
if levels["prefecture"] == 3:
    region = dict(line.split("|") for line in psql(
        "SELECT p, medanon.region_of(p) FROM (SELECT DISTINCT prefecture AS p FROM public.risk_visits) s").splitlines())
    g["prefecture"] = g["prefecture"].map(region)
elif levels["prefecture"] >= 4:
    g["prefecture"] = "*"
sizes = g.groupby(["age_band", "sex", "prefecture"]).size()
theirs = int(sizes[sizes < 50].sum())
checked += 1
if result["suppressed_persons"] != theirs:
    failures.append(f"search at {levels}: suppressed medanon {result['suppressed_persons']}, pandas {theirs}")
kept = g[g.set_index(["age_band", "sex", "prefecture"]).index.map(lambda c: sizes[c] >= 50)]
if len(kept) and int(anonymity.k_anonymity(kept, ["age_band", "sex", "prefecture"])) < 50:
    failures.append(f"search at {levels}: what is left is not 50-anonymous by pycanon")

psql("DROP TABLE public.risk_visits, public.risk_sex")
if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print(f"risk cross-check: {checked} figures agree with pycanon/pandas "
      f"(search chose {levels}, {result['nodes_evaluated']} of {result['nodes_total']} nodes)")
