"""create_app(): the Litestar app, its lifespan, and the fast lane for `/v1/*` traffic.

The hot endpoints (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`,
`/v1/messages`) are plain ASGI callables reached through a one-dict-lookup dispatcher in front
of Litestar; everything else (health, models, admin, metrics, UI) is ordinary Litestar. Both
share one lifespan: the runtime (config, route table, connection pools) is built there, per
granian worker, and closed on shutdown. Every request, whichever side serves it, passes the
Host/CORS guard first, carries `x-request-id`, and gets one access-log line.

Decided by measurement (`python -m bench.front_door`, same run, same handler): Litestar's own
`@asgi` route handlers cost 1.22x-1.48x the dispatcher's CPU per request in-process (the
issue's bar was within 5 %), so the dispatcher stays. Numbers in bench/README.md.
"""

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Message, Receive, Send

from proxy import accesslog, admin, asgi, errors, redact, telemetry, workers
from proxy.cache import store as cache_store
from proxy.config import Settings
from proxy.front import catalogue, guard, openapi, simple
from proxy.front.api import Api, watch_shutdown
from proxy.observe import metrics
from proxy.record import RequestRecord
from proxy.runtime import Runtime, read_config
from proxy.state.connect import state_dir
from proxy.state.governor import Governor

log = logging.getLogger("llm_proxy")

DEFAULT_CONFIG = "routes.yaml"
Handler = Callable[[asgi.Scope, asgi.Receive, asgi.Send], Awaitable[None]]


def config_path() -> Path:
    return workers.current().config_path or Path(DEFAULT_CONFIG)


def _wire_for(path: str) -> errors.Wire:
    return "anthropic" if path.startswith("/v1/messages") else "openai"


