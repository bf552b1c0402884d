"""Scenario expectations, coverage and the table on real runs of a protocol with parallel
tracks, a discontinuation that leaves them, variables set by rules and a derived value (the
format-3 trace of simulator/engine.py). The neutrophil counts come in three spellings."""

from __future__ import annotations

import textwrap

import pytest

from rxwatch.compiler import compile_source
from rxwatch.suite.cases import run_case
from rxwatch.suite.check import check
from rxwatch.suite.coverage import coverage
from rxwatch.suite.expectations import Names, parse_expectation
from rxwatch.simulator.table import to_text

CHART = """\
protocol chart
  version "1.0"
source s "A source" kind label
lab ALT "alanine aminotransferase" unit "U/L" uln 40
lab ANC "absolute neutrophil count" unit "10*9/L"
event stop "treatment ended"
action order_lfts "order LFTs" orders ALT
action order_cbc "order a blood count" orders ANC
var low_count "a low count was seen" bool default false
var lows "how many low counts" number default 0
let tx "ALT in multiples of ULN" = xuln(ALT)

initial state on_drug "on the drug" {
  on event stop { otherwise -> done cite s }
  track liver "Liver" {
    initial state liver_watch "watching the liver" {
      on entry { do order_lfts due 2..4 weeks cite s }
      on panel {
        when known(ALT) and tx > 3 -> liver_high cite s
        otherwise stay cite s
      }
    }
    state liver_high "raised ALT" {
      on entry { do order_lfts due 1..2 weeks cite s }
      on panel {
        when known(ALT) and tx <= 1 -> liver_watch cite s
        otherwise stay cite s
      }
    }
  }
  track counts "Counts" {
    initial state counts_routine "routine counts" {
      on entry { do order_cbc due 2..4 weeks cite s }
      on panel {
        when known(ANC) and ANC < 0.5 -> done cite s
        when known(ANC) and ANC < 1.5 -> counts_low cite s { set low_count = true cite s  set lows = lows + 0.5 cite s }
        otherwise stay cite s
      }
    }
    state counts_low "low counts" {
      on entry { do order_cbc due 1..2 weeks cite s }
      on panel {
        when known(ANC) and ANC >= 1.5 -> counts_routine cite s
        otherwise stay cite s
      }
    }
  }
}

terminal state done "ended"
"""

TIMELINE = """\
patient: {id: p}
start: 2025-01-06
until: 2025-03-10
events:
  - {date: 2025-01-20, lab: ALT, value: 30}
  - {date: 2025-01-20, lab: ANC, value: 2000, unit: /mm3}
  - {date: 2025-02-03, lab: ALT, value: 150}
  - {date: 2025-02-03, lab: ANC, value: 1.2, unit: x10E9/L}
  - {date: 2025-02-17, lab: ALT, value: 30}
  - {date: 2025-02-17, lab: ANC, value: 1800, unit: cells/uL}
"""
STOP = "  - {date: 2025-03-03, event: stop}\n"

PASSING = [
    "on 2025-02-03 transition liver_watch -> liver_high in track liver",
    "on 2025-02-03 transition counts_routine -> counts_low in track counts",
    "never transition liver_watch -> liver_high in track counts",
    "on 2025-02-03 value tx is 3.75",
    "on 2025-02-03 value tx is 3.75 in track liver",
    "on 2025-02-17 value tx is 0.75",
    "on 2025-02-02 var low_count is false",
    "on 2025-02-03 var low_count is true",
    "var low_count is true",
    "on 2025-02-03 var lows is 0.5",
    "on 2025-02-03 action order_cbc window 2025-02-10..2025-02-17 in track counts",
    "never action order_cbc in track liver",
    "twice action order_lfts in track liver before 2025-02-17",
    "on 2025-02-10 state counts_low",
    "on 2025-02-10 state liver_high",
    "on 2025-02-20 state counts_routine",
    "never state counts_low after 2025-02-17",
    "twice state counts_routine",
    "once state liver",
    "once state on_drug",
    "between 2025-01-06 and 2025-03-03 state on_drug",
]


@pytest.fixture(scope="module")
def graph():
    result = compile_source(CHART, "chart.rxw")
    assert result.ok, result.diagnostics
    return result.graph


def run(graph, tmp_path, expect, stop=True):
    path = tmp_path / "case.yaml"
    path.write_text(TIMELINE + (STOP if stop else "") + "expect:\n" + "".join(f"  - {e}\n" for e in expect))
    return run_case(path, graph)


def test_the_expectations_hold_on_the_real_trace(graph, tmp_path):
    result = run(graph, tmp_path, [*PASSING, "final state done", "final states done",
                                   "never state on_drug after 2025-03-03", "on 2025-03-03 state done"])
    assert result.status == "pass", [str(o) for o in result.failures] + [str(m) for m in result.errors]


def test_without_the_stop_both_tracks_are_active_at_the_end(graph, tmp_path):
    result = run(graph, tmp_path, [*PASSING, "final states counts_routine, liver_watch", "final state on_drug",
                                   "final state liver", "final state counts_routine", "on 2025-03-10 state on_drug"],
                 stop=False)
    assert result.status == "pass", [str(o) for o in result.failures] + [str(m) for m in result.errors]


