"""`rxwatch test PROTOCOL CASE... [--coverage] [--format text|json]` (contracts/cli.md).

Exit 0 when every case passes; 1 for a failing case, an invalid case file (PATH:LINE:COL:
error[CODE]: message on stderr, nothing simulated) or a protocol with errors; 2 for a missing
file or folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ANAKINRA, REPO_ROOT
from rxwatch.cli.main import main

from test_cases import CASE, DEMO

SCENARIOS = REPO_ROOT / "tests" / "scenarios"


def run(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def write(folder: Path, name: str, text: str) -> Path:
    p = folder / name
    p.write_text(text, encoding="utf-8")
    return p


def demo(tmp_path: Path) -> Path:
    return write(tmp_path, "demo.rxw", DEMO)


def test_all_pass_exit_0_one_line_per_case(capsys, tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    write(cases, "b.yaml", CASE)
    write(cases, "a.yaml", CASE)
    status, out, err = run(capsys, "test", demo(tmp_path), cases)
    assert status == 0, out + err
    assert out.splitlines() == [
        f"PASS     {cases / 'a.yaml'} (7 expectations)",
        f"PASS     {cases / 'b.yaml'} (7 expectations)",
        "2 cases for demo: 2 passed",
    ]
    assert err == ""


def test_a_failing_case_says_what_was_expected_and_what_happened(capsys, tmp_path):
    case = write(tmp_path, "case.yaml", CASE.replace("final state watch", "final state high"))
    status, out, err = run(capsys, "test", demo(tmp_path), case)
    assert status == 1
    assert out.splitlines() == [
        f"FAIL     {case} (1 of 7 expectations not met)",
        "  Raised, treated, back to watching.",
        f"  {case}:20: expected final state high; the trace shows final state watch",
        "1 case for demo: 0 passed, 1 failed",
    ]


def test_an_invalid_case_file_is_located_and_not_simulated(capsys, tmp_path):
    bad = CASE.replace("stay watch", "stay wacth").replace("lab: ALT, value: 100", "lab: ATL, value: 100")
    good = write(tmp_path, "1-good.yaml", CASE)
    case = write(tmp_path, "2-bad.yaml", bad)
    status, out, err = run(capsys, "test", demo(tmp_path), good, case)
    assert status == 1
    assert out.splitlines()[1] == f"INVALID  {case} (not a valid case file; nothing simulated: 2 errors)"
    assert out.splitlines()[-1] == "2 cases for demo: 1 passed, 1 invalid"
    # one shape for every diagnostic (docs/diagnostics.md): code, line, column, the line, a caret
    assert err.splitlines() == [
        f"{case}:10:29: error[E707]: unknown lab 'ATL'; did you mean 'ALT'?",
        "  10 |   - {date: 2025-02-03, lab: ATL, value: 100}",
        "     |                             ^",
        f"{case}:15:5: error[E803]: expectation 'on 2025-01-10 stay wacth': unknown state 'wacth'; did you mean 'watch'?",
        "  15 |   - on 2025-01-10 stay wacth",
        "     |     ^",
    ]
    assert "Traceback" not in out + err


def test_json_for_programs(capsys, tmp_path):
    ok = write(tmp_path, "1.yaml", CASE)
    failing = write(tmp_path, "2.yaml", CASE.replace("never action treat", "action treat"))
    invalid = write(tmp_path, "3.yaml", CASE.replace("never action treat", "never action traet"))
    status, out, err = run(capsys, "test", demo(tmp_path), ok, failing, invalid, "--format", "json")
    assert status == 1 and err == ""
    data = json.loads(out)
    assert data["protocol"] == "demo"
    assert data["summary"] == {"cases": 3, "pass": 1, "fail": 1, "invalid": 1, "error": 0}
    assert "coverage" not in data
    one, two, three = data["cases"]
    assert one["status"] == "pass" and len(one["expectations"]) == 7 and one["patient"] == "p1"
    assert [e for e in two["expectations"] if not e["ok"]] == [
        {"line": 18, "text": "action treat", "ok": False, "shows": "no action treat"}]
    assert three["status"] == "invalid" and three["expectations"] == []
    assert three["errors"] == [{
        "path": str(invalid), "line": 18, "column": 5, "end_line": 18, "end_column": 5, "severity": "error", "code": "E803",
        "message": "expectation 'never action traet': unknown action 'traet'; did you mean 'treat'?"}]


def test_coverage_names_what_no_case_exercised(capsys, tmp_path):
    case = write(tmp_path, "case.yaml", CASE)
    protocol = demo(tmp_path)
    status, out, _ = run(capsys, "test", protocol, case, "--coverage")
    assert status == 0
    lines = out.splitlines()
    assert lines[2] == "coverage of demo: 55.6% (states 2/3, transitions 3/6; 1 trace)"
    assert lines[3:7] == [  # then the condition coverage of suite/conditions.py
        f"  {protocol}:34: state done never entered",
        f"  {protocol}:19: rule watch/1/0 never fired: watch -> done on event stop",
        f"  {protocol}:29: rule high/0/1 never fired: stay high on panel",
        f"  {protocol}:31: rule high/1/0 never fired: high -> done on event stop",
    ]
    status, out, _ = run(capsys, "test", protocol, case, "--coverage", "--format", "json")
    cov = json.loads(out)["coverage"]
    assert cov["percent"] == 55.6 and cov["transitions"]["covered"] == 3


def test_missing_files_exit_2(capsys, tmp_path):
    protocol = demo(tmp_path)
    status, _, err = run(capsys, "test", protocol, tmp_path / "nope.yaml")
    assert status == 2 and "nope.yaml" in err
    status, _, err = run(capsys, "test", tmp_path / "nope.rxw", SCENARIOS / "anakinra")
    assert status == 2 and "nope.rxw" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, err = run(capsys, "test", protocol, empty)
    assert status == 2 and err.strip() == f"rxwatch: {empty}: no case files (*.yaml) in this folder"
    status, _, err = run(capsys, "test", protocol)
    assert status == 2


def test_a_protocol_with_errors_exits_1(capsys, tmp_path):
    broken = write(tmp_path, "broken.rxw", DEMO.replace("-> high cite s", "-> hihg cite s"))
    status, out, err = run(capsys, "test", broken, write(tmp_path, "case.yaml", CASE))
    assert status == 1 and out == ""
    assert "hihg" in err


def test_a_simulation_that_stops_is_reported_not_raised(capsys, tmp_path, monkeypatch):
    # The verifier rejects zero-time loops (E620), so a shipped-quality protocol never stops the
    # simulator; stand in for one that slips through.
    from rxwatch.simulator import engine

    def stops(graph, timeline, **_):
        raise engine.SimulationError("zero-time loop: watch -> high -> watch on 2025-01-06", path="demo.rxw", line=16)

    monkeypatch.setattr(engine, "simulate", stops)
    case = write(tmp_path, "case.yaml", CASE)
    status, out, err = run(capsys, "test", demo(tmp_path), case)
    assert status == 1
    assert out.splitlines()[0] == f"ERROR    {case} (the simulation stopped: 1 error)"
    assert err.strip() == f"{case}: error[E806]: the simulation stopped: demo.rxw:16: zero-time loop: watch -> high -> watch on 2025-01-06"
    assert "Traceback" not in err


def test_the_console_script_on_a_shipped_suite():
    proc = subprocess.run(
        [sys.executable, "-m", "rxwatch.cli.main", "test", str(ANAKINRA), str(SCENARIOS / "anakinra"), "--coverage"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("coverage of "))
    assert lines[:at - 1] and all(line.startswith("PASS     ") for line in lines[:at - 1])
    assert lines[at - 1].endswith("passed") and lines[at].startswith("coverage of anakinra_hepatotoxicity: 100% (states ")
    # the suite shows its missing-result paths: panels that decided nothing, by state
    assert lines[at + 1].startswith("  unassessable (results missing): ") and "panel in baseline" in lines[at + 1]
    assert len(lines) == at + 2 or lines[at + 2].startswith("condition coverage of ")  # nothing missing in between


def test_a_statechart_suite_with_coverage_in_text_and_json(capsys, tmp_path):
    """Tracks, values, variables and active states through the command line (v3)."""
    from test_cases_statecharts_run import CHART, TIMELINE

    protocol = write(tmp_path, "chart.rxw", CHART)
    case = write(tmp_path, "tracks.yaml", TIMELINE + "expect:\n  - on 2025-02-03 value tx is 3.75 in track liver\n"
                 "  - on 2025-02-03 var low_count is true\n  - final states liver_watch, counts_routine\n"
                 "  - final state on_drug\n")
    status, out, err = run(capsys, "test", protocol, case, "--coverage")
    assert status == 0, out + err
    lines = out.splitlines()
    assert lines[0] == f"PASS     {case} (4 expectations)"
    assert lines[2] == "coverage of chart: 72.2% (states 7/8, transitions 6/10; 1 trace)"
    assert f"  {protocol}:50: state done never entered" in lines
    assert f"  {protocol}:14: rule on_drug/0/0 never fired: on_drug -> done on event stop" in lines
    status, out, err = run(capsys, "test", protocol, case, "--coverage", "--format", "json")
    data = json.loads(out)
    assert data["summary"]["pass"] == 1 and data["coverage"]["states"]["total"] == 8
    assert "alternatives" not in data["coverage"]  # no choice with consequences

    bad = write(tmp_path, "bad.yaml", TIMELINE + "expect:\n  - final states on_drug\n  - var lows is true\n")
    status, out, err = run(capsys, "test", protocol, bad)
    assert status == 1
    assert f"{bad}:12:5: error[E811]: expectation 'final states on_drug'" in err
    assert f"{bad}:13:5: error[E807]: expectation 'var lows is true': var lows is a number, not true" in err
