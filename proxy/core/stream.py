"""The stream core, sans-IO in the style of h11: fed upstream bytes, it says what to do.

`Stream.feed(chunk)` and `Stream.eof()` return actions: `Commit(data)` (the stream commits:
send `data` first, no more failover), `Data(data)` (send it), `End(data)` (send it and end:
the stream is complete), or an `UpstreamFailure` (before commit: fail over; after commit: end
the stream with an error event, unless `reported`, when the upstream's own error frame has
just gone out in a `Data`). It never touches a socket or a clock.

The rules it keeps:
- **Commit.** Until the first event with content, a tool call or a finish, nothing is sent:
  the preamble (role-only chunk, `message_start`, empty deltas) is held, so a target that fails
  before its first token is replaced invisibly.
- **Pass-through.** After commit, same-protocol bytes go out as they arrived, whole frames
  only (an error frame appended after a failure never lands inside a half-sent one), and
  without decoding, except the usage-only frame the gateway asked for on the client's behalf
  (read, and dropped unless the client asked for it) and frames that carry an error (their
  credentials masked).
- **Complete or not.** A stream is complete only when its protocol's end marker arrived
  (`[DONE]`, `message_stop`, or the translator's finish) with nothing left over; any cut
  before that is `truncated`, never an `End`.
- **Bounded.** Held preamble, an unfinished frame and an unfinished line are each capped
  (`max_frame`): an upstream that never ends a frame fails instead of growing memory.
"""

from typing import NamedTuple

import msgspec

from proxy import ndjson, redact, sse
from proxy.core.events import (
    Verdict,
    decode_anthropic,
    decode_chunk,
    error_message,
    first_error,
    verdict,
)
from proxy.errors import UpstreamFailure, Wire
from proxy.providers.base import Framing
from proxy.translate import StreamTranslator, responses_output, responses_replay
from proxy.usage import Usage, anthropic_usage, from_openai_dict

_FAILED = b"event: response.failed"  # a Responses stream's own failure event
MAX_FRAME = 16 * 2**20  # bytes of one unfinished frame, or of the held preamble


class Commit(NamedTuple):
    data: bytes  # what goes out first


class Data(NamedTuple):
    data: bytes


class End(NamedTuple):
    data: bytes  # the last bytes; the stream is complete


Action = Commit | Data | End | UpstreamFailure


def _encode(events: list[sse.Event]) -> bytes:
    return b"".join(sse.encode(e.data, e.event) for e in events)


def _truncated() -> UpstreamFailure:
    return UpstreamFailure("truncated", "upstream stream ended before it was complete")


