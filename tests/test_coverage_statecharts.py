"""Coverage of statecharts (suite/coverage.py; docs/scenarios.md#coverage): compound and
parallel states and tracks are states to enter; rules count by their canonical id (a block's
rule once, whichever state used it; a choice's alternatives' edges are one rule); each
alternative of a choice with consequences counts apart. Graphs are built by hand with the
format-3 attributes of docs/graph.md, traces with the steps of docs/simulation.md."""

from __future__ import annotations

import networkx as nx
import pytest

from rxwatch.suite.coverage import coverage


def span(line: int) -> dict:
    return {"path": "p.rxw", "line": line, "column": 1, "end_line": line, "end_column": 9}


def one_of(line: int, *alternatives: tuple) -> dict:
    return {"kind": "one_of", "options": [a[0] for a in alternatives], "span": span(line),
            "alternatives": [{"action": a, "target": t, "stay": False, "actions": acts} for a, t, acts in alternatives]}


def chart() -> nx.MultiDiGraph:
    g = nx.MultiDiGraph(name="chart", format="rxwatch-graph/3")
    nodes = [("on_drug", "parallel", None, 10, "initial"), ("liver", "track", "on_drug", 12, "normal"),
             ("watch", "atomic", "liver", 13, "initial"), ("high", "atomic", "liver", 20, "normal"),
             ("counts", "track", "on_drug", 30, "normal"), ("routine", "atomic", "counts", 31, "initial"),
             ("done", "atomic", None, 40, "terminal")]
    for name, typ, parent, line, kind in nodes:
        entry = [one_of(21, ("treat", None, [{"kind": "do", "action": "note", "span": span(21)}]), ("wait", None, []))] \
            if name == "high" else []
        g.add_node(name, type=typ, parent=parent, kind=kind, span=span(line), entry=entry)
    edge = dict(trigger="panel", because="", stay=False)
    # a rule of the parallel state, inherited by every track
    g.add_edge("on_drug", "done", key="on_drug/0/0", rule="on_drug/0/0", block=None, alternative=None,
               span=span(11), **{**edge, "trigger": "event"}, events=["stop"])
    # block grading (rule 0 -> done) used in watch and in high
    for state, handler in (("watch", 0), ("high", 0)):
        g.add_edge(state, "done", key=f"{state}/{handler}/0", rule="grading#0", block="grading", alternative=None,
                   span=span(5), **{**edge, "because": "x > 5"})
    # a choice with targets in watch: alternative 0 -> high, alternative 1 stays
    choice = one_of(15, ("reduce", "high", []), ("interrupt", None, [{"kind": "set", "var": "v"}]))
    g.add_edge("watch", "high", key="watch/0/1", rule="watch/0/1", block=None, alternative=0, span=span(14),
               actions=[choice], **{**edge, "because": "x > 2"})
    g.add_edge("watch", "watch", key="watch/0/1@1", rule="watch/0/1", block=None, alternative=1, span=span(14),
               actions=[choice], **{**edge, "because": "x > 2", "stay": True})
    g.add_edge("high", "watch", key="high/0/1", rule="high/0/1", block=None, alternative=None, span=span(22), **edge)
    g.add_edge("routine", "routine", key="routine/0/0", rule="routine/0/0", block=None, alternative=None,
               span=span(32), **{**edge, "stay": True})
    return g


def enter(state: str) -> dict:
    return {"date": "2025-01-06", "type": "enter", "state": state}


START = [enter("on_drug"), enter("liver"), enter("watch"), enter("counts"), enter("routine")]


def test_every_kind_of_state_counts_and_is_named_by_its_kind():
    report = coverage(chart(), [{"steps": [enter("on_drug"), enter("liver"), enter("watch")]}])
    assert [s.name for s in report.missing_states] == ["high", "counts", "routine", "done"]
    text = report.format_text().splitlines()
    assert text[0] == "coverage of chart: 18.8% (states 3/7, transitions 0/5, choices 0/4; 1 trace)"
    assert "  p.rxw:30: track counts never entered" in text
    assert "  p.rxw:20: state high never entered" in text
    report = coverage(chart(), [{"steps": [enter("liver")]}])
    assert "  p.rxw:10: parallel state on_drug never entered" in report.format_text().splitlines()
    data = report.to_dict()["states"]["missing"]
    assert {"state": "on_drug", "path": "p.rxw", "line": 10, "type": "parallel"} in data
    assert {"state": "high", "path": "p.rxw", "line": 20} in data   # atomic: as before


def test_a_block_rule_counts_once_wherever_it_fired():
    g = chart()
    report = coverage(g, [{"steps": [*START, {"date": "2025-02-01", "type": "transition", "from": "high", "to": "done",
                                              "rule": "high/0/0"}]}])
    assert "grading#0" in report.covered_edges
    assert [e.key for e in report.edges] == ["grading#0", "on_drug/0/0", "watch/0/1", "high/0/1", "routine/0/0"]
    assert report.to_dict()["transitions"]["total"] == 5   # 7 edges: the block's two, the choice's two are one each
    missing = {e.key for e in report.missing_edges}
    assert missing == {"on_drug/0/0", "watch/0/1", "high/0/1", "routine/0/0"}


