"""Family "command-line options": --start, --until, --fact, --format and unknown options of
`simulate` with hostile values: dates past the timeline's ends (--start after its until),
malformed dates, facts of every type and of no declared name, repeated options, terminal text.
Right: a located `<command line>: error[E70x]` (exit 1) or typer's usage error (exit 2), or a
replay of the days asked for."""

from __future__ import annotations

import pytest

from fuzzkit import PROTOCOL, TERMINAL, TIMELINE, Case, Family, pick, slow_seed

DATES = ["2025-01-06", "2025-03-31", "2025-04-01", "2026-01-01", "2024-12-31", "9999-12-31", "0001-01-01", "x", "",
         "2025-02-30", "2025-01-06T08:30"]
FACTS = ["liver_disease=true", "liver_disease=maybe", "indication=stills", "indication=ra ", "indication=",
         "weight=80", "weight=1e999", "weight=" + "9" * 400, "weight=nan", "nope=1", "=1", "x", "weight=-1",
         "liver_disease=1", "indication=[red]"]


def generate(rng, i: int) -> Case:
    argv = ["simulate", "p.rxw", "t.yaml", "-f", pick(rng, ["json", "table", "json", "xml"])]
    for _ in range(rng.randint(1, 4)):
        option = pick(rng, ["--start", "--until", "--fact", "--fact", "--bogus"])
        value = pick(rng, FACTS) if option == "--fact" else pick(rng, DATES)
        if rng.random() < 0.1:
            value += pick(rng, TERMINAL)
        argv += [option, value]
    return Case("command-line options", f"options {i}", {"p.rxw": PROTOCOL, "t.yaml": TIMELINE}, argv)


FAMILY = Family("command-line options", generate, count=150)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
