"""proxy.core.stream: the sans-IO stream core, fed the golden upstream transcripts.

Properties: any split of the same upstream bytes gives the same client bytes, the same
usage, the same outcome, and commits on the chunk that completes the first content event;
a stream cut at any byte is never reported complete; buffers are bounded.
"""

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy import translate
from proxy.core.stream import Commit, Data, End, Stream
from proxy.errors import UpstreamFailure, Wire

GOLDEN = Path(__file__).resolve().parent.parent / "golden"

# (upstream transcript, its wire, the client's front door, complete?)
CASES: list[tuple[str, Wire, Wire, bool]] = [
    ("openai_text", "openai", "openai", True),
    ("openai_tools", "openai", "openai", True),
    ("openai_reasoning", "openai", "openai", True),
    ("openai_error", "openai", "openai", False),
    ("anthropic_text", "anthropic", "anthropic", True),
    ("anthropic_tools", "anthropic", "anthropic", True),
    ("anthropic_error", "anthropic", "anthropic", False),
    ("openai_text", "openai", "anthropic", True),
    ("openai_tools", "openai", "anthropic", True),
    ("anthropic_text", "anthropic", "openai", True),
    ("anthropic_tools", "anthropic", "openai", True),
    ("anthropic_error", "anthropic", "openai", False),
    ("gemini_text", "gemini", "openai", True),
    ("gemini_tools", "gemini", "anthropic", True),
]


class Outcome:
    def __init__(self) -> None:
        self.sent = b""
        self.commit_chunk: int | None = None
        self.ended = False
        self.failure: UpstreamFailure | None = None
        self.usage: tuple[int, int] | None = None


def core(backend: Wire, front: Wire, include_usage: bool = True, max_frame: int = 2**20) -> Stream:
    tr = translate.pick(front, backend)
    translator = (
        tr.Stream("alias-model", include_usage=include_usage, id="golden", created=1_700_000_000)
        if tr is not None
        else None
    )
    return Stream(front, translator, include_usage, max_frame, upstream=backend)


def drive(stream: Stream, chunks: list[bytes], eof: bool = True) -> Outcome:
    out = Outcome()
    feeds = [*chunks, b""] if eof else chunks
    for i, chunk in enumerate(feeds):
        actions = stream.feed(chunk) if chunk else stream.eof()
        for action in actions:
            if isinstance(action, Commit):
                assert out.commit_chunk is None, "commits once"
                assert not out.sent, "nothing is sent before commit"
                out.commit_chunk = i
                out.sent += action.data
            elif isinstance(action, Data):
                assert out.commit_chunk is not None, "data only after commit"
                out.sent += action.data
            elif isinstance(action, End):
                out.sent += action.data
                out.ended = True
            else:
                assert isinstance(action, UpstreamFailure)
                out.failure = action
        if stream.done:
            break
    out.usage = stream.usage
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def commit_offset(backend: Wire, front: Wire, data: bytes) -> int | None:
    """The upstream byte whose arrival commits the stream (fed one byte at a time)."""
    out = drive(core(backend, front), [data[i : i + 1] for i in range(len(data))])
    return out.commit_chunk


@pytest.mark.parametrize(("name", "backend", "front", "complete"), CASES)
def test_whole_transcript(name: str, backend: Wire, front: Wire, complete: bool) -> None:
    data = (GOLDEN / f"{name}.sse").read_bytes()
    out = drive(core(backend, front), [data])
    assert out.commit_chunk == 0
    assert out.ended is complete
    if complete:
        assert out.failure is None
        assert out.usage is not None and out.usage[0] > 0
    else:
        assert out.failure is not None and out.failure.kind == "stream_error"
        assert out.failure.reported, "the upstream's error frame went out to the client"


