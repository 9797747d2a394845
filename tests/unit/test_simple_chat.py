"""proxy.translate.simple_openai: /chat requests to OpenAI bodies, answers and streams back."""

import itertools
import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy import errors
from proxy.sse import Decoder
from proxy.translate import simple_openai as so


def test_prompt_becomes_a_user_message_after_the_system() -> None:
    req = so.decode(b'{"model": "gpt-4o-mini", "prompt": "Hello", "system": "Be brief",'
                    b' "temperature": 0.2, "max_tokens": 20}')  # fmt: skip
    body = json.loads(so.to_openai(req, so.model_name(req, None)))
    assert body == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief"},
            {"role": "user", "content": "Hello"},
        ],
        "temperature": 0.2,
        "max_tokens": 20,
    }


def test_messages_stream_and_provider() -> None:
    req = so.decode(
        b'{"provider": "openai", "model": "gpt-4o", "stream": true,'
        b' "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}'
    )
    assert so.model_name(req, "demo") == "openai:gpt-4o"
    body = json.loads(so.to_openai(req, "openai:gpt-4o"))
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]


def test_default_model_when_absent_or_empty() -> None:
    assert so.model_name(so.decode(b'{"prompt": "x"}'), "demo") == "demo"
    assert so.model_name(so.decode(b'{"prompt": "x", "model": ""}'), "demo") == "demo"
    with pytest.raises(errors.BadRequest, match="default_model"):
        so.model_name(so.decode(b'{"prompt": "x"}'), None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1]", "Expected `object`, got `array`"),
        (b"{", "must be a JSON object"),
        (b'{"model": "m"}', "exactly one of prompt"),
        (b'{"model": "m", "prompt": "a", "messages": []}', "exactly one of prompt"),
        (b'{"model": 3, "prompt": "a"}', "Expected `str | null`"),
        (b'{"model": "m", "prompt": "a", "colour": 1}', "unknown field"),
    ],
)
def test_bad_requests(body: bytes, message: str) -> None:
    with pytest.raises(errors.BadRequest, match=message):
        so.decode(body)


def test_answer() -> None:
    completion = {
        "id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }  # fmt: skip
    out = json.loads(so.answer(json.dumps(completion).encode(), "openai", "req-1"))
    assert out == {
        "text": "Hi!",
        "model": "gpt-4o-2024-08-06",
        "backend": "openai",
        "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7},
        "request_id": "req-1",
    }
    empty = json.loads(so.answer(b'{"choices": []}', "b", "r"))
    assert empty["text"] == "" and empty["usage"]["total_tokens"] == 0


def _stream(pieces: list[str], usage: bool = True) -> bytes:
    chunks = [{"model": "m1", "choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
    chunks += [{"model": "m1", "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    chunks.append({"model": "m1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage:
        n = len(pieces)
        counts = {"prompt_tokens": 3, "completion_tokens": n, "total_tokens": 3 + n}
        chunks.append({"model": "m1", "choices": [], "usage": counts})
    return (
        b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    )


def _run(raw: bytes, cuts: list[int]) -> list[dict[str, object]]:
    decoder, stream, out = Decoder(), so.Stream("openai", "req-9"), b""
    edges = [0, *sorted(c % (len(raw) + 1) for c in cuts), len(raw)]
    for a, b in itertools.pairwise(edges):
        for event in decoder.feed(raw[a:b]):
            out += stream.feed(event)
    out += stream.end()
    return [json.loads(e.data) for e in Decoder().feed(out)]


@given(st.lists(st.text(min_size=1, max_size=8), max_size=6), st.lists(st.integers(0, 10**6)))
def test_stream_text_joins_to_the_upstream_text_whatever_the_split(
    pieces: list[str], cuts: list[int]
) -> None:
    events = _run(_stream(pieces), cuts)
    *deltas, summary = events
    assert "".join(str(d["text"]) for d in deltas) == "".join(pieces)
    assert summary == {
        "model": "m1", "backend": "openai", "finish_reason": "stop", "done": True,
        "usage": {"input_tokens": 3, "output_tokens": len(pieces),
                  "total_tokens": 3 + len(pieces)},
        "request_id": "req-9",
    }  # fmt: skip


def test_an_upstream_error_chunk_ends_with_an_error_event_and_no_summary() -> None:
    raw = _stream(["a"], usage=False).split(b"data: [DONE]")[0]
    raw = raw.replace(b'"finish_reason": "stop"', b'"finish_reason": null')
    raw += b'data: {"error": {"message": "upstream broke", "type": "api_error"}}\n\n'
    decoder, stream = Decoder(), so.Stream("b", "r")
    out = b"".join(stream.feed(e) for e in decoder.feed(raw)) + stream.end()
    events = Decoder().feed(out)
    assert [e.event for e in events] == ["", "error"]
    assert json.loads(events[1].data)["error"]["message"] == "upstream broke"
    assert stream.done


def test_garbage_ends_with_an_error_event() -> None:
    stream = so.Stream("b", "r")
    (event,) = Decoder().feed(b"data: {not json\n\n")
    (out,) = Decoder().feed(stream.feed(event))
    assert out.event == "error"
    assert msgspec.json.decode(out.data)["error"]["code"] == "upstream_failed"
