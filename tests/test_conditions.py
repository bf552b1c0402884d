"""Condition and window coverage (`rxwatch test --coverage`): each condition shown deciding both ways."""

from __future__ import annotations

import json
from pathlib import Path

from rxwatch.cli.main import main
from rxwatch.compiler import compile_source
from rxwatch.suite.cases import load_case
from rxwatch.suite.conditions import condition_coverage, sites, text

from test_mutants import CASE, PROTOCOL


def _graph():
    r = compile_source(PROTOCOL, "grading.rxw", verify=False)
    assert r.ok
    return r.graph


def _cases(tmp_path: Path, graph, specs) -> list:
    out = []
    for i, (events, expect) in enumerate(specs):
        p = tmp_path / f"c{i}.yaml"
        p.write_text(CASE.format(events=events, expect=expect), encoding="utf-8")
        out.append((str(p), load_case(str(p), graph)))
    return out


def _by_text(report):
    return {(c.where, c.text): c for c in report.conditions}


def test_every_condition_and_window_end_is_listed_once():
    conds, wins = sites(_graph())
    texts = sorted(c.text for c, _ in conds)
    assert texts == sorted(["tx > 5", "3 < tx <= 5", "tx > 1", "frail", "tx <= 1"])
    assert sorted((w.window, w.end) for w, _ in wins) == sorted([
        ("due 2..4 weeks", "opens"), ("due 2..4 weeks", "closes"), ("due within 7 days", "closes"),
        ("due 1..2 weeks", "opens"), ("due 1..2 weeks", "closes")])


def test_a_condition_that_only_ever_fires_its_rule_is_shown_one_way(tmp_path):
    g = _graph()
    # ALT 400 (10 x ULN): `tx > 5` is true and decides; never seen false where it mattered
    report = condition_coverage(g, _cases(tmp_path, g, [("  - {date: 2025-01-20, lab: ALT, value: 400}", "  - final state stopped")]), jobs=1)
    c = _by_text(report)[("rule 'when tx > 5' of watch", "tx > 5")]
    assert c.shown_true and not c.shown_false and not c.covered


def test_both_ways_and_the_masked_condition(tmp_path):
    g = _graph()
    specs = [("  - {date: 2025-01-20, lab: ALT, value: 400}", "  - final state stopped"),
             ("  - {date: 2025-01-20, lab: ALT, value: 160}", "  - final state held"),
             ("  - {date: 2025-01-20, lab: ALT, value: 60}", "  - final state watch")]
    report = condition_coverage(g, _cases(tmp_path, g, specs), jobs=2)
    got = _by_text(report)
    assert got[("rule 'when tx > 5' of watch", "tx > 5")].covered
    # frail is false in every case and `tx > 1 and frail` never fires: held true, ALT 60 changes the
    # trace (shown false); held false changes nothing (never shown true)
    frail = got[("rule 'when tx > 1 and frail' of watch", "frail")]
    assert frail.shown_false and not frail.shown_true
    assert 0 < report.percent() < 100


def test_text_of_conditions():
    assert text({"op": "compare", "ops": ["<", "<="], "args": [{"op": "num", "value": 3}, {"op": "let", "name": "tx"},
                                                            {"op": "num", "value": 5}]}) == "3 < tx <= 5"
    assert text({"op": "call", "func": "known", "args": [{"op": "lab", "name": "ALT"}]}) == "known(ALT)"


def test_cli_coverage_text_and_json(tmp_path, capsys):
    proto = tmp_path / "grading.rxw"
    proto.write_text(PROTOCOL, encoding="utf-8")
    case = tmp_path / "c.yaml"
    case.write_text(CASE.format(events="  - {date: 2025-01-20, lab: ALT, value: 400}", expect="  - final state stopped"),
                    encoding="utf-8")
    assert main(["test", str(proto), str(case), "--coverage", "--jobs", "1"]) == 0
    out, _ = capsys.readouterr()
    assert "condition coverage of grading:" in out
    assert f"{proto}:11: `tx > 5` (rule 'when tx > 5' of watch) never shown deciding when false" in out
    assert main(["test", str(proto), str(case), "--coverage", "--format", "json", "--jobs", "1"]) == 0
    data = json.loads(capsys.readouterr()[0])
    cond = data["coverage"]["conditions"]
    assert cond["summary"]["conditions"] == 5 and len(cond["conditions"]) == 5
    assert {"where", "line", "condition", "shown_true", "shown_false"} <= set(cond["conditions"][0])


MASKED = """\
protocol masked
source s "a source"
lab ALT unit "U/L" uln 40
action order_alt "ALT" orders ALT
action hold "Hold the drug"
let tx = xuln(ALT)
initial state watch {
  on entry { do order_alt due 2..4 weeks cite s }
  on panel {
    when tx > 5 -> stopped cite s
    when tx > 1 and tx <= 5 -> held cite s { do hold cite s }
    otherwise stay cite s
  }
}
state held {
  on panel { otherwise stay cite s }
}
terminal state stopped
"""


def _masked(tmp_path: Path, text: str):
    r = compile_source(text, "masked.rxw", verify=False)
    assert r.ok
    p = tmp_path / "c.yaml"
    p.write_text(CASE.replace("protocol: grading", "protocol: masked").format(
        events="  - {date: 2025-01-20, lab: ALT, value: 400}", expect="  - final state stopped"), encoding="utf-8")
    return condition_coverage(r.graph, [(str(p), load_case(str(p), r.graph))], jobs=1)


def test_a_condition_first_match_masks_is_proven_unable_to_decide(tmp_path):
    # `tx <= 5` is only read when `tx > 5` was false: held true, nothing can change (proven),
    # so it is left out of the percentage and listed as such
    report = _masked(tmp_path, MASKED)
    c = _by_text(report)[("rule 'when tx > 1 and tx <= 5' of watch", "tx <= 5")]
    assert c.moot_false and not c.moot_true and not c.shown_false
    assert report.summary()["moot"] == 1
    assert "`tx <= 5` (rule 'when tx > 1 and tx <= 5' of watch) cannot decide when false: proven, left out" \
        in report.format_text()
    # `tx > 1` can decide both ways: not moot, just not shown by this one case
    t = _by_text(report)[("rule 'when tx > 1 and tx <= 5' of watch", "tx > 1")]
    assert not t.moot_true and not t.moot_false


def test_a_condition_first_match_does_not_mask_is_not_left_out(tmp_path):
    # with `tx > 6` first, tx = 5.5 reaches `tx <= 5` false: it can decide, it is not moot
    report = _masked(tmp_path, MASKED.replace("when tx > 5 -> stopped", "when tx > 6 -> stopped"))
    c = _by_text(report)[("rule 'when tx > 1 and tx <= 5' of watch", "tx <= 5")]
    assert not c.moot_false and not c.moot_true
    assert report.summary()["moot"] == 0
