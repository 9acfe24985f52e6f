#!/usr/bin/env python3
"""Checks docs/MAPPING.md: every `works` row names at least one test, and every test it
names as `module::test` exists as `fn test` in tests/*/module.rs or tests/module.rs (or
in src/ for unit tests)."""
import os
import re
import sys

bad = []
rows = 0
for n, line in enumerate(open("docs/MAPPING.md"), 1):
    if not line.startswith("|"):
        continue
    cols = [c.strip() for c in re.split(r"(?<!\\)\|", line)]
    if len(cols) < 6 or cols[3] != "works":
        continue
    rows += 1
    test = cols[4]
    refs = re.findall(r"`([A-Za-z_0-9]+)::([A-Za-z_0-9]+)`", test)
    if not refs and "doctest" not in test and "unit" not in test:
        bad.append(f"line {n}: a `works` row names no test: {cols[1]}")
    for f, t in refs:
        paths = [f"tests/{f}.rs"] + [
            os.path.join("tests", d, f + ".rs")
            for d in os.listdir("tests")
            if os.path.isdir(os.path.join("tests", d))
        ]
        if any(
            os.path.exists(p) and re.search(r"fn " + t + r"\b", open(p).read()) for p in paths
        ):
            continue
        found = any(
            re.search(r"fn " + t + r"\b", open(os.path.join(d, x)).read())
            for d, _, xs in os.walk("src")
            for x in xs
            if x.endswith(".rs")
        )
        if not found:
            bad.append(f"line {n}: names {f}::{t}, which does not exist")
for b in bad:
    print(b)
print(f"MAPPING.md: {rows} works rows checked, {len(bad)} problems")
sys.exit(1 if bad else 0)
