"""`rxwatch simulate` (contracts/cli.md): trace as JSON or a table, -o written whole, located
timeline errors with exit 1, missing files with exit 2, options --until/--start/--fact."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import LEFLUNOMIDE, REPO_ROOT
from rxwatch.cli.main import main
from rxwatch.compiler import compile_file
from rxwatch.simulator.engine import simulate
from rxwatch.inputs.registry import load_timeline
from rxwatch.simulator.trace import to_json

# the anakinra pathway v2 (a flat protocol) and its demo timeline, as shipped before issue 11
ANAKINRA = REPO_ROOT / "tests" / "data" / "engine" / "anakinra_v2.rxw"
DEMO = REPO_ROOT / "tests" / "data" / "engine" / "anakinra-moderate.yaml"
FHIR = REPO_ROOT / "tests" / "data" / "fhir-r4" / "Jordan_Cruickshank_5de38439-d320-46d3-854d-3c098e88de4c.json"


def run(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_json_is_the_trace_of_the_library(capsys):
    status, out, err = run(capsys, "simulate", ANAKINRA, DEMO, "--format", "json")
    assert status == 0, err
    graph = compile_file(str(ANAKINRA)).graph
    assert out == to_json(simulate(graph, load_timeline(DEMO, graph.graph)))
    trace = json.loads(out)
    assert trace["final_state"] == "maintenance"
    assert [s["date"] for s in trace["steps"] if s["type"] == "deviation"] == ["2025-07-07"]


def test_json_is_the_default_when_stdout_is_not_a_terminal(capsys):
    status, out, _ = run(capsys, "simulate", ANAKINRA, DEMO)
    assert status == 0
    assert json.loads(out)["patient"] == "demo-ra-01"


def test_the_table_shows_steps_inputs_deviations_and_the_summary(capsys):
    status, out, err = run(capsys, "simulate", ANAKINRA, DEMO, "--format", "table")
    assert status == 0, err
    for text in ("demo-ra-01", "2025-02-20", "moderate_elevation", "reduce_dose", "hold_anakinra",
                 "ALT 160 U/L (4xULN)", "OVERDUE", "2025-07-07", "final state: maintenance",
                 "open orders: order_lfts due 2025-08-21..2025-09-21", "deviations: 1"):
        assert text in out, text
    assert "\x1b[" not in out  # no colour codes when not on a terminal


def test_o_writes_the_whole_trace_and_nothing_to_stdout(capsys, tmp_path):
    out_file = tmp_path / "trace.json"
    status, out, err = run(capsys, "simulate", ANAKINRA, DEMO, "-o", out_file)
    assert status == 0, err
    assert out == ""
    assert json.loads(out_file.read_text(encoding="utf-8"))["final_state"] == "maintenance"
    table = tmp_path / "trace.txt"
    status, out, _ = run(capsys, "simulate", ANAKINRA, DEMO, "-o", table, "--format", "table")
    assert status == 0 and out == ""
    assert "final state: maintenance" in table.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_an_output_that_cannot_be_written_is_exit_2(capsys, tmp_path):
    status, out, err = run(capsys, "simulate", ANAKINRA, DEMO, "-o", tmp_path / "no" / "such" / "t.json")
    assert status == 2
    assert "does not exist" in err and out == ""


def test_the_output_never_overwrites_an_input(capsys, tmp_path):
    copy = write(tmp_path, "case.yaml", DEMO.read_text(encoding="utf-8"))
    before = copy.read_bytes()
    status, _, err = run(capsys, "simulate", ANAKINRA, copy, "-o", copy)
    assert status == 2 and "refusing to overwrite an input" in err
    assert copy.read_bytes() == before


BAD = """\
patient: {id: bad}
start: 2025-01-06
events:
  - {date: 2025-01-06, lab: ALTT, value: 32}
  - {date: 2025-01-40, lab: AST, value: 30}
  - {date: 2025-02-01, event: jaundise}
