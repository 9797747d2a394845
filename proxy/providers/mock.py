"""The built-in `mock` backend: an OpenAI-compatible server that lives in the process.

No network: the adapter builds `mock://` requests and `MockTransport` answers them through
the same transport interface as a real backend, so every gateway path (routing, streaming,
failover, translation) runs unchanged against it. Answers are deterministic: the text is
derived from a hash of the prompt, so the same request always gets the same reply.
"""

import asyncio
import base64
import hashlib
import struct
import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from proxy.config import Backend
from proxy.providers.base import Endpoint, Framing, Header, Unsupported, UpstreamRequest, Wire
from proxy.translate.common import Translator

_WORDS = [
    "the",
    "gateway",
    "routes",
    "every",
    "request",
    "to",
    "a",
    "healthy",
    "backend",
    "and",
    "streams",
    "tokens",
    "straight",
    "through",
    "while",
    "config",
    "edits",
    "land",
    "without",
    "dropping",
    "a",
    "single",
    "open",
    "stream",
    "so",
    "teams",
    "can",
    "share",
    "one",
    "url",
    "for",
    "many",
    "models",
    "with",
    "keys",
    "limits",
    "traces",
    "and",
    "failover",
    "built",
    "in",
]

_decode = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode
_JSON: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)
_SSE: tuple[tuple[str, str], ...] = (("content-type", "text/event-stream"),)
_PATHS = {"chat": "chat/completions", "completions": "completions", "embeddings": "embeddings"}


class MockAdapter:
    wire: Wire = "openai"
    framing: Framing = "sse"
    translator: Translator | None = None

    def __init__(self, backend: Backend) -> None:
        self._prefix = f"mock://{backend.name}/"

    def build(
        self,
        endpoint: Endpoint,
        body: bytes,
        model: str,
        stream: bool,
        forward: Sequence[Header] = (),
    ) -> UpstreamRequest:
        path = _PATHS.get(endpoint)
        if path is None:
            raise Unsupported(endpoint)
        return UpstreamRequest("POST", self._prefix + path, forward, body)


class MockResponse:
    __slots__ = ("_chunks", "_delays", "_next", "headers", "status")

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str],
        chunks: list[bytes],
        delays: list[float],
    ) -> None:
        self.status = status
        self.headers = headers
        self._chunks = chunks
        self._delays = delays
        self._next = 0

    async def read_chunk(self) -> bytes:
        i = self._next
        if i >= len(self._chunks):
            return b""
        if self._delays[i] > 0:
            await asyncio.sleep(self._delays[i])  # cancelled here: nothing consumed
        self._next = i + 1
        return self._chunks[i]

    async def read(self, limit: int) -> bytes:
        parts = []
        while chunk := await self.read_chunk():
            parts.append(chunk)
        return b"".join(parts)

    def release(self) -> None:
        self._next = len(self._chunks)


