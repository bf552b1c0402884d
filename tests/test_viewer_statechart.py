"""The HTML viewer of a statechart, in a real headless browser: a track's frame, a rule block's
box and a parallel state's own box show what they are when clicked; a choice lists its
alternatives with where each leads; a patient's step through a track highlights it.
(Skipped, saying why, as tests/test_viewer_browser.py is.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import PROTOCOLS_DIR
from rxwatch.compiler import compile_file
from rxwatch.render import render
from test_viewer_browser import click_state, driver, errors, open_page, pytestmark  # noqa: F401 - the fixture and the skip

FIXTURE = Path(__file__).parent / "golden" / "statechart.rxw"

TIMELINE = """\
patient: {id: sc-1}
start: 2025-01-01
until: 2025-06-30
events:
  - {date: 2025-01-05, lab: ALT, value: 30, unit: U/L}
  - {date: 2025-02-01, lab: ANC, value: 800, unit: /mm3}
"""


@pytest.fixture(scope="module")
def graph():
    return compile_file(str(FIXTURE), verify=False).graph


def click(driver, selector: str):
    from selenium.webdriver.common.by import By

    el = driver.find_element(By.CSS_SELECTOR, selector)
    driver.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", el)
    return driver.find_element(By.ID, "details").text


def test_a_track_a_block_and_a_parallel_state_explain_themselves(driver, tmp_path, graph):
    from selenium.webdriver.common.by import By

    open_page(driver, tmp_path, render(graph, "html"), "statechart.html")
    assert errors(driver) == []
    text = click(driver, 'g[id="cluster_neutrophils"] path, g[id="cluster_neutrophils"] polygon')
    assert "Track: Neutrophils" in text and "a track of on_treatment" in text
    assert "anc_routine — Neutrophils: routine counts" in text and "anc_low — Neutropenia: interrupt" in text
    text = click(driver, 'g[id="block_liver_grading"] polygon, g[id="block_liver_grading"] path')
    assert "Rule block: Grading of ALT" in text and "used by liver_routine, liver_watch" in text
    assert "ALT > 5× ULN" in text and "→ stopped" in text
    assert "[2: ALT increased, grade 3]" in text  # a citation's locator, whole (the chart cuts long ones)
    assert "[1: Dosing]" in driver.find_element(By.ID, "settings").text
    text = click_state(driver, "on_treatment").text
    assert "holds tracks that run side by side: its rules apply in all of them" in text
    assert "Event: jaundice" in text
    assert errors(driver) == []


def test_a_choice_lists_its_alternatives_and_a_use_links_to_its_block(driver, tmp_path, graph):
    from selenium.webdriver.common.by import By

    open_page(driver, tmp_path, render(graph, "html"), "statechart.html")
    panel = click_state(driver, "liver_watch")
    text = panel.text
    assert "Halve the dose (default) (asks for demo at 50 mg)" in text and "→ liver_routine" in text
    assert "Interrupt the drug (holds demo)" in text
    assert "Order ALT, due within 7 days" in text
    panel.find_element(By.CSS_SELECTOR, "button.block-link").click()
    assert "Rule block: Grading of ALT" in driver.find_element(By.ID, "details").text
    assert errors(driver) == []


def test_a_step_in_a_track_highlights_its_state(driver, tmp_path, graph):
    from selenium.webdriver.common.by import By

    from rxwatch.inputs import yamlsrc
    from rxwatch.simulator.engine import simulate
    from rxwatch.inputs.yamljson import parse_timeline

    trace = simulate(graph, parse_timeline(yamlsrc.load(TIMELINE, "sc-1.yaml"), "sc-1.yaml", graph.graph))
    open_page(driver, tmp_path, render(graph, "html", trace=trace), "statechart-trace.html")
    assert errors(driver) == []
    steps = driver.find_elements(By.CSS_SELECTOR, "#trace button.step")
    step = next(s for s in steps if "anc_routine → anc_low" in s.text)
    step.click()
    selected = driver.execute_script("return Array.from(document.querySelectorAll('g.selected')).map(g => g.id)")
    assert "state_anc_low" in selected
    assert errors(driver) == []


@pytest.mark.parametrize("path", sorted(PROTOCOLS_DIR.glob("*.rxw")), ids=lambda p: p.stem)
def test_every_shipped_protocol_loads_with_every_state_and_track_clickable(driver, tmp_path, path):
    g = compile_file(str(path), verify=False).graph
    open_page(driver, tmp_path, render(g, "html"), f"{path.stem}.html")
    assert errors(driver) == []
    ids = set(driver.execute_script("return Array.from(document.querySelectorAll('svg g.node, svg g.cluster')).map(g => g.id)"))
    for n, d in g.nodes(data=True):
        assert (f"cluster_{n}" if d.get("type") == "track" else f"state_{n}") in ids, n
    for n, d in g.nodes(data=True):
        if d.get("type") == "track":
            text = click(driver, f'g[id="cluster_{n}"] path, g[id="cluster_{n}"] polygon')
            assert f"Track: {d['description'] or n}" in text
    assert errors(driver) == []
