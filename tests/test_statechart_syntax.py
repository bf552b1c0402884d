"""Statecharts in the front end (issue 11): nested states, parallel tracks, and what they
compile to (the format-3 node attributes of docs/graph.md)."""

from __future__ import annotations

import json

import pytest

from rxwatch.compiler import compile_source, graphio

HEAD = """\
protocol p
source s "A source" kind label
event jaundice
event stop
event neutropenia
event recovered
"""

CHART = HEAD + """\
initial state start { on event stop { otherwise -> on_drug cite s } }
state on_drug "On the drug" {
  on event jaundice { otherwise -> stopped cite s }
  track liver "Liver" {
    state early "First weeks" { on event recovered { otherwise -> routine cite s } }
    initial state routine "Routine" { on event recovered { otherwise -> early cite s } }
  }
  track counts "Blood counts" {
    state normal { on event neutropenia { otherwise -> low cite s } }
    state low {
      on event recovered { otherwise -> normal cite s }
      state low_first { on event neutropenia { otherwise -> low_again cite s } }
      state low_again { on event neutropenia { otherwise -> stopped cite s } }
    }
  }
}
terminal state stopped
"""


def compiled(text: str, verify: bool = False):
    r = compile_source(text, "c.rxw", verify=verify)
    assert r.ok, [str(d) for d in r.diagnostics]
    return r


def codes(text: str) -> list[tuple[str, int]]:
    r = compile_source(text, "c.rxw", verify=False)
    return [(d.code, d.span.line) for d in r.diagnostics if d.is_error]


CHART_KEYS = ("type", "parent", "children", "initial_child", "track", "depth", "doc_order")


def test_nested_states_and_tracks_are_parsed_in_document_order():
    m = compiled(CHART).module
    assert [s.name.text for s in m.top] == ["start", "on_drug", "stopped"]
    assert [s.name.text for s in m.states] == ["start", "on_drug", "early", "routine", "normal", "low", "low_first",
                                               "low_again", "stopped"]
    assert [t.name.text for t in m.tracks] == ["liver", "counts"]
    on_drug = m.top[1]
    assert [t.name.text for t in on_drug.tracks] == ["liver", "counts"] and on_drug.states == ()
    assert on_drug.tracks[0].description == "Liver"
    assert on_drug.tracks[0].span.line == 10 and on_drug.tracks[0].name.span.column == 9
    assert [s.name.text for s in on_drug.tracks[1].states[1].states] == ["low_first", "low_again"]


def test_every_state_and_track_is_a_node_with_its_place_in_the_chart():
    g = compiled(CHART).graph
    assert g.graph["format"] == "rxwatch-graph/3"
    assert list(g.nodes) == ["start", "on_drug", "liver", "early", "routine", "counts", "normal", "low", "low_first",
                             "low_again", "stopped"]
    got = {n: tuple(g.nodes[n][k] for k in ("kind",) + CHART_KEYS) for n in g.nodes}
    assert got == {
        "start": ("initial", "atomic", None, [], None, None, 0, 0),
        "on_drug": ("normal", "parallel", None, ["liver", "counts"], None, None, 0, 1),
        "liver": ("normal", "track", "on_drug", ["early", "routine"], "routine", None, 1, 2),
        "early": ("normal", "atomic", "liver", [], None, "liver", 2, 3),
        "routine": ("initial", "atomic", "liver", [], None, "liver", 2, 4),
        "counts": ("normal", "track", "on_drug", ["normal", "low"], "normal", None, 1, 5),
        "normal": ("normal", "atomic", "counts", [], None, "counts", 2, 6),
        "low": ("normal", "compound", "counts", ["low_first", "low_again"], "low_first", "counts", 2, 7),
        "low_first": ("normal", "atomic", "low", [], None, "counts", 3, 8),
        "low_again": ("normal", "atomic", "low", [], None, "counts", 3, 9),
        "stopped": ("terminal", "atomic", None, [], None, None, 0, 10),
    }
    liver = g.nodes["liver"]
    assert (liver["entry"], liver["handlers"], liver["sources"], liver["description"]) == ([], [], [], "Liver")
    assert g.graph["initial"] == "start"


def test_a_compound_state_s_rules_are_edges_from_it():
    g = compiled(CHART).graph
    assert ("on_drug", "stopped", "on_drug/0/0") in g.edges(keys=True)
    assert g.nodes["on_drug"]["handlers"][0]["rules"] == ["on_drug/0/0"]
    assert ("low", "normal", "low/0/0") in g.edges(keys=True)
    assert not any(u in ("liver", "counts") or v in ("liver", "counts") for u, v in g.edges())


def test_a_nested_chart_reads_back_from_its_graph_file():
    g = compiled(CHART).graph
    back = graphio.from_json(graphio.to_json(g))
    for n in g.nodes:
        assert {k: back.nodes[n][k] for k in CHART_KEYS} == {k: g.nodes[n][k] for k in CHART_KEYS}


