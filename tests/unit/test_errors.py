"""proxy.errors: statuses per class and the exact envelope each protocol expects."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy import errors
from proxy.sse import Decoder, Event

# class → (status, OpenAI type, Anthropic type, default code)
CLASSES: list[tuple[type[errors.ProxyError], int, str, str, str | None]] = [
    (errors.BadRequest, 400, "invalid_request_error", "invalid_request_error", None),
    (errors.Unauthorized, 401, "authentication_error", "authentication_error", "invalid_api_key"),
    (errors.Forbidden, 403, "permission_error", "permission_error", None),
    (errors.NotFound, 404, "not_found_error", "not_found_error", None),
    (errors.UnknownModel, 404, "not_found_error", "not_found_error", "model_not_found"),
    (errors.MethodNotAllowed, 405, "invalid_request_error", "invalid_request_error", None),
    (
        errors.PayloadTooLarge,
        413,
        "invalid_request_error",
        "request_too_large",
        "request_too_large",
    ),
    (errors.RateLimited, 429, "rate_limit_error", "rate_limit_error", None),
    (errors.BadGateway, 502, "upstream_error", "api_error", "upstream_failed"),
    (errors.NoTarget, 503, "service_unavailable", "overloaded_error", "no_available_target"),
    (errors.GatewayTimeout, 504, "timeout_error", "timeout_error", "upstream_timeout"),
    (errors.Internal, 500, "api_error", "api_error", None),
]
GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "INTERNAL",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
IDS = [c[0].__name__ for c in CLASSES]
WIRES: tuple[errors.Wire, ...] = ("openai", "anthropic", "gemini")


@pytest.mark.parametrize(("cls", "status", "oa_type", "an_type", "code"), CLASSES, ids=IDS)
def test_openai_envelope_has_exactly_the_four_keys(
    cls: type[errors.ProxyError], status: int, oa_type: str, an_type: str, code: str | None
) -> None:
    got_status, headers, body = errors.render(cls("what went wrong; what to do"), "openai")
    assert got_status == status
    assert headers == [(b"content-type", b"application/json")]
    assert json.loads(body) == {
        "error": {
            "message": "what went wrong; what to do",
            "type": oa_type,
            "param": None,
            "code": code,
        }
    }


@pytest.mark.parametrize(("cls", "status", "oa_type", "an_type", "code"), CLASSES, ids=IDS)
def test_anthropic_envelope(
    cls: type[errors.ProxyError], status: int, oa_type: str, an_type: str, code: str | None
) -> None:
    got_status, _, body = errors.render(cls("nope"), "anthropic", request_id="req_123")
    assert got_status == status
    assert json.loads(body) == {
        "type": "error",
        "error": {"type": an_type, "message": "nope"},
        "request_id": "req_123",
    }


@pytest.mark.parametrize(("cls", "status", "oa_type", "an_type", "code"), CLASSES, ids=IDS)
def test_gemini_envelope(
    cls: type[errors.ProxyError], status: int, oa_type: str, an_type: str, code: str | None
) -> None:
    got_status, _, body = errors.render(cls("nope"), "gemini", request_id="ignored")
    assert got_status == status
    assert json.loads(body) == {
        "error": {"code": status, "message": "nope", "status": GEMINI_STATUS[status]}
    }


def test_param_and_code_override_show_in_the_openai_envelope() -> None:
    err = errors.BadRequest("'model' must be a string", param="model", code="bad_model")
    _, _, body = errors.render(err, "openai")
    assert json.loads(body)["error"] == {
        "message": "'model' must be a string",
        "type": "invalid_request_error",
        "param": "model",
        "code": "bad_model",
    }


def test_code_override_does_not_leak_into_the_class() -> None:
    errors.UnknownModel("x", code="other")
    assert errors.UnknownModel("y").code == "model_not_found"
    assert errors.UnknownModel.code == "model_not_found"


def test_anthropic_request_id_is_null_when_unknown() -> None:
    _, _, body = errors.render(errors.Internal("boom"), "anthropic")
    assert json.loads(body)["request_id"] is None


def test_error_headers_follow_the_content_type() -> None:
    err = errors.NoTarget("all open", headers=(("retry-after", "12"), ("x-should-retry", "false")))
    status, headers, _ = errors.render(err, "openai")
    assert status == 503
    assert headers == [
        (b"content-type", b"application/json"),
        (b"retry-after", b"12"),
        (b"x-should-retry", b"false"),
    ]


def test_subclasses_share_the_base() -> None:
    assert issubclass(errors.UnknownModel, errors.NotFound)
    assert all(issubclass(c[0], errors.ProxyError) for c in CLASSES)
    err = errors.RateLimited("slow down")
    assert str(err) == "slow down" == err.message
    assert err.param is None and err.headers == ()


# --- stream_event ---------------------------------------------------------------------------


def test_openai_stream_event_is_a_bare_data_frame() -> None:
    frame = errors.stream_event(errors.BadGateway("upstream failed: reset"), "openai")
    assert frame.startswith(b"data: {")
    assert frame.endswith(b"}\n\n")
    assert b"event:" not in frame
    assert b"[DONE]" not in frame
    (event,) = Decoder().feed(frame)
    assert event.event == ""
    assert json.loads(event.data) == {
        "error": {
            "message": "upstream failed: reset",
            "type": "upstream_error",
            "param": None,
            "code": "upstream_failed",
        }
    }


def test_anthropic_stream_event_is_an_error_event() -> None:
    frame = errors.stream_event(errors.GatewayTimeout("idle for 60s"), "anthropic")
    assert frame.startswith(b"event: error\ndata: {")
    assert frame.endswith(b"}\n\n")
    (event,) = Decoder().feed(frame)
    assert event.event == "error"
    body = json.loads(event.data)
    assert body["type"] == "error"
    assert body["error"] == {"type": "timeout_error", "message": "idle for 60s"}


@given(st.text(), st.sampled_from(WIRES))
def test_stream_event_is_one_frame_whatever_the_message(message: str, wire: errors.Wire) -> None:
    frame = errors.stream_event(errors.BadGateway(message), wire)
    d = Decoder()
    events = d.feed(frame)
    assert not d.pending
    assert len(events) == 1
    data = json.loads(events[0].data)
    assert data["error"]["message"] == message
    assert events[0] == Event(events[0].data, "error" if wire == "anthropic" else "")


@given(st.text(), st.sampled_from(WIRES))
def test_body_is_valid_json_whatever_the_message(message: str, wire: errors.Wire) -> None:
    _, _, body = errors.render(errors.BadRequest(message), wire, "r")
    decoded = json.loads(body)
    assert decoded["error"]["message"] == message
