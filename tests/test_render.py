"""The renderer's library: render(graph, fmt, trace) -> bytes, the drawing plan, the tones,
one patient's overlay, and the DOT text of both shipped protocols against golden files
(`UPDATE_GOLDEN=1 pytest tests/test_render.py` rewrites them after a deliberate change)."""

from __future__ import annotations

import copy
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import ANAKINRA, LEFLUNOMIDE, SHIPPED_PROTOCOLS
from rxwatch.compiler import compile_file, compile_source
from rxwatch.render import FORMATS, GraphvizMissing, RenderError, TraceError, render
from rxwatch.render import dot as rdot
from rxwatch.render import plan as rplan
from rxwatch.render.tone import tones
from rxwatch.render.trace import locate, overlay

GOLDEN = Path(__file__).parent / "golden"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot (`make graphviz`)")


def graph_of(path: Path):
    result = compile_file(str(path), verify=False)
    assert result.ok, result.diagnostics
    return result.graph


@pytest.fixture(scope="module")
def ana():
    return graph_of(ANAKINRA)


@pytest.fixture(scope="module")
def lef():
    return graph_of(LEFLUNOMIDE)


def trace_for(graph, steps, **extra) -> dict:
    return {"protocol": {"name": graph.graph["name"], "version": graph.graph["version"]}, "patient": "p1",
            "start": steps[0]["date"] if steps else "2025-01-01", "until": "2025-12-31", "steps": steps, **extra}


ANA_STEPS = [
    {"date": "2025-01-06", "type": "enter", "state": "baseline"},
    {"date": "2025-01-08", "type": "transition", "from": "baseline", "to": "early_check", "trigger": "panel",
     "because": "", "sources": [], "rule": "baseline/0/1"},
    {"date": "2025-01-08", "type": "enter", "state": "early_check"},
    {"date": "2025-02-20", "type": "transition", "from": "early_check", "to": "moderate_elevation", "trigger": "panel",
     "because": "moderate", "sources": [], "rule": "early_check/0/1"},
    {"date": "2025-02-20", "type": "enter", "state": "moderate_elevation"},
    {"date": "2025-03-13", "type": "transition", "from": "moderate_elevation", "to": "maintenance", "trigger": "panel",
     "because": "", "sources": [], "rule": "moderate_elevation/0/2"},
    {"date": "2025-03-13", "type": "enter", "state": "maintenance"},
    {"date": "2025-06-13", "type": "transition", "from": "maintenance", "to": "maintenance", "trigger": "panel",
     "because": "", "sources": [], "rule": "maintenance/0/3"},
    {"date": "2025-06-13", "type": "enter", "state": "maintenance"},
    {"date": "2025-07-01", "type": "transition", "from": "maintenance", "to": "stopped", "trigger": "event",
     "because": "", "sources": [], "rule": "maintenance/1/0"},
    {"date": "2025-07-01", "type": "enter", "state": "stopped"},
    {"date": "2025-07-10", "type": "transition", "from": "stopped", "to": "stopped", "trigger": "panel",
     "because": "", "sources": [], "rule": "stopped/0/1"},
]


# ------------------------------------------------------------ golden DOT


@pytest.mark.parametrize("path", SHIPPED_PROTOCOLS, ids=lambda p: p.stem)
def test_dot_text_matches_the_golden_file(path):
    text = render(graph_of(path), "dot").decode("utf-8")
    golden = GOLDEN / f"{path.stem}.dot"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"no golden file {golden}; run UPDATE_GOLDEN=1 pytest {__file__}"
    assert text == golden.read_text(encoding="utf-8"), f"DOT changed; if on purpose: UPDATE_GOLDEN=1 pytest {__file__}"


def test_dot_text_is_deterministic(ana):
    assert render(ana, "dot") == render(copy.deepcopy(ana), "dot")


# ------------------------------------------------------------ formats (real Graphviz)


