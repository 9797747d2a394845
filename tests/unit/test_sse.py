"""proxy.sse: the incremental decoder (WHATWG rules), `encode` and `frame_end`."""

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.sse import KEEPALIVE, Decoder, Event, encode, frame_end


def decode(*chunks: bytes) -> list[Event]:
    d = Decoder()
    return [e for chunk in chunks for e in d.feed(chunk)]


# --- Decoder: examples ----------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_every_line_ending_gives_the_same_events(eol: bytes) -> None:
    stream = eol.join([b"event: add", b"data: 1", b"data: 2", b"", b"data: x", b"", b""])
    assert decode(stream) == [Event("1\n2", "add"), Event("x")]


def test_mixed_line_endings_in_one_stream() -> None:
    assert decode(b"data: a\r\ndata: b\rdata: c\n\r\n") == [Event("a\nb\nc")]


def test_comments_and_keepalives_yield_nothing() -> None:
    assert decode(KEEPALIVE, b": hi\n:\n\n", KEEPALIVE) == []
    assert decode(b": note\ndata: x\n: another\n\n") == [Event("x")]


def test_one_leading_space_is_stripped_from_values_and_no_more() -> None:
    assert decode(b"data:x\n\ndata: x\n\ndata:  x\n\n") == [Event("x"), Event("x"), Event(" x")]


def test_field_without_colon_has_an_empty_value() -> None:
    assert decode(b"data\ndata\n\n") == [Event("\n")]
    assert decode(b"data:\n\n") == [Event("")]


def test_values_keep_later_colons() -> None:
    assert decode(b'data: {"a": "b:c"}\n\n') == [Event('{"a": "b:c"}')]


def test_unknown_fields_are_ignored() -> None:
    assert decode(b"foo: bar\ndata: x\nDATA: y\n\n") == [Event("x")]


def test_event_without_data_is_not_dispatched_and_its_type_does_not_leak() -> None:
    assert decode(b"event: ping\n\ndata: x\n\n") == [Event("x", "")]


def test_event_type_resets_after_each_dispatch() -> None:
    assert decode(b"event: a\ndata: 1\n\ndata: 2\n\n") == [Event("1", "a"), Event("2", "")]


def test_last_event_id_persists_and_nul_ids_are_ignored() -> None:
    events = decode(b"id: 7\ndata: a\n\ndata: b\n\nid: 8\x009\ndata: c\n\nid\ndata: d\n\n")
    assert [e.id for e in events] == ["7", "7", "7", ""]


def test_retry_is_taken_only_when_all_digits() -> None:
    events = decode(b"retry: 1500\ndata: a\n\nretry: 15x\ndata: b\n\nretry: -1\ndata: c\n\n")
    assert [e.retry for e in events] == [1500, None, None]


def test_unfinished_event_is_never_emitted() -> None:
    d = Decoder()
    assert d.feed(b"data: a\n") == []
    assert d.pending
    assert d.feed(b"data: b") == []
    assert d.pending
    assert d.feed(b"\n\n") == [Event("a\nb")]
    assert not d.pending


