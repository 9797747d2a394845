"""Replaying a whole response as a stream (`stream: false` backends), usage of passed-through
streams, and the adapters' `responses` endpoint."""

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings

from proxy.config import Backend
from proxy.providers.azure import AzureAdapter
from proxy.providers.base import Unsupported
from proxy.providers.openai import OpenAIAdapter
from proxy.sse import Decoder, Event
from proxy.translate.responses_replay import (
    events,
    failure_message,
    kind,
    replay,
    stream_usage,
    verdict,
)
from schemas import responses as rs
from tests.unit.responses_support import check_responses, responses_final, terminal
from tests.unit.test_translate_responses_stream import UPSTREAMS, _run, chat_streams, golden


def final_of(out: list[Event]) -> rs.Response:
    return msgspec.convert(terminal(out), rs.Response)


def same_outcome(live: list[Event]) -> None:
    replayed = Decoder().feed(replay(msgspec.json.encode(final_of(live))))
    check_responses(replayed)
    assert terminal(replayed) == terminal(live)
    if terminal(live)["status"] != "failed":
        assert responses_final(replayed).model_dump() == responses_final(live).model_dump()


@pytest.mark.parametrize("name", UPSTREAMS)
def test_replaying_a_golden_answer_gives_what_the_live_stream_gave(name: str) -> None:
    same_outcome(golden(name))


@settings(deadline=None, max_examples=60)
@given(chat_streams())
def test_replaying_any_answer_gives_what_the_live_stream_gave(case: Any) -> None:
    same_outcome(_run(case[0]))


def test_a_single_delta_stream_replays_event_for_event() -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}
    usage = {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
    live = _run([json.dumps(chunk), json.dumps(usage), "[DONE]"])
    assert events(final_of(live)) == live


def test_replay_refuses_what_is_not_a_response() -> None:
    with pytest.raises(msgspec.DecodeError):
        replay(b'{"error": {"message": "x"}}')


def test_stream_usage_reads_terminal_events_only() -> None:
    out = golden("openai_tools")
    assert [stream_usage(e) for e in out if stream_usage(e)] == [(80, 43)]
    assert stream_usage(Event("{not json", "response.completed")) is None
    failed = golden("openai_error")
    assert [stream_usage(e) for e in failed] == [None] * len(failed)


def test_openai_adapter_builds_responses_and_azure_refuses() -> None:
    backend = Backend(name="o", type="openai", base_url="https://api.openai.com/v1")
    req = OpenAIAdapter(backend).build("responses", b"{}", "gpt-4o", True)
    assert req.url == "https://api.openai.com/v1/responses" and req.body == b"{}"
    azure = Backend(name="a", type="azure", base_url="https://r.openai.azure.com")
    with pytest.raises(Unsupported):
        AzureAdapter(azure).build("responses", b"{}", "dep", False)


@pytest.mark.parametrize("name", UPSTREAMS)
def test_verdict_holds_the_preamble_and_commits_on_content(name: str) -> None:
    out = golden(name)
    verdicts = [verdict(e) for e in out]
    first = next(i for i, v in enumerate(verdicts) if v != "hold")
    assert {kind(e) for e in out[:first]} <= {
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added",
    }  # fmt: skip
    assert kind(out[first]).endswith((".delta", ".done", "response.failed"))
    failed = [kind(e) for e, v in zip(out, verdicts, strict=True) if v == "error"]
    assert failed == (["response.failed", "error"] if "error" in name else [])


def test_verdict_reads_the_type_without_an_event_line() -> None:
    assert verdict(Event('{"type":"response.created","sequence_number":0}')) == "hold"
    assert verdict(Event('{"type":"response.output_text.delta"}')) == "commit"
    assert verdict(Event("[DONE]")) == "commit"
    assert verdict(Event("{not json")) == "error"
    assert verdict(Event('{"no_type": 1}')) == "error"


def test_failure_message_of_either_failure_event() -> None:
    failed, error = golden("openai_error")[-2:]
    assert failure_message(failed) == failure_message(error) != ""
    nested = Event('{"type":"error","error":{"type":"server_error","message":"boom"}}', "error")
    assert failure_message(nested) == "boom"
    assert failure_message(Event("{x", "error")) == "upstream sent malformed stream data"
