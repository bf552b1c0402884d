"""The incremental engine API (simulator/engine.py: Machine.start -> Patient): feeding a
timeline's days one at a time gives exactly Machine.run's trace; what a patient shows mid-way
(steps, states, drugs, open orders) is what the trace of a replay ending that day shows; misuse
is a ValueError with a message; advance() runs timers and overdue deviations with no inputs."""

from __future__ import annotations

import datetime
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest

from conftest import ANAKINRA, LEFLUNOMIDE, REPO_ROOT, TOCILIZUMAB
from rxwatch.compiler import compile_file, compile_source
from rxwatch.simulator.engine import Machine, Patient, SimulationError
from rxwatch.simulator.trace import to_json
from rxwatch.suite.cases import load_case

from rxwatch.inputs import ClinicalEvent, Choice, FactChange, LabResult, Loc, Timeline, load_timeline

SCENARIOS = REPO_ROOT / "tests" / "scenarios"
SUITES = {"anakinra": ANAKINRA, "leflunomide": LEFLUNOMIDE, "tocilizumab": TOCILIZUMAB}
DAY = datetime.timedelta(days=1)
LOC = Loc("<test>", 0)
LOOP_HEADER = """
protocol t
  version "0.1"
source s "a source" kind convention
lab ALT "alanine aminotransferase" unit "U/L" uln 40
fact risky "a risk" bool default false
"""

_graphs: dict = {}


def graph(path: Path):
    if path not in _graphs:
        _graphs[path] = compile_file(str(path), verify=False).graph
    return _graphs[path]


def machines(path: Path) -> list[Machine]:
    """The protocol's own replay, and the configuration (statechart) path: both must agree."""
    g = graph(path)
    return [Machine(g), Machine(g, chart=True)]


def timelines():
    """Every scenario case of the shipped protocols, and the documentation's example."""
    out = []
    for suite, proto in sorted(SUITES.items()):
        for case in sorted((SCENARIOS / suite).glob("*.yaml")):
            out.append(pytest.param(proto, case, id=f"{suite}/{case.stem}"))
    for example in sorted((REPO_ROOT / "docs" / "examples").glob("*.yaml")):
        out.append(pytest.param(ANAKINRA, example, id=f"docs/{example.stem}"))
    return out


def load(proto: Path, path: Path) -> Timeline:
    if path.parent.parent == SCENARIOS:
        return load_case(path, graph(proto)).timeline
    return load_timeline(path, graph(proto).graph)


def feed_all(m: Machine, tl: Timeline, inputs=None, advance=False) -> Patient:
    p = m.start(tl.start, tl.facts, tl.path, patient=tl.patient, inputs=inputs)
    for day, events in tl.days:
        if day > tl.until:
            break
        if advance and day > tl.start:
            p.advance(day - DAY)  # what is due before the day, run first: the same replay
        p.feed(day, events)
    return p


def order_as_trace(o: dict) -> dict:
    """An open order as Patient.open_orders() gives it, in the trace's `open_orders` form."""
    d = {"action": o["action"], "window": [o["opens"].isoformat(), o["due"].isoformat()],
         "ordered": o["ordered"].isoformat(), "overdue": o["overdue"], "line": o["line"]}
    if "track" in o:
        d["track"] = o["track"]
    return d


# ---------------------------------------------------------------------------- the same trace

@pytest.mark.parametrize("proto,path", timelines())
def test_feeding_day_by_day_gives_exactly_the_replays_trace(proto, path):
    tl = load(proto, path)
    for m in machines(proto):
        expected_inputs: list = []
        expected = to_json(m.run(tl, inputs=expected_inputs))
        got_inputs: list = []
        p = feed_all(m, tl, inputs=got_inputs)
        assert to_json(p.finish(tl.until)) == expected
        assert got_inputs == expected_inputs
        # running what is due before each day first changes nothing
        assert to_json(feed_all(m, tl, advance=True).finish(tl.until)) == expected


@pytest.mark.parametrize("proto,path", timelines())
def test_what_a_patient_shows_mid_way_is_the_trace_of_a_replay_ending_that_day(proto, path):
    """Fed its inputs day by day, and advanced every 10 days between them: after each call the
    patient's steps, states, open orders, drugs and warnings are those of the trace of the
    whole timeline replayed until that day."""
    tl = load(proto, path)
    m = Machine(graph(proto))
    inputs = {day: events for day, events in tl.days if tl.start <= day <= tl.until}
    checkpoints = sorted(set(inputs) | {tl.start + k * DAY for k in range(0, (tl.until - tl.start).days + 1, 10)})
    p = m.start(tl.start, tl.facts, tl.path, patient=tl.patient)
    fed = 0
    for day in checkpoints:
        n = len(p.steps)
        if day in inputs:
            p.feed(day, inputs[day])
            fed += 1
        else:
            p.advance(day)
        upto = m.run(tl, until=day)  # the same patient, the replay ending on `day`
        assert p.steps[:n] == upto["steps"][:n]  # steps are only added
        assert p.steps == upto["steps"]
        assert p.states == upto["final_states"]
        assert [order_as_trace(o) for o in p.open_orders()] == upto["open_orders"]
        assert p.drugs == upto.get("drugs", {})
        assert p.warnings == upto["warnings"]
        assert p.today == day
    assert fed == len(inputs)


