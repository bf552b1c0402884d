"""The renderer's library: render(graph, fmt, trace) -> bytes, the drawing plan, the tones,
one patient's overlay, and the DOT text of both shipped protocols against golden files
(`UPDATE_GOLDEN=1 pytest tests/test_render.py` rewrites them after a deliberate change)."""

from __future__ import annotations

import copy
import os
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import ANAKINRA, LEFLUNOMIDE, PROTOCOLS_DIR, SHIPPED_PROTOCOLS
from rxwatch.compiler import compile_file, compile_source
from rxwatch.render import FORMATS, GraphvizMissing, RenderError, TraceError, render
from rxwatch.render import dot as rdot
from rxwatch.render import plan as rplan
from rxwatch.render.tone import tones
from rxwatch.render.trace import locate, overlay

GOLDEN = Path(__file__).parent / "golden"
# the v2 anakinra protocol as it was before statecharts: the tests of flat charts read it (the
# shipped one, with its tracks, is a statechart: tests/test_render_statechart.py)
FLAT_ANAKINRA = GOLDEN / "anakinra_v2_flat.rxw"
# every shipped protocol, the tocilizumab one included once it is in the tree
CHARTED = tuple(sorted({*SHIPPED_PROTOCOLS, *PROTOCOLS_DIR.glob("*.rxw")}))
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot (`make graphviz`)")


def graph_of(path: Path):
    result = compile_file(str(path), verify=False)
    assert result.ok, result.diagnostics
    return result.graph


@pytest.fixture(scope="module")
def ana():
    return graph_of(FLAT_ANAKINRA)


@pytest.fixture(scope="module")
def lef():
    return graph_of(LEFLUNOMIDE)


def trace_for(graph, steps, **extra) -> dict:
    return {"protocol": {"name": graph.graph["name"], "version": graph.graph["version"]}, "patient": "p1",
            "start": steps[0]["date"] if steps else "2025-01-01", "until": "2025-12-31", "steps": steps, **extra}


# A small protocol with the v2 settings, and a real trace of it (the simulator's): an
# incomplete result, an unassessable panel, an overdue order and its reminder, then the path on.
TRACKED = """\
protocol trk
  title "Tracking"
  version "1"
results valid for 3 days
reminders every 4 weeks
lab ALT unit "U/L" uln 40
lab AST unit "U/L" uln 40
lab TBIL unit "mg/dL" uln 1.2
action order "Order ALT and AST" orders ALT, AST, TBIL fulfilled by ALT or AST
action stop "Stop the drug"
let tx = max(xuln(ALT), xuln(AST))
event jaundice "jaundice"
initial state watch "Watching" {
  on entry { do order due within 14 days }
  on panel ordered {
    when tx > 3 -> high
    when known(TBIL) and xuln(TBIL) > 2 -> high
    when fulfilled(order) -> watch
    otherwise stay
  }
  on event jaundice { otherwise -> stopped }
}
state high "High" severity moderate {
  on entry { do order due within 7 days }
  on panel {
    when tx <= 1 -> watch
    otherwise stay
  }
  on event jaundice { otherwise -> stopped }
}
terminal state stopped "Stopped" severity severe { on entry { do stop } }
"""

TRACKED_TIMELINE = """\
patient: {id: trk-1}
start: 2025-01-06
until: 2025-03-31
events:
  - {date: 2025-01-08, lab: TBIL, value: 1.0, unit: mg/dL}
  - {date: 2025-01-10, lab: ALT, value: 160, unit: U/L}
  - {date: 2025-03-01, lab: ALT, value: 30, unit: U/L}
  - {date: 2025-03-05, event: jaundice}
"""


@pytest.fixture(scope="module")
def trk():
    result = compile_source(TRACKED, "trk.rxw", verify=False)
    assert result.graph is not None, result.diagnostics
    return result.graph


