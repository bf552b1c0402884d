"""The simulator's semantics (docs/simulation.md), rule by rule, on small protocols written
here and on the two shipped protocols."""

from __future__ import annotations

import datetime
import json
import textwrap
from pathlib import Path

import pytest

from rxwatch.compiler import compile_file, compile_source
from rxwatch.inputs import yamlsrc
from rxwatch.simulator.engine import MAX_TRANSITIONS_PER_DAY, Machine, SimulationError, simulate
from rxwatch.simulator.expr import shift
from rxwatch.inputs.model import Choice, LabResult, Loc, Timeline
from rxwatch.inputs.yamljson import parse_timeline
from rxwatch.simulator.trace import to_json

ROOT = Path(__file__).resolve().parent.parent
# the anakinra pathway v2 (a flat protocol) and its demo timeline, as shipped before issue 11:
# the engine's semantics are tested on them; the shipped v3 is tested by its scenarios
ANAKINRA = ROOT / "tests" / "data" / "engine" / "anakinra_v2.rxw"
LEFLUNOMIDE = ROOT / "protocols" / "leflunomide_hepatotoxicity.rxw"

HEADER = """
protocol t
  version "0.1"
source s "a source" kind convention
lab ALT "alanine aminotransferase" unit "U/L" uln 40
lab AST "aspartate aminotransferase" unit "U/L" uln 40
lab TBIL "total bilirubin" unit "mg/dL" uln 1.2
lab INR "international normalised ratio"
action order_alt "order ALT" orders ALT
action order_tbil "order TBIL" orders TBIL
action note "a note"
action other "another note"
action start_drug "start"
event bleed "a bleed"
fact risky "a risk" bool default false
"""


def graph_of(body: str, header: str = HEADER):
    result = compile_source(textwrap.dedent(header) + textwrap.dedent(body), "t.rxw", verify=False)
    assert result.ok, [str(d) for d in result.diagnostics if d.is_error]
    return result.graph


_shipped: dict = {}


def shipped(path: Path):
    if path not in _shipped:
        result = compile_file(str(path))
        assert result.ok
        _shipped[path] = result.graph
    return _shipped[path]


def timeline(graph, text: str, path: str = "case.yaml") -> Timeline:
    doc = yamlsrc.load(textwrap.dedent(text), path)
    return parse_timeline(doc, path, graph.graph)


def run(graph, text: str, **kw) -> dict:
    return simulate(graph, timeline(graph, text), **kw)


def steps(trace: dict, type_: str | None = None, **match) -> list[dict]:
    return [s for s in trace["steps"] if (type_ is None or s["type"] == type_)
            and all(s.get(k) == v for k, v in match.items())]


def path_of(trace: dict) -> list[str]:
    return [s["state"] for s in trace["steps"] if s["type"] == "enter"]


ONE_STATE = """
initial state a "A" {
  on entry { do order_alt due 2..4 weeks cite s }
  on panel { when ALT > 1000 -> b cite s
             otherwise stay cite s }
}
terminal state b "B"
"""


# ---------------------------------------------------------------------------- calendar

def test_calendar_months_are_calendar_months():
    assert shift(datetime.date(2025, 1, 31), 1, "months") == datetime.date(2025, 2, 28)
    assert shift(datetime.date(2024, 1, 31), 1, "months") == datetime.date(2024, 2, 29)
    assert shift(datetime.date(2024, 2, 29), 1, "years") == datetime.date(2025, 2, 28)
    assert shift(datetime.date(2025, 1, 31), 2, "weeks") == datetime.date(2025, 2, 14)


def test_a_window_in_months_from_the_31st_ends_on_the_last_day_of_february():
    g = graph_of("""
    initial state a "A" { on entry { do order_alt due 1..2 months cite s } }
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-31
    until: 2025-04-30
    """)
    (order,) = steps(trace, "action", action="order_alt")
    assert order["window"] == ["2025-02-28", "2025-03-31"]
    (late,) = steps(trace, "deviation")
    assert late["date"] == "2025-04-01"


@pytest.mark.parametrize("window, amounts", [("1..12 months", (1, 12)), ("1..2 years", (12, 24))])
def test_windows_made_once_per_day_are_right_at_month_ends_and_in_leap_years(window, amounts):
    # a Machine makes an action's window (and its order) once per day and shares it between
    # patients: days at month ends, on 29 February and in century years, asked twice each
    from dateutil.relativedelta import relativedelta

    m = Machine(graph_of(f"""
    initial state a "A" {{ on entry {{ do order_alt due {window} cite s }} }}
    """))
    days = ["2024-01-31", "2024-02-29", "2025-01-31", "2023-12-31", "2024-03-31", "2028-02-29", "2100-02-28",
            "2099-12-31", "2000-02-29"]
    for _ in range(2):
        for text in days:
            day = datetime.date.fromisoformat(text)  # a new date object each time
            first, last = (day + relativedelta(months=k) for k in amounts)
            trace = m.run(Timeline("<code>", text, {}, day, last + datetime.timedelta(days=1), ()))
            (action,) = steps(trace, "action")
            assert action["window"] == [first.isoformat(), last.isoformat()], text
            (late,) = steps(trace, "deviation")
            assert late["date"] == (last + datetime.timedelta(days=1)).isoformat(), text
            assert shift(day, amounts[1], "months") == last


def test_calendar_shift_is_dateutils_on_every_kind_of_day():
    # shift counts months with the verifier's calendar (compiler/verify/calendar.add_months), not
    # dateutil: the two agree on month ends, leap days, and the calendar's two ends
    import random

    from dateutil.relativedelta import relativedelta

    from rxwatch.simulator.expr import MAX_DATE

    rng = random.Random(13)
    days = [datetime.date(1, 1, 1) + datetime.timedelta(days=rng.randrange(3_652_059)) for _ in range(3000)]
    days += [datetime.date(y, m, d) for y in (1, 1900, 2000, 2024, 2100, 9999) for m in (1, 2, 3, 12) for d in (28, 29, 31)
             if (m, d) != (2, 31) and (m != 2 or d < 29 or y % 4 == 0 and (y % 100 or y % 400 == 0))]
    for day in days:
        for amount in (rng.randrange(-30, 30), rng.randrange(-12_000, 12_000), 0, 1, -1, 12):
            for unit in ("months", "years"):
                try:
                    want = day + relativedelta(**{unit: amount})
                except (OverflowError, ValueError):
                    want = MAX_DATE if amount >= 0 else datetime.date.min
                assert shift(day, amount, unit) == want, (day, amount, unit)


# ---------------------------------------------------------------------------- orders

def test_a_window_that_closes_without_a_panel_is_overdue_once_and_the_order_stays_open():
    g = graph_of(ONE_STATE)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-06-30
    events:
      - {date: 2025-03-10, event: bleed}
    """)
    devs = steps(trace, "deviation")
    assert devs == [{"date": "2025-02-04", "type": "deviation", "kind": "overdue", "action": "order_alt",
                     "window": ["2025-01-20", "2025-02-03"], "ordered": "2025-01-06", "line": devs[0]["line"]}]
    assert trace["open_orders"][0]["action"] == "order_alt"
    assert trace["open_orders"][0]["window"] == ["2025-01-20", "2025-02-03"]
    assert trace["open_orders"][0]["overdue"] is True


def test_a_late_panel_fulfils_the_overdue_order():
    g = graph_of(ONE_STATE)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-02-20, lab: ALT, value: 30}
    """)
    assert len(steps(trace, "deviation")) == 1
    # the stay rule orders nothing, so no order is left
    assert trace["open_orders"] == []
    assert trace["until"] == "2025-02-20"


def test_no_deviation_after_until():
    g = graph_of(ONE_STATE)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-02-03
    """)
    assert steps(trace, "deviation") == []
    assert trace["open_orders"][0]["overdue"] is False
    assert all(s["date"] <= "2025-02-03" for s in trace["steps"])


def test_a_panel_before_the_window_opens_is_acted_on_but_leaves_the_order_open():
    g = graph_of(ONE_STATE)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-06-30
    events:
      - {date: 2025-01-08, lab: ALT, value: 30}
    """)
    assert steps(trace, "transition", date="2025-01-08")  # evaluated and acted on
    (late,) = steps(trace, "deviation")  # but the order (due 2025-01-20..02-03) stays open
    assert late["kind"] == "overdue" and late["date"] == "2025-02-04"
    assert trace["open_orders"][0]["overdue"] is True


