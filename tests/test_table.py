"""The trace table (simulator/table.py, `rxwatch simulate --format table`) for statecharts:
tracks, the values a decision read, `set` steps, drug actions, choices, preempted rules,
citations with locators, the active states and drugs at the end; and plain aligned text for
long traces (Rich lays a table out at about 0.35 ms a row)."""

from __future__ import annotations

import time

import networkx as nx
import pytest

from rxwatch.simulator import table
from rxwatch.simulator.table import PLAIN_ROWS, render, to_text


def graph() -> nx.MultiDiGraph:
    g = nx.MultiDiGraph(name="toci", drugs={
        "tocilizumab": {"doses": [8, 4], "labels": [None, None], "unit": "mg/kg", "kind": "number"},
        "anakinra": {"doses": ["daily", "alternate_days"], "labels": ["100 mg daily", "100 mg every other day"],
                     "kind": "name"}})
    for name, typ in (("on_treatment", "parallel"), ("liver", "track"), ("maintenance", "atomic"),
                      ("neutrophils", "track"), ("neutrophils_routine", "atomic"), ("stopped", "atomic")):
        g.add_node(name, type=typ, description=name.replace("_", " "))
    return g


TRACE = {
    "protocol": {"name": "toci", "version": "1"}, "patient": "p", "start": "2025-01-06", "until": "2025-06-30",
    "steps": [
        {"date": "2025-01-06", "type": "enter", "state": "on_treatment", "line": 10},
        {"date": "2025-01-06", "type": "enter", "state": "liver", "line": 11},
        {"date": "2025-02-03", "type": "transition", "from": "maintenance", "to": "maintenance", "stay": True,
         "trigger": "panel", "because": "persistent_mild", "rule": "maintenance/0/2", "track": "liver",
         "alternative": "reduce_to_4mgkg", "values": {"tx": 2.0833333333333335, "tx_exact": "25/12", "severe": False,
                                                      "dose(tocilizumab)": 8, "grade": "mild", "ratio": None},
         "preempted": ["neutrophils_routine/0/1"], "sources": ["actemra-us-pi"],
         "citations": [{"source": "actemra-us-pi", "locator": "Table 2"}], "line": 40},
        {"date": "2025-02-03", "type": "action", "action": "reduce_to_4mgkg", "state": "maintenance", "track": "liver",
         "options": ["reduce_to_4mgkg", "interrupt_tocilizumab"],
         "drug": {"name": "tocilizumab", "status": "on", "dose": 4, "held_by": []}, "sources": ["actemra-us-pi"],
         "citations": [{"source": "actemra-us-pi", "locator": "2.1"}, {"source": "house", "locator": None}], "line": 41},
        {"date": "2025-02-03", "type": "action", "action": "interrupt_tocilizumab", "state": "neutrophils_routine",
         "track": "neutrophils", "drug": {"name": "tocilizumab", "status": "held", "dose": 4,
                                          "held_by": ["liver", "neutrophils"]}, "sources": ["s"], "line": 50},
        {"date": "2025-02-03", "type": "action", "action": "order_cbc", "state": "neutrophils_routine",
         "track": "neutrophils", "window": ["2025-03-03", "2025-03-31"], "repeat": True, "sources": ["s"], "line": 51},
        {"date": "2025-02-03", "type": "set", "var": "dose_modified", "value": True, "state": "maintenance",
         "track": "liver", "line": 42},
        {"date": "2025-02-03", "type": "set", "var": "count", "value": 0.1, "value_exact": "1/10", "state": "maintenance", "line": 43},
        {"date": "2025-02-03", "type": "set", "var": "note", "value": None, "state": "maintenance", "line": 44},
        {"date": "2025-03-03", "type": "unassessable", "trigger": "panel", "missing": ["ALT"], "state": "maintenance",
         "track": "liver", "values": {"tx": None}, "line": 45},
        {"date": "2025-04-01", "type": "action", "action": "switch", "state": "stopped",
         "drug": {"name": "anakinra", "status": "on", "dose": "alternate_days", "held_by": []}, "line": 60},
        {"date": "2025-05-05", "type": "transition", "from": "maintenance", "to": "stopped", "trigger": "event",
         "event": "jaundice", "rule": "on_treatment/0/0", "withdrawn": ["order_cbc"], "sources": ["s"], "line": 12},
    ],
    "final_state": "on_treatment", "final_states": ["maintenance", "neutrophils_routine"],
    "open_orders": [{"action": "order_cbc", "window": ["2025-03-03", "2025-03-31"], "track": "neutrophils"}],
    "warnings": [],
    "drugs": {"tocilizumab": {"status": "held", "dose": 4}, "anakinra": {"status": "on", "dose": "alternate_days"}},
}


def rows(text: str) -> list[str]:
    return text.splitlines()


def row(text: str, *words: str) -> str:
    found = [line for line in rows(text) if all(w in line for w in words)]
    assert len(found) == 1, (words, found)
    return found[0]


@pytest.fixture(params=["rich", "plain"])
def text(request, monkeypatch) -> str:
    if request.param == "plain":
        monkeypatch.setattr(table, "PLAIN_ROWS", 3)
    return to_text(TRACE, graph(), width=400)


def test_a_decision_shows_the_values_it_read_its_choice_and_what_it_preempted(text):
    line = row(text, "stay in maintenance")
    assert "stay in maintenance on panel: persistent_mild; chose reduce_to_4mgkg; read tx = 25/12 ≈ 2.08, " \
           "severe = false, dose(tocilizumab) = 8, grade = mild, ratio = unknown; preempted: neutrophils_routine/0/1" in line
    assert "tx_exact" not in line
    assert 'actemra-us-pi "Table 2"' in line
    assert "read tx = unknown" in row(text, "UNASSESSABLE")


