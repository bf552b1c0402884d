"""Clinician text (render/labels.py): guards read like the grading, actions like orders."""

from __future__ import annotations

import pytest

from pathlib import Path

from conftest import LEFLUNOMIDE
from rxwatch.compiler import compile_file, compile_source
from rxwatch.render.labels import Labels, duration, short, window, wrap


@pytest.fixture(scope="module")
def ana():
    # the v2 anakinra before statecharts (tests/golden/anakinra_v2_flat.rxw): its grading as written
    g = compile_file(str(Path(__file__).parent / "golden" / "anakinra_v2_flat.rxw"), verify=False).graph
    return g, Labels(g)


@pytest.fixture(scope="module")
def lef():
    g = compile_file(str(LEFLUNOMIDE), verify=False).graph
    return g, Labels(g)


def edge(g, key):
    return next(d for _, _, k, d in g.edges(keys=True, data=True) if k == key)


def let_lines(ana, name):
    g, L = ana
    return L.disjuncts(g.graph["lets"][name]["expr"])


def test_the_grading_reads_like_the_guideline(ana):
    assert let_lines(ana, "severe") == [
        "ALT or AST > 5× ULN",
        "ALT or AST ≥ 3× ULN and TBIL known and TBIL > 2× ULN",
        "ALT or AST ≥ 3× ULN and INR above 1.5",
        "bilirubin above 3 x ULN",
    ]
    assert let_lines(ana, "moderate") == ["ALT or AST > 3× ULN and both ≤ 5× ULN"]
    assert let_lines(ana, "mild") == ["ALT or AST > 1× ULN and both ≤ 3× ULN"]


def test_a_boolean_let_and_a_fact_read_as_their_description(ana):
    g, L = ana
    # up to its parenthesis: "significant liver injury (CTCAE grade 3+, ...)"; never `severe`
    assert L.expr(edge(g, "early_check/0/2")["guard"]) == "significant liver injury"
    assert let_lines(ana, "enhanced")[:2] == ["pre-existing liver disease", "hepatotoxic co-medication"]  # no parenthetical
    assert L.expr(edge(g, "baseline/0/0")["guard"]) == (
        "indication is stills_disease or hlh_mas and a baseline that does not allow a start")
    # a description holding an "or" is quoted, so that it reads as one condition
    assert L.expr(edge(g, "baseline_abnormal/0/1")["guard"]) == "‘ALT or AST has a result’ and TBIL not known"


def test_downward_comparisons_say_both_and_known_reads_as_a_result(ana):
    g, L = ana
    assert L.expr(edge(g, "baseline_abnormal/0/0")["guard"]) == (
        "both ALT and AST < 1.5× ULN and TBIL known and TBIL ≤ 2× ULN and not INR above 1.5"
    )
    assert let_lines(ana, "no_transaminases") == ["ALT not known and AST not known"]
    assert let_lines(ana, "confirm_needed") == [
        "ALT or AST ≥ 3× ULN and (TBIL not known; or not on anticoagulation and INR not known)"]


def test_persistence_and_fulfilment_read_in_words(ana):
    g, L = ana
    assert L.expr(edge(g, "mild_elevation/0/5")["guard"]) == (
        "(mild elevation; or bilirubin above 1.5 x ULN and both ALT and AST < 3× ULN; or alkaline phosphatase above"
        " 2.5 x ULN and both ALT and AST ≤ 3× ULN; or INR above 1.5 and both ALT and AST < 3× ULN)"
        " and at least 14 days after entering this state")
    assert L.expr(edge(g, "early_check/0/6")["guard"]) == "the order for a liver panel is fulfilled"


def test_numeric_lets_are_defined_in_words(ana):
    g, L = ana
    assert L.value(g.graph["lets"]["tx"]["expr"]) == "the higher of ALT and AST, in multiples of their ULN"
    assert L.value(g.graph["lets"]["bili"]["expr"]) == "TBIL, in multiples of its ULN"


def test_ranges_timers_and_since(lef):
    g, L = lef
    assert let_lines(lef, "reduce_band") == ["ALT or AST > 2× ULN and both ≤ 3× ULN"]
    assert let_lines(lef, "first_phase") == ["less than 6 months after ‘Initiate leflunomide’"]
    assert L.expr(edge(g, "reduced/0/2")["guard"]) == (
        "ALT or AST > 2× ULN and at least 14 days after entering this state and the order for ALT and AST is fulfilled")
    assert L.trigger(edge(g, "first_six_months/0/0")) == "6 months after ‘Initiate leflunomide’"
    assert L.trigger(edge(g, "baseline/0/0")) == "Change in: pre-existing liver disease"


