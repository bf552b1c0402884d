"""Family "protocol durations": due windows, lookbacks, reminders and timers of every size
and unit (0, 1, 99999999 years, at the 100-year bound), with timelines near the calendar's
ends. Right: a duration beyond 100 years refused (E104) before any arithmetic; anything
accepted is verified and simulated without a crash, in bounded memory."""

from __future__ import annotations

import pytest

from fuzzkit import PROTOCOL, Case, Family, pick, slow_seed

UNITS = ["days", "weeks", "months", "years"]
BOUND = {"days": 36_525, "weeks": 5_218, "months": 1_200, "years": 100}


def amount(rng, unit: str) -> int:
    return pick(rng, [0, 1, 2, BOUND[unit] - 1, BOUND[unit], BOUND[unit] + 1, 99999999, rng.randint(1, 400)])


def generate(rng, i: int) -> Case:
    unit = pick(rng, UNITS)
    a, b = amount(rng, unit), amount(rng, unit)
    spot = rng.randrange(3)
    if spot == 0:
        source = PROTOCOL.replace("due 1..2 weeks", f"due {min(a, b)}..{max(a, b)} {unit}", 1)
    elif spot == 1:
        source = PROTOCOL.replace("results valid for 3 days", f"results valid for {a} {unit}")
    else:
        source = PROTOCOL.replace("reminders every 4 weeks", f"reminders every {a} {unit}")
    big = (max(a, b) if spot == 0 else a) > BOUND[unit]
    start = pick(rng, ["2025-01-06", "9999-12-01", "9999-12-31", "0001-01-01", "9990-06-30"])
    timeline = f"patient: {{id: p}}\nstart: {start}\nevents:\n  - {{date: {start}, lab: ALT, value: {pick(rng, [30, 130, 500])}}}\n"
    files = {"p.rxw": source, "t.yaml": timeline}
    argv = ["check", "p.rxw"] if i % 2 else ["simulate", "p.rxw", "t.yaml", "-f", "json"]
    return Case("protocol durations", f"duration {i}", files, argv, must="refuse" if big else None)


FAMILY = Family("protocol durations", generate, count=150)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
