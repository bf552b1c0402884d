"""The statechart replay (docs/simulation.md, "Statecharts"): configurations, entering,
child-first rules, every region on one trigger, conflicts, orders per region, timers per
state, choices with consequences, drugs, repeating orders and tolerance windows.

Small protocols written here; the parts of graph format 3 that a protocol cannot spell yet
(drug effects, tolerance, `every`) are set on the compiled graph as docs/graph.md writes them."""

from __future__ import annotations

import glob
import json
import textwrap
from pathlib import Path

import pytest

from rxwatch.compiler import compile_file, compile_source
from rxwatch.inputs import yamlsrc
from rxwatch.simulator.engine import Machine, SimulationError, simulate
from rxwatch.inputs.yamljson import parse_timeline
from rxwatch.simulator.trace import to_json

ROOT = Path(__file__).resolve().parent.parent

HEADER = """
protocol t
  version "0.1"
source s "a source" kind convention
lab ALT "alanine aminotransferase" unit "U/L" uln 40
lab TBIL "total bilirubin" unit "mg/dL" uln 1.2
lab ANC "absolute neutrophil count" unit "/mm3"
lab PLT "platelets" unit "/mm3"
action order_lfts "order a liver panel" orders ALT cite s
action order_cbc "order a blood count" orders ANC, PLT fulfilled by ANC or PLT cite s
action note "a note" cite s
action other "another note" cite s
action hold_drug "hold the drug" cite s
action resume_drug "resume the drug" cite s
action reduce_drug "reduce the dose" cite s
action start_drug "start the drug" cite s
action stop_drug "stop the drug" cite s
event stop "the drug is stopped"
event ping "a ping"
fact risky "a risk" bool default false
var flag "a flag" bool default false
"""


def graph_of(body: str, header: str = HEADER):
    result = compile_source(textwrap.dedent(header) + textwrap.dedent(body), "t.rxw", verify=False)
    assert result.ok, [str(d) for d in result.diagnostics if d.is_error]
    return result.graph


def line_of(graph, text: str) -> int:
    """The line of the protocol (as compiled by graph_of) that holds `text`."""
    lines = (textwrap.dedent(HEADER) + textwrap.dedent(BODIES[graph])).splitlines()
    return next(i for i, s in enumerate(lines, 1) if text in s)


BODIES: dict = {}


def chart(body: str):
    g = graph_of(body)
    BODIES[g] = body
    return g


def run(graph, text: str, **kw) -> dict:
    doc = yamlsrc.load(textwrap.dedent(text), "case.yaml")
    return simulate(graph, parse_timeline(doc, "case.yaml", graph.graph), **kw)


def steps(trace: dict, type_: str | None = None, **match) -> list[dict]:
    return [s for s in trace["steps"] if (type_ is None or s["type"] == type_)
            and all(s.get(k) == v for k, v in match.items())]


def entered(trace: dict, date: str | None = None) -> list[str]:
    return [s["state"] for s in trace["steps"] if s["type"] == "enter" and (date is None or s["date"] == date)]


# ---------------------------------------------------------------------------- two tracks

TRACKS = """
initial state baseline "Baseline" {
  on panel { otherwise -> treated cite s }
}
state treated "On the drug" {
  on event stop { otherwise -> off cite s }
  track liver "Liver" {
    initial state liver_routine "Routine" {
      on entry { do order_lfts due 2..4 weeks cite s }
      on panel {
        when xuln(ALT) > 3 -> liver_high cite s { do hold_drug cite s }
        otherwise stay cite s
      }
    }
    state liver_high "ALT above 3 x ULN" {
      on entry { do order_lfts due 1..2 weeks cite s }
      on panel {
        when xuln(ALT) <= 3 -> liver_routine cite s { do resume_drug cite s }
        otherwise stay cite s
      }
    }
  }
  track neutrophils "Neutrophils" {
    initial state anc_routine "Routine" {
      on entry { do order_cbc due 2..4 weeks cite s }
      on panel {
        when ANC < 500 -> off cite s { do stop_drug cite s }
        when ANC < 1000 -> anc_low cite s { do hold_drug cite s }
        otherwise stay cite s
      }
    }
    state anc_low "ANC below 1000" {
      on entry { do order_cbc due 1..2 weeks cite s }
      on panel {
        when ANC >= 1000 -> anc_routine cite s { do resume_drug cite s }
        otherwise stay cite s
      }
    }
  }
}
state off "Off the drug" {
  on event ping { otherwise -> baseline cite s }
}
"""


@pytest.fixture(scope="module")
def tracks():
    return chart(TRACKS)


START = """
patient: {id: p}
start: 2025-01-06
events:
  - {date: 2025-01-07, lab: ALT, value: 30}
"""


def test_entering_a_parallel_state_enters_it_then_every_track_at_its_initial_state(tracks):
    trace = run(tracks, START)
    assert entered(trace, "2025-01-07") == ["treated", "liver", "liver_routine", "neutrophils", "anc_routine"]
    assert trace["final_states"] == ["liver_routine", "anc_routine"]
    assert trace["final_state"] == "treated"  # the innermost state holding every active one
    # each track's entry order is its own: two open orders, each owned by its track
    assert [(o["action"], o.get("track")) for o in trace["open_orders"]] == [
        ("order_lfts", "liver"), ("order_cbc", "neutrophils")]
    (lfts,) = steps(trace, "action", action="order_lfts")
    assert lfts["track"] == "liver" and lfts["state"] == "liver_routine"
    assert lfts["window"] == ["2025-01-21", "2025-02-04"]


def test_anc_800_with_alt_4x_uln_on_one_panel_is_acted_on_by_both_tracks(tracks):
    # the tocilizumab example: one panel, a liver grade and a neutrophil grade, both acted on
    trace = run(tracks, START + """
  - {date: 2025-01-21, lab: ALT, value: 160}
  - {date: 2025-01-21, lab: ANC, value: 800}
""")
    day = steps(trace, date="2025-01-21")
    moves = [(s["from"], s["to"], s.get("track")) for s in day if s["type"] == "transition"]
    assert moves == [("liver_routine", "liver_high", "liver"), ("anc_routine", "anc_low", "neutrophils")]
    assert entered(trace, "2025-01-21") == ["liver_high", "anc_low"]
    assert not any("preempted" in s for s in day)
    # both tracks' orders for the day: the panel fulfilled the old ones, the new ones are open
    assert [(o["action"], o.get("track"), o["window"]) for o in trace["open_orders"]] == [
        ("order_lfts", "liver", ["2025-01-28", "2025-02-04"]),
        ("order_cbc", "neutrophils", ["2025-01-28", "2025-02-04"])]
    # the steps in order: both transitions, both entries, then the rules' actions, then the entry actions
    kinds = [(s["type"], s.get("state") or s.get("to"), s.get("action")) for s in day]
    assert kinds == [("transition", "liver_high", None), ("transition", "anc_low", None),
                     ("enter", "liver_high", None), ("enter", "anc_low", None),
                     ("action", "liver_high", "hold_drug"), ("action", "anc_low", "hold_drug"),
                     ("action", "liver_high", "order_lfts"), ("action", "anc_low", "order_cbc")]
    assert trace["final_states"] == ["liver_high", "anc_low"]