@pytest.mark.parametrize("text, shows", [
    ("on 2025-02-03 value tx is 3.7", "value tx on 2025-02-03: 3.75 (transition liver_watch -> liver_high in track liver)"),
    ("on 2025-02-03 var lows is 1", "var lows on 2025-02-03 is 0.5 (set on 2025-02-03 in counts_low)"),
    ("on 2025-01-20 var lows is 1", "var lows on 2025-01-20 is 0 (its default: not set by then)"),
    ("final states liver_watch", "final states done"),
    ("on 2025-02-03 action order_cbc in track liver", "no action order_cbc in track liver; on 2025-02-03: "),
    ("on 2025-02-10 state counts_routine", "states on 2025-02-10: on_drug (2025-01-06..2025-03-03), "),
])
def test_failures_say_what_the_real_trace_shows(graph, tmp_path, text, shows):
    result = run(graph, tmp_path, [text])
    [failure] = result.failures
    assert failure.shows.startswith(shows), failure.shows


def test_coverage_of_the_run_counts_tracks_and_the_parallel_state(graph, tmp_path):
    report = coverage(graph, [run(graph, tmp_path, ["final state done"]).trace])
    assert report.missing_states == []
    assert len(report.states) == 8  # on_drug, the two tracks, four states in them, done
    assert sorted(e.key for e in report.missing_edges) == ["counts_low/0/1", "counts_routine/0/0", "liver_high/0/1"]
    assert report.format_text().splitlines()[0] == "coverage of chart: 83.3% (states 8/8, transitions 7/10; 1 trace)"


def test_the_table_of_the_run(graph, tmp_path):
    trace = run(graph, tmp_path, ["final state done"]).trace
    text = to_text(trace, graph, width=300)
    line = next(l for l in text.splitlines() if "liver_watch -> liver_high" in l)
    assert "liver" in line.split() and "read tx = 3.75" in line
    assert any("set" in l.split() and "lows = 0.5" in l for l in text.splitlines())


def test_a_discontinuation_in_one_track_preempts_the_other(graph, tmp_path):
    path = tmp_path / "case.yaml"
    path.write_text(TIMELINE.replace("value: 1.2, unit: x10E9/L", "value: 400, unit: /uL") + "expect:\n" + "".join(
        f"  - {e}\n" for e in ["on 2025-02-03 preempted liver_watch/0/0", "once preempted liver_watch/0/0",
                               "on 2025-02-03 transition counts_routine -> done in track counts",
                               "never transition liver_watch -> liver_high", "never state liver_high",
                               "never rule liver_watch/0/0", "final states done", "never state on_drug after 2025-02-03"]))
    result = run_case(path, graph)
    assert result.status == "pass", [str(o) for o in result.failures]
    report = coverage(graph, [result.trace])
    assert "liver_watch/0/0" not in report.covered_edges  # preempted: it did nothing


# ---------------------------------------------------------------------------- drugs, rule blocks, choices

DRUGS = """\
protocol drugchart
  version "1.0"
source s "A source" kind label
lab ALT "alanine aminotransferase" unit "U/L" uln 40
lab ANC "absolute neutrophil count" unit "10*9/L"
event stop "treatment ended"
drug toci "tocilizumab IV" doses 8, 4 unit "mg/kg" cite s
drug ana "anakinra SC" doses daily "100 mg daily", alternate_days "100 mg every other day"
action start_toci "Start tocilizumab" starts toci cite s
action hold_toci "Interrupt tocilizumab" holds toci cite s
action resume_toci "Resume tocilizumab at 4 mg/kg" resumes toci at 4
action reduce_toci "Reduce to 4 mg/kg" doses toci 4
action stop_toci "Stop tocilizumab" stops toci
action order_lfts "order LFTs" orders ALT
action order_cbc "order a blood count" orders ANC
let tx "ALT in multiples of ULN" = xuln(ALT)

rules grading "Grading of a liver panel" {
  when known(ALT) and tx > 5 -> done cite s { do stop_toci cite s }
  when known(ALT) and tx > 3 -> liver_high cite s
}

initial state on_drug "on the drug" {
  on entry { do start_toci cite s }
  on event stop { otherwise -> done cite s { do stop_toci cite s } }
  track liver "Liver" {
    initial state liver_watch "watching the liver" {
      on entry { do order_lfts due 2..4 weeks cite s }
      on panel {
        use grading
        otherwise stay cite s
      }
    }
    state liver_high "raised ALT" {
      on entry { do order_lfts due 1..2 weeks cite s }
      on panel {
        use grading
        when known(ALT) and tx <= 1 {
          do one of {
            resume_toci -> liver_watch
            reduce_toci -> liver_watch
          } cite s
        }
        otherwise stay cite s
      }
    }
  }
  track counts "Counts" {
    initial state counts_routine "routine counts" {
      on entry { do order_cbc due 2..4 weeks cite s }
      on panel {
        when known(ANC) and ANC < 1.5 and not held(toci) -> counts_low cite s { do hold_toci cite s }
        otherwise stay cite s
      }
    }
    state counts_low "low counts" {
      on entry { do order_cbc due 1..2 weeks cite s }
      on panel {
        when known(ANC) and ANC >= 1.5 -> counts_routine cite s { do resume_toci cite s }
        otherwise stay cite s
      }
    }
  }
}

terminal state done "ended"
"""

