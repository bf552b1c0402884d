"""Family "timeline fields": a YAML timeline's keys and values replaced, removed, repeated or
retyped (patient, its id and facts, start, until, events and every key of an event: lab, value,
unit, uln, lln, time, event, fact, choice). Right: refused with located E7xx messages (a column
for YAML), or replayed."""

from __future__ import annotations

import pytest

from fuzzkit import PROTOCOL, TERMINAL, TIMELINE, Case, Family, pick, slow_seed

KEYS = ["lab", "value", "unit", "uln", "lln", "time", "event", "fact", "choice", "date", "extra"]
VALUES = ["ALT", "ALTT", "CREA", "stop", "liver_disease", "treat", "32", "-1", "0", "1e999", ".nan", "null", "[]",
          "{}", "'text'", "true", "2025-01-06", "08:30", "25:99", "U/L", "mg/dL", "kU/L", "\"\"", "~", "!!binary aGk=",
          "&a 1", "*a", "|\n    x", "9" * 50, "'[red]x[/red]'", "1.5", "3/4"]


def event(rng) -> str:
    keys = {"date": pick(rng, ["2025-01-06", "2025-01-20", "2025-02-10", "2025-13-01", "x", "2024-12-31"])}
    kind = pick(rng, ["lab", "event", "fact", "choice"])
    keys[kind] = pick(rng, VALUES)
    for _ in range(rng.randint(0, 3)):
        keys[pick(rng, KEYS)] = pick(rng, VALUES)
    return "  - {" + ", ".join(f"{k}: {v}" for k, v in keys.items()) + "}"


def mild(rng) -> str:
    """The base timeline with one value of one line changed (most such edits still replay)."""
    lines = TIMELINE.rstrip("\n").split("\n")
    k = rng.randrange(len(lines))
    head, sep, value = lines[k].rpartition(": ")
    if sep:
        value = pick(rng, VALUES + ["45", "2025-02-01", "ra", "stills", "p-2", "U/L", "08:30"])
        lines[k] = f"{head}: {value}" + ("}" if head.count("{") > head.count("}") else "")
    return "\n".join(lines) + "\n"


def generate(rng, i: int) -> Case:
    if i % 3 == 0:
        return Case("timeline fields", f"timeline {i}", {"p.rxw": PROTOCOL, "t.yaml": mild(rng)},
                    ["simulate", "p.rxw", "t.yaml", "-f", pick(rng, ["json", "table"])])
    patient = pick(rng, ["{id: p-1}", "{id: 12}", "{}", "[]", "{id: p, facts: {liver_disease: maybe}}",
                         "{id: p, facts: {indication: stills, weight: 80}}", "{id: p, extra: 1}", "p",
                         "{id: ''}", "{id: p, facts: {nope: 1}}", "{id: p, facts: []}"])
    lines = [f"patient: {patient}" if rng.random() < 0.95 else "",
             f"start: {pick(rng, ['2025-01-06', '2025-01-05', 'x', '', '2025-02-30'])}" if rng.random() < 0.95 else "",
             f"until: {pick(rng, ['2025-03-31', '2024-01-01', 'x'])}" if rng.random() < 0.5 else "",
             "events:" if rng.random() < 0.95 else "evnts:"]
    lines += [event(rng) for _ in range(rng.randint(0, 6))]
    if rng.random() < 0.1:
        lines.append(f"extra: {pick(rng, TERMINAL)!r}")
    files = {"p.rxw": PROTOCOL, "t.yaml": "\n".join(lines) + "\n"}
    fmt = pick(rng, ["json", "table"])
    return Case("timeline fields", f"timeline {i}", files, ["simulate", "p.rxw", "t.yaml", "-f", fmt])


FAMILY = Family("timeline fields", generate, count=250)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
