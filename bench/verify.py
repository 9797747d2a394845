"""What the delayed upstream sends, and the check that a client received exactly that.

Pure: the splitter is fed bytes as they arrived (any split of a stream gives the same
events); the verifier compares the events against the deterministic content the upstream
generates for (nonce, seq), so a lost, reordered, duplicated or garbled event is counted,
including one that belongs to another stream.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")
DONE = b"[DONE]"


def stream_id(nonce: str) -> str:
    return f"chatcmpl-{nonce}"


def expected_content(nonce: str, seq: int) -> str:
    """The content of event `seq` of the stream opened with `user: nonce`."""
    return f"{nonce}:{seq}|{_WORDS[seq % len(_WORDS)]} "


class SSESplitter:
    """Incremental SSE decoder that keeps only `data:` payloads; comments (keepalives) and
    events without data are skipped, multi-line data is joined with newlines."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf + data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        *events, self._buf = buf.split(b"\n\n")
        out: list[bytes] = []
        for event in events:
            lines = [
                line[5:].removeprefix(b" ")
                for line in event.split(b"\n")
                if line.startswith(b"data:")
            ]
            if lines:
                out.append(b"\n".join(lines))
        return out

    @property
    def pending(self) -> bytes:
        """Bytes of an event not yet terminated by a blank line."""
        return self._buf


class _Delta(msgspec.Struct):
    content: str | None = None
    role: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta = msgspec.field(default_factory=_Delta)
    index: int = 0
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    id: str
    object: str
    choices: list[_Choice]


_decode_chunk = msgspec.json.Decoder(_Chunk).decode


@dataclass(frozen=True)
class StreamCheck:
    """lost counts every event the upstream sent that never arrived: content events, the
    finish chunk and [DONE]."""

    received: int = 0
    lost: int = 0
    reordered: int = 0
    duplicated: int = 0
    garbled: int = 0
    finished: bool = False
    done: bool = False

    @property
    def ok(self) -> bool:
        return not (self.lost or self.reordered or self.duplicated or self.garbled)


def _content_seq(content: str, nonce: str, chunks: int) -> int | None:
    """The sequence number of a content event, or None when it is not exactly what the
    upstream sends for this stream."""
    head, sep, _ = content.partition("|")
    prefix, colon, number = head.rpartition(":")
    if not (sep and colon and prefix == nonce and number.isdigit()):
        return None
    seq = int(number)
    if seq >= chunks or content != expected_content(nonce, seq):
        return None
    return seq


def verify_stream(payloads: Sequence[bytes], nonce: str, chunks: int) -> StreamCheck:
    """Check the data payloads of one stream against what the delayed upstream sent for
    (nonce, chunks): content events 0..chunks-1 in order, a finish chunk, then [DONE].
    Usage-only chunks (no choices) and role-only chunks are accepted anywhere before [DONE]."""
    seen: set[int] = set()
    highest = -1
    reordered = duplicated = garbled = 0
    finished = done = False
    want_id = stream_id(nonce)
    for payload in payloads:
        if done:  # nothing may follow [DONE]
            garbled += 1
            continue
        if payload == DONE:
            done = True
            continue
        try:
            chunk = _decode_chunk(payload)
        except msgspec.DecodeError:
            garbled += 1
            continue
        if chunk.id != want_id or chunk.object != "chat.completion.chunk":
            garbled += 1
            continue
        for choice in chunk.choices:
            if choice.finish_reason is not None:
                finished = True
            content = choice.delta.content
            if not content:
                continue
            seq = _content_seq(content, nonce, chunks)
            if seq is None or (finished and choice.finish_reason is None):
                garbled += 1
            elif seq in seen:
                duplicated += 1
            else:
                if seq < highest:
                    reordered += 1
                seen.add(seq)
                highest = max(highest, seq)
    lost = (chunks - len(seen)) + (not finished) + (not done)
    return StreamCheck(
        received=len(seen),
        lost=lost,
        reordered=reordered,
        duplicated=duplicated,
        garbled=garbled,
        finished=finished,
        done=done,
    )
