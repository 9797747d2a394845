"""The `/ui` Operations tab and key handling in a real browser, against a gateway subprocess.

Each test starts its own gateway (admin key and client keys differ per test). The `flaky`
backend is a fake OpenAI upstream that answers 500 until told otherwise.
"""

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By

from tests.browser.support import Page
from tests.conftest import Gateway, RoutesFile
from tests.upstreams import FakeUpstream, status

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("shoot_on_failure")]

ADMIN_KEY = "adm-ui-test-key-0042"
CLIENT_KEY = "sk-ui-team-key-7781"
CONFIG = """
version: 1
settings:
  admin_key: ${UI_T_ADMIN_KEY}
  failure_threshold: 2
  cooldown: 60s
  retries: 0
backends:
  demo: {type: mock, tokens: 8}
  flaky: {type: openai, base_url: "UPSTREAM"}
models:
  demo: {targets: [{backend: demo}]}
  flaky: {targets: [{backend: flaky, model: fake-model}]}
"""


@pytest.fixture
def flaky() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        upstream.default = status(500)
        yield upstream


@pytest.fixture
def ops_gw(
    tmp_path: Path, flaky: FakeUpstream, gateway: Callable[..., Gateway]
) -> tuple[Gateway, RoutesFile]:
    routes = RoutesFile(tmp_path)
    path = routes(CONFIG.replace("UPSTREAM", flaky.url))
    return gateway(path, env={"UI_T_ADMIN_KEY": ADMIN_KEY}), routes


def _log_in(page: Page) -> None:
    page.open("ops")
    page.until(lambda: page.by_id("admin-login").is_displayed(), "the admin key prompt")
    assert "401" in page.by_id("admin-login-why").text
    page.by_id("admin-key").send_keys(ADMIN_KEY)
    page.css("#admin-login button")[0].click()
    page.until(lambda: page.css("#ops-generation"), "the operations view")
    assert not page.by_id("admin-login").is_displayed()


def test_wrong_admin_key_is_asked_again(driver: object, ops_gw: tuple[Gateway, RoutesFile]) -> None:
    gw, _ = ops_gw
    page = Page(driver, gw.url)  # type: ignore[arg-type]
    page.open("ops")
    page.until(lambda: page.by_id("admin-login").is_displayed(), "the admin key prompt")
    page.by_id("admin-key").send_keys("not-the-key")
    page.css("#admin-login button")[0].click()
    page.until(
        lambda: "admin endpoints need" in page.by_id("admin-login-why").text, "the 401 message"
    )
    assert not page.by_id("ops-body").is_displayed()


def test_circuit_opening_shows(driver: object, ops_gw: tuple[Gateway, RoutesFile]) -> None:
    gw, _ = ops_gw
    page = Page(driver, gw.url)  # type: ignore[arg-type]
    _log_in(page)
    assert page.by_id("ops-generation").text == "1"
    page.until(lambda: page.css('[data-backend="flaky"]'), "the backends table")
    with httpx.Client(base_url=gw.url, timeout=10, trust_env=False) as c:
        for _ in range(2):
            resp = c.post(
                "/v1/chat/completions",
                json={"model": "flaky", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert resp.status_code >= 500
    row = '[data-target="flaky/fake-model"]'
    page.until(
        lambda: page.css(f"{row} [data-state=open]"), "the flaky circuit shown open", wait=20
    )
    cells = page.css(row)[0].find_elements(By.TAG_NAME, "td")
    assert cells[3].text == "2"  # consecutive failures
    assert "retry at" in cells[6].text
    page.until(lambda: "2 errors" in page.by_id("ops-totals").text, "errors counted")
    assert page.css("#ops-traffic svg.spark")


def test_rejected_config_edit_shows_its_line(
    driver: object, ops_gw: tuple[Gateway, RoutesFile], flaky: FakeUpstream
) -> None:
    gw, routes = ops_gw
    page = Page(driver, gw.url)  # type: ignore[arg-type]
    _log_in(page)
    page.until(lambda: page.css("#ops-last-ok"), "a clean last reload")
    broken = CONFIG.replace("UPSTREAM", flaky.url).replace("retries: 0", "retries: lots")
    line = textwrap.dedent(broken).splitlines().index("  retries: lots") + 1
    routes(broken)
    page.by_id("ops-reload").click()
    page.until(
        lambda: f"line {line}:" in page.text("#ops-last-error"),
        f"the rejected edit at line {line}",
    )
    assert "got 'lots'" in page.text("#ops-last-error")
    assert f"line {line}:" in page.text("#ops-reload-result")
    assert page.by_id("ops-generation").text == "1"  # still serving the old config


def test_invalid_key_shows_the_401_message(
    driver: object, tmp_path: Path, gateway: Callable[..., Gateway]
) -> None:
    path = RoutesFile(tmp_path)(
        """
        version: 1
        backends:
          demo: {type: mock, tokens: 8}
        models:
          demo: {targets: [{backend: demo}]}
        keys:
          - {name: team, key: "${UI_T_CLIENT_KEY}"}
        """
    )
    gw = gateway(path, env={"UI_T_CLIENT_KEY": CLIENT_KEY})
    page = Page(driver, gw.url)  # type: ignore[arg-type]
    page.open("chat")
    page.until(lambda: "401" in page.by_id("models-error").text, "models refused without a key")
    assert "no API key" in page.by_id("models-error").text
    key = page.by_id("api-key")

    def use_key(value: str) -> None:
        key.clear()
        key.send_keys(value)
        page.by_id("system").click()  # leaving the field stores the key

    use_key(CLIENT_KEY)
    page.wait_models("demo")
    page.until(lambda: not page.by_id("models-error").is_displayed(), "the banner gone")
    assert page.js("return localStorage.getItem('llm-proxy.api-key')") == CLIENT_KEY
    use_key("sk-wrong-key")
    page.until(
        lambda: "not valid for this gateway" in page.by_id("models-error").text,
        "the invalid key's message on the model list",
    )
    page.type_prompt("hello")
    page.by_id("send").click()
    page.until(lambda: page.css("#log .error"), "an error in the conversation")
    shown = page.text("#log .error")
    assert shown.startswith("401: the API key is not valid for this gateway")
    assert "request id " in shown
    use_key(CLIENT_KEY)
    page.type_prompt("hello")
    page.by_id("send").click()
    answer = page.wait_answer(2)
    assert page.fact(answer, "backend") == "demo"
