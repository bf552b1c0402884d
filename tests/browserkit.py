"""Headless Chromium for the browser tests (the viewer, its lab chart and panel form, the audit
and cohort reports): where the browser and its driver are, and one way to start it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

CHROMEDRIVER = Path("/usr/bin/chromedriver")
BROWSER = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), shutil.which("google-chrome")) if p), None)


def chrome(window: str = "1400,900"):
    """A headless Chromium driver with its browser log kept, for a fixture to `yield from`; a
    browser that cannot start skips the test, saying why. Its profile folder goes with it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="rxwatch-chrome-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = BROWSER
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", f"--window-size={window}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        d = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    except Exception as e:  # noqa: BLE001 - a browser that cannot start is a reason to skip, said out loud
        shutil.rmtree(profile, ignore_errors=True)
        pytest.skip(f"chromium could not start: {type(e).__name__}: {e}")
    try:
        yield d
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)
