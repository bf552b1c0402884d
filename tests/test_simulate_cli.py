"""`rxwatch simulate` (contracts/cli.md): trace as JSON or a table, -o written whole, located
timeline errors with exit 1, missing files with exit 2, options --until/--start/--fact."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ANAKINRA, LEFLUNOMIDE, REPO_ROOT
from rxwatch.cli.main import main
from rxwatch.compiler import compile_file
from rxwatch.simulator.engine import simulate
from rxwatch.simulator.timeline import load_timeline
from rxwatch.simulator.trace import to_json

DEMO = REPO_ROOT / "docs" / "examples" / "anakinra-moderate.yaml"
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
