"""An incremental loop detector for streamed model output (text or tool-call arguments).

Rule: the output is looping when its most recent characters are one fragment repeated
back to back: a fragment of length p, k >= min_repeats copies, and the repeated stretch
k*p is at least MIN_SPAN characters (so a row of dashes or a table rule isn't a loop) and
fits in `window` characters. Only the tail counts: a repetition the model has moved on
from is not a loop.

Cost: text is buffered, and checked once every CHECK_EVERY characters. A check looks for
earlier occurrences of the last PROBE characters within the last window/min_repeats + PROBE
characters (`str.rfind`, in C): in a p-periodic tail the probe recurs at distance p, so each
occurrence gives a candidate period, verified with one slice comparison. So a check is
O(window) in C, and per character the cost is O(window / CHECK_EVERY): constant for a given
window. Pure: no clock, no IO. Invariant: once a loop is reported, every later `feed`
reports the same loop.
"""

import msgspec

__all__ = ["CHECK_EVERY", "MIN_SPAN", "PROBE", "Detector", "Loop"]

PROBE = 16  # characters of the tail searched for earlier in the window
MIN_SPAN = 256  # a loop's repeated stretch is at least this long (>= 2 * PROBE, see _check)
CHECK_EVERY = 128  # characters between checks; a loop is reported at most this late
MAX_CANDIDATES = 64  # occurrences of the probe tried per check


class Loop(msgspec.Struct, frozen=True):
    length: int  # characters in the repeated fragment
    count: int  # times it repeats back to back at the end of the output


class Detector:
    """Feed it the output as it streams; it returns the loop once there is one."""

    __slots__ = ("_buf", "_longest", "_pending", "_pending_len", "found", "min_repeats", "window")

    def __init__(self, window: int = 4096, min_repeats: int = 6) -> None:
        if min_repeats < 2 or window < MIN_SPAN or min_repeats > window:
            raise ValueError("need min_repeats >= 2, window >= MIN_SPAN, min_repeats <= window")
        self.window = window
        self.min_repeats = min_repeats
        self._longest = window // min_repeats  # the longest fragment that fits often enough
        self._buf = ""
        self._pending: list[str] = []
        self._pending_len = 0
        self.found: Loop | None = None

    def feed(self, text: str) -> Loop | None:
        """The loop, if the output fed so far (checked every CHECK_EVERY chars) ends in one."""
        if self.found is not None or not text:
            return self.found
        self._pending.append(text)
        self._pending_len += len(text)
        if self._pending_len >= CHECK_EVERY:
            return self.check()
        return None

    def check(self) -> Loop | None:
        """Check now, whatever was fed since the last check (say, at the end of a stream)."""
        if self.found is not None:
            return self.found
        if self._pending:
            buf = self._buf
            self._buf = ""  # `buf` is now the only reference: CPython appends in place
            buf += "".join(self._pending)
            self._pending.clear()
            self._pending_len = 0
            # Keep between window and 2*window characters: trimming is amortised O(1).
            self._buf = buf[-self.window :] if len(buf) > 2 * self.window else buf
        self.found = self._check()
        return self.found

    def _check(self) -> Loop | None:
        buf = self._buf
        n = len(buf)
        if n < MIN_SPAN:
            return None
        probe = buf[n - PROBE :]
        # Occurrences at distance p <= _longest; a match must end before the tail's own probe.
        low = max(0, n - PROBE - self._longest)
        end = n - 1
        for _ in range(MAX_CANDIDATES):
            i = buf.rfind(probe, low, end)
            if i < 0:
                return None
            p = n - PROBE - i  # nearest first: the smallest period is tried first
            span = max(self.min_repeats * p, MIN_SPAN)
            # span >= PROBE + p always (MIN_SPAN >= 2*PROBE, min_repeats >= 2), so a truly
            # p-periodic tail puts an occurrence at distance p: no loop is missed.
            if span <= n and span <= self.window and buf.endswith(buf[n - span : n - p]):
                return Loop(p, self._repeats(p, span))
            end = i + PROBE - 1
        return None

    def _repeats(self, p: int, span: int) -> int:
        """Copies of the p-long fragment at the end, counting back as far as the window."""
        buf, n = self._buf, len(self._buf)
        limit = min(n, self.window)
        span -= span % p  # whole copies, counted back from the end
        while span + p <= limit and buf[n - span - p : n - span] == buf[n - span : n - span + p]:
            span += p
        return span // p