class MockTransport:
    def __init__(self, backend: Backend) -> None:
        self.in_flight = 0
        self._latency = backend.latency
        self._interval = backend.interval
        self._tokens = max(1, backend.tokens)
        self._chunks = backend.chunks

    async def send(self, request: UpstreamRequest) -> MockResponse:
        if self._latency > 0:
            await asyncio.sleep(self._latency)
        try:
            body = _decode(request.body)
        except msgspec.DecodeError:
            return _error(400, "mock backend: request body is not valid JSON")
        path = request.url.split("/", 3)[3]
        if path == "embeddings":
            return _embeddings(body)
        prompt = _prompt_text(body, chat=path == "chat/completions")
        words = _reply(prompt, self._tokens)
        usage = {
            "prompt_tokens": max(1, len(prompt.split())),
            "completion_tokens": len(words),
            "total_tokens": max(1, len(prompt.split())) + len(words),
        }
        model = str(body.get("model", "mock"))
        seed = hashlib.sha256(prompt.encode()).hexdigest()[:24]
        chat = path == "chat/completions"
        if body.get("stream") is True:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return self._stream(chat, model, seed, words, usage if include_usage else None)
        text = " ".join(words)
        created = int(time.time())
        if chat:
            out: dict[str, Any] = {
                "id": "chatcmpl-" + seed,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": usage,
            }
        else:
            out = {
                "id": "cmpl-" + seed,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
                "usage": usage,
            }
        return MockResponse(200, dict(_JSON), [_encode(out)], [0.0])

    def _stream(
        self,
        chat: bool,
        model: str,
        seed: str,
        words: list[str],
        usage: dict[str, int] | None,
    ) -> MockResponse:
        created = int(time.time())
        n = self._chunks if self._chunks > 0 else len(words)
        n = max(1, min(n, len(words)))
        pieces = [
            " ".join(words[i * len(words) // n : (i + 1) * len(words) // n]) for i in range(n)
        ]
        pieces = [p if i == 0 else " " + p for i, p in enumerate(pieces)]
        obj = "chat.completion.chunk" if chat else "text_completion"
        cid = ("chatcmpl-" if chat else "cmpl-") + seed

        def frame(choice: dict[str, Any] | None, extra: dict[str, Any] | None = None) -> bytes:
            out: dict[str, Any] = {"id": cid, "object": obj, "created": created, "model": model}
            out["choices"] = [choice] if choice is not None else []
            if usage is not None:
                out["usage"] = None  # include_usage: every chunk but the last says null
            if extra:
                out.update(extra)
            return b"data: " + _encode(out) + b"\n\n"

        frames: list[bytes] = []
        if chat:
            frames.append(
                frame(
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                    }
                )
            )
            for p in pieces:
                frames.append(frame({"index": 0, "delta": {"content": p}, "finish_reason": None}))
            frames.append(frame({"index": 0, "delta": {}, "finish_reason": "stop"}))
        else:
            for p in pieces:
                frames.append(
                    frame({"index": 0, "text": p, "finish_reason": None, "logprobs": None})
                )
            frames.append(
                frame({"index": 0, "text": "", "finish_reason": "stop", "logprobs": None})
            )
        if usage is not None:
            frames.append(frame(None, {"usage": usage}))
        frames.append(b"data: [DONE]\n\n")
        delays = [0.0] + [self._interval] * (len(frames) - 1)
        return MockResponse(200, dict(_SSE), frames, delays)

    async def close(self) -> None:
        return None


def _prompt_text(body: dict[str, Any], chat: bool) -> str:
    if not chat:
        prompt = body.get("prompt", "")
        return prompt if isinstance(prompt, str) else str(prompt)
    parts: list[str] = []
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return " ".join(parts)


def _reply(prompt: str, tokens: int) -> list[str]:
    digest = hashlib.sha256(prompt.encode()).digest()
    start = digest[0] % len(_WORDS)
    step = 1 + digest[1] % 7
    return [_WORDS[(start + i * step) % len(_WORDS)] for i in range(tokens)]


def _embeddings(body: dict[str, Any]) -> MockResponse:
    raw = body.get("input")
    inputs: list[Any] = (
        raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
    )
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    tokens = 0
    for i, item in enumerate(inputs):
        text = item if isinstance(item, str) else msgspec.json.encode(item).decode()
        tokens += max(1, len(text.split()))
        digest = hashlib.sha256(text.encode()).digest()
        vector = [(b - 128) / 128.0 for b in digest[:16]]
        value: Any = (
            base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            if as_base64
            else vector
        )
        data.append({"object": "embedding", "index": i, "embedding": value})
    out = {
        "object": "list",
        "data": data,
        "model": str(body.get("model", "mock")),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return MockResponse(200, dict(_JSON), [_encode(out)], [0.0])


def _error(status: int, message: str) -> MockResponse:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    }
    return MockResponse(status, dict(_JSON), [_encode(body)], [0.0])