def test_tracks_are_a_column(text):
    assert row(text, "stay in maintenance").split()[1:3] == ["transition", "liver"]
    assert row(text, "interrupt_tocilizumab;").split()[0:2] == ["action", "neutrophils"]
    head = row(text, "date", "step", "details")
    assert head.split()[:3] == ["date", "step", "track"]


def test_drug_actions_show_the_drug_after_them(text):
    assert "reduce_to_4mgkg (alternatives: interrupt_tocilizumab); tocilizumab on, dose 4 mg/kg" in row(text, "reduce_to_4mgkg (")
    assert "tocilizumab held by liver, neutrophils, dose 4 mg/kg" in row(text, "interrupt_tocilizumab;")
    assert "switch; anakinra on, dose alternate_days (100 mg every other day)" in row(text, "switch")
    assert "order_cbc due 2025-03-03..2025-03-31 (repeats: the last one was fulfilled)" in row(text, "order_cbc due", "repeats")


def test_set_steps_and_citations(text):
    assert row(text, "dose_modified").split()[:2] == ["set", "liver"]
    assert "dose_modified = true" in row(text, "dose_modified")
    assert "count = 0.1" in row(text, "count =")
    assert "note = unknown" in row(text, "note =")
    assert 'actemra-us-pi "2.1", house' in row(text, "reduce_to_4mgkg (")
    assert "orders withdrawn: order_cbc" in row(text, "maintenance -> stopped")


def test_the_summary_names_the_active_states_and_the_drugs(text):
    assert "final state: on_treatment (active: maintenance, neutrophils_routine)" in rows(text)
    assert "drugs: tocilizumab held, dose 4 mg/kg; anakinra on, dose alternate_days (100 mg every other day)" in rows(text)
    assert "open orders: order_cbc due 2025-03-03..2025-03-31 in track neutrophils" in rows(text)


def test_a_flat_trace_has_no_track_column_and_no_new_words():
    flat = {"protocol": {"name": "f"}, "patient": "p", "start": "2025-01-06", "until": "2025-01-06", "final_state": "a",
            "steps": [{"date": "2025-01-06", "type": "enter", "state": "a", "line": 3},
                      {"date": "2025-01-06", "type": "transition", "from": "a", "to": "a", "stay": True,
                       "trigger": "panel", "because": "x > 1", "sources": ["s"], "line": 4}]}
    text = to_text(flat, width=200)
    head = row(text, "date", "step", "details")
    assert head.split() == ["date", "step", "details", "sources", "line"]
    assert "stay in a on panel: x > 1" in text and "read" not in text and "active" not in text and "drugs" not in text


def test_cells_are_text_in_plain_mode_too(monkeypatch):
    monkeypatch.setattr(table, "PLAIN_ROWS", 0)
    hostile = {**TRACE, "steps": [{"date": "2025-01-06", "type": "set", "var": "v\x1b[31m", "value": "[red]x\tz",
                                   "line": 1}]}
    text = to_text(hostile, graph(), width=200)
    assert "\x1b" not in text and "\\x1b[31m" in text and "[red]x\\tz" in text


def long_trace(n: int) -> dict:
    steps = []
    for i in range(n // 2):
        day = f"{2025 + i // 3000}-{1 + (i // 250) % 12:02d}-{1 + (i // 10) % 25:02d}"
        steps.append({"date": day, "type": "transition", "from": "maintenance", "to": "maintenance", "stay": True,
                      "trigger": "panel", "because": "tx <= 1", "rule": "maintenance/0/3", "track": "liver",
                      "values": {"tx": 0.5}, "sources": ["s"], "line": 40})
        steps.append({"date": day, "type": "action", "action": "order_lfts", "track": "liver",
                      "window": ["2025-02-03", "2025-03-03"], "sources": ["s"], "line": 41})
    return {**TRACE, "steps": steps}


def test_a_long_trace_is_plain_aligned_text_and_fast():
    trace = long_trace(40_000)
    began = time.perf_counter()
    text = to_text(trace, graph(), width=120)
    took = time.perf_counter() - began
    assert took < 6, took  # Rich: about 14 s on the build machine; plain text: about 1 s
    lines = rows(text)
    assert lines[1].split() == ["date", "step", "track", "line", "details", "[sources]"]
    body = [line for line in lines[3:] if line.startswith(("2", " ")) and "order_lfts" in line or "stay in" in line]
    assert len(body) == 40_000
    # aligned: the details start in one column on every row
    starts = {line.index("stay in") for line in lines if "stay in" in line} | \
             {line.index("order_lfts") for line in lines if "order_lfts due" in line}
    assert len(starts) == 1
    assert "final state: on_treatment (active: maintenance, neutrophils_routine)" in lines


def test_render_of_a_long_trace_prints_fast_on_a_terminal():
    import io

    from rich.console import Console

    trace = long_trace(40_000)
    began = time.perf_counter()
    buf = io.StringIO()
    Console(file=buf, width=120, force_terminal=True, color_system="standard").print(render(trace, graph()))
    assert time.perf_counter() - began < 6
    assert buf.getvalue().count("order_lfts due 2025-02-03..2025-03-03") == 20_000


def test_the_plain_threshold():
    assert PLAIN_ROWS == 2000
    short = to_text(long_trace(PLAIN_ROWS), graph(), width=120)
    assert "details" in short and "[sources]" not in short   # a Rich table up to PLAIN_ROWS
    assert "[sources]" in to_text(long_trace(PLAIN_ROWS + 2), graph(), width=120)