def test_pending_is_false_between_frames() -> None:
    d = Decoder()
    assert not d.pending
    d.feed(b"data: a\n\n: comment\n")
    assert not d.pending
    d.feed(b"event: x\n")
    assert d.pending


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    assert decode(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [Event("a\nb")]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode(b"data: \xff\xfe\n\n") == [Event("\ufffd\ufffd")]


def test_multibyte_character_split_across_chunks() -> None:
    raw = "data: h\u00e9llo \u2603\n\n".encode()
    assert decode(*(raw[i : i + 1] for i in range(len(raw)))) == [Event("h\u00e9llo \u2603")]


def test_empty_chunk_between_cr_and_lf_changes_nothing() -> None:
    assert decode(b"data: a\r", b"", b"\ndata: b\n\n") == [Event("a\nb")]


def test_leading_bom_is_skipped() -> None:
    assert decode(b"\xef\xbb\xbfdata: a\n\n") == [Event("a")]


# --- Decoder: any split gives the same events -----------------------------------------------

EOL = st.sampled_from([b"\n", b"\r", b"\r\n"])
FIELD_LINE = st.one_of(
    st.builds(lambda v: b"data: " + v, st.binary(max_size=12)),
    st.builds(lambda v: b"data:" + v, st.binary(max_size=6)),
    st.builds(lambda v: b"event: " + v, st.binary(max_size=6)),
    st.builds(lambda v: b"id: " + v, st.binary(max_size=4)),
    st.builds(lambda v: b"retry: " + v, st.sampled_from([b"10", b"x", b""])),
    st.builds(lambda v: b":" + v, st.binary(max_size=6)),
    st.just(b"data"),
    st.just(b""),
).map(lambda line: line.replace(b"\r", b"").replace(b"\n", b""))


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """SSE-shaped bytes with every kind of line end; sometimes plain noise."""
    if draw(st.booleans()):
        lines = draw(st.lists(st.tuples(FIELD_LINE, EOL), max_size=20))
        return b"".join(line + eol for line, eol in lines) + draw(st.binary(max_size=4))
    return draw(st.binary(max_size=60))


@st.composite
def splits(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """Non-empty chunks that join to `data`."""
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(data) - 1)), max_size=8)))
    cuts = [c for c in cuts if 0 < c < len(data)]
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@given(st.data())
@settings(max_examples=200)
def test_any_split_gives_the_same_events(data: st.DataObject) -> None:
    stream = data.draw(streams())
    chunks = data.draw(splits(stream))
    assert b"".join(chunks) == stream
    d_whole, d_split = Decoder(), Decoder()
    assert d_whole.feed(stream) == [e for c in chunks for e in d_split.feed(c)]
    assert d_whole.pending == d_split.pending


@given(streams())
@settings(max_examples=100)
def test_byte_at_a_time_gives_the_same_events(stream: bytes) -> None:
    assert decode(*(stream[i : i + 1] for i in range(len(stream)))) == decode(stream)


@given(streams())
@settings(max_examples=60)
def test_line_endings_do_not_change_the_events(stream: bytes) -> None:
    # Rewriting every line end as LF (CRLF first) keeps the same lines.
    as_lf = stream.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    assert decode(stream) == decode(as_lf)


# --- encode ---------------------------------------------------------------------------------


def test_encode_single_line() -> None:
    assert encode('{"a":1}') == b'data: {"a":1}\n\n'


def test_encode_named_event() -> None:
    assert encode("x", "message_stop") == b"event: message_stop\ndata: x\n\n"


def test_encode_multi_line_data_is_one_data_line_per_line() -> None:
    assert encode("a\nb") == b"data: a\ndata: b\n\n"
    assert decode(encode("a\nb")) == [Event("a\nb")]


def test_encode_empty_data() -> None:
    assert decode(encode("")) == [Event("")]


@pytest.mark.parametrize("data", ["a\r\nb", "a\rb", "a\r\n\r\nb", "a\n\rb"])
def test_encode_turns_cr_and_crlf_into_lf(data: str) -> None:
    # SSE cannot carry a CR in data: each line end becomes the decoder's "\n".
    expected = data.replace("\r\n", "\n").replace("\r", "\n")
    assert decode(encode(data)) == [Event(expected)]


# No CR (normalised, see above), no trailing LF (data ending in a line break is checked on
# its own), and none of the other separators str.splitlines() also breaks on.
SPLITLINES_ONLY = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
PLAIN = st.text(
    st.characters(blacklist_characters="\r" + SPLITLINES_ONLY, blacklist_categories=("Cs",))
).filter(lambda s: not s.endswith("\n"))


@given(PLAIN, st.text(st.characters(codec="ascii", categories=("L", "N")), max_size=12))
@settings(max_examples=300)
def test_encode_round_trips(data: str, name: str) -> None:
    assert decode(encode(data, name)) == [Event(data, name)]