@pytest.mark.parametrize(
    "edit, fault",
    [
        (lambda d: d["nodes"][3].update(parent="counts"), "nodes[3].parent: \"counts\" does not list \"early\""),
        (lambda d: d["nodes"][3].update(depth=1), "nodes[3].depth: must be 2"),
        (lambda d: d["nodes"][3].update(track=None), "nodes[3].track: must be \"liver\""),
        (lambda d: d["nodes"][2].update(initial_child="normal"), "nodes[2].initial_child: must be one of the children"),
        (lambda d: d["nodes"][1].update(initial_child="liver"), "nodes[1].initial_child: must be null"),
        (lambda d: d["nodes"][2].update(type="compound"), "nodes[2].parent: the children of the parallel state \"on_drug\" are tracks"),
        (lambda d: d["nodes"][0].update(type="track"), "nodes[0].parent: a track belongs to a parallel state"),
        (lambda d: d["nodes"][4].update(doc_order=3), "nodes[4].doc_order: 3 is also the doc_order of \"early\""),
        (lambda d: d["edges"][0].update(target="liver"), "edges[0].target: \"liver\" is a track"),
        (lambda d: d["graph"].update(initial="early"), "graph.initial: \"early\" is not a top-level state"),
        (lambda d: d["nodes"][3].pop("doc_order"), "nodes[3].doc_order: missing"),
    ],
)
def test_a_graph_file_whose_chart_does_not_hold_together_is_refused(edit, fault):
    data = json.loads(graphio.to_json(compiled(CHART).graph))
    assert data["nodes"][3]["id"] == "early" and data["edges"][0]["source"] == "start"
    edit(data)
    with pytest.raises(graphio.GraphError) as e:
        graphio.from_json(json.dumps(data))
    assert any(fault in d.message for d in e.value.diagnostics), [d.message for d in e.value.diagnostics]


FLAT = HEAD + """\
lab ALT "alanine aminotransferase" unit "U/L" uln 40
initial state a { on panel { when ALT > 120 -> b cite s  otherwise stay cite s } on event stop { otherwise -> c cite s } }
state b { on panel { when ALT < 40 -> a cite s } on event stop { otherwise -> c cite s } }
terminal state c
"""


def test_a_flat_protocol_is_one_region_of_atomic_states():
    g = compiled(FLAT).graph
    assert list(g.nodes) == ["a", "b", "c"]
    for i, n in enumerate(g.nodes):
        assert {k: g.nodes[n][k] for k in CHART_KEYS} == {
            "type": "atomic", "parent": None, "children": [], "initial_child": None, "track": None, "depth": 0,
            "doc_order": i}
    for _, _, k, e in g.edges(keys=True, data=True):
        assert (e["rule"], e["block"], e["alternative"]) == (k, None, None)
    assert g.graph["blocks"] == {}


def test_the_default_child_is_the_one_marked_initial_else_the_first():
    g = compiled(HEAD + """\
initial state a {
  state a1 { on event stop { otherwise -> a2 cite s } }
  state a2 { on event stop { otherwise -> a1 cite s } }
}
""").graph
    assert g.nodes["a"]["initial_child"] == "a1"
    assert g.nodes["a1"]["kind"] == "normal"


# ---------------------------------------------------------------- structure


def test_reachability_follows_the_chart():
    # entering on_drug enters both tracks at their initial states; 'early' only by a rule
    assert codes(CHART) == []
    text = CHART.replace("initial state routine \"Routine\" { on event recovered { otherwise -> early cite s } }",
                         "initial state routine \"Routine\" { on event recovered { otherwise stay cite s } }")
    assert codes(text) == [("E403", 11)]  # early: not initial, and no rule leads to it
    # a rule of the compound state 'low' leading into one of its children reaches it
    text = CHART.replace("state low_first { on event neutropenia { otherwise -> low_again cite s } }",
                         "state low_first { on event neutropenia { otherwise stay cite s } }")
    assert codes(text) == [("E403", 19)]  # low_again
    text = text.replace("on event recovered { otherwise -> normal cite s }",
                        "on event recovered { otherwise -> normal cite s }\n      on event jaundice { otherwise -> low_again cite s }")
    assert codes(text) == []


def test_rules_may_leave_a_track_or_re_enter_its_parallel_state_but_not_move_a_sibling():
    base = CHART.replace("state low_first { on event neutropenia { otherwise -> low_again cite s } }",
                         "state low_first { on event neutropenia { otherwise -> TARGET cite s } }")
    assert codes(base.replace("TARGET", "on_drug")) == [("E403", 19)]  # (low_again unreached: fine here)
    assert codes(base.replace("TARGET", "start")) == [("E403", 19)]
    assert codes(base.replace("TARGET", "normal")) == [("E403", 19)]  # the same track
    assert codes(base.replace("TARGET", "early")) == [("E412", 18), ("E403", 19)]  # another track
    # the parallel state's own rule may lead into any of its tracks
    text = CHART.replace("on event jaundice { otherwise -> stopped cite s }", "on event jaundice { otherwise -> early cite s }")
    assert ("E412", 9) not in codes(text)


def test_a_sibling_track_of_an_enclosing_parallel_state_is_found_from_deep_inside():
    text = HEAD + """\
initial state outer {
  track a { state a1 { track x { state x1 { on event stop { otherwise -> b1 cite s } } }
                       track y { state y1 { on event stop { otherwise -> x1 cite s } } } } }
  track b { state b1 { on event stop { otherwise stay cite s } } }
}
"""
    got = codes(text)
    assert ("E412", 8) in got and ("E412", 9) in got
    r = compile_source(text, "c.rxw", verify=False)
    messages = [d.message for d in r.diagnostics if d.code == "E412"]
    assert any("'x1' is in track 'a' of 'outer'" in m for m in messages)
    assert any("'y1' is in track 'y' of 'a1', and 'x1' in its sibling track 'x'" in m for m in messages)


