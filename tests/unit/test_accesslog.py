"""proxy.accesslog via telemetry.finish: one JSON line per request, prompts per log_prompts,
and never a credential, whatever the mode."""

import json
import logging
from collections.abc import Iterator

import msgspec
import pytest

from proxy import accesslog, redact, telemetry
from proxy.config import parse
from proxy.redact import CARD, EMAIL, PHONE, SECRET
from proxy.telemetry import RequestRecord

CLIENT_KEY = "sk-test-SECRET1234567890abcdef"
BEARER = "Bearer eyJhbGciOi.SECRETTOKEN-abc_123"
PROMPT = (
    f"user: mail ann@example.com, call +1 415 555 0123, card 4111 1111 1111 1111; "
    f"my key is {CLIENT_KEY} and the header was Authorization: {BEARER}"
)
FIELDS = {
    "time",
    "request_id",
    "key_name",
    "endpoint",
    "front",
    "stream",
    "alias",
    "backend",
    "provider_model",
    "status",
    "attempts",
    "overhead_ms",
    "ttft_ms",
    "total_ms",
    "tokens_in",
    "tokens_out",
    "cost",
    "cache",
    "error_type",
}


@pytest.fixture(autouse=True)
def _restore_logger() -> Iterator[None]:
    yield
    accesslog.configure({"LLM_PROXY_ACCESS_LOG": "inherit"})  # drops any stream handler
    logging.getLogger("llm_proxy.access").setLevel(logging.NOTSET)


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    accesslog.configure({"LLM_PROXY_ACCESS_LOG": "inherit"})  # to the root logger: caplog
    caplog.set_level(logging.INFO, logger="llm_proxy.access")
    return caplog


def record(**changes: object) -> RequestRecord:
    rec = RequestRecord(
        request_id="req_0123",
        endpoint="chat",
        front="openai",
        stream=True,
        started=1_700_000_000.25,
        key_name="team-a",
        alias="gpt-4o",
        backend="azure",
        backend_type="azure",
        provider_model="gpt4o-prod",
        status=200,
        attempts=2,
        overhead_ms=0.41234,
        ttft_ms=120.5,
        total_ms=900.0,
        tokens_in=12,
        tokens_out=34,
        cost=0.0012,
        cache="miss",
        error_type=None,
        prompt=PROMPT,
    )
    return msgspec.structs.replace(rec, **changes)


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "llm_proxy.access"]


def test_one_json_line_with_every_field(access: pytest.LogCaptureFixture) -> None:
    telemetry.finish(record(), "none")
    [line] = lines(access)
    assert set(line) == FIELDS  # no prompt key at all with log_prompts: none
    assert line == {
        "time": "2023-11-14T22:13:20.250Z",
        "request_id": "req_0123",
        "key_name": "team-a",
        "endpoint": "chat",
        "front": "openai",
        "stream": True,
        "alias": "gpt-4o",
        "backend": "azure",
        "provider_model": "gpt4o-prod",
        "status": 200,
        "attempts": 2,
        "overhead_ms": 0.412,
        "ttft_ms": 120.5,
        "total_ms": 900.0,
        "tokens_in": 12,
        "tokens_out": 34,
        "cost": 0.0012,
        "cache": "miss",
        "error_type": None,
    }


def test_redacted_masks_personal_data_and_credentials(access: pytest.LogCaptureFixture) -> None:
    telemetry.finish(record(), "redacted")
    [line] = lines(access)
    prompt = line["prompt"]
    assert isinstance(prompt, str)
    assert prompt == (
        f"user: mail {EMAIL}, call {PHONE}, card {CARD}; my key is {SECRET} and the header "
        f"was Authorization: Bearer {SECRET}"
    )


def test_full_keeps_the_text_but_never_credentials(access: pytest.LogCaptureFixture) -> None:
    telemetry.finish(record(), "full")
    [line] = lines(access)
    prompt = line["prompt"]
    assert isinstance(prompt, str)
    assert "ann@example.com" in prompt and "4111 1111 1111 1111" in prompt
    assert CLIENT_KEY not in prompt and "SECRETTOKEN" not in prompt
    assert prompt.count(SECRET) == 2


