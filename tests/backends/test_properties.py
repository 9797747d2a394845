"""Properties across the new translators: requests keep what they carry, and any split of
an upstream NDJSON stream gives the client the same events."""

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from proxy import ndjson
from proxy.sse import Event
from proxy.template import HttpTemplate
from proxy.translate import openai_ollama
from proxy.translate.openai_http import HttpTranslator
from proxy.translate.openai_ollama_stream import Stream

_roles = st.sampled_from(["system", "user", "assistant"])
_messages = st.lists(
    st.fixed_dictionaries({"role": _roles, "content": st.text(max_size=30)}),
    min_size=1,
    max_size=6,
)


@given(_messages, st.none() | st.floats(0, 2), st.none() | st.integers(1, 4096))
def test_ollama_chat_request_keeps_every_message_and_parameter(
    messages: list[dict[str, str]], temperature: float | None, max_tokens: int | None
) -> None:
    body: dict[str, Any] = {"model": "a", "messages": messages}
    if temperature is not None:
        body["temperature"] = temperature
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    out = json.loads(openai_ollama.request(json.dumps(body).encode(), "m", False))
    assert [(m["role"], m.get("content", "")) for m in out["messages"]] == [
        (m["role"], m["content"]) for m in messages
    ]
    options = out.get("options", {})
    assert options.get("temperature") == temperature
    assert options.get("num_predict") == max_tokens


@given(
    st.lists(st.text(min_size=1, max_size=8), max_size=6),
    st.lists(st.integers(0, 2000), max_size=10),
)
def test_any_split_of_an_ndjson_stream_gives_the_same_client_events(
    texts: list[str], cuts: list[int]
) -> None:
    lines = [{"message": {"role": "assistant", "content": t}, "done": False} for t in texts]
    lines.append({"done": True, "done_reason": "stop", "eval_count": len(texts)})
    data = b"".join(json.dumps(x).encode() + b"\n" for x in lines)

    def run(pieces: list[bytes]) -> list[Event]:
        decoder = ndjson.Decoder()
        stream = Stream("m", include_usage=True, id="chatcmpl-1", created=1)
        out = [e for p in pieces for ev in decoder.feed(p) for e in stream.feed(ev)]
        return out + [e for ev in decoder.close() for e in stream.feed(ev)] + stream.close()

    bounds = sorted({c for c in cuts if c < len(data)})
    pieces = [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]
    assert run(pieces) == run([data])


_key = st.text(min_size=1, max_size=6).filter(lambda s: "." not in s and not s.isdigit())


@given(st.lists(_key, min_size=1, max_size=4), st.text(max_size=40), st.integers(0, 10**6))
def test_http_answer_text_and_usage_are_read_at_their_paths(
    keys: list[str], text: str, tokens: int
) -> None:
    doc: Any = text
    for k in reversed(keys):
        doc = {k: doc}
    doc = {"body": doc, "n": {"out": tokens}}
    t = HttpTemplate(text=("body", *keys), completion_tokens=("n", "out"))
    out = json.loads(HttpTranslator(t).response(json.dumps(doc).encode(), "m", id="c"))
    assert out["choices"][0]["message"]["content"] == text
    assert out["usage"]["completion_tokens"] == tokens
