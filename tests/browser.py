"""Headless Chromium for the console's browser tests and its screenshots: Debian's
``chromium`` and ``chromium-driver`` packages driven by Selenium, pointed at both
binaries so that nothing is downloaded at run time (``.ci/run`` installs them).

Without them the browser tests skip with a message saying how to get them, unless
``CRM_REQUIRE_POSTGRES=1`` (CI), where they fail: CI installs them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

REQUIRE = os.environ.get("CRM_REQUIRE_POSTGRES") == "1"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)


@dataclass(frozen=True)
class Binaries:
    browser: str
    driver: str


def binaries() -> Binaries | None:
    """Chromium and its driver on the ``PATH`` (or in ``/usr/lib/chromium``), if both
    are there."""
    browser = next(filter(None, map(shutil.which, BROWSERS)), None)
    driver = next(filter(None, map(shutil.which, DRIVERS)), None)
    if driver is None and os.path.exists("/usr/lib/chromium/chromedriver"):
        driver = "/usr/lib/chromium/chromedriver"
    return Binaries(browser, driver) if browser and driver else None


def require_browser() -> Binaries:
    found = binaries()
    if found is not None:
        return found
    problem = "headless Chromium is not installed (apt-get install -y chromium chromium-driver)"
    if REQUIRE:
        pytest.fail(f"{problem}; CRM_REQUIRE_POSTGRES=1: the browser tests must run")
    pytest.skip(f"{problem}: the console's browser tests are skipped")


@contextmanager
def headless(found: Binaries, *, width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A headless Chromium session (a Selenium ``WebDriver``) that logs every network
    request it makes and every console message (``requested_urls``,
    ``console_messages``); quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = found.browser
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",  # no update or safe-browsing checks of its own
        "--disable-component-update",
        "--disable-sync",
        "--metrics-recording-only",
        "--lang=en-GB",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(found.driver))
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver: Any) -> list[str]:
    """The URLs of every request the pages made since the last call (the browser's
    performance log: ``Network.requestWillBeSent``)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def console_messages(driver: Any) -> list[str]:
    """What the pages wrote to the browser's console since the last call (a refused
    script or style sheet shows up here as a Content-Security-Policy message)."""
    return [str(entry["message"]) for entry in driver.get_log("browser")]