def test_entry_actions_read_as_orders_with_windows_conditions_and_what_fulfils_them(ana):
    g, L = ana
    lines = L.action_lines(g.nodes["baseline"]["entry"])
    assert lines[0].text == "Order a liver panel (ALT, AST, total bilirubin, ALP, INR), due within 14 days"
    assert lines[0].when == "" and lines[0].sources == ["seed-review"]
    assert lines[0].fulfilled_by == "ALT or AST"
    assert lines[1].when == "if obesity or diabetes or hyperlipidemia" and lines[1].fulfilled_by == ""
    short_lines = L.action_lines(edge(g, "baseline/0/2")["actions"], full=False)
    assert [(x.when, x.text) for x in short_lines][-2:] == [
        ("if the first check is due in 2-4 weeks", "Order a liver panel, due in 2–4 weeks"),
        ("otherwise", "Order a liver panel, due in 1–2 months"),
    ]
    assert L.fulfilled_by("order_bilirubin_inr") == "TBIL or INR"
    assert L.fulfilled_by("start_anakinra") == ""


def test_alternatives_keep_their_order_first_is_the_default(ana):
    g, L = ana
    line = L.action_lines(g.nodes["moderate_elevation"]["entry"])[0]
    assert line.kind == "one_of"
    assert line.options == ["Interrupt anakinra temporarily", "Reduce the dose, e.g. every other day"]
    sets = [x.text for x in L.action_lines(edge(g, "mild_elevation/0/7")["actions"])]
    assert sets == ["Record: the patient has recovered from an elevation (maintenance entered from it)"]


def test_citation_marks_number_sources_in_declaration_order_and_mark_ai_summaries(ana):
    g, L = ana
    assert L.marks(["ctcae-v5", "seed-review", "fda-dili-2009"]) == [("1†", True), ("4", False), ("5", False)]
    assert L.marks_text(["rxwatch-convention"]) == "[9]"
    assert L.kind_text("seed-review") == "AI summary, pending human review"
    assert L.kind_text("kineret-us-pi") == "Drug label"
    assert L.marks(["no-such-source"]) == []


def test_small_helpers():
    assert window({"start": 0, "end": 14, "unit": "days"}) == "due within 14 days"
    assert window({"start": 2, "end": 4, "unit": "weeks"}) == "due in 2–4 weeks"
    assert window(None) == ""
    assert duration(1, "months") == "1 month" and duration(6, "month") == "6 months"
    assert short("Reduce the dose (e.g. 100 mg every other day)") == "Reduce the dose"
    assert short("Stop (now)") == "Stop (now)"  # too little would be left
    assert wrap("a b\nc d\n\nnext", 80) == ["a b c d", "next"]
    assert all(len(line) <= 10 for line in wrap("one two three four five six", 10))


GENERIC = """\
protocol g
fact weight "body weight" number unit "kg" default 70
fact sex "sex" one of female, male default female
var flagged "a flag was raised" bool default false
lab CRP "C-reactive protein" unit "mg/L"
lab PLT "platelets" unit "10^9/L" uln 400
action check "Check"
let low "the lower of the ratios" = min(xuln(PLT), xuln(CRP))
let plt "platelets" = max(xuln(PLT), xuln(PLT))
initial state a "A" {
  on panel {
    when CRP > 10 and weight >= 100 -> b
    when sex == male and not flagged -> b
    when low <= 0.5 or known(CRP) -> b
    when -CRP + 2 * 3 / 1 < 0 -> b
    when plt > 1 -> b
    otherwise stay
  }
}
terminal state b
"""


def test_any_expression_renders_without_knowing_the_protocol():
    g = compile_source(GENERIC, "g.rxw", verify=False).graph
    assert g is not None
    L = Labels(g)
    texts = [L.expr(edge(g, f"a/0/{i}")["guard"]) for i in range(5)]
    assert texts[0] == "CRP > 10 mg/L and weight ≥ 100 kg"
    assert texts[1] == "sex is male and not a flag was raised"
    assert texts[2] == "PLT or CRP ≤ 0.5× ULN; or CRP known"  # min(...) <= k: any one is low
    assert texts[3] == "−CRP + 2 * 3 / 1 < 0 mg/L"  # a sum of CRP and a number is in CRP's unit
    assert texts[4] == "PLT > 1× ULN"  # the same lab twice is one lab