V2 = """
results valid for 3 days cite s
reminders every 4 weeks cite s
action order_liver "liver panel" orders ALT, AST, TBIL, INR fulfilled by ALT or AST
let tx "tx" = max(xuln(ALT), xuln(AST))
let bili "bili" = xuln(TBIL)
initial state a "A" {
  on entry { do order_liver due 2..4 weeks cite s }
  on panel {
    when tx >= 3 and not known(TBIL) stay cite s { do note }
    when tx >= 3 and bili > 2 -> hy cite s
    when tx >= 3 -> high cite s
    when since entry >= 14 days and fulfilled(order_liver) -> a cite s
    otherwise stay cite s
  }
}
state high "H" { on panel { when tx <= 1 -> a cite s  otherwise stay cite s } }
state hy "Hy"
"""


def test_results_of_a_split_panel_combine_within_the_lookback():
    g = graph_of(V2)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-27, lab: ALT, value: 160}
      - {date: 2025-01-28, lab: TBIL, value: 3.0}
    """)
    # Monday: tx 4 without bilirubin: the partial-panel rule; Tuesday: Monday's ALT is still valid
    assert steps(trace, "action", date="2025-01-27", action="note")
    assert path_of(trace) == ["a", "hy"]
    (t,) = steps(trace, "transition", to="hy")
    assert t["date"] == "2025-01-28"


def test_a_result_older_than_the_lookback_is_not_in_the_panel():
    g = graph_of(V2)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-27, lab: ALT, value: 160}
      - {date: 2025-01-31, lab: TBIL, value: 3.0}
    """)
    # 4 days later: ALT is no longer valid, tx is unknown: nothing is decided
    assert "hy" not in path_of(trace)
    (u,) = steps(trace, "unassessable", date="2025-01-31")
    assert u["missing"] == ["ALT", "AST"]


def test_only_the_fulfilling_labs_inside_the_window_fulfil_an_order():
    g = graph_of(V2)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-04-30
    events:
      - {date: 2025-01-08, lab: ALT, value: 20}
      - {date: 2025-01-22, lab: INR, value: 1.0}
      - {date: 2025-01-23, lab: TBIL, value: 0.5}
    """)
    devs = [(d["date"], d["kind"]) for d in steps(trace, "deviation")]
    # day 2 ALT: before the window; INR and TBIL alone: incomplete; then overdue and reminders
    assert devs == [("2025-01-22", "incomplete"), ("2025-01-23", "incomplete"), ("2025-02-04", "overdue"),
                    ("2025-03-04", "still_overdue"), ("2025-04-01", "still_overdue"),
                    ("2025-04-29", "still_overdue")]
    inc = steps(trace, "deviation", kind="incomplete")[0]
    assert inc["action"] == "order_liver" and inc["window"] == ["2025-01-20", "2025-02-03"]
    assert inc["missing"] == ["ALT", "AST"]
    assert trace["open_orders"][0]["overdue"] is True


def test_a_late_result_fulfils_and_stops_the_reminders():
    g = graph_of(V2)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-03-20
    events:
      - {date: 2025-03-10, lab: AST, value: 20}
    """)
    devs = [(d["date"], d["kind"]) for d in steps(trace, "deviation")]
    assert devs == [("2025-02-04", "overdue"), ("2025-03-04", "still_overdue")]
    # fulfilled, and at least 14 days in the state: re-entered, with a new order
    assert steps(trace, "transition", date="2025-03-10", to="a")


def test_since_entry_and_fulfilled_decide_together():
    g = graph_of(V2)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-02-10
    events:
      - {date: 2025-01-15, lab: ALT, value: 20}
      - {date: 2025-01-22, lab: ALT, value: 20}
    """)
    stays = steps(trace, "transition", date="2025-01-15")
    assert stays[0]["stay"] is True  # day 9: before the window and before 14 days
    (re,) = steps(trace, "transition", date="2025-01-22")
    assert re["to"] == "a" and not re.get("stay")  # day 16, fulfilled: re-entered


def test_two_results_of_one_lab_on_one_day_the_later_counts():
    g = graph_of(V2)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-27T14:00, lab: ALT, value: 20}
      - {date: 2025-01-27T08:00, lab: ALT, value: 200}
      - {date: 2025-01-27, lab: TBIL, value: 0.5}
    """)
    # by time: the 14:00 result (20) counts; the 08:00 one (200) is replaced
    assert "high" not in path_of(trace)
    (t,) = steps(trace, "transition", date="2025-01-27")
    assert [r["value"] for r in t["replaced"]] == [200]


def test_the_unit_a_result_came_in_never_changes_a_decision():
    g = graph_of("""
    initial state a "A" { on panel { when xuln(TBIL) >= 2 -> b cite s  otherwise stay cite s } }
    state b "B"
    """)
    for value, unit in (("2.4", "mg/dL"), ("24", "mg/L"), ("0.024", "g/L")):
        trace = run(g, f"""
        patient: {{id: p}}
        start: 2025-01-06
        events: [{{date: 2025-01-07, lab: TBIL, value: {value}, unit: {unit}}}]
        """)
        assert trace["final_state"] == "b", unit


def test_a_panel_without_the_ordered_labs_does_not_fulfil_the_order():
    g = graph_of(ONE_STATE)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-06-30
    events:
      - {date: 2025-01-22, lab: AST, value: 30}
    """)
    assert [d["date"] for d in steps(trace, "deviation")] == ["2025-02-04"]


def test_orders_issued_by_the_panels_rules_stay_open_and_replace_the_earlier_one():
    g = graph_of("""
    initial state a "A" {
      on entry { do order_alt due within 7 days cite s }
      on panel { otherwise stay cite s { do order_alt due 4..6 weeks cite s } }
    }
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-01-07
    events:
      - {date: 2025-01-07, lab: ALT, value: 30}
    """)
    assert trace["open_orders"] == [{"action": "order_alt", "window": ["2025-02-04", "2025-02-18"],
                                     "ordered": "2025-01-07", "overdue": False,
                                     "line": trace["open_orders"][0]["line"]}]
    # a second order of the same action before the first is fulfilled replaces it
    g2 = graph_of("""
    initial state a "A" {
      on entry { do order_alt due within 7 days cite s }
      on event bleed { otherwise stay cite s { do order_alt due 4..6 weeks cite s } }
    }
    """)
    trace = run(g2, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-03-31
    events:
      - {date: 2025-01-07, event: bleed}
    """)
    assert [o["window"] for o in trace["open_orders"]] == [["2025-02-04", "2025-02-18"]]
    assert [d["window"] for d in steps(trace, "deviation")] == [["2025-02-04", "2025-02-18"]]


def test_an_action_that_orders_no_labs_opens_no_order():
    g = graph_of("""
    initial state a "A" { on entry { do note cite s } }
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-12-31
    """)
    assert trace["open_orders"] == [] and steps(trace, "deviation") == []
    assert steps(trace, "action") == [{"date": "2025-01-06", "type": "action", "action": "note", "state": "a",
                                      "sources": ["s"], "line": steps(trace, "action")[0]["line"]}]


def test_entering_a_terminal_state_withdraws_the_open_orders():
    g = shipped(ANAKINRA)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-12-31
    events:
      - {date: 2025-01-06, lab: ALT, value: 30}
      - {date: 2025-01-20, event: anakinra_stopped}
    """)
    assert path_of(trace) == ["baseline", "early_check", "off_treatment"]
    (end,) = steps(trace, "enter", state="off_treatment")
    assert end["withdrawn"] == ["order_lfts"]
    assert trace["open_orders"] == [] and steps(trace, "deviation") == []
    assert trace["final_state"] == "off_treatment"


def test_in_a_terminal_state_nothing_reacts():
    g = shipped(ANAKINRA)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-06, lab: ALT, value: 30}
      - {date: 2025-01-20, event: anakinra_stopped}
      - {date: 2025-02-20, lab: ALT, value: 3000}
      - {date: 2025-02-21, event: jaundice}
    """)
    assert trace["steps"][-1]["state"] == "off_treatment"
    assert trace["final_state"] == "off_treatment"


