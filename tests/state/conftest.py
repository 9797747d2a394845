"""A real `redis-server` on a free port, for the Redis store's tests.

Skipped only when redis-server is not installed AND `CI` is unset: in CI a missing server
fails the tests instead of hiding them. The server is killed in teardown, whatever happens.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

START_DEADLINE = 10.0


class RedisServer:
    """One redis-server process; `kill()` and `start()` again on the same port."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.socket = directory / f"redis-{self.port}.sock"  # the same server on unix://
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server")
        assert binary is not None
        log = (self.directory / f"redis-{self.port}.log").open("ab")
        with log:
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.directory),
                 "--unixsocket", str(self.socket), "--unixsocketperm", "700"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        end = time.monotonic() + START_DEADLINE
        while not self.ping():
            if self.proc.poll() is not None or time.monotonic() > end:
                self.kill()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait(timeout=5)
        self.proc = None


def _need_redis() -> None:
    if shutil.which("redis-server") is None and not os.environ.get("CI"):
        pytest.skip("redis-server is not installed (apt-get install redis-server)")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    _need_redis()
    server = RedisServer(tmp_path)
    try:
        yield server.start()
    finally:
        server.kill()