def test_a_block_rule_never_fired_is_reported_with_its_states():
    report = coverage(chart(), [{"steps": START}])
    lines = report.format_text().splitlines()
    assert "  p.rxw:5: rule grading#0 never fired: block grading, used in watch, high: -> done on panel when x > 5" in lines
    assert "  p.rxw:11: rule on_drug/0/0 never fired: on_drug -> done on event stop" in lines
    missing = report.to_dict()["transitions"]["missing"]
    assert missing[0] == {"rule": "grading#0", "from": "watch", "to": "done", "trigger": "panel", "because": "x > 5",
                          "stay": False, "path": "p.rxw", "line": 5, "block": "grading", "states": ["watch", "high"]}


def test_an_inherited_rule_is_covered_from_any_track():
    step = {"date": "2025-03-01", "type": "transition", "from": "routine", "to": "done", "rule": "on_drug/0/0",
            "track": "counts"}
    report = coverage(chart(), [{"steps": [*START, step]}])
    assert "on_drug/0/0" in report.covered_edges


def test_each_alternative_of_a_choice_counts_taken_or_not():
    taken_second = [*START,
                    {"date": "2025-02-01", "type": "transition", "from": "watch", "to": "watch", "stay": True,
                     "rule": "watch/0/1@1", "alternative": "interrupt", "track": "liver"},
                    {"date": "2025-02-01", "type": "action", "action": "interrupt", "options": ["reduce", "interrupt"],
                     "state": "watch", "line": 15, "track": "liver"}]
    report = coverage(chart(), [{"steps": taken_second}])
    assert "watch/0/1" in report.covered_edges                  # the rule fired (its second alternative)
    assert [(a.action, a.line) for a in report.missing_alternatives] == [("reduce", 15), ("treat", 21), ("wait", 21)]
    lines = report.format_text().splitlines()
    assert lines[0] == "coverage of chart: 43.8% (states 5/7, transitions 1/5, choices 1/4; 1 trace)"
    assert "  p.rxw:15: choice reduce -> high (of reduce, interrupt) in rule watch/0/1 never taken" in lines
    assert "  p.rxw:21: choice treat (of treat, wait) in entry of high never taken" in lines
    alternatives = report.to_dict()["alternatives"]
    assert (alternatives["total"], alternatives["covered"]) == (4, 1)
    assert alternatives["missing"][0] == {"action": "reduce", "alternative": 0, "options": ["reduce", "interrupt"],
                                          "state": "watch", "rule": "watch/0/1", "to": "high", "path": "p.rxw", "line": 15}
    # the first alternative, by its transition alone (the step of the action taken is what usually says it)
    first = [*START, {"date": "2025-02-01", "type": "transition", "from": "watch", "to": "high", "rule": "watch/0/1",
                      "alternative": "reduce"}, enter("high"),
             {"date": "2025-02-01", "type": "action", "action": "wait", "options": ["treat", "wait"], "state": "high", "line": 21}]
    report = coverage(chart(), [{"steps": taken_second}, {"steps": first}])
    assert [a.action for a in report.missing_alternatives] == ["treat"]


def test_an_action_of_the_same_name_elsewhere_is_not_the_alternative():
    step = {"date": "2025-02-01", "type": "action", "action": "reduce", "state": "watch", "line": 40}
    assert len(coverage(chart(), [{"steps": [*START, step]}]).missing_alternatives) == 4


def test_everything_covered():
    steps = [*START,
             {"date": "2025-01-10", "type": "transition", "from": "watch", "to": "high", "rule": "watch/0/1", "alternative": "reduce"},
             {"date": "2025-01-10", "type": "action", "action": "reduce", "options": ["reduce", "interrupt"], "line": 15},
             enter("high"),
             {"date": "2025-01-10", "type": "action", "action": "treat", "options": ["treat", "wait"], "line": 21},
             {"date": "2025-01-20", "type": "transition", "from": "high", "to": "watch", "rule": "high/0/1"},
             enter("watch"),
             {"date": "2025-01-20", "type": "action", "action": "interrupt", "options": ["reduce", "interrupt"], "line": 15},
             {"date": "2025-01-20", "type": "transition", "from": "routine", "to": "routine", "rule": "routine/0/0", "stay": True},
             {"date": "2025-01-21", "type": "action", "action": "wait", "options": ["treat", "wait"], "line": 21},
             {"date": "2025-02-01", "type": "transition", "from": "watch", "to": "done", "rule": "watch/0/0"},
             {"date": "2025-02-01", "type": "transition", "from": "on_drug", "to": "done", "rule": "on_drug/0/0"},
             enter("done")]
    report = coverage(chart(), [{"steps": steps}])
    assert report.complete and report.percent == 100
    assert report.format_text() == "coverage of chart: 100% (states 7/7, transitions 5/5, choices 4/4; 1 trace)"


def test_a_choice_without_consequences_is_not_counted():
    g = chart()
    plain = {"kind": "one_of", "options": ["a", "b"], "span": span(50),
             "alternatives": [{"action": "a", "target": None, "stay": False, "actions": []},
                              {"action": "b", "target": None, "stay": False, "actions": []}]}
    g.nodes["done"]["entry"] = [plain, {"kind": "one_of", "options": ["c", "d"], "span": span(51)}]  # format 2: no alternatives
    assert len(coverage(g, []).alternatives) == 4
