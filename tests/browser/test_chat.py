"""The `/ui` Chat and Compare tabs in a real browser, against a real gateway subprocess.

Backends: two built-in mocks (`demo`, `demo-slow`) and a scripted fake OpenAI upstream
(`fake`) where a test needs to see what arrived upstream or to hold a stream open.
"""

import json
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.browser.support import Page
from tests.conftest import Gateway, RoutesFile, serve
from tests.upstreams import FakeUpstream, ok, reset_mid_stream, status

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("shoot_on_failure")]

DEMO_TOKENS = 12


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, up: FakeUpstream) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("ui-chat")
    config = RoutesFile(directory)(
        f"""
        version: 1
        settings: {{retries: 0, on_disconnect: cancel}}
        backends:
          quick: {{type: mock, interval: 10ms, tokens: {DEMO_TOKENS}}}
          slowmock: {{type: mock, latency: 50ms, interval: 20ms, tokens: 20}}
          fake: {{type: openai, base_url: "{up.url}"}}
        models:
          demo: {{targets: [{{backend: quick}}]}}
          demo-slow: {{targets: [{{backend: slowmock}}]}}
          fake: {{targets: [{{backend: fake, model: fake-model}}]}}
        """
    )
    with serve(config, directory) as gateway:
        yield gateway


@pytest.fixture
def page(driver: object, gw: Gateway, up: FakeUpstream) -> Page:
    up.default = ok()
    p = Page(driver, gw.url)  # type: ignore[arg-type]
    p.open("chat")
    p.wait_models("demo", "demo-slow", "fake")
    return p


def _plain_answer(gw: Gateway, model: str, messages: list[dict[str, str]]) -> str:
    with httpx.Client(base_url=gw.url, timeout=10, trust_env=False) as c:
        resp = c.post("/v1/chat/completions", json={"model": model, "messages": messages})
        assert resp.status_code == 200, resp.text
        return str(resp.json()["choices"][0]["message"]["content"])


