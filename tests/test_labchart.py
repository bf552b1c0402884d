"""The patient's lab chart (issue 14 item 1): the chart's data from a trace and the compiled
graph (render/labchart.py), `rxwatch simulate --plot` on the shipped example and the real FHIR
bundles, `--results` traces, bad --plot paths, and the chart inside the viewer's HTML."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import date
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT
from rxwatch.cli.main import main
from rxwatch.compiler import compile_source
from rxwatch.render import labchart, labchart_svg

ANAKINRA = REPO_ROOT / "protocols" / "anakinra_hepatotoxicity.rxw"
LEFLUNOMIDE = REPO_ROOT / "protocols" / "leflunomide_hepatotoxicity.rxw"
TOCILIZUMAB = REPO_ROOT / "protocols" / "tocilizumab_monitoring.rxw"
EXAMPLES = sorted((REPO_ROOT / "docs" / "examples").glob("*.yaml"))
DEMO = REPO_ROOT / "docs" / "examples" / "anakinra-moderate.yaml"
# the real FHIR bundles go with leflunomide (liver tests only: anakinra also wants an ANC at baseline)
BUNDLES = sorted((REPO_ROOT / "tests" / "data" / "fhir-r4").glob("*.json"))
TOCI_CASE = REPO_ROOT / "tests" / "scenarios" / "tocilizumab" / "05-platelets-interrupt-while-liver-reduced.yaml"


def run(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def graph_of(path: Path, text: str | None = None):
    text = path.read_text(encoding="utf-8") if text is None else text
    result = compile_source(text, str(path), verify=False)
    assert not [d for d in result.diagnostics if d.is_error]
    return result.graph


def traced(capsys, tmp_path, protocol: Path, timeline: Path) -> dict:
    out = tmp_path / "trace.json"
    status, _, err = run(capsys, "simulate", protocol, timeline, "--format", "json", "--results", "-o", out)
    assert status == 0, err
    return json.loads(out.read_text(encoding="utf-8"))


def source_thresholds(text: str, names: str) -> set[Fraction]:
    """The numbers the protocol's text compares `names` (a regex of the operands) with."""
    return {Fraction(m.group(2)) for m in re.finditer(rf"\b(?:{names})\s*(<=|>=|<|>)\s*([0-9][0-9.]*)", text)}


# ---------------------------------------------------------------------------- the chart's data

def test_the_bands_are_the_protocols_own_thresholds():
    """ALT and AST share a row (their thresholds come through `tx = max(xuln(ALT), xuln(AST))`);
    the bands are the numbers the protocol compares tx, xuln(ALT) or xuln(AST) with, in ULN;
    the neutrophils' are the numbers it compares ANC with, over the highest of them (no LLN)."""
    text = ANAKINRA.read_text(encoding="utf-8")
    graph = graph_of(ANAKINRA)
    rows, row_of, limit_of, _ = labchart._rows(graph, labchart.thresholds(graph), ["ALT", "AST", "TBIL", "ANC"])
    assert row_of["ALT"] == row_of["AST"] != row_of["TBIL"]
    liver = rows[row_of["ALT"]]
    assert liver.limit == "ULN" and liver.direction == "high"
    assert {Fraction(b.value).limit_denominator(1000) for b in liver.bands} == source_thresholds(text, r"tx|xuln\((?:ALT|AST)\)")
    bili = rows[row_of["TBIL"]]
    assert {Fraction(b.value).limit_denominator(1000) for b in bili.bands} == source_thresholds(text, r"bili|xuln\(TBIL\)")
    anc = rows[row_of["ANC"]]
    expected = source_thresholds(text, r"ANC")
    assert anc.direction == "low" and limit_of["ANC"] == max(expected)
    assert {Fraction(b.value).limit_denominator(1000) for b in anc.bands} == {v / max(expected) for v in expected}
    assert anc.limit == "1.5×10⁹/L"  # as a clinician writes it (the protocol: 10*9/L)


def test_another_threshold_in_the_protocol_is_another_band():
    """Nothing is written per protocol: the 5x ULN of the anakinra grades, made 6x, is a band at 6."""
    text = ANAKINRA.read_text(encoding="utf-8")
    assert "tx > 5" in text
    changed = text.replace("tx > 5", "tx > 6")
    graph = graph_of(ANAKINRA, changed)
    rows, row_of, _, _ = labchart._rows(graph, labchart.thresholds(graph), ["ALT"])
    values = {b.value for b in rows[row_of["ALT"]].bands}
    assert 6.0 in values and values == {float(v) for v in source_thresholds(changed, r"tx|xuln\((?:ALT|AST)\)")}


