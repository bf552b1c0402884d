"""Family "determinism": the same command run four times on the same inputs (check, compile,
simulate as JSON and as a table, render .dot/.svg/.html, test) gives the same exit status and
byte-identical outputs; each input drawn from the other families' generators."""

from __future__ import annotations

import pytest

from fuzzkit import PROTOCOL, TIMELINE, Case, Family, pick, slow_seed

COMMANDS = [
    (["check", "p.rxw"], ()), (["check", "p.rxw", "--format", "json"], ()), (["compile", "p.rxw"], ()),
    (["compile", "p.rxw", "-o", "g.graphml"], ("g.graphml",)), (["simulate", "p.rxw", "t.yaml", "-f", "json"], ()),
    (["simulate", "p.rxw", "t.yaml", "-f", "table"], ()), (["render", "p.rxw", "-o", "o.dot"], ("o.dot",)),
    (["render", "p.rxw", "-o", "o.svg"], ("o.svg",)), (["render", "p.rxw", "-o", "o.html"], ("o.html",)),
]


def generate(rng, i: int) -> Case:
    from test_protocol_numbers import generate as numbers
    from test_timeline_fields import generate as timelines

    argv, outputs = COMMANDS[i % len(COMMANDS)]
    source = PROTOCOL if rng.random() < 0.5 else numbers(rng, i).files["p.rxw"]
    timeline = TIMELINE if rng.random() < 0.5 else timelines(rng, i).files["t.yaml"]

    return Case("determinism", f"repeat {i}", {"p.rxw": source, "t.yaml": timeline}, list(argv), outputs=outputs,
                repeat=4)


FAMILY = Family("determinism", generate, count=67, sample=3)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
