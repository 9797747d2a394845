"""What a benchmark starts: the upstreams, the gateway(s) and their routes.yaml, and the
wait until each answers.

Invariant: a gateway that fails to start still yields a Target — every kind marked broken
with the reason and its log tail — so the table says why instead of losing the column.
"""

import asyncio
import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.harness import Target
from bench.probe import KINDS
from bench.procs import Proc, Procs, free_port, log_tail
from bench.upstreams import nginx_conf

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
GATEWAY_MODELS = {"json": "bench", "sse": "bench-sse", "stream": "bench-stream"}
DEFAULT_GATEWAY_CMD = (
    "{python} -m proxy serve --config {config} --host {host} --port {port} --workers {workers}"
)


def routes_yaml(fast_port: int, slow_port: int) -> str:
    """The gateway's config: bench → fast JSON, bench-sse → fast static SSE, bench-stream →
    the delayed streamer. A harmless api_key keeps every backend enabled."""
    fast, slow = f"http://{HOST}:{fast_port}", f"http://{HOST}:{slow_port}"
    return f"""version: 1
settings: {{timeouts: {{connect: 5s, first_byte: 60s, idle: 60s, total: 600s}}}}
backends:
  up: {{type: openai, base_url: "{fast}/v1", api_key: bench-key, max_connections: 2048}}
  up-sse: {{type: openai, base_url: "{fast}/sse/v1", api_key: bench-key, max_connections: 2048}}
  slow: {{type: openai, base_url: "{slow}/v1", api_key: bench-key, max_connections: 2048}}
models:
  bench: {{targets: [{{backend: up}}]}}
  bench-sse: {{targets: [{{backend: up-sse}}]}}
  bench-stream: {{targets: [{{backend: slow}}]}}
"""


def gateway_argv(template: str | None, config: Path, port: int, workers: int) -> list[str]:
    """The gateway command: the template's {python} {config} {host} {port} {workers} filled."""
    text = template or DEFAULT_GATEWAY_CMD
    if "{port}" not in text:
        raise ValueError("--gateway-cmd must contain {port} (and should contain {config})")
    filled = text.format(
        python=shlex.quote(sys.executable),
        config=shlex.quote(str(config)),
        host=HOST,
        port=port,
        workers=workers,
    )
    return shlex.split(filled)


def _chat(base: str) -> str:
    return f"{base}/v1/chat/completions"


@dataclass(frozen=True)
class Upstreams:
    fast_port: int
    slow_port: int
    fast_server: str  # "nginx" or "aiohttp"

    def direct(self) -> Target:
        fast, slow = f"http://{HOST}:{self.fast_port}", f"http://{HOST}:{self.slow_port}"
        urls = {
            "json": _chat(fast),
            "sse": f"{fast}/sse/v1/chat/completions",
            "stream": _chat(slow),
        }
        models = {"json": "bench", "sse": "bench", "stream": "bench-stream"}
        return Target("direct", "direct", urls, models)


def gateway_target(name: str, base: str, pid: int | None) -> Target:
    return Target(name, "gateway", dict.fromkeys(KINDS, _chat(base)), dict(GATEWAY_MODELS), pid)


def compare_target(url: str, models: Mapping[str, str]) -> Target:
    base = url.rstrip("/").removesuffix("/v1").rstrip("/")
    alias_kind = {alias: kind for kind, alias in GATEWAY_MODELS.items()}
    chosen = dict(GATEWAY_MODELS)
    for alias, name in models.items():
        chosen[alias_kind[alias]] = name
    return Target("compare", "compare", dict.fromkeys(KINDS, _chat(base)), chosen)