@pytest.mark.parametrize("mode", ["none", "redacted", "full"])
def test_no_secret_reaches_any_output(
    mode: str, access: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = record(error_type=f"upstream said: Incorrect API key provided: {CLIENT_KEY}")
    telemetry.finish(rec, mode)
    accesslog.configure({"LLM_PROXY_ACCESS_LOG": "stdout"})  # and the bare-JSON handler
    telemetry.finish(rec, mode)
    out = capsys.readouterr()
    everything = access.text + out.out + out.err
    assert len(lines(access)) == 1 and out.out.count("\n") == 1
    assert json.loads(out.out)["request_id"] == "req_0123"  # stdout lines are bare JSON
    for secret in (CLIENT_KEY, "SECRET1234567890", "SECRETTOKEN", "eyJhbGciOi"):
        assert secret not in everything


def test_known_configured_secret_is_masked(access: pytest.LogCaptureFixture) -> None:
    redact.set_known(["plain-upstream-key-value"])
    try:
        telemetry.finish(record(prompt="echo plain-upstream-key-value"), "full")
    finally:
        redact.set_known([])
    assert lines(access)[0]["prompt"] == f"echo {SECRET}"


def test_long_prompt_is_cut_after_masking(access: pytest.LogCaptureFixture) -> None:
    # A key straddling the cut is masked whole, not left half-visible.
    prompt = "x " * ((accesslog.PROMPT_LIMIT - 10) // 2) + CLIENT_KEY + " tail" * 5000
    telemetry.finish(record(prompt=prompt), "redacted")
    logged = lines(access)[0]["prompt"]
    assert isinstance(logged, str)
    assert logged.endswith("...[truncated]")
    assert len(logged) <= accesslog.PROMPT_LIMIT + len("...[truncated]")
    assert "sk-test" not in logged and "SECRET1234" not in logged


def test_disabled_logger_builds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    accesslog.configure({"LLM_PROXY_ACCESS_LOG": "off"})

    def boom(*_: object) -> str:
        raise AssertionError("the line was built although nobody listens")

    monkeypatch.setattr(accesslog, "line", boom)
    telemetry.finish(record(), "redacted")


def test_prompt_text_from_each_protocol() -> None:
    decode = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
    openai = decode(
        b'{"model":"m","messages":[{"role":"system","content":"be brief"},'
        b'{"role":"user","content":[{"type":"text","text":"hi"},'
        b'{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}'
    )
    assert accesslog.prompt_text(openai) == "system: be brief\nuser: hi"
    anthropic = decode(
        b'{"model":"m","system":"sys","max_tokens":5,'
        b'"messages":[{"role":"user","content":"hello"}]}'
    )
    assert accesslog.prompt_text(anthropic) == "sys\nuser: hello"
    gemini = decode(b'{"contents":[{"role":"user","parts":[{"text":"g"}]}]}')
    assert accesslog.prompt_text(gemini) == "user: g"
    legacy = decode(b'{"model":"m","prompt":"say hi"}')
    assert accesslog.prompt_text(legacy) == "say hi"


def test_configured_secrets_are_remembered(access: pytest.LogCaptureFixture) -> None:
    config = parse(
        "version: 1\n"
        "settings: {admin_key: admin-SECRET-value}\n"
        "backends:\n"
        "  up:\n"
        "    type: openai\n"
        "    base_url: http://127.0.0.1:9/v1\n"
        "    api_key: upstream-plain-SECRET\n"
        "    headers: {X-Custom-Token: header-SECRET-value, X-Team: analytics}\n"
        "models:\n"
        "  m: {targets: [{backend: up}]}\n",
        {},
        "routes.yaml",
    )
    redact.remember(config)
    try:
        prompt = "upstream-plain-SECRET header-SECRET-value admin-SECRET-value analytics"
        telemetry.finish(record(prompt=prompt), "full")
    finally:
        redact.set_known([])
    assert lines(access)[0]["prompt"] == f"{SECRET} {SECRET} {SECRET} analytics"
