"""A flowchart that reads in 30 seconds (issue 14, items 2 and 3): the grades under the title,
built from the protocol's own lets; rules lead to their target's title; `otherwise "normal"`
from the grammar to the chart; clinician words; variables hidden unless asked; whole action
texts; numbers grouped, never in scientific notation; and the crossings of the laid-out chart."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from conftest import ANAKINRA, LEFLUNOMIDE, SHIPPED_PROTOCOLS
from rxwatch.cli.main import main
from rxwatch.compiler import compile_file, compile_source
from rxwatch.compiler.graphio import from_json, to_json
from rxwatch.render import plan as rplan
from rxwatch.render import dot as rdot
from rxwatch.render import render
from rxwatch.render.crossings import bezier, count, crossings, edge_polylines, layout_json, pair_crossings

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot (`make graphviz`)")

# A small protocol of our own: grades named and thresholded unlike the shipped ones, a named
# and an unnamed `otherwise`, an else-if chain, a variable set, an action with a bracket.
SMALL = """\
protocol small
  title "Small"
source s "A source"
lab ALT "alanine aminotransferase" unit "U/L" uln 40
lab PLT "platelet count" unit "/mm3"
action order_alt "Order ALT (and AST when the lab runs both), due soon" orders ALT cite s
action stop_drug "Stop the drug" cite s
action note_a "Note A" cite s
action note_b "Note B" cite s
action note_c "Note C" cite s
let x "ALT in multiples of ULN" = xuln(ALT)
let watch "a rise worth a closer watch (grade 1)" = 1.5 < x <= 4 cite s
let halt "a rise that stops the drug" = x > 4 or PLT < 25000 cite s
var flagged "the patient was flagged" bool default false
initial state routine "Routine checks: every 3 months" {
  on entry { do order_alt due within 14 days cite s }
  on panel ordered {
    when halt -> stopped cite s
    when watch -> closer cite s {
      set flagged = true cite s
      if x > 3 { do note_a cite s } else if x > 2 { do note_b cite s } else { do note_c cite s }
    }
    otherwise "normal" stay cite s
  }
}
state closer "Closer watch: weekly ALT" severity mild {
  on entry { do order_alt due within 7 days cite s }
  on panel ordered {
    when halt -> stopped cite s
    when x <= 1 -> routine cite s
    otherwise stay cite s
  }
}
terminal state stopped "Drug stopped: refer" severity severe {
  on entry { do stop_drug cite s }
}
"""


def compiled(text: str = SMALL):
    r = compile_source(text, "small.rxw", verify=False)
    assert r.ok, [str(d) for d in r.diagnostics if d.is_error]
    return r.graph


@pytest.fixture(scope="module")
def ana():
    return compile_file(str(ANAKINRA), verify=False).graph


# ------------------------------------------------------------ the grades under the title

def test_the_grades_line_of_anakinra_is_read_from_its_lets(ana):
    p = rplan.build(ana)
    assert p.grades == ("mild ALT or AST >1–3× ULN; moderate >3–5×; "
                        "severe >5×, or ≥3× with TBIL >2× or INR >1.5, or TBIL >3×")
    src = rdot.digraph(p).source
    assert "<B>Grades:</B> mild ALT or AST &gt;1–3× ULN; moderate &gt;3–5×" in src


def test_the_grades_follow_the_protocol_not_a_list_of_names():
    p = rplan.build(compiled())
    # `watch` leads to a mild state, `halt` to a severe one: mildest first, thresholds as written
    assert p.grades == "watch ALT >1.5–4× ULN; halt >4×, or PLT <25,000 /mm3"
    moved = rplan.build(compiled(SMALL.replace("1.5 < x <= 4", "2 < x <= 4.5")))
    assert moved.grades.startswith("watch ALT >2–4.5× ULN; ")
    # a let that is no rule's whole guard is no grade: no line at all
    none = rplan.build(compiled(SMALL.replace("when watch -> closer", "when watch and PLT > 1 -> closer")
                                .replace("when halt -> stopped", "when halt and PLT > 1 -> stopped")))
    assert none.grades == ""
    assert "Grades:" not in rdot.digraph(none).source


def test_a_grade_named_by_a_short_description(tmp_path):
    p = rplan.build(compile_file(str(LEFLUNOMIDE), verify=False).graph)
    assert p.grades == "reduce band ALT or AST >2–3× ULN; Hy's law ≥3× with TBIL >2×"


def test_without_graded_conditions_the_rules_own_comparisons_grade():
    from conftest import TOCILIZUMAB

    # tocilizumab grades in its rule blocks (`when tx > 5 -> liver_discontinued`, the severity
    # on the frame around that state): each comparison under the mildest state it leads to
    p = rplan.build(compile_file(str(TOCILIZUMAB), verify=False).graph)
    assert p.grades == ("mild ALT or AST >1× ULN; moderate >3×, ANC ≤1,000 /mm3, PLT ≤100,000 /mm3; "
                        "severe >5×, ANC <500 /mm3, PLT <50,000 /mm3")
    small = rplan.build(compiled(SMALL.replace("when watch -> closer", "when x > 2 -> closer")
                                 .replace("when halt -> stopped", "when halt and PLT > 1 -> stopped")))
    assert small.grades == "mild ALT >2× ULN"


# ------------------------------------------------------------ rules, targets, words

def test_rules_lead_to_the_target_s_title_not_its_id(ana):
    p = rplan.build(ana)
    assert p.target("moderate_elevation") == "Moderate elevation"
    assert p.target("stopped") == "Significant liver injury"
    assert p.target("off_treatment") == "Off anakinra"
    src = rdot.digraph(p).source
    assert "→ Moderate elevation" in src and "→ Significant liver<BR" in src
    assert not re.search(r"→ [a-z]+_[a-z_]+", src)  # no id after an arrow


def test_titles_that_would_read_the_same_stay_whole():
    assert rplan.target_titles({"a": "ALT raised: repeat", "b": "ALT raised: stop", "c": "Off: done", "d": "Stopped"}) == {
        "a": "ALT raised: repeat", "b": "ALT raised: stop", "c": "Off: done", "d": "Stopped"}


def test_otherwise_named_in_the_protocol_reaches_the_graph_and_the_chart():
    g = compiled()
    named = [d for _, _, d in g.edges(data=True) if d.get("otherwise_name")]
    assert [(d["id"], d["otherwise_name"]) for d in named] == [("routine/0/2", "normal")]
    # the compiled graph keeps it through JSON; a graph written before the field still loads
    assert from_json(to_json(g)).edges["routine", "routine", "routine/0/2"]["otherwise_name"] == "normal"
    data = json.loads(to_json(g))
    for e in data["edges"]:
        e.pop("otherwise_name", None)
    old = from_json(json.dumps(data))
    assert not any("otherwise_name" in d for _, _, d in old.edges(data=True))
    bad = json.loads(to_json(g))
    next(e for e in bad["edges"] if "otherwise_name" in e)["otherwise_name"] = 3
    from rxwatch.compiler.graphio import validate
    assert any("otherwise_name" in str(p) for p in validate(bad))
    p = rplan.build(g)
    guards = {b.state: [r.guard for d in b.decisions for r in d.rows] for b in p.boxes}
    assert guards["routine"][-1] == "normal"
    assert guards["closer"][-1] == "none of the above"  # unnamed: a clinician's word
    assert rplan.build(old).boxes[0].decisions[0].rows[-1].guard == "none of the above"


def test_no_rule_of_a_shipped_chart_reads_otherwise_or_programmers_words():
    for path in SHIPPED_PROTOCOLS:
        src = rdot.digraph(rplan.build(compile_file(str(path), verify=False).graph)).source
        text = re.sub(r"<[^>]+>", "", src)
        for word in ("otherwise, otherwise", "first match", "see the block", "shared rules", "Record:", "<I>stay</I>",
                     "<I>again</I>", ">uses "):
            assert word not in text and word not in src, (path.name, word)
        assert not re.search(r"(?<![,\w])otherwise(?!,)", text.replace("otherwise:", "")), path.name


def test_else_if_reads_otherwise_if_and_never_otherwise_otherwise():
    g = compiled()
    d = g.edges["routine", "closer", "routine/0/1"]
    lines = rplan.build(g).labels.action_lines(d["actions"])
    assert [(x.when, x.text) for x in lines] == [
        ("if ALT > 3× ULN", "Note A"), ("otherwise, if ALT > 2× ULN", "Note B"), ("otherwise", "Note C")]


def test_the_format_keeps_a_named_otherwise():
    from rxwatch.editor.fmt import format_text

    out = format_text(SMALL.replace('otherwise "normal" stay', 'otherwise   "normal"   stay'))
    assert 'otherwise "normal" stay cite s' in out


def test_variables_are_hidden_unless_asked(ana, capsys, tmp_path):
    plain = rdot.digraph(rplan.build(ana)).source
    shown = rdot.digraph(rplan.build(ana, show_variables=True)).source
    assert "Record:" not in plain and "Record: the patient has recovered" in shown
    out = tmp_path / "v.dot"
    assert main(["render", str(ANAKINRA), "-o", str(out), "--show-variables"]) == 0
    assert "Record:" in out.read_text()
    assert main(["render", str(ANAKINRA), "-o", str(out)]) == 0
    assert "Record:" not in out.read_text()


def test_action_text_is_whole_with_its_brackets(ana):
    src = rdot.digraph(rplan.build(ana)).source
    text = re.sub(r"<BR[^>]*/>", " ", src)
    assert "Order a liver panel (ALT, AST, total bilirubin, ALP, INR), due within 14 days" in text
    assert "Work up other causes of liver injury (viral serology, alcohol, other drugs, imaging)" in text
    assert "every other day" in text


def test_conditions_read_as_their_descriptions(ana):
    p = rplan.build(ana)
    rows = [r.guard for b in [*p.boxes, *p.blocks] for d in b.decisions for r in d.rows]
    assert "significant liver injury" in rows and "moderate elevation" in rows
    assert not {"severe", "moderate", "mild"} & set(rows)
    for name in ("side_rise", "confirm_needed", "inr_high", "bili_severe", "no_transaminases", "tx"):
        assert not any(re.search(rf"\b{name}\b", g) for g in rows), name
    # a description written in the protocol's code (`tx >= 3 x ULN ...`) reads as its definition
    whens = {x.when for b in p.boxes for x in b.entry} | {x.when for b in [*p.boxes, *p.blocks]
                                                             for d in b.decisions for r in d.rows for x in r.actions}
    assert "if ‘ALT/AST at least 3 x ULN without a bilirubin, or without an INR when not anticoagulated’" in whens


# ------------------------------------------------------------ numbers

def test_numbers_are_grouped_and_never_in_scientific_notation():
    from rxwatch.render.labels import number
    from rxwatch.simulator.table import exact_text

    g = compiled(SMALL.replace("PLT < 25000", "PLT < 250000 or PLT > 10000000 or PLT < 0.00001"))
    src = rdot.digraph(rplan.build(g)).source
    assert "250,000" in src and "10,000,000" in src and "0.00001" in src
    assert not re.search(r"\d[eE][+-]?\d", re.sub(r"#[0-9a-fA-F]{6}", "", src))
    for v, text in ((2.5e5, "250,000"), (1e-05, "0.00001"), (1234, "1,234"), (1e21, "1,000,000,000,000,000,000,000")):
        assert number(v) == text and exact_text(v) == text


def test_the_simulate_table_groups_thousands(tmp_path, capsys):
    from conftest import TOCILIZUMAB

    timeline = tmp_path / "t.yaml"
    timeline.write_text("patient: {id: big}\nstart: 2025-01-06\nuntil: 2025-02-28\nevents:\n"
                        "  - {date: 2025-01-08, lab: PLT, value: 250000, unit: /mm3}\n"
                        "  - {date: 2025-02-08, lab: PLT, value: 1250000.5, unit: /mm3}\n")
    status = main(["simulate", str(TOCILIZUMAB), str(timeline), "--format", "table"])
    out = capsys.readouterr().out
    assert status in (0, 1)
    assert "PLT 250,000 /mm3" in out and "PLT 1,250,000.5 /mm3" in out
    assert not re.search(r"\d[eE][+-]\d", out)


# ------------------------------------------------------------ crossings

def _edge(points, style=None):
    e = {"_draw_": [{"op": "c", "color": "#000"}, {"op": "b", "points": points}]}
    if style:
        e["style"] = style
    return e


def test_the_crossing_count_of_a_hand_made_layout():
    # a straight cubic (control points on the line) from (0,0) to (30,30), and its mirror: one crossing
    diag = _edge([[0, 0], [10, 10], [20, 20], [30, 30]])
    anti = _edge([[0, 30], [10, 20], [20, 10], [30, 0]])
    far = _edge([[100, 0], [100, 10], [100, 20], [100, 30]])  # apart: none
    hidden = _edge([[15, -5], [15, 5], [15, 25], [15, 35]], style="invis")  # invisible: not counted
    assert crossings({"edges": [diag, anti, far, hidden]}) == 1
    # a vertical through both diagonals at x = 15 crosses each once, at (15, 15) where they meet
    vert = _edge([[15, -5], [15, 5], [15, 25], [15, 35]])
    assert crossings({"edges": [diag, anti, vert]}) == 3
    # two arrows leaving the same point touch there: no crossing
    fan = _edge([[0, 0], [10, 0], [20, 0], [30, 0]])
    assert crossings({"edges": [diag, fan]}) == 0
    # an S-curve crossing a horizontal line three times
    s = bezier([(0, -10), (10, 60), (20, -60), (30, 10)], 60)
    line = [(-5, 0), (35, 0)]
    assert len(pair_crossings(s, line)) == 3
    assert count([s, line]) == 3
    assert crossings(json.dumps({"edges": [diag, anti]})) == 1
    assert edge_polylines({"edges": [{"style": "invis"}, {"_draw_": []}]}) == []


@needs_dot
def test_the_anakinra_chart_crosses_at_most_half_as_often_as_before(ana):
    # 74 crossings before issue 14 (commit e6cd893, `bench/bench_render.py`); at most half now
    n = crossings(layout_json(rdot.digraph(rplan.build(ana)).source))
    assert n <= 37, n


@needs_dot
def test_the_anakinra_chart_is_one_page_as_png_and_pdf(ana):
    pdf = render(ana, "pdf")
    assert len(re.findall(rb"/Type\s*/Page(?!s)", pdf)) == 1
    png = render(ana, "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert w <= 10.6 * 200 + 2 and h <= 7.6 * 200 + 2  # the page at 200 dpi


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the viewer's script")
def test_the_viewer_prints_numbers_grouped_and_never_in_scientific_notation():
    import subprocess
    from pathlib import Path

    import rxwatch.render as r

    js = (Path(r.__file__).parent / "assets" / "viewer.js").read_text(encoding="utf-8")
    funcs = "".join(re.search(rf"  function {name}\(.*?\n  }}\n", js, re.S).group(0)
                    for name in ("plainNumber", "groupedText", "exactText"))
    probe = funcs + """