# ---------------------------------------------------------------------------- alternatives

def test_alternatives_take_the_first_option_unless_the_timeline_records_a_choice():
    g = shipped(ANAKINRA)
    text = textwrap.dedent("""
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-06, lab: ALT, value: 30}
      - {date: 2025-02-10, lab: ALT, value: 160}
    """)
    (first,) = [s for s in run(g, text)["steps"] if s.get("options")]
    assert first["action"] == "hold_anakinra"
    assert first["options"] == ["hold_anakinra", "reduce_dose"]
    trace = run(g, text + "  - {date: 2025-02-10, choice: reduce_dose}\n")
    (chosen,) = [s for s in trace["steps"] if s.get("options")]
    assert chosen["action"] == "reduce_dose" and chosen["state"] == "moderate_elevation"
    assert chosen["options"] == ["hold_anakinra", "reduce_dose"]
    assert trace["warnings"] == []


def test_a_choice_that_matches_no_alternative_that_day_is_a_warning():
    g = shipped(ANAKINRA)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-06, lab: ALT, value: 30}
      - {date: 2025-02-11, choice: reduce_dose}
      - {date: 2025-02-10, lab: ALT, value: 160}
    """)
    (taken,) = [s for s in trace["steps"] if s.get("options")]
    assert taken["action"] == "hold_anakinra"  # the choice is dated the next day
    (w,) = trace["warnings"]
    assert w["date"] == "2025-02-11" and w["line"] == 6 and "reduce_dose" in w["message"]


def test_a_preferred_option_is_taken_where_no_recorded_choice_decides():
    g = graph_of("""
    initial state a "A" { on entry { do one of order_alt, order_tbil due 1..2 weeks cite s } }
    """)
    text = """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-01-06
    events: []
    """
    # by default the first option; preferred, the second, with its own order and window
    assert [o["action"] for o in run(g, text)["open_orders"]] == ["order_alt"]
    trace = Machine(g).run(timeline(g, text), prefer=("order_tbil",))
    (a,) = steps(trace, "action")
    assert (a["action"], a["options"], a["window"]) == ("order_tbil", ["order_alt", "order_tbil"],
                                                        ["2025-01-13", "2025-01-20"])
    assert [o["action"] for o in trace["open_orders"]] == ["order_tbil"] and trace["warnings"] == []
    # the step says the preference took it; the first option by default, or a recorded choice, does not
    assert a["preferred"] is True
    assert "preferred" not in steps(run(g, text), "action")[0]
    chosen = text.replace("events: []", "events: [{date: 2025-01-06, choice: order_tbil}]")
    (a,) = steps(Machine(g).run(timeline(g, chosen), prefer=("order_tbil",)), "action")
    assert a["action"] == "order_tbil" and "preferred" not in a
    assert '"preferred": true' in to_json(trace)


def test_a_chosen_option_with_a_window_opens_its_order():
    g = graph_of("""
    initial state a "A" { on entry { do one of order_alt, order_tbil due 1..2 weeks cite s } }
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-01-06
    events:
      - {date: 2025-01-06, choice: order_tbil}
    """)
    assert [o["action"] for o in trace["open_orders"]] == ["order_tbil"]
    (a,) = steps(trace, "action")
    assert a["action"] == "order_tbil" and a["window"] == ["2025-01-13", "2025-01-20"]


# ---------------------------------------------------------------------------- transitions

def test_a_rules_actions_run_before_the_entry_actions_of_its_target():
    g = graph_of("""
    var flag "a flag" bool default false
    initial state a "A" {
      on event bleed { otherwise -> b cite s { do start_drug  set flag = true cite s } }
    }
    state b "B" {
      on entry { if flag { do note cite s } else { do other cite s } }
    }
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-07, event: bleed}
    """)
    types = [(s["type"], s.get("action") or s.get("state") or s.get("to")) for s in trace["steps"]]
    assert types == [("enter", "a"), ("transition", "b"), ("enter", "b"), ("action", "start_drug"), ("set", "b"),
                     ("action", "note")]
    assert steps(trace, "set") == [{"date": "2025-01-07", "type": "set", "var": "flag", "value": True, "state": "b",
                                    "line": 4 + HEADER.count("\n")}]
    assert all(s["state"] == "b" for s in steps(trace, "action"))
    t = steps(trace, "transition")[0]
    assert t["trigger"] == "event" and t["event"] == "bleed" and t["because"] == ""


def test_a_stay_rule_does_not_reenter_and_a_target_rule_to_itself_does():
    g = graph_of("""
    initial state a "A" {
      on entry { do note cite s }
      on panel { when ALT > 100 -> a cite s
                 otherwise stay cite s { do other cite s } }
    }
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-07, lab: ALT, value: 30}
      - {date: 2025-01-08, lab: ALT, value: 300}
    """)
    kinds = [(s["date"][-2:], s["type"], s.get("action") or s.get("state") or s.get("to")) for s in trace["steps"]]
    assert kinds == [
        ("06", "enter", "a"), ("06", "action", "note"),
        ("07", "transition", "a"), ("07", "action", "other"),
        ("08", "transition", "a"), ("08", "enter", "a"), ("08", "action", "note"),
    ]
    stay, again = steps(trace, "transition")
    assert stay["stay"] is True and stay["from"] == stay["to"] == "a" and stay["because"] == ""
    assert "stay" not in again and again["because"] == "ALT > 100"


def test_the_first_rule_whose_guard_holds_fires_and_none_is_nothing():
    g = graph_of("""
    initial state a "A" {
      on panel {
        when ALT > 100 -> b cite s
        when ALT > 50 -> c cite s
      }
    }
    state b "B"
    state c "C"
    """)
    assert path_of(run(g, """
    patient: {id: p}
    start: 2025-01-06
    events: [{date: 2025-01-07, lab: ALT, value: 300}]
    """)) == ["a", "b"]
    assert path_of(run(g, """
    patient: {id: p}
    start: 2025-01-06
    events: [{date: 2025-01-07, lab: ALT, value: 30}]
    """)) == ["a"]


def test_steps_name_the_rule_and_the_protocol_line_they_come_from():
    g = shipped(ANAKINRA)
    lines = ANAKINRA.read_text(encoding="utf-8").splitlines()
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-06, lab: ALT, value: 30}
      - {date: 2025-02-10, lab: ALT, value: 300}
    """)
    t = [s for s in steps(trace, "transition") if s["to"] == "stopped"][0]
    assert t["rule"].startswith("early_check/0/")
    assert g.edges["early_check", "stopped", t["rule"]]["span"]["line"] == t["line"]
    assert lines[t["line"] - 1].strip().startswith("when ") and "-> stopped" in lines[t["line"] - 1]
    assert "ctcae-v5" in t["sources"]
    disc = steps(trace, "action", action="discontinue_anakinra")[0]
    text = lines[disc["line"] - 1].strip()
    assert text.startswith("do discontinue_anakinra")
    assert disc["sources"] == [x.strip() for x in text.split(" cite ", 1)[1].split(",")]
    enter = steps(trace, "enter", state="stopped")[0]
    assert "state stopped" in lines[enter["line"] - 1]


# ---------------------------------------------------------------------------- timers

TIMED = """
initial state a "A" {
  on event bleed { otherwise -> a cite s }
  on panel { when ALT > 100 -> b cite s }
  after 2 weeks { otherwise -> c cite s }
}
state b "B" { on event bleed { otherwise -> a cite s } }
terminal state c "C"
"""