@given(st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",))))
def test_encode_round_trips_single_lines_exactly(data: str) -> None:
    # Without CR/LF the data is one line, whatever other separators it holds.
    assert decode(encode(data)) == [Event(data)]


@given(st.lists(PLAIN, max_size=5), st.data())
@settings(max_examples=100)
def test_encoded_frames_split_anywhere_decode_in_order(
    frames: list[str], data: st.DataObject
) -> None:
    stream = b"".join(encode(f) for f in frames)
    chunks = data.draw(splits(stream))
    assert decode(*chunks) == [Event(f) for f in frames]


@pytest.mark.parametrize("data", ["a\n", "\n"])
def test_encode_keeps_a_trailing_newline(data: str) -> None:
    assert decode(encode(data)) == [Event(data)]


@pytest.mark.parametrize("sep", ["\x0b", "\x85", "\u2028"])
def test_encode_does_not_split_on_unicode_line_separators(sep: str) -> None:
    data = f"a{sep}b\nc"
    assert decode(encode(data)) == [Event(data)]


# --- frame_end ------------------------------------------------------------------------------


def test_frame_end_examples() -> None:
    assert frame_end(b"") == 0
    assert frame_end(b"data: a\n") == 0
    assert frame_end(b"data: a\n\n") == 9
    assert frame_end(b"data: a\n\ndata: b\n") == 9
    assert frame_end(b"data: a\n\ndata: b\n\n") == 18
    assert frame_end(b"data: a\r\n\r\ndata: b") == 11
    assert frame_end(b"data: a\r\n\ndata: b") == 10
    assert frame_end(KEEPALIVE) == len(KEEPALIVE)


FRAME_EOL = st.sampled_from([b"\n", b"\r\n"])


@st.composite
def framed(draw: st.DrawFn) -> tuple[bytes, int]:
    """Whole frames (LF or CRLF, mixed per frame) then a tail that ends no frame."""
    whole = b""
    for _ in range(draw(st.integers(0, 4))):
        eol = draw(FRAME_EOL)
        lines = draw(st.lists(FIELD_LINE.filter(bool), min_size=1, max_size=3))
        whole += b"".join(line + eol for line in lines) + eol
    tail_eol = draw(FRAME_EOL)
    tail_lines = draw(st.lists(FIELD_LINE.filter(bool), max_size=3))
    tail = b"".join(line + tail_eol for line in tail_lines) + draw(
        st.binary(max_size=6).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
    )
    return whole + tail, len(whole)


@given(framed())
@settings(max_examples=100)
def test_frame_end_finds_the_last_whole_frame(case: tuple[bytes, int]) -> None:
    buf, whole = case
    assert frame_end(buf) == whole


@given(st.binary(max_size=80) | streams())
@settings(max_examples=200)
def test_frame_end_never_cuts_inside_a_frame(buf: bytes) -> None:
    cut = frame_end(buf)
    assert 0 <= cut <= len(buf)
    head = Decoder()
    head_events = head.feed(buf[:cut])
    assert not head.pending  # nothing half-read: the cut is between frames
    assert head_events + head.feed(buf[cut:]) == Decoder().feed(buf)


@pytest.mark.parametrize("buf", [b"data: a\r\r", b"data: a\n\r\n", b"data: a\r\r\n"])
def test_frame_end_knows_every_blank_line(buf: bytes) -> None:
    assert frame_end(buf) == len(buf)


def test_frame_end_is_a_line_boundary_for_the_relay() -> None:
    # The relay splits on the cut and forwards the head whole: the cut is never mid-line.
    buf = b"data: a\n\ndata: b\r\n\r\ndata: c"
    cut = frame_end(buf)
    assert buf[:cut].endswith((b"\n\n", b"\r\n\r\n"))
    assert re.fullmatch(rb"data: c", buf[cut:])


@pytest.mark.parametrize(
    "chunks",
    [
        [b"\xef", b"\xbb", b"\xbfdata: x\n\n"],
        [b"\xef\xbb", b"\xbfdata: x\n\n"],
        [b"\xef", b"\xbb\xbfdata: x\n", b"\n"],
        [b":", b"\r", b"\n", b"data: x\r\n\r\n"],
    ],
)
def test_split_bom_and_crlf_give_the_same_events_and_state(chunks: list[bytes]) -> None:
    whole, parts = Decoder(), Decoder()
    expected = whole.feed(b"".join(chunks))
    got = [e for c in chunks for e in parts.feed(c)]
    assert got == expected == [Event("x")]
    assert parts.pending is whole.pending is False