@pytest.mark.parametrize(("name", "backend", "front", "complete"), CASES)
@given(cuts=st.lists(st.integers(min_value=0), max_size=12))
@settings(max_examples=25, deadline=None)
def test_any_split_gives_the_same_stream(
    name: str, backend: Wire, front: Wire, complete: bool, cuts: list[int]
) -> None:
    data = (GOLDEN / f"{name}.sse").read_bytes()
    whole = drive(core(backend, front), [data])
    chunks = split(data, cuts)
    parts = drive(core(backend, front), chunks)
    assert parts.sent == whole.sent
    assert parts.usage == whole.usage
    assert parts.ended == whole.ended
    assert (parts.failure is None) == (whole.failure is None)
    offset = commit_offset(backend, front, data)
    assert offset is not None and parts.commit_chunk is not None
    start = sum(len(c) for c in chunks[: parts.commit_chunk])
    assert start <= offset < start + len(chunks[parts.commit_chunk]), "commits on that byte"


@pytest.mark.parametrize(("name", "backend", "front", "complete"), CASES)
@given(cut=st.integers(min_value=0))
@settings(max_examples=30, deadline=None)
def test_a_stream_cut_anywhere_is_never_complete(
    name: str, backend: Wire, front: Wire, complete: bool, cut: int
) -> None:
    data = (GOLDEN / f"{name}.sse").read_bytes()
    end = len(data.rstrip())  # everything after the last frame's text is line ends only
    at = cut % end
    out = drive(core(backend, front), [data[:at]])
    gemini_closed = backend == "gemini" and at >= end - 2  # Gemini's streams end on close
    assert not out.ended or gemini_closed, "cut streams never end clean"
    if not out.ended:
        assert out.failure is not None
        expected = {"truncated", "protocol", "stream_error"}
        assert out.failure.kind in expected


def test_usage_frame_is_dropped_unless_asked_for() -> None:
    data = (GOLDEN / "openai_text.sse").read_bytes()
    asked = drive(core("openai", "openai", include_usage=True), [data])
    unasked = drive(core("openai", "openai", include_usage=False), [data])
    assert b'"choices":[]' in asked.sent
    assert b'"choices":[]' not in unasked.sent
    assert asked.usage == unasked.usage is not None


def test_preamble_only_then_end_is_a_failover() -> None:
    role = b'data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n'
    out = drive(core("openai", "openai"), [role])
    assert out.commit_chunk is None
    assert out.failure is not None and out.failure.kind == "protocol"
    assert out.sent == b""


def test_error_before_commit_is_a_failover_not_sent() -> None:
    data = b'data: {"error": {"message": "bad key sk-abcdefghijklmnop"}}\n\n'
    out = drive(core("openai", "openai"), [data], eof=False)
    assert out.sent == b""
    assert out.failure is not None and out.failure.kind == "stream_error"
    assert not out.failure.reported
    assert "sk-abc" not in out.failure.message


def test_error_frame_after_commit_is_scrubbed() -> None:
    content = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    error = b'data: {"error": {"message": "Incorrect API key provided: sk-proj-abcdefghijkl"}}\n\n'
    out = drive(core("openai", "openai"), [content, error], eof=False)
    assert out.failure is not None and out.failure.reported
    assert b"sk-proj" not in out.sent
    assert b"Incorrect API key provided" in out.sent


def test_frame_without_terminator_is_bounded_after_commit() -> None:
    content = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    stream = core("openai", "openai", max_frame=4096)
    out = drive(stream, [content, b"data: " + b"x" * 5000], eof=False)
    assert out.failure is not None and out.failure.kind == "protocol"
    assert "4096" in out.failure.message


def test_preamble_is_bounded() -> None:
    stream = core("openai", "openai", max_frame=4096)
    role = b'data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n'
    out = drive(stream, [role] * 100, eof=False)
    assert out.failure is not None and out.failure.kind == "protocol"
    assert out.sent == b""


def test_endless_line_before_commit_is_bounded() -> None:
    stream = core("anthropic", "openai", max_frame=4096)
    out = drive(stream, [b"data: " + b"y" * 1000] * 10, eof=False)
    assert out.failure is not None and out.failure.kind == "protocol"


def test_many_small_pieces_of_one_frame_are_joined_once() -> None:
    # 20,000 pieces of one 200 KB frame: linear work (this finishes in milliseconds).
    content = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"z" * 200_000 + b'"}}]}'
    pieces = [content[i : i + 10] for i in range(0, len(content), 10)]
    out = drive(core("openai", "openai"), [*pieces, b"\n\ndata: [DONE]\n\n"])
    assert out.ended and out.sent.count(b"z") == 200_000
