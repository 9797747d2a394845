"""Chat Completions / Anthropic / Gemini SSE → Responses API events.

Golden transcripts: every upstream transcript in `tests/golden/` has its Responses translation
in `<backend>_<case>.to-responses.sse` (reviewed by hand), reassembled with openai-python's own
accumulator. Properties over generated chat streams: every frame validates against the SDK's
types; any split of the upstream bytes gives the same events; a stream is completed (with the
upstream's usage) exactly when the upstream finished, and failed otherwise; text, function call
ids, names and arguments arrive whole.
"""

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.sse import Decoder, Event, encode
from proxy.translate import pick, responses_chat
from proxy.translate.responses_output import passthrough_error
from schemas import responses as rs
from tests.unit.responses_support import check_responses, responses_final, terminal, translate

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
UPSTREAMS = sorted(p.stem for p in GOLDEN.glob("*.sse") if ".to-" not in p.name)


def golden_stream(name: str) -> Any:
    translator = pick("responses", name.split("_")[0])
    assert translator is not None
    return translator.Stream(
        "alias-model", include_usage=True, id="resp_golden", created=1700000000
    )


def golden(name: str, chunks: list[bytes] | None = None) -> list[Event]:
    raw = (GOLDEN / f"{name}.sse").read_bytes()
    return translate(golden_stream(name), chunks or [raw])


def test_every_upstream_transcript_has_a_responses_translation() -> None:
    assert len(UPSTREAMS) == 11
    for name in UPSTREAMS:
        assert (GOLDEN / f"{name}.to-responses.sse").exists(), name


@pytest.mark.parametrize("name", UPSTREAMS)
def test_golden(name: str) -> None:
    out = golden(name)
    check_responses(out)
    got = b"".join(encode(e.data, e.event) for e in out)
    assert got == (GOLDEN / f"{name}.to-responses.sse").read_bytes()


@settings(deadline=None, max_examples=60)
@given(st.data())
def test_any_split_of_golden_upstream_bytes_gives_the_same_events(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(UPSTREAMS))
    raw = (GOLDEN / f"{name}.sse").read_bytes()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=12)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert golden(name, chunks) == golden(name)


@pytest.mark.parametrize("name", ["openai_text", "anthropic_text", "gemini_text"])
def test_golden_text_reassembles_in_the_sdk(name: str) -> None:
    final = responses_final(golden(name))
    assert final.status == "completed"
    assert final.output_text.startswith("Hello") or final.output_text
    assert final.usage is not None and final.usage.total_tokens > 0


def test_golden_openai_tools_carry_ids_names_and_arguments() -> None:
    final = responses_final(golden("openai_tools"))
    calls = [
        (o.call_id, o.name, json.loads(o.arguments))
        for o in final.output
        if o.type == "function_call"
    ]
    assert calls == [
        ("call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_weather", {"location": "Paris"}),
        ("call_ABmX3k1dDiLGDJGm4ZS6aJ0d", "get_weather", {"location": "London"}),
    ]
    assert final.usage is not None and final.usage.input_tokens == 80


@pytest.mark.parametrize("name", ["anthropic_tools", "gemini_tools"])
def test_golden_translated_tools_are_function_calls(name: str) -> None:
    final = responses_final(golden(name))
    calls = [o for o in final.output if o.type == "function_call"]
    assert len(calls) == 2
    assert all(c.call_id and c.name and isinstance(json.loads(c.arguments), dict) for c in calls)


@pytest.mark.parametrize("name", ["openai_reasoning", "anthropic_thinking", "gemini_text"])
def test_golden_reasoning_is_a_reasoning_item_before_the_message(name: str) -> None:
    final = responses_final(golden(name))
    assert [o.type for o in final.output] == ["reasoning", "message"]
    reasoning = final.output[0]
    assert reasoning.type == "reasoning" and reasoning.content and reasoning.content[0].text
    assert final.output_text


