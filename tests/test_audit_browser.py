"""The audit report in a real headless browser (Chromium driven by Selenium), as
tests/test_viewer_browser.py opens the viewer.

The report must load with no console error and no script of its own, open on the worklist with
the most urgent patient first, show the counts, the adherence and the charts, and link each
of the most urgent patients to a viewer page that loads and shows that patient's path. Skipped,
saying why, only when no Chromium, chromedriver or Graphviz is installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rxwatch.cli.main import main

from browserkit import BROWSER, CHROMEDRIVER, chrome
ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not (CHROMEDRIVER.exists() and BROWSER and shutil.which("dot")),
    reason="needs chromium, /usr/bin/chromedriver and Graphviz's dot (`apt-get install chromium chromium-driver graphviz`)",
)

EXTRACT = """patient,date,lab,value,unit,uln,event
calm,2026-05-20,ALT,25,U/L,,
calm,2026-05-20,AST,22,U/L,,
calm,2026-05-20,ANC,3.4,10*9/L,,
late,2025-06-02,ALT,31,U/L,,
late,2025-06-02,AST,29,U/L,,
late,2025-06-02,ANC,3.0,10*9/L,,
"jaundiced <b>",2026-03-02,ALT,30,U/L,,
"jaundiced <b>",2026-03-02,AST,27,U/L,,
"jaundiced <b>",2026-03-02,ANC,3.3,10*9/L,,
"jaundiced <b>",2026-04-10,,,,,jaundice
"""


@pytest.fixture(scope="module")
def driver():
    yield from chrome()


def test_the_report_opens_on_the_worklist_and_links_to_viewer_pages(driver, tmp_path, monkeypatch, capsys):
    from selenium.webdriver.common.by import By

    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.csv").write_text(EXTRACT, encoding="utf-8")
    status = main(["audit", str(ROOT / "protocols" / "anakinra_hepatotoxicity.rxw"), "x.csv", "--as-of", "2026-06-01",
                   "-o", "report.html", "--jobs", "1", "--pages", "2"])
    assert status == 0, capsys.readouterr().err
    driver.get_log("browser")
    driver.get((tmp_path / "report.html").as_uri())
    assert not [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert driver.execute_script("return document.scripts.length") == 0
    # the worklist is the first table, at the top of the page, most urgent first
    first_table = driver.find_elements(By.TAG_NAME, "table")[0]
    assert first_table.get_attribute("id") == "worklist-table"
    assert first_table.location["y"] < 400
    rows = first_table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == ["jaundiced <b>", "late"]
    assert "severe" in rows[0].text and "overdue" in rows[1].text
    assert "Orders fulfilled in their window" in driver.find_element(By.ID, "adherence-figure").text
    assert len(driver.find_elements(By.CSS_SELECTOR, "#charts ~ figure svg rect")) >= 2
    # the most urgent patient's viewer page: the chart with the patient's path
    link = rows[0].find_element(By.TAG_NAME, "a")
    href = link.get_attribute("href")
    assert "report_patients/" in href
    driver.get(href)
    assert not [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert driver.find_elements(By.CSS_SELECTOR, "svg")
    assert "jaundiced <b>" in driver.page_source.replace("&lt;", "<").replace("&gt;", ">")
    screenshot = tmp_path / "report.png"
    driver.get((tmp_path / "report.html").as_uri())
    driver.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
