"""The Responses API over the new backend types, through the official `openai` SDK: Ollama
(native API) and two custom-shape `type: http` servers, created and streamed, reached through
the generic Responses composition (`translate.responses_compose`)."""

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.backends.servers import FlatServer, NestedServer, OllamaServer
from tests.conftest import Gateway, RoutesFile, launch


@pytest.fixture
def running(
    ollama: OllamaServer, nested: NestedServer, flat: FlatServer, routes_file: RoutesFile,
    tmp_path: Path,
) -> Iterator[Gateway]:  # fmt: skip
    path = routes_file(
        f"""
        version: 1
        backends:
          local: {{type: ollama, base_url: "{ollama.url}", discover: false}}
          nested:
            type: http
            base_url: {nested.url}
            request:
              path: /v2/infer
              stream_path: /v2/infer/stream
              body: {{inputs: {{prompt: "{{{{prompt}}}}"}}, params: {{n: "{{{{max_tokens}}}}"}}}}
            response:
              text: output.text
              finish: final.stop
              usage: {{prompt_tokens: meta.tokens_in, completion_tokens: meta.tokens_out}}
              stream: {{format: ndjson, text: delta.text}}
          flat:
            type: http
            base_url: {flat.url}
            request: {{path: /generate, body: {{text: "{{{{prompt}}}}", stream: "{{{{stream}}}}"}}}}
            response: {{text: results.0.generated_text, stream: {{format: sse, text: token.text}}}}
        models:
          llama: {{targets: [{{backend: local, model: llama3.2}}]}}
          inhouse: {{targets: [{{backend: nested, model: inhouse-7b}}]}}
          flat: {{targets: [{{backend: flat}}]}}
        """
    )
    gw = launch(path, tmp_path)
    try:
        yield gw
    finally:
        gw.stop()


@pytest.mark.parametrize(
    ("model", "text"),
    [
        ("llama", "hello from llama3.2: 5"),
        ("inhouse", "hello from nested: 5"),
        ("flat", "hello from flat: 5"),
    ],
)
def test_responses_sdk_created_and_streamed(running: Gateway, model: str, text: str) -> None:
    client = openai.OpenAI(base_url=f"{running.url}/v1", api_key="x", max_retries=0, timeout=10)
    whole = client.responses.create(model=model, input="hello")
    assert whole.output_text == text and whole.status in ("completed", "incomplete")
    # Raw events, not the stream helper: its get_final_response() wants response.completed,
    # and a length stop ends in response.incomplete, as OpenAI's own streams do.
    events = list(client.responses.create(model=model, input="hello", stream=True))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    final = events[-1].response  # type: ignore[union-attr]
    assert events[-1].type == f"response.{whole.status}"
    assert "".join(deltas) == final.output_text == text
    again = client.responses.create(model=model, input="and again", previous_response_id=whole.id)
    assert again.previous_response_id == whole.id and again.output_text
