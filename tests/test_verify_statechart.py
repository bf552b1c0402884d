"""The verifier on statecharts (docs/verification.md, "Statecharts"): each atomic state's
effective rule list (its own rules, then those it inherits), findings about an inherited or
shared rule once, reachability across the hierarchy and the tracks, zero-time loops through
compound entries."""

from __future__ import annotations

from rxwatch.compiler import compile_source
from rxwatch.compiler.verify import analyse, explain, explain_text

HEAD = """\
protocol sc
  title "Statechart"
  version "1"
lab ALT unit "U/L" uln 40
lab ANC unit "/mm3"
action order "Order ALT" orders ALT
action order_cbc "Order a blood count" orders ANC
action stop_drug "Stop"
event jaundice "jaundice"
event other "other"
let tx = xuln(ALT)
"""


def graph_of(body: str):
    r = compile_source(HEAD + body, "sc.rxw", verify=False)
    assert r.ok, [(d.code, d.span.line, d.message) for d in r.diagnostics if d.is_error]
    return r.graph


def found(body: str):
    """The findings, less those about declarations this file's head does not use (W630)."""
    return [f for f in analyse(graph_of(body)) if f.code != "W630"]


def line_of(body: str, text: str) -> int:
    """The line (in the whole file) of the first line of `body` that holds `text`."""
    lines = (HEAD + body).splitlines()
    return next(i for i, s in enumerate(lines, 1) if text in s)


START = """\
initial state start "Start" {
  on entry { do order due within 14 days }
  on panel { when tx <= 1 -> on_treatment  otherwise stay }
}
"""
END = 'terminal state stopped "Stopped"\n'


def test_a_parents_otherwise_covers_a_childs_gap():
    body = START + """\
state on_treatment "On treatment" {
  on panel { otherwise stay }
  on event jaundice { otherwise -> stopped }
  initial state early "Early" {
    on entry { do order due within 14 days }
    on panel { when tx > 3 -> high }
  }
  state high "High" {
    on entry { do order due within 7 days }
    on panel { when tx <= 1 -> early }
  }
}
""" + END
    assert [(f.code, f.line) for f in found(body)] == []
    # without the parent's `otherwise`, each child has a gap of its own
    fs = found(body.replace("on panel { otherwise stay }", ""))
    assert [(f.code, f.line) for f in fs] == [("E601", line_of(body, "when tx > 3 -> high")), ("E601", line_of(body, "when tx <= 1 -> early"))]


def test_a_childs_gap_that_no_ancestor_covers_is_located_at_the_childs_handler():
    body = START + """\
state on_treatment "On treatment" {
  on event jaundice { otherwise -> stopped }
  initial state early "Early" {
    on entry { do order due within 14 days }
    on panel { when tx > 3 -> high  otherwise stay }
  }
  state high "High" {
    on entry { do order due within 7 days }
    on panel { when tx > 3 -> stopped  when tx <= 1 -> early }
  }
}
""" + END
    fs = [f for f in found(body) if f.code == "E601"]
    assert [(f.line, f.message.split(":")[0]) for f in fs] == [(line_of(body, "when tx <= 1 -> early"), "state high")]


def test_a_gap_in_an_inherited_handler_is_reported_once_naming_the_states():
    body = START + """\
state on_treatment "On treatment" {
  on panel { when tx > 3 -> stopped  when tx <= 1 stay }
  on event jaundice { otherwise -> stopped }
  initial state early "Early" {
    on entry { do order due within 14 days }
    on event other { otherwise -> late }
  }
  state late "Late" {
    on entry { do order due within 7 days }
    on event other { otherwise -> early }
  }
}
""" + END
    fs = [f for f in found(body) if f.code == "E601"]
    assert len(fs) == 1
    assert fs[0].line == line_of(body, "when tx > 3 -> stopped  when tx <= 1 stay")
    assert fs[0].message.startswith("state on_treatment (for states early, late): no rule handles a panel")


def test_an_inherited_rule_dead_in_every_state_is_one_finding_at_the_rule():
    body = START + """\
state on_treatment "On treatment" {
  on panel { when tx > 5 -> stopped  otherwise stay }
  on event jaundice { otherwise -> stopped }
  initial state early "Early" {
    on entry { do order due within 14 days }
    on panel { when tx > 3 -> late  otherwise stay }
  }
  state late "Late" {
    on entry { do order due within 7 days }
    on panel { when tx > 2 -> early  otherwise stay }
  }
}
""" + END
    fs = found(body)
    e604 = [f for f in fs if f.code == "E604"]
    assert [(f.line, f.message.split(":")[0]) for f in e604] == [(line_of(body, "when tx > 5 -> stopped  otherwise stay"), "state on_treatment (for states early, late)")]
    # the parent's `otherwise` is overridden by each child's own: it can never fire either
    assert [(f.code, f.line) for f in fs if f.code != "E604"] == [("W607", line_of(body, "when tx > 5 -> stopped  otherwise stay"))]
    assert "state on_treatment (for states early, late): 'otherwise' can never fire" in [f for f in fs if f.code == "W607"][0].message