@pytest.mark.parametrize("name", ["openai_error", "anthropic_error", "gemini_error"])
def test_golden_errors_fail_the_response(name: str) -> None:
    out = golden(name)
    check_responses(out)
    assert [e.event for e in out[-2:]] == ["response.failed", "error"]
    failed = terminal(out)
    assert failed["status"] == "failed" and failed["error"]["message"]
    assert not any(e.event == "response.completed" for e in out)


# -- generated chat streams ---------------------------------------------------------------------


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return json.dumps({"id": "c", "object": "chat.completion.chunk", "choices": [choice]})


Call = tuple[str, list[str]]  # name, argument fragments


@st.composite
def chat_streams(draw: st.DrawFn) -> tuple[list[str], list[str], list[Call], Any, Any, str]:
    """(SSE data lines, texts, calls, finish, usage, how it ends)."""
    texts = draw(st.lists(st.text(min_size=1, max_size=6), max_size=4))
    names = st.from_regex(r"[a-z_]{1,8}", fullmatch=True)
    calls = draw(st.lists(st.tuples(names, st.lists(st.text(max_size=5), max_size=3)), max_size=3))
    finish = draw(st.sampled_from(["stop", "tool_calls", "length", "content_filter", None]))
    usage = draw(st.none() | st.tuples(st.integers(0, 999), st.integers(0, 999)))
    lines = [_chunk({"role": "assistant", "content": ""})]
    thoughts = draw(st.lists(st.text(min_size=1, max_size=6), max_size=3))
    lines += [_chunk({"reasoning_content": t}) for t in thoughts]
    lines += [_chunk({"content": t}) for t in texts]
    for k, (name, fragments) in enumerate(calls):
        head = {"index": k, "id": f"call_{k}", "type": "function"}
        lines.append(
            _chunk({"tool_calls": [{**head, "function": {"name": name, "arguments": ""}}]})
        )
        for f in fragments:
            lines.append(_chunk({"tool_calls": [{"index": k, "function": {"arguments": f}}]}))
    if finish is not None:
        lines.append(_chunk({}, finish))
    if usage is not None:
        u = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": usage[0] + usage[1],
        }
        lines.append(json.dumps({"id": "c", "choices": [], "usage": u}))
    end = draw(st.sampled_from(["done", "close", "error", "cut"]))
    if end == "done":
        lines.append("[DONE]")
    elif end == "error":
        cut = draw(st.integers(1, len(lines)))
        lines = [*lines[:cut], json.dumps({"error": {"message": "boom", "type": "server_error"}})]
    elif end == "cut":
        lines = lines[: draw(st.integers(1, len(lines)))]
    return lines, texts, calls, finish, usage, end


def lines_of(lines: list[str], key: str) -> list[str]:
    """The `key` fragments of the deltas in `lines`."""
    found = []
    for line in lines:
        if line.startswith("{"):
            for choice in json.loads(line).get("choices", []):
                if choice["delta"].get(key):
                    found.append(choice["delta"][key])
    return found


def _run(lines: list[str], cuts: list[int] | None = None) -> list[Event]:
    raw = b"".join(encode(line) for line in lines)
    bounds = sorted(c % (len(raw) + 1) for c in cuts or [])
    chunks = [raw[a:b] for a, b in zip([0, *bounds], [*bounds, len(raw)], strict=True)]
    return translate(responses_chat.Stream("m", id="resp_x", created=1), chunks)