def _render(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if isinstance(exc, errors.ProxyError):
        err = exc
    elif isinstance(exc, HTTPException):
        cls: type[errors.ProxyError] = {
            400: errors.BadRequest,
            401: errors.Unauthorized,
            403: errors.Forbidden,
            404: errors.NotFound,
            405: errors.MethodNotAllowed,
            413: errors.PayloadTooLarge,
        }.get(exc.status_code, errors.Internal)
        message = (
            exc.detail
            if exc.status_code != 404
            else (
                f"no endpoint at {request.url.path}: "
                "see /v1/models, /v1/chat/completions, /v1/messages"
            )
        )
        err = cls(message)
    else:
        log.error("unexpected error on %s", request.url.path, exc_info=exc)
        err = errors.Internal("internal error in the gateway; see its log")
    status, headers, body = errors.render(err, _wire_for(request.url.path))
    return Response(body, status_code=status, headers={k.decode(): v.decode() for k, v in headers})


def _request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Every Litestar-served response carries `x-request-id` too (the client's, if sent), and
    is written to the access log like the `/v1/*` ones (unknown paths included)."""

    async def middleware(scope: Any, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan passes straight through
            await app(scope, receive, send)
            return
        t0 = time.perf_counter()
        rid = asgi.header(scope, b"x-request-id") or asgi.new_request_id().encode()
        path = scope["path"][:200]
        rec = RequestRecord(rid.decode("latin-1")[:128], path, "http", False, time.time())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                rec.status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid)]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            rec.total_ms = (time.perf_counter() - t0) * 1000.0
            accesslog.write(rec, "none")

    return middleware


_PROBES = frozenset({"/health", "/ready"})


async def _refuse(send: asgi.Send, err: errors.ProxyError, headers: dict[bytes, bytes]) -> None:
    rid = headers.get(b"x-request-id", b"").decode("latin-1")[:128] or asgi.new_request_id()
    status, out, body = errors.render(err, "openai", rid)
    out.append((b"x-request-id", rid.encode()))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class Gateway:
    """The ASGI callable granian runs: `/v1/*` hot paths first, Litestar for the rest."""

    def __init__(
        self, litestar: Litestar, fast: dict[str, Handler], by_id: Handler | None = None
    ) -> None:
        self.litestar = litestar
        self._rest = _request_id_middleware(litestar)  # router-level 404/405s get an id too
        self._fast = fast
        self._by_id = by_id  # /v1/responses/{id}
        self.runtime: Runtime | None = None  # set in the lifespan
        self._bind = workers.current().host

    async def _guard(self, scope: asgi.Scope, send: asgi.Send, settings: Settings) -> bool:
        """Refuse a rebinding Host; answer CORS preflights. True: go on with the request."""
        headers = asgi.headers_of(scope)
        probe = scope["path"] in _PROBES  # reveal nothing; orchestrators call them by IP
        if not probe and not guard.host_allowed(
            headers.get(b"host"), settings.allowed_hosts, self._bind
        ):
            host = guard.host_name(headers.get(b"host", b""))
            err = errors.Forbidden(
                f"host {host!r} is not served here: add it to settings.allowed_hosts "
                "(the gateway listens on loopback and answers loopback names only)"
            )
            await _refuse(send, err, headers)
            return False
        origin = headers.get(b"origin")
        if scope["method"] == "OPTIONS" and origin is not None:
            if not guard.origin_allowed(origin, settings.cors_origins):
                err = errors.Forbidden(
                    f"origin {origin.decode('latin-1')!r} may not call this gateway from a "
                    "browser: add it to settings.cors_origins"
                )
                await _refuse(send, err, headers)
                return False
            requested = headers.get(b"access-control-request-headers")
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": guard.preflight_headers(origin, requested),
                }
            )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return False
        return True

    def _with_cors(self, scope: asgi.Scope, send: asgi.Send, settings: Settings) -> asgi.Send:
        origin = asgi.header(scope, b"origin")
        if origin is None or not guard.origin_allowed(origin, settings.cors_origins):
            return send

        async def send_with_cors(message: asgi.Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"access-control-allow-origin", origin),
                    (b"access-control-expose-headers", guard.EXPOSED),
                    (b"vary", b"origin"),
                ]
            await send(message)

        return send_with_cors

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        if scope["type"] == "http":
            runtime = self.runtime
            if runtime is not None:  # the config's browser-facing settings, reloads included
                settings = runtime.snapshot.settings
                if not await self._guard(scope, send, settings):
                    return
                if settings.cors_origins:
                    send = self._with_cors(scope, send, settings)
            handler = self._fast.get(scope["path"])
            if handler is not None:
                await handler(scope, receive, send)
                return
            if self._by_id is not None and scope["path"].startswith("/v1/responses/"):
                await self._by_id(scope, receive, send)
                return
        await self._rest(scope, receive, send)  # type: ignore[arg-type]


def create_app(path: Path | None = None) -> Gateway:
    config_file = path or config_path()
    api = Api()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        config = await asyncio.to_thread(read_config, config_file, dict(os.environ))
        runtime = Runtime(config_file, config)
        telemetry.configure()
        redact.remember(config)
        api.runtime = gateway.runtime = runtime
        app.state.runtime = runtime
        governor = await Governor.start(
            config.settings,
            workers.current().worker_count,
            state_dir(os.environ, Path.home()),
            os.environ,
        )
        api.governor = app.state.governor = governor
        api.cache = app.state.cache = cache_store.for_settings(config.settings)
        loop = asyncio.get_running_loop()
        reloads: set[asyncio.Task[Any]] = set()

        def on_sighup() -> None:
            task = loop.create_task(runtime.reload("SIGHUP"))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, on_sighup)
        watcher = loop.create_task(runtime.watch())
        # Everything built so far lives as long as the worker: move it out of the collector's
        # way. Without this, full collections walk it under load and stall the loop for tens
        # of ms (measured: p99 at 32 connections 56 ms -> 16 ms).
        gc.freeze()
        publisher = loop.create_task(metrics.run_publisher(runtime.metrics_info))
        tasks = [watcher, publisher]
        served_by = workers.current()
        if served_by.shutdown_flag is not None and served_by.grace is not None:
            tasks.append(
                loop.create_task(watch_shutdown(api, served_by.shutdown_flag, served_by.grace))
            )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for task in list(reloads):
                task.cancel()
            await asyncio.gather(*reloads, return_exceptions=True)  # cancelled, then awaited
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGHUP)
            await governor.close()  # the ledger's last second is written
            await api.cache.close()
            await runtime.close()
            telemetry.shutdown()

    litestar = Litestar(
        route_handlers=[
            admin.health,
            admin.ready,
            admin.list_models,
            admin.get_model,
            admin.admin_config,
            admin.admin_backends,
            admin.admin_reload,
            admin.admin_sessions,
            admin.metrics_endpoint,
            admin.admin_usage,
            admin.admin_cache_clear,
            admin.ui,
            catalogue.catalogue,
            openapi.openapi_json,
            openapi.docs,
        ],
        lifespan=[lifespan],
        exception_handlers={Exception: _render},
        openapi_config=None,
        request_max_body_size=1 * 2**20,
    )
    fast: dict[str, Handler] = {}
    for route, handler in (
        ("/v1/chat/completions", api.chat),
        ("/v1/completions", api.completions),
        ("/v1/embeddings", api.embeddings),
        ("/v1/messages", api.messages),
        ("/v1/messages/count_tokens", api.count_tokens),
        ("/chat", simple.SimpleChat(api)),
        ("/v1/responses", api.responses),
    ):
        fast[route] = handler
        fast[route + "/"] = handler
    gateway = Gateway(litestar, fast, api.response_by_id)
    return gateway
