"""The complete protocols docs/language.md shows compile without a finding, verifier included."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rxwatch.compiler import compile_source

DOC = (Path(__file__).parent.parent / "docs" / "language.md").read_text(encoding="utf-8")


def example(heading: str) -> str:
    section = DOC.split(f"\n## {heading}\n", 1)[1]
    return re.search(r"```\n(.*?)```", section, flags=re.S).group(1)


@pytest.mark.parametrize("heading", ["A complete small protocol", "A small statechart", "A derived value in its clinical unit"])
def test_the_documented_protocols_compile_without_findings(heading):
    r = compile_source(example(heading), "demo.rxw")
    assert r.ok and r.diagnostics == [], [str(d) for d in r.diagnostics]


def test_the_statechart_example_uses_what_it_says_it_does():
    g = compile_source(example("A small statechart"), "demo.rxw").graph
    assert [n for n in g if g.nodes[n]["type"] == "track"] == ["liver", "neutrophils"]
    assert g.nodes["on_drug"]["type"] == "parallel"
    assert set(g.graph["blocks"]) == {"severe_liver"}
    assert g.graph["drugs"]["tocilizumab"]["doses"] == [8, 4]
    assert g.graph["schedule_tolerance"]["amount"] == 2
    assert g.graph["lets"]["alt"]["unit"] == "1"
    assert {e["alternative"] for _, _, e in g.edges(data=True)} == {None, 0, 1}
    windows = [a["window"] for n in g for a in g.nodes[n]["entry"]]
    assert any(w["every"] for w in windows) and any(w["tolerance"] for w in windows)
    assert any(c["locator"] for _, _, e in g.edges(data=True) for c in e["citations"])