def test_page_and_assets_are_served(gw: Gateway) -> None:
    with httpx.Client(base_url=gw.url, timeout=10, trust_env=False) as c:
        page = c.get("/ui")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        script = c.get("/ui/app.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert c.get("/ui/style.css").headers["content-type"].startswith("text/css")
        for name in ("/ui/app.js", "/ui/style.css"):
            assert c.get(name).headers["content-type"].count("charset") == 1
        assert c.get("/ui/nothing.js").status_code == 404
        assert c.get("/ui/..%2Fadmin.py").status_code == 404
        # offline: nothing is loaded from another origin
        for name in ("/ui", "/ui/app.js", "/ui/style.css"):
            assert "http://" not in c.get(name).text.replace(gw.url, "")
            assert "https://" not in c.get(name).text


def test_prompt_streams_into_the_page(page: Page, up: FakeUpstream) -> None:
    up.script(ok(chunks=["alpha ", "beta ", "gamma ", "delta"], interval=0.4))
    Select(page.by_id("model")).select_by_value("fake")
    page.type_prompt("stream to me")
    page.by_id("send").click()
    # part of the answer is on the page while the stream is still open
    partial = page.until(
        lambda: (
            (a := page.answers())
            and "streaming" in (a[0].get_attribute("class") or "")
            and "alpha" in a[0].text
            and "delta" not in a[0].text
            and a[0].text
        ),
        "a partly streamed answer",
    )
    assert "alpha" in str(partial)
    answer = page.wait_answer(1)
    body = answer.find_element(By.CSS_SELECTOR, ".body").text
    assert body == "alpha beta gamma delta"
    assert page.by_id("send").is_enabled()
    assert not page.by_id("stop").is_enabled()


def test_facts_are_filled(page: Page, gw: Gateway) -> None:
    expected = _plain_answer(gw, "demo", [{"role": "user", "content": "facts please"}])
    page.type_prompt("facts please")
    page.by_id("prompt").send_keys(Keys.ENTER)  # Enter sends
    answer = page.wait_answer(1)
    assert answer.find_element(By.CSS_SELECTOR, ".body").text == expected
    assert page.fact(answer, "backend") == "quick"
    assert page.fact(answer, "model") == "demo"  # a mock target's provider model is the alias
    assert page.fact(answer, "attempts") == "1"
    assert page.fact(answer, "tokens") == f"2 / {DEMO_TOKENS}"  # from the usage chunk
    assert page.fact(answer, "ttft").endswith(" ms")
    assert page.fact(answer, "total").endswith(" ms")
    assert page.fact(answer, "tps").endswith(" tok/s")
    assert len(page.fact(answer, "request-id")) >= 8


def test_shift_enter_is_a_newline_and_multi_turn_keeps_history(
    page: Page, up: FakeUpstream
) -> None:
    Select(page.by_id("model")).select_by_value("fake")
    system = page.by_id("system")
    system.send_keys("be brief")
    page.type_prompt("first line")
    page.by_id("prompt").send_keys(Keys.SHIFT, Keys.ENTER)
    page.by_id("prompt").send_keys("second line")
    assert page.by_id("prompt").get_attribute("value") == "first line\nsecond line"
    before = len(up.requests)
    up.script(ok(text="one two"), ok(text="three four"))
    page.by_id("prompt").send_keys(Keys.ENTER)
    page.wait_answer(1)
    page.type_prompt("and again")
    page.by_id("send").click()
    second = page.wait_answer(2)
    assert second.find_element(By.CSS_SELECTOR, ".body").text == "three four"
    up.wait_for_requests(before + 2)
    sent = up.requests[before + 1].json
    assert [(m["role"], m["content"]) for m in sent["messages"]] == [
        ("system", "be brief"),
        ("user", "first line\nsecond line"),
        ("assistant", "one two"),
        ("user", "and again"),
    ]
    assert sent["stream"] is True


def test_stop_aborts_and_the_upstream_sees_the_close(page: Page, up: FakeUpstream) -> None:
    words = [f"w{i} " for i in range(60)]
    up.script(ok(chunks=words, interval=0.25))
    Select(page.by_id("model")).select_by_value("fake")
    index = len(up.requests)
    page.type_prompt("a long one")
    page.by_id("send").click()
    page.until(lambda: "w1" in page.text("#log .msg.assistant .body"), "the stream started")
    assert page.by_id("stop").is_enabled()
    page.by_id("prompt").send_keys(Keys.ESCAPE)  # Esc stops
    up.wait_closed_early(index, timeout=10)
    answer = page.wait_answer(1)
    assert "stopped" in answer.text
    assert "w59" not in answer.text
    assert page.by_id("send").is_enabled()


def test_retry_asks_again_and_export_has_the_conversation(page: Page, up: FakeUpstream) -> None:
    Select(page.by_id("model")).select_by_value("fake")
    up.script(ok(text="first try"), ok(text="second try"))
    page.type_prompt("retry me")
    page.by_id("send").click()
    page.wait_answer(1)
    page.answers()[0].find_element(By.CSS_SELECTOR, "button.retry").click()
    page.until(lambda: "second try" in page.text("#log .msg.assistant .body"), "the retry")
    assert len(page.answers()) == 1
    copy = page.answers()[0].find_element(By.CSS_SELECTOR, "button.copy")
    copy.click()
    page.until(lambda: copy.text == "Copied", "the copy confirmed")
    exported = page.js("return import('/ui/chat.js').then(m => JSON.stringify(m.conversation()))")
    turns = json.loads(str(exported))
    assert [(t["role"], t["content"]) for t in turns] == [
        ("user", "retry me"),
        ("assistant", "second try"),
    ]


def test_code_blocks_render_as_code(page: Page, up: FakeUpstream) -> None:
    up.script(ok(chunks=["Here:\n```python\n", "print('<b>hi</b>')\n", "```\ndone"]))
    Select(page.by_id("model")).select_by_value("fake")
    page.type_prompt("code please")
    page.by_id("send").click()
    answer = page.wait_answer(1)
    code = answer.find_element(By.CSS_SELECTOR, "pre.code code")
    assert code.text == "print('<b>hi</b>')"  # shown as text, never parsed as HTML
    assert answer.find_element(By.CSS_SELECTOR, "pre.code").get_attribute("data-lang") == "python"
    assert not answer.find_elements(By.CSS_SELECTOR, ".body b")


def test_anthropic_front_door(page: Page, gw: Gateway) -> None:
    expected = _plain_answer(gw, "demo", [{"role": "user", "content": "via messages"}])
    Select(page.by_id("door")).select_by_value("anthropic")
    page.type_prompt("via messages")
    page.by_id("send").click()
    answer = page.wait_answer(1)
    assert answer.find_element(By.CSS_SELECTOR, ".body").text == expected
    assert page.fact(answer, "backend") == "quick"
    assert page.fact(answer, "tokens").endswith(f"/ {DEMO_TOKENS}")


def test_compare_two_models(page: Page, gw: Gateway) -> None:
    prompt = "compare us"
    want = {
        m: _plain_answer(gw, m, [{"role": "user", "content": prompt}])
        for m in ("demo", "demo-slow")
    }
    page.by_id("tab-compare").click()
    boxes = page.css("#compare-models input")
    ticked = [b.get_attribute("value") for b in boxes if b.is_selected()]
    assert ticked == ["demo", "demo-slow"]  # the first two are preselected
    page.by_id("compare-prompt").clear()
    page.by_id("compare-prompt").send_keys(prompt)
    repeats = page.by_id("compare-repeats")
    repeats.clear()
    repeats.send_keys("3")
    page.by_id("compare-run").click()
    page.until(lambda: page.by_id("compare-status").text == "done: 3 run(s)", "three runs")
    for model, text in want.items():
        col = page.css(f'.col[data-model="{model}"]')[0]
        assert col.find_element(By.CSS_SELECTOR, ".body").text == text
        assert len(col.find_elements(By.CSS_SELECTOR, ".runs li")) == 3
        for metric in ("ttft", "tps"):
            value = page.css(
                f'.bars[data-metric="{metric}"] .bar-row[data-model="{model}"] .bar-value'
            )
            assert float(value[0].get_attribute("data-value") or "nan") > 0
    # fewer than two models cannot run
    page.css('#compare-models input[value="demo-slow"]')[0].click()
    assert not page.by_id("compare-run").is_enabled()
    page.css('#compare-models input[value="fake"]')[0].click()
    assert page.by_id("compare-run").is_enabled()


def test_narrow_screen_stacks_the_chat(page: Page) -> None:
    page.driver.set_window_size(420, 800)
    try:
        page.driver.refresh()
        page.wait_models("demo")
        params = page.css("aside.params")[0].rect
        log = page.by_id("log").rect
        assert log["y"] > params["y"]  # one column: the conversation below the settings
        width = page.js("return document.documentElement.scrollWidth")
        assert isinstance(width, int) and width <= 420  # no sideways scrolling
    finally:
        page.driver.set_window_size(1280, 900)


def test_gateway_errors_are_readable(page: Page, up: FakeUpstream) -> None:
    Select(page.by_id("model")).select_by_value("fake")
    up.script(status(500), replace(reset_mid_stream(2), text="one two three four five"))
    page.type_prompt("fail before headers")
    page.by_id("send").click()
    first = page.wait_answer(1)
    shown = first.find_element(By.CSS_SELECTOR, ".error").text
    assert shown.startswith("5") and "request id " in shown  # status, message, request id
    page.type_prompt("fail mid stream")
    page.by_id("send").click()
    second = page.wait_answer(2)
    assert second.find_element(By.CSS_SELECTOR, ".body").text.startswith("one two")
    assert second.find_element(By.CSS_SELECTOR, ".error").text
