"""The interactive reference at /docs, loaded in a real headless Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import requests

# Flags that keep Chromium from reaching any host but the test server.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
HTTP_METHODS = {"get", "put", "post", "patch", "delete"}


def start_chromium(profile: Path) -> Any:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip(
            "No headless browser: install Debian's chromium and chromium-driver "
            "(.ci/run does) to run the /docs page test."
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(driver_path))


def documented_operations(base: str) -> set[tuple[str, str]]:
    document = requests.get(f"{base}/api/v1/openapi.json", timeout=5).json()
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def test_docs_page_lists_every_operation(live_server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = start_chromium(tmp_path / "profile")
    try:
        driver.set_page_load_timeout(30)
        driver.get(f"{live_server}/docs")
        WebDriverWait(driver, 30).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
        )
        listed = {
            (
                block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text,
                block.find_element(
                    By.CSS_SELECTOR, ".opblock-summary-path"
                ).get_attribute("data-path"),
            )
            for block in driver.find_elements(By.CSS_SELECTOR, ".opblock")
        }
        console = driver.get_log("browser")
    finally:
        driver.quit()

    assert listed == documented_operations(live_server)
    errors = [entry["message"] for entry in console if entry["level"] == "SEVERE"]
    assert errors == []
