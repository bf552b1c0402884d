"""Numbers with a unit (`1000 "/mm3"`, `72 "years.kg.min.dL/(mg.mL)"`): read with the unit table,
converted exactly to what they are added to or compared with, combined by `*` and `/`, so that a
let's declared unit is verified (docs/language.md, "Units of numbers")."""

from __future__ import annotations

import re
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest

from rxwatch.compiler import compile_source, ir
from rxwatch.compiler.checks.types import canonical, compose, same_unit, unit_factor
from rxwatch.editor.fmt import format_text
from rxwatch.inputs import yamlsrc
from rxwatch.simulator.engine import simulate
from rxwatch.inputs.yamljson import parse_timeline

DOC = (Path(__file__).parent.parent / "docs" / "language.md").read_text(encoding="utf-8")
CG = re.search(r"```\n(.*?)```", DOC.split("\n## A derived value in its clinical unit\n", 1)[1], flags=re.S).group(1)
FORMULA = '(140 "years" - age) * weight / (72 "years.kg.min.dL/(mg.mL)" * SCr)'


def errors(text: str) -> list:
    return [d for d in compile_source(text, "u.rxw", verify=False).diagnostics if d.is_error]


def guard(text: str) -> dict:
    r = compile_source(text, "u.rxw", verify=False)
    assert r.ok, [str(d) for d in r.diagnostics]
    (_, _, e), *_ = r.graph.edges(data=True)
    return e["guard"]


def nums(tree: dict) -> list[dict]:
    return [n for n in ir.walk(tree) if n["op"] == "num"]


def test_the_cockcroft_gault_example_compiles_clean_in_ml_per_min():
    assert FORMULA in CG
    r = compile_source(CG, "cg.rxw")
    assert r.ok and r.diagnostics == [], [str(d) for d in r.diagnostics]
    let = r.graph.graph["lets"]["crcl"]
    assert let["unit"] == "mL/min"
    assert [(n["value"], n["unit"]) for n in nums(let["expr"])] == [(140, "years"), (72, "years.kg.min.dL/(mg.mL)")]


@pytest.mark.parametrize("old, new, got", [
    ('unit "mL/min"', 'unit "mL/s"', "in mL/min (1 mL/min is 1/60 mL/s"),
    ('72 "years.kg.min.dL/(mg.mL)"', "72", "in years.kg.dL/mg"),
    ('72 "years.kg.min.dL/(mg.mL)"', '72 "years.kg.h.dL/(mg.mL)"', "in mL/h"),
])
def test_a_wrong_unit_is_e308_showing_both_units(old, new, got):
    text = CG.replace(old, new)
    (d,) = errors(text)
    declared = re.search(r'let crcl "[^"]*" unit "([^"]*)"', text).group(1)
    assert d.code == "E308"
    assert d.message.startswith(f"'crcl' declares the unit '{declared}', but its expression is {got}")
    line = text.splitlines().index("  = " + FORMULA.replace(old, new)) + 1
    assert (d.span.line, d.span.column) == (line, 5)


def test_a_number_converts_exactly_to_what_it_is_compared_with():
    text = CG.replace('ANC < 1000 "/mm3"', 'ANC < 1500 "/mm3" or SCr > 0.03 "g/L" or 2 "/uL" > ANC')
    cmp_anc, cmp_scr, cmp_rev = [n for n in ir.walk(guard(text)) if n["op"] == "compare"][1:]
    assert nums(cmp_anc) == [{"op": "num", "value": ir.to_json_number(Fraction(3, 2)), "unit": "10*9/L"}]
    assert ir.exact(nums(cmp_anc)[0]["value"]) == Fraction(3, 2)
    assert ir.exact(nums(cmp_scr)[0]["value"]) == 3 and nums(cmp_scr)[0]["unit"] == "mg/dL"
    assert ir.exact(nums(cmp_rev)[0]["value"]) == Fraction(1, 500)  # the number on the left, too