async def wait_healthy(base: str, proc: Proc, timeout_s: float) -> None:
    """Poll GET base/health until 200; raise with the log tail if the process dies or the
    deadline passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    timeout = aiohttp.ClientTimeout(total=1)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while loop.time() < deadline:
            if not proc.alive():
                raise RuntimeError(
                    f"{proc.name} exited with code {proc.popen.returncode}: {log_tail(proc.log)}"
                )
            try:
                async with session.get(f"{base}/health") as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError, OSError):
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{proc.name} not healthy after {timeout_s:g}s: {log_tail(proc.log)}")


async def _start(
    procs: Procs, name: str, argv: list[str], port: int, cores: frozenset[int] | None
) -> Proc:
    proc = procs.start(name, argv, cores, cwd=REPO)
    try:
        await wait_healthy(f"http://{HOST}:{port}", proc, 10)
    except BaseException:
        procs.stop(proc)
        raise
    return proc


async def start_upstreams(
    procs: Procs,
    cores: frozenset[int] | None,
    fast_port: int | None,
    slow_port: int | None,
    first_ms: float,
    gap_ms: float,
    use_nginx: bool,
    workdir: Path,
    notes: list[str],
) -> Upstreams:
    fast_port = fast_port or free_port()
    slow_port = slow_port or free_port()
    py = [sys.executable, "-m", "bench.upstreams"]
    slow_argv = [
        *py,
        "slow",
        "--port",
        str(slow_port),
        "--first-ms",
        str(first_ms),
        "--gap-ms",
        str(gap_ms),
    ]
    await _start(procs, "upstream-slow", slow_argv, slow_port, cores)
    nginx = shutil.which("nginx") if use_nginx else None
    if nginx is not None:
        ngx_dir = workdir / "nginx"
        ngx_dir.mkdir(exist_ok=True)
        conf = ngx_dir / "nginx.conf"
        conf.write_text(nginx_conf(fast_port, ngx_dir))
        argv = [nginx, "-c", str(conf), "-p", str(ngx_dir), "-e", str(ngx_dir / "startup.log")]
        try:
            await _start(procs, "upstream-fast-nginx", argv, fast_port, cores)
            return Upstreams(fast_port, slow_port, "nginx")
        except RuntimeError as exc:
            notes.append(f"nginx did not start ({exc}); the fast upstream is aiohttp instead.")
    await _start(procs, "upstream-fast", [*py, "fast", "--port", str(fast_port)], fast_port, cores)
    return Upstreams(fast_port, slow_port, "aiohttp")


async def start_gateway(
    procs: Procs,
    name: str,
    template: str | None,
    config: Path,
    workers: int,
    env_extra: Mapping[str, str],
    cores: frozenset[int] | None,
    timeout_s: float = 30.0,
) -> tuple[Target, Proc | None]:
    port = free_port()
    base = f"http://{HOST}:{port}"
    env = {k: v for k, v in os.environ.items() if k != "LLM_PROXY_TRACING"}
    env.update(env_extra)
    env.setdefault("PYTHONUNBUFFERED", "1")
    try:
        argv = gateway_argv(template, config, port, workers)
    except (ValueError, KeyError, IndexError) as exc:
        target = gateway_target(name, base, None)
        target.broken.update(dict.fromkeys(KINDS, f"bad --gateway-cmd: {exc}"))
        return target, None
    proc = procs.start(name, argv, cores, env, cwd=REPO)
    try:
        await wait_healthy(base, proc, timeout_s)
    except RuntimeError as exc:
        procs.stop(proc)
        target = gateway_target(name, base, None)
        target.broken.update(dict.fromkeys(KINDS, f"{name} did not start: {exc}"))
        return target, None
    return gateway_target(name, base, proc.pid), proc


FLOORS = ("floor", "litestar")  # python -m bench.floor bare | litestar


async def start_floor(
    procs: Procs, name: str, fast_port: int, cores: frozenset[int] | None
) -> Target:
    """The bare stack (`floor`) or a plain Litestar handler (`litestar`) forwarding JSON to the
    fast upstream: the gateway's throughput, latency and CPU are read against these."""
    port = free_port()
    kind = "bare" if name == "floor" else "litestar"
    argv = [
        sys.executable, "-m", "bench.floor", kind,
        "--port", str(port), "--upstream", f"http://{HOST}:{fast_port}",
    ]  # fmt: skip
    base = f"http://{HOST}:{port}"
    target = Target(name, name, dict.fromkeys(KINDS, _chat(base)), dict(GATEWAY_MODELS))
    target.broken.update(dict.fromkeys(("sse", "stream"), f"{name} serves only JSON"))
    try:
        proc = await _start(procs, name, argv, port, cores)
    except RuntimeError as exc:
        target.broken["json"] = f"{name} did not start: {exc}"
        return target
    target.pid = proc.pid
    return target
