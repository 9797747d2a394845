"""The official SDKs against the gateway while upstreams fail: what the SDK raises, that its
own retries stay off when the gateway says so, that keepalives are harmless, and that a
`stream: false` backend still gives streaming clients a correct stream.

One gateway: keepalive 50 ms, idle 1 s, failure_threshold 3, cooldown 1 s, retries 1.
SDK clients get a short timeout; `max_retries=0` unless the test is about the SDK's retries.

    solo/NAME -> a           pair/NAME -> a, then b (priority 1)
    flat/NAME -> a, through backend `flat` (stream: false)
    claude/NAME -> an Anthropic-wire upstream (for the Anthropic front door)
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace

import anthropic
import httpx
import openai
import pytest

from tests.conftest import Gateway
from tests.integration.fault_support import (
    call,
    http_client,
    reset_upstream,
    spawn_gateway,
    write_config,
)
from tests.upstreams import (
    Behaviour,
    FakeUpstream,
    cut_before_done,
    ok,
    preamble_then_fail,
    rate_limited,
    reset_mid_stream,
    slow_stream,
    stall_before_headers,
    stall_mid_stream,
    status,
)

pytestmark = pytest.mark.timeout(30)

WEATHER = ("get_weather", '{"city":"Paris"}')
MESSAGES = [{"role": "user", "content": "hi"}]


@dataclass
class Rig:
    gw: Gateway
    client: httpx.Client
    a: FakeUpstream
    b: FakeUpstream
    claude: FakeUpstream


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("sdk")
    a, b = FakeUpstream().start(), FakeUpstream().start()
    claude = FakeUpstream(wire="anthropic").start()
    gw: Gateway | None = None
    try:
        config = write_config(
            tmp / "routes.yaml",
            f"""\
            version: 1
            settings:
              failure_threshold: 3
              cooldown: 1s
              retries: 1
              timeouts: {{connect: 1s, first_byte: 1s, idle: 1s, total: 10s}}
              keepalive: 50ms
            backends:
              a: {{type: openai, base_url: "{a.url}"}}
              b: {{type: openai, base_url: "{b.url}"}}
              flat: {{type: openai, base_url: "{a.url}", stream: false}}
              claude: {{type: anthropic, base_url: "{claude.url}", api_key: sk-ant-test}}
            models:
              "solo/*": {{targets: [{{backend: a, model: "*"}}]}}
              "pair/*":
                targets: [{{backend: a, model: "*"}}, {{backend: b, model: "*", priority: 1}}]
              "flat/*": {{targets: [{{backend: flat, model: "*"}}]}}
              "claude/*": {{targets: [{{backend: claude, model: "*"}}]}}
            """,
        )
        gw = spawn_gateway(config, tmp)
        with http_client(gw) as client:
            yield Rig(gw, client, a, b, claude)
    finally:
        if gw is not None:
            gw.stop()
        for up in (a, b, claude):
            up.stop()


@pytest.fixture(autouse=True)
def _clean(rig: Rig) -> Iterator[None]:
    reset_upstream(rig.a, rig.b, rig.claude)
    yield
    reset_upstream(rig.a, rig.b, rig.claude)


@pytest.fixture
def sdk(rig: Rig) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{rig.gw.url}/v1",
        api_key="sk-client",
        max_retries=0,
        timeout=10,
        http_client=httpx.Client(trust_env=False),
    ) as client:
        yield client


def _streamed_text(sdk: openai.OpenAI, model: str, received: list[str] | None = None) -> str:
    parts = [] if received is None else received
    stream = sdk.chat.completions.create(model=model, messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    for chunk in stream:
        for choice in chunk.choices:
            parts.append(choice.delta.content or "")
    return "".join(parts)


# --- keepalives ------------------------------------------------------------------------------


def test_keepalive_comments_while_upstream_is_silent(rig: Rig) -> None:
    rig.a.script(slow_stream(first_delay=0.5))
    out = call(rig.client, "solo/keepalive", stream=True)
    assert out.status == 200 and out.done
    assert out.text == "w0 w1 w2 w3 w4"
    assert len(out.comments) >= 3  # ~10 at 50 ms; a loaded machine sends fewer
    assert set(out.comments) == {": keepalive"}
    first_data = out.raw.index(b"data:")
    assert out.raw.index(b": keepalive") < first_data  # before the first token, not after


def test_sdk_ignores_keepalives(rig: Rig, sdk: openai.OpenAI) -> None:
    rig.a.script(slow_stream(first_delay=0.5))
    assert _streamed_text(sdk, "solo/sdk-keepalive") == "w0 w1 w2 w3 w4"


# --- before commit: invisible; after commit: the SDK raises ----------------------------------


def test_sdk_sees_one_clean_stream_after_failover(rig: Rig, sdk: openai.OpenAI) -> None:
    rig.a.script(preamble_then_fail("stall", seconds=5))  # a stalls past idle after its preamble
    rig.b.script(ok(text="second target speaking"))
    seen = len(rig.b.requests)
    assert _streamed_text(sdk, "pair/sdk-failover") == "second target speaking"
    assert len(rig.b.requests) == seen + 1


def test_failover_after_keepalives_still_one_clean_stream(rig: Rig) -> None:
    """Keepalives already went out (so the head did too): a's held preamble still never shows."""
    rig.a.script(preamble_then_fail("stall", seconds=5))
    rig.b.script(ok(text="second target speaking"))
    out = call(rig.client, "pair/keepalive-failover", stream=True)
    assert out.status == 200 and out.done
    assert out.comments  # a was silent for idle (1 s) before the failover
    assert out.text == "second target speaking"
    roles = [c for c in out.chunks if "role" in c["choices"][0]["delta"]]
    assert len(roles) == 1
    assert not any(f.startswith('{"error"') for f in out.frames)


