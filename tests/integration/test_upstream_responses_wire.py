"""The fake OpenAI upstream's Responses API, read by the official SDK: what the pass-through
path's tests compare against. Frames are checked against the SDK's types and the stream
invariants (`tests/unit/responses_support.check_responses`)."""

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from proxy.sse import Decoder
from tests.unit.responses_support import check_responses, responses_final
from tests.upstreams import FakeUpstream, ok, reset_mid_stream

pytestmark = pytest.mark.timeout(10)
WEATHER = ("get_weather", '{"city": "Paris", "days": [1, 2]}')


@pytest.fixture
def sdk(upstream: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=upstream.url, api_key="sk-x", max_retries=0, timeout=5) as c:
        yield c


def test_create_echoes_model_and_prompt(upstream: FakeUpstream, sdk: openai.OpenAI) -> None:
    r = sdk.responses.create(model="fake-model", input="hello there")
    assert r.id == "resp_fake_0" and r.status == "completed"
    assert r.output_text == "Hello from fake-model. You said: hello there"
    assert r.usage is not None and r.usage.input_tokens == 2
    rec = upstream.requests[0]
    assert rec.path == "/v1/responses" and rec.json == {
        "model": "fake-model",
        "input": "hello there",
    }


def test_stream_text_and_tools(upstream: FakeUpstream, sdk: openai.OpenAI) -> None:
    upstream.script(ok(text="Checking.", tool_calls=[WEATHER]))
    items = [{"role": "user", "content": [{"type": "input_text", "text": "weather?"}]}]
    with sdk.responses.stream(model="fake-model", input=items) as stream:  # type: ignore[arg-type]
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Checking."
    [call] = [o for o in final.output if o.type == "function_call"]
    assert (call.call_id, call.name, json.loads(call.arguments)) == (
        "call_0_0",
        "get_weather",
        {"city": "Paris", "days": [1, 2]},
    )


def test_raw_frames_keep_the_invariants(upstream: FakeUpstream) -> None:
    upstream.script(ok(chunks=["a", "b"], tool_calls=[WEATHER]), ok(finish_reason="length"))
    for expected in ("completed", "incomplete"):
        body = {"model": "m", "input": "x", "stream": True}
        raw = httpx.post(f"{upstream.url}/responses", json=body, timeout=5).content
        events = Decoder().feed(raw)
        check_responses(events)
        assert responses_final(events).status == expected


def test_reset_mid_stream_makes_the_sdk_raise(upstream: FakeUpstream, sdk: openai.OpenAI) -> None:
    upstream.script(reset_mid_stream(after_chunks=1))
    with (
        pytest.raises(openai.APIError),
        sdk.responses.stream(model="fake-model", input="hi there friend") as stream,
    ):
        stream.get_final_response()
