"""Incremental NDJSON (newline-delimited JSON) line decoding, the framing Ollama streams in.

Sans-IO like `sse.Decoder`: `feed` takes whatever bytes arrived and returns the lines they
complete, each as an `sse.Event` whose `data` is the line's text, so a stream translator is
fed the same type whichever framing its upstream uses. Invariant: any split of the same byte
stream yields the same events; blank lines are skipped; `\\r\\n` and `\\n` both end a line;
a last line without its newline is returned by `close()`, never by `feed`.
"""

from proxy.sse import Event, LineTooLong

MAX_LINE = 16 * 2**20  # a longer line without a newline is not NDJSON


class Decoder:
    __slots__ = ("_buf", "_max_line")

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._buf = b""
        self._max_line = max_line

    @property
    def pending(self) -> bool:
        """True while bytes of an unfinished, non-blank line are held."""
        return bool(self._buf.strip())

    def feed(self, chunk: bytes) -> list[Event]:
        if not chunk:
            return []
        buf = self._buf + chunk if self._buf else chunk
        end = buf.rfind(b"\n")
        if end < 0:
            if len(buf) > self._max_line:
                raise LineTooLong(f"an NDJSON line grew past {self._max_line} bytes without ending")
            self._buf = buf
            return []
        self._buf = buf[end + 1 :]
        return [_event(line) for line in buf[:end].split(b"\n") if line.strip()]

    def close(self) -> list[Event]:
        """The last line, when the stream ended without a newline after it."""
        rest, self._buf = self._buf, b""
        return [_event(rest)] if rest.strip() else []


def _event(line: bytes) -> Event:
    return Event(line.strip().decode("utf-8", "replace"))
