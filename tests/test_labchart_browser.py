"""The lab chart in the viewer, in a real headless browser (Chromium driven by Selenium, as
tests/test_audit_browser.py): the page loads with no console error, the chart is there above the
flowchart, a point's hover box is hidden until the pointer is on the point and then shows that
result and the rule it fired. Skipped, saying why, only when no Chromium, chromedriver or
Graphviz is installed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rxwatch.cli.main import main

from browserkit import BROWSER, CHROMEDRIVER, chrome
ROOT = Path(__file__).resolve().parents[1]
ANAKINRA = ROOT / "protocols" / "anakinra_hepatotoxicity.rxw"
LEFLUNOMIDE = ROOT / "protocols" / "leflunomide_hepatotoxicity.rxw"
DEMO = ROOT / "docs" / "examples" / "anakinra-moderate.yaml"
JORDAN = ROOT / "tests" / "data" / "fhir-r4" / "Jordan_Cruickshank_5de38439-d320-46d3-854d-3c098e88de4c.json"

pytestmark = pytest.mark.skipif(
    not (CHROMEDRIVER.exists() and BROWSER and shutil.which("dot")),
    reason="needs chromium, /usr/bin/chromedriver and Graphviz's dot (`apt-get install chromium chromium-driver graphviz`)",
)


@pytest.fixture(scope="module")
def driver():
    yield from chrome()


def viewer(capsys, tmp_path: Path, protocol: Path, timeline: Path) -> tuple[Path, dict]:
    trace = tmp_path / "trace.json"
    page = tmp_path / "viewer.html"
    assert main(["simulate", str(protocol), str(timeline), "-f", "json", "--results", "-o", str(trace)]) == 0
    assert main(["render", str(protocol), "--trace", str(trace), "-o", str(page)]) == 0, capsys.readouterr().err
    return page, json.loads(trace.read_text(encoding="utf-8"))


def hover(driver, point) -> str:
    """Move the pointer onto a point; the text of its hover box (which must then be shown)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    tip = driver.find_element(By.ID, point.get_attribute("id") + "-tip")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", point)
    ActionChains(driver).move_to_element(point).perform()
    assert tip.is_displayed()
    return tip.text


@pytest.mark.parametrize("case", ["example", "fhir"])
def test_hovering_a_point_shows_its_result_and_the_rule_it_fired(driver, capsys, tmp_path, case):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    protocol, timeline = (ANAKINRA, DEMO) if case == "example" else (LEFLUNOMIDE, JORDAN)
    page, trace = viewer(capsys, tmp_path, protocol, timeline)
    driver.get_log("browser")
    driver.get(page.as_uri())
    assert not [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    chart = driver.find_element(By.ID, "labchart")
    assert chart.is_displayed()
    flow = driver.find_element(By.ID, "chart")
    assert chart.location["y"] < flow.location["y"]  # above the flowchart
    points = driver.find_elements(By.CSS_SELECTOR, "#labchart g.lc-pt")
    results = [(s["date"], r["lab"]) for s in trace["steps"] if s["type"] == "panel" for r in s["results"]]
    assert sorted((p.get_attribute("data-date"), p.get_attribute("data-lab")) for p in points) == sorted(results)
    tips = driver.find_elements(By.CSS_SELECTOR, "#labchart g.lc-tip")
    assert tips and not any(t.is_displayed() for t in tips)  # nothing shown before the pointer comes
    if case == "example":
        (alt,) = [p for p in points if p.get_attribute("data-date") == "2025-02-20" and p.get_attribute("data-lab") == "ALT"]
        text = hover(driver, alt)
        rule = next(s["rule"] for s in trace["steps"] if s["type"] == "transition" and s["to"] == "moderate_elevation")
        assert "ALT 160 U/L = 4× ULN (40 U/L) on 2025-02-20" in text
        assert "Moderate elevation: hold or reduce anakinra" in text and rule in text
    else:
        # Jordan's one gallstones episode: ALT 142.27 IU/L (Synthea writes 15 decimals: rounded, marked ≈)
        (alt,) = [p for p in points if p.get_attribute("data-lab") == "ALT"]
        text = hover(driver, alt)
        rule = next(s for s in trace["steps"] if s["type"] == "transition" and s["trigger"] == "panel")
        assert text.startswith(f"ALT ≈142.267 U/L = ≈3.557× ULN (40 U/L) on {alt.get_attribute('data-date')}")
        assert f"{rule['because']} → Leflunomide is contraindicated (rule {rule['rule']}" in text
    # the pointer leaves: the box hides again
    ActionChains(driver).move_to_element(driver.find_element(By.ID, "title")).perform()
    assert not any(t.is_displayed() for t in driver.find_elements(By.CSS_SELECTOR, "#labchart g.lc-tip"))
    assert not [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
