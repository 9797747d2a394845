"""Golden transcripts: real-format upstream SSE in `tests/golden/<backend>_<case>.sse`, the
translated stream a client receives in `<backend>_<case>.to-<front>.sse` (reviewed by hand).

Each transcript is also reassembled with the official SDKs' accumulators and checked for what
a client must end up with, so a golden file can't silently bless a wrong translation; and any
split of the upstream bytes must give the same translated stream.
"""

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.sse import Decoder, Event, encode
from proxy.translate import StreamTranslator, pick
from tests.unit.test_translate_conformance import anthropic_final, openai_final

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
CASES = sorted(
    (p.stem, front)
    for p in GOLDEN.glob("*.sse")
    if ".to-" not in p.name
    for front in ("openai", "anthropic")
    if front != p.stem.split("_")[0]
)


def stream(name: str, front: str) -> StreamTranslator:
    translator = pick(front, name.split("_")[0])
    assert translator is not None
    ident = "chatcmpl-golden" if front == "openai" else "msg_golden"
    return translator.Stream("alias-model", include_usage=True, id=ident, created=1700000000)


def translate(name: str, front: str, chunks: list[bytes]) -> list[Event]:
    s = stream(name, front)
    decoder = Decoder()
    out: list[Event] = []
    for chunk in chunks:
        for event in decoder.feed(chunk):
            out += s.feed(event)
    return out + s.close()


def upstream(name: str) -> bytes:
    return (GOLDEN / f"{name}.sse").read_bytes()


def test_every_transcript_has_its_expected_output() -> None:
    assert len(CASES) == 14
    for name, front in CASES:
        assert (GOLDEN / f"{name}.to-{front}.sse").exists(), (name, front)


@pytest.mark.parametrize(("name", "front"), CASES)
def test_golden(name: str, front: str) -> None:
    out = translate(name, front, [upstream(name)])
    got = b"".join(encode(e.data, e.event) for e in out)
    assert got == (GOLDEN / f"{name}.to-{front}.sse").read_bytes()


@settings(deadline=None)  # SDK validation per example: no per-example deadline
@given(st.data())
def test_any_split_of_upstream_bytes_gives_the_same_events(data: st.DataObject) -> None:
    name, front = data.draw(st.sampled_from(CASES))
    raw = upstream(name)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=12)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert translate(name, front, chunks) == translate(name, front, [raw])


# -- what the client's SDK ends up with ---------------------------------------------------------


def test_anthropic_text_to_openai() -> None:
    final = openai_final(translate("anthropic_text", "openai", [upstream("anthropic_text")]))
    choice = final.choices[0]
    assert choice.message.content == "Hello, world!" and choice.finish_reason == "stop"
    assert final.usage is not None
    # 25 uncached + 100 cache reads: prompt_tokens counts all input tokens
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (125, 15)
    assert final.usage.prompt_tokens_details is not None
    assert final.usage.prompt_tokens_details.cached_tokens == 100


def test_anthropic_parallel_tools_to_openai() -> None:
    final = openai_final(translate("anthropic_tools", "openai", [upstream("anthropic_tools")]))
    message = final.choices[0].message
    assert message.content == "Checking both cities."
    calls = message.tool_calls or []
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather", {"location": "Paris", "unit": "celsius"}),
        ("toolu_01Hq5Wq8nCkzR4xR1m9y2Zp3", "get_weather", {"location": "London"}),
    ]
    assert final.choices[0].finish_reason == "tool_calls"


def test_anthropic_thinking_to_openai_reasoning_content() -> None:
    events = translate("anthropic_thinking", "openai", [upstream("anthropic_thinking")])
    reasoning = "".join(
        json.loads(e.data)["choices"][0]["delta"].get("reasoning_content", "") for e in events[:-2]
    )
    assert (
        reasoning
        == "Let me solve this step by step:\n\n1. First break down 27 * 453\n2. 453 = 400 + 50 + 3"
    )
    final = openai_final(events)
    # the redacted block and the server tool block (unknown here) are skipped, no tool call
    assert final.choices[0].message.content == "27 * 453 = 12,231"
    assert not final.choices[0].message.tool_calls