def test_exhausted_after_keepalives_ends_with_error_event(rig: Rig, sdk: openai.OpenAI) -> None:
    """The head went out with the keepalives, so exhaustion can only be an error event."""
    rig.a.script(stall_before_headers(5), stall_before_headers(5))
    out = call(rig.client, "solo/keepalive-exhausted", stream=True)
    assert out.status == 200 and out.comments
    assert not out.done and out.chunks == []
    err = json.loads(out.frames[-1])["error"]
    assert (err["type"], err["code"]) == ("timeout_error", "upstream_timeout")
    assert "first_byte=1s" in err["message"]
    with pytest.raises(openai.APIError) as caught:
        _streamed_text(sdk, "solo/keepalive-exhausted")
    assert not isinstance(caught.value, openai.APIConnectionError)


@pytest.mark.parametrize(
    "fault",
    [reset_mid_stream(2), cut_before_done(2), stall_mid_stream(2, 5)],
    ids=["reset_mid_stream", "cut_before_done", "stall_mid_stream"],
)
def test_sdk_raises_on_failure_after_commit(rig: Rig, sdk: openai.OpenAI, fault: Behaviour) -> None:
    rig.a.script(replace(fault, text="alpha one two three four"))
    rig.b.script(ok(text="must not be used"))
    seen = len(rig.b.requests)
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        _streamed_text(sdk, f"pair/sdk-after-commit-{fault.kind}", received)
    assert not isinstance(caught.value, openai.APIConnectionError)  # the gateway's error event
    assert "".join(received) == "alpha one"
    assert len(rig.b.requests) == seen


# --- the SDK's own retries stay off once failover is spent -----------------------------------


@pytest.fixture
def retrying_sdk(rig: Rig) -> Iterator[openai.OpenAI]:
    """The SDK's default retries: only the gateway's headers keep it from retrying."""
    with openai.OpenAI(
        base_url=f"{rig.gw.url}/v1",
        api_key="sk-client",
        max_retries=2,
        timeout=10,
        http_client=httpx.Client(trust_env=False),
    ) as client:
        yield client


