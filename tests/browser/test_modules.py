"""The page's pure JavaScript helpers, run in the browser that runs the page.

SSE decoding across arbitrary splits and line endings, the request bodies per front door,
error messages of every wire's shape, `LINE:COL` problems, `/metrics` sums and medians.
"""

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.browser.support import Page
from tests.conftest import Gateway, RoutesFile, serve

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def page(driver: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    directory = tmp_path_factory.mktemp("ui-modules")
    config = RoutesFile(directory)(
        """
        version: 1
        backends:
          demo: {type: mock}
        models:
          demo: {targets: [{backend: demo}]}
        """
    )
    gw: Gateway
    with serve(config, directory) as gw:
        p = Page(driver, gw.url)  # type: ignore[arg-type]
        p.open("chat")
        yield p


def call(page: Page, module: str, body: str, *args: Any) -> Any:
    """Runs `body` (a function of `m`, the module, and `args`) and returns its JSON result."""
    script = (
        f"const args = arguments; return import('/ui/{module}')"
        f".then(m => JSON.stringify((function(m, args) {{ {body} }})(m, args)))"
    )
    return json.loads(str(page.js(script, *args)))


_text = st.text(alphabet='abc :{}"é\u2028', max_size=12)


@settings(max_examples=25, deadline=None)
@given(
    datas=st.lists(_text.filter(lambda s: "\n" not in s and "\r" not in s), max_size=4),
    crlf=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)
def test_sse_decoder_is_split_and_line_ending_blind(
    page: Page, datas: list[str], crlf: bool, cuts: list[int]
) -> None:
    nl = "\r\n" if crlf else "\n"
    stream = "".join(
        f": keepalive{nl}event: e{i}{nl}data: {d}{nl}{nl}" for i, d in enumerate(datas)
    )
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    pieces = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    got = call(
        page,
        "api.js",
        "const d = new m.SSEDecoder(); return args[0].flatMap(p => d.feed(p));",
        pieces,
    )
    assert got == [{"event": f"e{i}", "data": d} for i, d in enumerate(datas)]


def test_chat_bodies_per_front_door(page: Page) -> None:
    request = {
        "model": "demo",
        "system": "be brief",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.5,
        "maxTokens": 20,
    }
    openai = call(page, "api.js", "return m.chatBody('openai', args[0]);", request)
    assert openai == {
        "model": "demo",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.5,
        "max_tokens": 20,
    }
    anthropic = call(page, "api.js", "return m.chatBody('anthropic', args[0]);", request)
    assert anthropic == {
        "model": "demo",
        "system": "be brief",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 20,
        "temperature": 0.5,
        "stream": True,
    }
    bare = {**request, "system": "", "temperature": None, "maxTokens": None}
    assert (
        call(page, "api.js", "return m.chatBody('anthropic', args[0]);", bare)["max_tokens"] == 1024
    )  # Anthropic requires one
    assert "max_tokens" not in call(page, "api.js", "return m.chatBody('openai', args[0]);", bare)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error": {"message": "bad key", "type": "x"}}, "bad key"),
        ({"type": "error", "error": {"type": "x", "message": "overloaded"}}, "overloaded"),
        ([{"error": {"code": 400, "message": "gemini says no"}}], "gemini says no"),
        ({"detail": "nothing"}, None),
    ],
)
def test_error_messages_of_every_wire(page: Page, body: object, message: str | None) -> None:
    assert call(page, "api.js", "return m.errorMessage(args[0]);", body) == message


def test_problem_positions(page: Page) -> None:
    got = call(
        page,
        "ops.js",
        "return args[0].map(p => m.problemAt(p));",
        ["/etc/routes.yaml:7:12: expected an integer", "no position here"],
    )
    assert got == [
        {"path": "/etc/routes.yaml", "line": 7, "col": 12, "message": "expected an integer"},
        None,
    ]


def test_metrics_sums(page: Page) -> None:
    text = "\n".join(
        [
            "# TYPE llm_proxy_requests_total counter",
            'llm_proxy_requests_total{alias="a",backend="b",status="200"} 5',
            'llm_proxy_requests_total{alias="a",backend="b",status="502"} 2',
            'llm_proxy_requests_total{alias="a",backend="",status="401"} 1',
            "llm_proxy_requests_in_flight 3",
            'llm_proxy_tokens_total{alias="a",backend="b",type="output"} 99',
        ]
    )
    got = call(page, "ops.js", "return m.requestCounts(args[0]);", text)
    assert got == {"total": 8, "errors": 3, "inFlight": 3}


def test_median(page: Page) -> None:
    got = call(
        page,
        "api.js",
        "return [m.median([3, 1, 2]), m.median([4, 1, 3, 2]), m.median([null, 5]), m.median([])];",
    )
    assert got == [2, 2.5, 5, None]


def test_optional_facts_show_when_present(page: Page) -> None:
    facts = {
        "backend": "b",
        "remainingRequests": "41",
        "remainingTokens": "9000",
        "cost": 0.0012,
        "cache": "hit",
        "stopped": True,
    }
    shown = call(
        page,
        "render.js",
        "const dl = m.factsList(args[0]); return Object.fromEntries("
        "[...dl.querySelectorAll('[data-fact]')].map(e => [e.dataset.fact, e.textContent]));",
        facts,
    )
    assert shown["remaining"] == "41 requests, 9000 tokens"
    assert shown["cost"] == "$0.001200"
    assert shown["cache"] == "hit"
    assert shown["ttft"] == "\u2013"  # unknown facts read as a dash, never "undefined"
    bare = call(
        page,
        "render.js",
        "return [...m.factsList({}).querySelectorAll('[data-fact]')].map(e => e.dataset.fact);",
    )
    assert "cost" not in bare and "cache" not in bare and "remaining" not in bare
