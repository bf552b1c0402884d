"""The HTML viewer in a real headless browser (Chromium driven by Selenium).

The page must load with no console errors, show a state's rules and full sources when it is
clicked, list a patient's steps and highlight the one clicked, and keep injected markup inert:
a protocol whose text holds `<script>` and `"onmouseover=` shows that text literally and runs
nothing. Skipped, saying why, only when no Chromium or chromedriver is installed (the Makefile's
`browser` target installs them).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rxwatch.compiler import compile_file, compile_source
from rxwatch.render import render

from browserkit import BROWSER, CHROMEDRIVER, chrome

pytestmark = pytest.mark.skipif(
    not (CHROMEDRIVER.exists() and BROWSER and shutil.which("dot")),
    reason="needs chromium, /usr/bin/chromedriver and Graphviz's dot (`make browser graphviz`, or "
    "`apt-get install chromium chromium-driver graphviz`)",
)

INJECTED = r'''
protocol injected
  title "Injected <b>title</b> & co"
  version "1"
  status draft
  description "A </script><script>window.__pwned=5</script> description"

source s1 "A <img src=x onerror=window.__pwned=3> source"
  kind ai-summary
  url "javascript:window.__pwned=4"
  note "<script>window.__pwned=6</script>"
source s2 "A label"
  kind label
  url "https://example.org/label?a=1&b=2"

lab ALT "alanine" unit "U/L" uln 40
action order "Order <script>window.__pwned=1</script> labs" orders ALT

initial state start "<script>window.__pwned=1</script> \"onmouseover=window.__pwned=2 x=\"" {
  on entry { do order due within 14 days cite s1, s2 }
  on panel {
    when xuln(ALT) > 3 -> done cite s1
    otherwise stay cite s2
  }
}
terminal state done "done & <i>dusted</i>"
'''

# One patient on the shipped protocol, replayed by the simulator: a baseline day with bilirubin
# only (an incomplete result, a panel not assessable), a normal baseline the next day, a
# moderate elevation at the first check, then no result: overdue, and reminders every 4 weeks.
TIMELINE = """\
patient: {id: case-07, facts: {indication: rheumatoid_arthritis}}
start: 2025-01-06
until: 2025-06-30
events:
  - {date: 2025-01-08, lab: TBIL, value: 0.5, unit: mg/dL}
  - {date: 2025-01-09, lab: ALT, value: 28, unit: U/L}
  - {date: 2025-01-09, lab: AST, value: 25, unit: U/L}
  - {date: 2025-01-09, lab: TBIL, value: 0.5, unit: mg/dL}
  - {date: 2025-01-09, lab: INR, value: 1.0}
  - {date: 2025-02-20, lab: ALT, value: 160, unit: U/L}
  - {date: 2025-02-20, lab: AST, value: 130, unit: U/L}
  - {date: 2025-02-20, lab: TBIL, value: 0.9, unit: mg/dL}
  - {date: 2025-02-20, lab: INR, value: 1.1}