def test_a_number_converts_in_a_sum_in_max_and_along_a_chain():
    text = CG.replace("when crcl < 30", 'when weight + 500 "g" > 80 and max(weight, 90000 "g") > 85 and 40000 "g" < weight < 0.2 "Mg"')
    values = [(ir.exact(n["value"]), n.get("unit")) for n in nums(guard(text))]
    assert values[:6] == [(Fraction(1, 2), "kg"), (80, None), (90, "kg"), (85, None), (40, "kg"), (200, "kg")]
    # 't' is not in the unit table: a unit of its own, which does not convert to kg
    (d,) = errors(text.replace('0.2 "Mg"', '0.2 "t"'))
    assert (d.code, d.message) == ("E302", "unit mismatch: cannot compare a number in kg with a number in t")


def test_units_that_do_not_convert_exactly_are_e302():
    # a molar unit converts to a mass unit only through a lab's molar mass: never for a literal
    (d,) = errors(CG.replace('ANC < 1000 "/mm3"', 'SCr > 177 "umol/L"'))
    assert d.code == "E302" and "cannot compare a number in mg/dL with a number in umol/L" in d.message
    (d,) = errors(CG.replace('(140 "years" - age)', '(140 "months" - age)'))
    assert d.code == "E302" and d.message == "cannot subtract a number in years from a number in months"
    (d,) = errors(CG.replace('ANC < 1000 "/mm3"', 'ANC < 5 "%"'))
    assert d.code == "E302"


@pytest.mark.parametrize("unit, message", [
    ("mg//dL", "cannot read the unit 'mg//dL'"),
    ("(mg/dL", "an unmatched '('"),
    ("mg/dL)", "an unmatched ')'"),
    ("mg/d$L", "cannot read 'd$L' in the unit 'mg/d$L'"),
    ("", "an empty unit; write the number alone for a number without a unit"),
    ("mg." * 70 + "dL", "a unit of 212 characters is too long (at most 200)"),
])
def test_an_unreadable_unit_is_e319_at_the_number(unit, message):
    text = CG.replace('ANC < 1000 "/mm3"', f'SCr > 2 "{unit}"')
    (d,) = errors(text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "SCr > 2" in s)
    col = text.splitlines()[line - 1].index("2 \"") + 1
    assert (d.code, d.span.line, d.span.column) == ("E319", line, col)
    assert message in d.message


def test_a_bare_number_still_fits_any_unit_and_graphs_without_units_are_unchanged():
    text = CG.replace('1000 "/mm3"', "1").replace('(140 "years" - age)', "(140 - age)")
    tree = guard(text)
    assert all("unit" not in n for n in nums(tree))


def test_unit_algebra():
    assert same_unit("years.kg.min.dL/(mg.mL)*mg/dL/(years.kg)", "1/(mL/min)")  # min/mL, left to right
    assert not same_unit("years.kg.min.dL/(mg.mL)*mg/dL/(years.kg)", "mL/min")
    assert same_unit(compose("years.kg", "years.kg.min.dL/(mg.mL)*mg/dL", "/"), "mL/min")
    assert compose("years.kg", "years.kg.min.dL/(mg.mL)*mg/dL", "/") == "mL/min"
    assert compose("U/L", "U/L", "/") == "1" and compose("1", "/mm3", "/") == "mm3"
    assert same_unit("10*3/uL", "K/uL") and same_unit("{cells}/uL", "/mm3")
    assert unit_factor("10*9/L", "/mm3") == 1000 and unit_factor("mL/min", "mL/s") == Fraction(1, 60)
    assert unit_factor("%", "1") is None and unit_factor("mg/dL", "U/L") is None
    assert canonical("years2") == canonical("years.years") != canonical("years")