@settings(deadline=None)
@given(chat_streams(), st.lists(st.integers(0, 10_000), max_size=8))
def test_generated_streams(case: Any, cuts: list[int]) -> None:
    lines, texts, calls, finish, usage, end = case
    out = _run(lines)
    assert _run(lines, cuts) == out, "any split gives the same events"
    check_responses(out)
    final = terminal(out)
    failed = end == "error"
    finished = finish is not None and _chunk({}, finish) in lines and not failed
    if not finished:
        assert final["status"] == "failed" and final["error"]["message"]
        assert not any(e.event == "response.completed" for e in out)
        return
    assert final["status"] == (
        "incomplete" if finish in ("length", "content_filter") else "completed"
    )
    if usage is None or not any('"usage"' in line for line in lines):
        assert final["usage"] is None
    else:
        assert (final["usage"]["input_tokens"], final["usage"]["output_tokens"]) == usage
    sdk = responses_final(out)
    assert sdk.output_text == "".join(texts)
    thought = "".join(lines_of(lines, "reasoning_content"))
    reasoning = [c.text for o in sdk.output if o.type == "reasoning" for c in o.content or ()]
    assert reasoning == ([thought] if thought else [])
    got = [(o.call_id, o.name, o.arguments) for o in sdk.output if o.type == "function_call"]
    want = [(f"call_{k}", name, "".join(fs) or "{}") for k, (name, fs) in enumerate(calls)]
    assert got == want


def test_interleaved_tool_call_fragments_fail_rather_than_corrupt() -> None:
    lines = [
        _chunk(
            {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}}]}
        ),
        _chunk(
            {"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": ""}}]}
        ),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
        _chunk({}, "tool_calls"),
        "[DONE]",
    ]
    out = _run(lines)
    check_responses(out)
    assert terminal(out)["status"] == "failed"


def test_request_fields_are_echoed_in_the_response_object() -> None:
    req = responses_chat.decode(
        b'{"model":"alias","input":"hi","instructions":"be brief","temperature":0.5,'
        b'"metadata":{"k":"v"},"tools":[{"type":"function","name":"f","parameters":{}}],'
        b'"previous_response_id":"resp_prev","store":false,'
        b'"text":{"format":{"type":"json_schema","name":"x","schema":{"type":"object"}}}}'
    )
    s = responses_chat.Stream("alias", id="resp_y", created=5, request=req)
    out = _run_stream(s, [_chunk({"content": "ok"}, "stop"), "[DONE]"])
    final = terminal(out)
    assert final["instructions"] == "be brief" and final["temperature"] == 0.5
    assert final["metadata"] == {"k": "v"} and final["previous_response_id"] == "resp_prev"
    assert final["store"] is False and final["tools"][0]["name"] == "f"
    assert final["text"]["format"]["type"] == "json_schema"
    assert isinstance(s.response, rs.Response) and s.response.status == "completed"
    assert s.usage is None and s.finish == "stop"


def _run_stream(stream: Any, lines: list[str]) -> list[Event]:
    return translate(stream, [b"".join(encode(line) for line in lines)])


@pytest.mark.parametrize("name", ["openai_text", "anthropic_text", "gemini_text"])
def test_the_gateway_can_fail_a_stream_after_commit(name: str) -> None:
    raw = (GOLDEN / f"{name}.sse").read_bytes()
    stream = golden_stream(name)
    events = Decoder().feed(raw[: len(raw) // 2])
    out = [e for event in events for e in stream.feed(event)]
    out += stream.fail("timeout_error", "upstream went silent for 60 s")
    assert stream.fail("api_error", "again") == [] and stream.close() == []
    check_responses(out)
    assert terminal(out)["error"]["message"] == "upstream went silent for 60 s"
    assert stream.response is not None and stream.response.status == "failed"


def test_passthrough_error_numbers_after_what_was_sent() -> None:
    sent = b"".join(encode(e.data, e.event) for e in golden("openai_text")[:4])
    frame = passthrough_error(sent, "api_error", "upstream reset")
    [event] = Decoder().feed(frame)
    data = json.loads(event.data)
    assert event.event == "error" and data["sequence_number"] == 4
    assert data["error"] == {
        "message": "upstream reset",
        "type": "api_error",
        "code": "server_error",
        "param": None,
    }
    check = [*golden("openai_text")[:4], event]
    assert [json.loads(e.data)["sequence_number"] for e in check] == [0, 1, 2, 3, 4]
    first = json.loads(Decoder().feed(passthrough_error(b"", "rate_limit_error", "slow"))[0].data)
    assert first["sequence_number"] == 0 and first["code"] == "rate_limit_exceeded"