def test_a_discontinuation_from_the_second_track_beats_a_move_of_the_first(tracks):
    trace = run(tracks, START + """
  - {date: 2025-01-21, lab: ALT, value: 160}
  - {date: 2025-01-21, lab: ANC, value: 300}
""")
    day = steps(trace, date="2025-01-21")
    (t,) = [s for s in day if s["type"] == "transition"]
    # the first track's move (document order first) exits less: the wider exit wins
    assert (t["from"], t["to"], t["track"]) == ("anc_routine", "off", "neutrophils")
    assert t["preempted"] == ["liver_routine/0/0"]
    assert entered(trace, "2025-01-21") == ["off"]
    # the preempted rule did nothing: no liver_high, no hold; the winner's actions ran
    assert [s["action"] for s in day if s["type"] == "action"] == ["stop_drug"]
    assert trace["final_states"] == ["off"] and trace["final_state"] == "off"


def test_leaving_the_parallel_state_withdraws_the_orders_of_its_tracks(tracks):
    trace = run(tracks, START + """
  - {date: 2025-01-10, event: stop}
""")
    (t,) = steps(trace, "transition", date="2025-01-10")
    assert (t["from"], t["to"]) == ("treated", "off")
    assert "track" not in t  # a rule of the parallel state itself: the top-level region
    assert t["withdrawn"] == ["order_lfts", "order_cbc"]
    assert trace["open_orders"] == []
    assert steps(trace, "deviation") == []  # a withdrawn order is never overdue


def test_an_order_of_the_top_level_region_survives_moves_inside_a_track():
    g = chart("""
    initial state treated "On the drug" {
      on entry { do order_lfts due 2..4 weeks cite s }
      track liver "Liver" {
        initial state a "A" { on event ping { otherwise -> b cite s } }
        state b "B" { on event ping { otherwise -> a cite s } }
      }
      track other "Other" {
        initial state c "C" { on event stop { otherwise stay cite s } }
      }
    }
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-08, event: ping}
    """)
    assert entered(trace) == ["treated", "liver", "a", "other", "c", "b"]
    assert [(o["action"], o.get("track")) for o in trace["open_orders"]] == [("order_lfts", None)]


def test_a_track_reentered_by_a_move_inside_it_keeps_the_other_tracks_orders(tracks):
    trace = run(tracks, START.replace("start:", "until: 2025-02-10\nstart:") + """
  - {date: 2025-01-21, lab: ALT, value: 160}
  - {date: 2025-02-01, lab: ALT, value: 40}
""")
    feb = steps(trace, date="2025-02-01")
    assert [(s["from"], s["to"]) for s in feb if s["type"] == "transition"] == [("liver_high", "liver_routine")]
    # the neutrophil track's order of 2025-01-07 is still open (overdue); the liver track's new one too
    assert [(o["action"], o.get("track"), o["ordered"]) for o in trace["open_orders"]] == [
        ("order_cbc", "neutrophils", "2025-01-07"), ("order_lfts", "liver", "2025-02-01")]
    (dev,) = steps(trace, "deviation")
    assert (dev["action"], dev["track"], dev["date"]) == ("order_cbc", "neutrophils", "2025-02-05")


# ---------------------------------------------------------------------------- orders per region

SAME_ORDER = """
initial state treated "On the drug" {
  track neutrophils "Neutrophils" {
    initial state anc "ANC" { on entry { do order_cbc due 2..4 weeks cite s } on panel { otherwise stay cite s } }
  }
  track platelets "Platelets" {
    initial state plt "PLT" { on entry { do order_cbc due 1..3 weeks cite s } on panel { otherwise stay cite s } }
  }
}
"""


def test_two_tracks_ordering_one_action_both_open_and_one_result_fulfils_both():
    g = chart(SAME_ORDER)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-01-12
    """)
    assert [(o["action"], o["track"], o["window"]) for o in trace["open_orders"]] == [
        ("order_cbc", "neutrophils", ["2025-01-20", "2025-02-03"]),
        ("order_cbc", "platelets", ["2025-01-13", "2025-01-27"])]
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-03-31
    events:
      - {date: 2025-01-22, lab: ANC, value: 2000}
    """)
    assert trace["open_orders"] == []
    assert steps(trace, "deviation") == []
    # the two stays of the day, one per track, with their tracks
    assert [s["track"] for s in steps(trace, "transition")] == ["neutrophils", "platelets"]


def test_a_result_before_one_tracks_window_fulfils_the_other_only():
    g = chart(SAME_ORDER)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-02-10
    events:
      - {date: 2025-01-14, lab: PLT, value: 200000}
    """)
    assert [(o["action"], o["track"]) for o in trace["open_orders"]] == [("order_cbc", "neutrophils")]
    (dev,) = steps(trace, "deviation")
    assert (dev["kind"], dev["track"], dev["date"]) == ("overdue", "neutrophils", "2025-02-04")



FULFILLED_PER_TRACK = """
initial state treated "On the drug" {
  track neutrophils "Neutrophils" {
    initial state anc "ANC" {
      on entry { do order_cbc due 2..4 weeks cite s }
      on panel {
        when fulfilled(order_cbc) stay cite s { do note cite s }
        otherwise stay cite s
      }
    }
  }
  track platelets "Platelets" {
    initial state plt "PLT" {
      on entry { do order_cbc due 1..3 weeks cite s }
      on panel {
        when fulfilled(order_cbc) stay cite s { do note cite s }
        otherwise stay cite s
      }
    }
  }
}
"""


def test_fulfilled_in_a_track_reads_the_tracks_own_order():
    # a count that fulfils the platelet track's order (its window is open) is not the neutrophil
    # track's, whose window opens a week later
    g = chart(FULFILLED_PER_TRACK)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-01-15
    events:
      - {date: 2025-01-14, lab: PLT, value: 200000}
    """)
    assert [s["track"] for s in steps(trace, "action", action="note")] == ["platelets"]
    assert [(o["action"], o["track"]) for o in trace["open_orders"]] == [("order_cbc", "neutrophils")]


def test_an_order_in_a_track_replaces_the_top_levels_open_order_of_its_action():
    # the baseline's repeat, ordered before treatment began, is the track's to take over: it is
    # not left open (and overdue) beside the track's own order
    g = chart("""
    initial state baseline "Baseline" {
      on entry { do order_cbc due 2..4 weeks cite s }
      on event ping { otherwise -> treated cite s }
    }
    state treated "On the drug" {
      track neutrophils "Neutrophils" {
        initial state anc "ANC" { on entry { do order_cbc due 4..8 weeks cite s } }
      }
      track liver "Liver" {
        initial state alt "ALT" { on entry { do order_lfts due 4..8 weeks cite s } }
      }
    }
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-02-28
    events:
      - {date: 2025-01-08, event: ping}
    """)
    assert [(o["action"], o.get("track"), o["window"]) for o in trace["open_orders"]] == [
        ("order_cbc", "neutrophils", ["2025-02-05", "2025-03-05"]),
        ("order_lfts", "liver", ["2025-02-05", "2025-03-05"])]
    assert steps(trace, "deviation") == []