def test_a_rule_into_a_state_left_outside_the_tracks_is_e410_not_a_crash():
    # hypothesis (tests/test_parser_hypothesis.py): a state moved into a parallel state beside
    # its tracks, and a rule of a track leading there, stopped the compiler (StopIteration)
    text = HEAD + """\
initial state outer {
  track a { state a1 { on event stop { otherwise -> loose cite s } } }
  track b { state b1 { on event stop { otherwise stay cite s } } }
  state loose { on event stop { otherwise stay cite s } }
}
"""
    got = codes(text)
    assert got == [("E410", 10)]


def test_an_accept_inside_a_track_covers_that_track():
    text = CHART.replace('track counts "Blood counts" {', 'track counts "Blood counts" {\n    accept W501 "reviewed"').replace(
        "state normal { on event neutropenia { otherwise -> low cite s } }", "state normal { on event neutropenia { otherwise -> low } }")
    r = compile_source(text, "c.rxw", verify=False)
    assert r.ok and not [d for d in r.diagnostics if d.code == "W501"]
    assert [d.code for d, a in r.accepted] == ["W501"]
    g = compile_source(text, "c.rxw", verify=False).graph
    assert g is None or [a["state"] for a in g.graph["accepts"]] == ["counts"]


def test_track_is_a_keyword_only_inside_a_state():
    r = compiled(HEAD.replace("event stop", "event track") + """\
initial state a { on event track { otherwise stay cite s } }
""")
    assert "track" in r.graph.graph["events"]


def test_a_terminal_state_with_nested_states_and_a_track_with_nothing_are_refused():
    assert codes(HEAD + "initial state a { on event stop { otherwise -> b cite s } }\nterminal state b { track t { state c } }\n") \
        == [("E409", 8)]
    assert codes(HEAD + "initial state a { on event stop { otherwise stay cite s } track t { } }\n") == [("E411", 7)]


# ---------------------------------------------------------------- named rule blocks

BLOCKS = HEAD + """\
lab ALT "alanine aminotransferase" unit "U/L" uln 40
rules grading "Grading of a liver panel" {
  when ALT > 200 -> stopped cite s
  when ALT > 120 stay cite s
}
initial state start {
  on panel { when ALT < 10 -> watch cite s  use grading  otherwise stay cite s }
  on event stop { otherwise -> stopped cite s }
}
state watch { on panel { use grading  otherwise -> start cite s } }
terminal state stopped
"""


def test_a_used_block_is_written_out_in_place_with_the_rule_ids_of_the_block():
    g = compiled(BLOCKS).graph
    assert g.graph["blocks"] == {"grading": {"description": "Grading of a liver panel", "rules": ["grading#0", "grading#1"],
                                             "span": {"path": "c.rxw", "line": 8, "column": 1, "end_line": 11, "end_column": 1}}}
    edges = {k: (u, v, e["rule"], e["block"], e["order"], e["stay"], e["span"]["line"]) for u, v, k, e in g.edges(keys=True, data=True)}
    assert edges == {
        "start/0/0": ("start", "watch", "start/0/0", None, 0, False, 13),
        "start/0/1": ("start", "stopped", "grading#0", "grading", 1, False, 9),
        "start/0/2": ("start", "start", "grading#1", "grading", 2, True, 10),  # stay: the using state stays
        "start/0/3": ("start", "start", "start/0/3", None, 3, True, 13),
        "start/1/0": ("start", "stopped", "start/1/0", None, 0, False, 14),
        "watch/0/0": ("watch", "stopped", "grading#0", "grading", 0, False, 9),
        "watch/0/1": ("watch", "watch", "grading#1", "grading", 1, True, 10),
        "watch/0/2": ("watch", "start", "watch/0/2", None, 2, False, 16),
    }
    assert g.nodes["start"]["handlers"][0]["rules"] == ["start/0/0", "start/0/1", "start/0/2", "start/0/3"]
    assert all(e["alternative"] is None for _, _, e in g.edges(data=True))
    back = graphio.from_json(graphio.to_json(g))
    assert back.graph["blocks"] == g.graph["blocks"]


def test_a_block_is_checked_once_however_often_it_is_used():
    r = compile_source(BLOCKS.replace("when ALT > 120 stay", "when ALT > 1 week stay"), "c.rxw", verify=False)
    assert [(d.code, d.span.line) for d in r.diagnostics if d.is_error] == [("E301", 10)]
    r = compile_source(BLOCKS.replace("when ALT > 120 stay cite s", "when ALT > 120 stay"), "c.rxw", verify=False)
    assert [(d.code, d.span.line, d.message) for d in r.diagnostics if d.code == "W501"] == [
        ("W501", 10, "this rule of block 'grading' cites no source; add 'cite SOURCE' after its target")]


def test_a_block_s_targets_count_for_reachability_from_each_using_state():
    text = BLOCKS.replace("when ALT > 120 stay cite s", "when ALT > 120 -> review cite s") + \
        "state review { on panel { otherwise -> start cite s } }\n"
    assert codes(text) == []
    assert codes(text.replace("  use grading  otherwise stay", "  otherwise stay").replace(
        "state watch { on panel { use grading  otherwise", "state watch { on panel { otherwise")) \
        == [("E403", 18)]  # review (grading unused: W505, a warning)