@pytest.fixture(scope="module")
def trk_trace(trk):
    from rxwatch.inputs import yamlsrc
    from rxwatch.simulator.engine import simulate
    from rxwatch.inputs.yamljson import parse_timeline

    doc = yamlsrc.load(TRACKED_TIMELINE, "trk.yaml")
    trace = simulate(trk, parse_timeline(doc, "trk.yaml", trk.graph))
    # the contract's panel step (v2), as a trace may carry it: before the day's panel rules
    panel = {"date": "2025-01-10", "type": "panel", "results": [
        {"lab": "ALT", "value": 160, "unit": "U/L", "uln": 40, "xuln": 4},
        {"lab": "TBIL", "value": 1, "unit": "mg/dL", "uln": 1.2, "xuln": 0.8333333333333334, "xuln_exact": "5/6",
         "from": "2025-01-08"}], "replaced": []}
    steps = trace["steps"]
    at = next(i for i, st in enumerate(steps) if st["date"] == "2025-01-10")
    trace["steps"] = steps[:at] + [panel] + steps[at:]
    return trace


# ------------------------------------------------------------ golden DOT


@pytest.mark.parametrize("path", (*CHARTED, FLAT_ANAKINRA), ids=lambda p: p.stem)
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
@pytest.mark.parametrize("path", (*CHARTED, FLAT_ANAKINRA), ids=lambda p: p.stem)
def test_svg_is_xml_and_shows_every_state(path):
    g = graph_of(path)
    svg = render(g, "svg")
    root = ET.fromstring(svg)
    ids = {el.get("id") for el in root.iter() if el.get("id")}
    text = " ".join(t for el in root.iter() for t in [el.text] if t)
    for state, data in g.nodes(data=True):
        # a track is a frame (its id cluster_NAME); every state, a compound one too, is a box
        assert (f"cluster_{state}" if data.get("type") == "track" else f"state_{state}") in ids
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
    assert [d.trigger for d in shared.decisions] == ["Event: jaundice or encephalopathy"]
    assert [len(r.rules) for d in shared.decisions for r in d.rows] == [5]
    assert shared.decisions[0].handlers == [(s, 1) for s in shared.states]
    for b in p.boxes:
        assert (b.group == "A") == (b.state in shared.states)
        assert all(d.trigger != "Event: jaundice or encephalopathy" for d in b.decisions) or b.group is None


def test_the_reading_order_runs_from_the_initial_state_to_the_ends(ana, lef):
    for g in (ana, lef):
        p = rplan.build(g)
        assert sorted(p.order) == sorted(list(g.nodes) + [grp.id for grp in p.groups])
        assert p.order[0] == g.graph["initial"]
        ends = [s for s, d in g.nodes(data=True) if d["kind"] == "terminal"]
        assert p.order[-len(ends):] == ends


def test_decisions_number_their_rules_in_order(ana):
    p = rplan.build(ana)
    box = next(b for b in p.boxes if b.state == "early_check")
    dec = box.decisions[0]
    assert dec.ordered and dec.trigger == "Lab results"
    assert [(r.number, r.guard, r.target) for r in dec.rows] == [
        ("1", "neither ALT nor AST has a result and bilirubin above 3 x ULN", "stopped"),
        ("2", "neither ALT nor AST has a result and ‘a bilirubin, ALP or INR rise’", "mild_elevation"),
        ("3", "significant liver injury", "stopped"), ("4", "moderate elevation", "moderate_elevation"),
        # side_rise's description is written in code (`tx < 3`): its definition, in words
        ("5", "bilirubin above 1.5 x ULN and both ALT and AST < 3× ULN; or alkaline phosphatase above 2.5 x ULN"
              " and both ALT and AST ≤ 3× ULN; or INR above 1.5 and both ALT and AST < 3× ULN", "mild_elevation"),
        ("6", "mild elevation", "mild_elevation"),
        ("7", "the order for a liver panel is fulfilled", "maintenance"), ("8", "none of the above", "early_check"),
    ]
    # one arrow per box and target: rules 1 and 3 lead to `stopped` by one arrow, from rule 1
    to_stopped = [a for a in p.arrows if a.tail == "early_check" and a.head == "stopped"]
    assert len(to_stopped) == 1 and to_stopped[0].port == dec.rows[0].port
    assert to_stopped[0].rules == dec.rows[0].rules + dec.rows[2].rules
    assert dec.rows[7].stay and not dec.rows[7].reenter
    again = next(b for b in p.boxes if b.state == "mild_elevation").decisions[0].rows[1]
    assert again.reenter and not again.stay