@pytest.mark.parametrize("proto,path", timelines()[::7])
def test_advancing_with_no_inputs_is_the_replay_ending_that_day(proto, path):
    """After the last input, advance() week by week: each time the steps are those of the
    replay of the whole timeline ending that day (its timers and deviations)."""
    tl = load(proto, path)
    m = Machine(graph(proto))
    p = feed_all(m, tl)
    last = max(day for day, _ in tl.days)
    for k in range(1, 60, 7):
        day = last + k * DAY
        p.advance(day)
        upto = m.run(tl, until=day)
        assert p.steps == upto["steps"] and p.states == upto["final_states"]
    assert to_json(p.finish(last + 59 * DAY)) == to_json(m.run(tl, until=last + 59 * DAY))


def test_the_initial_state_and_its_orders_are_there_before_any_input():
    m = Machine(graph(LEFLUNOMIDE))
    start = datetime.date(2025, 1, 6)
    p = m.start(start, {}, "cohort#1")
    assert p.states == [m.initial]
    assert p.steps[0]["type"] == "enter" and p.steps[0]["date"] == "2025-01-06"
    trace = p.finish()
    assert trace["patient"] == "cohort#1" and trace["until"] == "2025-01-06"
    assert to_json(trace) == to_json(m.run(Timeline("cohort#1", "cohort#1", {}, start, start, ())))


# ---------------------------------------------------------------------------- advance(): timers, deviations

def lab(day, name, value):
    return LabResult(day, name, value, None, LOC)


def test_advance_fires_overdue_deviations_and_timers():
    """Leflunomide: a normal baseline starts the drug and orders LFTs due in 3-4 weeks; with no
    result the window ends (overdue the next day); 6 months after the start a timer moves the
    patient to long-term monitoring: both come from advance() alone."""
    m = Machine(graph(LEFLUNOMIDE))
    start = datetime.date(2025, 1, 6)
    p = m.start(start, {}, "timers")
    p.feed(start, [lab(start, "ALT", Fraction(20)), lab(start, "AST", 18), lab(start, "TBIL", Fraction(1, 2))])
    (order,) = p.open_orders()
    assert order["opens"] == start + 21 * DAY and order["due"] == start + 28 * DAY
    assert order["late"] == order["due"] + DAY and not order["overdue"]
    n = len(p.steps)
    p.advance(order["due"])
    assert p.steps[n:] == [] and not p.open_orders()[0]["overdue"]  # the last day of the window: not yet
    p.advance(order["late"])
    (dev,) = p.steps[n:]
    assert (dev["type"], dev["kind"], dev["date"]) == ("deviation", "overdue", order["late"].isoformat())
    assert p.open_orders()[0]["overdue"]
    before = p.states
    p.advance(datetime.date(2025, 7, 6))
    timers = [s for s in p.steps if s.get("trigger") == "timer"]
    assert timers and timers[0]["date"] == "2025-07-06" and p.states != before
    # the same as a replay of the baseline alone, to the same day
    tl = Timeline("timers", "timers", {}, start, datetime.date(2025, 7, 6),
                  (lab(start, "ALT", Fraction(20)), lab(start, "AST", 18), lab(start, "TBIL", Fraction(1, 2))))
    assert to_json(p.finish()) == to_json(m.run(tl))


def test_advance_then_feed_of_the_same_day_is_feed_of_that_day():
    m = Machine(graph(LEFLUNOMIDE))
    start = datetime.date(2025, 1, 6)
    base = [lab(start, "ALT", 20), lab(start, "AST", 18), lab(start, "TBIL", 1)]
    late = start + 40 * DAY
    panel = [lab(late, "ALT", 25), lab(late, "AST", 20), lab(late, "TBIL", 1)]
    a = m.start(start, {}, "a")
    a.feed(start, base)
    a.advance(late)
    a.feed(late, panel)
    b = m.start(start, {}, "a")
    b.feed(start, base)
    b.feed(late, panel)
    assert to_json(a.finish()) == to_json(b.finish())


# ---------------------------------------------------------------------------- misuse

@pytest.fixture()
def patient():
    m = Machine(graph(ANAKINRA))
    start = datetime.date(2025, 1, 6)
    p = m.start(start, {"indication": "rheumatoid_arthritis"}, "cohort#17")
    p.feed(start + 2 * DAY, [lab(start + 2 * DAY, "ALT", 28), lab(start + 2 * DAY, "AST", 25)])
    return p


def test_feeding_a_day_before_the_last_one_is_an_error(patient):
    with pytest.raises(ValueError, match=r"cohort#17: .*not in date order \(2025-01-07 after 2025-01-08\)"):
        patient.feed(datetime.date(2025, 1, 7), [])


def test_feeding_a_day_twice_is_an_error(patient):
    with pytest.raises(ValueError, match=r"2025-01-08 after 2025-01-08.*feed each day once"):
        patient.feed(datetime.date(2025, 1, 8), [])


