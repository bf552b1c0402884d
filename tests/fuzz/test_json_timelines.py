"""Family "JSON timelines": a timeline written as JSON (`.json`, read as a timeline, not a
graph): numbers as JSON reads them (1e400, -0.0, 5,000 digits), NaN/Infinity literals, lone
surrogates, duplicate keys, deep nesting, a top level that is not an object. Right: refused
(located) or replayed, values exact."""

from __future__ import annotations

import pytest

from fuzzkit import PROTOCOL, Case, Family, pick, slow_seed

VALUES = ["32", "2.4", "1e400", "-0.0", "1" + "0" * 5000, "NaN", "Infinity", "-Infinity", '"\\ud800"', '"32"', "null",
          "[" * 1000 + "]" * 1000, "true", "1E2", "0.1e-400", '"\\u001b[2J"']


def generate(rng, i: int) -> Case:
    value = pick(rng, VALUES)
    ident = pick(rng, ['"p"', '"\\ud800"', '"[red]x[/red]"', '"\\u001b]8;;x\\u0007"', "12", '""'])
    text = ('{"patient": {"id": %s}, "start": "2025-01-06", "events": [{"date": "2025-01-06", "lab": "ALT", "value": %s}]}'
            % (ident, value))
    if rng.random() < 0.15:
        text = text.replace('"start": "2025-01-06"', '"start": "2025-01-06", "start": "2025-01-07"')
    if rng.random() < 0.1:
        text = pick(rng, ["[]", "1", '"x"', "null", "{", ""])
    return Case("JSON timelines", f"json {i}", {"p.rxw": PROTOCOL, "t.json": text},
                ["simulate", "p.rxw", "t.json", "-f", pick(rng, ["json", "table"])])


FAMILY = Family("JSON timelines", generate, count=100)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
