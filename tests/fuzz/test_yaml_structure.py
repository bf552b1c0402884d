"""Family "YAML structure": the YAML itself: anchors and aliases (a billion laughs), recursive
aliases, tags, duplicate keys, tabs, multiple documents, deep nesting, flow/block mixes, NUL
bytes, very long scalars. Right: refused (E701/E702, located) quickly and in little memory, or
replayed."""

from __future__ import annotations

import pytest

from fuzzkit import PROTOCOL, Case, Family, pick, slow_seed

BASE = "patient: {id: p}\nstart: 2025-01-06\nevents:\n  - {date: 2025-01-06, lab: ALT, value: 32}\n"
SNIPPETS = [
    "a: &a [1,2,3,4,5,6,7,8,9]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n",
    "x: &x [*x]\n", "patient: !!python/object:os.system {}\n", "start: !!timestamp 2025-01-06\n",
    "start: 2025-01-06\n", "\tpatient: {id: p}\n", "---\npatient: {id: q}\n", "...\n", "x: " + "[" * 500 + "]" * 500 + "\n",
    "x: " + "{a: " * 200 + "1" + "}" * 200 + "\n", "events: !!set {a, b}\n", "x: \x00\n", "x: " + "y" * 100000 + "\n",
    "? [a, b]\n: c\n", "<<: {patient: {id: r}}\n", "%YAML 1.1\n---\n", "events: *undefined\n", "x: !custom 1\n",
    "events:\n  - &e {date: 2025-01-06, lab: ALT, value: 1}\n  - *e\n  - *e\n", "x: |\n  a\n b\n",
]


def generate(rng, i: int) -> Case:
    text = BASE
    for _ in range(rng.randint(1, 2)):
        snippet = pick(rng, SNIPPETS)
        text = text + snippet if rng.random() < 0.6 else snippet + text
    argv = ["simulate", "p.rxw", "t.yaml", "-f", "json"]
    return Case("YAML structure", f"yaml {i}", {"p.rxw": PROTOCOL, "t.yaml": text}, argv)


FAMILY = Family("YAML structure", generate, count=100)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
