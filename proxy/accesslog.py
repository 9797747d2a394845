"""The access log: one JSON line per request, on stdout by default (`LLM_PROXY_ACCESS_LOG`).

On stdout/stderr lines are written in batches (see `_Sink`); with `inherit` they go through
the `llm_proxy.access` logger, built only when a handler will see them; `off` costs
nothing. It names the client key by its configured name, never the key; the prompt appears
only when
`log_prompts` is `redacted` (credentials and personal data masked) or `full` (credentials
masked: they never reach a log), truncated to `PROMPT_LIMIT` characters.
"""

import asyncio
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from proxy.record import RequestRecord
from proxy.redact import redact, scrub

LOGGER = logging.getLogger("llm_proxy.access")
ENV = "LLM_PROXY_ACCESS_LOG"  # stdout (default) | stderr | off | inherit
PROMPT_LIMIT = 8192  # characters of prompt in one line
# Redaction looks this far past the cut, so a secret straddling it is masked, not halved.
_LOOKAHEAD = 4096
# Where prompt text lives in OpenAI, Anthropic and Gemini request bodies.
_PROMPT_FIELDS = ("system", "systemInstruction", "messages", "contents", "prompt", "input")
_TEXT_KEYS = frozenset({"content", "text", "parts", "prompt", "input", "system"})

_encode = msgspec.json.Encoder().encode
_any = msgspec.json.Decoder()
_handler: logging.Handler | None = None