"""


def test_a_bad_timeline_prints_every_mistake_located_and_simulates_nothing(capsys, tmp_path):
    bad = write(tmp_path, "bad.yaml", BAD)
    out_file = tmp_path / "trace.json"
    status, out, err = run(capsys, "simulate", ANAKINRA, bad, "-o", out_file)
    assert status == 1
    assert out == "" and not out_file.exists()
    lines = err.splitlines()
    assert any(line.startswith(f"{bad}:4:") and "ALTT" in line and "'ALT'" in line for line in lines), err
    assert any(line.startswith(f"{bad}:5:") for line in lines), err
    assert any(line.startswith(f"{bad}:6:") and "jaundice" in line for line in lines), err
    assert "nothing simulated" in lines[-1]


def test_missing_files_are_exit_2(capsys, tmp_path):
    status, out, err = run(capsys, "simulate", ANAKINRA, tmp_path / "nope.yaml")
    assert status == 2 and out == ""
    assert "nope.yaml" in err
    status, _, _ = run(capsys, "simulate", tmp_path / "nope.rxw", DEMO)
    assert status == 2


def test_a_protocol_with_errors_is_exit_1(capsys, tmp_path):
    broken = write(tmp_path, "broken.rxw", "protocol p\ninitial state a { on panel { when NOPE > 1 -> a } }\n")
    status, out, err = run(capsys, "simulate", broken, DEMO)
    assert status == 1 and out == ""
    assert "NOPE" in err


LOOP = """\
protocol loop
source s "S" kind convention
lab ALT unit "U/L" uln 40
fact risky "a risk" bool default false
initial state a { on panel { otherwise -> b cite s } }
state b { on fact { otherwise -> c cite s } }
state c { on fact { otherwise -> b cite s } }
"""


def test_a_zero_time_loop_is_a_located_error_and_exit_1(capsys, tmp_path, monkeypatch):
    # the verifier rejects this protocol (E620); a loop it cannot see must still end cleanly
    import rxwatch.cli.simulate as command
    from rxwatch.cli import output

    monkeypatch.setattr(command, "load_graph", lambda path, **kw: output.load_graph(path, **{**kw, "verify": False}))
    proto = write(tmp_path, "loop.rxw", LOOP)
    case = write(tmp_path, "case.yaml", "patient: {id: p}\nstart: 2025-01-06\nevents:\n  - {date: 2025-01-07, lab: ALT, value: 1}\n")
    out_file = tmp_path / "trace.json"
    status, out, err = run(capsys, "simulate", proto, case, "-o", out_file)
    assert status == 1 and out == "" and not out_file.exists()
    assert f"{proto}:6: error[E901]: zero-time loop on 2025-01-07" in err or f"{proto}:7: error[E901]: zero-time loop on 2025-01-07" in err
    # the rule's line of the protocol under it (the engine knows the line, not the column)
    assert err.splitlines()[1].lstrip().startswith(("6 | state b", "7 | state c"))
    assert "Traceback" not in err


def test_fact_start_and_until_options(capsys, tmp_path):
    case = write(tmp_path, "case.yaml", "patient: {id: p}\nstart: 2025-01-06\nevents:\n  - {date: 2025-01-06, lab: ALT, value: 20}\n")
    status, out, _ = run(capsys, "simulate", LEFLUNOMIDE, case, "--fact", "liver_disease=true", "--format", "json")
    assert status == 0 and json.loads(out)["final_state"] == "contraindicated"
    status, out, err = run(capsys, "simulate", ANAKINRA, DEMO, "--until", "2025-03-01", "--format", "json")
    assert status == 0
    trace = json.loads(out)
    assert trace["until"] == "2025-03-01" and trace["final_state"] == "moderate_elevation"
    assert "warning" in err and "left out" in err  # the later events, said on stderr
    status, out, _ = run(capsys, "simulate", ANAKINRA, DEMO, "--start", "2025-02-01", "--format", "json")
    assert status == 0 and json.loads(out)["start"] == "2025-02-01"
    status, out, err = run(capsys, "simulate", ANAKINRA, DEMO, "--fact", "liver_disease=maybe")
    assert status == 1 and out == ""
    assert "<command line>: error[E708]: --fact liver_disease=maybe" in err


def test_an_unused_choice_is_a_warning_on_stderr(capsys, tmp_path):
    case = write(tmp_path, "case.yaml", "patient: {id: p}\nstart: 2025-01-06\nevents:\n"
                 "  - {date: 2025-01-06, lab: ALT, value: 20}\n  - {date: 2025-01-07, choice: reduce_dose}\n")
    status, out, err = run(capsys, "simulate", ANAKINRA, case, "--format", "json")
    assert status == 0
    assert f"{case}:5: warning[W903]: the choice of reduce_dose on 2025-01-07 was not used" in err
    assert json.loads(out)["warnings"][0]["line"] == 5


def test_prefer_takes_an_option_where_no_choice_is_recorded_and_says_so(capsys, tmp_path, monkeypatch):
    shipped = REPO_ROOT / "protocols" / "anakinra_hepatotoxicity.rxw"
    demo = REPO_ROOT / "docs" / "examples" / "anakinra-moderate.yaml"  # the shipped protocol's demo
    # the demo without its recorded choice: the protocol's first option, hold, by default
    text = "".join(line for line in demo.read_text(encoding="utf-8").splitlines(keepends=True)
                   if "choice:" not in line)
    tl = write(tmp_path, "no-choice.yaml", text)

    def taken(out):
        (step,) = [s for s in json.loads(out)["steps"] if s.get("options")]
        return step["action"], step.get("preferred")

    status, out, err = run(capsys, "simulate", shipped, tl, "-f", "json")
    assert status == 0, err
    assert taken(out) == ("hold_anakinra", None)
    status, out, err = run(capsys, "simulate", shipped, tl, "-f", "json", "--prefer", "reduce_dose")
    assert status == 0, err
    assert taken(out) == ("reduce_dose", True)
    trace = json.loads(out)
    assert trace["drugs"]["anakinra"]["dose"] == "daily"  # back to the full dose at recovery
    monkeypatch.setenv("COLUMNS", "200")  # the table's width: its details cell on one line, whatever the terminal
    status, out, err = run(capsys, "simulate", shipped, tl, "-f", "table", "--prefer", "reduce_dose")
    assert status == 0, err
    assert "the preferred option (no choice recorded)" in " ".join(out.split())
    # a recorded choice still decides its day, and is not marked
    status, out, err = run(capsys, "simulate", shipped, demo, "-f", "json", "--prefer", "hold_anakinra")
    assert status == 0, err
    assert taken(out) == ("reduce_dose", None)
    # a misspelt action is refused before the timeline is read: exit 2, and its options listed
    bad = write(tmp_path, "bad.yaml", "events: [{date: 2025-13-01, lab: ALT}]\n")  # exit 1 if it were read
    status, out, err = run(capsys, "simulate", shipped, bad, "--prefer", "reduce_dos")
    assert status == 2 and out == "" and "bad.yaml" not in err
    assert "--prefer reduce_dos: no `do one of` of" in err and "its options: hold_anakinra, reduce_dose" in err


def test_a_fhir_bundle_replays(capsys):
    status, out, err = run(capsys, "simulate", ANAKINRA, FHIR, "--format", "json")
    assert status == 0, err
    trace = json.loads(out)
    assert trace["steps"][0] == {"date": trace["start"], "type": "enter", "state": "baseline", "line": trace["steps"][0]["line"]}
    assert any(s["type"] == "transition" and s["trigger"] == "panel" for s in trace["steps"])


def test_the_console_script_exit_status(tmp_path):
    bad = write(tmp_path, "bad.yaml", BAD)
    proc = subprocess.run([sys.executable, "-m", "rxwatch.cli.main", "simulate", str(ANAKINRA), str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"{bad}:4:" in proc.stderr and "Traceback" not in proc.stderr


def test_a_scenario_file_is_a_timeline_too(capsys, tmp_path):
    case = write(tmp_path, "case.yaml", "description: a case\nprotocol: anakinra_hepatotoxicity\n"
                 "patient: {id: p}\nstart: 2025-01-06\nevents:\n  - {date: 2025-01-06, lab: ALT, value: 20}\n"
                 "expect:\n  - final state early_check\n")
    status, out, err = run(capsys, "simulate", ANAKINRA, case, "--format", "json")
    assert status == 0, err
    assert json.loads(out)["final_state"] == "early_check"
    # in a plain timeline those keys are mistakes
    plain = write(tmp_path, "plain.yaml", "patient: {id: p}\nstart: 2025-01-06\nexpects: []\n")
    status, _, err = run(capsys, "simulate", ANAKINRA, plain)
    assert status == 1 and f"{plain}:3:" in err


# ---------------------------------------------------------------- the table of a v2 trace

from fractions import Fraction  # noqa: E402

from rxwatch.simulator.table import exact_text, to_text  # noqa: E402

V2_TRACE = {
    "protocol": {"name": "p", "version": "2"},
    "patient": "x", "start": "2025-01-06", "until": "2025-06-30",
    "steps": [
        {"date": "2025-01-06", "type": "enter", "state": "watch", "line": 3},
        {"date": "2025-02-03", "type": "panel", "line": 0,
         "results": [{"lab": "ALT", "value": 96, "unit": "U/L", "uln": 40, "xuln": 2.4, "xuln_exact": "2.4", "time": "14:00"},
                     {"lab": "TBIL", "value": 2.4, "value_exact": "2.4", "unit": "mg/dL", "uln": 1.2, "xuln": 2,
                      "from": "2025-02-01"},
                     {"lab": "AST", "value": 100, "unit": "U/L", "uln": 33, "xuln": 3.0303030303030303,
                      "xuln_exact": "100/33"}],
         "replaced": [{"lab": "ALT", "value": 100, "unit": "U/L", "uln": 40, "xuln": 2.5, "time": "08:00"}]},
        {"date": "2025-02-10", "type": "unassessable", "trigger": "panel", "missing": ["ALT", "AST"],
         "state": "watch", "rule": "watch/0/0", "line": 7},
        {"date": "2025-03-01", "type": "deviation", "kind": "overdue", "action": "check",
         "window": ["2025-02-10", "2025-02-28"], "ordered": "2025-02-03", "line": 5},
        {"date": "2025-03-29", "type": "deviation", "kind": "still_overdue", "action": "check",
         "window": ["2025-02-10", "2025-02-28"], "ordered": "2025-02-03", "line": 5},
        {"date": "2025-04-02", "type": "deviation", "kind": "incomplete", "action": "check",
         "window": ["2025-03-30", "2025-04-13"], "ordered": "2025-03-29", "missing": ["TBIL"], "line": 5},
        {"date": "2025-04-03", "type": "panel", "line": 0,
         "results": [{"lab": "ALT", "value": 1234567.25, "value_exact": "1234567.25", "unit": "U/L", "uln": 40,
                      "xuln": 30864.18125}]},
    ],
    "final_state": "watch", "open_orders": [], "warnings": [],
}


def v2_graph():
    import networkx as nx

    g = nx.MultiDiGraph()
    g.graph["labs"] = {"ALT": {"unit": "U/L", "uln": 40}, "AST": {"unit": "U/L", "uln": 40},
                       "TBIL": {"unit": "mg/dL", "uln": 1.2}}
    g.add_node("watch", description="watching")
    return g


def test_the_table_shows_panels_with_exact_multiples_and_replaced_results():
    text = to_text(V2_TRACE, v2_graph(), width=400)
    panel = next(line for line in text.splitlines() if "2025-02-03" in line)
    assert "ALT 96 U/L (2.4xULN) at 14:00" in panel
    assert "TBIL 2.4 mg/dL (2xULN) from 2025-02-01" in panel  # a lookback result, its day named
    assert "AST 100 U/L (100/33 ≈ 3.03xULN; ULN 33)" in panel  # exact, never 3.0303030303030303; its own ULN
    assert "replaced by a later result of the day: ALT 100 U/L (2.5xULN) at 08:00" in panel
    assert "ALT 1,234,567.25 U/L (30,864.18125xULN)" in text  # thousands separated, no exponent
    assert "e+" not in text and "E+" not in text
    assert not any(line.rstrip().endswith(" 0") for line in text.splitlines())  # a panel has no protocol line


def test_the_table_shows_unassessable_steps_and_the_v2_deviations():
    lines = to_text(V2_TRACE, v2_graph(), width=400).splitlines()

    def row(date: str) -> str:
        return next(line for line in lines if date in line)

    assert "UNASSESSABLE" in row("2025-02-10")
    assert "no rule of watch on panel could decide: no result for ALT, AST; nothing done, orders unchanged" in row("2025-02-10")
    assert "OVERDUE" in row("2025-03-01") and "check: no result within 2025-02-10..2025-02-28 (ordered 2025-02-03)" in row("2025-03-01")
    assert "STILL OVERDUE" in row("2025-03-29") and "check: still no result; it was due 2025-02-10..2025-02-28" in row("2025-03-29")
    assert "INCOMPLETE" in row("2025-04-02")
    assert "check: results came, but not the ones that fulfil the order (missing TBIL); due 2025-03-30..2025-04-13" in row("2025-04-02")
    summary = "\n".join(lines[-4:])
    assert "deviations: 3 (1 overdue, 1 still overdue, 1 incomplete)" in summary
    assert "unassessable: 1 (results missing: no rule could decide)" in summary


def test_numbers_are_exact_and_never_in_scientific_notation():
    assert exact_text(Fraction(12, 5)) == "2.4"
    assert exact_text(2.4000000000000004, "12/5") == "2.4"  # the trace's exact text wins
    assert exact_text(1234567) == "1,234,567"
    assert exact_text(1e22) == "10,000,000,000,000,000,000,000"
    assert exact_text(Fraction(1, 1024)) == "0.0009765625"
    assert exact_text(Fraction(100, 33)) == "100/33 ≈ 3.03"
    assert exact_text(Fraction(-7, 4)) == "-1.75"
    assert exact_text(0.1) == "0.1"  # a float is the decimal it shows


# --plot and -o are checked before anything runs or is written (found by trying them as users)
@pytest.mark.parametrize("args,says", [
    (["--plot", "{d}/x.png", "-o", "{d}/x.png"], "--plot and -o name the same file"),
    (["--plot", "{d}/c.png", "-o", "{d}/nope/t.json"], "nope/t.json: cannot write: folder"),
    (["--plot", "{d}/" + "a" * 300 + ".png"], "cannot write: File name too long"),
    (["-o", "{d}/" + "a" * 300 + ".json"], "cannot write: File name too long"),
    (["--plot", ""], "--plot names a folder, not a file"),
    (["--plot", "{d}"], "--plot names a folder, not a file"),
    (["--plot", "{d}/c.png", "--results", "-f", "table"], "--results adds the lab results to the JSON trace"),
])
def test_plot_and_output_refused_before_anything_is_written(tmp_path, args, says):
    root = REPO_ROOT
    args = [a.format(d=tmp_path) for a in args]
    r = subprocess.run([sys.executable, "-m", "rxwatch.cli.main", "simulate",
                        str(root / "protocols" / "anakinra_hepatotoxicity.rxw"),
                        str(root / "docs" / "examples" / "anakinra-moderate.yaml"), *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert says in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no chart, no trace, no temporary file