def test_a_track_reads_a_panel_whose_results_fulfil_its_order_though_none_of_its_labs_came_today():
    # neutrophils on Monday, platelets on Tuesday: read together (a 3-day lookback), they fulfil
    # the neutrophil track's order on Tuesday, and that track reads Tuesday's panel
    header = HEADER.replace("orders ANC, PLT fulfilled by ANC or PLT cite s", "orders ANC, PLT cite s") + \
        "results valid for 3 days cite s\n"
    g = graph_of("""
    initial state treated "On the drug" {
      track neutrophils "Neutrophils" {
        initial state anc "ANC" {
          on entry { do order_cbc due 1..4 weeks cite s }
          on panel {
            when ANC < 1000 stay cite s { do hold_drug cite s }
            when fulfilled(order_cbc) stay cite s { do order_cbc due 11..13 weeks cite s }
            otherwise stay cite s
          }
        }
      }
      track liver "Liver" {
        initial state alt "ALT" { on panel { otherwise stay cite s } }
      }
    }
    """, header)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-01-31
    events:
      - {date: 2025-01-20, lab: ANC, value: 3000}
      - {date: 2025-01-21, lab: PLT, value: 200000}
    """)
    (dev,) = steps(trace, "deviation")
    assert (dev["kind"], dev["date"], dev["missing"]) == ("incomplete", "2025-01-20", ["PLT"])
    assert [s["date"] for s in steps(trace, "transition", track="neutrophils")] == ["2025-01-20", "2025-01-21"]
    assert [(o["action"], o["window"]) for o in trace["open_orders"]] == [
        ("order_cbc", ["2025-04-08", "2025-04-22"])]


# ---------------------------------------------------------------------------- nested states

NESTED = """
initial state on_drug "On the drug" {
  on panel {
    when ALT > 1000 -> stopped cite s
    when xuln(ALT) > 3 -> high_parent cite s
    otherwise stay cite s { do other cite s }
  }
  after 30 days { otherwise -> reviewed cite s }
  initial state early "Early" {
    on panel {
      when xuln(ALT) > 3 and xuln(TBIL) > 2 -> hy cite s
      when ALT < 20 -> late cite s
    }
  }
  state late "Late" {
    on panel { when xuln(ALT) > 3 -> high_child cite s }
  }
}
state hy "Hy's law" { on event ping { otherwise -> on_drug cite s } }
state high_parent "High (the parent's rule)" { on event ping { otherwise -> on_drug cite s } }
state high_child "High (the child's rule)" { on event ping { otherwise -> on_drug cite s } }
state reviewed "Reviewed" { on event ping { otherwise -> on_drug cite s } }
terminal state stopped "Stopped"
"""


@pytest.fixture(scope="module")
def nested():
    return chart(NESTED)


def test_entering_a_compound_state_enters_it_then_its_initial_child(nested):
    trace = run(nested, "patient: {id: p}\nstart: 2025-01-06\n")
    assert entered(trace) == ["on_drug", "early"]
    assert trace["final_state"] == "early" and trace["final_states"] == ["early"]


def test_the_childs_rule_wins_over_the_parents(nested):
    trace = run(nested, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-07, lab: ALT, value: 15}
      - {date: 2025-01-08, lab: ALT, value: 200}
    """)
    (t1, t2) = steps(trace, "transition")
    assert (t1["from"], t1["to"], t1["rule"]) == ("early", "late", "early/0/1")
    # early -> late is a move between children: on_drug is not left, not re-entered
    assert entered(trace, "2025-01-07") == ["late"]
    # late's own rule for ALT > 3 x ULN comes before its parent's
    assert (t2["from"], t2["to"]) == ("late", "high_child")
    assert entered(trace, "2025-01-08") == ["high_child"]


def test_a_parents_rule_applies_to_its_children(nested):
    trace = run(nested, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-07, lab: ALT, value: 30}
      - {date: 2025-01-07, lab: TBIL, value: 0.5}
    """)
    (t,) = steps(trace, "transition")
    # early's rules do not hold: its parent's `otherwise stay` does, in the parent
    assert (t["from"], t["to"], t.get("stay"), t["rule"]) == ("on_drug", "on_drug", True, "on_drug/0/2")
    (a,) = steps(trace, "action", action="other")
    assert a["state"] == "on_drug"
    assert trace["final_states"] == ["early"]


def test_an_unassessable_child_rule_blocks_the_parents_rules(nested):
    trace = run(nested, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-07, lab: ALT, value: 200}
    """)
    # early's Hy's law rule needs TBIL: unknown, so neither early's nor on_drug's rules fire
    assert steps(trace, "transition") == []
    (u,) = steps(trace, "unassessable")
    assert (u["state"], u["rule"], u["missing"]) == ("early", "early/0/0", ["TBIL"])
    assert "values" not in u  # its guard reads no let
    assert trace["final_states"] == ["early"]


def test_the_parents_rule_leaves_the_child_and_reenters_nothing_else(nested):
    trace = run(nested, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-07, lab: ALT, value: 2000}
      - {date: 2025-01-07, lab: TBIL, value: 0.5}
    """)
    (t,) = steps(trace, "transition")
    assert (t["from"], t["to"]) == ("on_drug", "stopped")
    assert trace["final_states"] == ["stopped"]


def test_a_compound_states_timer_is_not_rearmed_by_its_childrens_moves(nested):
    trace = run(nested, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-03-01
    events:
      - {date: 2025-01-20, lab: ALT, value: 15}
    """)
    # on_drug entered 2025-01-06: its timer fires 30 days later, whatever its children did
    (timer,) = steps(trace, "transition", trigger="timer")
    assert (timer["date"], timer["from"], timer["to"]) == ("2025-02-05", "on_drug", "reviewed")


def test_reentering_a_compound_state_rearms_its_timer(nested):
    trace = run(nested, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-03-31
    events:
      - {date: 2025-01-10, lab: ALT, value: 200}
      - {date: 2025-01-10, lab: TBIL, value: 3}
      - {date: 2025-01-12, event: ping}
    """)
    assert entered(trace, "2025-01-12") == ["on_drug", "early"]
    (timer,) = steps(trace, "transition", trigger="timer")
    assert timer["date"] == "2025-02-11"


def test_since_entry_counts_from_the_rules_own_state():
    g = chart("""
    initial state outer "Outer" {
      on event ping { when since entry >= 10 days -> done cite s }
      initial state first "First" {
        on event ping { when since entry >= 3 days -> second cite s }
      }
      state second "Second" { on event stop { otherwise -> first cite s } }
    }
    state done "Done" { on event stop { otherwise -> outer cite s } }
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-09, event: ping}
      - {date: 2025-01-10, event: stop}
      - {date: 2025-01-12, event: ping}
      - {date: 2025-01-16, event: ping}
    """)
    moves = [(s["date"], s["from"], s["to"]) for s in steps(trace, "transition")]
    # 01-12: first was entered on 01-10 (2 days: no), outer on 01-06 (6 days: no);
    # 01-16: first's 6 days fire first (child first)
    assert moves == [("2025-01-09", "first", "second"), ("2025-01-10", "second", "first"),
                     ("2025-01-16", "first", "second")]
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-09, event: ping}
      - {date: 2025-01-16, event: ping}
    """)
    # in second (no ping rule of its own), outer's counts from entering outer: 10 days on 01-16
    assert [(s["date"], s["to"]) for s in steps(trace, "transition")] == [("2025-01-09", "second"),
                                                                          ("2025-01-16", "done")]


