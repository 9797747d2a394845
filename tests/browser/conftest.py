"""Browser fixtures: one headless Chromium per module, a screenshot when a test fails.

Chromium missing: skipped on a developer's machine, a failure under `CI=true` (CI must never
skip these silently).
"""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.support import find_chromium

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def _need_chromium() -> tuple[str, str]:
    chromium, driver = find_chromium()
    if chromium and driver:
        return chromium, driver
    missing = " and ".join(
        name for name, path in (("chromium", chromium), ("chromedriver", driver)) if not path
    )
    message = f"{missing} not found (apt-get install chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def driver() -> Iterator[object]:
    chromium, chromedriver = _need_chromium()
    from tests.browser.support import new_driver

    with tempfile.TemporaryDirectory(prefix="ui-chromium-") as profile:
        drv = new_driver(chromium, chromedriver, Path(profile))
        try:
            yield drv
        finally:
            drv.quit()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: pytest.TestReport = yield  # type: ignore[misc]
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report  # type: ignore[return-value]


@pytest.fixture
def shoot_on_failure(
    request: pytest.FixtureRequest, driver: object, tmp_path: Path
) -> Iterator[None]:
    """After a failed test: a screenshot, the page's HTML and its console under tmp_path."""
    yield
    reports = request.node.stash.get(_REPORTS, {})
    if "call" in reports and reports["call"].failed:
        shot = tmp_path / "failure.png"
        with contextlib.suppress(Exception):  # the browser may be what broke
            driver.save_screenshot(str(shot))  # type: ignore[attr-defined]
            (tmp_path / "failure.html").write_text(driver.page_source)  # type: ignore[attr-defined]
            logs = driver.get_log("browser")  # type: ignore[attr-defined]
            (tmp_path / "console.txt").write_text("\n".join(str(e) for e in logs))
        print(f"\nbrowser artifacts: {tmp_path}")