def test_an_inherited_rule_that_fires_only_in_some_states_is_w640():
    body = START + """\
state on_treatment "On treatment" {
  on panel { when tx > 5 -> stopped  otherwise stay }
  on event jaundice { otherwise -> stopped }
  initial state early "Early" {
    on entry { do order due within 14 days }
    on panel { when tx > 3 -> high }
  }
  state high "High" {
    on entry { do order due within 7 days }
    on panel { when tx <= 1 -> early }
  }
}
""" + END
    fs = found(body)
    assert [(f.code, f.line) for f in fs] == [("W640", line_of(body, "when tx > 5 -> stopped  otherwise stay"))]
    assert "never fires in state early (whenever 'tx > 5' holds, 'when tx > 3' (line" in fs[0].message
    assert "it fires only in high" in fs[0].message
    # the rule can fire, so the state it leads to is reachable and nothing else is reported
    assert fs[0].rules == ("on_treatment/0/0",)


def test_overlaps_are_within_one_handler_once_not_per_state():
    body = START + """\
state on_treatment "On treatment" {
  on panel { when tx > 5 -> stopped  when tx > 3 stay  otherwise stay }
  on event jaundice { otherwise -> stopped }
  initial state early "Early" {
    on entry { do order due within 14 days }
    on event other { otherwise -> late }
  }
  state late "Late" {
    on entry { do order due within 7 days }
    on panel { when tx > 4 and tx < 5 -> early }
    on event other { otherwise -> early }
  }
}
""" + END
    fs = [(f.code, f.line) for f in found(body)]
    # `tx > 5` and `tx > 3` overlap in the parent's handler: once; late's own rule before
    # them is meant to win (child first): no overlap reported across the levels
    assert fs == [("W603", line_of(body, "when tx > 5 -> stopped  when tx > 3 stay"))]


def test_a_child_is_reached_as_its_parents_initial_child():
    body = START + """\
state on_treatment "On treatment" {
  on event jaundice { otherwise -> stopped }
  initial state early "Early" {
    on entry { do order due within 14 days }
    on panel { when tx > 3 -> late  otherwise stay }
  }
  state late "Late" {
    on entry { do order due within 7 days }
    on panel { when tx <= 1 -> early  otherwise stay }
  }
}
""" + END
    assert found(body) == []


def test_an_unreachable_compound_state_is_reported_once_not_its_children():
    body = START.replace("when tx <= 1 -> on_treatment", "when tx <= 1 and tx > 2 -> on_treatment") + """\
state on_treatment "On treatment" {
  on event jaundice { otherwise -> stopped }
  initial state early "Early" {
    on entry { do order due within 14 days }
    on panel { when tx > 3 -> late  otherwise stay }
  }
  state late "Late" {
    on entry { do order due within 7 days }
    on panel { when tx <= 1 -> early  otherwise stay }
  }
}
""" + END
    fs = [(f.code, f.line) for f in found(body)]
    # the compound state, and the terminal state only its rules lead to; not its children
    assert [c for c in fs if c[0] == "E610"] == [("E610", line_of(body, 'state on_treatment "On treatment"')), ("E610", line_of(body, "terminal state stopped"))]


def test_a_state_whose_only_rules_are_inherited_is_not_a_dead_end():
    body = START + """\
state on_treatment "On treatment" {
  on panel { when tx > 3 -> stopped  otherwise stay }
  initial state early "Early" {
    on entry { do order due within 14 days }
  }
}
""" + END
    assert found(body) == []


TRACKS = START + """\
state on_treatment "On treatment" {
  on event jaundice { otherwise -> stopped }
  track liver "Liver" {
    initial state liver_ok "Liver fine" {
      on entry { do order due within 14 days }
      on panel ordered { when tx > 5 -> stopped  when tx > 3 -> liver_high  otherwise stay }
    }
    state liver_high "Liver high" {
      on entry { do order due within 7 days }
      on panel { when tx <= 1 -> liver_ok  otherwise stay }
    }
  }
  track blood "Blood" {
    initial state blood_ok "Blood fine" {
      on entry { do order_cbc due within 14 days }
      on panel { when ANC < 500 -> blood_low  otherwise stay }
    }
    state blood_low "Blood low" {
      on panel { when ANC >= 1000 -> blood_ok  otherwise stay }
    }
  }
}
""" + END


def test_tracks_are_entered_with_their_parallel_state_and_checked_each():
    assert found(TRACKS) == []


