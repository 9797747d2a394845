"""The official `openai` SDK's Responses API against a running gateway: `responses.create`
and `responses.stream` over every backend kind — OpenAI's own Responses API (pass-through),
an OpenAI-compatible server, Anthropic, Gemini (translated) and the built-in mock — with text,
function calls and their outputs sent back through `previous_response_id`, JSON-schema output,
usage, GET/DELETE of stored responses, and a failure after commit that the SDK raises.
"""

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from proxy.sse import Decoder
from tests.conftest import Gateway, RoutesFile, serve
from tests.upstreams import FakeUpstream, ok, reset_mid_stream

pytestmark = pytest.mark.timeout(30)

WEATHER = ("get_weather", '{"city": "Paris"}')
TOOLS: Any = [
    {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": False,
    }
]


@pytest.fixture(scope="module")
def ups() -> Iterator[dict[str, FakeUpstream]]:
    with (
        FakeUpstream() as responses_api,
        FakeUpstream() as compatible,
        FakeUpstream(wire="anthropic") as anthropic,
        FakeUpstream(wire="gemini") as gemini,
    ):
        yield {
            "responses": responses_api,
            "compatible": compatible,
            "anthropic": anthropic,
            "gemini": gemini,
        }


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, ups: dict[str, FakeUpstream]) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("responses")
    config = RoutesFile(directory)(
        f"""
        version: 1
        settings:
          failure_threshold: 100
          responses_store: {{ttl: 1h}}
        backends:
          demo: {{type: mock}}
          oai: {{type: openai, base_url: "{ups["responses"].url}", api_key: sk-up, responses: true}}
          compatible: {{type: openai, base_url: "{ups["compatible"].url}"}}
          claude: {{type: anthropic, base_url: "{ups["anthropic"].root}", api_key: sk-ant}}
          gem: {{type: gemini, base_url: "{ups["gemini"].root}", api_key: AIza-x}}
        models:
          demo: {{targets: [{{backend: demo}}]}}
          responses: {{targets: [{{backend: oai, model: up-model}}]}}
          compatible: {{targets: [{{backend: compatible, model: up-model}}]}}
          anthropic: {{targets: [{{backend: claude, model: up-model}}]}}
          gemini: {{targets: [{{backend: gem, model: up-model}}]}}
        """
    )
    with serve(config, directory) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def client(gw: Gateway) -> Iterator[openai.OpenAI]:
    http_client = httpx.Client(trust_env=False, timeout=10)
    sdk = openai.OpenAI(
        base_url=f"{gw.url}/v1", api_key="sk-unused", max_retries=0, timeout=10,
        http_client=http_client,
    )  # fmt: skip
    try:
        yield sdk
    finally:
        sdk.close()


TRANSLATED = ("compatible", "anthropic", "gemini")
ALL = ("responses", *TRANSLATED)


@pytest.mark.parametrize("model", [*ALL, "demo"])
def test_create_text(client: openai.OpenAI, model: str) -> None:
    raw = client.responses.with_raw_response.create(model=model, input="hello there gateway")
    r = raw.parse()
    assert r.object == "response" and r.status == "completed" and r.output_text
    assert r.usage is not None and r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert raw.headers["x-proxy-backend"] and raw.request_id == raw.headers["x-request-id"]


@pytest.mark.parametrize("model", [*ALL, "demo"])
def test_stream_text_equals_its_deltas(client: openai.OpenAI, model: str) -> None:
    with client.responses.stream(model=model, input="hello there gateway") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas and "".join(deltas) == final.output_text
    assert final.usage is not None and final.usage.total_tokens > 0


def test_pass_through_is_byte_faithful(client: openai.OpenAI, ups: dict[str, FakeUpstream]) -> None:
    up = ups["responses"]
    before = len(up.requests)
    client.responses.create(
        model="responses", input="hi", extra_body={"future_field": {"x": [1, 2]}}
    )
    sent = up.requests[before]
    assert sent.path == "/v1/responses"
    assert sent.json == {"model": "up-model", "input": "hi", "future_field": {"x": [1, 2]}}