def test_a_timer_fires_on_its_due_date_when_the_state_is_still_active():
    g = graph_of(TIMED)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-12-31
    """)
    t = steps(trace, "transition")[0]
    assert (t["date"], t["trigger"], t["to"]) == ("2025-01-20", "timer", "c")


def test_reentering_rearms_the_timer_and_leaving_disarms_it():
    g = graph_of(TIMED)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-12-31
    events:
      - {date: 2025-01-10, event: bleed}
    """)
    assert [(s["date"], s["to"]) for s in steps(trace, "transition")] == [("2025-01-10", "a"), ("2025-01-24", "c")]
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-12-31
    events:
      - {date: 2025-01-10, lab: ALT, value: 300}
    """)
    assert trace["final_state"] == "b" and not steps(trace, "transition", trigger="timer")


def test_a_timer_since_an_action_counts_from_the_last_recommendation():
    g = graph_of("""
    initial state a "A" {
      on panel { otherwise -> b cite s { do start_drug } }
    }
    state b "B" {
      on event bleed { otherwise -> b cite s }
      after 1 month since start_drug { otherwise -> c cite s }
    }
    terminal state c "C"
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-31
    until: 2025-12-31
    events:
      - {date: 2025-01-31, lab: ALT, value: 30}
      - {date: 2025-02-10, event: bleed}
    """)
    # re-entering b on 02-10 re-arms the timer, still one month after start_drug (01-31)
    (t,) = steps(trace, "transition", trigger="timer")
    assert t["date"] == "2025-02-28" and t["to"] == "c"


def test_a_timer_since_an_action_never_recommended_is_not_armed():
    g = graph_of("""
    initial state a "A" {
      after 1 day since start_drug { otherwise -> c cite s }
      after 1 year { otherwise -> c cite s }
    }
    terminal state c "C"
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2026-03-01
    """)
    (t,) = steps(trace, "transition")
    assert t["date"] == "2026-01-06"


def test_a_timer_already_due_when_armed_fires_on_the_entry_day_after_entry():
    g = graph_of("""
    initial state a "A" {
      on event bleed { otherwise -> b cite s }
      on entry { do start_drug cite s }
    }
    state b "B" {
      on entry { do note cite s }
      after 1 week since start_drug { otherwise -> c cite s }
    }
    terminal state c "C"
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-02-01, event: bleed}
    """)
    kinds = [(s["date"], s["type"], s.get("action") or s.get("state") or s.get("to")) for s in trace["steps"]]
    assert kinds[-4:] == [("2025-02-01", "enter", "b"), ("2025-02-01", "action", "note"),
                          ("2025-02-01", "transition", "c"), ("2025-02-01", "enter", "c")]


def test_leflunomide_moves_to_long_term_six_calendar_months_after_starting():
    g = shipped(LEFLUNOMIDE)
    trace = run(g, """
    patient: {id: p}
    start: 2024-08-31
    until: 2025-03-15
    events:
      - {date: 2024-08-31, lab: ALT, value: 20}
    """)
    (t,) = steps(trace, "transition", trigger="timer")
    assert t["date"] == "2025-02-28" and (t["from"], t["to"]) == ("first_six_months", "long_term")
    assert t["rule"] == "first_six_months/0/0"


def test_since_in_a_guard_compares_calendar_dates():
    g = shipped(LEFLUNOMIDE)
    base = """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-06, lab: ALT, value: 20}
      - {date: 2025-02-03, lab: ALT, value: 100}
      - {date: %s, lab: ALT, value: 40}
    """
    # reduced on 02-03 (ALT 2.5xULN); normal again: back to the phase it came from
    early = run(g, base % "2025-02-10")
    assert path_of(early)[-2:] == ["confirm_reduce", "first_six_months"]
    # since(start_leflunomide) < 6 months is false from 2025-07-06 on
    assert path_of(run(g, base % "2025-07-05"))[-1] == "first_six_months"
    late = run(g, base % "2025-07-06")
    assert path_of(late)[-2:] == ["confirm_reduce", "long_term"]


# ---------------------------------------------------------------------------- facts

def test_a_fact_handler_acts_at_once_on_entry():
    g = shipped(LEFLUNOMIDE)
    trace = run(g, """
    patient: {id: p, facts: {liver_disease: true}}
    start: 2025-01-06
    events:
      - {date: 2025-01-06, lab: ALT, value: 20}
    """)
    kinds = [(s["type"], s.get("action") or s.get("state") or s.get("to")) for s in trace["steps"]]
    assert kinds == [("enter", "baseline"), ("action", "order_lfts"), ("transition", "contraindicated"),
                     ("enter", "contraindicated"), ("action", "do_not_start")]
    t = steps(trace, "transition")[0]
    assert t["trigger"] == "fact" and t["because"] == "liver_disease" and "fact" not in t
    assert trace["final_state"] == "contraindicated" and trace["open_orders"] == []


def test_a_fact_change_triggers_the_handler_that_names_it():
    g = shipped(LEFLUNOMIDE)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-08, fact: liver_disease, value: true}
    """)
    t = steps(trace, "transition")[0]
    assert (t["date"], t["trigger"], t["fact"], t["to"]) == ("2025-01-08", "fact", "liver_disease", "contraindicated")


def test_a_fact_change_is_read_by_later_guards_and_unnamed_fact_handlers_hear_every_fact():
    g = graph_of("""
    fact weight "weight" number unit "kg" default 70
    initial state a "A" {
      on fact { when risky and weight > 100 -> b cite s }
    }
    state b "B"
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-07, fact: risky, value: true}
      - {date: 2025-01-08, fact: weight, value: 120}
    """)
    (t,) = steps(trace, "transition")
    assert (t["date"], t["fact"]) == ("2025-01-08", "weight")


# ---------------------------------------------------------------------------- the day's order

def test_within_a_day_deviations_then_timers_then_the_panel_then_events():
    g = graph_of("""
    initial state a "A" {
      on entry { do order_tbil due within 6 days cite s }
      after 1 week { otherwise stay cite s { do note cite s } }
      on panel { otherwise stay cite s { do other cite s } }
      on event bleed { otherwise stay cite s { do start_drug cite s } }
    }
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-13, event: bleed}
      - {date: 2025-01-13, lab: ALT, value: 30}
    """)
    day = [(s["type"], s.get("action") or s.get("trigger")) for s in trace["steps"] if s["date"] == "2025-01-13"]
    assert day == [("deviation", "order_tbil"), ("transition", "timer"), ("action", "note"),
                   ("transition", "panel"), ("action", "other"), ("transition", "event"), ("action", "start_drug")]


# ---------------------------------------------------------------------------- unknown values

UNKNOWN = """
let tx "tx" = max(xuln(ALT), xuln(AST))
let bili "bili" = xuln(TBIL)
initial state a "A" {
  on panel {
    when tx > 3 and bili > 2 -> hy cite s
    when not INR > 1.5 and ALT + AST > 0 -> sum cite s
    when not INR > 1.5 and tx > 3 -> notinr cite s
    when known(INR) -> inr cite s
  }
}
state hy "H"
state sum "S"
state notinr "N"
state inr "I"
"""


@pytest.mark.parametrize("labs, expected", [
    ({"ALT": 200, "TBIL": 3}, "hy"),
    ({"ALT": 200}, "a"),                    # bili unknown with tx > 3: Hy's law undecided: unassessable
    ({"ALT": 20}, "a"),                     # tx > 3 false, so the first guard is false; then INR unknown: unassessable
    ({"ALT": 20, "AST": 10, "INR": 1}, "sum"),
    ({"AST": 200, "TBIL": 1, "INR": 1}, "a"),   # ALT + AST unknown: the second guard is undecided
    ({"AST": 200, "ALT": 10, "TBIL": 1, "INR": 1}, "sum"),
    ({"ALT": 200, "TBIL": 1, "INR": 2}, "inr"),
    ({"INR": 1.0}, "a"),                    # tx unknown: the first guard is undecided
])
def test_unknown_lab_values(labs, expected):
    g = graph_of(UNKNOWN)
    events = "".join(f"\n      - {{date: 2025-01-07, lab: {lab}, value: {v}}}" for lab, v in labs.items())
    trace = run(g, f"""
    patient: {{id: p}}
    start: 2025-01-06
    events:{events}
    """)
    assert trace["final_state"] == expected
    if expected == "a":  # nothing fired: the panel is not assessable, and the trace says why
        (step,) = steps(trace, "unassessable")
        assert step["trigger"] == "panel" and step["state"] == "a" and step["missing"]
        assert set(step["missing"]) <= {"TBIL", "INR", "ALT", "AST"} - set(labs)


