"""Driving Debian's Chromium through chromedriver with Selenium, for the `/ui` page tests.

`find_chromium()` says what is missing; `new_driver()` starts a headless Chromium with a fresh
profile (the caller quits it); `Page` wraps one driver with the waits the tests use. Every wait
is bounded; none asserts a duration.
"""

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

T = TypeVar("T")
WAIT = 15.0  # seconds any one wait may take (a 2-core CI machine is slow, never this slow)
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DRIVER_CANDIDATES = ("/usr/bin/chromedriver",)


def _first(paths: tuple[str, ...], name: str) -> str | None:
    for p in paths:
        if os.access(p, os.X_OK):
            return p
    return shutil.which(name)


def find_chromium() -> tuple[str | None, str | None]:
    """(chromium, chromedriver) paths; None where one is missing."""
    return _first(CHROMIUM_CANDIDATES, "chromium"), _first(DRIVER_CANDIDATES, "chromedriver")


def new_driver(
    chromium: str, chromedriver: str, profile: Path, size: tuple[int, int] = (1280, 900)
) -> webdriver.Chrome:
    """A headless Chromium with a fresh profile in `profile`; the caller quits it."""
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "--no-proxy-server",
        f"--user-data-dir={profile}",
        f"--window-size={size[0]},{size[1]}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=chromedriver, log_output=str(profile / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    return driver


class Page:
    """The `/ui` page of one gateway in one browser."""

    def __init__(self, driver: webdriver.Chrome, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    def open(self, tab: str = "chat") -> None:
        """Load the page on `tab` with nothing stored, and wait for the model list."""
        self.driver.get(f"{self.base_url}/ui#{tab}")
        self.driver.execute_script("localStorage.clear()")
        self.driver.refresh()
        self.until(lambda: self.js("return document.readyState") == "complete", "page loaded")

    def js(self, script: str, *args: object) -> object:
        return self.driver.execute_script(script, *args)

    def by_id(self, element_id: str) -> WebElement:
        return self.driver.find_element(By.ID, element_id)

    def css(self, selector: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def text(self, selector: str) -> str:
        """The visible text of every element matching `selector`, joined by newlines."""
        found = self.js(
            "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText).join('\\n')",
            selector,
        )
        return str(found)

    def until(self, check: Callable[[], T | bool | None], what: str, wait: float = WAIT) -> T:
        """Poll `check` until it returns something truthy; fail naming `what`."""

        def probe(_: object) -> T | bool | None:
            try:
                return check()
            except StaleElementReferenceException:
                return None  # re-rendered under us: ask again

        try:
            result: T = WebDriverWait(self.driver, wait, poll_frequency=0.05).until(probe)
        except TimeoutException:
            raise AssertionError(f"timed out after {wait}s waiting for: {what}") from None
        return result

    def models(self) -> list[str]:
        found = self.js("return [...document.querySelectorAll('#model option')].map(o => o.value)")
        return [str(v) for v in found] if isinstance(found, list) else []

    def wait_models(self, *expected: str) -> None:
        self.until(lambda: all(m in self.models() for m in expected), f"models {expected}")

    def type_prompt(self, text: str) -> None:
        box = self.by_id("prompt")
        box.clear()
        box.send_keys(text)

    def answers(self) -> list[WebElement]:
        return self.css("#log .msg.assistant")

    def wait_answer(self, n: int) -> WebElement:
        """The n-th (1-based) assistant answer, once it has finished streaming."""
        self.until(
            lambda: (
                len(self.answers()) >= n
                and "streaming" not in (self.answers()[n - 1].get_attribute("class") or "")
            ),
            f"answer {n} finished",
        )
        return self.answers()[n - 1]

    def fact(self, answer: WebElement, name: str) -> str:
        return answer.find_element(By.CSS_SELECTOR, f'[data-fact="{name}"]').text
