"""The Containerfile builds with a daemonless builder, and the image it makes serves.

Built with podman (buildah inside: `--isolation chroot`, vfs storage under a temporary root,
so nothing touches the machine's own image store). Where no registry is reachable the base
image is made from the Debian archive by `deploy/base-image.sh`; set LLM_PROXY_PYTHON_IMAGE
to use another (e.g. a pulled `docker.io/library/python:3.11-slim`). Then: the image runs as
non-root, its HEALTHCHECK passes, it answers a request on the shipped config, picks up a
ConfigMap-style swap in a mounted directory, and on SIGTERM lets an open stream finish and
exits 0. Skipped, with the reason, when podman or mmdebstrap is not installed, or when
LLM_PROXY_IMAGE_TEST=0 (it takes two to four minutes on two cores: the build dominates).
"""

import contextlib
import http.server
import json
import os
import resource
import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, free_port
from tests.deploy.support import ConfigMapVolume, config_text, wait_until

BASE_ENV = "LLM_PROXY_PYTHON_IMAGE"
PODMAN = shutil.which("podman")
MISSING = [
    tool
    for tool, present in (
        ("podman", PODMAN),
        ("mmdebstrap", shutil.which("mmdebstrap") or os.environ.get(BASE_ENV)),
    )
    if not present
]
pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.skipif(bool(MISSING), reason=f"not installed: {', '.join(MISSING)}"),
    pytest.mark.skipif(
        os.environ.get("LLM_PROXY_IMAGE_TEST") == "0", reason="LLM_PROXY_IMAGE_TEST=0"
    ),
]
IMAGE = "localhost/llm-proxy:test"
# what deploy/k8s asks of the pod: read-only root (podman mounts a tmpfs on /tmp), no
# capabilities, no privilege escalation
HARDENED = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
HARDENED += ["--tmpfs", "/var/lib/llm-proxy:rw,U"]  # the state dir, as an emptyDir
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


class Podman:
    """podman with its own storage under a temporary root (vfs: works without overlay)."""

    def __init__(self, root: Path) -> None:
        self.options = [
            "--root", str(root / "storage"), "--runroot", str(root / "run"),
            "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
        ]  # fmt: skip
        if shutil.which("runc"):
            # crun 1.8 (Debian 12) refuses hybrid cgroup hierarchies; runc runs there
            self.options += ["--runtime", "runc"]

    def __call__(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        assert PODMAN is not None
        proc = subprocess.run(
            [PODMAN, *self.options, *args], capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args[:2])} failed:\n{proc.stderr[-4000:]}")
        return proc

    def limits(self) -> list[str]:
        # podman asks for more open files/processes than a machine without CAP_SYS_RESOURCE
        # may grant (and lowers its own process limit to 32768): ask for what we have
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nproc = min(32768, resource.getrlimit(resource.RLIMIT_NPROC)[1])
        return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    root = tmp_path_factory.mktemp("podman")
    p = Podman(root)
    try:
        yield p
    finally:
        p("rm", "--all", "--force", check=False)
        p("system", "reset", "--force", check=False, timeout=300)  # vfs layers under root
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def image(podman: Podman) -> str:
    base = os.environ.get(BASE_ENV)
    if not base:
        base = "localhost/debian-python:bookworm"
        script = REPO / "deploy" / "base-image.sh"
        subprocess.run(
            ["sh", str(script), base, *podman.options], check=True, timeout=600, cwd=REPO
        )
    build = ["build", "--isolation", "chroot", "--format", "docker", "--layers=false"]
    build += ["--build-arg", f"PYTHON_IMAGE={base}", "-t", IMAGE, "-f", "Containerfile"]
    if HOST_CA.is_file():  # behind a TLS-intercepting proxy pip needs the machine's CAs
        build += ["-v", f"{HOST_CA}:/run/host-ca.crt:ro"]
        build += ["--build-arg", "PIP_CERT=/run/host-ca.crt"]
    podman(*build, str(REPO), timeout=600)
    return IMAGE


def inspect(podman: Podman, what: str) -> dict[str, object]:
    out = json.loads(podman("image", "inspect", what).stdout)
    assert isinstance(out, list) and len(out) == 1
    return out[0]  # type: ignore[no-any-return]


class Container:
    def __init__(self, podman: Podman, name: str, port: int) -> None:
        self.podman = podman
        self.name = name
        self.url = f"http://127.0.0.1:{port}"

    def logs(self) -> str:
        out = self.podman("logs", self.name, check=False)
        return out.stdout + out.stderr

    def wait_ready(self) -> None:
        def ready() -> bool:
            try:
                return httpx.get(f"{self.url}/ready", timeout=1, trust_env=False).status_code == 200
            except httpx.HTTPError:
                return False

        end_state = None
        for _ in range(300):  # about 30 s at most
            if ready():
                return
            end_state = self.podman("inspect", "--format", "{{.State.Status}}", self.name)
            assert end_state.stdout.strip() in ("created", "running"), self.logs()
            threading.Event().wait(0.1)
        raise AssertionError(f"container never ready:\n{self.logs()}")


@contextlib.contextmanager
def run(podman: Podman, image: str, args: Sequence[str] = ()) -> Iterator[Container]:
    port = free_port()
    name = f"llm-proxy-test-{port}"
    podman(
        "run", "--detach", "--name", name, "--publish", f"127.0.0.1:{port}:8080",
        "--health-interval", "disable", *podman.limits(), *HARDENED, *args, image,
    )  # fmt: skip
    try:
        container = Container(podman, name, port)
        container.wait_ready()
        yield container
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)