@needs_dot
@pytest.mark.parametrize("path", SHIPPED_PROTOCOLS, ids=lambda p: p.stem)
def test_svg_is_xml_and_shows_every_state(path):
    g = graph_of(path)
    svg = render(g, "svg")
    root = ET.fromstring(svg)
    ids = {el.get("id") for el in root.iter() if el.get("id")}
    text = " ".join(t for el in root.iter() for t in [el.text] if t)
    for state, data in g.nodes(data=True):
        assert f"state_{state}" in ids
        assert state in text
        first_words = " ".join(data["description"].split()[:3])
        assert first_words in text
    assert g.graph["title"] in text
    # the page: A4 or Letter landscape, less margins
    w, h = (float(root.get(k).removesuffix("pt")) / 72 for k in ("width", "height"))
    assert w <= 11.0 and h <= 8.0


@needs_dot
def test_pdf_png_and_html_are_whole_files(ana):
    pdf = render(ana, "pdf")
    assert pdf.startswith(b"%PDF-")
    # one page that prints on A4 (842 x 595 pt) and Letter (792 x 612 pt) landscape
    import re

    boxes = re.findall(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
    assert len(boxes) == 1
    w, h = map(float, boxes[0])
    assert w <= 792 and h <= 595 and w > h
    png = render(ana, "png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    page = render(ana, "html").decode("utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<svg" in page and 'id="rxwatch-data"' in page


def test_an_unknown_format_lists_the_formats(ana):
    with pytest.raises(RenderError) as e:
        render(ana, "jpeg")
    for f in FORMATS:
        assert f".{f}" in str(e.value)


def test_without_graphviz_dot_still_works_and_the_others_say_how_to_install(ana, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no `dot` on it
    assert render(ana, "dot").startswith(b"digraph")
    for fmt in ("svg", "png", "pdf", "html"):
        with pytest.raises(GraphvizMissing) as e:
            render(ana, fmt)
        assert "apt-get install graphviz" in str(e.value) and "brew install graphviz" in str(e.value)


# ------------------------------------------------------------ the plan


def test_every_rule_is_drawn_once_and_every_move_has_an_arrow(ana, lef):
    for g in (ana, lef):
        p = rplan.build(g)
        keys = {k for _, _, k in g.edges(keys=True)}
        assert set(p.row_of_rule) == keys
        for u, v, k, d in g.edges(keys=True, data=True):
            if d["stay"] or u == v:
                assert k not in p.arrow_of_rule
            else:
                a = next(a for a in p.arrows if a.id == p.arrow_of_rule[k])
                assert a.head == v and k in a.rules


def test_rules_every_on_treatment_state_shares_are_drawn_once(ana):
    p = rplan.build(ana)
    assert [(g.letter, g.states) for g in p.groups] == [
        ("A", ["early_check", "maintenance", "mild_elevation", "moderate_elevation", "persistent_elevation"])
    ]
    shared = p.groups[0]
    assert [d.trigger for d in shared.decisions] == ["Event: jaundice or encephalopathy", "Event: anakinra ended for any other reason"]
    assert [len(r.rules) for d in shared.decisions for r in d.rows] == [5, 5]
    for b in p.boxes:
        assert (b.group == "A") == (b.state in shared.states)
        assert all(not d.trigger.startswith("Event") for d in b.decisions)


def test_rows_read_from_the_initial_state_to_the_ends(ana, lef):
    for g in (ana, lef):
        p = rplan.build(g)
        flat = [n for row in p.rows for n in row]
        assert sorted(flat) == sorted(list(g.nodes) + [grp.id for grp in p.groups])
        assert p.rows[0][0] == g.graph["initial"]
        ends = [s for s, d in g.nodes(data=True) if d["kind"] == "terminal"]
        assert flat[-len(ends):] == ends
        assert len(p.rows) == 2  # a landscape page


def test_decisions_number_their_rules_in_order(ana):
    p = rplan.build(ana)
    box = next(b for b in p.boxes if b.state == "early_check")
    (dec,) = box.decisions
    assert dec.ordered and dec.trigger == "Lab results"
    assert [(r.number, r.guard, r.target) for r in dec.rows] == [
        ("1", "severe", "stopped"), ("2", "moderate", "moderate_elevation"),
        ("3", "mild", "mild_elevation"), ("4", "otherwise", "maintenance"),
    ]
    stay = next(b for b in p.boxes if b.state == "persistent_elevation").decisions[0].rows[1]
    assert stay.stay and not stay.reenter
    again = next(b for b in p.boxes if b.state == "maintenance").decisions[0].rows[3]
    assert again.reenter and not again.stay


# ------------------------------------------------------------ tones


def test_declared_severities_colour_the_states(ana, lef):
    assert tones(ana) == {
        "baseline": 0, "baseline_abnormal": 2, "early_check": 0, "maintenance": 0, "mild_elevation": 1,
        "moderate_elevation": 2, "persistent_elevation": 2, "stopped": 3, "off_treatment": 0,
    }
    assert tones(lef) == {
        "baseline": 0, "contraindicated": 2, "first_six_months": 0, "long_term": 0, "reduced": 2,
        "interrupted": 3, "recovered": 0,
    }
    assert rplan.build(ana).severity_declared


def without_severity(g):
    g = copy.deepcopy(g)
    for _, d in g.nodes(data=True):
        d["severity"] = "none"
    return g


def test_without_declared_severities_they_come_from_the_rules_not_the_names(ana, lef):
    assert tones(without_severity(ana)) == {
        "baseline": 0, "baseline_abnormal": 2, "early_check": 0, "maintenance": 0, "mild_elevation": 1,
        "moderate_elevation": 2, "persistent_elevation": 1, "stopped": 3, "off_treatment": 0,
    }
    assert tones(without_severity(lef)) == {
        "baseline": 0, "contraindicated": 0, "first_six_months": 0, "long_term": 0, "reduced": 2,
        "interrupted": 3, "recovered": 0,
    }
    p = rplan.build(without_severity(ana))
    assert not p.severity_declared
    assert "derived from the rules: the protocol declares none" in rdot.digraph(p).source


def test_renaming_states_changes_no_derived_severity(ana):
    import networkx as nx

    plain = without_severity(ana)
    names = {s: f"s{i}" for i, s in enumerate(plain.nodes)}
    renamed = nx.relabel_nodes(plain, names)  # rule keys stay as they were: tones must not read them
    assert {names[s]: t for s, t in tones(plain).items()} == tones(renamed)


# ------------------------------------------------------------ escaping


INJECTED = r'''
protocol inj
  title "T <b>&amp;</b> ]"
source s1 "<I>1</I>] x" kind ai-summary
lab ALT unit "U/L" uln 40
action order "Order <script>alert(1)</script>" orders ALT
initial state a "<script>alert(1)</script> \"onmouseover=alert(2) x=\"" {
  on entry { do order due within 14 days cite s1 }
  on panel { when xuln(ALT) > 3 -> b cite s1
             otherwise stay cite s1 }
}
terminal state b "b & c"
'''


def test_protocol_text_is_escaped_in_dot():
    g = compile_source(INJECTED, "inj.rxw", verify=False).graph
    text = render(g, "dot").decode()
    assert "<script>" not in text and "<b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&quot;onmouseover=alert(2) x=&quot;" in text
    assert "&lt;I&gt;1&lt;/I&gt;&#93; x" in text  # Graphviz 2.43 chokes on a raw "]" after a tag


@needs_dot
def test_protocol_text_is_text_in_svg_and_html():
    g = compile_source(INJECTED, "inj.rxw", verify=False).graph
    root = ET.fromstring(render(g, "svg"))
    assert not [el for el in root.iter() if el.tag.endswith("script")]
    assert any(el.text and "<script>alert(1)</script>" in el.text for el in root.iter())
    page = render(g, "html").decode()
    data = page[page.index('id="rxwatch-data">'):]
    data = data[: data.index("</script>")]
    assert "<" not in data.split(">", 1)[1] and "\\u003cscript\\u003e" in data
    assert page.count("<script") == 2  # the data and the viewer, nothing else


# ------------------------------------------------------------ one patient's path


def test_the_overlay_numbers_the_path_with_dates(ana):
    ov = overlay(ana, trace_for(ana, ANA_STEPS, final_state="stopped"))
    assert [(v.number, v.date) for v in ov.visits["baseline"]] == [(0, "2025-01-06")]
    assert [(v.number, v.date) for v in ov.visits["maintenance"]] == [(3, "2025-03-13"), (4, "2025-06-13")]
    assert [v.number for v in ov.taken["maintenance/1/0"]] == [5]
    assert "stopped" in ov.visits and [v.number for v in ov.taken["stopped/0/1"]] == [6]
    assert "stopped/0/1" not in [k for k, vs in ov.taken.items() if any(v.number == 0 for v in vs)]
    assert [s.get("number") for s in ov.steps if s["type"] == "transition"] == [1, 2, 3, 4, 5, 6]


def test_without_rule_keys_the_transition_is_matched_by_its_guard(ana):
    steps = [dict(s) for s in ANA_STEPS[:5]]
    for s in steps:
        s.pop("rule", None)
    ov = overlay(ana, trace_for(ana, steps))
    assert set(ov.taken) == {"baseline/0/1", "early_check/0/1"}


@pytest.mark.parametrize("mutate, message, where", [
    (lambda t: t["protocol"].update(name="leflunomide_hepatotoxicity"), "this trace is from protocol 'leflunomide_hepatotoxicity'", ("protocol", "name")),
    (lambda t: t["protocol"].update(version="0.9"), "version 0.9", ("protocol", "version")),
    (lambda t: t.pop("steps"), "missing 'steps'", ()),
    (lambda t: t.update(steps={"a": 1}), "'steps' must be a list of steps", ("steps",)),
    (lambda t: t["steps"][2].update(state="nowhere"), "'nowhere' is not a state", ("steps", 2, "state")),
    (lambda t: t["steps"][1].update(rule="baseline/9/9"), "'baseline/9/9' is not a rule", ("steps", 1, "rule")),
    (lambda t: t["steps"][1].update(rule="early_check/0/0"), "leads from 'early_check' to 'stopped'", ("steps", 1, "rule")),
    (lambda t: t["steps"][3].update(date="2024-01-01"), "dates never decrease", ("steps", 3, "date")),
    (lambda t: t["steps"][0].update(type="jump"), "unknown step type 'jump'", ("steps", 0, "type")),
    (lambda t: t["steps"].__setitem__(0, "enter"), "a step is an object", ("steps", 0)),
    (lambda t: t.update(final_state="limbo"), "'limbo' is not a state", ("final_state",)),
])
def test_a_trace_that_does_not_fit_says_where(ana, mutate, message, where):
    t = copy.deepcopy(trace_for(ana, ANA_STEPS))
    mutate(t)
    with pytest.raises(TraceError) as e:
        render(ana, "dot", trace=t)
    assert message in e.value.message
    assert e.value.where == where


def test_a_trace_that_is_not_an_object_is_refused(ana):
    with pytest.raises(TraceError):
        overlay(ana, ["steps"])


def test_locate_finds_the_line_of_a_step():
    text = '{\n "protocol": {"name": "x"},\n "steps": [\n  {"date": "d", "type": "enter"},\n  {"date": "d",\n   "to": "zz"}\n ]\n}'
    assert locate(text, ("steps", 1, "to")) == 6
    assert locate(text, ("protocol", "name")) == 2
    assert locate(text, ()) is None
    assert locate("not json at all: [", ("steps", 0)) is None


def test_the_traced_chart_draws_the_path_and_fades_the_rest(ana):
    plain = render(ana, "dot").decode()
    traced = render(ana, "dot", trace=trace_for(ana, ANA_STEPS, final_state="stopped")).decode()
    assert rdot.PATH not in plain and rdot.FADED_LINE not in plain
    assert rdot.PATH in traced and rdot.FADED_LINE in traced
    assert "entered start · 2025-01-06" in traced
    assert "entered 3 · 2025-03-13, 4 · 2025-06-13" in traced
    assert "here at the end (2025-12-31)" in traced
    assert "the path of patient p1" in traced