class _Sink:
    """Access lines for stdout/stderr, written in batches.

    One `write()` per request through `logging` costs a handler lock, a formatter and a
    syscall: about as much as the gateway's own work on a request. Lines are queued instead
    and written together at most `DELAY` seconds later (or when `LIMIT` bytes are queued),
    and on shutdown. Outside an event loop a line is written at once.
    """

    DELAY = 0.1
    LIMIT = 1 << 16

    def __init__(self, stream_name: str) -> None:
        self._stream_name = stream_name  # looked up at write time (tests swap sys.stdout)
        self._lines: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, text: str) -> None:
        self._lines.append(text)
        self._size += len(text)
        if self._size >= self.LIMIT:
            self.flush()
            return
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(self.DELAY, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        text = "\n".join(self._lines) + "\n"
        self._lines.clear()
        self._size = 0
        stream = getattr(sys, self._stream_name)
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stdout must not fail requests
            pass


_sink: _Sink | None = None


def configure(env: Mapping[str, str]) -> None:
    """Route access lines: bare JSON on stdout or stderr, nowhere (`off`), or to the root
    logger's handlers as configured elsewhere (`inherit`)."""
    global _handler, _sink
    target = env.get(ENV, "").strip().lower() or "stdout"
    if _handler is not None:
        LOGGER.removeHandler(_handler)
        _handler = None
    flush()
    _sink = None
    LOGGER.propagate = target == "inherit"
    if target in ("off", "none", "0", "false"):
        LOGGER.setLevel(logging.WARNING)  # access lines are INFO: never built
        return
    LOGGER.setLevel(logging.NOTSET if target == "inherit" else logging.INFO)
    if target in ("stdout", "stderr"):
        _sink = _Sink(target)


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def _iso(epoch: float) -> str:
    global _second
    whole = int(epoch)
    ms = int((epoch - whole) * 1000)
    if _second[0] != whole:  # one strftime per second, not per request
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{_second[1]}.{ms:03d}Z"


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def prompt_for_log(text: str, log_prompts: str) -> str | None:
    """The prompt as the access log shows it under this `log_prompts` mode."""
    if log_prompts not in ("redacted", "full"):
        return None
    mask = redact if log_prompts == "redacted" else scrub
    out = mask(text[: PROMPT_LIMIT + _LOOKAHEAD])
    if len(out) > PROMPT_LIMIT:
        return out[:PROMPT_LIMIT] + "...[truncated]"
    return out


def fields(rec: RequestRecord, log_prompts: str) -> dict[str, Any]:
    line: dict[str, Any] = {
        "time": _iso(rec.started),
        "request_id": rec.request_id,
        "key_name": rec.key_name,
        "endpoint": rec.endpoint,
        "front": rec.front,
        "stream": rec.stream,
        "alias": rec.alias,
        "backend": rec.backend,
        "provider_model": rec.provider_model,
        "status": rec.status,
        "attempts": rec.attempts,
        "overhead_ms": _ms(rec.overhead_ms),
        "ttft_ms": _ms(rec.ttft_ms),
        "total_ms": _ms(rec.total_ms),
        "tokens_in": rec.tokens_in,
        "tokens_out": rec.tokens_out,
        "cost": rec.cost,
        "cache": rec.cache,
        "error_type": None if rec.error_type is None else scrub(rec.error_type),
    }
    if rec.session is not None:  # a client-chosen id: scrubbed like anything it sends
        line["session"] = scrub(rec.session)
    if rec.prompt is not None and log_prompts != "none":
        line["prompt"] = prompt_for_log(rec.prompt, log_prompts)
    return line


def line(rec: RequestRecord, log_prompts: str) -> str:
    return _encode(fields(rec, log_prompts)).decode()


class _Line:
    """Formats on first `str()` (by a handler), not at the call."""

    __slots__ = ("_mode", "_rec", "_text")

    def __init__(self, rec: RequestRecord, log_prompts: str) -> None:
        self._rec = rec
        self._mode = log_prompts
        self._text: str | None = None

    def __str__(self) -> str:
        if self._text is None:
            self._text = line(self._rec, self._mode)
        return self._text


def write(rec: RequestRecord, log_prompts: str) -> None:
    if _sink is not None:
        _sink.add(line(rec, log_prompts))
    elif LOGGER.isEnabledFor(logging.INFO):
        LOGGER.info("%s", _Line(rec, log_prompts))


def flush() -> None:
    """Write out queued lines (worker shutdown)."""
    if _sink is not None:
        _sink.flush()


def prompt_text(body_fields: Mapping[str, msgspec.Raw], limit: int = 1 << 20) -> str:
    """The prompt's text from a request body's top-level fields (for `RequestRecord.prompt`).

    Call it only when `log_prompts` is not `none`. Message text is joined one part a line,
    `role: text`; images and other binary parts are left out. Fields larger than `limit`
    bytes are not decoded; their raw JSON is cut instead.
    """
    out: list[str] = []
    for name in _PROMPT_FIELDS:
        raw = body_fields.get(name)
        if raw is None:
            continue
        data = bytes(raw)
        if len(data) > limit:
            out.append(data[: PROMPT_LIMIT + _LOOKAHEAD].decode("utf-8", "replace"))
            continue
        try:
            _collect(_any.decode(data), out, name in _TEXT_KEYS or name == "messages")
        except msgspec.DecodeError:
            continue
    return "\n".join(out)


def _collect(value: Any, out: list[str], text: bool, role: str | None = None) -> None:
    if isinstance(value, str):
        if text:
            out.append(f"{role}: {value}" if role else value)
    elif isinstance(value, list):
        for item in value:
            _collect(item, out, text, role)
    elif isinstance(value, dict):
        who = value.get("role")
        who = who if isinstance(who, str) else role
        for key, item in value.items():
            if key in _TEXT_KEYS:
                _collect(item, out, True, who)


class _QuietDisconnects(logging.Filter):
    """granian logs every client that hangs up mid-response as `ASGI transport error` at
    INFO; a client leaving is ordinary (and shows in the access line as
    `client_disconnected`), so those lines are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.INFO and "transport error" in str(record.msg).lower())


def quiet_disconnects() -> None:
    """Install the filter on granian's server logger, once per process."""
    server = logging.getLogger("_granian")
    if not any(isinstance(f, _QuietDisconnects) for f in server.filters):
        server.addFilter(_QuietDisconnects())