INHERITED = """
initial state treated "On the drug" {
  on panel { when ALT > 1000 -> stopped cite s }
  track liver "Liver" {
    initial state l "L" { on panel { when xuln(ALT) > 3 and xuln(ALT) <= 25 -> l2 cite s } }
    state l2 "L2" { on event ping { otherwise -> l cite s } }
  }
  track blood "Blood" {
    initial state b "B" { on panel { when ANC < 1000 -> b2 cite s } }
    state b2 "B2" { on event ping { otherwise -> b cite s } }
  }
}
terminal state stopped "Stopped"
"""


def test_an_inherited_rule_chosen_by_two_tracks_fires_once():
    g = chart(INHERITED)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-07, lab: ALT, value: 2000}
      - {date: 2025-01-07, lab: ANC, value: 2000}
    """)
    (t,) = steps(trace, "transition")
    assert (t["from"], t["to"], t["rule"]) == ("treated", "stopped", "treated/0/0")
    assert "preempted" not in t
    assert entered(trace, "2025-01-07") == ["stopped"]


def test_a_track_rule_and_the_parallel_states_inherited_rule_conflict_by_their_exits():
    g = chart(INHERITED)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-07, lab: ALT, value: 2000}
      - {date: 2025-01-07, lab: ANC, value: 500}
    """)
    # blood chooses its own rule (b -> b2); liver falls through to treated's (-> stopped),
    # which leaves everything: the wider exit wins, though blood's rule is not later in order
    (t,) = steps(trace, "transition")
    assert (t["to"], t["preempted"]) == ("stopped", ["b/0/0"])


# ---------------------------------------------------------------------------- rule blocks

def test_a_block_rule_fires_with_its_canonical_id_and_its_using_states_place():
    g = chart("""
    rules liver_grading "Grading of a liver panel" {
      when xuln(ALT) > 5 -> severe cite s
      when xuln(ALT) > 3 stay cite s { do note cite s }
    }
    initial state a "A" { on panel { use liver_grading  otherwise stay cite s } }
    state b "B" { on panel { when ALT < 20 -> a cite s  use liver_grading  otherwise stay cite s } }
    state severe "Severe" { on event ping { otherwise -> b cite s } }
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-07, lab: ALT, value: 160}
      - {date: 2025-01-08, lab: ALT, value: 400}
      - {date: 2025-01-09, event: ping}
      - {date: 2025-01-10, lab: ALT, value: 400}
    """)
    moves = [(s["from"], s["to"], s["rule"], s.get("stay", False)) for s in steps(trace, "transition")]
    # in b the block's rules come after b's own first rule: they are b/0/1 and b/0/2
    assert moves == [("a", "a", "a/0/1", True), ("a", "severe", "a/0/0", False), ("severe", "b", "severe/0/0", False),
                     ("b", "severe", "b/0/1", False)]
    (note,) = steps(trace, "action", action="note")
    assert note["state"] == "a"
    edges = {k: d for _, _, k, d in g.edges(keys=True, data=True)}
    assert edges["a/0/0"]["rule"] == edges["b/0/1"]["rule"] == "liver_grading#0"


# ---------------------------------------------------------------------------- choices

CHOICE = """
initial state a "A" {
  on panel {
    when ALT > 100 {
      do note cite s
      do one of {
        reduce_drug -> reduced
        hold_drug -> interrupted { do other cite s }
        stop_drug stay
      }
      set flag = true cite s
    }
    otherwise stay cite s
  }
}
state reduced "Reduced" { on panel { otherwise -> a cite s } }
state interrupted "Interrupted" { on panel { otherwise -> a cite s } }
"""


def test_a_choice_alternative_leads_to_its_own_state():
    g = chart(CHOICE)
    base = """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-07, lab: ALT, value: 300}
    """
    # no recorded choice: the first alternative, with its target
    trace = run(g, base)
    (t,) = steps(trace, "transition")
    assert (t["to"], t["rule"], t["alternative"]) == ("reduced", "a/0/0", "reduce_drug")
    assert entered(trace, "2025-01-07") == ["reduced"]
    # the clinician held: the second alternative's target and its own actions, in place
    trace = run(g, base + "  - {date: 2025-01-07, choice: hold_drug}\n")
    (t,) = steps(trace, "transition")
    assert (t["to"], t["rule"], t["alternative"]) == ("interrupted", "a/0/0@1", "hold_drug")
    day = [(s["type"], s.get("action") or s.get("var") or s.get("state") or s.get("to"))
           for s in steps(trace, date="2025-01-07")]
    assert day == [("transition", "interrupted"), ("enter", "interrupted"), ("action", "note"),
                   ("action", "hold_drug"), ("action", "other"), ("set", "flag")]
    assert trace["warnings"] == []
    # an alternative that stays: no entry
    trace = run(g, base + "  - {date: 2025-01-07, choice: stop_drug}\n")
    (t,) = steps(trace, "transition")
    assert (t["to"], t.get("stay"), t["alternative"]) == ("a", True, "stop_drug")
    assert entered(trace, "2025-01-07") == []


def test_a_preferred_action_takes_its_alternative_unless_a_recorded_choice_decides():
    g = chart(CHOICE)
    base = """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-07, lab: ALT, value: 300}
    """
    doc = yamlsrc.load(textwrap.dedent(base), "case.yaml")
    tl = parse_timeline(doc, "case.yaml", g.graph)
    m = Machine(g)
    assert {"reduce_drug", "hold_drug", "stop_drug"} <= m.offered
    # a clinic that holds where the protocol's first alternative reduces: the hold's target and actions
    trace = m.run(tl, prefer=("hold_drug",))
    (t,) = steps(trace, "transition")
    assert (t["to"], t["rule"], t["alternative"]) == ("interrupted", "a/0/0@1", "hold_drug")
    # the `do one of` step of the alternative says the preference took it
    (a,) = [s for s in steps(trace, "action") if s.get("options")]
    assert (a["action"], a.get("preferred")) == ("hold_drug", True)
    # the first preferred that is offered; a preferred action not offered here changes nothing
    (t,) = steps(m.run(tl, prefer=("note", "stop_drug", "hold_drug")), "transition")
    assert t["alternative"] == "stop_drug"
    # the same through the incremental API
    p = m.start(tl.start, prefer=("hold_drug",))
    for day, events in tl.days:
        p.feed(day, events)
    assert [s["alternative"] for s in p.steps if s["type"] == "transition"] == ["hold_drug"]
    # a recorded choice still decides its day
    doc = yamlsrc.load(textwrap.dedent(base + "  - {date: 2025-01-07, choice: stop_drug}\n"), "case.yaml")
    (t,) = steps(m.run(parse_timeline(doc, "case.yaml", g.graph), prefer=("hold_drug",)), "transition")
    assert t["alternative"] == "stop_drug"
    # an action the protocol does not declare: refused, not ignored
    with pytest.raises(ValueError, match="hold_drugs: not an action of"):
        m.run(tl, prefer=("hold_drugs",))
    with pytest.raises(ValueError, match="not an action of"):
        m.start(tl.start, prefer=("hold_drugs",))


# ---------------------------------------------------------------------------- drugs (set on the graph)

