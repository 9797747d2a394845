"""Places where nothing answers: a refused port, and a `Blackhole` that accepts and is silent.

Both give a base URL of the wire's shape, as `FakeUpstream.url` does, so a gateway backend can
point at them unchanged.
"""

import socket
import threading
from types import TracebackType
from typing import Self

from tests.upstreams.behaviours import Wire


def _base_url(wire: Wire, port: int) -> str:
    root = f"http://127.0.0.1:{port}"
    return f"{root}/v1" if wire == "openai" else root


def refused_url(wire: Wire = "openai") -> str:
    """A base URL on a loopback port where nothing listens: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return _base_url(wire, port)


class Blackhole:
    """Accepts TCP connections and never reads or answers: connect succeeds, no headers ever.

    Listening starts at construction (so `url` is valid at once); `stop()` closes everything.
    """

    def __init__(self, *, wire: Wire = "openai") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.05)  # the accept loop checks for stop this often
        self.port: int = self._sock.getsockname()[1]
        self.url = _base_url(wire, self.port)
        self.connections: list[socket.socket] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._accept, name=f"blackhole-{self.port}", daemon=True
        )
        self._thread.start()

    @property
    def accepted(self) -> int:
        with self._cond:
            return len(self.connections)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                self.connections.append(conn)
                self._cond.notify_all()

    def wait_for_connections(self, n: int, timeout: float = 5) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.connections) >= n, timeout):
                raise TimeoutError(f"blackhole {self.url}: wanted {n} connections")

    def start(self) -> Self:
        return self  # already listening; kept for symmetry with FakeUpstream

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        with self._cond:
            for conn in self.connections:
                conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
