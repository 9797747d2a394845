"""Sessions, in-chat commands and loop detection through a running gateway and both SDKs."""

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import Gateway, RoutesFile, serve
from tests.upstreams import FakeUpstream, ok

pytestmark = pytest.mark.timeout(60)

KEY = "team-a-test-key"
LOOP = ["Sure. "] + ["Let me read the file again", " and check it. "] * 40
PLAIN = [f"Step {i} of the plan is done. " for i in range(len(LOOP))]


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream(models=("fast-model",)) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def aup() -> Iterator[FakeUpstream]:
    with FakeUpstream(wire="anthropic", models=("claude-model",)) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, up: FakeUpstream, aup: FakeUpstream
) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("sessions")
    config = RoutesFile(directory)(
        f"""
        version: 1
        backends:
          fake: {{type: openai, base_url: "{up.url}", api_key: k}}
          anth: {{type: anthropic, base_url: "{aup.url}", api_key: k}}
        models:
          fast: {{targets: [{{backend: fake, model: fast-model}}]}}
          smart: {{targets: [{{backend: fake, model: smart-model}}]}}
          secret: {{targets: [{{backend: fake, model: secret-model}}]}}
          claude: {{targets: [{{backend: anth, model: claude-model}}]}}
          agent:
            targets: [{{backend: fake, model: agent-model}}]
            loop_detection: {{min_repeats: 6}}
          agent-a:
            targets: [{{backend: anth, model: agent-a-model}}]
            loop_detection: true
        keys:
          - {{name: team-a, key: {KEY}, models: [fast, smart, claude, agent, agent-a]}}
        """
    )
    with serve(config, directory) as gateway:
        yield gateway


def oai(gw: Gateway, session: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{gw.url}/v1",
        api_key=KEY,
        max_retries=0,
        timeout=20,
        default_headers={"x-session-id": session},
    )


def ant(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=KEY, max_retries=0, timeout=20)


def user(text: str) -> Any:
    return [{"role": "user", "content": text}]


def test_a_command_switches_the_model_for_later_turns(gw: Gateway, up: FakeUpstream) -> None:
    client = oai(gw, "switch")
    before = len(up.requests)
    done = client.chat.completions.create(model="fast", messages=user("!/model(smart)"))
    assert done.choices[0].message.content == "Model set to smart."
    assert len(up.requests) == before  # answered by the gateway itself
    history = [*user("!/model(smart)"), {"role": "assistant", "content": "Model set to smart."}]
    client.chat.completions.create(model="fast", messages=[*history, *user("hello")])
    assert up.requests[-1].json["model"] == "smart-model"
    gw.wait_for_log('"session":"switch"')  # the access log names the session


def test_set_reaches_the_upstream_and_text_after_commands_is_forwarded(
    gw: Gateway, up: FakeUpstream
) -> None:
    client = oai(gw, "params")
    client.chat.completions.create(
        model="fast",
        messages=user("!/set(temperature=0.2, max_tokens=50)\nWhat is 2+2?"),
        temperature=1.0,
    )
    sent = up.requests[-1].json
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 50
    assert sent["messages"] == user("What is 2+2?")
    client.chat.completions.create(model="fast", messages=user("again"))
    assert up.requests[-1].json["temperature"] == 0.2


def test_commands_only_stream_is_answered_by_the_gateway(gw: Gateway, up: FakeUpstream) -> None:
    before = len(up.requests)
    stream = oai(gw, "streamed").chat.completions.create(
        model="fast", messages=user("!/session"), stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.startswith("Session streamed:")
    assert len(up.requests) == before


def test_earlier_messages_and_code_are_not_commands(gw: Gateway, up: FakeUpstream) -> None:
    messages = [
        *user("!/model(smart)"),
        {"role": "assistant", "content": "ok"},
        *user("Why does\n```\n!/model(smart)\n```\nnot work?"),
    ]
    oai(gw, "code").chat.completions.create(model="fast", messages=messages)
    sent = up.requests[-1].json
    assert sent["model"] == "fast-model" and sent["messages"] == messages


def test_a_key_cannot_escape_its_models(gw: Gateway, up: FakeUpstream) -> None:
    client = oai(gw, "escape")
    done = client.chat.completions.create(model="fast", messages=user("!/model(secret)"))
    assert "may not use model 'secret'" in (done.choices[0].message.content or "")
    client.chat.completions.create(model="fast", messages=user("hi"))
    assert up.requests[-1].json["model"] == "fast-model"


def test_anthropic_session_from_metadata(gw: Gateway, aup: FakeUpstream) -> None:
    client = ant(gw)
    meta: Any = {"user_id": "ant-user-1"}
    with client.messages.stream(
        model="claude", max_tokens=100, messages=user("!/set(temperature=0.1)"), metadata=meta
    ) as s:
        assert "".join(s.text_stream) == "Set temperature=0.1."
    client.messages.create(model="claude", max_tokens=100, messages=user("hi"), metadata=meta)
    assert aup.requests[-1].json["temperature"] == 0.1


def test_loop_detection_cuts_a_looping_stream_and_passes_a_plain_one(
    gw: Gateway, up: FakeUpstream
) -> None:
    client = oai(gw, "loops")
    up.script(ok(chunks=PLAIN))
    stream = client.chat.completions.create(model="agent", messages=user("go"), stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "".join(PLAIN)
    up.script(ok(chunks=LOOP))
    stream = client.chat.completions.create(model="agent", messages=user("go"), stream=True)
    with pytest.raises(openai.APIError, match="loop_detected"):
        for _ in stream:
            pass
    session = httpx.get(
        f"{gw.url}/admin/sessions", params={"id": "loops", "key": "team-a"}, timeout=10
    ).json()["session"]
    assert session["loops"] == 1 and session["requests"] == 2
    metrics = httpx.get(f"{gw.url}/metrics", timeout=10).text
    assert 'llm_proxy_loops_detected_total{alias="agent",backend="fake"} 1' in metrics


def test_loop_detection_on_the_anthropic_front_door(gw: Gateway, aup: FakeUpstream) -> None:
    aup.script(ok(chunks=LOOP))
    with pytest.raises(anthropic.APIError, match="loop_detected"):  # noqa: SIM117
        with ant(gw).messages.stream(model="agent-a", max_tokens=100, messages=user("go")) as s:
            for _ in s.text_stream:
                pass


def test_admin_sessions_counts(gw: Gateway) -> None:
    body = httpx.get(f"{gw.url}/admin/sessions", timeout=10).json()
    assert body["count"] >= 1
    missing = httpx.get(f"{gw.url}/admin/sessions", params={"id": "nope"}, timeout=10)
    assert missing.status_code == 404
    assert json.loads(missing.text)["error"]["type"] == "not_found_error"
