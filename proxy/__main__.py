"""Command line: `llm-proxy serve` (granian), `llm-proxy check PATH`, `llm-proxy import FILE`."""

import argparse
import ipaddress
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from proxy import redact
from proxy.config import Config, ConfigError
from proxy.reload import STAMP_ENV, WORKERS_ENV, read_config

log = logging.getLogger("llm_proxy")


def _check(path: str) -> int:
    try:
        config = read_config(Path(path), dict(os.environ))
    except ConfigError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return 1
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for override in config.from_env:
        print(f"{override.path}: from the environment ({override.variable})")
    print(f"{path}: ok ({len(config.models)} models, {len(config.backends)} backends)")
    return 0


def _import(path: str) -> int:
    from proxy.importers import ImportFailed, convert

    try:
        text = Path(path).read_text(encoding="utf-8")
        print(convert(text, Path(path).name), end="")
    except (OSError, UnicodeDecodeError) as err:
        print(f"{path}: cannot read: {err}", file=sys.stderr)
        return 1
    except ImportFailed as err:
        print(f"{path}: {err}", file=sys.stderr)
        return 1
    return 0


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve(args: argparse.Namespace) -> int:
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.server import Server

    path = Path(args.config).resolve()
    try:
        config: Config = read_config(path, dict(os.environ))
    except ConfigError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        print(f"{path}: not starting: fix the problems above", file=sys.stderr)
        return 2
    for warning in config.warnings:
        log.warning("%s", warning)
    for override in config.from_env:
        log.info("%s: from the environment (%s)", override.path, override.variable)
    if config.keys is None and not _loopback(args.host):
        log.warning(
            "listening on %s without client keys: anyone who can reach this port can use every "
            "backend. Add a `keys:` section to %s.",
            args.host,
            path.name,
        )
    stamp_dir = tempfile.mkdtemp(prefix="llm-proxy-")
    stamp = Path(stamp_dir) / "reload"
    stamp.touch()
    os.environ["LLM_PROXY_CONFIG"] = str(path)
    os.environ[STAMP_ENV] = str(stamp)
    os.environ["LLM_PROXY_METRICS_DIR"] = stamp_dir  # workers publish their counters here
    os.environ[WORKERS_ENV] = str(max(1, args.workers))

    class _Server(Server):  # type: ignore[misc, valid-type]
        # granian's own SIGHUP handling respawns workers and so cuts every open stream;
        # the gateway reloads routes.yaml in place instead, in every worker.
        def signal_handler_reload(self, *_: Any, **__: Any) -> None:
            stamp.touch()
            os.utime(stamp, None)

    server = _Server(
        "proxy.app:create_app",
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        loop=Loops.auto,
        http=HTTPModes.http1,
        factory=True,
        backlog=args.backlog,
        # Backpressure bounds concurrent connections per worker; open SSE streams hold one
        # each, so it must sit well above the streams we expect or new clients stall.
        backpressure=args.backpressure,
        http1_settings=HTTP1Settings(header_read_timeout=30_000, keep_alive=True),
        log_access=False,
        workers_kill_timeout=args.grace,
    )
    try:
        server.serve()
    finally:
        shutil.rmtree(stamp_dir, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("LLM_PROXY_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    redact.install_filter()  # configured secrets never reach a log line
    parser = argparse.ArgumentParser(prog="llm-proxy", description="Config-driven LLM gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", default=os.environ.get("LLM_PROXY_CONFIG", "routes.yaml"))
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--workers", type=int, default=int(os.environ.get("LLM_PROXY_WORKERS", "1") or 1)
    )
    serve.add_argument("--backlog", type=int, default=4096)
    serve.add_argument(
        "--backpressure", type=int, default=16384, help="max concurrent connections per worker"
    )
    serve.add_argument(
        "--grace", type=int, default=30, help="seconds in-flight requests get to finish on shutdown"
    )
    check = sub.add_parser("check", help="validate a routes.yaml")
    check.add_argument("path")
    imports = sub.add_parser(
        "import", help="print a routes.yaml converted from a LiteLLM config or providers list"
    )
    imports.add_argument("path")
    args = parser.parse_args(argv)
    if args.command == "check":
        return _check(args.path)
    if args.command == "import":
        return _import(args.path)
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main())