def with_drug(g, doses=(8, 4, 2), kind="number"):
    """The tocilizumab-like drug of docs/graph.md on graph `g`: dose levels, and the effects
    of the header's actions."""
    g.graph["drugs"] = {"toci": {"description": "the drug", "doses": list(doses), "labels": [None] * len(doses),
                                 "unit": "mg/kg" if kind == "number" else None, "kind": kind, "sources": [],
                                 "citations": [], "span": {}}}
    effects = {"start_drug": ("start", None), "hold_drug": ("hold", None), "resume_drug": ("resume", None),
               "reduce_drug": ("dose", doses[1]), "stop_drug": ("stop", None)}
    for action, (k, dose) in effects.items():
        g.graph["actions"][action]["effect"] = {"kind": k, "drug": "toci", "dose": dose}
    return g


def drug_of(step: dict) -> tuple:
    d = step["drug"]
    return d["status"], d["dose"], d["held_by"]


DRUG_TRACKS = """
initial state treated "On the drug" {
  on entry { do start_drug cite s }
  track liver "Liver" {
    initial state l_ok "ok" {
      on panel { when xuln(ALT) > 3 -> l_high cite s { do hold_drug cite s }  otherwise stay cite s }
    }
    state l_high "high" {
      on panel { when xuln(ALT) <= 3 -> l_ok cite s { do resume_drug cite s }  otherwise stay cite s }
    }
  }
  track blood "Blood" {
    initial state b_ok "ok" {
      on panel { when ANC < 1000 -> b_low cite s { do hold_drug cite s }  otherwise stay cite s }
    }
    state b_low "low" {
      on panel {
        when ANC >= 1000 -> b_ok cite s { do resume_drug cite s }
        when ANC >= 800 stay cite s { do reduce_drug cite s }
        otherwise stay cite s
      }
    }
  }
}
"""


def test_a_resume_from_one_track_while_another_holds_leaves_the_drug_held():
    g = with_drug(chart(DRUG_TRACKS))
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-10, lab: ALT, value: 160}
      - {date: 2025-01-10, lab: ANC, value: 500}
      - {date: 2025-01-20, lab: ALT, value: 40}
      - {date: 2025-01-20, lab: ANC, value: 500}
      - {date: 2025-01-30, lab: ALT, value: 40}
      - {date: 2025-01-30, lab: ANC, value: 1500}
    """)
    (start,) = steps(trace, "action", action="start_drug")
    assert drug_of(start) == ("on", 8, [])
    h1, h2 = steps(trace, "action", action="hold_drug")
    assert (h1["track"], drug_of(h1)) == ("liver", ("held", 8, ["liver"]))
    assert (h2["track"], drug_of(h2)) == ("blood", ("held", 8, ["liver", "blood"]))
    r1, r2 = steps(trace, "action", action="resume_drug")
    # the liver track resumes, the blood track still holds: the drug stays held, by blood
    assert (r1["date"], r1["track"], drug_of(r1)) == ("2025-01-20", "liver", ("held", 8, ["blood"]))
    assert (r2["date"], r2["track"], drug_of(r2)) == ("2025-01-30", "blood", ("on", 8, []))
    assert trace["drugs"] == {"toci": {"status": "on", "dose": 8}}


def test_the_lowest_dose_any_track_asks_for_wins():
    g = with_drug(chart(DRUG_TRACKS))
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-10, lab: ANC, value: 500}
      - {date: 2025-01-20, lab: ANC, value: 900}
    """)
    (reduce,) = steps(trace, "action", action="reduce_drug")
    assert drug_of(reduce) == ("held", 4, ["blood"])
    assert trace["drugs"] == {"toci": {"status": "held", "dose": 4}}


def test_a_stopped_drug_stays_stopped_and_the_replay_says_so():
    g = with_drug(chart("""
    initial state a "A" {
      on event stop { otherwise stay cite s { do stop_drug cite s } }
      on event ping { otherwise stay cite s { do start_drug cite s } }
    }
    """))
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-07, event: stop}
      - {date: 2025-01-08, event: ping}
    """)
    assert drug_of(steps(trace, "action", action="stop_drug")[0])[0] == "stopped"
    assert drug_of(steps(trace, "action", action="start_drug")[0])[0] == "stopped"
    (w,) = trace["warnings"]
    assert w["code"] == "W905" and w["date"] == "2025-01-08" and "stop" in w["message"]
    assert trace["drugs"]["toci"]["status"] == "stopped"


def test_named_dose_levels_read_as_their_names():
    g = with_drug(chart(DRUG_TRACKS), doses=("daily", "alternate_days"), kind="name")
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-10, lab: ANC, value: 500}
      - {date: 2025-01-20, lab: ANC, value: 900}
    """)
    assert drug_of(steps(trace, "action", action="reduce_drug")[0])[1] == "alternate_days"
    assert json.loads(to_json(trace))["drugs"] == {"toci": {"status": "held", "dose": "alternate_days"}}


def test_a_protocol_without_drugs_has_no_drugs_in_its_trace():
    g = chart(SAME_ORDER)
    trace = run(g, "patient: {id: p}\nstart: 2025-01-06\n")
    assert "drugs" not in trace


# ---------------------------------------------------------------------------- windows (set on the graph)

def set_window(g, action: str, **window):
    """Change the window of every `do action` in the graph (as docs/graph.md writes windows)."""
    def walk(actions):
        for a in actions or ():
            if a.get("kind") == "do" and a.get("action") == action:
                a["window"].update(window)
            walk(a.get("then"))
            walk(a.get("else"))
    for _, d in g.nodes(data=True):
        walk(d.get("entry"))
    for _, _, d in g.edges(data=True):
        walk(d.get("actions"))
    return g


EVERY = """
initial state a "A" {
  on entry { do order_lfts due 1..2 months cite s }
  on panel { otherwise stay cite s }
}
"""


def test_every_reissues_the_order_from_the_fulfilling_day():
    g = set_window(graph_of(EVERY), "order_lfts", every=True)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-12-31
    events:
      - {date: 2025-02-20, lab: ALT, value: 30}
      - {date: 2025-04-10, lab: ALT, value: 30}
    """)
    orders = steps(trace, "action", action="order_lfts")
    assert [(s["date"], s["window"], s.get("repeat", False)) for s in orders] == [
        ("2025-01-06", ["2025-02-06", "2025-03-06"], False),
        ("2025-02-20", ["2025-03-20", "2025-04-20"], True),
        ("2025-04-10", ["2025-05-10", "2025-06-10"], True)]
    # the repeat comes when the result fulfils the order: before the panel's rules
    day = steps(trace, date="2025-02-20")
    assert [s["type"] for s in day] == ["action", "transition"]
    (dev,) = steps(trace, "deviation")
    assert (dev["date"], dev["ordered"]) == ("2025-06-11", "2025-04-10")
    assert [(o["ordered"], o["overdue"]) for o in trace["open_orders"]] == [("2025-04-10", True)]


def test_an_order_without_every_is_not_reissued():
    g = graph_of(EVERY)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-02-20, lab: ALT, value: 30}
    """)
    assert len(steps(trace, "action", action="order_lfts")) == 1
    assert trace["open_orders"] == []