class Stream:
    """One upstream stream, relayed to a client speaking `front`.

    `translator` is None when the upstream speaks the client's protocol (pass-through).
    `usage` holds the latest (input, output) tokens the stream reported. `responses`: the
    client speaks the Responses API (errors in OpenAI's shape; events read by
    `translate.responses_replay`: what is preamble, what commits, fails or ends a stream).
    """

    def __init__(
        self,
        front: Wire,
        translator: StreamTranslator | None,
        include_usage: bool,
        max_frame: int = MAX_FRAME,
        upstream: Wire | None = None,
        framing: Framing = "sse",
        *,
        responses: bool = False,
    ) -> None:
        self.front = front
        self.responses = responses
        self._last = b""  # Responses pass-through: the last whole frames sent (for numbering)
        self._upstream = front if upstream is None else upstream
        self._upstream_ended = False  # translated: the upstream's own end marker arrived
        self.committed = False
        self.done = False  # ended or failed: nothing more to do
        self.usage: Usage | None = None
        self._tr = translator
        self._include_usage = include_usage
        self._max = max_frame
        # NDJSON upstreams (Ollama, some `type: http` servers) are always translated: their
        # lines reach the translator as events, as SSE events do.
        self.framing: Framing = framing
        self._decoder: sse.Decoder | ndjson.Decoder = (
            ndjson.Decoder(max_frame) if framing == "ndjson" else sse.Decoder(max_frame)
        )
        self._held: list[bytes] = []  # pass-through: upstream bytes before commit
        self._held_events: list[sse.Event] = []  # translated: client events before commit
        self._held_size = 0
        self._pending = bytearray()  # pass-through after commit: bytes of an unfinished frame
        self._searched = 0  # how much of `_pending` holds no frame end
        self._tail = b""  # the end of what was last sent (for the end-marker check)
        if responses:  # pass-through ends on response.completed (see _responses_region)
            self._end_marker, self._error_mark = b"event: response.completed", b"event: error"
        elif front == "anthropic":
            self._end_marker, self._error_mark = b"message_stop", b"event: error"
        else:
            self._end_marker, self._error_mark = b"[DONE]", b'{"error"'

    # -- the interface -------------------------------------------------------------------

    def feed(self, chunk: bytes) -> list[Action]:
        """What to do with the next bytes of the upstream stream."""
        if self.done or not chunk:
            return []
        try:
            if not self.committed:
                return self._precommit(chunk)
            if self._tr is None:
                return self._passthrough(chunk)
            return self._translated(chunk)
        except sse.LineTooLong as exc:
            return self._fail(UpstreamFailure("protocol", f"upstream stream: {exc}"))

    def eof(self) -> list[Action]:
        """The upstream stream ended."""
        if self.done:
            return []
        tail = self._last_line()
        self.done = True
        tr = self._tr
        if not self.committed:
            if tr is not None and tr.finish is not None and self._upstream_complete():
                held = [*self._held_events, *tail, *tr.close()]
                if any(self._verdict(e) == "commit" for e in held):
                    self.committed = True
                    self._take_usage()
                    return [Commit(_encode(held)), End(b"")]
            return [UpstreamFailure("protocol", "upstream stream ended before any content")]
        if tr is None:
            if self.responses:
                ended = self._upstream_ended and not self._pending.strip()
                return [End(b"")] if ended else [_truncated()]
            if self._pending.strip() or self._end_marker not in self._tail:
                return [_truncated()]
            return [End(b"")]
        self._take_usage()
        error = first_error(tail)
        if error is not None:
            return [Data(_encode(tail)), UpstreamFailure("stream_error", error, reported=True)]
        if tr.finish is None or not self._upstream_complete():
            return [Data(_encode(tail)), _truncated()] if tail else [_truncated()]
        return [End(_encode([*tail, *tr.close()]))]

    def _last_line(self) -> list[sse.Event]:
        """An NDJSON stream's last line when no newline followed it, translated."""
        if self._tr is None or not isinstance(self._decoder, ndjson.Decoder):
            return []
        tail = [e for ev in self._decoder.close() for e in self._tr.feed(ev)]
        self._take_usage()
        return tail

    # -- before commit -------------------------------------------------------------------

    def _precommit(self, chunk: bytes) -> list[Action]:
        self._held_size += len(chunk)
        if self._held_size > self._max:
            return self._fail(
                UpstreamFailure(
                    "protocol", f"upstream sent over {self._max} bytes without any content"
                )
            )
        events = self._decoder.feed(chunk)
        if self._tr is None:
            self._held.append(chunk)
            for event in events:
                if self.front == "anthropic":
                    self._anthropic_usage(event)
                v = self._verdict(event)
                if v == "error":
                    return self._fail(UpstreamFailure("stream_error", self._message(event)))
                if v == "commit":
                    self.committed = True
                    held, self._held = b"".join(self._held), []
                    out = self._passthrough(held)
                    first = out[0].data if out and isinstance(out[0], Data) else b""
                    return [Commit(first), *out[1:]]
            return []
        committed = False
        for event in events:
            self._see_end(event)
            for out_event in self._tr.feed(event):
                if not committed:
                    v = self._verdict(out_event)
                    if v == "error":
                        return self._fail(UpstreamFailure("stream_error", self._message(out_event)))
                    committed = v == "commit"
                self._held_events.append(out_event)
        if not committed:
            return []
        self.committed = True
        held_events, self._held_events = self._held_events, []
        actions: list[Action] = [Commit(_encode(held_events))]
        error = first_error(held_events)
        if error is not None:
            actions.append(self._fail(UpstreamFailure("stream_error", error, reported=True))[0])
        return actions

    # -- after commit ----------------------------------------------------------------------

    def _passthrough(self, chunk: bytes) -> list[Action]:
        pending = self._pending
        pending += chunk
        cut = sse.frame_end(pending, self._searched)
        if not cut:
            self._searched = max(0, len(pending) - 3)  # a terminator may straddle chunks
            if len(pending) > self._max:
                return self._fail(
                    UpstreamFailure(
                        "protocol", f"upstream sent an SSE frame over {self._max} bytes"
                    )
                )
            return []
        region = bytes(pending[:cut])
        del pending[:cut]
        self._searched = 0
        if self.responses:
            self._responses_region(region)
        elif self.front == "anthropic":
            if b"message_delta" in region:
                for event in sse.Decoder().feed(region):
                    self._anthropic_usage(event)
        elif b'"usage":{' in region or b'"usage": {' in region:
            region = self._usage_frames(region)
        if not region:
            return []
        failure = None
        if self._error_mark in region or (self.responses and _FAILED in region):
            region = self._scrub_errors(region)
            failure = self._error_in(region)
        self._tail = region[-48:]
        if failure is not None:
            return [Data(region), *self._fail(failure)]
        return [Data(region)]

    def _translated(self, chunk: bytes) -> list[Action]:
        assert self._tr is not None
        out: list[sse.Event] = []
        for event in self._decoder.feed(chunk):
            self._see_end(event)
            out.extend(self._tr.feed(event))
        if not out:
            return []
        actions: list[Action] = [Data(_encode(out))]
        error = first_error(out)
        if error is not None:
            actions.extend(self._fail(UpstreamFailure("stream_error", error, reported=True)))
        return actions

    def _scrub_errors(self, region: bytes) -> bytes:
        """Credentials masked in the frames that carry an error (only those: ids in ordinary
        frames look like secrets to a pattern and must pass untouched)."""
        frames = region.split(b"\n\n")
        mark = self._error_mark
        failed = _FAILED if self.responses else mark
        return b"\n\n".join(redact.scrub_body(f) if mark in f or failed in f else f for f in frames)

    def _error_in(self, region: bytes) -> UpstreamFailure | None:
        """The upstream reported an error in-band (and it goes out as is): the stream is over."""
        for event in sse.Decoder().feed(region):
            if self._verdict(event) == "error":
                return UpstreamFailure("stream_error", self._message(event), reported=True)
        return None

    def _usage_frames(self, region: bytes) -> bytes:
        """Read usage wherever a frame carries it (the usage-only frame the gateway asked for,
        or a finish chunk that carries it, as DeepSeek's do); drop the usage-only frame
        unless the client asked for it."""
        kept: list[bytes] = []
        for frame in region.split(b"\n\n"):
            if b'"usage":{' in frame or b'"usage": {' in frame:
                data = frame.partition(b"data:")[2].strip()
                try:
                    chunk = decode_chunk(data)
                except msgspec.DecodeError:
                    kept.append(frame)
                    continue
                if chunk.usage:
                    self.usage = from_openai_dict(chunk.usage)
                    if not chunk.choices and not self._include_usage:
                        continue
            kept.append(frame)
        return b"\n\n".join(kept)

    def _anthropic_usage(self, event: sse.Event) -> None:
        """message_start carries input tokens, message_delta the cumulative output."""
        if event.event not in ("message_start", "message_delta"):
            return
        try:
            ev = decode_anthropic(event.data)
        except msgspec.DecodeError:
            return
        found = ev.message.usage if ev.message is not None else ev.usage
        if found is None:
            return
        inp, out = anthropic_usage(found)
        if event.event == "message_delta" and self.usage is not None and not inp:
            inp = self.usage[0]  # message_delta may repeat only output_tokens
        self.usage = (inp, out)

    # -- Responses API clients -----------------------------------------------------------

    def _verdict(self, event: sse.Event) -> Verdict:
        return responses_replay.verdict(event) if self.responses else verdict(self.front, event)

    def _message(self, event: sse.Event) -> str:
        if not self.responses or responses_replay.kind(event) not in responses_replay.FAILURE:
            return error_message(event.data)
        return "upstream stream error: " + redact.scrub(responses_replay.failure_message(event))

    def _responses_region(self, region: bytes) -> None:
        """Pass-through: usage and completion from the terminal event; keep the last frames,
        whose `sequence_number` a gateway-made error event must follow."""
        self._last = region[-4096:]
        if b"event: response." not in region:
            return
        for event in sse.Decoder().feed(region):
            usage = responses_replay.stream_usage(event)
            if usage is not None:
                self.usage = usage
            if event.event in responses_replay.COMPLETE:
                self._upstream_ended = True

    def failure_frames(self, failure: UpstreamFailure) -> bytes | None:
        """For a Responses client, the frames that end a committed stream the gateway must cut:
        `response.failed` + `error` from the translator, or a numbered `error` event after
        passed-through frames. None: the caller sends its protocol's error event."""
        if not self.responses:
            return None
        kind = "timeout_error" if failure.kind == "timeout" else "api_error"
        fail = getattr(self._tr, "fail", None)
        if fail is not None:
            return _encode(fail(kind, failure.message))
        return responses_output.passthrough_error(self._last, kind, failure.message)

    def _see_end(self, event: sse.Event) -> None:
        if self._upstream == "openai":
            self._upstream_ended = self._upstream_ended or event.data.startswith("[DONE]")
        elif self._upstream == "anthropic":
            self._upstream_ended = self._upstream_ended or event.event == "message_stop"

    def _upstream_complete(self) -> bool:
        """OpenAI and Anthropic streams end with a marker; Gemini's, Ollama's and `type: http`
        ones end on close (their translator knows whether a finish arrived)."""
        return self._upstream in ("gemini", "ollama", "http") or self._upstream_ended

    def _take_usage(self) -> None:
        if self._tr is not None and self._tr.usage is not None:
            self.usage = self._tr.usage

    def _fail(self, failure: UpstreamFailure) -> list[Action]:
        self.done = True
        return [failure]
