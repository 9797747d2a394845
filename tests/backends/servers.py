"""Model servers written for these tests: Ollama's native API, and two custom JSON shapes.

Each is an aiohttp app run by `Served` in its own thread and loop, so sync clients (the SDKs)
and async tests can both use it; each records what it was sent. `OllamaServer.models` is the
listing `/api/tags` gives, changed by tests to see discovery follow it.
"""

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any, Self

from aiohttp import web

from tests.conftest import free_port

START_DEADLINE = 10.0


class Served:
    """An aiohttp app on 127.0.0.1 in a thread of its own; `stop()` ends it (idempotent)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[str, Any]] = []  # (path, decoded JSON body or None)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> web.Application:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(START_DEADLINE)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app())
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        if self._runner is not None:
            runner = self._runner
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop).result(START_DEADLINE)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_DEADLINE)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _record(self, request: web.Request) -> Any:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.received.append((request.path, body))
        return body


def words(model: str, text: str) -> list[str]:
    """The reply a fake server gives: deterministic, mentions the model."""
    return ["hello", " from", f" {model}:", f" {len(text)}"]


def _last_user(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return str(m.get("content", ""))
    return ""


class OllamaServer(Served):
    """Ollama's native API as these tests need it: chat, generate, embed, tags; NDJSON streams
    (`stream` defaults to true, as in Ollama); tool calls when a tool is offered and the prompt
    says "weather"; 404 for a model named `missing`."""

    def __init__(self, models: tuple[str, ...] = ("llama3.2:latest", "qwen3:8b")) -> None:
        super().__init__()
        self.models = models

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/chat", self._chat)
        app.router.add_post("/api/generate", self._generate)
        app.router.add_post("/api/embed", self._embed)
        app.router.add_get("/api/tags", self._tags)
        return app

    async def _tags(self, request: web.Request) -> web.Response:
        self.received.append((request.path, None))
        listed = [{"name": n, "model": n, "size": 1, "digest": "d"} for n in self.models]
        return web.json_response({"models": listed})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        model = body["model"]
        if model == "missing":
            return _missing(model)
        prompt = _last_user(body["messages"])
        lines: list[dict[str, Any]] = []
        if body.get("tools") and "weather" in prompt:
            call = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
            lines.append({"message": {"role": "assistant", "content": "", "tool_calls": [call]}})
        else:
            lines.extend(
                {"message": {"role": "assistant", "content": w}} for w in words(model, prompt)
            )
        reason = "length" if body.get("options", {}).get("num_predict") == 1 else "stop"
        done = {"message": {"role": "assistant", "content": ""}, "done": True}
        done |= {"done_reason": reason, "prompt_eval_count": 7, "eval_count": len(lines)}
        return await _answer(request, model, lines, done, body.get("stream", True), "message")

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        model = body["model"]
        if model == "missing":
            return _missing(model)
        lines = [{"response": w} for w in words(model, body["prompt"])]
        done = {"response": "", "done": True, "done_reason": "stop"}
        done |= {"prompt_eval_count": 3, "eval_count": len(lines)}
        return await _answer(request, model, lines, done, body.get("stream", True), "response")

    async def _embed(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vectors = [[float(len(text)), 0.5, -0.5] for text in inputs]
        count = sum(len(t.split()) for t in inputs)
        return web.json_response(
            {"model": body["model"], "embeddings": vectors, "prompt_eval_count": count}
        )


def _missing(model: str) -> web.Response:
    message = f"model '{model}' not found, try pulling it first"
    return web.json_response({"error": message}, status=404)


async def _answer(
    request: web.Request,
    model: str,
    lines: list[dict[str, Any]],
    done: dict[str, Any],
    stream: bool,
    field: str,
) -> web.StreamResponse:
    stamp = {"model": model, "created_at": "2026-01-01T00:00:00Z"}
    if not stream:
        whole = dict(done)
        if field == "message":
            text = "".join(line["message"]["content"] for line in lines)
            calls = [c for line in lines for c in line["message"].get("tool_calls", [])]
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if calls:
                message["tool_calls"] = calls
            whole["message"] = message
        else:
            whole["response"] = "".join(line["response"] for line in lines)
        return web.json_response({**stamp, **whole})
    resp = web.StreamResponse(headers={"content-type": "application/x-ndjson"})
    await resp.prepare(request)
    for line in [*lines, done]:
        await resp.write(json.dumps({**stamp, "done": False, **line}).encode() + b"\n")
    await resp.write_eof()
    return resp


class NestedServer(Served):
    """Custom shape A: `POST /v2/infer {"inputs": {"prompt", "history"}, "params": {...}}` →
    `{"output": {"text"}, "final": {"stop"}, "meta": {"tokens_in", "tokens_out"}}`; an NDJSON
    stream at `/v2/infer/stream`: `{"delta": {"text"}}` lines, then `{"final": ..., "meta"}`."""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/infer", self._infer)
        app.router.add_post("/v2/infer/stream", self._stream)
        return app

    def _reply(self, body: dict[str, Any]) -> list[str]:
        return words("nested", body["inputs"]["prompt"])

    async def _infer(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        text = "".join(self._reply(body))
        meta = {"tokens_in": 11, "tokens_out": 4}
        final = {"stop": "max_length"}  # where the stream's last line has it too
        return web.json_response({"output": {"text": text}, "final": final, "meta": meta})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        resp = web.StreamResponse(headers={"content-type": "application/x-ndjson"})
        await resp.prepare(request)
        for w in self._reply(body):
            await resp.write(json.dumps({"delta": {"text": w}}).encode() + b"\n")
        final = {"final": {"stop": "max_length"}, "meta": {"tokens_in": 11, "tokens_out": 4}}
        await resp.write(json.dumps(final).encode() + b"\n")
        await resp.write_eof()
        return resp


class FlatServer(Served):
    """Custom shape B: `POST /generate {"text": PROMPT, "max_new_tokens", "stream"}` →
    `{"results": [{"generated_text": ...}]}` (no usage); with `stream: true` an SSE stream of
    `{"token": {"text": ...}}` events ending in `data: [DONE]`."""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/generate", self._generate)
        return app

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        reply = words("flat", body["text"])
        if not body.get("stream"):
            return web.json_response({"results": [{"generated_text": "".join(reply)}]})
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for w in reply:
            await resp.write(b"data: " + json.dumps({"token": {"text": w}}).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def served(server: Served) -> Iterator[Served]:
    server.start()
    try:
        yield server
    finally:
        server.stop()
