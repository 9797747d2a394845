"""Shared fixtures: free ports, a routes.yaml writer, fake upstreams, the gateway subprocess.

Every server or process a fixture starts is stopped in its teardown, in `finally`.
"""

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.upstreams import Blackhole, FakeUpstream, Wire

REPO = Path(__file__).resolve().parent.parent
START_DEADLINE = 20.0  # seconds for a gateway to answer /health

# urllib follows *_proxy variables; loopback checks must never go through a proxy
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A loopback port free right now (another process could still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RoutesFile:
    """Writes a config atomically (temp file + os.replace), as a careful editor saves."""

    def __init__(self, directory: Path, name: str = "routes.yaml") -> None:
        self.path = directory / name

    def __call__(self, text: str) -> Path:
        """Write `text` (dedented) and return the path."""
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(textwrap.dedent(text))
        os.replace(tmp, self.path)
        return self.path


@pytest.fixture
def routes_file(tmp_path: Path) -> RoutesFile:
    return RoutesFile(tmp_path)


@pytest.fixture
def make_upstream() -> Iterator[Callable[..., FakeUpstream]]:
    """`make_upstream(wire="anthropic")` -> a started FakeUpstream, stopped at teardown."""
    started: list[FakeUpstream] = []

    def make(wire: Wire = "openai", models: Sequence[str] = ("fake-model",)) -> FakeUpstream:
        upstream = FakeUpstream(wire=wire, models=models)
        started.append(upstream)
        return upstream.start()

    try:
        yield make
    finally:
        for upstream in started:
            upstream.stop()


@pytest.fixture
def upstream(make_upstream: Callable[..., FakeUpstream]) -> FakeUpstream:
    """A started OpenAI-wire FakeUpstream."""
    return make_upstream()


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    hole = Blackhole()
    try:
        yield hole
    finally:
        hole.stop()


class Gateway:
    """A `python -m proxy serve` subprocess in its own process group."""

    def __init__(
        self, proc: subprocess.Popen[bytes], port: int, log_path: Path, config_path: Path
    ) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.config_path = config_path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, deadline: float = START_DEADLINE) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self._tail()}")
            try:
                with _direct.open(f"{self.url}/health", timeout=0.5) as resp:
                    if resp.status == 200:
                        return
            except (OSError, http.client.HTTPException):
                pass  # not listening yet
            time.sleep(0.05)
        raise RuntimeError(f"gateway not healthy within {deadline}s:\n{self._tail()}")

    def wait_for_log(self, text: str, deadline: float = START_DEADLINE) -> None:
        end = time.monotonic() + deadline
        while text not in self.log_text():
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"gateway never logged {text!r}:\n{self._tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """terminate(), wait(5), kill(); then clear the group (granian workers). Idempotent."""
        try:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # our own group: strays only

    def _tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __repr__(self) -> str:
        return f"Gateway(url={self.url!r}, pid={self.proc.pid})"


def launch(
    config_path: Path,
    log_dir: Path,
    *,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
) -> Gateway:
    """Start `python -m proxy serve` on a free port and wait until it is healthy.

    The caller stops it (`Gateway.stop()`); a gateway that never gets healthy is stopped here.
    """
    port = free_port()
    log_path = log_dir / f"gateway-{port}.log"
    command = [
        sys.executable, "-m", "proxy", "serve", "--config", str(config_path),
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), *args,
    ]  # fmt: skip
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            # each gateway keeps its state file (limits, ledger, spend) in the test's directory
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "LLM_PROXY_STATE_DIR": str(log_dir / f"state-{port}"),
                **(env or {}),
            },
            cwd=REPO,
            start_new_session=True,
        )
    gw = Gateway(proc, port, log_path, Path(config_path))
    try:
        gw.wait_healthy()
        for n in range(1, workers + 1) if workers > 1 else ():
            gw.wait_for_log(f"Started worker-{n}")  # /health answers once ONE is up
    except BaseException:
        gw.stop()
        raise
    return gw


@contextlib.contextmanager
def serve(
    config_path: Path,
    log_dir: Path,
    *,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
) -> Iterator[Gateway]:
    """A gateway for a `with` block (module-scoped fixtures share one across tests)."""
    gw = launch(config_path, log_dir, workers=workers, env=env)
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """`gateway(config_path, workers=1, env=None, args=())` -> a healthy Gateway."""
    started: list[Gateway] = []

    def start(
        config_path: Path,
        *,
        workers: int = 1,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> Gateway:
        gw = launch(config_path, tmp_path, workers=workers, env=env, args=args)
        started.append(gw)
        return gw

    try:
        yield start
    finally:
        for gw in started:
            gw.stop()