@pytest.mark.parametrize("start, amount, unit, window", [
    # 1 month after 2025-01-31 is 2025-02-28; two weeks either side
    ("2025-01-31", 1, "months", ["2025-02-14", "2025-03-14"]),
    # 3 months after 2024-11-30 is 2025-02-28 (not a leap year)
    ("2024-11-30", 3, "months", ["2025-02-14", "2025-03-14"]),
    # across a year's end, and a leap day: 2024-01-31 + 1 month = 2024-02-29
    ("2024-01-31", 1, "months", ["2024-02-15", "2024-03-14"]),
    ("2024-12-20", 2, "weeks", ["2024-12-20", "2025-01-17"]),
])
def test_a_due_point_with_a_tolerance_is_a_window_around_it(start, amount, unit, window):
    g = set_window(graph_of(EVERY), "order_lfts", start=amount, end=amount, unit=unit,
                   tolerance={"amount": 2, "unit": "weeks"})
    trace = run(g, f"patient: {{id: p}}\nstart: {start}\n")
    (order,) = steps(trace, "action", action="order_lfts")
    assert order["window"] == window
    assert trace["open_orders"][0]["window"] == window


def test_a_repeating_order_with_a_tolerance_counts_each_window_from_its_fulfilling_day():
    g = set_window(graph_of(EVERY), "order_lfts", start=3, end=3, unit="months",
                   tolerance={"amount": 2, "unit": "weeks"}, every=True)
    trace = run(g, """
    patient: {id: p}
    start: 2024-11-30
    until: 2025-06-30
    events:
      - {date: 2025-02-20, lab: ALT, value: 30}
    """)
    assert [s["window"] for s in steps(trace, "action", action="order_lfts")] == [
        ["2025-02-14", "2025-03-14"], ["2025-05-06", "2025-06-03"]]
    (dev,) = steps(trace, "deviation")
    assert dev["date"] == "2025-06-04"


# ---------------------------------------------------------------------------- one engine

def test_a_flat_protocol_replays_the_same_through_the_statechart_path():
    """A flat machine is the one-region case: the configuration path (Machine(chart=True))
    gives every shipped scenario's trace byte for byte."""
    from rxwatch.suite.cases import load_case

    compared = 0
    for name in ("anakinra", "leflunomide"):
        proto = next(iter(glob.glob(str(ROOT / "protocols" / f"{name}_*.rxw"))))
        result = compile_file(proto, verify=False)
        if not result.ok or any(d.get("type", "atomic") != "atomic" for _, d in result.graph.nodes(data=True)):
            continue  # a protocol being rewritten, or no longer flat
        g = result.graph
        flat, chart_ = Machine(g), Machine(g, chart=True)
        assert not flat.chart and chart_.chart
        for path in sorted(glob.glob(str(ROOT / "tests" / "scenarios" / name / "*.yaml"))):
            try:
                tl = load_case(path, g).timeline
            except Exception:  # a scenario written for another version of the protocol
                continue
            assert to_json(flat.run(tl)) == to_json(chart_.run(tl)), path
            compared += 1
    # the pathway the benchmark replays, on 300 of its synthetic patients (choices, events,
    # fact changes, own ULNs, missing results)
    import sys
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import bench_simulate
    finally:
        sys.path.pop(0)
    g = compile_file(str(bench_simulate.PROTOCOL), verify=False).graph
    flat, chart_ = Machine(g), Machine(g, chart=True)
    for tl in bench_simulate.patients(300, 11):
        assert to_json(flat.run(tl)) == to_json(chart_.run(tl)), tl.patient
        compared += 1
    # and a flat protocol written here, with timers, facts on entry, a terminal state
    g = graph_of("""
    initial state a "A" {
      on entry { do order_lfts due 2..4 weeks cite s }
      on fact risky { when risky -> b cite s }
      on panel { when ALT > 100 -> b cite s  otherwise stay cite s { set flag = true cite s } }
      after 10 days { otherwise -> b cite s }
    }
    state b "B" { on entry { do note cite s } on event ping { otherwise -> c cite s } }
    terminal state c "C"
    """)
    for text in ("patient: {id: p}\nstart: 2025-01-06\nuntil: 2025-03-01\n",
                 "patient: {id: p, facts: {risky: true}}\nstart: 2025-01-06\n",
                 "patient: {id: p}\nstart: 2025-01-06\nevents:\n  - {date: 2025-01-08, lab: ALT, value: 30}\n"
                 "  - {date: 2025-01-20, event: ping}\n"):
        doc = yamlsrc.load(text, "case.yaml")
        tl = parse_timeline(doc, "case.yaml", g.graph)
        assert to_json(Machine(g).run(tl)) == to_json(Machine(g, chart=True).run(tl))
        compared += 1
    assert compared >= 3


# ---------------------------------------------------------------------------- values and set steps

def test_a_transition_shows_the_values_its_guard_read():
    g = chart("""
    let tx "ALT in multiples of its ULN" = xuln(ALT)
    let high "high" = tx > 3
    initial state a "A" {
      on panel { when high -> b cite s  otherwise stay cite s }
    }
    state b "B" { on panel { otherwise stay cite s } }
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-07, lab: ALT, value: 30}
      - {date: 2025-01-08, lab: ALT, value: 130}
    """)
    stay, move = steps(trace, "transition")
    assert "values" not in stay  # otherwise reads nothing
    assert move["values"] == {"high": True, "tx": 3.25, "tx_exact": "3.25"}


def test_a_graph_whose_statechart_is_broken_is_refused_with_e903():
    g = chart(NESTED)
    g.nodes["on_drug"]["initial_child"] = "hy"
    with pytest.raises(SimulationError) as e:
        Machine(g)
    assert e.value.code == "E903" and "initial child" in str(e.value)
    g = chart(NESTED)
    g.nodes["early"]["parent"] = "hy"
    with pytest.raises(SimulationError) as e:
        Machine(g)
    assert e.value.code == "E903"


# ---------------------------------------------------------------------------- the documented example

EXAMPLE_HEADER = """\
protocol tracks
  version "1.0"
  status draft
source pi "Prescribing information" kind label
lab ALT "alanine aminotransferase" unit "U/L" uln 40
lab ANC "absolute neutrophil count" unit "/mm3"
drug toci "tocilizumab IV" doses 8, 4 unit "mg/kg" cite pi
action order_lfts "Order ALT" orders ALT cite pi
action order_cbc "Order a neutrophil count" orders ANC cite pi
action interrupt "Interrupt tocilizumab" holds toci cite pi
action resume "Resume tocilizumab" resumes toci cite pi
action reduce "Reduce to 4 mg/kg" doses toci 4 cite pi
action discontinue "Discontinue tocilizumab" stops toci cite pi
event stopped_otherwise "tocilizumab ended for another reason"

"""

EXAMPLE_PATIENT = """\
patient: {id: toci-01}
start: 2025-03-03
until: 2025-05-30
events:
  - {date: 2025-04-14, lab: ALT, value: 160}
  - {date: 2025-04-14, lab: ANC, value: 800}
  - {date: 2025-04-24, lab: ALT, value: 60}
  - {date: 2025-04-24, lab: ANC, value: 900}
  - {date: 2025-05-05, lab: ALT, value: 250}
  - {date: 2025-05-05, lab: ANC, value: 400}
"""


