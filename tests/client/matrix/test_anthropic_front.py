"""The official Anthropic SDK through /v1/messages over every backend (issue #5): text,
streams, usage, tools, count_tokens, beta headers, errors and stop reasons, as a matrix.

The rig is `support`'s: one fake upstream per wire behind this module's own gateway.
Each test scripts the upstream's answer and asserts against what the upstream reported and
the request it received. Regression tests for bugs found here carry the bug in their
docstring or name.
"""

import json
from typing import Any

import anthropic
import pytest

from tests.client.matrix.support import (
    AN_MESSAGES,
    AN_TOOLS,
    ANSWER,
    BACKENDS,
    BAD_REQUEST,
    BAD_REQUEST_BODIES,
    BETA,
    CALLS,
    FAKES,
    NATIVE_MAX_TOKENS,
    PROMPT,
    UPSTREAM_MODEL,
    USAGE,
    Rig,
    alias,
    cached_answer,
    check_tool_definitions,
    check_upstream_shape,
    error_stream,
    expected_path,
    no_argument_call,
    received,
    script,
)
from tests.upstreams import ok, rate_limited, reset_mid_stream, status

pytestmark = pytest.mark.timeout(30)


# --- text, streams and usage -----------------------------------------------------------------


def _check_usage(usage: Any, backend: str, plain: tuple[int, int] | None = None) -> None:
    got = (usage.input_tokens, usage.output_tokens)
    assert all(got), f"zero usage: {got}"
    if backend != "mock":
        assert got == USAGE
    elif plain is not None:
        assert got == plain


