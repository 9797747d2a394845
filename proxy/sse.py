"""Incremental Server-Sent Events decoding and encoding.

Sans-IO, as in h11: `Decoder.feed` takes whatever bytes arrived and returns the events they
complete; nothing here touches a socket or a clock. Any split of the same byte stream into
chunks yields the same events (WHATWG rules: CR, LF or CRLF line ends, a blank line
dispatches, `:` lines are comments, multi-line `data` is joined with `\\n`).
"""

import re
from typing import NamedTuple

KEEPALIVE = b": keepalive\n\n"
_BOM = b"\xef\xbb\xbf"
MAX_LINE = 16 * 2**20  # bytes in one line: a base64 image fits, an endless line does not


class LineTooLong(ValueError):
    """A line grew past the decoder's bound without ending."""


class Event(NamedTuple):
    data: str
    event: str = ""  # "" when the frame had no `event:` line
    id: str | None = None
    retry: int | None = None


class Decoder:
    """Feed bytes, get whole events. An unfinished event at end of stream is never emitted."""

    __slots__ = (
        "_bom",
        "_bom_buf",
        "_data",
        "_event",
        "_has_data",
        "_id",
        "_max_line",
        "_parts",
        "_retry",
        "_size",
        "_skip_lf",
    )

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._max_line = max_line
        self._parts: list[bytes] = []  # pieces of an unfinished line, joined once it ends
        self._size = 0  # bytes of the unfinished line
        self._bom = True  # a UTF-8 BOM may open the stream (WHATWG: strip it)
        self._bom_buf = b""
        self._skip_lf = False  # last chunk ended in CR: a leading LF belongs to that line end
        self._data: list[str] = []
        self._has_data = False
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None

    @property
    def pending(self) -> bool:
        """True while bytes of an event that has not been dispatched are held."""
        return bool(self._parts or self._bom_buf) or self._has_data or bool(self._event)

    def feed(self, chunk: bytes) -> list[Event]:
        if not chunk:
            return []
        if self._bom:  # a UTF-8 BOM may open the stream (WHATWG: strip it), split or not
            if self._bom_buf:
                chunk, self._bom_buf = self._bom_buf + chunk, b""
            if len(chunk) < 3 and _BOM.startswith(chunk):
                self._bom_buf = chunk
                return []
            if chunk.startswith(_BOM):
                chunk = chunk[3:]
            self._bom = False
        if not chunk:
            return []
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = False
        if not chunk:  # only the LF of a CRLF split across chunks
            return []
        if b"\n" not in chunk and b"\r" not in chunk:
            # Still the same line: keep the piece (joining now would copy the line again for
            # every chunk), and bound how long a line may grow.
            self._size += len(chunk)
            if self._size > self._max_line:
                raise LineTooLong(f"an SSE line grew past {self._max_line} bytes without ending")
            self._parts.append(chunk)
            return []
        if self._parts:
            self._parts.append(chunk)
            buf = b"".join(self._parts)
            self._parts = []
        else:
            buf = chunk
        events: list[Event] = []
        start = 0
        n = len(buf)
        while start < n:
            lf = buf.find(b"\n", start)
            cr = buf.find(b"\r", start, lf if lf >= 0 else n)
            if cr >= 0:
                end, nxt = cr, cr + 1
                if nxt < n and buf[nxt] == 0x0A:
                    nxt += 1
                elif nxt == n:
                    self._skip_lf = True
            elif lf >= 0:
                end, nxt = lf, lf + 1
            else:
                break
            event = self._line(buf[start:end])
            if event is not None:
                events.append(event)
            start = nxt
        rest = buf[start:]
        self._size = len(rest)
        if rest:
            if self._size > self._max_line:
                raise LineTooLong(f"an SSE line grew past {self._max_line} bytes without ending")
            self._parts = [rest]
        return events

    def _line(self, raw: bytes) -> Event | None:
        if not raw:
            return self._dispatch()
        if raw[0] == 0x3A:  # ':' comment
            return None
        colon = raw.find(b":")
        if colon < 0:
            name, value = raw, b""
        else:
            name, value = raw[:colon], raw[colon + 1 :]
            if value[:1] == b" ":
                value = value[1:]
        if name == b"data":
            self._data.append(value.decode("utf-8", "replace"))
            self._has_data = True
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self._id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> Event | None:
        if not self._has_data:
            self._event = ""
            return None
        event = Event("\n".join(self._data), self._event, self._id, self._retry)
        self._data = []
        self._has_data = False
        self._event = ""
        self._retry = None
        return event


def encode(data: str, event: str = "") -> bytes:
    """One frame: `event:` line when named, one `data:` line per line of data, blank line."""
    head = f"event: {event}\n" if event else ""
    if "\n" in data or "\r" in data:
        lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        body = "".join(f"data: {line}\n" for line in lines)
    else:
        body = f"data: {data}\n"
    return (head + body + "\n").encode()


# A line end (never half a CRLF) followed by an empty line's end.
_BLANK_LINE = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")


def frame_end(buf: bytes | bytearray, start: int = 0) -> int:
    """Index just past the last complete frame in `buf` (0 if none), looking only at
    `buf[start:]` (what was already searched need not be searched again).

    Lets the pass-through relay forward whole frames only, without decoding them, so an error
    frame appended after an upstream failure never lands in the middle of a half-sent one.
    """
    end = buf.rfind(b"\n\n", start)
    if end >= 0:
        end += 2
    crlf = buf.rfind(b"\r\n\r\n", start)
    if crlf >= 0 and crlf + 4 > end:
        end = crlf + 4
    if end <= 0 and b"\r" in buf[start:]:  # rare line ends: CR alone, or mixed
        for m in _BLANK_LINE.finditer(buf, start):
            end = m.end()
    return max(end, 0)