def test_the_example_of_docs_simulation_md_is_what_the_replay_gives():
    doc = (ROOT / "docs" / "simulation.md").read_text(encoding="utf-8")
    section = doc.split("### An example", 1)[1].split("\n## ", 1)[0]
    states = section.split("```\n", 2)[1].split("```", 1)[0]
    result = compile_source(EXAMPLE_HEADER + states, "tracks.rxw", verify=False)
    assert result.ok, [str(d) for d in result.diagnostics if d.is_error]
    trace = simulate(result.graph, parse_timeline(yamlsrc.load(EXAMPLE_PATIENT, "patient.yaml"), "patient.yaml",
                                                  result.graph.graph))
    quoted = json.loads(next(line for line in section.splitlines() if line.startswith('{"date": "2025-05-05"')))
    assert quoted in trace["steps"]
    assert '"drug": {"name": "toci", "status": "held",\n"dose": 4, "held_by": ["neutrophils"]}' in section
    (reduce,) = steps(trace, "action", action="reduce")
    assert reduce["drug"] == {"name": "toci", "status": "held", "dose": 4, "held_by": ["neutrophils"]}
    # the table's rows: each transition of the replay is in the documented table, in order
    rows = [line for line in section.splitlines() if line.split()[:1] == ["transition"] or line.split()[1:2] == ["transition"]]
    assert len(rows) == len(steps(trace, "transition"))
    assert all(f"{t['from']} -> {t['to']}" in row or f"stay in {t['from']}" in row
               for row, t in zip(rows, steps(trace, "transition")))
    assert trace["drugs"] == {"toci": {"status": "stopped", "dose": None}}


def test_a_zero_time_loop_between_children_is_stopped_with_e901():
    g = chart("""
    initial state outer "Outer" {
      initial state a "A" { on fact { when not risky -> b cite s } }
      state b "B" { on fact { when not risky -> a cite s } }
    }
    """)
    with pytest.raises(SimulationError) as e:
        run(g, "patient: {id: p}\nstart: 2025-01-06\n")
    assert e.value.code == "E901" and set(e.value.states) == {"a", "b"}
    assert "zero-time loop on 2025-01-06" in str(e.value)


def test_a_parents_on_fact_rules_are_tried_when_it_is_entered_not_at_each_child_move():
    g = chart("""
    initial state outer "Outer" {
      on fact { when risky stay cite s { do note cite s } }
      initial state a "A" { on event ping { otherwise -> b cite s } }
      state b "B" { on event ping { otherwise -> a cite s } }
    }
    """)
    trace = run(g, """
    patient: {id: p, facts: {risky: true}}
    start: 2025-01-06
    events:
      - {date: 2025-01-07, event: ping}
      - {date: 2025-01-08, event: ping}
    """)
    # tried once, when outer (with a) was entered; a -> b -> a leave outer as it is
    assert [s["date"] for s in steps(trace, "action", action="note")] == ["2025-01-06"]


# ---------------------------------------------------------------------------- the same, as protocols spell them

DRUG_HEADER = HEADER.replace('action hold_drug "hold the drug" cite s', '''drug toci "tocilizumab IV" doses 8, 4 unit "mg/kg" cite s "2.1"
action hold_drug "hold the drug" holds toci cite s''').replace(
    'action resume_drug "resume the drug" cite s', 'action resume_drug "resume at 4 mg/kg" resumes toci at 4 cite s').replace(
    'action stop_drug "stop the drug" cite s', 'action stop_drug "stop the drug" stops toci cite s')


def test_guards_read_a_drugs_state_and_its_decisions_show_what_they_read():
    g = graph_of("""
    initial state a "A" {
      on event stop { otherwise stay cite s { do stop_drug cite s } }
      on panel {
        when held(toci) and dose(toci) > 4 stay cite s "Table 2" { do resume_drug cite s }
        when stopped(toci) stay cite s { do note cite s }
        otherwise stay cite s { do hold_drug cite s "a sentence" }
      }
    }
    """, DRUG_HEADER)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-07, lab: ALT, value: 30}
      - {date: 2025-01-08, lab: ALT, value: 30}
      - {date: 2025-01-09, event: stop}
      - {date: 2025-01-10, lab: ALT, value: 30}
    """)
    t7, t8, _, t10 = steps(trace, "transition")
    # not held yet: the first guard is false (dose(toci) is read, held(toci) decides)
    assert t7["rule"] == "a/1/2" and "values" not in t7
    assert t8["rule"] == "a/1/0" and t8["values"] == {"held(toci)": True, "dose(toci)": 8}
    assert t8["citations"] == [{"source": "s", "locator": "Table 2"}]
    (hold,) = steps(trace, "action", action="hold_drug")
    assert hold["citations"] == [{"source": "s", "locator": "a sentence"}]
    assert hold["drug"] == {"name": "toci", "status": "held", "dose": 8, "held_by": []}
    (resume,) = steps(trace, "action", action="resume_drug")
    assert resume["drug"] == {"name": "toci", "status": "on", "dose": 4, "held_by": []}
    assert t10["rule"] == "a/1/1" and t10["values"] == {"stopped(toci)": True}  # what its own guard read
    assert trace["drugs"] == {"toci": {"status": "stopped", "dose": None}}


def test_due_a_point_and_every_as_written():
    g = graph_of("""
    schedule tolerance 2 weeks cite s
    initial state a "A" {
      on entry { do order_lfts every 3 months cite s }
      on panel { otherwise stay cite s }
    }
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-31
    until: 2025-09-30
    events:
      - {date: 2025-04-20, lab: ALT, value: 30}
    """)
    assert [(s["date"], s["window"], s.get("repeat", False)) for s in steps(trace, "action")] == [
        ("2025-01-31", ["2025-04-16", "2025-05-14"], False),  # 2025-04-30 (the 31st is past) +- 2 weeks
        ("2025-04-20", ["2025-07-06", "2025-08-03"], True)]
    (dev,) = steps(trace, "deviation")
    assert (dev["date"], dev["ordered"]) == ("2025-08-04", "2025-04-20")


def test_a_replaced_result_is_listed_on_the_days_first_panel_step_in_a_statechart(tracks):
    trace = run(tracks, START + """
  - {date: 2025-01-21, lab: ALT, value: 300, time: "08:00"}
  - {date: 2025-01-21, lab: ALT, value: 100, time: "14:00"}
  - {date: 2025-01-21, lab: ANC, value: 1500}