def test_the_replay_computes_the_estimate_exactly():
    g = compile_source(CG, "cg.rxw").graph

    def replay(events: str) -> dict:
        text = "patient: {id: cg, facts: {age: 70, weight: 72}}\nstart: 2025-01-06\nevents:\n" + textwrap.dedent(events)
        return simulate(g, parse_timeline(yamlsrc.load(text, "cg.yaml"), "cg.yaml", g.graph))

    trace = replay("""\
        - {date: 2025-01-06, lab: SCr, value: 2.0}
        - {date: 2025-01-06, lab: ANC, value: 2}
        - {date: 2025-01-20, lab: SCr, value: 2.5}
        - {date: 2025-01-20, lab: ANC, value: 2}
        """)
    moves = [(str(s["date"]), s["to"], s.get("values")) for s in trace["steps"] if s["type"] == "transition"]
    # 35 mL/min on the first day (stays), 28 mL/min two weeks later: below 30
    assert moves[0][1] == "full_dose" and moves[-1] == ("2025-01-20", "reduced_dose", {"crcl": 28})
    assert trace["final_state"] == "reduced_dose"
    trace = replay("""\
        - {date: 2025-01-06, lab: SCr, value: 2.0}
        - {date: 2025-01-06, lab: ANC, value: 1}
        - {date: 2025-01-27, lab: SCr, value: 2.0}
        - {date: 2025-01-27, lab: ANC, value: 0.999}
        """)
    # ANC 1 10*9/L is not below 1000 /mm3; 0.999 is (compiled as ANC < 1)
    assert [str(s["date"]) for s in trace["steps"] if s["type"] == "transition" and s["to"] == "reduced_dose"] == ["2025-01-27"]


def test_fmt_keeps_the_units_of_numbers():
    out = format_text(CG, "cg.rxw")
    assert FORMULA in out and 'ANC < 1000 "/mm3"' in out
    assert format_text(out, "cg.rxw") == out


def test_a_unit_the_table_cannot_read_is_accepted_as_a_lab_declares_it():
    text = CG.replace('lab ANC "absolute neutrophil count" unit "10*9/L"',
                      'lab ANC "absolute neutrophil count" unit "10*9/L"\nlab EGFR "eGFR" unit "mL/min/1.73m2"')
    text = text.replace("when crcl < 30", 'when EGFR < 30 "mL/min/1.73m2"')
    assert nums(guard(text))[0] == {"op": "num", "value": 30, "unit": "mL/min/1.73m2"}
    (d,) = errors(text.replace('< 30 "mL/min/1.73m2"', '< 30 "mL/min/1.72m2"'))
    assert d.code == "E319"


def test_a_set_converts_a_number_to_the_unit_of_its_variable():
    text = CG.replace('fact weight "body weight" number unit "kg"',
                      'fact weight "body weight" number unit "kg"\nvar dose "dose" number unit "mg" default 0')
    text = text.replace('-> reduced_dose cite label "2.2"', '-> reduced_dose cite label "2.2" { set dose = 0.5 "g" }')
    r = compile_source(text, "u.rxw", verify=False)
    assert r.ok, [str(d) for d in r.diagnostics]
    (_, _, e), *_ = r.graph.edges(data=True)
    (act,) = e["actions"]
    assert act["value"] == {"op": "num", "value": 500, "unit": "mg"}
    (d,) = errors(text.replace('0.5 "g"', '0.5 "mL"'))
    assert d.code == "E301" and d.message == "'dose' holds a number in mg, but this is a number in mL"


def test_the_lexer_shows_a_number_and_its_unit():
    from pygments.token import Number, String

    from rxwatch.editor.highlight import RxwLexer

    tokens = [(t, v) for t, v in RxwLexer().get_tokens(FORMULA) if v.strip()]
    i = [v for _, v in tokens].index("72")
    assert tokens[i][0] in Number
    assert tokens[i + 1][1] == '"years.kg.min.dL/(mg.mL)"' and tokens[i + 1][0] in String