# ------------------------------------------------------------ v2: the IR's visitor, new ops, exact numbers

V2 = """\
protocol v2
lab ALT unit "U/L" uln 40
lab TBIL unit "mg/dL" uln 1.2
lab PLT unit "10^9/L" uln 400
action order_lfts "Order a liver panel (ALT, TBIL)" orders ALT, TBIL fulfilled by ALT or TBIL
action repeat "Total bilirubin now" orders TBIL
initial state a "A" {
  on entry { do order_lfts due within 14 days }
  on panel {
    when since entry >= 14 days and xuln(ALT) > 2.4 -> b
    when 14 days <= since entry < 4 weeks and ALT > 12000.5 -> b
    when fulfilled(order_lfts) and not fulfilled(repeat) -> b
    when known(TBIL) and xuln(TBIL) > 0.1234567890123456789 -> b
    when not known(TBIL) and PLT < 0.00001 -> b
    when ALT > 1200 and ALT < 123456789 -> b
    when since(order_lfts) >= 6 months -> b
    otherwise stay
  }
}
terminal state b
"""


@pytest.fixture(scope="module")
def v2():
    result = compile_source(V2, "v2.rxw", verify=False)
    assert result.graph is not None, result.diagnostics
    return result.graph, Labels(result.graph)


def test_chart_text_is_a_visitor_of_the_ir_with_a_handler_for_every_op():
    from rxwatch.compiler import ir
    from rxwatch.render.labels import Phrases

    assert issubclass(Phrases, ir.Visitor)
    assert set(Phrases._dispatch) == set(ir.OPS)


def test_since_entry_and_since_read_in_words(v2):
    g, L = v2
    assert L.expr(edge(g, "a/0/0")["guard"]) == "at least 14 days after entering this state and ALT > 2.4× ULN"
    assert L.expr(edge(g, "a/0/1")["guard"]).startswith(
        "at least 14 days and less than 4 weeks after entering this state and ALT > ")
    assert L.expr(edge(g, "a/0/6")["guard"]) == "at least 6 months after ‘Order a liver panel’"
    assert L.expr({"op": "since_entry"}) == "the time since entering this state"


def test_fulfilled_reads_as_the_order_and_negations_read_naturally(v2):
    g, L = v2
    assert L.expr(edge(g, "a/0/2")["guard"]) == (
        "the order for a liver panel is fulfilled and the order ‘Total bilirubin now’ is not fulfilled")
    assert L.expr(edge(g, "a/0/4")["guard"]).startswith("TBIL not known and PLT < ")


def test_numbers_print_exactly_as_written(v2):
    g, L = v2
    assert L.expr(edge(g, "a/0/1")["guard"]).endswith("ALT > 12,000.5 U/L")
    assert L.expr(edge(g, "a/0/3")["guard"]) == "TBIL known and TBIL > 0.1234567890123456789× ULN"
    assert L.expr(edge(g, "a/0/4")["guard"]) == "TBIL not known and PLT < 0.00001 10^9/L"
    assert L.expr(edge(g, "a/0/5")["guard"]) == "ALT > 1,200 U/L and ALT < 123,456,789 U/L"


@pytest.mark.parametrize("value, text", [
    (5.0, "5"), (2.4, "2.4"), (1e-05, "0.00001"), (1e22, "10,000,000,000,000,000,000,000"), (0.1 + 0.2, "0.30000000000000004"),
    ("24.000", "24"), ("0.1234567890123456789", "0.1234567890123456789"), (-12345.25, "-12,345.25"), (9999, "9,999"),
    (10000, "10,000"), (999, "999"), (1000, "1,000"), (2.5e5, "250,000"), (0, "0"),
])
def test_number_is_the_exact_decimal_of_the_graph(value, text):
    from rxwatch.render.labels import number

    assert number(value) == text