def test_labs_watched_for_low_values_are_multiples_of_the_highest_threshold(capsys, tmp_path):
    """Tocilizumab declares no LLN for the counts: ANC over 2,000/mm3 and platelets over
    100,000/mm3 (the protocol's limits nearest to normal), the zones below 1; the legend says so."""
    text = TOCILIZUMAB.read_text(encoding="utf-8")
    graph = graph_of(TOCILIZUMAB)
    chart = labchart.build(graph, traced(capsys, tmp_path, TOCILIZUMAB, TOCI_CASE))
    by_lab = {lab: row for row in chart.rows for lab in row.labs}
    for lab in ("ANC", "PLT"):
        values = source_thresholds(text, lab)
        assert by_lab[lab].direction == "low"
        assert by_lab[lab].limit.startswith(labchart.number(max(values)))
        assert {Fraction(b.value).limit_denominator(10**6) for b in by_lab[lab].bands} == {v / max(values) for v in values}
        assert all(hi <= 1 for _, hi, _ in labchart.zones(by_lab[lab]))
        assert f"{lab} ÷ {labchart.number(max(values))}" in chart.legend[0]
    plt = [p for p in chart.points if p.lab == "PLT" and p.date == date(2025, 3, 3)]
    assert plt and plt[0].multiple == pytest.approx(0.8) and "0.8× the protocol's limit 100,000 /mm³" in plt[0].text


def test_points_windows_markers_and_ribbon_follow_the_trace(capsys, tmp_path):
    graph = graph_of(ANAKINRA)
    trace = traced(capsys, tmp_path, ANAKINRA, DEMO)
    chart = labchart.build(graph, trace)
    # every result of the timeline is a point, with its multiple of the limit
    events = yaml.safe_load(DEMO.read_text(encoding="utf-8"))["events"]
    results = sorted((str(e["date"]), e["lab"]) for e in events if "lab" in e)
    assert sorted((p.date.isoformat(), p.lab) for p in chart.points) == results
    for e in events:
        if e.get("lab") == "ALT":
            (p,) = [p for p in chart.points if p.lab == "ALT" and p.date.isoformat() == str(e["date"])]
            assert p.multiple == pytest.approx(e["value"] / 40)
    # the ALT of 4x ULN names the rule its panel fired, as the trace has it
    rule = next(s for s in trace["steps"] if s["type"] == "transition" and s["to"] == "moderate_elevation")
    (alt,) = [p for p in chart.points if p.lab == "ALT" and p.date == date(2025, 2, 20)]
    assert alt.text.startswith("ALT 160 U/L = 4× ULN (40 U/L) on 2025-02-20")
    assert any(rule["rule"] in line and "Moderate elevation" in line for line in alt.rules)
    # a neutrophil count alone is not about the liver's rules
    (anc,) = [p for p in chart.points if p.lab == "ANC" and p.date == date(2025, 2, 10)]
    assert not any("liver" in line.lower() for line in anc.rules)
    # windows: the trace's orders, the overdue one marked on the day of its deviation
    orders = [(s["action"], s["window"][0], s["window"][1]) for s in trace["steps"] if s["type"] == "action" and s.get("window")]
    assert [(w.order, w.opens.isoformat(), w.due.isoformat()) for w in chart.windows] == orders
    overdue = [(s["action"], s["date"]) for s in trace["steps"] if s["type"] == "deviation" and s["kind"] == "overdue"]
    assert [(w.order, w.overdue.isoformat()) for w in chart.windows if w.overdue] == overdue
    # markers: the changes of state
    moves = [(s["date"], s["to"]) for s in trace["steps"] if s["type"] == "transition" and not s.get("stay") and s["from"] != s["to"]]
    assert [(m.date.isoformat(), m.text) for m in chart.markers if m.kind == "transition"] == \
        [(d, graph.nodes[to]["description"]) for d, to in moves]
    # the ribbon: on, reduced (the recorded choice), on again until the end
    assert [(s.status, s.start.isoformat()) for s in chart.segments] == [("on", "2025-01-08"), ("reduced", "2025-02-20"),
                                                                         ("on", "2025-03-13")]
    assert chart.segments[-1].end == date(2025, 9, 1) and "100 mg every other day" in chart.segments[1].text