def test_a_block_used_in_a_track_may_not_lead_into_a_sibling_track():
    text = HEAD + """\
rules to_low { when true -> low cite s }
initial state on_drug {
  track liver { state watch { on event stop { use to_low } } }
  track counts { state normal { on event stop { otherwise stay cite s } }  state low { on event stop { otherwise stay cite s } } }
}
"""
    r = compile_source(text, "c.rxw", verify=False)
    [d] = [d for d in r.diagnostics if d.is_error]
    assert (d.code, d.span.line, d.span.column) == ("E412", 9, 51)
    assert d.message.startswith("a rule of block 'to_low' (line 7) leads from it to 'low': 'watch' is in track 'liver'")


def test_rule_after_otherwise_is_found_through_blocks():
    text = BLOCKS.replace("when ALT > 120 stay cite s", "when ALT > 120 stay cite s\n  otherwise stay cite s")
    got = compile_source(text, "c.rxw", verify=False).diagnostics
    assert [(d.code, d.span.line, d.span.column) for d in got if d.is_error] == [("E406", 14, 58), ("E406", 17, 39)]
    text = BLOCKS.replace("when ALT > 200 -> stopped cite s", "otherwise -> stopped cite s")
    got = compile_source(text, "c.rxw", verify=False).diagnostics
    assert [(d.code, d.span.line) for d in got if d.is_error] == [("E406", 10)]
    text = BLOCKS.replace("when ALT < 10 -> watch cite s  use grading", "otherwise -> watch cite s  use grading").replace(
        "  use grading  otherwise stay cite s }", "  use grading }", 1)
    got = compile_source(text, "c.rxw", verify=False).diagnostics
    assert [(d.code, d.message) for d in got if d.is_error] == [
        ("E406", "'use grading' after 'otherwise' can never fire; 'otherwise' must be the last rule of a handler")]


@pytest.mark.parametrize(
    "edit, fault",
    [
        (lambda d: d["edges"][1].update(rule="grading#2"), "edges[1].rule: \"grading#2\" is not a rule of block \"grading\""),
        (lambda d: d["edges"][1].update(block="grades"), "edges[1].block: rule block \"grades\" is not declared"),
        (lambda d: d["edges"][1].update(block=None), "edges[1].rule: must be the edge's key without its @ part"),
        (lambda d: d["edges"][0].update(rule="grading#0"), "edges[0].rule: must be the edge's key"),
        (lambda d: d["edges"][0].update(alternative=2), "edges[0].alternative: alternative 2 has a key ending in @2"),
        (lambda d: d["graph"]["blocks"]["grading"].update(rules=["grading#1"]), "graph.blocks.grading.rules[0]: must be \"grading#0\""),
        (lambda d: d["graph"].pop("blocks"), "graph.blocks: missing"),
    ],
)
def test_a_graph_file_with_a_broken_block_reference_is_refused(edit, fault):
    data = json.loads(graphio.to_json(compiled(BLOCKS).graph))
    assert [e["key"] for e in data["edges"][:2]] == ["start/0/0", "start/0/1"]
    edit(data)
    with pytest.raises(graphio.GraphError) as e:
        graphio.from_json(json.dumps(data))
    assert any(fault in d.message for d in e.value.diagnostics), [d.message for d in e.value.diagnostics]


# ---------------------------------------------------------------- choices with consequences

CHOICES = HEAD + """\
lab ALT "alanine aminotransferase" unit "U/L" uln 40
var x "x" number default 0
action reduce "Reduce the dose"
action interrupt "Interrupt the drug"
action other "Something else"
initial state start {
  on panel {
    when ALT > 200 { do one of { reduce -> reduced  interrupt -> interrupted { set x = 1 }  other } cite s }
    when ALT > 100 -> reduced cite s { do reduce  do one of { reduce  interrupt -> interrupted  other stay } }
    otherwise stay cite s { do one of reduce, other }
  }
}
state reduced { on event stop { otherwise -> start cite s } }
state interrupted { on event stop { otherwise -> start cite s } }
"""


def test_each_alternative_that_leads_somewhere_is_an_edge_of_its_rule():
    g = compiled(CHOICES).graph
    edges = {k: (v, e["rule"], e["alternative"], e["stay"], e["order"]) for _, v, k, e in g.edges("start", keys=True, data=True)}
    assert edges == {
        "start/0/0": ("reduced", "start/0/0", 0, False, 0),
        "start/0/0@1": ("interrupted", "start/0/0", 1, False, 0),
        "start/0/0@2": ("start", "start/0/0", 2, True, 0),  # no target of its own, none on the rule: stays
        "start/0/1": ("reduced", "start/0/1", 0, False, 1),  # no target of its own: the rule's
        "start/0/1@1": ("interrupted", "start/0/1", 1, False, 1),
        "start/0/1@2": ("start", "start/0/1", 2, True, 1),  # `stay` overrides the rule's target
        "start/0/2": ("start", "start/0/2", None, True, 2),  # the list form: no consequences
    }
    assert g.nodes["start"]["handlers"][0]["rules"] == ["start/0/0", "start/0/1", "start/0/2"]
    [choice] = g.edges["start", "interrupted", "start/0/0@1"]["actions"]
    assert choice["options"] == ["reduce", "interrupt", "other"]
    assert [(a["action"], a["target"], a["stay"], [x["kind"] for x in a["actions"]]) for a in choice["alternatives"]] == [
        ("reduce", "reduced", False, []), ("interrupt", "interrupted", False, ["set"]), ("other", None, False, [])]
    assert choice["alternatives"][1]["actions"][0]["var"] == "x"
    listed = g.edges["start", "start", "start/0/2"]["actions"][0]
    assert listed["alternatives"] == [{"action": "reduce", "target": None, "stay": False, "actions": []},
                                      {"action": "other", "target": None, "stay": False, "actions": []}]
    back = graphio.from_json(graphio.to_json(g))
    assert sorted(back.edges(keys=True)) == sorted(g.edges(keys=True))


