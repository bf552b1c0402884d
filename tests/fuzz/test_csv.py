"""Family "CSV": a lab CSV export edited at random: headers renamed, reordered, missing or
repeated, cells added or dropped, quotes unbalanced, delimiters and line ends changed, two
patients, BOMs, terminal text in cells. Right: refused (E70x/E711, located by row) or replayed."""

from __future__ import annotations

import pytest

from fuzzkit import CSV, PROTOCOL, TERMINAL, Case, Family, pick, slow_seed

CELLS = ["", "ALT", "CREA", "ALTT", "32", "-5", "1e999", "nan", "2025-01-06", "2025-02-30", "U/L", "mg/dL", "p-2",
         '"', '""', '"a,b"', "08:30", "x" * 300, "9" * 400, ";", "\t"]


def generate(rng, i: int) -> Case:
    rows = [r.split(",") for r in CSV.strip("\n").split("\n")]
    for _ in range(rng.randint(1, 4)):
        r = rng.randrange(len(rows))
        op = rng.randrange(6)
        if op == 0 and rows[r]:
            rows[r][rng.randrange(len(rows[r]))] = pick(rng, CELLS) if rng.random() < 0.8 else pick(rng, TERMINAL)
        elif op == 1:
            rows[r].append(pick(rng, CELLS))
        elif op == 2 and rows[r]:
            rows[r].pop(rng.randrange(len(rows[r])))
        elif op == 3:
            rows.insert(rng.randrange(len(rows) + 1), list(pick(rng, rows)))
        elif op == 4:
            rows[0][rng.randrange(len(rows[0]))] = pick(rng, ["Date", "lab ", "valu", "uln", "lln", "time", "x", ""])
        else:
            rows.pop(r)
    end = pick(rng, ["\n", "\r\n", "\r"])
    text = end.join(",".join(r) for r in rows) + end
    if rng.random() < 0.1:
        text = "\ufeff" + text
    argv = ["simulate", "p.rxw", "l.csv", "-f", pick(rng, ["json", "table"])]
    return Case("CSV", f"csv {i}", {"p.rxw": PROTOCOL, "l.csv": text}, argv)


FAMILY = Family("CSV", generate, count=200)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
