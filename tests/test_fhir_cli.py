"""Real patient data through the command line: FHIR R4 bundles and lab CSV exports (issue: FHIR in)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from rxwatch.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
ANAKINRA = ROOT / "protocols" / "anakinra_hepatotoxicity.rxw"
# liver tests only: anakinra (v3, part B) also asks for an ANC at baseline, which Synthea's yearly
# panels (WBC and a differential in %, no absolute count) never have
LEFLUNOMIDE = ROOT / "protocols" / "leflunomide_hepatotoxicity.rxw"
DATA = ROOT / "tests" / "data" / "fhir-r4"
WENDELL = DATA / "Wendell_Lesch_853767e6-14a5-400e-8b95-636f87701943.json"
THANH = DATA / "Thanh_Mosciski_6b7b47bf-5bfb-475e-b5f6-955fde83a44f.json"
JORDAN = DATA / "Jordan_Cruickshank_5de38439-d320-46d3-854d-3c098e88de4c.json"


def simulate(capsys, *args, protocol=ANAKINRA):
    status = main(["simulate", str(protocol), *map(str, args), "--format", "json"])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("bundle, panels", [(WENDELL, 16), (THANH, 16), (JORDAN, 1)], ids=lambda x: getattr(x, "stem", str(x))[:6])
def test_every_panel_of_a_real_bundle_is_replayed(capsys, bundle, panels):
    status, out, err = simulate(capsys, bundle, protocol=LEFLUNOMIDE)
    assert status == 0, err
    trace = json.loads(out)
    assert sum(s["type"] == "transition" and s["trigger"] == "panel" for s in trace["steps"]) == panels
    assert "Traceback" not in err


@pytest.mark.parametrize("bundle", [WENDELL, THANH], ids=["wendell", "thanh"])
def test_without_an_anc_the_anakinra_baseline_decides_nothing(capsys, bundle):
    """Anakinra v3 checks the neutrophils before the first dose: a Synthea panel (liver tests, a
    WBC, no absolute neutrophil count) is unassessable at baseline, every year, never a start."""
    status, out, err = simulate(capsys, bundle)
    assert status == 0, err
    steps = json.loads(out)["steps"]
    undecided = [s for s in steps if s["type"] == "unassessable"]
    assert len(undecided) == 16 and all(s["state"] == "baseline" and "ANC" in s["missing"] for s in undecided)
    assert not any(s["type"] == "transition" for s in steps)


@pytest.mark.parametrize("bundle", [WENDELL, THANH], ids=["wendell", "thanh"])
def test_yearly_panels_are_overdue_then_still_overdue(capsys, bundle):
    """Synthea's patients have a liver panel once a year; the protocol asks for one within months.

    v2 (issue 9): an open order is overdue the day after its window, then still_overdue every
    4 weeks (the protocol's `reminders every 4 weeks`) until a result fulfils it."""
    status, out, err = simulate(capsys, bundle, protocol=LEFLUNOMIDE)
    assert status == 0, err
    trace = json.loads(out)
    deviations = [s for s in trace["steps"] if s["type"] == "deviation"]
    assert deviations and all(s["action"] == "order_lfts" for s in deviations)
    by_window: dict[tuple, list] = {}
    for s in deviations:
        by_window.setdefault(tuple(s["window"]), []).append(s)
    for (_, last), steps in by_window.items():
        first, *reminders = steps
        assert first["kind"] == "overdue" and first["date"] == str(date.fromisoformat(last) + timedelta(days=1))
        assert all(s["kind"] == "still_overdue" for s in reminders)
        dates = [date.fromisoformat(s["date"]) for s in steps]
        assert all(b - a == timedelta(weeks=4) for a, b in zip(dates, dates[1:]))
    assert sum(s["kind"] == "still_overdue" for s in deviations) > len(by_window)  # reminders, not one flag


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
    csv.write_text("date,lab,value,unit,uln\n2025-01-06,ALT,30,U/L,\n2025-01-06,TBIL,20,umol/L,\n2025-01-06,ANC,3500,/mm3,\n"
                   "2025-02-20,1742-6,150,IU/L,40\n", encoding="utf-8")
    status, out, err = simulate(capsys, csv)
    assert status == 0, err
    trace = json.loads(out)
    assert trace["start"] == "2025-01-06"
    assert [s["to"] for s in trace["steps"] if s["type"] == "transition"] == ["early_check", "moderate_elevation"]


def test_two_results_of_a_lab_on_a_day_the_later_counts(capsys, tmp_path):
    """v2 (issue 9): a real feed with two ALT results on one day is replayed, not rejected."""
    csv = tmp_path / "labs.csv"
    csv.write_text("date,time,lab,value,unit\n2025-01-06,08:00,ALT,400,U/L\n2025-01-06,18:00,1742-6,30,IU/L\n"
                   "2025-01-06,,AST,30,U/L\n2025-01-06,,751-8,3.5,10*3/uL\n", encoding="utf-8")
    status, out, err = simulate(capsys, csv)
    assert status == 0, err
    steps = json.loads(out)["steps"]
    [panel] = [s for s in steps if s.get("trigger") == "panel" or s["type"] == "unassessable"]
    assert panel["to"] == "early_check"  # ALT 30 (the 18:00 result) is normal; 400 would not be
    assert [(r["lab"], r["value"], r.get("time")) for r in panel["replaced"]] == [("ALT", 400, "08:00")]


def test_the_unit_of_a_result_never_changes_the_decision(capsys, tmp_path):
    """Issue 9: bilirubin 24 mg/L was 2.4000000000000004 mg/dL, and deferred the drug."""
    moves = []
    for value, unit in (("2.4", "mg/dL"), ("24", "mg/L"), ("0.024", "g/L"), ("2400", "ug/dL")):
        csv = tmp_path / f"tbil-{unit.replace('/', '-')}.csv"
        csv.write_text(f"date,lab,value,unit\n2025-01-06,ALT,30,U/L\n2025-01-06,AST,30,U/L\n2025-01-06,TBIL,{value},{unit}\n"
                       "2025-01-20,ALT,150,U/L\n2025-01-20,AST,40,U/L\n", encoding="utf-8")
        status, out, err = simulate(capsys, csv)
        assert status == 0, err
        moves.append([(s["date"], s["type"], s.get("to"), s.get("action")) for s in json.loads(out)["steps"]
                      if s["type"] in ("transition", "action", "unassessable")])
    assert moves[1:] == moves[:1] * 3
