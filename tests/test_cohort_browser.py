"""The cohort report in a real headless browser (Chromium driven by Selenium), as
tests/test_audit_browser.py opens the audit's report.

The page must load with no console error and no script, say how to reproduce it, show the
metrics table with one column per protocol and the paired difference, and draw its plots (SVG
data URIs that the browser decodes to images of a real size). Skipped, saying why, only when
no Chromium or chromedriver is installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rxwatch.cli.main import main

from test_cohort_run import MODEL

from browserkit import BROWSER, CHROMEDRIVER, chrome
ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not (CHROMEDRIVER.exists() and BROWSER),
    reason="needs chromium and /usr/bin/chromedriver (`apt-get install chromium chromium-driver`)",
)


@pytest.fixture(scope="module")
def driver():
    yield from chrome()


def test_the_report_shows_the_comparison_and_its_plots(driver, tmp_path, monkeypatch, capsys):
    from selenium.webdriver.common.by import By

    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.yaml").write_text(MODEL, encoding="utf-8")
    status = main(["cohort", str(ROOT / "protocols" / "anakinra_hepatotoxicity.rxw"),
                   str(ROOT / "protocols" / "variants" / "anakinra_6monthly.rxw"), "--model", "model.yaml",
                   "--patients", "4", "--years", "1", "--seed", "2", "--jobs", "1", "--resamples", "20", "-o", "report.html"])
    assert status == 0, capsys.readouterr().err
    driver.get_log("browser")
    driver.get((tmp_path / "report.html").as_uri())
    assert not [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert driver.execute_script("return document.scripts.length") == 0
    # nothing is fetched from elsewhere: every image is inline
    sources = [img.get_attribute("src") for img in driver.find_elements(By.TAG_NAME, "img")]
    assert sources and all(s.startswith("data:image/svg+xml;base64,") for s in sources)
    assert "--seed 2" in driver.find_element(By.TAG_NAME, "p").text
    table = driver.find_element(By.ID, "metrics-table")
    head = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    assert head[1:] == ["anakinra_hepatotoxicity", "anakinra_6monthly", "anakinra_6monthly − anakinra_hepatotoxicity"]
    row = table.find_element(By.CSS_SELECTOR, 'tr[data-metric="tests_per_py"]')
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    assert cells[0] == "blood draws per patient-year" and all(c and c != "n/a" for c in cells[1:])
    assert "anakinra_6monthly against anakinra_hepatotoxicity" in driver.find_element(By.CLASS_NAME, "conclusion").text
    # each plot decoded and laid out at a real size
    for fig in ("fig-delays", "fig-cost"):
        img = driver.find_element(By.CSS_SELECTOR, f"#{fig} img")
        assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 300
        assert img.size["width"] > 300
    assert driver.find_elements(By.CSS_SELECTOR, "figure[id^='fig-patient-'] img")
    screenshot = tmp_path / "report.png"
    driver.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
