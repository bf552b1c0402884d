"""The scenario suites in tests/scenarios/: clinical cases from the pathway documents.

Each suite runs through the `rxwatch test` command (main(argv), JSON output): every case must
pass and together they must exercise every state and every rule of their protocol. Then the
suites must notice when the protocol is changed in a way the pathway forbids (a threshold, a
window, a timer): each mutation below makes at least the named case fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ANAKINRA, LEFLUNOMIDE, REPO_ROOT
from rxwatch.cli.main import main
from rxwatch.compiler import compile_source
from rxwatch.simulator import yamlsrc
from rxwatch.simulator.cases import run_suite

SCENARIOS = REPO_ROOT / "tests" / "scenarios"
SUITES = {"anakinra": ANAKINRA, "leflunomide": LEFLUNOMIDE}


def test_every_suite_has_its_protocol():
    assert sorted(p.name for p in SCENARIOS.iterdir() if p.is_dir()) == sorted(SUITES)


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_suite_passes_and_covers_every_state_and_rule(capsys, suite):
    status = main(["test", str(SUITES[suite]), str(SCENARIOS / suite), "--coverage", "--format", "json"])
    out, err = capsys.readouterr()
    data = json.loads(out)
    problems = [
        (case["path"], case["status"], [e for e in case["expectations"] if not e["ok"]], case["errors"])
        for case in data["cases"] if case["status"] != "pass"
    ]
    assert status == 0 and not problems, problems
    assert data["summary"]["cases"] == len(list((SCENARIOS / suite).glob("*.yaml"))) >= 10
    cov = data["coverage"]
    assert cov["percent"] == 100.0, (cov["states"]["missing"], cov["transitions"]["missing"])
    assert cov["states"]["covered"] == cov["states"]["total"] and cov["transitions"]["covered"] == cov["transitions"]["total"]


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_case_says_what_it_is_about_and_for_which_protocol(path: Path):
    doc = yamlsrc.load(path.read_text(encoding="utf-8"), str(path))
    assert isinstance(doc.get("description"), str) and len(doc["description"].split()) >= 5
    protocol_name = {"anakinra": "anakinra_hepatotoxicity", "leflunomide": "leflunomide_hepatotoxicity"}
    assert doc.get("protocol") == protocol_name[path.parent.name]
    assert len(doc["expect"]) >= 3


# (protocol, text in the protocol, replacement, a case that must then fail)
MUTATIONS = [
    (ANAKINRA, "= tx > 5 or", "= tx >= 5 or", "14-exact-grade-boundaries"),
    (ANAKINRA, "= 3 < tx <= 5", "= 3 <= tx <= 5", "14-exact-grade-boundaries"),
    (ANAKINRA, "= 1 < tx <= 3 or", "= 1 <= tx <= 3 or", "14-exact-grade-boundaries"),
    (ANAKINRA, "(tx > 3 and bili > 2)", "(tx > 3 and bili > 3)", "16-hys-law-with-bilirubin"),
    (ANAKINRA, "(tx > 3 and INR > 1.5)", "(tx > 3 and INR > 2)", "17-tx4-without-bilirubin-then-inr"),
    (ANAKINRA, "when severe or moderate or bili > 2 or INR > 1.5 -> baseline_abnormal",
     "when severe or moderate or INR > 1.5 -> baseline_abnormal", "06-baseline-bilirubin-and-inr"),
    (ANAKINRA, "or baseline_was_abnormal or recovered_from_moderate", "or recovered_from_moderate",
     "05-baseline-mild-enhanced"),
    (ANAKINRA, "hepatotoxic_comedication or baseline_was_abnormal", "baseline_was_abnormal",
     "09-comedication-from-a-date"),
    (ANAKINRA, "or baseline_was_abnormal or recovered_from_moderate", "or baseline_was_abnormal",
     "10-moderate-hold-then-resume"),
    (ANAKINRA, "if indication in {stills_disease, hlh_mas} {\n        do order_lfts due 2..4 weeks",
     "if indication in {stills_disease} {\n        do order_lfts due 2..4 weeks", "03-hlh-mas-jaundice-then-recovery"),
    (ANAKINRA, "when moderate or mild stay cite seed-review", "when moderate or mild -> persistent_elevation cite seed-review",
     "11-moderate-reduce-then-persistent"),
    (ANAKINRA, "do one of hold_anakinra, reduce_dose", "do one of reduce_dose, hold_anakinra",
     "10-moderate-hold-then-resume"),
    (ANAKINRA, "when tx <= 1 and bili <= 1 -> off_treatment", "when tx <= 1 -> off_treatment",
     "15-severe-at-first-check-recovery-needs-bilirubin"),
    (ANAKINRA, "do order_lfts due 3..4 months", "do order_lfts due 2..4 months", "01-routine-normal-panels"),
    (LEFLUNOMIDE, "after 6 months since start_leflunomide", "after 26 weeks since start_leflunomide",
     "08-six-months-by-the-calendar"),
    (LEFLUNOMIDE, "since(start_leflunomide) < 6 months", "since(start_leflunomide) < 7 months",
     "07-reduced-to-long-term-calendar"),
    (LEFLUNOMIDE, "when alt > 2 -> contraindicated", "when alt >= 2 -> contraindicated",
     "05-exact-thresholds-and-mild-rise"),
    (LEFLUNOMIDE, "when liver_disease -> contraindicated", "when liver_disease and alt > 2 -> contraindicated",
     "02-liver-disease-contraindicated-at-once"),
    (LEFLUNOMIDE, "when 2 < alt <= 3 -> reduced", "when 2 <= alt < 3 -> reduced", "06-reduced-back-to-first-six-months"),
    (LEFLUNOMIDE, "when alt <= 1 -> recovered", "when alt < 1 -> recovered", "09-reduced-persistent-interrupted-recovered"),
]


@pytest.mark.parametrize("protocol, old, new, case", MUTATIONS, ids=[f"{m[0].stem.split('_')[0]}:{m[2][:40]}" for m in MUTATIONS])
def test_the_suite_catches_a_changed_rule(protocol, old, new, case):
    text = protocol.read_text(encoding="utf-8")
    assert text.count(old) >= 1, f"the protocol no longer contains {old!r}: update this mutation"
    result = compile_source(text.replace(old, new), str(protocol))
    assert result.ok, [str(d.message) for d in result.diagnostics if d.is_error]
    suite = run_suite(result.graph, [SCENARIOS / protocol.stem.split("_")[0]])
    failed = {Path(c.path).stem for c in suite.cases if c.status != "pass"}
    assert case in failed, f"no case noticed {old!r} -> {new!r} (failed: {sorted(failed)})"
