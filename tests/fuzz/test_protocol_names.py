"""Family "protocol names": names of states, labs, facts, actions and the protocol itself,
long (around the 200-character limit), non-ASCII, keywords, near-duplicates. Right: a name of
more than 200 characters refused (E111); any name that checks compiles to a graph file that
`simulate` reads back."""

from __future__ import annotations

import re

import pytest

from fuzzkit import PROTOCOL, Case, Family, pick, slow_seed

NAMES = ["high", "ALT", "check", "stop", "fuzzed", "x", "watch", "indication"]
SHAPES = ["long", "unicode", "keyword", "digit", "dup", "underscore"]
KEYWORDS = ["state", "when", "and", "or", "not", "in", "do", "let", "max", "known", "since", "true", "entry", "panel"]


def new_name(rng, shape: str) -> str:
    if shape == "long":
        return "n" * rng.choice([199, 200, 201, 202, 255, 1000])
    if shape == "unicode":
        return pick(rng, ["é", "ß", "α", "名", "ǅ", "ﬁ", "Ⅸ", "x\u0301"]) * rng.randint(1, 4)
    if shape == "keyword":
        return pick(rng, KEYWORDS)
    if shape == "digit":
        return f"{rng.randint(0, 9)}abc"
    if shape == "dup":
        return pick(rng, NAMES)
    return "_" * rng.randint(1, 3) + "a"


def generate(rng, i: int) -> Case:
    old = pick(rng, NAMES)
    new = new_name(rng, pick(rng, SHAPES))
    source = re.sub(rf"\b{old}\b", new, PROTOCOL)
    files = {"p.rxw": source, "t.yaml": "patient: {id: p}\nstart: 2025-01-06\nevents:\n  - {date: 2025-01-06, lab: ALT, value: 30}\n"}
    if i % 2:
        return Case("protocol names", f"name {i}", files, ["check", "p.rxw"],
                    must="refuse" if len(new) > 200 else None)

    return Case("protocol names", f"name {i}", files, ["compile", "p.rxw", "-o", "g.json"], outputs=("g.json",),
                must="refuse" if len(new) > 200 else None, check=_reads_back)


def _reads_back(o) -> str:
    from fuzzkit import invoke

    back = invoke(["check", "g.json"], o.folder)
    return "" if back.status == 0 else f"the compiled graph does not read back: {back.err.strip()[:200]}"


FAMILY = Family("protocol names", generate, count=120, sample=8)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