def test_what_fulfils_an_order_reads_as_written():
    text = V2.replace('action repeat "Total bilirubin now" orders TBIL', (
        'action repeat "Total bilirubin now" orders TBIL\n'
        'action all3 "Order three" orders ALT, TBIL, PLT\n'
        'action pair "Order two" orders ALT, TBIL\n'
        'action mixed "Order mixed" orders ALT, TBIL, PLT fulfilled by (ALT and TBIL) or PLT\n'))
    text = text.replace("on entry { do order_lfts due within 14 days }",
                        "on entry { do order_lfts due within 14 days do all3 do pair do mixed }")
    result = compile_source(text, "v2.rxw", verify=False)
    assert result.graph is not None, result.diagnostics
    L = Labels(result.graph)
    assert L.fulfilled_by("order_lfts") == "ALT or TBIL"
    assert L.fulfilled_by("all3") == "all of ALT, TBIL and PLT"  # the default: every lab it orders
    assert L.fulfilled_by("pair") == "ALT and TBIL"
    assert L.fulfilled_by("mixed") == "ALT and TBIL, or PLT"


# ---------------------------------------------------------------- statecharts (issue 11)


def test_windows_with_a_tolerance_and_repeating_ones_read_in_words():
    tol = {"amount": 2, "unit": "weeks"}
    assert window({"start": 3, "end": 3, "unit": "months", "tolerance": tol, "every": False}) == "due in 3 months ± 2 weeks"
    assert window({"start": 3, "end": 3, "unit": "months", "tolerance": tol, "every": True}) == "every 3 months ± 2 weeks"
    assert window({"start": 4, "end": 8, "unit": "weeks", "tolerance": None, "every": True}) == "every 4–8 weeks"
    assert window({"start": 2, "end": 4, "unit": "weeks", "tolerance": None, "every": False}) == "due in 2–4 weeks"
    assert window({"start": 0, "end": 14, "unit": "days"}) == "due within 14 days"
    assert window({"start": 1, "end": 1, "unit": "month", "tolerance": {"amount": 1, "unit": "week"}, "every": False}) == \
        "due in 1 month ± 1 week"


def test_citation_locators_follow_the_sources_number():
    from rxwatch.render.labels import locator_text

    g = compile_source('protocol p\nsource a "A" kind label\nsource b "B" kind ai-summary\nlab ALT unit "U/L" uln 40\n'
                       'action o "Order ALT" orders ALT cite a\n'
                       'initial state s "S" { on entry { do o due within 7 days cite a } on panel { otherwise stay cite a } }\n',
                       "p.rxw", verify=False).graph
    L = Labels(g)
    cites = [{"source": "a", "locator": "4.4"}, {"source": "a", "locator": "Table 2"}, {"source": "b", "locator": None}]
    assert L.cite_marks(["a", "b"], cites) == [("1: 4.4, Table 2", False), ("2†", True)]
    assert L.cite_marks(["b"], []) == [("2†", True)]
    long = "Do not initiate in patients with an absolute neutrophil count below 2000 per mm3"
    assert locator_text(long, 24) == "“Do not initiate in pati…”"
    assert locator_text(long) == f"“{long}”"
    assert locator_text("section 5.1") == "section 5.1"


def test_drug_effects_read_in_words():
    g = compile_source(
        'protocol p\nsource a "A" kind label\n'
        'drug toci "tocilizumab IV" doses 8, 4 unit "mg/kg" cite a\n'
        'drug ana "anakinra" doses daily "100 mg daily", alternate "100 mg every other day" cite a\n'
        'action st "Start" starts toci at 8 cite a\naction h "Interrupt" holds toci cite a\n'
        'action r "Resume" resumes toci at 4 cite a\naction d "Reduce" doses toci 4 cite a\n'
        'action x "Stop" stops toci cite a\naction a2 "Every other day" doses ana alternate cite a\n'
        'action plain "Nothing to a drug" cite a\n'
        'initial state s "S" { on entry { do st cite a  do h cite a  do r cite a  do d cite a  do x cite a  do a2 cite a  do plain cite a } }\n',
        "p.rxw", verify=False).graph
    L = Labels(g)
    assert [L.effect_text(a) for a in ("st", "h", "r", "d", "x", "a2", "plain")] == [
        "starts toci at 8 mg/kg", "holds toci", "resumes toci at 4 mg/kg", "asks for toci at 4 mg/kg", "stops toci",
        "asks for ana at 100 mg every other day", ""]
    assert L.dose_text("ana", "daily") == "100 mg daily"
