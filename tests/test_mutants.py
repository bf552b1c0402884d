"""Mutation testing (`rxwatch test ... --mutants`): the operators, equivalence, the score."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rxwatch.cli.main import main
from rxwatch.compiler import compile_source
from rxwatch.suite import equivalence
from rxwatch.suite.mutants import OPERATORS, mutants
from rxwatch.suite.mutation import run_mutants

PROTOCOL = """\
protocol grading
source s "a source"
lab ALT unit "U/L" uln 40
fact frail bool default false
action order_alt "ALT" orders ALT
action hold "Hold the drug"
let tx = xuln(ALT)
initial state watch {
  on entry { do order_alt due 2..4 weeks cite s }
  on panel {
    when tx > 5 -> stopped cite s
    when 3 < tx <= 5 -> held cite s { do hold cite s }
    when tx > 1 and frail stay cite s { do order_alt due within 7 days cite s }
    otherwise stay cite s
  }
}
state held {
  on entry { do order_alt due 1..2 weeks cite s }
  on panel {
    when tx <= 1 -> watch cite s
    otherwise stay cite s
  }
}
terminal state stopped
"""

CASE = """\
protocol: grading
patient: {{id: p}}
start: 2025-01-06
events:
{events}
expect:
{expect}
"""


def compiled(text: str = PROTOCOL):
    r = compile_source(text, "grading.rxw", verify=False)
    assert r.ok, [str(d) for d in r.diagnostics]
    return r


def edits(text: str = PROTOCOL) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in mutants(compiled(text).module, text):
        out.setdefault(m.operator, []).append(m.edit)
    return out


def test_every_operator_makes_mutants_at_the_place_it_names():
    found = edits()
    assert set(found) == set(OPERATORS)
    assert "`tx > 5` -> `tx > 6`" in found["threshold-up"]
    assert "`tx > 5` -> `tx > 4`" in found["threshold-down"]
    assert "`tx > 5` -> `tx >= 5`" in found["flip"]
    assert "`3 < tx <= 5` -> `3 < tx < 5`" in found["flip"]
    assert "`due 2..4 weeks` -> `due 1..4 weeks`" in found["window"]
    assert "`due 2..4 weeks` -> `due 2..5 weeks`" in found["window"]
    assert "`due within 7 days` -> `due within 6 days`" in found["window"]
    assert "`tx > 5 -> stopped` -> `tx > 5 stay`" in found["target"]
    assert "`frail default false` -> `frail default true`" in found["default"]
    assert "`tx > 1 and frail` -> `tx > 1 or frail`" in found["and-or"]
    assert any(e.startswith("`do hold cite s`") for e in found["drop-action"])


def test_each_mutant_is_one_edit_of_the_text_and_all_differ():
    r = compiled()
    made = mutants(r.module, PROTOCOL)
    texts = [m.text for m in made]
    assert len(set(texts)) == len(texts) and PROTOCOL not in texts
    for m in made:
        # the text before the edit's line is untouched
        before = "\n".join(PROTOCOL.splitlines()[: m.span.line - 1])
        assert m.text.startswith(before)
    assert [m.number for m in made] == list(range(1, len(made) + 1))


def test_decimal_thresholds_move_by_their_last_place():
    text = PROTOCOL.replace("tx > 5 ->", "tx > 5.25 ->")
    found = edits(text)
    assert "`tx > 5.25` -> `tx > 5.26`" in found["threshold-up"]
    assert "`tx > 5.25` -> `tx > 5.24`" in found["threshold-down"]


def _mutant(operator: str, edit: str, text: str = PROTOCOL):
    r = compiled(text)
    return next(m for m in mutants(r.module, text) if m.operator == operator and m.edit == edit)


def test_raising_a_bound_shadowed_by_first_match_is_equivalent():
    # `tx > 5` fires first, so the moderate rule's upper bound 5 -> 6 changes nothing
    m = _mutant("threshold-up", "`3 < tx <= 5` -> `3 < tx <= 6`")
    v = equivalence.equivalent(compiled().graph, compiled(m.text).graph)
    assert v.equivalent


def test_a_flipped_boundary_is_not_equivalent_and_the_witness_is_on_it():
    m = _mutant("flip", "`tx > 5` -> `tx >= 5`")
    v = equivalence.equivalent(compiled().graph, compiled(m.text).graph)
    assert not v.equivalent
    assert "ALT 200 U/L" in v.witness  # exactly 5 x ULN (40): the one input where they differ
    assert v.witness.startswith("state watch, on panel:")


def test_a_changed_if_condition_is_compared_too():
    text = PROTOCOL.replace("on entry { do order_alt due 1..2 weeks cite s }",
                            "on entry { if frail { do order_alt due 1..2 weeks cite s } }")
    m = _mutant("default", "`frail default false` -> `frail default true`", text)
    assert m  # a default is decided by same_default (below), not position by position
    swapped = text.replace("if frail {", "if not frail {")
    v = equivalence.equivalent(compiled(text).graph, compiled(swapped).graph)
    assert not v.equivalent and "if" in v.witness


ENUM = PROTOCOL.replace("fact frail bool default false",
                        "fact frail bool default false\nfact route \"route\" one of oral, iv, sc, im default oral") \
    .replace("when tx > 1 and frail stay", "when tx > 1 and (frail or route in {iv, im}) stay")


def test_a_default_no_condition_tells_apart_is_equivalent():
    # `route in {iv, im}` reads oral and sc alike: a patient without a route is graded the same
    m = _mutant("default", "`route default oral` -> `route default iv`", ENUM)
    assert m.text == ENUM.replace("default oral", "default iv")
    same = ENUM.replace("default oral", "default sc")
    v = equivalence.same_default(compiled(ENUM).graph, compiled(same).graph)
    assert v.equivalent and "route = oral" in v.witness and "route = sc" in v.witness


def test_a_default_some_condition_tells_apart_is_not_equivalent():
    # oral -> iv (the next member, the operator's edit) moves the patient into `route in {iv, im}`
    m = _mutant("default", "`route default oral` -> `route default iv`", ENUM)
    v = equivalence.same_default(compiled(ENUM).graph, compiled(m.text).graph)
    assert not v.equivalent
    assert v.witness.startswith("a patient whose timeline does not give route: state watch, on panel:")
    # and a bool default that a guard reads
    m = _mutant("default", "`frail default false` -> `frail default true`")
    assert not equivalence.same_default(compiled().graph, compiled(m.text).graph).equivalent


def test_the_runner_leaves_an_equivalent_default_out_of_the_score(tmp_path):
    text = ENUM.replace("default oral", "default sc")  # sc -> im (the next member) is told apart...
    text = text.replace("one of oral, iv, sc, im", "one of oral, iv, im, sc")  # ...sc -> oral is not
    r = compiled(text)
    (case,) = _suite(tmp_path, [("  - {date: 2025-01-20, lab: ALT, value: 400}", "  - final state stopped")])
    report = run_mutants("grading.rxw", text, r.module, r.graph, [case], jobs=1)
    (d,) = [x for x in report.results if x.mutant.operator == "default" and "route" in x.mutant.edit]
    assert d.mutant.edit == "`route default sc` -> `route default oral`"
    assert d.status == "equivalent"


def _suite(tmp_path: Path, cases: list[tuple[str, str]]) -> list[str]:
    paths = []
    for i, (events, expect) in enumerate(cases):
        p = tmp_path / f"c{i}.yaml"
        p.write_text(CASE.format(events=events, expect=expect), encoding="utf-8")
        paths.append(str(p))
    return paths


def _report(tmp_path, cases, jobs=1):
    r = compiled()
    return run_mutants("grading.rxw", PROTOCOL, r.module, r.graph, _suite(tmp_path, cases), jobs=jobs)


WEAK = [("  - {date: 2025-01-20, lab: ALT, value: 400}",
         "  - on 2025-01-20 transition watch -> stopped\n  - on 2025-01-06 action order_alt window 2025-01-20..2025-02-03")]


def test_a_weak_suite_lets_boundary_mutants_survive_with_their_witness(tmp_path):
    report = _report(tmp_path, WEAK)
    by_edit = {r.mutant.edit: r for r in report.results}
    flipped = by_edit["`tx > 5` -> `tx >= 5`"]
    assert flipped.status == "survived" and "ALT 200 U/L" in flipped.witness
    assert by_edit["`due 2..4 weeks` -> `due 1..4 weeks`"].status == "killed"
    assert by_edit["`tx > 5 -> stopped` -> `tx > 5 stay`"].status == "stillborn"  # `stopped` unreachable: the checker refuses it
    assert by_edit["`3 < tx <= 5` -> `3 < tx <= 6`"].status == "equivalent"
    s = report.summary()
    assert s["killed"] + s["survived"] + s["equivalent"] + s["stillborn"] == s["mutants"]
    assert 0 < report.score < 1


def test_a_case_on_the_boundary_kills_the_flip(tmp_path):
    cases = WEAK + [("  - {date: 2025-01-20, lab: ALT, value: 200}", "  - on 2025-01-20 transition watch -> held")]
    by_edit = {r.mutant.edit: r for r in _report(tmp_path, cases).results}
    killed = by_edit["`tx > 5` -> `tx >= 5`"]
    assert killed.status == "killed" and "transition watch -> held" in killed.killed_by


def test_parallel_and_serial_runs_agree(tmp_path):
    a = _report(tmp_path, WEAK, jobs=1).to_dict()
    b = _report(tmp_path, WEAK, jobs=2).to_dict()
    for d in (a, b):
        d["summary"].pop("seconds"), d["summary"].pop("jobs")
    assert a == b


def test_cli_mutants_json_and_fail_under(tmp_path, capsys):
    proto = tmp_path / "grading.rxw"
    proto.write_text(PROTOCOL, encoding="utf-8")
    (case,) = _suite(tmp_path, WEAK)
    status = main(["test", str(proto), case, "--mutants", "--format", "json", "--jobs", "1"])
    out, _ = capsys.readouterr()
    data = json.loads(out)
    assert status == 0
    m = data["mutation"]
    assert m["summary"]["mutants"] == len(m["mutants"]) > 20
    survivor = next(x for x in m["mutants"] if x["status"] == "survived")
    assert {"line", "column", "edit", "operator", "witness"} <= set(survivor)
    status = main(["test", str(proto), case, "--mutants", "--jobs", "1", "--fail-under", "100"])
    out, _ = capsys.readouterr()
    assert status == 1
    assert "SURVIVED " + str(proto) in out and "mutation score of grading:" in out


def test_a_failing_suite_is_not_mutated(tmp_path, capsys):
    proto = tmp_path / "grading.rxw"
    proto.write_text(PROTOCOL, encoding="utf-8")
    (case,) = _suite(tmp_path, [("  - {date: 2025-01-20, lab: ALT, value: 400}", "  - final state watch")])
    status = main(["test", str(proto), case, "--mutants", "--jobs", "1"])
    out, _ = capsys.readouterr()
    assert status == 1 and "no mutation run" in out


@pytest.mark.parametrize("protocol,folder", [("leflunomide_hepatotoxicity", "leflunomide")])
def test_shipped_suite_sample_runs(repo_root, protocol, folder):
    path = repo_root / "protocols" / f"{protocol}.rxw"
    text = path.read_text(encoding="utf-8")
    r = compile_source(text, str(path), verify=False)
    from rxwatch.suite.cases import case_files

    report = run_mutants(str(path), text, r.module, r.graph, case_files([repo_root / "tests" / "scenarios" / folder]),
                         sample=25)
    assert report.count("killed") > 0
    assert all(x.status in ("killed", "survived", "equivalent", "stillborn") for x in report.results)


NESTED = """\
protocol nested
source s "a source" kind label
lab ALT unit "U/L" uln 40
let tx = xuln(ALT)
initial state on_drug {
  on event stopped_drug { otherwise -> off cite s }
  initial state watch {
    on panel {
      when tx > 5 -> high cite s
      otherwise stay cite s
    }
  }
  state high {
    on panel {
      when tx <= 1 -> watch cite s
      otherwise stay cite s
    }
  }
}
terminal state off
event stopped_drug
"""


def test_nested_states_are_checked_with_the_charts_names(tmp_path):
    # `state watch` while inside on_drug needs the chart's parents: a runner that checks without
    # them would fail this case on every mutant and report a meaningless 100%
    r = compile_source(NESTED, "nested.rxw", verify=False)
    assert r.ok, [str(d) for d in r.diagnostics]
    case = tmp_path / "c.yaml"
    case.write_text("protocol: nested\npatient: {id: p}\nstart: 2025-01-06\nevents:\n"
                    "  - {date: 2025-01-20, lab: ALT, value: 400}\n  - {date: 2025-02-10, lab: ALT, value: 20}\n"
                    "expect:\n  - on 2025-01-10 state watch\n  - on 2025-01-20 transition watch -> high\n"
                    "  - on 2025-02-10 transition high -> watch\n",
                    encoding="utf-8")
    report = run_mutants("nested.rxw", NESTED, r.module, r.graph, [str(case)], jobs=1)
    by_edit = {x.mutant.edit: x for x in report.results}
    assert by_edit["`tx > 5` -> `tx >= 5`"].status == "survived"
    assert by_edit["`tx > 5` -> `tx > 6`"].status == "survived"
    assert by_edit["`tx > 5` -> `tx > 4`"].status == "survived"  # ALT 400 is 10 x ULN either way
    assert by_edit["`when tx <= 1 -> watch cite s` -> `(left out)`"].status == "killed"
    assert report.score < 1


def test_a_suite_failing_in_the_runner_gives_no_score(tmp_path):
    r = compiled()
    case = tmp_path / "c.yaml"
    case.write_text(CASE.format(events="  - {date: 2025-01-20, lab: ALT, value: 400}", expect="  - final state held"),
                    encoding="utf-8")
    with pytest.raises(RuntimeError, match="do not pass on the protocol itself"):
        run_mutants("grading.rxw", PROTOCOL, r.module, r.graph, [str(case)], jobs=1)


IF_IN_RULE = PROTOCOL.replace("    otherwise stay cite s\n  }\n}\nstate held",
                              "    otherwise stay cite s { if known(ALT) and tx > 0.5 { do hold cite s } }\n  }\n}\nstate held")


def test_an_if_in_a_rule_is_compared_as_an_if_not_as_another_rule():
    # `known(ALT) and tx > 0.5` and `tx > 0.5` differ only where ALT is missing, and there both
    # are not true: an `if` that is not true takes its `else`: the same behaviour everywhere
    same = IF_IN_RULE.replace("if known(ALT) and tx > 0.5", "if tx > 0.5")
    assert equivalence.equivalent(compiled(IF_IN_RULE).graph, compiled(same).graph).equivalent
    # a moved bound is not: ALT 20 (0.5 x ULN) holds in one only, and the witness names the if
    moved = IF_IN_RULE.replace("tx > 0.5", "tx >= 0.5")
    v = equivalence.equivalent(compiled(IF_IN_RULE).graph, compiled(moved).graph)
    assert not v.equivalent and "`if known(ALT) and tx > 0.5`" in v.witness and "ALT 20 U/L" in v.witness