def test_a_track_stuck_while_another_can_end_the_parallel_state_is_not_stuck():
    body = TRACKS.replace("on panel { when ANC >= 1000 -> blood_ok  otherwise stay }", "")
    fs = [(f.code, f.line) for f in found(body)]
    # blood_low reacts only to the inherited jaundice event; the liver track can end it all
    assert fs == []


def test_a_track_with_no_way_out_in_a_parallel_state_nobody_can_leave():
    body = TRACKS.replace("on event jaundice { otherwise -> stopped }", "").replace("when tx > 5 -> stopped  ", "")
    body = body.replace("when tx <= 1 -> on_treatment", "when tx > 20 -> stopped  when tx <= 1 -> on_treatment")
    fs = [(f.code, f.line) for f in found(body)]
    assert ("W612", line_of(body, 'initial state liver_ok')) in fs
    assert ("W612", line_of(body, 'initial state blood_ok')) in fs


def test_zero_time_loop_through_a_compound_states_entry():
    body = """\
fact flag "a flag" bool default false
initial state start "Start" {
  on entry { do order due within 14 days }
  on panel { when tx <= 1 -> outer  otherwise stay }
}
state outer "Outer" {
  on fact flag { when flag -> away }
  initial state inner "Inner" {
    on entry { do order due within 14 days }
    on panel { otherwise stay }
  }
}
state away "Away" {
  on entry { do order due within 14 days }
  on fact flag { when flag -> outer }
  on panel { otherwise stay }
}
"""
    fs = [f for f in found(body) if f.code == "E620"]
    assert len(fs) == 1
    assert "inner -> away -> inner" in fs[0].message


def test_explain_names_the_states_an_inherited_handler_is_unassessable_in():
    body = START + """\
state on_treatment "On treatment" {
  on panel { when tx > 3 -> stopped  when tx <= 3 stay }
  on event jaundice { otherwise -> stopped }
  initial state early "Early" {
    on entry { do order due within 14 days }
    on event other { otherwise -> late }
  }
  state late "Late" {
    on entry { do order due within 7 days }
    on event other { otherwise -> early }
  }
}
""" + END
    g = graph_of(body)
    items = explain(g)
    assert [(u.state, u.states) for u in items] == [("start", ["start"]), ("on_treatment", ["early", "late"])]
    text = explain_text(g)
    assert "state on_treatment (for states early, late), on panel (line" in text


def test_a_track_that_reads_a_lab_only_another_track_orders_is_w642():
    body = TRACKS.replace("when tx > 3 -> liver_high", "when tx > 3 and ANC > 100 -> liver_high")
    fs = [(f.code, f.line) for f in found(body)]
    assert fs == [("W642", line_of(body, "when tx > 3 and ANC > 100"))]
    # ordered in the track itself (or around it): no finding
    ok = body.replace('on entry { do order due within 14 days }\n      on panel ordered', 'on entry { do order due within 14 days  do order_cbc due within 14 days }\n      on panel ordered')
    assert found(ok) == []


def test_an_inherited_lone_otherwise_overridden_in_some_states_is_no_finding():
    body = START + """\
state on_treatment "On treatment" {
  on event jaundice { otherwise -> stopped }
  initial state early "Early" {
    on entry { do order due within 14 days }
    on panel { when tx > 3 -> late  otherwise stay }
  }
  state late "Late" {
    on entry { do order due within 7 days }
    on panel { when tx <= 1 -> early  otherwise stay }
    on event jaundice { otherwise -> early }
  }
}
""" + END
    assert found(body) == []


DRUG_HEAD = 'drug toci "tocilizumab" doses 8, 4 unit "mg/kg"\n' + \
    'action hold_toci "Interrupt" holds toci\naction resume_toci "Resume at 4" resumes toci at 4\n' + \
    'action stop_toci "Stop" stops toci\n'


def test_a_hold_that_its_track_never_lifts_is_w641_and_a_resume_lifts_it():
    body = DRUG_HEAD + TRACKS.replace(
        'state blood_low "Blood low" {', 'state blood_low "Blood low" {\n      on entry { do hold_toci }')
    fs = [(f.code, f.line) for f in found(body)]
    assert fs == [("W641", line_of(body, "on entry { do hold_toci }"))]
    assert "holds toci in track blood" in found(body)[0].message
    resumed = body.replace("when ANC >= 1000 -> blood_ok", "when ANC >= 1000 -> blood_ok { do resume_toci }")
    assert found(resumed) == []
    # a stop on the track's own way on lifts it too (a discontinuation)
    stopped = body.replace("when ANC >= 1000 -> blood_ok", "when ANC >= 1000 -> stopped { do stop_toci }")
    assert found(stopped) == []
    # the other track's resume does not: the hold is the blood track's own
    other = body.replace("when tx <= 1 -> liver_ok", "when tx <= 1 -> liver_ok { do resume_toci }")
    assert [f.code for f in found(other)] == ["W641"]