def edge(data: dict, key: str) -> dict:
    return next(e for e in data["edges"] if e["key"] == key)


@pytest.mark.parametrize(
    "edit, fault",
    [
        (lambda d: edge(d, "start/0/0@1").update(target="reduced"), "alternative 1 leads to \"interrupted\", not \"reduced\""),
        (lambda d: edge(d, "start/0/1@2").update(stay=False, target="reduced"), "alternative 2 stays: the edge is a stay"),
        (lambda d: edge(d, "start/0/1").update(target="interrupted"), None),  # alternative 0 has no target: the rule's
    ],
)
def test_a_graph_file_whose_alternative_edges_do_not_follow_their_choice_is_refused(edit, fault):
    data = json.loads(graphio.to_json(compiled(CHOICES).graph))
    edit(data)
    if fault is None:  # (the form allows it: where an alternative without a target leads is the rule's business)
        graphio.from_json(json.dumps(data))
        return
    with pytest.raises(graphio.GraphError) as e:
        graphio.from_json(json.dumps(data))
    assert any(fault in d.message for d in e.value.diagnostics), [d.message for d in e.value.diagnostics]


def test_alternatives_are_checked_like_the_rest_of_a_rule():
    text = CHOICES.replace("interrupt -> interrupted { set x = 1 }", "interrupt -> interupted { set x = true }")
    r = compile_source(text, "c.rxw", verify=False)
    assert [(d.code, d.span.line) for d in r.diagnostics if d.is_error] == [("E203", 14), ("E301", 14)]
    assert "did you mean 'interrupted'?" in r.diagnostics[0].message
    # an alternative's target counts for reachability, and for the sibling-track rule
    assert codes(CHOICES.replace("interrupt -> interrupted { set x = 1 }", "interrupt { set x = 1 }").replace(
        "interrupt -> interrupted  other stay", "interrupt  other stay")) == [("E403", 20)]


def test_a_rule_may_omit_its_target_only_with_a_choice_that_leads():
    assert codes(CHOICES.replace("when ALT > 100 -> reduced cite s", "when ALT > 100 cite s").replace(
        "interrupt -> interrupted  other stay", "interrupt  other")) == [("E414", 15)]
    assert codes(CHOICES.replace("when ALT > 100 -> reduced cite s", "when ALT > 100 cite s")) == []


# ---------------------------------------------------------------- drugs

DRUGS = HEAD + """\
lab ALT "alanine aminotransferase" unit "U/L" uln 40
drug tocilizumab "tocilizumab IV" doses 8, 4 unit "mg/kg" cite s
drug anakinra "anakinra SC" doses daily "100 mg daily", alternate_days "100 mg every other day"
drug mtx "methotrexate"
action start_toci "Start tocilizumab" starts tocilizumab cite s
action interrupt "Interrupt tocilizumab" holds tocilizumab cite s
action resume "Resume at 4 mg/kg" resumes tocilizumab at 4
action reduce "Reduce to 4 mg/kg" doses tocilizumab 4
action stop_toci "Stop tocilizumab" stops tocilizumab
action alt_days "Every other day" orders ALT doses anakinra alternate_days
action stop_mtx "Stop methotrexate" stops mtx
initial state start {
  on entry { do start_toci cite s }
  on panel {
    when held(tocilizumab) and dose(tocilizumab) == 4 -> start cite s { do resume }
    when dose(anakinra) == daily and not stopped(anakinra) and started(mtx) stay cite s { do alt_days  do reduce }
    otherwise stay cite s { do interrupt  do stop_toci  do stop_mtx }
  }
}
"""