console.log(JSON.stringify([plainNumber(2.5e21), plainNumber(1e-7), groupedText("250000.5"), groupedText("5/12"),
  exactText({value: 250000, value_exact: "250000"}, "value"), exactText({value: 1.23456789e22}, "value"),
  exactText({value: 1234.5678, value_exact: "12345678/10000"}, "value")]));"""
    out = subprocess.run(["node", "-e", probe], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == ["2,500,000,000,000,000,000,000", "0.0000001", "250,000.5", "5/12",
                               "250,000", "12,345,678,900,000,000,000,000", "≈1,234.57"]


@needs_dot
def test_the_crossing_counts_docs_flowcharts_md_prints_are_the_charts(repo_root):
    """docs/flowcharts.md, 'Arrows that cross less': the table bench_render.py printed is what
    the shipped charts cross now (the tocilizumab count moved with the grades line)."""
    doc = (repo_root / "docs" / "flowcharts.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\s+(\w+)\s+(\d+)\s+(\d+)\s+\d+\s+\d+$", doc.split("## Arrows that cross less")[1].split("```")[1], re.M)
    assert len(rows) == 3
    for name, arrows, count in rows:
        graph = compile_file(str(repo_root / "protocols" / f"{name}.rxw"), verify=False).graph
        assert crossings(layout_json(rdot.digraph(rplan.build(graph)).source)) == int(count), name
    said = re.search(r"tocilizumab from 112 to (\d+)", doc)
    assert said and said.group(1) == dict((n, c) for n, _, c in rows)["tocilizumab_monitoring"]