""")
    # the later ALT (2.5 x ULN) counts: the liver track stays; the earlier one is listed once
    day = [s for s in steps(trace, date="2025-01-21") if s["type"] == "transition"]
    assert [(s["from"], s["to"]) for s in day] == [("liver_routine", "liver_routine"), ("anc_routine", "anc_routine")]
    assert [r["value"] for r in day[0]["replaced"]] == [300]
    assert "replaced" not in day[1]


def test_a_timer_since_an_action_counts_from_that_action_in_its_own_state():
    g = chart("""
    initial state treated "On the drug" {
      on entry { do start_drug cite s }
      after 3 months since start_drug { otherwise -> review cite s }
      track liver "Liver" {
        initial state a "A" { on event ping { otherwise -> b cite s } }
        state b "B" { on event ping { otherwise -> a cite s } }
      }
    }
    state review "Review" { on event stop { otherwise -> treated cite s } }
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-31
    until: 2025-06-30
    events:
      - {date: 2025-02-10, event: ping}
      - {date: 2025-03-10, event: ping}
    """)
    (t,) = steps(trace, "transition", trigger="timer")
    assert (t["date"], t["from"], t["to"]) == ("2025-04-30", "treated", "review")
    assert trace["final_states"] == ["review"]


def test_a_let_reading_since_entry_counts_from_each_rules_own_state():
    g = chart("""
    let settled "settled in" = since entry >= 10 days
    initial state outer "Outer" {
      on event ping { when settled -> done cite s }
      initial state first "First" {
        on event ping { when settled -> second cite s }
      }
      state second "Second" { on event stop { otherwise -> first cite s } }
    }
    state done "Done" { on event stop { otherwise -> outer cite s } }
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-10, event: stop}
      - {date: 2025-01-16, event: ping}
    """)
    # on 01-16 first (entered 01-06, no stop rule there: never left) has 10 days: first -> second
    assert [(s["date"], s["to"]) for s in steps(trace, "transition")] == [("2025-01-16", "second")]
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-16, event: ping}
      - {date: 2025-01-18, event: stop}
      - {date: 2025-01-20, event: ping}
    """)
    # on 01-20 first was entered 01-18 (2 days: its rule is false), outer 01-06 (14 days: true)
    moves = [(s["date"], s["from"], s["to"], s["values"]) for s in steps(trace, "transition") if s["trigger"] == "event"
             and s.get("event") == "ping"]
    assert moves == [("2025-01-16", "first", "second", {"settled": True}),
                     ("2025-01-20", "outer", "done", {"settled": True})]


# `since entry` in the actions of a rule or of an entry counts from entering the actions' own
# state, not from the state whose guard was tried last: on a day both tracks decide, the liver
# track's actions once read the neutrophil track's entry (an anakinra patient recovered months
# ago stayed on 1-2-monthly monitoring whenever a liver panel came with a blood count).
SINCE_ENTRY = """
initial state par "Both" {
  track A "A" {
    initial state a1 "a1" {
      on entry { do order_lfts due within 400 days cite s }
      on panel {
        when xuln(ALT) > 3 -> a2 cite s
        otherwise stay cite s { if since entry < 30 days { do note cite s } else { do other cite s } }
      }
    }
    state a2 "a2" {
      on entry {
        if since entry < 7 days { do note cite s } else { do other cite s }
        do order_lfts due within 14 days cite s
      }
      on panel { otherwise -> a1 cite s }
    }
  }
  track B "B" {
    initial state b1 "b1" {
      on entry { do order_cbc due within 400 days cite s }
      on panel { otherwise stay cite s }
    }
  }
}
"""


@pytest.mark.parametrize("labs", [["ALT"], ["ALT", "ANC"], ["ANC", "ALT"]])
def test_since_entry_in_actions_counts_from_their_own_state(labs):
    g = graph_of(SINCE_ENTRY)
    values = {"ALT": 200, "ANC": 3000}
    rows = "".join(f"\n      - {{date: 2025-04-10, lab: {lab}, value: {values[lab]}}}" for lab in labs)
    trace = run(g, f"""
    patient: {{id: x}}
    start: 2025-01-01
    events:{rows}
      - {{date: 2025-04-20, lab: ALT, value: 20}}
      - {{date: 2025-04-25, lab: ALT, value: 20}}
      - {{date: 2025-06-01, lab: ALT, value: 20}}
    """)
    # a2 entered on 2025-04-10: its entry actions read 0 days
    assert [s["action"] for s in steps(trace, "action", date="2025-04-10")] == ["note", "order_lfts"]
    # back in a1 on 2025-04-20; a stay rule's actions on 04-25 read 5 days, on 06-01 42 days
    assert [s["action"] for s in steps(trace, "action", date="2025-04-25")] == ["note"]
    assert [s["action"] for s in steps(trace, "action", date="2025-06-01")] == ["other"]


# ---------------------------------------------------------------------------- an event that stops a drug

EVENT_STOPS = EXAMPLE_HEADER.replace('event stopped_otherwise "tocilizumab ended for another reason"',
                                     'event stopped_otherwise "tocilizumab ended for another reason" stops toci') + """
action start "Start tocilizumab" starts toci cite pi
initial state on "On tocilizumab" {
  on entry { do start cite pi }
  on event stopped_otherwise { when stopped(toci) -> off cite pi  otherwise stay cite pi }
}
terminal state off "Off tocilizumab"
"""


def test_an_event_that_stops_a_drug_stops_it_before_the_rules_read_it():
    g = compile_source(EVENT_STOPS, "t.rxw", verify=False).graph
    assert g.graph["events"]["stopped_otherwise"]["effect"] == {"kind": "stop", "drug": "toci", "dose": None}
    trace = run(g, """
    patient: {id: p}
    start: 2025-03-03
    events:
      - {date: 2025-04-14, event: stopped_otherwise}
    """)
    (t,) = steps(trace, "transition")
    # the rule read stopped(toci) true; its step shows the drug after the event
    assert t["to"] == "off" and t["event"] == "stopped_otherwise"
    assert t["drug"] == {"name": "toci", "status": "stopped", "dose": None, "held_by": []}
    assert trace["drugs"] == {"toci": {"status": "stopped", "dose": None}}
    assert not trace["warnings"]
    # before the drug is started the event changes nothing of it (no stopped drug started later)
    early = compile_source(EVENT_STOPS.replace("on entry { do start cite pi }", "on panel { otherwise stay cite pi { do start cite pi } }"),
                           "t.rxw", verify=False).graph
    trace = run(early, """
    patient: {id: p}
    start: 2025-03-03
    events:
      - {date: 2025-03-04, event: stopped_otherwise}
      - {date: 2025-03-05, lab: ALT, value: 30}
    """)
    assert "drug" not in steps(trace, "transition")[0] and not trace["warnings"]
    assert trace["drugs"] == {"toci": {"status": "on", "dose": 8}}


def test_a_case_reads_the_drug_an_event_stopped_on_its_day(tmp_path):
    from rxwatch.suite.cases import run_suite

    g = compile_source(EVENT_STOPS, "t.rxw", verify=False).graph
    case = tmp_path / "c.yaml"
    case.write_text(textwrap.dedent("""\
        patient: {id: p}
        start: 2025-03-03
        events:
          - {date: 2025-04-14, event: stopped_otherwise}
        expect:
          - on 2025-04-13 drug toci on
          - on 2025-04-14 drug toci stopped
        """), encoding="utf-8")
    (result,) = run_suite(g, [case]).cases
    assert result.status == "pass", result


def test_an_event_stops_only_a_declared_drug_and_only_stops_it():
    bad = compile_source(EVENT_STOPS.replace("stops toci\n", "stops tocilizumab\n", 1), "t.rxw", verify=False)
    assert [d.code for d in bad.diagnostics if d.is_error] == ["E214"]
    from rxwatch.compiler import graphio

    data = json.loads(graphio.to_json(compile_source(EVENT_STOPS, "t.rxw", verify=False).graph))
    data["graph"]["events"]["stopped_otherwise"]["effect"]["kind"] = "hold"
    with pytest.raises(graphio.GraphError) as e:
        graphio.from_json(json.dumps(data), "g.json")
    assert "an event can only stop a drug" in str(e.value.diagnostics[0].message)
    # a graph written before events could stop a drug (no `effect`) still reads
    del data["graph"]["events"]["stopped_otherwise"]["effect"]
    assert graphio.from_json(json.dumps(data), "g.json").graph["events"]["stopped_otherwise"]["effect"] is None