def test_image_metadata(podman: Podman, image: str) -> None:
    info = inspect(podman, image)
    config, check = info["Config"], info["Healthcheck"]
    assert isinstance(config, dict) and isinstance(check, dict)
    assert config["User"] == "10001:10001"
    assert check["Test"][0] == "CMD"
    assert "/ready" in " ".join(check["Test"])
    size = info["Size"]
    assert isinstance(size, int) and size < 400 * 10**6, f"{size / 1e6:.0f} MB"
    assert config["Cmd"][:2] == ["llm-proxy", "serve"]
    assert config.get("StopSignal") == "SIGTERM"
    # no compiler or pip in the runtime stage
    probe = "for t in gcc cc pip pip3; do command -v $t; done; true"
    found = podman(
        "run", "--rm", "--health-interval", "disable", *podman.limits(), image, "sh", "-c", probe
    )  # fmt: skip
    assert found.stdout.strip() == "", found.stdout


class Collector:
    """A stand-in OTLP/HTTP collector on the host: records each POST /v1/traces body."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.port = free_port()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                if self.path == "/v1/traces":
                    outer.bodies.append(self.rfile.read(length))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Collector":
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def test_image_exports_traces_over_otlp(podman: Podman, image: str) -> None:
    """What deploy/compose.yaml relies on: the image ships the OTLP exporter and uses it."""
    port = free_port()
    name = f"llm-proxy-otlp-{port}"
    with Collector() as collector:
        podman(
            "run", "--detach", "--name", name, "--network", "host", *podman.limits(),
            "--health-interval", "disable",
            "-e", "LLM_PROXY_TRACING=otlp",
            "-e", f"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:{collector.port}",
            "-e", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
            "-e", "OTEL_BSP_SCHEDULE_DELAY=100",
            image, "llm-proxy", "serve", "--host", "127.0.0.1", "--port", str(port),
        )  # fmt: skip
        try:
            c = Container(podman, name, port)
            c.wait_ready()
            body = {"model": "demo", "messages": [{"role": "user", "content": "Hello"}]}
            resp = httpx.post(
                f"{c.url}/v1/chat/completions", json=body, timeout=10, trust_env=False
            )
            assert resp.status_code == 200, resp.text
            for _ in range(100):  # about 10 s at most: spans go out every 100 ms
                if collector.bodies:
                    break
                threading.Event().wait(0.1)
            assert collector.bodies, f"no span batch reached the collector:\n{c.logs()}"
            assert any(b"llm-proxy" in b or b"demo" in b for b in collector.bodies)
        finally:
            podman("rm", "--force", "--time", "0", name, check=False)


def test_image_serves_runs_unprivileged_and_is_healthy(podman: Podman, image: str) -> None:
    with run(podman, image) as c:
        body = {"model": "demo", "messages": [{"role": "user", "content": "Hello"}]}
        resp = httpx.post(f"{c.url}/v1/chat/completions", json=body, timeout=10, trust_env=False)
        assert resp.status_code == 200, resp.text
        assert resp.json()["choices"][0]["message"]["content"]
        user = podman("exec", c.name, "id", "-u").stdout.strip()
        assert user == "10001"
        health = podman("healthcheck", "run", c.name, check=False)
        assert health.returncode == 0, health.stdout + health.stderr


def test_mounted_configmap_directory_hot_reloads(
    podman: Podman, image: str, tmp_path: Path
) -> None:
    volume = ConfigMapVolume(tmp_path / "conf")
    volume.root.mkdir(mode=0o755)
    volume.create(config_text("marker-start"))
    for path in volume.root.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)  # readable by uid 10001
    mount = ["--volume", f"{volume.root}:/etc/llm-proxy:ro"]
    with run(podman, image, mount) as c:

        def listed(marker: str) -> bool:
            resp = httpx.get(f"{c.url}/v1/models", timeout=2, trust_env=False)
            return marker in {m["id"] for m in resp.json()["data"]}

        assert listed("marker-start")
        volume.update(config_text("marker-swapped"))
        for path in volume.root.rglob("*"):
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)
        wait_until(lambda: listed("marker-swapped"), "the swapped ConfigMap is live")


def test_sigterm_lets_an_open_stream_finish_then_exits_zero(
    podman: Podman, image: str, tmp_path: Path
) -> None:
    conf = tmp_path / "slow"
    conf.mkdir(mode=0o755)
    (conf / "routes.yaml").write_text(
        "version: 1\n"
        "backends:\n"
        "  slow: {type: mock, interval: 0.1, tokens: 20}\n"  # about 2 s of stream
        "models:\n"
        "  slow:\n"
        "    targets: [{backend: slow}]\n"
    )
    (conf / "routes.yaml").chmod(0o644)
    with run(podman, image, ["--volume", f"{conf}:/etc/llm-proxy:ro"]) as c:
        body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        lines: list[str] = []
        with httpx.stream(
            "POST", f"{c.url}/v1/chat/completions", json=body, timeout=20, trust_env=False
        ) as resp:
            assert resp.status_code == 200
            lines_iter = resp.iter_lines()
            lines.append(next(lines_iter))  # the stream is open
            stop = threading.Thread(
                target=podman, args=("stop", "--time", "25", c.name), kwargs={"timeout": 60}
            )
            stop.start()
            try:
                lines.extend(lines_iter)
            finally:
                stop.join(timeout=60)
        assert "data: [DONE]" in lines, lines[-5:]
        code = podman("inspect", "--format", "{{.State.ExitCode}}", c.name).stdout.strip()
        assert code == "0", c.logs()