def test_drugs_and_what_actions_do_to_them_are_in_the_graph():
    g = compiled(DRUGS).graph
    drugs = {n: {k: v for k, v in d.items() if k not in ("span", "citations")} for n, d in g.graph["drugs"].items()}
    assert drugs == {
        "tocilizumab": {"description": "tocilizumab IV", "doses": [8, 4], "labels": [None, None], "unit": "mg/kg",
                        "kind": "number", "sources": ["s"]},
        "anakinra": {"description": "anakinra SC", "doses": ["daily", "alternate_days"],
                     "labels": ["100 mg daily", "100 mg every other day"], "unit": None, "kind": "name", "sources": []},
        "mtx": {"description": "methotrexate", "doses": [], "labels": [], "unit": None, "kind": "number", "sources": []},
    }
    assert g.graph["drugs"]["anakinra"]["span"]["line"] == 9
    effects = {a: d["effect"] for a, d in g.graph["actions"].items()}
    assert effects == {
        "start_toci": {"kind": "start", "drug": "tocilizumab", "dose": None},
        "interrupt": {"kind": "hold", "drug": "tocilizumab", "dose": None},
        "resume": {"kind": "resume", "drug": "tocilizumab", "dose": 4},
        "reduce": {"kind": "dose", "drug": "tocilizumab", "dose": 4},
        "stop_toci": {"kind": "stop", "drug": "tocilizumab", "dose": None},
        "alt_days": {"kind": "dose", "drug": "anakinra", "dose": "alternate_days"},
        "stop_mtx": {"kind": "stop", "drug": "mtx", "dose": None},
    }
    assert g.graph["actions"]["alt_days"]["orders"] == ["ALT"]
    guard = g.edges["start", "start", "start/0/0"]["guard"]
    assert guard["args"][0] == {"op": "call", "func": "held", "args": [{"op": "drug", "name": "tocilizumab"}]}
    assert guard["args"][1]["args"][0] == {"op": "call", "func": "dose", "args": [{"op": "drug", "name": "tocilizumab"}]}
    back = graphio.from_json(graphio.to_json(g))
    assert back.graph["drugs"] == g.graph["drugs"]


def test_a_decimal_dose_level_is_exact():
    g = compiled(DRUGS.replace("doses 8, 4 unit", "doses 8, 2.5 unit").replace("at 4", "at 2.5").replace(
        "doses tocilizumab 4", "doses tocilizumab 2.5").replace("dose(tocilizumab) == 4", "dose(tocilizumab) == 2.5")).graph
    assert g.graph["drugs"]["tocilizumab"]["doses"] == [8, 2.5]
    assert g.graph["actions"]["resume"]["effect"]["dose"] == 2.5


@pytest.mark.parametrize(
    "guard, fault",
    [
        ("dose(tocilizumab) > 4 weeks", ("E301", "cannot compare a number in mg/kg with a duration")),
        ("dose(tocilizumab) > ALT", ("E302", "unit mismatch")),
        ("dose(anakinra) == dayly", ("E303", "did you mean 'daily'?")),
        ("dose(anakinra) > 1", ("E301", "cannot compare one of the members of 'anakinra' with a number")),
        ("held(ALT)", ("E304", "held() takes the name of a drug")),
        ("started(tocilizumab, anakinra)", ("E304", "started() takes the name of a drug")),
        ("dose(mtx) > 1", ("E304", "dose() of 'mtx', which declares no dose levels")),
        ("tocilizumab", ("E206", "'tocilizumab' is a drug")),
    ],
)
def test_drug_reads_are_typed(guard, fault):
    text = DRUGS.replace("when held(tocilizumab) and dose(tocilizumab) == 4", f"when {guard}")
    r = compile_source(text, "c.rxw", verify=False)
    got = [(d.code, d.message) for d in r.diagnostics if d.is_error]
    assert any(code == fault[0] and fault[1] in msg for code, msg in got), got


def test_a_drug_is_a_name_like_the_others():
    assert codes(DRUGS.replace('drug mtx "methotrexate"', 'drug ALT "x"\ndrug mtx "methotrexate"')) == [("E201", 10)]
    assert codes(DRUGS.replace('drug mtx "methotrexate"', 'drug max "x"\ndrug mtx "methotrexate"')) == [("E201", 10)]
    # the drug reads are no reserved words: a var may be called `held` (as before them)
    text = DRUGS.replace('drug mtx "methotrexate"', 'var held "held here" bool default false\ndrug mtx "methotrexate"')
    assert codes(text.replace("when held(tocilizumab) and", "when held and held(tocilizumab) and")) == []


@pytest.mark.parametrize(
    "edit, fault",
    [
        (lambda d: d["graph"]["actions"]["resume"]["effect"].update(dose=6), "effect.dose: 6 is not a dose level"),
        (lambda d: d["graph"]["actions"]["resume"]["effect"].update(drug="toci"), "effect.drug: drug \"toci\" is not declared"),
        (lambda d: d["graph"]["actions"]["resume"]["effect"].update(kind="pause"), "effect.kind: must be one of start"),
        (lambda d: d["graph"]["drugs"]["anakinra"].update(labels=["x"]), "1 labels for 2 dose levels"),
        (lambda d: d["graph"]["drugs"]["tocilizumab"].update(doses=[8, "four"]), "drugs.tocilizumab.doses[1]: must be a finite number"),
        (lambda d: d["edges"][0]["guard"]["args"][0]["args"][0].update(name="toci"), "drug 'toci' is not declared"),
        (lambda d: d["edges"][0].update(guard={"op": "drug", "name": "mtx"}), "the drug \"mtx\" is not a value"),
        (lambda d: d["graph"].pop("drugs"), "graph.drugs: missing"),
    ],
)
def test_a_graph_file_with_a_broken_drug_is_refused(edit, fault):
    data = json.loads(graphio.to_json(compiled(DRUGS).graph))
    assert data["edges"][0]["key"] == "start/0/0"
    edit(data)
    with pytest.raises(graphio.GraphError) as e:
        graphio.from_json(json.dumps(data))
    assert any(fault in d.message for d in e.value.diagnostics), [d.message for d in e.value.diagnostics]


# ---------------------------------------------------------------- citations with locators