@pytest.mark.parametrize("name", ["anthropic_error", "gemini_error"])
def test_upstream_error_mid_stream_to_openai(name: str) -> None:
    events = translate(name, "openai", [upstream(name)])
    assert "[DONE]" not in [e.data for e in events], "an error never ends like a success"
    last = json.loads(events[-1].data)
    assert set(last["error"]) == {"message", "type", "param", "code"}
    assert last["error"]["type"] == "overloaded_error"


@pytest.mark.parametrize("name", ["openai_error", "gemini_error"])
def test_upstream_error_mid_stream_to_anthropic(name: str) -> None:
    events = translate(name, "anthropic", [upstream(name)])
    assert events[-1].event == "error"
    assert json.loads(events[-1].data)["type"] == "error"
    assert "message_stop" not in [e.event for e in events]


def test_openai_text_to_anthropic() -> None:
    final = anthropic_final(translate("openai_text", "anthropic", [upstream("openai_text")]))
    assert [b.model_dump()["text"] for b in final.content] == ["Hello, world!"]
    assert final.stop_reason == "end_turn"
    # 1200 prompt tokens, 1024 of them cached
    assert (final.usage.input_tokens, final.usage.output_tokens) == (176, 10)
    assert final.usage.cache_read_input_tokens == 1024


def test_openai_parallel_tools_to_anthropic() -> None:
    final = anthropic_final(translate("openai_tools", "anthropic", [upstream("openai_tools")]))
    blocks = [b.model_dump() for b in final.content]
    assert [(b["type"], b["id"], b["input"]) for b in blocks] == [
        ("tool_use", "call_DdmO9pD3xa9XTPNJ32zg2hcA", {"location": "Paris"}),
        ("tool_use", "call_ABmX3k1dDiLGDJGm4ZS6aJ0d", {"location": "London"}),
    ]
    assert final.stop_reason == "tool_use"


def test_openai_reasoning_to_anthropic_thinking() -> None:
    final = anthropic_final(
        translate("openai_reasoning", "anthropic", [upstream("openai_reasoning")])
    )
    blocks = [b.model_dump() for b in final.content]
    assert blocks[0]["type"] == "thinking"
    assert blocks[0]["thinking"] == "The user greets me. Reply briefly."
    assert blocks[1] == {"type": "text", "text": "Hi there!", "citations": None}
    assert final.stop_reason == "max_tokens"


def test_gemini_function_calls_to_openai() -> None:
    final = openai_final(translate("gemini_tools", "openai", [upstream("gemini_tools")]))
    message = final.choices[0].message
    calls = message.tool_calls or []
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("call_golden_0", "get_weather", {"location": "Paris", "unit": "celsius"}),
        ("call_golden_1", "get_weather", {"location": "London"}),
    ]
    assert message.content == "Let me look both up."
    assert final.choices[0].finish_reason == "tool_calls"  # Gemini said STOP


def test_gemini_function_calls_to_anthropic() -> None:
    final = anthropic_final(translate("gemini_tools", "anthropic", [upstream("gemini_tools")]))
    kinds = [(b.type, b.model_dump().get("input")) for b in final.content]
    assert kinds == [
        ("text", None),
        ("tool_use", {"location": "Paris", "unit": "celsius"}),
        ("tool_use", {"location": "London"}),
    ]
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (70, 30)


def test_gemini_text_with_thoughts() -> None:
    final = openai_final(translate("gemini_text", "openai", [upstream("gemini_text")]))
    assert final.choices[0].message.content == "The quick brown fox."
    assert final.usage is not None
    # completion tokens include the 12 thought tokens, as OpenAI's include reasoning
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (8, 17)
    anthropic = anthropic_final(translate("gemini_text", "anthropic", [upstream("gemini_text")]))
    assert [b.type for b in anthropic.content] == ["thinking", "text"]
