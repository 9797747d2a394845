"""Screenshots of `/ui` for the docs, taken with the browser tests' own setup.

    python -m tests.browser.shoot docs/ui.png [compare.png] [ops.png]

Starts a gateway on the shipped `routes.yaml` (no provider keys: only the mock models), has a
short conversation with `demo`, and saves the Chat tab; given more paths, also a Compare run
of `demo` against `demo-slow` and the Operations tab.
"""

import sys
import tempfile
from pathlib import Path

from selenium.webdriver.common.by import By

from tests.browser.support import Page, find_chromium, new_driver
from tests.conftest import REPO, launch

NO_KEYS = {
    "OPENAI_API_KEY": "",
    "ANTHROPIC_API_KEY": "",
    "GEMINI_API_KEY": "",
    "LLM_PROXY_ADMIN_KEY": "",
    "OLLAMA_URL": "http://127.0.0.1:9/v1",
}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    chromium, chromedriver = find_chromium()
    if not chromium or not chromedriver:
        print("chromium and chromedriver are needed", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="ui-shoot-") as tmp:
        gw = launch(REPO / "routes.yaml", Path(tmp), env=NO_KEYS)
        try:
            driver = new_driver(chromium, chromedriver, Path(tmp), size=(1280, 820))
            try:
                page = Page(driver, gw.url)
                page.open("chat")
                page.wait_models("demo", "demo-slow")
                page.by_id("system").send_keys("You are a concise assistant.")
                for n, prompt in enumerate(("Hello! What can you do?", "And how fast?"), 1):
                    page.type_prompt(prompt)
                    page.by_id("send").click()
                    page.wait_answer(n)
                driver.save_screenshot(argv[0])
                if len(argv) > 1:
                    page.by_id("tab-compare").click()
                    repeats = page.by_id("compare-repeats")
                    repeats.clear()
                    repeats.send_keys("3")
                    page.by_id("compare-run").click()
                    page.until(lambda: "done" in page.by_id("compare-status").text, "runs", 60)
                    driver.save_screenshot(argv[1])
                if len(argv) > 2:
                    page.by_id("tab-ops").click()
                    page.until(lambda: page.css("#ops-totals"), "operations view")
                    page.until(lambda: len(page.css("#ops-targets tr")) > 2, "targets")
                    for n in range(3):  # some live traffic for the sparklines
                        page.js("fetch('/v1/models')")
                        page.until(
                            lambda n=n: (
                                page.js(
                                    "return document.querySelectorAll("
                                    "'#ops-traffic polyline')[0].points.length"
                                )
                                > n + 1
                            ),
                            "a sparkline point",
                            10,
                        )
                    driver.find_element(By.TAG_NAME, "body").click()
                    driver.save_screenshot(argv[2])
            finally:
                driver.quit()
        finally:
            gw.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