def test_every_sources_list_has_its_citations_with_locators_in_the_order_written():
    text = DRUGS.replace('drug tocilizumab "tocilizumab IV" doses 8, 4 unit "mg/kg" cite s',
                         'drug tocilizumab "tocilizumab IV" doses 8, 4 unit "mg/kg" cite s "2.1", s """a quoted\n  sentence"""').replace(
        'on entry { do start_toci cite s }', 'on entry { do start_toci cite s "Table 2" }').replace(
        "when held(tocilizumab) and dose(tocilizumab) == 4 -> start cite s", "when held(tocilizumab) and dose(tocilizumab) == 4 -> start cite s \"5.1\"")
    g = compiled(text).graph
    assert g.graph["drugs"]["tocilizumab"]["citations"] == [{"source": "s", "locator": "2.1"},
                                                           {"source": "s", "locator": "a quoted\n  sentence"}]
    assert g.graph["drugs"]["tocilizumab"]["sources"] == ["s", "s"]
    assert g.nodes["start"]["citations"] == [{"source": "s", "locator": "Table 2"}]
    assert g.nodes["start"]["entry"][0]["citations"] == [{"source": "s", "locator": "Table 2"}]
    assert g.edges["start", "start", "start/0/0"]["citations"] == [{"source": "s", "locator": "5.1"}]
    assert g.edges["start", "start", "start/0/1"]["citations"] == [{"source": "s", "locator": None}]
    assert g.graph["actions"]["start_toci"]["citations"] == [{"source": "s", "locator": None}]
    data = json.loads(graphio.to_json(g))
    missing = []
    stack = [("", data)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, dict):
            if isinstance(v.get("sources"), list) and "citations" not in v:
                missing.append(where)
            stack.extend((f"{where}.{k}", x) for k, x in v.items() if k != "sources" or isinstance(x, list))
        elif isinstance(v, list):
            stack.extend((f"{where}[{i}]", x) for i, x in enumerate(v))
    assert missing == []
    graphio.from_json(json.dumps(data))


def test_a_locator_may_follow_any_cited_source_and_holds_no_control_character():
    r = compile_source(DRUGS.replace('cite s\ndrug anakinra', 'cite s "2\x07.1"\ndrug anakinra'), "c.rxw", verify=False)
    assert [(d.code, d.span.line) for d in r.diagnostics if d.is_error] == [("E110", 8)]
    r = compile_source(DRUGS.replace('drug tocilizumab "tocilizumab IV" doses 8, 4 unit "mg/kg" cite s',
                                     'drug tocilizumab "tocilizumab IV" doses 8, 4 unit "mg/kg" cite sx "2.1"'), "c.rxw", verify=False)
    assert [(d.code, d.span.line, d.span.column) for d in r.diagnostics if d.is_error] == [("E204", 8, 64)]


@pytest.mark.parametrize(
    "edit, fault",
    [
        (lambda d: d["edges"][0]["citations"].append({"source": "t", "locator": None}), "source \"t\" is not declared"),
        (lambda d: d["graph"]["sources"].update(t={"title": "t", "kind": "", "url": None, "doi": None, "note": None,
                                                   "span": d["graph"]["sources"]["s"]["span"]})
         or d["edges"][0]["citations"].append({"source": "t", "locator": None}), "\"t\" is cited here but not among its sources"),
        (lambda d: d["edges"][0]["citations"][0].update(locator=4), "locator: must be a text or null"),
        (lambda d: d["graph"]["drugs"]["tocilizumab"].pop("citations"), "drugs.tocilizumab.citations: missing"),
    ],
)
def test_a_graph_file_with_broken_citations_is_refused(edit, fault):
    data = json.loads(graphio.to_json(compiled(DRUGS).graph))
    edit(data)
    with pytest.raises(graphio.GraphError) as e:
        graphio.from_json(json.dumps(data))
    assert any(fault in d.message for d in e.value.diagnostics), [d.message for d in e.value.diagnostics]


# ---------------------------------------------------------------- windows: points with a tolerance, repeats

WINDOWS = HEAD + """\
lab ALT "alanine aminotransferase" unit "U/L" uln 40
action order "order a panel" orders ALT
action recheck "recheck ALT" orders ALT
schedule tolerance 2 weeks cite s "a convention"
initial state a {
  on entry { do order due 3 months cite s }
  on panel {
    when ALT > 120 stay cite s { do order every 4..8 weeks }
    when ALT > 80 stay cite s { do one of order, recheck every 3 months }
    otherwise stay cite s { do order every within 14 days  do order due 1..2 weeks }
  }
}
"""


def test_windows_carry_their_tolerance_and_whether_they_repeat():
    g = compiled(WINDOWS).graph
    assert g.graph["schedule_tolerance"] == {
        "amount": 2, "unit": "weeks", "sources": ["s"], "citations": [{"source": "s", "locator": "a convention"}],
        "span": {"path": "c.rxw", "line": 10, "column": 1, "end_line": 10, "end_column": 48}}
    two_weeks = {"amount": 2, "unit": "weeks"}
    assert g.nodes["a"]["entry"][0]["window"] == {"start": 3, "end": 3, "unit": "months", "tolerance": two_weeks, "every": False}
    windows = [w["window"] for _, _, e in g.edges(data=True) for w in e["windows"]]
    assert windows == [
        {"start": 4, "end": 8, "unit": "weeks", "tolerance": None, "every": True},
        {"start": 3, "end": 3, "unit": "months", "tolerance": two_weeks, "every": True},
        {"start": 0, "end": 14, "unit": "days", "tolerance": None, "every": True},
        {"start": 1, "end": 2, "unit": "weeks", "tolerance": None, "every": False},
    ]
    back = graphio.from_json(graphio.to_json(g))
    assert back.graph["schedule_tolerance"] == g.graph["schedule_tolerance"]