@pytest.mark.parametrize("model", TRANSLATED)
@pytest.mark.parametrize("streamed", [False, True])
def test_function_call_round_trip_with_previous_response_id(
    client: openai.OpenAI, ups: dict[str, FakeUpstream], model: str, streamed: bool
) -> None:
    up = ups[model]
    up.script(ok(text="Checking.", tool_calls=[WEATHER]), ok(text="Sunny in Paris."))
    first = _answer(client, streamed, model=model, input="weather in Paris?", tools=TOOLS)
    [call] = [o for o in first.output if o.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    follow = [{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}]
    second = _answer(
        client, streamed, model=model, input=follow, tools=TOOLS, previous_response_id=first.id
    )
    assert second.output_text == "Sunny in Paris." and second.previous_response_id == first.id
    sent = json.dumps(up.requests[-1].json)
    assert "weather in Paris?" in sent and "sunny" in sent and "get_weather" in sent


def _answer(client: openai.OpenAI, streamed: bool, **kwargs: Any) -> Any:
    if not streamed:
        return client.responses.create(**kwargs)
    with client.responses.stream(**kwargs) as stream:
        return stream.get_final_response()


def test_stored_responses_can_be_read_and_deleted(client: openai.OpenAI) -> None:
    r = client.responses.create(model="compatible", input="keep this")
    got = client.responses.retrieve(r.id)
    assert got.id == r.id and got.output_text == r.output_text
    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(r.id)


def test_store_false_is_not_kept(client: openai.OpenAI) -> None:
    r = client.responses.create(model="compatible", input="forget this", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


def test_unknown_previous_response_id_is_a_400_naming_it(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="anthropic", input="x", previous_response_id="resp_nope")
    assert "resp_nope" in err.value.message and err.value.param == "previous_response_id"


def test_json_schema_output_reaches_a_compatible_backend(
    client: openai.OpenAI, ups: dict[str, FakeUpstream]
) -> None:
    up = ups["compatible"]
    up.script(ok(text='{"city": "Paris"}'))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    r = client.responses.create(
        model="compatible",
        input="where?",
        text={"format": {"type": "json_schema", "name": "place", "schema": schema}},
    )
    assert json.loads(r.output_text) == {"city": "Paris"}
    sent = up.requests[-1].json
    assert sent["response_format"]["json_schema"]["schema"] == schema


@pytest.mark.parametrize("model", ["responses", "compatible", "anthropic"])
def test_a_failure_after_commit_raises_in_the_sdk(
    client: openai.OpenAI, ups: dict[str, FakeUpstream], model: str
) -> None:
    ups[model].script(reset_mid_stream(after_chunks=2))
    seen: list[str] = []
    with pytest.raises(openai.APIError):
        stream = client.responses.create(model=model, input="one two three four", stream=True)
        for event in stream:
            seen.append(event.type)
    assert "response.completed" not in seen and "response.output_text.delta" in seen


@pytest.mark.parametrize("model", ["responses", "compatible"])
def test_a_cut_stream_ends_with_numbered_failure_events(
    gw: Gateway, ups: dict[str, FakeUpstream], model: str
) -> None:
    ups[model].script(reset_mid_stream(after_chunks=2))
    body = {"model": model, "input": "one two three four", "stream": True}
    raw = httpx.post(f"{gw.url}/v1/responses", json=body, timeout=10, trust_env=False).content
    events = Decoder().feed(raw)
    numbers = [json.loads(e.data)["sequence_number"] for e in events]
    assert numbers == list(range(len(numbers)))
    assert events[-1].event == "error" and json.loads(events[-1].data)["error"]["message"]
    if model == "compatible":  # translated: the response object says it failed, too
        assert events[-2].event == "response.failed"