def test_an_unassessable_panel_names_the_missing_labs_and_changes_nothing():
    g = graph_of(UNKNOWN)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-07, lab: ALT, value: 200}
    """)
    (step,) = steps(trace, "unassessable")
    # the missing lab that leaves the guard undecided: TBIL (AST is missing too, but tx > 3 whatever it is)
    # with the values the undecided guard read: tx known (5 x ULN), bili unknown
    assert step == {"date": "2025-01-07", "type": "unassessable", "trigger": "panel", "missing": ["TBIL"],
                    "state": "a", "rule": "a/0/0", "line": step["line"], "values": {"tx": 5, "bili": None}}
    assert steps(trace, "transition") == []


def test_outside_a_panel_labs_are_the_most_recent_panel():
    g = graph_of("""
    initial state a "A" { on event bleed { when ALT > 100 -> b cite s } }
    state b "B"
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-07, lab: ALT, value: 300}
      - {date: 2025-01-08, lab: AST, value: 30}
      - {date: 2025-01-09, event: bleed}
    """)
    assert trace["final_state"] == "a"  # the most recent panel (01-08) has no ALT
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-07, lab: ALT, value: 300}
      - {date: 2025-01-09, event: bleed}
    """)
    assert trace["final_state"] == "b"


def test_a_results_own_uln_wins_over_the_declared_default():
    g = graph_of("""
    initial state a "A" { on panel { when xuln(ALT) > 3 -> b cite s  when uln(INR) > 0 -> c cite s } }
    state b "B"
    state c "C"
    """)
    base = """
    patient: {{id: p}}
    start: 2025-01-06
    events: [{{date: 2025-01-07, lab: ALT, value: 130{uln}}}]
    """
    assert run(g, base.format(uln=""))["final_state"] == "b"          # 130 / 40 = 3.25
    assert run(g, base.format(uln=", uln: 50"))["final_state"] == "a"  # 130 / 50 = 2.6
    # INR declares no ULN: uln(INR) is unknown unless the result gives one
    inr = """
    patient: {{id: p}}
    start: 2025-01-06
    events: [{{date: 2025-01-07, lab: ALT, value: 10}}, {{date: 2025-01-07, lab: INR, value: 1.0{uln}}}]
    """
    assert run(g, inr.format(uln=""))["final_state"] == "a"
    assert run(g, inr.format(uln=", uln: 1.2"))["final_state"] == "c"


def test_a_later_result_of_the_day_without_its_own_uln_is_graded_by_the_default():
    # ALT 130 with its own ULN 50 (2.6 x), then, later that day, ALT 130 with none: the later
    # result counts, with the declared ULN (40: 3.25 x); and the other way round
    head = "initial state a \"A\" {{ on panel {{ when xuln(ALT) > 3 -> b cite s }} }}\nstate b \"B\"\n{extra}"
    case = """
    patient: {{id: p}}
    start: 2025-01-06
    events:
      - {{date: 2025-01-07, time: "08:00", lab: ALT, value: 130{first}}}
      - {{date: 2025-01-07, time: "09:00", lab: ALT, value: 130{second}}}
    """
    for extra in ("", "results valid for 3 days cite s"):  # the flat path, and a lookback
        g = graph_of(head.format(extra=extra))
        later = run(g, case.format(first=", uln: 50", second=""))
        assert later["final_state"] == "b"
        assert later["steps"][-2]["replaced"][0]["uln"] == 50
        assert run(g, case.format(first="", second=", uln: 50"))["final_state"] == "a"


def test_the_example_of_the_contract_grades_by_the_results_own_uln():
    g = shipped(ANAKINRA)
    tl = timeline(g, """
    patient: {id: case-07}
    start: 2025-01-06
    events:
      - {date: 2025-01-06, lab: ALT, value: 32}
      - {date: 2025-02-03, lab: ALT, value: 180, uln: 33}
    """)
    # 180 / 33 = 5.45xULN: severe by its own ULN (4.5x, moderate, by the default 40)
    assert path_of(simulate(g, tl))[-1] == "stopped"


# ---------------------------------------------------------------------------- loops and errors

def test_a_zero_time_loop_ends_with_an_error_naming_its_states():
    g = graph_of("""
    initial state a "A" { on panel { otherwise -> b cite s } }
    state b "B" { on fact { otherwise -> c cite s } }
    state c "C" { on fact { when not risky -> b cite s } }
    """)
    tl = timeline(g, """
    patient: {id: p}
    start: 2025-01-06
    events: [{date: 2025-01-09, lab: ALT, value: 1}]
    """)
    with pytest.raises(SimulationError) as info:
        simulate(g, tl)
    e = info.value
    assert e.date == datetime.date(2025, 1, 9)
    assert set(e.states) == {"b", "c"}
    text = str(e)
    assert text.startswith("t.rxw:")
    assert "zero-time loop on 2025-01-09: b -> c -> b" in text
    assert "b/0/0 (line 18), c/0/0 (line 19)" in text and e.line == 18
    assert str(MAX_TRANSITIONS_PER_DAY) in text


def test_many_inputs_on_one_day_are_not_a_loop():
    # each event fires one rule: more than MAX_TRANSITIONS_PER_DAY of them on a day is not a
    # zero-time loop (only rules no input fires count: `on fact` rules on entry, timers)
    g = graph_of("""
    initial state a "A" { on event bleed { otherwise -> b cite s } }
    state b "B" { on event bleed { otherwise -> a cite s } }
    """)
    n = MAX_TRANSITIONS_PER_DAY + 1
    events = "\n".join("  - {date: 2025-01-07, event: bleed}" for _ in range(n))
    trace = run(g, f"patient: {{id: p}}\nstart: 2025-01-06\nevents:\n{events}\n")
    assert sum(s["type"] == "transition" for s in trace["steps"]) == n
    assert trace["final_state"] == "b"


def test_a_self_loop_on_entry_is_a_zero_time_loop_too():
    g = graph_of("""
    initial state a "A" { on fact risky { when risky -> a cite s } }
    """)
    tl = timeline(g, """
    patient: {id: p, facts: {risky: true}}
    start: 2025-01-06
    """)
    with pytest.raises(SimulationError, match=r"a -> a"):
        simulate(g, tl)


# ---------------------------------------------------------------------------- the trace

DEMO = ROOT / "tests" / "data" / "engine" / "anakinra-moderate.yaml"


def test_identical_inputs_give_byte_identical_json():
    from rxwatch.inputs.registry import load_timeline

    g = shipped(ANAKINRA)
    first = to_json(simulate(g, load_timeline(DEMO, g.graph)))
    again = to_json(Machine(shipped(ANAKINRA)).run(load_timeline(DEMO, g.graph)))
    recompiled = compile_file(str(ANAKINRA)).graph
    third = to_json(simulate(recompiled, load_timeline(DEMO, recompiled.graph)))
    assert first == again == third
    assert first.endswith("\n") and json.loads(first)["patient"] == "demo-ra-01"


def test_the_trace_has_the_contract_shape():
    from rxwatch.inputs.registry import load_timeline

    g = shipped(ANAKINRA)
    trace = json.loads(to_json(simulate(g, load_timeline(DEMO, g.graph))))
    assert list(trace)[:7] == ["protocol", "patient", "start", "until", "steps", "final_state", "open_orders"]
    assert trace["protocol"] == {"name": "anakinra_hepatotoxicity", "version": "2.0.0"}
    dates = [s["date"] for s in trace["steps"]]
    assert dates == sorted(dates)
    required = {"enter": {"state"}, "transition": {"from", "to", "trigger", "because", "sources"},
                "action": {"action", "state", "sources"}, "deviation": {"kind", "action", "window"},
                "unassessable": {"trigger", "missing", "state"}, "set": {"var", "value", "state", "line"}}
    for s in trace["steps"]:
        assert required[s["type"]] <= set(s), s
    for o in trace["open_orders"]:
        assert {"action", "window"} <= set(o)


