"""Real patient data through the command line: FHIR R4 bundles and lab CSV exports (issue: FHIR in)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rxwatch.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
ANAKINRA = ROOT / "protocols" / "anakinra_hepatotoxicity.rxw"
DATA = ROOT / "tests" / "data" / "fhir-r4"
WENDELL = DATA / "Wendell_Lesch_853767e6-14a5-400e-8b95-636f87701943.json"
THANH = DATA / "Thanh_Mosciski_6b7b47bf-5bfb-475e-b5f6-955fde83a44f.json"
JORDAN = DATA / "Jordan_Cruickshank_5de38439-d320-46d3-854d-3c098e88de4c.json"


def simulate(capsys, *args):
    status = main(["simulate", str(ANAKINRA), *map(str, args), "--format", "json"])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("bundle, panels", [(WENDELL, 16), (THANH, 16), (JORDAN, 1)], ids=lambda x: getattr(x, "stem", str(x))[:6])
def test_every_panel_of_a_real_bundle_is_replayed(capsys, bundle, panels):
    status, out, err = simulate(capsys, bundle)
    assert status == 0, err
    trace = json.loads(out)
    assert sum(s["type"] == "transition" and s["trigger"] == "panel" for s in trace["steps"]) == panels
    assert "Traceback" not in err


@pytest.mark.parametrize("bundle", [WENDELL, THANH], ids=["wendell", "thanh"])
def test_yearly_panels_on_the_anakinra_protocol_are_overdue(capsys, bundle):
    """Synthea's patients have a liver panel once a year; the protocol asks for one within months."""
    status, out, err = simulate(capsys, bundle)
    assert status == 0, err
    trace = json.loads(out)
    overdue = [s for s in trace["steps"] if s["type"] == "deviation"]
    assert overdue and all(s["kind"] == "overdue" and s["action"] == "order_lfts" for s in overdue)
    # each deviation is dated the day after its window's last day, and never twice for one window
    windows = [tuple(s["window"]) for s in overdue]
    assert len(windows) == len(set(windows))
    for s in overdue:
        assert s["date"] > s["window"][1]


def test_iu_per_litre_results_are_read_as_u_per_litre(capsys):
    """Jordan's ALT 142 IU/L (3.6x ULN 40) and AST 163 IU/L (4.1x) grade the baseline as moderate."""
    status, out, err = simulate(capsys, JORDAN)
    assert status == 0, err
    trace = json.loads(out)
    moves = [(s["from"], s["to"]) for s in trace["steps"] if s["type"] == "transition"]
    assert moves == [("baseline", "baseline_abnormal")]


def test_start_until_and_facts_from_the_command_line(capsys):
    status, out, err = simulate(capsys, WENDELL, "--start", "2012-01-01", "--until", "2014-12-31", "--fact", "liver_disease=true")
    assert status == 0, err
    trace = json.loads(out)
    assert (trace["start"], trace["until"]) == ("2012-01-01", "2014-12-31")
    assert all("2012-01-01" <= s["date"] <= "2014-12-31" for s in trace["steps"])


@pytest.mark.parametrize(
    "mangle, says",
    [
        (lambda text: text[: len(text) // 2], ":"),  # truncated JSON: located at its line
        (lambda text: text.replace('"resourceType": "Bundle"', '"resourceType": "Bundel"', 1), "Bundle"),
    ],
    ids=["truncated", "wrong-resource-type"],
)
def test_a_malformed_bundle_is_located_and_exit_1(capsys, tmp_path, mangle, says):
    bad = tmp_path / "bad.json"
    bad.write_text(mangle(JORDAN.read_text(encoding="utf-8")), encoding="utf-8")
    status, out, err = simulate(capsys, bad)
    assert status == 1
    assert out == ""
    assert f"{bad}:" in err and says in err
    assert "Traceback" not in err


def test_an_observation_without_a_value_is_a_warning_naming_it(capsys, tmp_path):
    bundle = json.loads(JORDAN.read_text(encoding="utf-8"))
    for entry in bundle["entry"]:
        res = entry["resource"]
        if res["resourceType"] == "Observation" and any(c.get("code") == "1742-6" for c in res["code"]["coding"]):
            del res["valueQuantity"]
            ident = res["id"]
    path = tmp_path / "novalue.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    status, out, err = simulate(capsys, path)
    assert status == 0, err
    assert "warning" in err and ident in err
    # AST alone (4.1x ULN) still grades the baseline as moderate
    assert json.loads(out)["final_state"] == "baseline_abnormal"


def test_a_lab_csv_export_is_a_timeline(capsys, tmp_path):
    csv = tmp_path / "labs.csv"
    csv.write_text("date,lab,value,unit,uln\n2025-01-06,ALT,30,U/L,\n2025-01-06,TBIL,20,umol/L,\n2025-02-20,1742-6,150,IU/L,40\n", encoding="utf-8")
    status, out, err = simulate(capsys, csv)
    assert status == 0, err
    trace = json.loads(out)
    assert trace["start"] == "2025-01-06"
    assert [s["to"] for s in trace["steps"] if s["type"] == "transition"] == ["early_check", "moderate_elevation"]