@pytest.mark.parametrize("backend", BACKENDS)
def test_anthropic_text(rig: Rig, an: anthropic.Anthropic, backend: str) -> None:
    script(rig, backend, ok(text=ANSWER, usage=USAGE))
    before = rig.mark()
    raw = an.messages.with_raw_response.create(
        model=alias(backend), max_tokens=256, messages=AN_MESSAGES
    )
    message = raw.parse()
    body = check_upstream_shape(rig, backend, before, stream=False)
    if backend == "openai":
        assert body["messages"] == [{"role": "user", "content": PROMPT}]
        assert body["max_tokens"] == 256
    assert raw.headers["x-proxy-attempts"] == "1"
    assert message.type == "message" and message.role == "assistant"
    assert message.model in (alias(backend), UPSTREAM_MODEL.get(backend))
    assert message.stop_reason == "end_turn"
    assert [b.type for b in message.content] == ["text"]
    text = message.content[0].text  # type: ignore[union-attr]
    if backend == "mock":
        assert text
    else:
        assert text == ANSWER
    _check_usage(message.usage, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_anthropic_stream_text(rig: Rig, an: anthropic.Anthropic, backend: str) -> None:
    plain_text, plain_usage = ANSWER, None
    if backend == "mock":
        plain = an.messages.create(model=alias(backend), max_tokens=256, messages=AN_MESSAGES)
        plain_text = plain.content[0].text  # type: ignore[union-attr]
        plain_usage = (plain.usage.input_tokens, plain.usage.output_tokens)
    script(rig, backend, ok(text=ANSWER, usage=USAGE))
    before = rig.mark()
    with an.messages.stream(model=alias(backend), max_tokens=256, messages=AN_MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        headers = stream.response.headers
    body = check_upstream_shape(rig, backend, before, stream=True)
    if backend == "openai":  # usage is read from the upstream, never guessed
        assert body["stream_options"] == {"include_usage": True}
    assert headers["x-proxy-attempts"] == "1"
    assert text == plain_text
    assert final.stop_reason == "end_turn"
    assert [b.type for b in final.content] == ["text"]
    assert final.content[0].text == plain_text  # type: ignore[union-attr]
    _check_usage(final.usage, backend, plain_usage)


# --- tool use --------------------------------------------------------------------------------


def _check_tool_use(message: Any, calls: tuple[tuple[str, str], ...]) -> None:
    assert message.stop_reason == "tool_use"
    uses = [b for b in message.content if b.type == "tool_use"]
    assert [u.name for u in uses] == [name for name, _ in calls]
    for use, (_, arguments) in zip(uses, calls, strict=True):
        assert use.input == json.loads(arguments)
    ids = [u.id for u in uses]
    assert all(ids) and len(set(ids)) == len(ids), ids


@pytest.mark.parametrize("calls", CALLS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("backend", FAKES)
def test_anthropic_tool_use(
    rig: Rig, an: anthropic.Anthropic, backend: str, stream: bool, calls: str
) -> None:
    wanted = CALLS[calls]
    script(rig, backend, ok(text="Let me check.", tool_calls=wanted, usage=USAGE))
    before = rig.mark()
    request: Any = {
        "model": alias(backend),
        "max_tokens": 256,
        "messages": AN_MESSAGES,
        "tools": AN_TOOLS,
    }
    if stream:
        with an.messages.stream(**request) as s:
            stops = [e for e in s if e.type == "content_block_stop"]
            final = s.get_final_message()
        assert len(stops) == 1 + len(wanted)  # one text block, one block per call
    else:
        final = an.messages.create(**request)
    body = check_upstream_shape(rig, backend, before, stream)
    check_tool_definitions(backend, body)
    assert final.content[0].type == "text"
    assert final.content[0].text == "Let me check."
    _check_tool_use(final, wanted)
    _check_usage(final.usage, backend)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_tools_request_served_by_mock(an: anthropic.Anthropic, stream: bool) -> None:
    request: Any = {
        "model": "via-mock",
        "max_tokens": 256,
        "messages": AN_MESSAGES,
        "tools": AN_TOOLS,
    }
    if stream:
        with an.messages.stream(**request) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        assert text
    else:
        final = an.messages.create(**request)
    assert final.stop_reason == "end_turn"
    assert final.content and final.content[0].type == "text"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("backend", FAKES)
def test_anthropic_tool_use_without_arguments(
    rig: Rig, an: anthropic.Anthropic, backend: str, stream: bool
) -> None:
    script(rig, backend, no_argument_call(backend, stream))
    request: Any = {
        "model": alias(backend), "max_tokens": 64, "messages": AN_MESSAGES, "tools": AN_TOOLS,
    }  # fmt: skip
    if stream:
        with an.messages.stream(**request) as s:
            final = s.get_final_message()
    else:
        final = an.messages.create(**request)
    (use,) = final.content
    assert use.type == "tool_use" and use.name == "get_time" and use.id
    assert use.input == {}
    assert final.stop_reason == "tool_use"


# --- count_tokens and beta headers -----------------------------------------------------------


@pytest.mark.parametrize("beta_client", [False, True], ids=["plain", "beta-client"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_anthropic_count_tokens(
    rig: Rig, an: anthropic.Anthropic, backend: str, beta_client: bool
) -> None:
    script(rig, backend, ok(usage=(77, 1)))
    before = rig.mark()
    request: Any = {"model": alias(backend), "messages": AN_MESSAGES, "tools": AN_TOOLS}
    raw: Any
    if beta_client:  # POST /v1/messages/count_tokens?beta=true
        raw = an.beta.messages.with_raw_response.count_tokens(**request, betas=[BETA])
    else:
        raw = an.messages.with_raw_response.count_tokens(**request)
    counted = raw.parse()
    if backend == "anthropic":  # passed through: the upstream's own count
        (req,) = received(rig, backend, before)
        assert req.path == "/v1/messages/count_tokens"
        assert req.json["model"] == UPSTREAM_MODEL["anthropic"]
        assert req.json["tools"] == AN_TOOLS
        assert counted.input_tokens == 77
        assert "x-proxy-estimate" not in raw.headers
        if beta_client:  # the SDK adds its own token-counting flag to ours
            assert BETA in req.headers["anthropic-beta"].split(",")
        else:
            assert "anthropic-beta" not in req.headers
    else:  # no counting endpoint: an estimate, said to be one, and no upstream call
        assert counted.input_tokens > 0
        assert raw.headers["x-proxy-estimate"] == "true"
        assert rig.mark() == before


@pytest.mark.parametrize("mode", ["header", "beta-client", "beta-stream"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_anthropic_beta_header(rig: Rig, an: anthropic.Anthropic, backend: str, mode: str) -> None:
    """`anthropic-beta` reaches Anthropic only; the beta client's `?beta=true` path works."""
    script(rig, backend, ok(text=ANSWER, usage=USAGE))
    before = rig.mark()
    message: Any
    request: Any = {"model": alias(backend), "max_tokens": 64, "messages": AN_MESSAGES}
    if mode == "beta-client":  # POST /v1/messages?beta=true with `anthropic-beta: <betas>`
        message = an.beta.messages.create(**request, betas=[BETA])
    elif mode == "beta-stream":
        with an.beta.messages.stream(**request, betas=[BETA]) as s:
            assert "".join(s.text_stream)
            message = s.get_final_message()
    else:
        message = an.messages.create(**request, extra_headers={"anthropic-beta": BETA})
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason == "end_turn"
    if backend == "mock":
        return
    assert message.content[0].text == ANSWER
    assert (message.usage.input_tokens, message.usage.output_tokens) == USAGE
    (req,) = received(rig, backend, before)
    assert req.path == expected_path(backend, mode == "beta-stream")
    assert "beta" not in req.query
    if backend == "anthropic":
        assert req.headers.get("anthropic-beta") == BETA
        # the client's own version travels unchanged (the gateway's default is only a fallback)
        assert req.headers.get("anthropic-version") == an.default_headers["anthropic-version"]
    else:
        assert "anthropic-beta" not in req.headers
        assert "anthropic-version" not in req.headers


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("backend", FAKES)
def test_anthropic_client_gets_upstream_400_as_bad_request(
    rig: Rig, an: anthropic.Anthropic, backend: str, stream: bool
) -> None:
    script(rig, backend, status(400, BAD_REQUEST_BODIES[backend]))
    request: Any = {"model": alias(backend), "max_tokens": 64, "messages": AN_MESSAGES}
    with pytest.raises(anthropic.BadRequestError) as info:
        if stream:
            with an.messages.stream(**request) as s:
                s.get_final_message()
        else:
            an.messages.create(**request)
    body: Any = info.value.body
    assert body["type"] == "error"
    assert body["error"] == {"type": "invalid_request_error", "message": BAD_REQUEST}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_client_fails_over_a_529_transparently(
    rig: Rig, an: anthropic.Anthropic, stream: bool
) -> None:
    rig.ups["anthropic"].script(rate_limited(None, code=529))  # no retry-after: no cooling
    rig.ups["openai"].script(ok(text=ANSWER, usage=USAGE))
    before = rig.mark()
    request: Any = {
        "model": "fo",
        "max_tokens": 64,
        "messages": AN_MESSAGES,
        "extra_headers": {"anthropic-beta": BETA},
    }
    if stream:
        with an.messages.stream(**request) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
            headers = s.response.headers
    else:
        raw = an.messages.with_raw_response.create(**request)
        final, headers = raw.parse(), raw.headers
        text = final.content[0].text  # type: ignore[union-attr]
    assert headers["x-proxy-attempts"] == "2"
    assert headers["x-proxy-backend"] == "oa"
    assert text == ANSWER
    _check_usage(final.usage, "openai")
    # the beta flag went to the Anthropic attempt only, never to the OpenAI one
    (first,) = rig.ups["anthropic"].requests[before["anthropic"] :]
    (second,) = rig.ups["openai"].requests[before["openai"] :]
    assert first.headers.get("anthropic-beta") == BETA
    assert "anthropic-beta" not in second.headers and "anthropic-version" not in second.headers


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_client_sees_529_when_no_target_is_left(
    rig: Rig, an: anthropic.Anthropic, stream: bool
) -> None:
    """Failover exhausted: the upstream's status and body, and no SDK retry invited."""
    rig.ups["anthropic"].script(rate_limited("3", code=529))  # cools this target for 3 s
    model = f"solo-anthropic/an-{'stream' if stream else 'plain'}"
    request: Any = {"model": model, "max_tokens": 64, "messages": AN_MESSAGES}
    with pytest.raises(anthropic.OverloadedError) as info:
        if stream:
            with an.messages.stream(**request) as s:
                s.get_final_message()
        else:
            an.messages.create(**request)
    err = info.value
    assert err.status_code == 529
    assert isinstance(err.body, dict) and err.body["error"]["type"] == "overloaded_error"
    assert err.response.headers["x-should-retry"] == "false"
    assert err.response.headers["retry-after"] == "3"
    assert err.response.headers["x-proxy-attempts"] == "1"


@pytest.mark.parametrize("fault", ["error-event", "reset"])
@pytest.mark.parametrize("backend", FAKES)
def test_anthropic_client_gets_mid_stream_error(
    rig: Rig, an: anthropic.Anthropic, backend: str, fault: str
) -> None:
    """After commit: the text so far, then `event: error` (APIStatusError on a 200 stream)."""
    behaviour = error_stream(backend) if fault == "error-event" else reset_mid_stream(2)
    rig.ups[backend].script(behaviour)
    texts: list[str] = []
    request: Any = {"model": alias(backend), "max_tokens": 64, "messages": AN_MESSAGES}
    with pytest.raises(anthropic.APIStatusError) as info, an.messages.stream(**request) as s:
        texts.extend(s.text_stream)
    assert "".join(texts).strip()
    body: Any = info.value.body
    assert body["type"] == "error" and body["error"]["type"]
    if fault == "error-event":
        assert "".join(texts) == "Partial"
        assert "Overloaded mid-stream" in body["error"]["message"]


def test_count_tokens_on_a_failover_model_goes_to_anthropic(
    rig: Rig, an: anthropic.Anthropic
) -> None:
    rig.ups["anthropic"].script(ok(usage=(55, 1)))
    raw = an.messages.with_raw_response.count_tokens(model="fo", messages=AN_MESSAGES)
    assert raw.parse().input_tokens == 55
    assert raw.headers["x-proxy-backend"] == "an"
    assert "x-proxy-estimate" not in raw.headers


def test_count_tokens_on_a_failover_model_survives_an_overloaded_anthropic(
    rig: Rig, an: anthropic.Anthropic
) -> None:
    """The request is valid: the client gets the 529 passed through or an estimate, never a
    400 blaming its body."""
    rig.ups["anthropic"].script(rate_limited(None, code=529))
    try:
        raw = an.messages.with_raw_response.count_tokens(model="fo", messages=AN_MESSAGES)
    except anthropic.OverloadedError:
        return  # the upstream's status passed through: sensible
    assert raw.headers["x-proxy-estimate"] == "true"
    assert raw.parse().input_tokens > 0


# --- stop reasons and usage arithmetic -------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("backend", FAKES)
def test_anthropic_client_stop_reason_max_tokens(
    rig: Rig, an: anthropic.Anthropic, backend: str, stream: bool
) -> None:
    script(rig, backend, ok(text=ANSWER, usage=USAGE, finish_reason=NATIVE_MAX_TOKENS[backend]))
    request: Any = {"model": alias(backend), "max_tokens": 11, "messages": AN_MESSAGES}
    if stream:
        with an.messages.stream(**request) as s:
            final = s.get_final_message()
    else:
        final = an.messages.create(**request)
    assert final.stop_reason == "max_tokens"
    assert final.content[0].text == ANSWER  # type: ignore[union-attr]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("backend", FAKES)
def test_anthropic_client_usage_splits_cached_input(
    rig: Rig, an: anthropic.Anthropic, backend: str, stream: bool
) -> None:
    """input_tokens are the uncached ones; input + cache creation + cache reads is the total."""
    script(rig, backend, cached_answer(backend, stream))
    request: Any = {"model": alias(backend), "max_tokens": 64, "messages": AN_MESSAGES}
    if stream:
        with an.messages.stream(**request) as s:
            final = s.get_final_message()
    else:
        final = an.messages.create(**request)
    assert final.content[0].text == ANSWER  # type: ignore[union-attr]
    u = final.usage
    total_in = (
        u.input_tokens + (u.cache_creation_input_tokens or 0) + (u.cache_read_input_tokens or 0)
    )
    assert (total_in, u.output_tokens, u.cache_read_input_tokens) == (115, 7, 100)
    if backend == "anthropic":  # the upstream's own split, passed through
        assert (u.input_tokens, u.cache_creation_input_tokens) == (10, 5)
    else:  # OpenAI-style backends do not report cache writes
        assert u.input_tokens == 15