def test_sdk_does_not_retry_exhausted_failover(rig: Rig, retrying_sdk: openai.OpenAI) -> None:
    rig.a.script(status(500), status(500), status(500))
    seen = len(rig.a.requests)
    with pytest.raises(openai.InternalServerError) as caught:
        retrying_sdk.chat.completions.create(model="solo/sdk-500", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == 500
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert caught.value.request_id  # x-request-id reached the SDK
    assert len(rig.a.requests) == seen + 1  # one gateway request, one attempt: no SDK retry


def test_sdk_rate_limit_from_every_target(rig: Rig, retrying_sdk: openai.OpenAI) -> None:
    rig.a.script(rate_limited("1"))
    rig.b.script(rate_limited("1"))
    seen = (len(rig.a.requests), len(rig.b.requests))
    with pytest.raises(openai.RateLimitError) as caught:
        retrying_sdk.chat.completions.create(model="pair/sdk-429", messages=MESSAGES)  # type: ignore[arg-type]
    headers = caught.value.response.headers
    assert (headers["retry-after"], headers["x-should-retry"]) == ("1", "false")
    assert caught.value.code == "rate_limit_exceeded"
    assert (len(rig.a.requests), len(rig.b.requests)) == (seen[0] + 1, seen[1] + 1)


def test_sdk_all_targets_open(rig: Rig, retrying_sdk: openai.OpenAI) -> None:
    rig.a.script(rate_limited("30"))
    seen = len(rig.a.requests)
    with pytest.raises(openai.RateLimitError):
        retrying_sdk.chat.completions.create(model="solo/sdk-open", messages=MESSAGES)  # type: ignore[arg-type]
    with pytest.raises(openai.InternalServerError) as caught:
        retrying_sdk.chat.completions.create(model="solo/sdk-open", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == 503
    assert caught.value.code == "no_available_target"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert 25 <= int(caught.value.response.headers["retry-after"]) <= 30
    assert len(rig.a.requests) == seen + 1


@pytest.mark.parametrize(
    ("code", "exc"),
    [
        (400, openai.BadRequestError),
        (413, openai.APIStatusError),
        (422, openai.UnprocessableEntityError),
    ],
)
def test_sdk_client_errors_pass_through(
    rig: Rig, sdk: openai.OpenAI, code: int, exc: type[openai.APIStatusError]
) -> None:
    rig.a.script(status(code))
    rig.b.script(ok())
    seen = len(rig.b.requests)
    with pytest.raises(exc) as caught:
        sdk.chat.completions.create(model=f"pair/sdk-{code}", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == code
    assert caught.value.type == "invalid_request_error"
    assert len(rig.b.requests) == seen


# --- stream: false backends: the gateway synthesizes the stream ------------------------------


def test_non_streaming_backend_gives_a_correct_stream(rig: Rig) -> None:
    rig.a.script(ok(text="a whole answer at once"))
    out = call(rig.client, "flat/raw", stream=True)
    assert out.status == 200 and out.done
    sent = rig.a.requests[-1].json
    assert sent["stream"] is False and "stream_options" not in sent  # called without streaming
    chunks = out.chunks
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert sum("role" in c["choices"][0]["delta"] for c in chunks) == 1
    assert out.text == "a whole answer at once"
    finishes = [
        c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]
    ]
    assert finishes == ["stop"]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({(c["id"], c["created"], c["model"]) for c in chunks}) == 1
    assert all(c.get("usage") is None for c in chunks)  # the client did not ask


def test_non_streaming_backend_usage_chunk(rig: Rig) -> None:
    rig.a.script(ok(text="counted", usage=(7, 3)))
    out = call(rig.client, "flat/usage", stream=True, stream_options={"include_usage": True})
    assert out.done
    usage = [json.loads(f) for f in out.frames if '"usage":{' in f.replace(" ", "")]
    assert len(usage) == 1
    assert usage[0]["choices"] == []
    assert usage[0]["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert json.loads(out.frames[-2]) == usage[0]  # right before [DONE]


def test_sdk_reassembles_synthesized_stream(rig: Rig, sdk: openai.OpenAI) -> None:
    rig.a.script(ok(text="same text either way"), ok(text="same text either way"))
    whole = sdk.chat.completions.create(model="flat/sdk", messages=MESSAGES)  # type: ignore[arg-type]
    streamed = _streamed_text(sdk, "flat/sdk")
    assert whole.choices[0].message.content == streamed == "same text either way"


def test_sdk_synthesized_tool_call(rig: Rig, sdk: openai.OpenAI) -> None:
    rig.a.script(ok(tool_calls=[WEATHER]))
    stream = sdk.chat.completions.create(model="flat/tools", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    names, args, finish = [], "", None
    for chunk in stream:
        choice = chunk.choices[0]
        for tc in choice.delta.tool_calls or []:
            assert tc.index == 0
            if tc.function and tc.function.name:
                names.append(tc.function.name)
            args += (tc.function.arguments or "") if tc.function else ""
        finish = choice.finish_reason or finish
    assert names == ["get_weather"]
    assert json.loads(args) == {"city": "Paris"}
    assert finish == "tool_calls"


# --- the Anthropic front door ----------------------------------------------------------------


@pytest.fixture
def claude_sdk(rig: Rig) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=rig.gw.url,
        api_key="sk-client",
        max_retries=0,
        timeout=10,
    ) as client:
        yield client


def test_anthropic_error_event_after_commit(rig: Rig, claude_sdk: anthropic.Anthropic) -> None:
    rig.claude.script(reset_mid_stream(2))
    with (
        pytest.raises(anthropic.APIError),
        claude_sdk.messages.stream(
            model="claude/after-commit", max_tokens=50, messages=MESSAGES
        ) as s,  # type: ignore[arg-type]
    ):
        for _ in s.text_stream:
            pass
    rig.claude.script(reset_mid_stream(2))
    with rig.client.stream(
        "POST",
        "/v1/messages",
        json={"model": "claude/after-commit-raw", "max_tokens": 50, "messages": MESSAGES,
              "stream": True},
    ) as resp:  # fmt: skip
        raw = resp.read().decode()
    assert "event: error" in raw.rsplit("\n\n", 2)[-2]
    assert "message_stop" not in raw