def test_the_demo_timeline_goes_where_the_pathway_says():
    from rxwatch.inputs.registry import load_timeline

    g = shipped(ANAKINRA)
    trace = simulate(g, load_timeline(DEMO, g.graph))
    assert path_of(trace) == ["baseline", "early_check", "moderate_elevation", "maintenance"]
    # in maintenance a normal panel stays, with a new order only when it fulfilled the open one
    assert [s["date"] for s in steps(trace, "transition", **{"from": "maintenance"})] == ["2025-05-06", "2025-07-21"]
    assert [s["action"] for s in steps(trace, "action") if s.get("options")] == ["reduce_dose"]
    assert steps(trace, "action", action="resume_anakinra")[0]["date"] == "2025-03-13"
    # enhanced after recovery from a moderate elevation: 1-2 months, not 3-4
    windows = [s["window"] for s in steps(trace, "action", action="order_lfts", state="maintenance")]
    assert windows[0] == ["2025-04-13", "2025-05-13"]
    (dev,) = steps(trace, "deviation")
    assert (dev["date"], dev["window"]) == ("2025-07-07", ["2025-06-06", "2025-07-06"])
    assert trace["final_state"] == "maintenance"
    assert trace["open_orders"][0]["window"] == ["2025-08-21", "2025-09-21"]


def test_until_ends_the_replay_and_leaves_later_events_out():
    from rxwatch.inputs.registry import load_timeline

    g = shipped(ANAKINRA)
    trace = simulate(g, load_timeline(DEMO, g.graph), until=datetime.date(2025, 3, 1))
    assert trace["until"] == "2025-03-01" and trace["final_state"] == "moderate_elevation"
    assert max(s["date"] for s in trace["steps"]) <= "2025-03-01"


def test_a_timeline_built_in_code_needs_no_file():
    g = shipped(ANAKINRA)
    loc = Loc("<code>", 0)
    day = datetime.date(2025, 1, 6)
    tl = Timeline("<code>", "x", {}, day, None, (
        LabResult(day, "ALT", 30.0, None, loc),
        LabResult(day + datetime.timedelta(days=30), "ALT", 200.0, None, loc),
        Choice(day + datetime.timedelta(days=30), "reduce_dose", loc),
    ))
    trace = Machine(g).run(tl)
    assert trace["until"] == "2025-02-05" and trace["final_state"] == "moderate_elevation"
    assert [s["action"] for s in steps(trace, "action") if s.get("options")] == ["reduce_dose"]


# ---------------------------------------------------------------------------- one Machine, many patients

def test_patients_replayed_on_one_machine_do_not_share_what_is_theirs():
    # the steps and orders of one action on one day are made once and shared by every patient;
    # being overdue, fulfilled or replaced stays with the patient
    g = graph_of(ONE_STATE)
    m = Machine(g)
    day = datetime.date(2025, 1, 6)
    loc = Loc("<code>", 0)
    late = Timeline("<code>", "late", {}, day, datetime.date(2025, 3, 1), ())
    on_time = Timeline("<code>", "on-time", {}, day, datetime.date(2025, 3, 1),
                       (LabResult(datetime.date(2025, 1, 25), "ALT", 30.0, None, loc),))
    first = m.run(late)
    second = m.run(on_time)
    third = m.run(late)
    assert [o["overdue"] for o in first["open_orders"]] == [True] and steps(first, "deviation")
    assert second["open_orders"] == [] and not steps(second, "deviation")
    assert to_json(first) == to_json(third)
    # every step is the patient's own dict: changing one changes no other trace
    first["steps"][1]["date"] = "changed"
    first["open_orders"][0]["window"].append("changed")
    assert to_json(m.run(late)) == to_json(third)
    assert steps(second, "action")[0]["date"] == "2025-01-06"