DRUG_TIMELINE = """\
patient: {id: p}
start: 2025-01-06
until: 2025-04-01
events:
  - {date: 2025-01-20, lab: ALT, value: 30}
  - {date: 2025-01-20, lab: ANC, value: 2000, unit: /mm3}
  - {date: 2025-02-03, lab: ALT, value: 150}
  - {date: 2025-02-03, lab: ANC, value: 1.2, unit: x10E9/L}
  - {date: 2025-02-17, lab: ALT, value: 30}
  - {date: 2025-02-17, lab: ANC, value: 1300, unit: cells/uL}
  - {date: 2025-03-03, lab: ANC, value: 1.8, unit: K/uL}
  - {date: 2025-03-17, lab: ALT, value: 240}
  - {date: 2025-03-17, lab: ANC, value: 1.9}
"""


@pytest.fixture(scope="module")
def drugs():
    result = compile_source(DRUGS, "drugs.rxw")
    assert result.ok, result.diagnostics
    return result.graph


def run_drugs(graph, tmp_path, expect, extra=""):
    path = tmp_path / "drugs.yaml"
    path.write_text(DRUG_TIMELINE + extra + "expect:\n" + "".join(f"  - {e}\n" for e in expect))
    return run_case(path, graph)


def test_drugs_blocks_and_choices_on_a_real_run(drugs, tmp_path):
    result = run_drugs(drugs, tmp_path, [
        "on 2025-01-06 drug ana not_started dose unknown",
        "on 2025-01-06 drug toci on dose 8",
        "on 2025-02-03 drug toci held by counts",
        "on 2025-02-03 value held(toci) is false in track counts",
        "on 2025-02-17 drug toci held dose 4",           # the liver track resumed at 4: the counts still hold it
        "on 2025-02-17 action resume_toci in track liver",
        "on 2025-03-03 drug toci on dose 4 mg/kg",
        "on 2025-03-03 action resume_toci in track counts",
        "on 2025-03-17 drug toci stopped",
        "drug toci stopped dose unknown",
        "drug ana not_started",
        "on 2025-02-03 rule grading#1",
        "on 2025-03-17 rule grading#0",
        "on 2025-02-17 rule liver_high/0/2",
        "never rule liver_high/0/2@1",
        "never action reduce_toci",
        "on 2025-03-17 preempted counts_routine/0/1",
        "on 2025-03-17 value tx is 6",
        "final states done",
    ])
    assert result.status == "pass", [str(o) for o in result.failures] + [str(m) for m in result.errors]


def test_a_recorded_choice_takes_the_other_alternative(drugs, tmp_path):
    result = run_drugs(drugs, tmp_path, ["on 2025-02-17 rule liver_high/0/2@1", "on 2025-02-17 rule liver_high/0/2",
                                         "on 2025-02-17 action reduce_toci in track liver", "never action resume_toci before 2025-03-03",
                                         "on 2025-02-17 drug toci held dose 4", "on 2025-02-17 state liver_watch"],
                       extra="  - {date: 2025-02-17, choice: reduce_toci}\n")
    assert result.status == "pass", [str(o) for o in result.failures] + [str(m) for m in result.errors]


def test_coverage_counts_the_block_rules_once_and_each_alternative(drugs, tmp_path):
    first = run_drugs(drugs, tmp_path, ["final state done"]).trace
    report = coverage(drugs, [first])
    keys = [e.key for e in report.edges]
    assert "grading#0" in keys and "grading#1" in keys and "liver_watch/0/0" not in keys and len(keys) == 10
    assert [(a.action, a.rule) for a in report.missing_alternatives] == [("reduce_toci", "liver_high/0/2")]
    second = run_drugs(drugs, tmp_path, ["final state done"], extra="  - {date: 2025-02-17, choice: reduce_toci}\n").trace
    both = coverage(drugs, [first, second])
    assert both.missing_alternatives == []
    assert both.format_text().splitlines()[0] == "coverage of drugchart: 90% (states 8/8, transitions 8/10, choices 2/2; 2 traces)"


def test_the_table_shows_the_drug_and_the_choice(drugs, tmp_path):
    trace = run_drugs(drugs, tmp_path, ["final state done"]).trace
    lines = to_text(trace, drugs, width=300).splitlines()
    assert any("resume_toci (alternatives: reduce_toci); toci held by counts, dose 4 mg/kg" in l for l in lines)
    assert any("liver_high -> liver_watch on panel: known(ALT) and tx <= 1; chose resume_toci; read tx = 0.75" in l
               for l in lines)
    assert "drugs: toci stopped; ana not started" in lines