def test_a_trace_without_results_draws_the_course_without_points(capsys, tmp_path):
    status, out, err = run(capsys, "simulate", ANAKINRA, DEMO, "--format", "json")
    assert status == 0, err
    plain = json.loads(out)
    assert not any(s["type"] == "panel" for s in plain["steps"])  # the default trace is as before
    chart = labchart.build(graph_of(ANAKINRA), plain)
    assert chart.points == [] and chart.rows == [] and chart.windows and chart.segments
    assert "no lab results in this trace" in labchart_svg.svg(chart)


def test_results_are_panel_steps_before_what_they_caused(capsys, tmp_path):
    trace = traced(capsys, tmp_path, ANAKINRA, DEMO)
    steps = trace["steps"]
    panels = [i for i, s in enumerate(steps) if s["type"] == "panel"]
    assert len(panels) == len({str(e["date"]) for e in yaml.safe_load(DEMO.read_text())["events"] if "lab" in e})
    first = steps[panels[0]]
    assert first["date"] == "2025-01-08" and steps[panels[0] + 1]["type"] == "transition"
    assert {"lab": "ALT", "value": 28, "unit": "U/L", "uln": 40, "xuln": 0.7, "xuln_exact": "0.7", "line": 27} in first["results"]
    dates = [s["date"] for s in steps]
    assert dates == sorted(dates)


# ---------------------------------------------------------------------------- --plot

def check_file(path: Path, fmt: str) -> None:
    data = path.read_bytes()
    if fmt == "png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width >= 1200 and height >= 600
    elif fmt == "pdf":
        assert data[:5] == b"%PDF-" and data.rstrip().endswith(b"%%EOF")
    else:
        root = ET.fromstring(data)
        assert root.tag.endswith("svg")


@pytest.mark.parametrize("fmt", labchart.FORMATS)
@pytest.mark.parametrize("timeline", EXAMPLES, ids=lambda p: p.stem)
def test_plot_of_the_shipped_examples(capsys, tmp_path, timeline, fmt):
    out = tmp_path / f"chart.{fmt}"
    status, stdout, err = run(capsys, "simulate", ANAKINRA, timeline, "--format", "json", "--plot", out)
    assert status == 0, err
    assert json.loads(stdout)["patient"]  # the trace as before, the chart beside it
    assert f"wrote {out}" in err
    check_file(out, fmt)
    if fmt == "svg":
        assert "Anakinra" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.stem.split("_")[0])
def test_plot_of_the_real_fhir_bundles(capsys, tmp_path, bundle):
    for fmt in labchart.FORMATS:
        out = tmp_path / f"chart.{fmt}"
        status, _, err = run(capsys, "simulate", LEFLUNOMIDE, bundle, "--plot", out, "-o", tmp_path / "trace.json")
        assert status == 0, err
        check_file(out, fmt)
    chart = labchart.build(graph_of(LEFLUNOMIDE), traced(capsys, tmp_path, LEFLUNOMIDE, bundle))
    trace = json.loads((tmp_path / "trace.json").read_text())
    panels = sum(s["type"] == "transition" and s["trigger"] == "panel" for s in trace["steps"])
    assert len({p.date for p in chart.points}) >= panels > 0
    assert {p.lab for p in chart.points} >= {"ALT", "AST"}


def test_an_unknown_suffix_is_a_usage_error_and_nothing_is_written(capsys, tmp_path):
    out = tmp_path / "chart.gif"
    status, stdout, err = run(capsys, "simulate", ANAKINRA, DEMO, "--plot", out)
    assert status == 2 and stdout == ""
    assert "--plot cannot tell the chart's format from the suffix '.gif'; use one of .png, .svg, .pdf" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["missing/chart.png", "folder"])
def test_an_unwritable_plot_path_is_exit_2_and_no_partial_file(capsys, tmp_path, where):
    (tmp_path / "folder").mkdir()
    out = tmp_path / where
    status, stdout, err = run(capsys, "simulate", ANAKINRA, DEMO, "--plot", out, "-o", tmp_path / "trace.json")
    assert status == 2 and "Traceback" not in err
    assert f"{out}: " in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]
    assert list((tmp_path / "folder").iterdir()) == []


def test_a_read_only_folder_is_exit_2(capsys, tmp_path):
    import os

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        status, _, err = run(capsys, "simulate", ANAKINRA, DEMO, "--plot", folder / "c.png", "-o", tmp_path / "t.json")
        assert status == 2 and "cannot write the chart there" in err
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


# ---------------------------------------------------------------------------- in the viewer