def test_explain_notes_a_resume_while_another_track_may_hold():
    body = DRUG_HEAD + TRACKS.replace(
        'state blood_low "Blood low" {', 'state blood_low "Blood low" {\n      on entry { do hold_toci }').replace(
        'state liver_high "Liver high" {\n      on entry { do order due within 7 days }',
        'state liver_high "Liver high" {\n      on entry { do order due within 7 days  do hold_toci }').replace(
        "when tx <= 1 -> liver_ok", "when tx <= 1 -> liver_ok { do resume_toci }")
    text = explain_text(graph_of(body))
    line = line_of(body, "when tx <= 1 -> liver_ok { do resume_toci }")
    assert (f"  - line {line}: 'resume_toci' resumes toci in track liver; while track blood (line "
            f"{line_of(body, 'on entry { do hold_toci }')}) may hold it, it stays held") in text


def test_zero_time_loop_through_a_choices_alternative():
    body = """\
fact flag "a flag" bool default false
action go_b "Go to b"
action go_c "Go to c"
initial state start "Start" {
  on entry { do order due within 14 days }
  on fact flag {
    when flag {
      do one of {
        go_b -> b
        go_c -> c { set seen = true }
      }
    }
  }
  on panel { otherwise stay }
}
state b "B" {
  on entry { do order due within 14 days }
  on fact flag { when flag -> start }
  on panel { otherwise stay }
}
state c "C" {
  on entry { do order due within 14 days }
  on fact flag { when flag and not seen -> start }
  on panel { otherwise stay }
}
var seen "seen" bool default false
"""
    fs = [f for f in found(body) if f.code == "E620"]
    # start -> b -> start loops (the default alternative); start -> c -> start does not: the
    # alternative's own action sets `seen`, which c's rule then reads
    assert [f.message.split(" can repeat")[0] for f in fs] == ["zero-time loop: start -> b -> start"]
    assert fs[0].rules == ("start/0/0", "b/0/0")
    # without the action, the other alternative loops too, through its own edge
    fs = [f for f in found(body.replace(" { set seen = true }", "")) if f.code == "E620"]
    assert sorted(f.rules for f in fs) == [("start/0/0", "b/0/0"), ("start/0/0@1", "c/0/0")]


def test_an_action_on_a_drug_stopped_on_every_way_there_is_w643():
    body = DRUG_HEAD + START.replace("when tx <= 1 -> on_treatment", "when tx <= 1 -> on_treatment  when tx > 30 -> stopped") + """\
state on_treatment "On treatment" {
  on event jaundice { otherwise -> stopped { do stop_toci } }
  initial state early "Early" {
    on entry { do order due within 14 days }
    on panel { when tx > 3 -> stopped { do stop_toci }  otherwise stay }
  }
}
state stopped "Stopped" {
  on entry { do order due within 7 days }
  on panel { when tx <= 1 -> done { do resume_toci }  otherwise stay }
}
terminal state done "Done"
"""
    # the baseline's own way to `stopped` stops nothing: not every way in has stopped the drug
    assert [f.code for f in found(body)] == []
    stopped_everywhere = body.replace("when tx > 30 -> stopped", "when tx > 30 -> stopped { do stop_toci }")
    fs = found(stopped_everywhere)
    assert [(f.code, f.line) for f in fs] == [("W643", line_of(body, "when tx <= 1 -> done { do resume_toci }"))]
    assert fs[0].message.startswith("state stopped: 'resume_toci' acts on toci, which every way into this state has stopped")


def test_a_timer_of_a_state_around_is_not_armed_again_by_a_move_inside_it():
    body = """\
fact flag "a flag" bool default true
initial state start "Start" {
  on entry { do order due within 14 days }
  on panel { when tx <= 1 -> outer  otherwise stay }
}
state outer "Outer" {
  after 0 days { when flag -> second }
  on panel { otherwise stay }
  initial state first "First" {
    on entry { do order due within 14 days }
  }
  state second "Second" {
    on entry { do order due within 14 days }
    on fact flag { when flag -> first }
  }
}
"""
    # outer's timer fires once, on entering outer; second -> first stays inside outer: no loop
    assert [f.code for f in found(body) if f.code == "E620"] == []
    # leaving outer and coming back re-arms it: then it loops
    looping = body.replace("on fact flag { when flag -> first }", "on fact flag { when flag -> outer }")
    fs = [f for f in found(looping) if f.code == "E620"]
    assert len(fs) == 1 and "first -> second -> first" in fs[0].message