def test_every_panel_decision_says_what_missing_results_do(ana):
    p = rplan.build(ana)
    for b in p.boxes:
        for d in b.decisions:
            if d.trigger == "Lab results":
                # the v2 rules check bilirubin, ALP and INR with known(): only a panel without any
                # transaminase can leave them undecided
                assert d.missing is not None and d.missing.blocking == (("ALT", "AST"),), b.state
            else:
                assert d.missing is None, (b.state, d.trigger)


def test_protocol_settings_and_orders_are_stated(ana, trk):
    p = rplan.build(ana)
    assert [(st.text, st.sources, st.declared) for st in p.settings] == [
        ("Results valid for 3 days: a result counts on its day and the 3 days after", ["rxwatch-convention"], True),
        ("Overdue orders flagged again every 4 weeks", ["rxwatch-convention"], True),
    ]
    assert [(o.name, o.fulfilled_by) for o in p.orders] == [("order_lfts", "ALT or AST"), ("order_bilirubin_inr", "TBIL or INR")]
    text = " ".join(render(ana, "dot").decode().replace('<BR ALIGN="LEFT"/>', " ").split())
    assert "Results valid for 3 days: a result counts on its day and the 3 days after" in text
    assert "Overdue orders flagged again every 4 weeks" in text
    assert "fulfilled by ALT or AST" in text and "fulfilled by TBIL or INR" in text
    # a protocol that declares neither: the language's defaults, said as plainly
    plain = compile_source(TRACKED.replace("results valid for 3 days\n", "").replace("reminders every 4 weeks\n", ""),
                           "t.rxw", verify=False).graph
    assert [st.text for st in rplan.build(plain).settings] == [
        "Results count on their own day only: a panel is one day's results", "Overdue orders flagged once"]


# ------------------------------------------------------------ layout


def test_arrange_keeps_the_largest_drawing_on_the_page():
    from rxwatch.render.layout import arrange

    sizes = {c: (100.0, 100.0) for c in "abcdefgh"}
    # a wide page: one row of eight boxes beats two rows of four, the key under them
    wide = arrange(list("abcdefgh"), sizes, (100.0, 10.0), [(100.0, 20.0)], page=(1000.0, 150.0), gaps=(0.0, 0.0))
    assert wide.rows == [list("abcdefgh")] and not wide.key_in_row
    # a square page: rows of about equal width, in reading order
    square = arrange(list("abcdefgh"), sizes, (100.0, 10.0), [(100.0, 20.0)], page=(300.0, 300.0), gaps=(0.0, 0.0))
    assert [len(r) for r in square.rows] in ([3, 3, 2], [3, 2, 3], [2, 3, 3]) and sum(square.rows, []) == list("abcdefgh")
    # a key as wide as the page goes under the rows; a narrow one can end the last row
    assert not arrange(list("ab"), sizes, (10.0, 10.0), [(400.0, 50.0)], page=(400.0, 300.0), gaps=(0.0, 0.0)).key_in_row
    tall_key = arrange(list("abcd"), sizes, (10.0, 10.0), [(100.0, 100.0), (300.0, 40.0)], page=(500.0, 130.0), gaps=(0.0, 0.0))
    assert tall_key.key_in_row and tall_key.rows == [list("abcd")] and tall_key.key == 0


def test_arrange_stays_quick_for_a_hundred_boxes():
    import time

    from rxwatch.render.layout import arrange

    order = [f"s{i}" for i in range(100)]
    started = time.perf_counter()
    a = arrange(order, {x: (200.0, 150.0) for x in order}, (500.0, 100.0), [(800.0, 300.0)], (763.0, 547.0), (18.0, 21.6))
    assert time.perf_counter() - started < 2
    assert sum(a.rows, []) == order and 5 <= len(a.rows) <= 12


