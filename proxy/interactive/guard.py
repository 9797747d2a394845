"""Loop detection wrapped for a stream relay: feed it the frames going to the client.

`guard_for` gives None when detection is off, so a disabled guard costs one `is None` test
per chunk. Fed whole SSE frames in the front door's protocol (after any translation), it
watches the text and the tool-call arguments with a detector each, and names the loop it
finds as a `LoopDetected` error, which `errors.stream_event` renders as the protocol's error
event (OpenAI `data: {"error": ...}`, Anthropic `event: error`). Pure.
"""

from typing import ClassVar, Literal

from proxy import errors
from proxy.config import LoopDetection
from proxy.interactive.loops import Detector, Loop
from proxy.interactive.streamtext import split

__all__ = ["LoopDetected", "LoopGuard", "guard_for"]


class LoopDetected(errors.ProxyError):
    """The model's output repeats itself; the gateway cut the stream."""

    status: ClassVar[int] = 502
    type: ClassVar[str] = "loop_detected"
    anthropic_type: ClassVar[str] = "loop_detected"
    code = "loop_detected"

    def __init__(self, loop: Loop, where: str) -> None:
        super().__init__(
            f"the model's {where} repeated a {loop.length}-character fragment {loop.count} "
            "times in a row, so the gateway cut the stream (loop_detected); retry, or change "
            "the prompt or temperature"
        )
        self.loop = loop


class LoopGuard:
    __slots__ = ("_arguments", "_text", "wire")

    def __init__(self, settings: LoopDetection, wire: Literal["openai", "anthropic"]) -> None:
        self.wire = wire
        self._text = Detector(settings.window, settings.min_repeats)
        self._arguments = Detector(settings.window, settings.min_repeats)

    def feed(self, frames: bytes) -> LoopDetected | None:
        """The loop, once the output fed so far ends in one; `frames` are whole SSE frames."""
        got = split(frames, self.wire)
        if got.text and (loop := self._text.feed(got.text)) is not None:
            return LoopDetected(loop, "text")
        if got.arguments and (loop := self._arguments.feed(got.arguments)) is not None:
            return LoopDetected(loop, "tool-call arguments")
        return None


def guard_for(settings: LoopDetection, wire: Literal["openai", "anthropic"]) -> LoopGuard | None:
    return LoopGuard(settings, wire) if settings.enabled else None