def test_an_overdue_order_replaced_by_a_new_one_is_no_longer_overdue():
    g = graph_of("""
    initial state a "A" {
      on entry { do order_alt due 1..2 weeks cite s }
      on event bleed { otherwise -> a cite s }
    }
    """)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    until: 2025-02-10
    events:
      - {date: 2025-02-01, event: bleed}
    """)
    assert [s["date"] for s in steps(trace, "deviation")] == ["2025-01-21"]
    (order,) = trace["open_orders"]
    assert (order["window"], order["ordered"], order["overdue"]) == (["2025-02-08", "2025-02-15"], "2025-02-01", False)


@pytest.mark.parametrize("depth", [1, 11, 12, 13, 40])
def test_deeply_nested_ifs_run_the_branch_their_conditions_choose(depth):
    # the actions of a rule are generated as Python code; `if`s nested deeper than Python
    # likes go into functions of their own
    body = "do note cite s\n"
    for k in range(depth):
        body = f"if risky {{\n{textwrap.indent(body, '  ')}}} else {{\n  do other cite s\n}}\n"
    g = graph_of(f"""
    initial state a "A" {{
      on entry {{
    {textwrap.indent(body, "    " * 2)}
      }}
      on event bleed {{
        otherwise stay cite s {{
    {textwrap.indent(body, "    " * 3)}
        }}
      }}
    }}
    """)
    for risky, expected in (("true", "note"), ("false", "other")):
        trace = run(g, f"""
        patient: {{id: p, facts: {{risky: {risky}}}}}
        start: 2025-01-06
        events:
          - {{date: 2025-01-07, event: bleed}}
        """)
        assert [(s["date"], s["action"]) for s in steps(trace, "action")] == [
            ("2025-01-06", expected), ("2025-01-07", expected)]


# ---------------------------------------------------------------------------- expressions, directly

from hypothesis import given, settings, strategies as st  # noqa: E402

from rxwatch.simulator.expr import Compiler, Ctx, ExprError  # noqa: E402

LABS = {"ALT": {"uln": 40}, "AST": {"uln": 40}, "INR": {"uln": None}}
LETS = {
    "tx": {"expr": {"op": "call", "func": "max", "args": [
        {"op": "call", "func": "xuln", "args": [{"op": "lab", "name": "ALT"}]},
        {"op": "call", "func": "xuln", "args": [{"op": "lab", "name": "AST"}]}]}, "type": "number"},
    "high": {"expr": {"op": "compare", "ops": [">"], "args": [{"op": "let", "name": "tx"}, {"op": "num", "value": 3}]},
             "type": "bool"},
    "elapsed": {"expr": {"op": "call", "func": "since", "args": [{"op": "action", "name": "start"}]}, "type": "duration"},
}
COMPILER = Compiler({"labs": LABS, "lets": LETS})


def ctx(panel=None, ulns=None, facts=None, vars=None, today=datetime.date(2025, 7, 1), last=None) -> Ctx:
    c = Ctx(dict(facts or {}), dict(vars or {}), today)
    c.panel = dict(panel or {})
    c.ulns = dict(ulns or {})
    c.last = dict(last or {})
    return c


def num(v):
    return {"op": "num", "value": v}


def lab(n):
    return {"op": "lab", "name": n}


def cmp(op, *args):
    return {"op": "compare", "ops": [op] * (len(args) - 1) if isinstance(op, str) else op, "args": list(args)}


def value(tree, c):
    return COMPILER.value(tree)(c)


def test_arithmetic_with_unknowns_and_division_by_zero():
    c = ctx({"ALT": 80})
    assert value({"op": "+", "args": [lab("ALT"), num(1)]}, c) == 81
    assert value({"op": "+", "args": [lab("ALT"), lab("AST")]}, c) is None
    assert value({"op": "/", "args": [lab("ALT"), num(0)]}, c) is None
    assert value({"op": "neg", "arg": lab("AST")}, c) is None
    assert value({"op": "neg", "arg": lab("ALT")}, c) == -80
    assert value({"op": "call", "func": "max", "args": [lab("AST"), lab("INR"), lab("ALT")]}, c) == 80
    assert value({"op": "call", "func": "min", "args": [lab("AST"), lab("INR")]}, c) is None


def test_lets_uln_and_known():
    assert value({"op": "let", "name": "tx"}, ctx({"ALT": 80}, {"ALT": 20})) == 4
    assert value({"op": "let", "name": "high"}, ctx({"AST": 130})) is True
    assert value({"op": "let", "name": "high"}, ctx({})) is None
    assert value({"op": "call", "func": "uln", "args": [lab("INR")]}, ctx({"INR": 1})) is None
    assert value({"op": "call", "func": "uln", "args": [lab("ALT")]}, ctx({})) == 40
    known_tx = {"op": "call", "func": "known", "args": [{"op": "let", "name": "tx"}]}
    assert value(known_tx, ctx({"AST": 1})) is True and value(known_tx, ctx({"INR": 1})) is False


def test_chains_membership_and_logic():
    chain = cmp(["<", "<="], num(1), lab("ALT"), num(3))
    assert [value(chain, ctx({"ALT": v})) for v in (1, 2, 3, 4)] == [False, True, True, False]
    assert value(chain, ctx({})) is None
    assert value({"op": "not", "arg": chain}, ctx({})) is None
    assert value(chain, ctx({"ALT": 0})) is False
    ind = {"op": "in", "arg": {"op": "fact", "name": "ind"}, "members": ["a", "b"]}
    assert value(ind, ctx(facts={"ind": "b"})) is True and value(ind, ctx(facts={"ind": "c"})) is False
    three = {"op": "or", "args": [cmp(">", lab("ALT"), num(5)), cmp(">", lab("AST"), num(5)), {"op": "var", "name": "v"}]}
    assert value(three, ctx({"AST": 9})) is True
    assert value(three, ctx({}, vars={"v": None})) is None      # Kleene: unknown or unknown
    assert value(three, ctx({"ALT": 1, "AST": 1}, vars={"v": False})) is False
    assert value(three, ctx({}, vars={"v": True})) is True      # true or unknown is true
    both = {"op": "and", "args": [{"op": "bool", "value": True}, {"op": "var", "name": "v"}]}
    assert value(both, ctx(vars={"v": None})) is None
    assert value({"op": "and", "args": [{"op": "bool", "value": False}, {"op": "var", "name": "v"}]},
                 ctx(vars={"v": None})) is False                # false and unknown is false
    assert value({"op": "not", "arg": {"op": "var", "name": "v"}}, ctx(vars={"v": None})) is None
    assert value(ind, ctx(facts={})) is None


def test_durations_compare_on_calendar_dates():
    start = {"op": "call", "func": "since", "args": [{"op": "action", "name": "start"}]}
    six = {"op": "duration", "amount": 6, "unit": "months"}
    last = {"start": datetime.date(2025, 1, 31)}
    before = ctx(today=datetime.date(2025, 7, 30), last=last)
    on = ctx(today=datetime.date(2025, 7, 31), last=last)
    assert value(cmp("<", start, six), before) is True and value(cmp("<", start, six), on) is False
    assert value(cmp(">=", start, six), on) is True
    assert value(cmp(">", six, start), before) is True          # the duration on the left
    assert value(cmp("<", {"op": "let", "name": "elapsed"}, six), before) is True
    assert value(cmp("<", start, six), ctx(today=on.today)) is None  # never recommended: unknown
    other = {"op": "call", "func": "since", "args": [{"op": "action", "name": "other"}]}
    both = ctx(today=on.today, last={"start": datetime.date(2025, 1, 1), "other": datetime.date(2025, 3, 1)})
    assert value(cmp(">", start, other), both) is True            # started longer ago
    assert value(cmp("<", {"op": "duration", "amount": 4, "unit": "weeks"},
                     {"op": "duration", "amount": 1, "unit": "months"}), on) is True


def choose(guards, c, *, exclusive=False):
    """Which branch a dispatcher runs: the rule's index, None (nothing), or ('unknown', indices)."""
    seen: list = []
    branches = [[f"E0.append({i})"] for i in range(len(guards))]
    react = COMPILER.dispatcher(guards, branches, {"E0": seen, "E1": lambda r, u: seen.append(("unknown", u))},
                                exclusive=exclusive, on_unknown="E1")
    fired = react(c)
    assert fired is (bool(seen) and not isinstance(seen[0], tuple))
    return seen[0] if seen else None


def test_a_dispatcher_fires_the_first_true_guard_after_false_ones_only():
    g = [cmp(">", lab("ALT"), num(100)), cmp(">", lab("ALT"), num(50)), None]
    assert [choose(g, ctx({"ALT": v})) for v in (200, 60, 10)] == [0, 1, 2]
    assert choose(g, ctx({})) == ("unknown", (0,))          # otherwise never stands for "not measured"
    assert choose([cmp(">", lab("ALT"), num(100))], ctx({"ALT": 1})) is None
    # an earlier guard undecided: a later true one does not fire (strict first match)
    g2 = [cmp(">", lab("AST"), num(100)), cmp(">", lab("ALT"), num(50))]
    assert choose(g2, ctx({"ALT": 60})) == ("unknown", (0,))
    # in an exclusive handler the guards are disjoint: a true one fires whatever the others are
    assert choose(g2, ctx({"ALT": 60}), exclusive=True) == 1
    assert choose(g2, ctx({"ALT": 10}), exclusive=True) == ("unknown", (0,))
    assert choose(g2, ctx({"ALT": 10, "AST": 10}), exclusive=True) is None


def test_a_dispatcher_runs_the_branch_of_the_first_guard_that_holds():
    seen: list = []
    react = COMPILER.dispatcher([cmp(">", {"op": "let", "name": "tx"}, num(3)), None],
                                [["E0.append(('high', r.panel['ALT']))"], ["E0.append('otherwise')"]], {"E0": seen})
    assert react(ctx({"ALT": 200})) is True and react(ctx({"ALT": 20})) is True
    assert seen == [("high", 200), "otherwise"]
    only = COMPILER.dispatcher([cmp(">", lab("ALT"), num(100))], [["E0.append('high')"]], {"E0": seen})
    assert only(ctx({"ALT": 1})) is False and only(ctx({})) is False and len(seen) == 2
    with pytest.raises(ExprError):
        COMPILER.dispatcher([None], [["pass"]], {"K0": 1})  # would clash with the expression's constants


def test_generated_code_holds_no_name_from_the_graph():
    weird = {"labs": {"ALT_x": {"uln": 40}}, "lets": {"t_y": {"expr": {"op": "call", "func": "xuln",
                                                                          "args": [lab("ALT_x")]}}}}
    fn = Compiler(weird).truth(cmp(">", {"op": "let", "name": "t_y"}, num(3)))
    assert "ALT_x" not in fn.source and "t_y" not in fn.source
    assert fn(ctx({"ALT_x": 160})) is True
    import linecache
    assert linecache.getlines(fn.__code__.co_filename) == fn.source.splitlines(True)


def test_numbers_are_exact_whatever_the_unit():
    tbil = {"labs": {"TBIL": {"uln": 1.2}}, "lets": {}}
    at_two = cmp(">", {"op": "call", "func": "xuln", "args": [lab("TBIL")]}, num(2))
    exactly = cmp("==", {"op": "call", "func": "xuln", "args": [lab("TBIL")]}, num(2))
    f, e = Compiler(tbil).truth(at_two), Compiler(tbil).truth(exactly)
    from fractions import Fraction
    for v in (Fraction("2.4"), Fraction(24, 10), Fraction(240, 100)):
        assert f(ctx({"TBIL": v})) is False and e(ctx({"TBIL": v})) is True


# A reference evaluator, written from the rules in docs/language.md, against the generated code.

def _kleene_and(vals):
    if any(v is False for v in vals):
        return False
    return None if any(v is None for v in vals) else True


