"""The NDJSON line decoder: any split of the same bytes gives the same events."""

import json

from hypothesis import given
from hypothesis import strategies as st

from proxy import ndjson
from proxy.sse import Event

_values = st.dictionaries(
    st.text(max_size=8), st.integers() | st.text(max_size=20) | st.booleans(), max_size=4
)


def _decode(data: bytes, cuts: list[int]) -> list[Event]:
    d = ndjson.Decoder()
    out: list[Event] = []
    last = 0
    for cut in sorted(set(cuts)):
        out.extend(d.feed(data[last:cut]))
        last = cut
    out.extend(d.feed(data[last:]))
    return out + d.close()


@given(
    st.lists(_values, max_size=6),
    st.lists(st.integers(0, 400), max_size=12),
    st.sampled_from([b"\n", b"\r\n"]),
    st.booleans(),
)
def test_any_split_gives_the_same_lines(
    docs: list[dict[str, object]], cuts: list[int], end: bytes, last_newline: bool
) -> None:
    lines = [json.dumps(d, ensure_ascii=False).encode() for d in docs]
    data = end.join(lines) + (end if last_newline and lines else b"")
    events = _decode(data, [c for c in cuts if c <= len(data)])
    assert [json.loads(e.data) for e in events] == docs


def test_blank_lines_are_skipped_and_unicode_survives_a_split() -> None:
    data = '\n{"a": "é"}\n\n  \n{"b": 1}\n'.encode()
    cut = data.index(b"\xc3") + 1  # inside the two-byte é
    d = ndjson.Decoder()
    events = d.feed(data[:cut]) + d.feed(data[cut:])
    assert [e.data for e in events] == ['{"a": "é"}', '{"b": 1}']
    assert not d.pending
    assert d.close() == []


def test_an_unterminated_last_line_comes_from_close_only() -> None:
    d = ndjson.Decoder()
    assert d.feed(b'{"done": true}') == []
    assert d.pending
    assert d.close() == [Event('{"done": true}')]


def test_a_line_past_the_limit_is_refused() -> None:
    d = ndjson.Decoder(max_line=8)
    assert d.feed(b'{"a":1}\n{"b"') == [Event('{"a":1}')]
    try:
        d.feed(b":22222}")
    except ndjson.LineTooLong:
        return
    raise AssertionError("an endless line was accepted")
