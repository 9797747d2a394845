"""Text and tool arguments out of raw SSE frames, without decoding their JSON."""

import json

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from proxy import synthesize
from proxy.interactive.streamtext import Split, split

pieces = st.lists(st.text(max_size=12), max_size=8)


def escaped(text: str) -> str:
    return msgspec.json.encode(text)[1:-1].decode()


def openai_frame(delta: dict[str, object], spaced: bool) -> bytes:
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta}],
    }
    data = json.dumps(chunk) if spaced else msgspec.json.encode(chunk).decode()
    return f"data: {data}\n\n".encode()


@given(pieces, pieces, st.booleans())
def test_openai_text_and_arguments(texts: list[str], args: list[str], spaced: bool) -> None:
    frames = [openai_frame({"role": "assistant", "content": ""}, spaced)]
    frames += [openai_frame({"content": t}, spaced) for t in texts]
    frames += [
        openai_frame({"tool_calls": [{"index": 0, "function": {"arguments": a}}]}, spaced)
        for a in args
    ]
    frames.append(b"data: [DONE]\n\n")
    expected = Split(escaped("".join(texts)), escaped("".join(args)))
    if not spaced:  # json.dumps escapes non-ASCII; msgspec doesn't: compare like with like
        assert split(b"".join(frames), "openai") == expected
    got = [split(f, "openai") for f in frames]
    assert "".join(g.text for g in got) == split(b"".join(frames), "openai").text
    assert json.loads(f'"{split(b"".join(frames), "openai").text}"') == "".join(texts)
    assert json.loads(f'"{split(b"".join(frames), "openai").arguments}"') == "".join(args)


@given(st.text(max_size=40))
def test_anthropic_canonical_stream(text: str) -> None:
    message = {
        "id": "m",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": text},
            {"type": "tool_use", "id": "t", "name": "f", "input": {"q": "text"}},
        ],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1, "output_tokens": 2},
    }
    frames = synthesize.anthropic_stream(msgspec.json.encode(message))
    got = split(frames, "anthropic")
    assert json.loads(f'"{got.text}"') == "hmm" + text
    assert json.loads(json.loads(f'"{got.arguments}"')) == {"q": "text"}


def test_nothing_to_take() -> None:
    assert split(b": keepalive\n\n", "openai") == Split("", "")
    assert split(b'data: {"choices":[],"usage":{"total_tokens":3}}\n\n', "openai") == ("", "")
    # A key spelled inside a string value is not a key.
    frame = openai_frame({"content": 'say "content":"x"'}, spaced=False)
    assert json.loads(f'"{split(frame, "openai").text}"') == 'say "content":"x"'
