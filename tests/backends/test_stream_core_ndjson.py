"""The stream core (`proxy.core.stream.Stream`) with an NDJSON upstream: lines decoded,
translated, committed on content, complete only when the translator saw the end."""

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from proxy.core.stream import Commit, Data, End, Stream
from proxy.errors import UpstreamFailure
from proxy.sse import Decoder
from proxy.translate import openai_ollama


def _stream() -> Stream:
    tr = openai_ollama.Stream("m", include_usage=False, id="chatcmpl-1", created=1)
    return Stream("openai", tr, False, upstream="ollama", framing="ndjson")


def _ndjson(texts: list[str], done: bool = True, newline_at_end: bool = True) -> bytes:
    lines: list[dict[str, Any]] = [
        {"message": {"role": "assistant", "content": t}, "done": False} for t in texts
    ]
    if done:
        lines.append({"done": True, "done_reason": "stop", "eval_count": len(texts)})
    data = b"\n".join(json.dumps(x).encode() for x in lines)
    return data + b"\n" if newline_at_end else data


def _run(pieces: list[bytes]) -> list[Any]:
    s = _stream()
    actions = [a for p in pieces for a in s.feed(p)]
    return actions + s.eof()


def _client_text(actions: list[Any]) -> str:
    data = b"".join(a.data for a in actions if isinstance(a, Commit | Data | End))
    events = Decoder().feed(data)
    out = []
    for e in events:
        if e.data != "[DONE]":
            choices = json.loads(e.data)["choices"]
            out.extend(c["delta"].get("content") or "" for c in choices)
    return "".join(out)


@given(
    st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=5),
    st.lists(st.integers(0, 600), max_size=8),
    st.booleans(),
)
def test_any_split_commits_once_and_ends_complete(
    texts: list[str], cuts: list[int], newline_at_end: bool
) -> None:
    data = _ndjson(texts, newline_at_end=newline_at_end)
    bounds = sorted({c for c in cuts if 0 < c < len(data)})
    pieces = [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]
    actions = _run(pieces)
    assert sum(isinstance(a, Commit) for a in actions) == 1
    assert isinstance(actions[-1], End)
    assert not any(isinstance(a, UpstreamFailure) for a in actions)
    assert _client_text(actions) == "".join(texts)
    assert b"[DONE]" in b"".join(a.data for a in actions if not isinstance(a, UpstreamFailure))


def test_an_end_before_done_is_truncated() -> None:
    actions = _run([_ndjson(["a", "b"], done=False)])
    assert isinstance(actions[0], Commit)
    assert isinstance(actions[-1], UpstreamFailure) and actions[-1].kind in (
        "truncated",
        "stream_error",
    )


def test_an_error_line_before_content_fails_over() -> None:
    actions = _run([b'{"error": "model is loading"}\n'])
    assert len(actions) == 1 and isinstance(actions[0], UpstreamFailure)
    assert actions[0].kind == "stream_error" and "loading" in actions[0].message


def test_nothing_before_the_end_fails_over() -> None:
    actions = _run([b"\n\n"])
    assert len(actions) == 1 and isinstance(actions[0], UpstreamFailure)
    assert actions[0].kind == "protocol"