def test_the_viewer_holds_the_chart_with_every_points_hover_text(capsys, tmp_path):
    trace = traced(capsys, tmp_path, ANAKINRA, DEMO)
    status, _, err = run(capsys, "render", ANAKINRA, "--trace", tmp_path / "trace.json", "-o", tmp_path / "v.html")
    assert status == 0, err
    page = (tmp_path / "v.html").read_text(encoding="utf-8")
    chart = labchart.build(graph_of(ANAKINRA), trace)
    assert page.count('<g class="lc-pt"') == len(chart.points) == 28
    assert 'id="labchart"' in page and "<script src" not in page and "@font-face" not in page and "url(http" not in page
    m = re.search(r'<details id="labchart".*?</details>', page, re.S)
    svg = re.search(r"<svg.*</svg>", m.group(0), re.S).group(0)
    root = ET.fromstring(svg)  # well-formed, and nothing active in it
    assert not [e for e in root.iter() if e.tag.rsplit("}", 1)[-1] in ("script", "foreignObject")]
    assert not [a for e in root.iter() for a in e.attrib if a.lower().startswith("on")]
    ns = "{http://www.w3.org/2000/svg}"
    for p in chart.points:
        g = root.find(f".//{ns}g[@id='{p.id}']")
        title = g.find(f"{ns}title").text
        assert title.splitlines() == [p.text, *p.rules]
        tip = root.find(f".//{ns}g[@id='{p.id}-tip']")
        assert tip is not None and p.text in " ".join(t.text for t in tip.iter(f"{ns}text"))
    assert "ALT 160 U/L = 4× ULN (40 U/L) on 2025-02-20" in page


def test_the_viewer_without_a_trace_has_no_chart(capsys, tmp_path):
    status, _, err = run(capsys, "render", ANAKINRA, "-o", tmp_path / "v.html")
    assert status == 0, err
    assert 'id="labchart"' not in (tmp_path / "v.html").read_text(encoding="utf-8")


def test_protocol_text_in_the_chart_is_escaped():
    graph = graph_of(ANAKINRA)
    trace = {"protocol": {"name": "anakinra_hepatotoxicity"}, "patient": "<b>x</b>&", "start": "2025-01-01",
             "until": "2025-02-01", "steps": [{"date": "2025-01-02", "type": "panel",
                                               "results": [{"lab": "ALT", "value": 50, "unit": "<i>U/L</i>"}]}]}
    svg = labchart_svg.svg(labchart.build(graph, trace))
    assert "<b>" not in svg and "<i>" not in svg and "&lt;b&gt;x&lt;/b&gt;&amp;" in svg
    ET.fromstring(svg)


def test_odd_results_and_drug_records_of_a_trace_file_never_break_the_chart(capsys, tmp_path):
    """A trace from elsewhere passes the viewer's checks with shapes the contract leaves open:
    a value that is not a number is left out, a lab the protocol does not declare is drawn as
    its value, a result of 0 sits at the bottom of its row, an odd dose is no dose."""
    from rxwatch.render import render

    graph = graph_of(ANAKINRA)
    trace = traced(capsys, tmp_path, ANAKINRA, DEMO)
    trace["steps"].insert(3, {"date": "2025-01-06", "type": "panel", "results": [
        {"lab": "ALT", "value": "high"}, {"lab": "ALT", "value": 0, "uln": 0}, {"lab": "XYZ", "value": 7},
        {"lab": "AST", "value": -3}, {"lab": "AST", "value": 1e300}]})
    for s in trace["steps"]:
        if isinstance(s.get("drug"), dict):
            s["drug"]["dose"] = [1, 2]
    chart = labchart.build(graph, trace)
    odd = [p for p in chart.points if p.date == date(2025, 1, 6)]
    assert sorted(p.lab for p in odd) == ["ALT", "AST", "AST", "XYZ"]
    assert [p.floor for p in odd if p.lab == "ALT"] == [True]
    assert "XYZ as its value" in chart.legend[0]
    ET.fromstring(labchart_svg.svg(chart))
    assert labchart.draw(chart, "png")[:4] == b"\x89PNG"
    page = render(graph, "html", trace=trace).decode("utf-8")
    assert page.count('<g class="lc-pt"') == len(chart.points)


def test_the_same_inputs_draw_the_same_bytes(capsys, tmp_path):
    for fmt in labchart.FORMATS:
        outs = []
        for n in (1, 2):
            out = tmp_path / f"{n}.{fmt}"
            assert run(capsys, "simulate", ANAKINRA, DEMO, "--plot", out, "-o", tmp_path / "t.json")[0] == 0
            outs.append(out.read_bytes())
        assert outs[0] == outs[1], fmt