def test_a_point_window_needs_the_schedule_tolerance():
    text = WINDOWS.replace('schedule tolerance 2 weeks cite s "a convention"\n', "")
    assert codes(text) == [("E418", 11), ("E418", 14)]  # (lines: the setting is gone)
    # a repeat of a non-order is refused like a window on one (E209)
    text = WINDOWS.replace('action order "order a panel" orders ALT', 'action order "order a panel" orders ALT\naction note "a note"').replace(
        "do order every within 14 days", "do note every within 14 days")
    assert codes(text) == [("E209", 17)]


def test_a_graph_of_format_2_reads_with_windows_that_do_not_repeat():
    data = json.loads(graphio.to_json(compiled(WINDOWS.replace("due 3 months", "due 2..4 months").replace(
        "every 3 months", "due 3..4 months").replace("every", "due").replace('schedule tolerance 2 weeks cite s "a convention"\n', "")).graph))
    data["graph"]["format"] = "rxwatch-graph/2"
    stack = [data]
    while stack:  # strip what format 3 added
        v = stack.pop()
        if isinstance(v, dict):
            for key in graphio.V3_ONLY:
                v.pop(key, None)
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    g = graphio.from_json(json.dumps(data))
    assert g.graph["schedule_tolerance"] is None
    assert all(w["window"]["tolerance"] is None and w["window"]["every"] is False for _, _, e in g.edges(data=True) for w in e["windows"])
    assert g.nodes["a"]["entry"][0]["window"] == {"start": 2, "end": 4, "unit": "months", "tolerance": None, "every": False}


# ---------------------------------------------------------------- declared let units; count units

UNITS = HEAD + """\
lab ANC "absolute neutrophil count" unit "10*9/L"
lab ANC_K "ANC as the analyser gives it" unit "K/uL"
lab PLT "platelets" unit "/mm3"
lab PLT2 "platelets again" unit "{cells}/uL"
let anc "ANC" unit "10*3/mm3" = min(ANC, ANC_K)
let plt "platelets" unit "cells/uL" = PLT
initial state a { on panel { when anc < 1.5 and ANC_K - ANC < 0.2 and plt < PLT2 and PLT < 50000 stay cite s  otherwise stay cite s } }
"""


def test_count_units_are_units_the_checker_knows():
    g = compiled(UNITS).graph
    assert (g.graph["lets"]["anc"]["unit"], g.graph["lets"]["plt"]["unit"]) == ("10*3/mm3", "cells/uL")
    # the same unit, however written; a thousandth of it is another unit
    r = compile_source(UNITS.replace("plt < PLT2", "plt < ANC"), "c.rxw", verify=False)
    [d] = [d for d in r.diagnostics if d.is_error]
    assert (d.code, d.span.line) == ("E302", 13)
    assert "cannot compare a number in cells/uL with a number in 10*9/L (1 10*9/L is 1000 cells/uL;" in d.message


def test_a_let_s_declared_unit_is_checked():
    assert codes(UNITS.replace('unit "cells/uL" = PLT', 'unit "/uL" = PLT')) == []
    r = compile_source(UNITS.replace('unit "cells/uL" = PLT', 'unit "10*9/L" = PLT'), "c.rxw", verify=False)
    [d] = [d for d in r.diagnostics if d.is_error]
    assert (d.code, d.span.line, d.span.column) == ("E308", 12, 37)
    assert d.message == ("'plt' declares the unit '10*9/L', but its expression is in /mm3 (1 /mm3 is 0.001 10*9/L; "
                         "declare both in one unit: results convert to their lab's unit as they come in)")
    # a bare number takes the declared unit; a let without one keeps the inferred unit
    g = compiled(UNITS.replace('let plt "platelets" unit "cells/uL" = PLT', 'let plt "platelets" unit "cells/uL" = 150000')).graph
    assert g.graph["lets"]["plt"]["unit"] == "cells/uL"
    g = compiled(UNITS.replace('let plt "platelets" unit "cells/uL" = PLT', 'let plt "platelets" = PLT')).graph
    assert g.graph["lets"]["plt"]["unit"] == "/mm3"


def test_a_point_no_longer_than_the_tolerance_is_a_warning():
    def w506(text):
        r = compile_source(text, "c.rxw", verify=False)
        assert r.ok
        return [(d.span.line, d.message.split("'")[1]) for d in r.diagnostics if d.code == "W506"]

    assert w506(WINDOWS) == []
    assert w506(WINDOWS.replace("due 3 months", "due 14 days").replace("every 3 months", "every 2 weeks")) == [
        (12, "due 14 days"), (15, "every 2 weeks")]
    # months are 28 to 31 days: a tolerance of 4 weeks may be shorter than a month, 5 weeks not
    assert w506(WINDOWS.replace("due 3 months", "due 1 month")) == []
    assert w506(WINDOWS.replace("due 3 months", "due 1 month").replace("tolerance 2 weeks", "tolerance 5 weeks")) == [
        (12, "due 1 month")]