@needs_dot
@pytest.mark.parametrize("path", (*CHARTED, FLAT_ANAKINRA), ids=lambda p: p.stem)
def test_label_sizes_are_estimated_close_to_what_dot_draws(path):
    import json
    import subprocess

    plan = rplan.build(graph_of(path))
    source = rdot.digraph(plan).source.replace(f'size="{rdot.PAGE_SIZE}"', 'size="1000,1000"')
    drawn = json.loads(subprocess.run(["dot", "-Tjson"], input=source.encode(), capture_output=True, check=True).stdout)
    real = {o["name"]: (float(o["width"]) * 72, float(o["height"]) * 72) for o in drawn["objects"] if "width" in o}
    ratios = []
    for box, (w, h) in rdot.box_sizes(plan).items():
        if any(b.id == box and b.kind == "initial" and b.parent is None for b in plan.boxes):
            w -= rdot.START_WIDTH + rdot.NODESEP * 72  # the start mark is a node of its own
        # each box within a quarter (narrow letters make a few boxes 20% narrower than estimated),
        # and all of them within a tenth, in the middle
        assert 0.75 < real[box][0] / w < 1.25 and 0.8 < real[box][1] / h < 1.25, (box, (w, h), real[box])
        ratios += [real[box][0] / w, real[box][1] / h]
    ratios.sort()
    assert 0.9 < ratios[len(ratios) // 2] < 1.1, ratios[len(ratios) // 2]


@needs_dot
def test_the_arrangement_draws_the_anakinra_chart_larger_than_two_fixed_rows(ana):
    """The page scales the drawing down; the chosen rows leave it larger than the old cut into
    two rows of equal count with the key under them."""
    import json
    import subprocess

    plan = rplan.build(ana)

    def scale(source: str) -> float:
        source = source.replace(f'size="{rdot.PAGE_SIZE}"', 'size="1000,1000"')
        bb = json.loads(subprocess.run(["dot", "-Tjson"], input=source.encode(), capture_output=True, check=True).stdout)["bb"]
        w, h = (float(v) for v in bb.split(",")[2:])
        return min(10.6 * 72 / w, 7.6 * 72 / h)

    chosen = scale(rdot.digraph(plan).source)
    fixed = rdot.arrangement
    half = (len(plan.order) + 1) // 2
    try:
        from rxwatch.render import layout

        rdot.arrangement = lambda p, labels=None: layout.Arrangement([p.order[:half], p.order[half:]], False, 1, 0.0)
        old = scale(rdot.digraph(plan).source)
    finally:
        rdot.arrangement = fixed
    assert chosen > old * 1.05, (chosen, old)


# ------------------------------------------------------------ tones


def test_declared_severities_colour_the_states(ana, lef):
    assert tones(ana) == {
        "baseline": 0, "baseline_abnormal": 2, "early_check": 0, "maintenance": 0, "mild_elevation": 1,
        "moderate_elevation": 2, "persistent_elevation": 2, "stopped": 3, "off_treatment_followup": 1, "off_treatment": 0,
    }
    assert tones(lef) == {
        "baseline": 0, "contraindicated": 2, "first_six_months": 0, "long_term": 0, "confirm_reduce": 1, "reduced": 2,
        "interrupted": 3, "other_cause": 1, "washout": 3, "stopped_for_good": 0, "washout_followup": 1,
    }
    assert rplan.build(ana).severity_declared


def without_severity(g):
    g = copy.deepcopy(g)
    for _, d in g.nodes(data=True):
        d["severity"] = "none"
    return g


def test_without_declared_severities_they_come_from_the_rules_not_the_names(ana, lef):
    assert tones(without_severity(ana)) == {
        "baseline": 0, "baseline_abnormal": 0, "early_check": 0, "maintenance": 0, "mild_elevation": 1,
        "moderate_elevation": 1, "persistent_elevation": 1, "stopped": 3, "off_treatment_followup": 3, "off_treatment": 0,
    }
    assert tones(without_severity(lef)) == {
        "baseline": 0, "contraindicated": 0, "first_six_months": 0, "long_term": 0, "confirm_reduce": 2, "reduced": 2,
        "interrupted": 0, "other_cause": 0, "washout": 3, "stopped_for_good": 0, "washout_followup": 3,
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
    # the viewer's data and script, the panel form's data and script: nothing else
    assert re.findall(r"<script[^>]*>", page) == ['<script type="application/json" id="rxwatch-data">', "<script>",
                                                  '<script type="application/json" id="rxwatch-panelform">', "<script>"]


# ------------------------------------------------------------ one patient's path


def test_the_overlay_numbers_the_path_with_dates(trk, trk_trace):
    ov = overlay(trk, trk_trace)
    assert [(v.number, v.date) for v in ov.visits["watch"]] == [(0, "2025-01-06"), (2, "2025-03-01")]
    assert [(v.number, v.date) for v in ov.visits["high"]] == [(1, "2025-01-10")]
    assert [v.number for v in ov.taken["watch/1/0"]] == [3] and ov.final_state == "stopped"
    assert [s.get("number") for s in ov.steps if s["type"] == "transition"] == [1, 2, 3]


def test_the_overlay_keeps_unassessable_days_and_deviations_where_they_happened(trk, trk_trace):
    ov = overlay(trk, trk_trace)
    assert [(u.date, u.missing) for u in ov.unassessed[("watch", 0)]] == [("2025-01-08", ["ALT", "AST"])]
    assert [(d.date, d.kind) for d in ov.deviations["watch"]] == [("2025-01-08", "incomplete")]
    assert [(d.date, d.kind) for d in ov.deviations["high"]] == [("2025-01-18", "overdue"), ("2025-02-15", "still_overdue")]
    text = " ".join(render(trk, "dot", trace=trk_trace).decode().replace('<BR ALIGN="LEFT"/>', " ").split())
    assert "not assessable · 2025-01-08 (no ALT, AST)" in text
    assert "! Order ALT and AST: overdue 2025-01-18; still overdue 2025-02-15" in text
    assert "! Order ALT and AST: incomplete 2025-01-08" in text
    assert "an order overdue, still overdue or incomplete on that path" in text  # the legend
    assert rdot.DEVIATION in text


def test_an_unassessable_step_without_its_rule_is_placed_by_its_trigger(trk, trk_trace):
    t = copy.deepcopy(trk_trace)
    step = next(s for s in t["steps"] if s["type"] == "unassessable")
    del step["rule"]
    assert set(overlay(trk, t).unassessed) == {("watch", 0)}


def test_without_rule_keys_the_transition_is_matched_by_its_guard(trk, trk_trace):
    t = copy.deepcopy(trk_trace)
    for s in t["steps"]:
        s.pop("rule", None)
    ov = overlay(trk, t)
    assert set(ov.taken) == {"watch/0/0", "high/0/0", "watch/1/0"}


def step_of(t, kind):
    return next(i for i, s in enumerate(t["steps"]) if s["type"] == kind)


@pytest.mark.parametrize("mutate, message, where", [
    (lambda t: t["protocol"].update(name="other"), "this trace is from protocol 'other'", ("protocol", "name")),
    (lambda t: t["protocol"].update(version="0.9"), "version 0.9", ("protocol", "version")),
    (lambda t: t.pop("steps"), "missing 'steps'", ()),
    (lambda t: t.update(steps={"a": 1}), "'steps' must be a list of steps", ("steps",)),
    (lambda t: t["steps"][0].update(state="nowhere"), "'nowhere' is not a state", ("steps", 0, "state")),
    (lambda t: t["steps"][step_of(t, "transition")].update(rule="watch/9/9"), "'watch/9/9' is not a rule", None),
    (lambda t: t["steps"][step_of(t, "transition")].update(rule="high/0/0"), "leads from 'high' to 'watch'", None),
    (lambda t: t["steps"][3].update(date="2024-01-01"), "dates never decrease", ("steps", 3, "date")),
    (lambda t: t["steps"][0].update(type="jump"), "unknown step type 'jump'", ("steps", 0, "type")),
    (lambda t: t["steps"].__setitem__(0, "enter"), "a step is an object", ("steps", 0)),
    (lambda t: t.update(final_state="limbo"), "'limbo' is not a state", ("final_state",)),
    # the v2 steps
    (lambda t: t["steps"][step_of(t, "unassessable")].update(missing=["ALT", "XYZ"]), "'XYZ' is not a lab", None),
    (lambda t: t["steps"][step_of(t, "unassessable")].update(missing="ALT"), "'missing' must be a list of lab names", None),
    (lambda t: t["steps"][step_of(t, "unassessable")].update(state="limbo"), "'limbo' is not a state", None),
    (lambda t: t["steps"][step_of(t, "unassessable")].update(rule="high/0/0"), "'high/0/0' is not a rule of state 'watch'", None),
    (lambda t: (t["steps"][step_of(t, "unassessable")].pop("rule"), t["steps"][step_of(t, "unassessable")].update(trigger="timer")),
     "state 'watch' has no timer rules", None),
    (lambda t: t["steps"][step_of(t, "deviation")].update(action="nothing"), "'nothing' is not an action", None),
    (lambda t: t["steps"][step_of(t, "deviation")].pop("kind"), "missing 'kind'", None),
    (lambda t: t["steps"][step_of(t, "panel")].update(results=[{"value": 3}]), "a result is an object with a 'lab'", None),
    (lambda t: t["steps"][step_of(t, "panel")].update(replaced="ALT"), "'replaced' must be a list of results", None),
    (lambda t: t["steps"][step_of(t, "action")].update(options="order"), "'options' must be a list of action names", None),
    # fuzz, seed 374431418: an action step whose action is a number was an internal error of the lab chart
    (lambda t: t["steps"][step_of(t, "action")].update(action=-1), "'action' must be text, not int", None),
    (lambda t: t["steps"][step_of(t, "action")].update(action="nothing"), "'nothing' is not an action", None),
    (lambda t: t["steps"][step_of(t, "action")].pop("action"), "missing 'action'", None),
    (lambda t: t["steps"][step_of(t, "transition")].update(values=["2025-01-06"]), "'values' must be an object", None),
    (lambda t: t["steps"][step_of(t, "transition")].update(track=["a"]), "'track' must be text, not list", None),
    (lambda t: t["steps"][step_of(t, "transition")].update(stay="yes"), "'stay' must be true or false", None),
    (lambda t: t["steps"][step_of(t, "transition")].update(line=True), "'line' must be a line number", None),
])
def test_a_trace_that_does_not_fit_says_where(trk, trk_trace, mutate, message, where):
    t = copy.deepcopy(trk_trace)
    mutate(t)
    with pytest.raises(TraceError) as e:
        render(trk, "dot", trace=t)
    assert message in e.value.message
    if where is not None:
        assert e.value.where == where
    else:
        assert e.value.where[:1] == ("steps",)


def test_a_trace_that_is_not_an_object_is_refused(trk):
    with pytest.raises(TraceError):
        overlay(trk, ["steps"])


def test_locate_finds_the_line_of_a_step():
    text = '{\n "protocol": {"name": "x"},\n "steps": [\n  {"date": "d", "type": "enter"},\n  {"date": "d",\n   "to": "zz"}\n ]\n}'
    assert locate(text, ("steps", 1, "to")) == 6
    assert locate(text, ("protocol", "name")) == 2
    assert locate(text, ()) is None
    assert locate("not json at all: [", ("steps", 0)) is None


def test_the_traced_chart_draws_the_path_and_fades_the_rest(trk, trk_trace):
    plain = render(trk, "dot").decode()
    traced = render(trk, "dot", trace=trk_trace).decode()
    assert rdot.PATH not in plain and rdot.FADED_LINE not in plain
    assert rdot.PATH in traced
    assert "entered start · 2025-01-06, 2 · 2025-03-01" in traced
    assert "here at the end (2025-03-31)" in traced
    assert "the path of patient trk-1" in traced
    # a trace never moves a box: the rows are the plain chart's
    rows = lambda src: [line for line in src.splitlines() if "rank=same" in line or line.strip().startswith("subgraph")]  # noqa: E731
    assert rows(plain) == rows(traced)


def test_a_real_trace_of_a_shipped_protocol_draws(ana):
    from rxwatch.inputs import yamlsrc
    from rxwatch.simulator.engine import simulate
    from rxwatch.inputs.yamljson import parse_timeline

    timeline = """\
patient: {id: p2, facts: {indication: rheumatoid_arthritis}}
start: 2025-01-06
until: 2025-06-30
events:
  - {date: 2025-01-08, lab: TBIL, value: 0.5, unit: mg/dL}
  - {date: 2025-01-09, lab: ALT, value: 28, unit: U/L}
  - {date: 2025-01-09, lab: AST, value: 25, unit: U/L}
  - {date: 2025-01-09, lab: TBIL, value: 0.5, unit: mg/dL}
  - {date: 2025-01-09, lab: INR, value: 1.0}
"""
    trace = simulate(ana, parse_timeline(yamlsrc.load(timeline, "p2.yaml"), "p2.yaml", ana.graph))
    kinds = {s["type"] for s in trace["steps"]} | {s.get("kind") for s in trace["steps"]}
    assert {"unassessable", "incomplete", "overdue", "still_overdue"} <= kinds
    text = " ".join(render(ana, "dot", trace=trace).decode().replace('<BR ALIGN="LEFT"/>', " ").split())
    assert "not assessable · 2025-01-08" in text and "still overdue" in text