@pytest.mark.parametrize("lo,hi", [(0.3, 8.0), (0.05, 40.0), (0.01, 3000.0), (1e-8, 4e13), (1e-300, 1e300), (2.0, 2.5)])
def test_the_y_ticks_never_run_into_each_other(lo, hi):
    """However far a result lies from the limit (a value of 10^15 U/L is accepted), the row's
    tick labels are at least 10 px apart on the viewer's 76-px row, and 1 is one of them."""
    import math

    ticks = labchart.y_ticks(lo, hi)
    assert all(lo <= t <= hi for t in ticks)
    if lo <= 1 <= hi:
        assert 1.0 in ticks
    span = math.log10(hi) - math.log10(lo)
    gaps = [(math.log10(b) - math.log10(a)) / span * labchart_svg.ROW for a, b in zip(ticks, ticks[1:])]
    assert all(g >= 10 for g in gaps), (ticks, gaps)
    assert len(ticks) >= 2 or span < 1


def test_a_result_of_0_is_hollow_on_the_floor_and_the_legend_says_so(capsys, tmp_path):
    """ANC 0 on the floor of its row looks like a low count unless it is told apart: hollow in
    the plot as in the viewer, and the legend says what a hollow point is."""
    graph = graph_of(ANAKINRA)
    tl = tmp_path / "zero.yaml"
    tl.write_text("patient: {id: z}\nstart: 2025-01-06\nuntil: 2025-02-01\nevents:\n"
                  "  - {date: 2025-01-08, lab: ANC, value: 0}\n  - {date: 2025-01-08, lab: ALT, value: 30, unit: U/L}\n",
                  encoding="utf-8")
    chart = labchart.build(graph, traced(capsys, tmp_path, ANAKINRA, tl))
    assert [p.lab for p in chart.points if p.floor] == ["ANC"]
    assert "hollow point" in chart.legend[1]
    svg = labchart.draw(chart, "svg").decode("utf-8")
    assert "hollow point" in svg and "hover a point" not in svg  # nothing to hover in a file
    assert re.search(r'style="fill: #ffffff; stroke: #[0-9a-f]{6}; stroke-width: 1\.2"', svg)
    normal = labchart.build(graph, traced(capsys, tmp_path, ANAKINRA, DEMO))
    assert not any("hollow" in line for line in normal.legend)
    assert "hover a point" in labchart_svg.svg(normal)


def test_order_windows_beyond_the_traces_days_stay_inside_the_viewers_chart(capsys, tmp_path):
    """A trace that ends before its orders are due (one result, two days): the windows are cut
    at the chart's edges (the plot clips them; the viewer's SVG drew them past the frame)."""
    tl = tmp_path / "one.yaml"
    tl.write_text("patient: {id: one}\nstart: 2025-01-06\nevents:\n  - {date: 2025-01-08, lab: ALT, value: 28, unit: U/L}\n",
                  encoding="utf-8")
    chart = labchart.build(graph_of(ANAKINRA), traced(capsys, tmp_path, ANAKINRA, tl))
    assert chart.windows and any(w.due >= chart.end for w in chart.windows)
    svg = labchart_svg.svg(chart)
    right = labchart_svg.W - labchart_svg.RIGHT
    rects = re.findall(r'<g class="lc-win[^"]*"><title>[^<]*</title><rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', svg)
    assert rects
    for x, w in rects:
        assert labchart_svg.LEFT <= float(x) and float(x) + float(w) <= right + 0.05, (x, w)


def test_units_are_written_as_a_clinician_writes_them(capsys, tmp_path):
    """The chart's words for UCUM units: `10*9/L` read as '1.5 10*9/L' (ten times nine?)."""
    assert labchart.quantity("1.5", "10*9/L") == "1.5×10⁹/L"
    assert labchart.quantity("4", "10*3/uL") == "4×10³/µL"
    assert labchart.quantity("10", "umol/L") == "10 µmol/L" and labchart.quantity("40", "U/L") == "40 U/L"
    assert labchart.quantity("100,000", "/mm3") == "100,000 /mm³" and labchart.quantity("0.7", "") == "0.7"
    chart = labchart.build(graph_of(ANAKINRA), traced(capsys, tmp_path, ANAKINRA, DEMO))
    words = " ".join(chart.legend) + " ".join(p.text for p in chart.points) + " ".join(b.label for r in chart.rows for b in r.bands)
    assert "10*9" not in words and "ANC ÷ 1.5×10⁹/L" in words and "ANC 3.5×10⁹/L" in words