def test_an_input_dated_another_day_is_an_error(patient):
    d = datetime.date(2025, 2, 1)
    with pytest.raises(ValueError, match=r"a LabResult dated 2025-02-02 was fed with the inputs of 2025-02-01"):
        patient.feed(d, [lab(d, "ALT", 30), lab(d + DAY, "AST", 30)])
    with pytest.raises(ValueError, match=r"a ClinicalEvent dated 2025-02-02 \(line 9 of x.yaml\)"):
        patient.feed(d, [ClinicalEvent(d + DAY, "jaundice", Loc("x.yaml", 9))])
    with pytest.raises(ValueError, match=r"not an input: \('ALT', 30\)"):
        patient.feed(d, [("ALT", 30)])
    with pytest.raises(ValueError, match=r"day must be a datetime.date"):
        patient.feed("2025-02-01", [])


def test_inputs_before_the_start_and_unknown_facts_are_errors():
    m = Machine(graph(ANAKINRA))
    start = datetime.date(2025, 1, 6)
    p = m.start(start, {}, "p")
    with pytest.raises(ValueError, match=r"p: inputs dated 2025-01-05, before the start 2025-01-06"):
        p.feed(start - DAY, [])
    with pytest.raises(ValueError, match=r"q: weight_kg: not a fact of anakinra_hepatotoxicity"):
        m.start(start, {"weight_kg": 80}, "q")
    with pytest.raises(ValueError, match=r"start must be a datetime.date"):
        m.start("2025-01-06")


def test_advance_and_finish_cannot_go_back(patient):
    patient.advance(datetime.date(2025, 3, 1))
    with pytest.raises(ValueError, match=r"cannot advance to 2025-02-01: the replay is at 2025-03-01"):
        patient.advance(datetime.date(2025, 2, 1))
    with pytest.raises(ValueError, match=r"not in date order \(2025-02-28 after 2025-03-01\)"):
        patient.feed(datetime.date(2025, 2, 28), [])
    with pytest.raises(ValueError, match=r"until 2025-02-01 is before 2025-03-01, a day already replayed"):
        patient.finish(datetime.date(2025, 2, 1))


def test_a_finished_patient_cannot_go_on(patient):
    trace = patient.finish(datetime.date(2025, 6, 1))
    assert trace["until"] == "2025-06-01"
    with pytest.raises(ValueError, match=r"cohort#17: the replay is finished: it cannot go on"):
        patient.feed(datetime.date(2025, 7, 1), [])
    with pytest.raises(ValueError, match=r"is finished"):
        patient.finish()


def test_choices_events_and_fact_changes_are_fed_like_results():
    """A day with a choice, a clinical event and a fact change, fed as objects made in code."""
    m = Machine(graph(ANAKINRA))
    start = datetime.date(2025, 1, 6)
    d1, d2 = start + 2 * DAY, start + 45 * DAY
    events = [lab(d1, "ALT", 28), lab(d1, "AST", 25), lab(d1, "TBIL", Fraction(3, 5)), lab(d1, "ANC", Fraction(7, 2)),
              lab(d2, "ALT", 160), lab(d2, "AST", 130), lab(d2, "TBIL", Fraction(9, 10)), lab(d2, "ANC", Fraction(7, 2)),
              Choice(d2, "reduce_dose", LOC), FactChange(d2, "indication", "stills_disease", LOC),
              ClinicalEvent(d2, "jaundice", LOC)]
    tl = Timeline("<code>", "x", {"indication": "rheumatoid_arthritis"}, start, start + 90 * DAY, tuple(events))
    p = m.start(start, {"indication": "rheumatoid_arthritis"}, "<code>", patient="x")
    p.feed(d1, events[:4])
    p.feed(d2, events[4:])
    assert to_json(p.finish(start + 90 * DAY)) == to_json(m.run(tl))
    assert any(s.get("trigger") == "event" for s in m.run(tl)["steps"])


def test_a_protocol_that_fails_is_a_simulation_error_and_the_patient_stops():
    """A zero-time loop (E901) raised from feed(): located as Machine.run locates it, and the
    patient cannot go on."""
    body = textwrap.dedent("""
    initial state a "A" { on panel { otherwise -> b cite s } }
    state b "B" { on fact { otherwise -> c cite s } }
    state c "C" { on fact { when not risky -> b cite s } }
    """)
    result = compile_source(textwrap.dedent(LOOP_HEADER) + body, "t.rxw", verify=False)
    assert result.ok, [str(d) for d in result.diagnostics if d.is_error]
    m = Machine(result.graph)
    d = datetime.date(2025, 1, 9)
    p = m.start(datetime.date(2025, 1, 6), {}, "loop")
    p.feed(datetime.date(2025, 1, 7), [])  # a day with nothing
    with pytest.raises(SimulationError, match=r"zero-time loop on 2025-01-09: b -> c -> b") as info:
        p.feed(d, [lab(d, "ALT", 1)])
    assert info.value.code == "E901" and info.value.date == d and info.value.path == "t.rxw"
    with pytest.raises(ValueError, match=r"loop: the replay failed: it cannot go on"):
        p.advance(datetime.date(2025, 2, 1))