def reference(t, c):
    """Three-valued (Kleene) and exact, literally as docs/language.md states it."""
    from fractions import Fraction
    op = t["op"]
    if op == "num":
        return Fraction(repr(t["value"])) if isinstance(t["value"], float) else t["value"]
    if op == "bool":
        return t["value"]
    if op == "lab":
        return c.panel.get(t["name"])
    if op == "var":
        return c.vars.get(t["name"])
    if op in "+-*/":
        a, b = (reference(x, c) for x in t["args"])
        if a is None or b is None or (op == "/" and b == 0):
            return None
        return {"+": a + b, "-": a - b, "*": a * b, "/": Fraction(a) / b if b else None}[op]
    if op == "neg":
        a = reference(t["arg"], c)
        return None if a is None else -a
    if op == "call" and t["func"] in ("max", "min"):
        vals = [v for v in (reference(x, c) for x in t["args"]) if v is not None]
        return (max if t["func"] == "max" else min)(vals) if vals else None
    if op == "call" and t["func"] == "xuln":
        name = t["args"][0]["name"]
        v, u = c.panel.get(name), c.ulns.get(name, LABS[name]["uln"])
        return None if v is None or not u else Fraction(v) / u
    if op == "call" and t["func"] == "known":
        return reference(t["args"][0], c) is not None
    if op == "compare":
        import operator
        vals = [reference(x, c) for x in t["args"]]
        ops = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
               "==": operator.eq, "!=": operator.ne}
        return _kleene_and([None if x is None or y is None else ops[o](x, y)
                            for o, x, y in zip(t["ops"], vals, vals[1:])])
    if op == "not":
        v = reference(t["arg"], c)
        return None if v is None else not v
    if op == "and":
        return _kleene_and([reference(x, c) for x in t["args"]])
    if op == "or":
        vals = [reference(x, c) for x in t["args"]]
        if any(v is True for v in vals):
            return True
        return None if any(v is None for v in vals) else False
    raise AssertionError(op)


numbers = st.recursive(
    st.one_of(st.builds(num, st.sampled_from([0, 0.5, 1, 2, 3, 40])), st.builds(lab, st.sampled_from(["ALT", "AST"])),
              st.just({"op": "call", "func": "xuln", "args": [lab("ALT")]})),
    lambda inner: st.one_of(
        st.builds(lambda o, a, b: {"op": o, "args": [a, b]}, st.sampled_from("+-*/"), inner, inner),
        st.builds(lambda a: {"op": "neg", "arg": a}, inner),
        st.builds(lambda f, xs: {"op": "call", "func": f, "args": xs}, st.sampled_from(["max", "min"]),
                  st.lists(inner, min_size=2, max_size=3)),
    ),
    max_leaves=6,
)
conditions = st.recursive(
    st.one_of(
        st.builds(lambda ops, xs: {"op": "compare", "ops": ops[: len(xs) - 1], "args": xs},
                  st.lists(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), min_size=2, max_size=2),
                  st.lists(numbers, min_size=2, max_size=3)),
        st.builds(lambda x: {"op": "call", "func": "known", "args": [x]}, numbers),
        st.just({"op": "var", "name": "flag"}),
    ),
    lambda inner: st.one_of(
        st.builds(lambda a: {"op": "not", "arg": a}, inner),
        st.builds(lambda o, xs: {"op": o, "args": xs}, st.sampled_from(["and", "or"]), st.lists(inner, min_size=2, max_size=3)),
    ),
    max_leaves=5,
)
panels = st.fixed_dictionaries({}, optional={"ALT": st.sampled_from([0, 20, 40, 130]),
                                             "AST": st.sampled_from([0, 35, 250])})


@settings(max_examples=300, deadline=None)
@given(conditions, panels, st.sampled_from([None, True, False]), st.booleans())
def test_generated_code_agrees_with_a_reference_evaluator(tree, panel, flag, own_uln):
    c = ctx(panel, {"ALT": 33} if own_uln else {}, vars={"flag": flag})
    expected = reference(tree, c)
    assert COMPILER.truth(tree)(c) is expected
    assert COMPILER.condition(tree)(c) is (expected is True)
    assert choose([tree, None], c) == (0 if expected is True else 1 if expected is False else ("unknown", (0,)))


def test_a_timeline_built_out_of_date_order_is_refused():
    g = shipped(ANAKINRA)
    loc = Loc("<code>", 0)
    day = datetime.date(2025, 1, 6)
    tl = Timeline("<code>", "x", {}, day, day + datetime.timedelta(days=60), (
        LabResult(day + datetime.timedelta(days=30), "ALT", 30.0, None, loc),
        LabResult(day + datetime.timedelta(days=10), "ALT", 30.0, None, loc),
    ))
    with pytest.raises(ValueError, match="not in date order"):
        simulate(g, tl)


def test_a_graph_that_is_not_a_compiled_protocol_is_a_simulation_error():
    import networkx as nx

    g = nx.MultiDiGraph(name="x", initial="a", path="x.rxw")
    g.add_node("a", kind="initial", handlers=[{"trigger": "panel", "rules": ["a/0/0"]}], entry=[])
    with pytest.raises(SimulationError, match="not a compiled protocol graph"):
        Machine(g)
    with pytest.raises(SimulationError, match="no initial state"):
        Machine(nx.MultiDiGraph(name="x", initial="nowhere"))


def test_a_hostile_graph_is_refused_before_any_code_is_made_from_it(tmp_path):
    g = graph_of(ONE_STATE)
    marker = tmp_path / "pwned"
    payload = f"x')\nopen({str(marker)!r}, 'w')\n#"
    bad = g.copy()
    (u, v, k, d), = [e for e in bad.edges(keys=True, data=True)][:1]
    d["guard"] = {"op": "compare", "ops": [">"], "args": [{"op": "lab", "name": payload}, {"op": "num", "value": 1}]}
    with pytest.raises(SimulationError, match="not a compiled protocol graph"):
        Machine(bad)
    d["guard"] = {"op": "__import__", "args": []}
    with pytest.raises(SimulationError, match="unknown expression operator"):
        Machine(bad)
    assert not marker.exists()


def test_a_rule_id_with_code_in_it_never_reaches_the_generated_code(tmp_path):
    import networkx as nx
    g = graph_of(ONE_STATE)
    marker = tmp_path / "pwned"
    evil = f"a/0/0\nopen({str(marker)!r}, 'w')\n"
    h = nx.MultiDiGraph()
    h.graph.update(g.graph)
    for n, data in g.nodes(data=True):
        h.add_node(n, **{**data, "handlers": [{**hd, "rules": [evil if r == "a/0/0" else r for r in hd["rules"]]}
                                             for hd in data["handlers"]]})
    for u, v, k, d in g.edges(keys=True, data=True):
        key = evil if k == "a/0/0" else k
        h.add_edge(u, v, key=key, **{**d, "id": key})
    m = Machine(h)
    for st in m.states.values():
        for handler in (st.panel, *st.events.values()):
            if handler is not None:
                assert "open(" not in handler.react.source
    run_trace = m.run(timeline(h, """
    patient: {id: p}
    start: 2025-01-06
    events: [{date: 2025-01-07, lab: ALT, value: 30}]
    """))
    assert run_trace["steps"] and not marker.exists()


def test_the_json_trace_is_written_in_pieces_byte_for_byte_as_whole():
    from rxwatch.simulator.trace import canonical, to_json_chunks

    g = shipped(ANAKINRA)
    trace = run(g, """
    patient: {id: p}
    start: 2025-01-06
    events:
      - {date: 2025-01-07, lab: INR, value: 1.1}
      - {date: 2025-03-01, lab: ALT, value: 30}
    """)
    whole = json.dumps(canonical(trace), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    pieces = list(to_json_chunks(trace))
    assert len(pieces) > 10 and "".join(pieces) == whole == to_json(trace)
    assert steps(trace, "unassessable")  # the new step type keeps the contract's keys first
    u = json.loads(whole)["steps"]
    first = next(s for s in u if s["type"] == "unassessable")
    assert list(first)[:5] == ["date", "type", "trigger", "missing", "state"]