"""


def replayed(graph) -> dict:
    from rxwatch.inputs import yamlsrc
    from rxwatch.simulator.engine import simulate
    from rxwatch.inputs.yamljson import parse_timeline

    return simulate(graph, parse_timeline(yamlsrc.load(TIMELINE, "case-07.yaml"), "case-07.yaml", graph.graph))


@pytest.fixture(scope="module")
def driver():
    yield from chrome()


def open_page(driver, tmp_path: Path, page: bytes, name: str = "viewer.html"):
    path = tmp_path / name
    path.write_bytes(page)
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(path.as_uri())
    return path


def errors(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def click_state(driver, state: str):
    from selenium.webdriver.common.by import By

    # click the box's outline: an SVG <g> itself has no size of its own to click
    el = driver.find_element(By.CSS_SELECTOR, f'g[id="state_{state}"] polygon, g[id="state_{state}"] path')
    driver.execute_script(
        "arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", el)
    return driver.find_element(By.ID, "details")


@pytest.fixture(scope="module")
def anakinra_graph():
    # the v2 anakinra before statecharts (tests/golden/anakinra_v2_flat.rxw); the shipped one, with
    # its tracks, is opened by tests/test_viewer_statechart.py
    return compile_file(str(Path(__file__).parent / "golden" / "anakinra_v2_flat.rxw"), verify=False).graph


def test_the_page_loads_without_console_errors(driver, tmp_path, anakinra_graph):
    from selenium.webdriver.common.by import By

    open_page(driver, tmp_path, render(anakinra_graph, "html"))
    assert errors(driver) == []
    assert "Anakinra: liver monitoring" in driver.find_element(By.ID, "title").text
    ids = set(driver.execute_script("return Array.from(document.querySelectorAll('svg g.node')).map(g => g.id)"))
    assert {f"state_{s}" for s in anakinra_graph.nodes} <= ids


def test_clicking_a_state_shows_its_rules_and_full_sources(driver, tmp_path, anakinra_graph):
    from selenium.webdriver.common.by import By

    open_page(driver, tmp_path, render(anakinra_graph, "html"))
    panel = click_state(driver, "stopped")
    text = panel.text
    assert "Significant liver injury: anakinra stopped" in text
    assert "Lab results" in text and "off_treatment" in text
    assert "LiverTox (NIH, NBK548615): Anakinra" in text  # a source's full title
    assert "Canna et al., Pediatric Rheumatology 2009;7:21" in text
    assert "AI summary, pending human review" in text
    unreviewed = panel.find_elements(By.CSS_SELECTOR, "ul.sources li.unreviewed")
    assert unreviewed and "Hepatotoxicity risks associated with anakinra" in unreviewed[0].text
    hrefs = [a.get_attribute("href") for a in panel.find_elements(By.CSS_SELECTOR, "ul.sources a")]
    assert "https://www.ncbi.nlm.nih.gov/books/NBK548615/" in hrefs
    assert "https://doi.org/10.1186/1546-0096-7-21" in hrefs
    assert errors(driver) == []


def test_clicking_an_arrow_shows_the_rule(driver, tmp_path, anakinra_graph):
    from selenium.webdriver.common.by import By

    open_page(driver, tmp_path, render(anakinra_graph, "html"))
    arrow = driver.execute_script(
        "var d = JSON.parse(document.getElementById('rxwatch-data').textContent);"
        "return d.rules['early_check/0/3'].arrow;")
    path = driver.find_element(By.CSS_SELECTOR, f'g[id="{arrow}"] path')
    driver.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", path)
    text = driver.find_element(By.ID, "details").text
    assert "early_check → moderate_elevation" in text
    assert "as written: moderate" in text
    assert "early_check/0/3" in text


def test_zoom_buttons_change_the_view_and_fit_restores_it(driver, tmp_path, anakinra_graph):
    from selenium.webdriver.common.by import By

    open_page(driver, tmp_path, render(anakinra_graph, "html"))
    box = lambda: driver.execute_script("return document.querySelector('#chart svg').getAttribute('viewBox')")  # noqa: E731
    home = box()
    driver.find_element(By.ID, "zoom-in").click()
    zoomed = box()
    assert float(zoomed.split()[2]) < float(home.split()[2])
    driver.find_element(By.ID, "zoom-fit").click()
    assert box() == home


def test_injected_markup_stays_inert_and_reads_literally(driver, tmp_path):
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.by import By

    result = compile_source(INJECTED, "injected.rxw", verify=False)
    assert result.ok, result.diagnostics
    open_page(driver, tmp_path, render(result.graph, "html"), "injected.html")
    node = driver.find_element(By.CSS_SELECTOR, 'g[id="state_start"] polygon')
    ActionChains(driver).move_to_element(node).perform()  # would fire an injected onmouseover
    panel = click_state(driver, "start")
    assert driver.execute_script("return window.__pwned === undefined")
    text = panel.text
    assert '<script>window.__pwned=1</script> "onmouseover=window.__pwned=2 x="' in text
    assert "Order <script>window.__pwned=1</script> labs" in text
    assert "A <img src=x onerror=window.__pwned=3> source" in text
    assert "<script>window.__pwned=6</script>" in text  # the note, as text
    # a javascript: URL is never a link; an https one is
    hrefs = [a.get_attribute("href") for a in panel.find_elements(By.CSS_SELECTOR, "a")]
    assert hrefs == ["https://example.org/label?a=1&b=2"]
    # nothing injected became an element
    assert driver.find_elements(By.CSS_SELECTOR, "#details script, #details img, #details b, svg script, svg img") == []
    # the chart itself shows the text as text too
    svg_text = driver.execute_script("return document.querySelector('#chart svg').textContent")
    assert "<script>window.__pwned=1</script>" in svg_text
    assert "Injected <b>title</b> & co" in driver.find_element(By.ID, "title").text
    assert driver.execute_script("return window.__pwned === undefined")
    assert errors(driver) == []


def test_a_traced_patient_s_steps_are_listed_and_a_click_highlights_one(driver, tmp_path, anakinra_graph):
    from selenium.webdriver.common.by import By

    trace = replayed(anakinra_graph)
    open_page(driver, tmp_path, render(anakinra_graph, "html", trace=trace))
    assert errors(driver) == []
    steps = driver.find_elements(By.CSS_SELECTOR, "#trace button.step")
    assert len(steps) == len(trace["steps"])
    assert "Patient case-07" in driver.find_element(By.ID, "trace").text
    transition = next(s for s in steps if "early_check → moderate_elevation" in s.text)
    transition.click()
    rule = next(s["rule"] for s in trace["steps"] if s["type"] == "transition" and s["to"] == "moderate_elevation")
    arrow = driver.execute_script(
        "var d = JSON.parse(document.getElementById('rxwatch-data').textContent);"
        f"return d.rules['{rule}'].arrow;")
    selected = driver.execute_script("return Array.from(document.querySelectorAll('g.selected')).map(g => g.id)")
    assert arrow in selected and "state_moderate_elevation" in selected
    assert "early_check → moderate_elevation on 2025-02-20" in driver.find_element(By.ID, "details").text
    enter = next(s for s in steps if "enter baseline" in s.text)
    enter.click()
    assert driver.execute_script("return Array.from(document.querySelectorAll('g.selected')).map(g => g.id)") == ["state_baseline"]


def test_the_v2_steps_read_in_words_and_an_unassessable_day_shows_what_was_missing(driver, tmp_path, anakinra_graph):
    from selenium.webdriver.common.by import By

    trace = replayed(anakinra_graph)
    # the contract's panel step (v2), as a trace may carry it
    at = next(i for i, s in enumerate(trace["steps"]) if s["date"] == "2025-01-09")
    trace["steps"].insert(at, {"date": "2025-01-09", "type": "panel", "results": [
        {"lab": "ALT", "value": 28, "unit": "U/L", "uln": 40, "xuln": 0.7, "xuln_exact": "0.7"},
        {"lab": "TBIL", "value": 0.5, "unit": "mg/dL", "uln": 1.2, "xuln": 0.4166666666666667, "xuln_exact": "5/12",
         "from": "2025-01-08"}],
        "replaced": [{"lab": "ALT", "value": 30, "unit": "U/L"}]})
    open_page(driver, tmp_path, render(anakinra_graph, "html", trace=trace))
    assert errors(driver) == []
    texts = [s.text for s in driver.find_elements(By.CSS_SELECTOR, "#trace button.step")]
    assert any("incomplete: order_lfts" in t and "no ALT, AST" in t for t in texts)
    assert any(t.startswith("2025-01-08 not assessable in baseline (lab results): no ALT, AST") for t in texts)
    assert any("results: ALT 28 U/L (0.7× ULN), TBIL 0.5 mg/dL (≈0.42× ULN) from 2025-01-08 (replaced: ALT 30 U/L)" in t
               for t in texts)
    assert any("overdue: order_lfts" in t for t in texts) and any("still overdue: order_lfts" in t for t in texts)
    step = next(s for s in driver.find_elements(By.CSS_SELECTOR, "#trace button.step-unassessable"))
    step.click()
    assert driver.execute_script("return Array.from(document.querySelectorAll('g.selected')).map(g => g.id)") == ["state_baseline"]
    missing = driver.find_elements(By.CSS_SELECTOR, "#details div.missing")
    assert missing and "Results missing: both ALT and AST → not assessable" in missing[0].text
    assert "they check for results of TBIL" in missing[0].text
    assert errors(driver) == []


def test_an_option_a_preference_took_says_so(driver, tmp_path, anakinra_graph):
    from selenium.webdriver.common.by import By

    from rxwatch.inputs import yamlsrc
    from rxwatch.inputs.yamljson import parse_timeline
    from rxwatch.simulator.engine import Machine

    tl = parse_timeline(yamlsrc.load(TIMELINE, "case-07.yaml"), "case-07.yaml", anakinra_graph.graph)
    for prefer, says in (("reduce_dose",), True), ((), False):
        trace = Machine(anakinra_graph).run(tl, prefer=prefer)
        open_page(driver, tmp_path, render(anakinra_graph, "html", trace=trace))
        texts = [s.text for s in driver.find_elements(By.CSS_SELECTOR, "#trace button.step")]
        (chosen,) = [t for t in texts if "(one of hold_anakinra, reduce_dose" in t]
        assert ("do reduce_dose" if says else "do hold_anakinra") in chosen
        assert ("the preferred option, no choice recorded" in chosen) is says
        assert errors(driver) == []


def test_the_settings_and_what_fulfils_each_order_are_shown(driver, tmp_path, anakinra_graph):
    from selenium.webdriver.common.by import By

    open_page(driver, tmp_path, render(anakinra_graph, "html"))
    settings = driver.find_element(By.ID, "settings").text
    assert "Results valid for 3 days" in settings and "Overdue orders flagged again every 4 weeks" in settings
    orders = driver.find_element(By.CSS_SELECTOR, "#details section.orders").text
    assert "Order a liver panel (ALT, AST, total bilirubin, ALP, INR)" in orders
    assert "orders ALT, AST, TBIL, ALP, INR; fulfilled by ALT or AST" in orders
    panel = click_state(driver, "baseline")
    assert "fulfilled by ALT or AST" in panel.find_element(By.CSS_SELECTOR, "ul.actions").text
    assert errors(driver) == []


def test_a_malformed_trace_field_never_breaks_the_viewer(driver, tmp_path, anakinra_graph):
    """A trace from elsewhere is checked against the trace contract before anything is drawn (a
    window that is not two dates is refused), and the shapes the contract leaves open (extension
    keys) never break the page: it still lists every step."""
    from selenium.webdriver.common.by import By

    from rxwatch.render.trace import TraceError

    trace = replayed(anakinra_graph)
    bad = {"date": "2025-06-30", "type": "deviation", "kind": "incomplete", "action": "order_lfts",
           "window": "soon", "missing": "ALT"}
    with pytest.raises(TraceError, match="'window' must be"):
        render(anakinra_graph, "html", trace={**trace, "steps": trace["steps"] + [bad]})
    with pytest.raises(TraceError, match="'ordered' must be an ISO date"):
        render(anakinra_graph, "html", trace={**trace, "steps": trace["steps"] + [
            {**bad, "window": ["2025-06-01", "2025-06-29"], "missing": ["ALT"], "ordered": 12}]})
    trace["steps"].append({"date": "2025-06-30", "type": "deviation", "kind": "incomplete", "action": "order_lfts",
                           "window": ["2025-06-01", "2025-06-29"], "note": {"odd": [1, {"x": None}]},
                           "reviewed": 12})
    open_page(driver, tmp_path, render(anakinra_graph, "html", trace=trace))
    assert len(driver.find_elements(By.CSS_SELECTOR, "#trace button.step")) == len(trace["steps"])
    assert errors(driver) == []


def test_a_state_shows_the_warnings_the_protocol_accepts_with_their_reasons(driver, tmp_path):
    from selenium.webdriver.common.by import By

    text = (Path(__file__).resolve().parent / "golden" / "anakinra_v2_flat.rxw").read_text(encoding="utf-8")
    text = text.replace('initial state baseline "Baseline liver tests before the first dose" {',
                        'initial state baseline "Baseline liver tests before the first dose" {\n'
                        '  accept W630 "<b>reviewed</b> for this state"', 1)
    graph = compile_source(text, "acc.rxw", verify=False).graph
    open_page(driver, tmp_path, render(graph, "html"))
    panel = click_state(driver, "baseline")
    items = [li.text for li in panel.find_elements(By.CSS_SELECTOR, "section.accepts li")]
    assert any(t.startswith("W605 The pathway (v2) cites only seed-review") for t in items)  # the whole protocol's
    assert any(t.startswith("W630 <b>reviewed</b> for this state") for t in items)  # this state's, as text
    assert not panel.find_elements(By.CSS_SELECTOR, "section.accepts b")
    other = click_state(driver, "maintenance")
    assert not any("W630" in li.text for li in other.find_elements(By.CSS_SELECTOR, "section.accepts li"))
    assert errors(driver) == []
