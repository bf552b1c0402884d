"""Family "dates": dates and date-times at and past the calendar's ends (0001-01-01,
9999-12-31), leap days, malformed ISO text, times of day, in a timeline's start/until/events
and in --start/--until; windows and reminders that run past 9999-12-31. Right: a date that is
not one refused (E705), one out of order refused (E706), located; the rest replayed without a
crash (what would fall after 9999-12-31 never happens)."""

from __future__ import annotations

import pytest

from fuzzkit import PROTOCOL, Case, Family, pick, slow_seed

DATES = ["9999-12-31", "9999-12-30", "9999-12-18", "9999-11-30", "0001-01-01", "0001-01-02", "2024-02-29",
         "2025-02-29", "2025-01-06", "2025-13-01", "10000-01-01", "0000-12-31", "2025-1-6", "20250106",
         "2025-01-06T08:30", "2025-01-06T25:00", "2025-01-06T08:30:00Z", "2025-01-06 08:30", "9999-12-31T23:59",
         "-2025-01-01", "２０２５-01-06", "2025-01-06\u202e", "'2025-01-06'", "1e3", "null"]


def generate(rng, i: int) -> Case:
    start = pick(rng, DATES[:9])
    lines = ["patient: {id: p}", f"start: {start}"]
    if rng.random() < 0.4:
        lines.append(f"until: {pick(rng, DATES)}")
    lines.append("events:")
    for _ in range(rng.randint(1, 4)):
        lines.append(f"  - {{date: {pick(rng, DATES) if rng.random() < 0.5 else start}, lab: ALT, "
                     f"value: {pick(rng, [30, 130, 400])}}}")
    options = []
    for option in ("--start", "--until"):
        if rng.random() < 0.3:
            options += [option, pick(rng, DATES)]
    # a replay over centuries gives one reminder every 4 weeks (130,000 steps from year 1 to
    # 9999): JSON then, as a table of that many rows takes Rich most of a minute
    far = any(year in "".join(lines + options) for year in ("0001-", "9999-"))
    argv = ["simulate", "p.rxw", "t.yaml", "-f", "json" if far else pick(rng, ["json", "table"]), *options]
    return Case("dates", f"dates {i}", {"p.rxw": PROTOCOL, "t.yaml": "\n".join(lines) + "\n"}, argv)


FAMILY = Family("dates", generate, count=150)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
