"""Command line: `llm-proxy serve` (granian), `llm-proxy check PATH`, `llm-proxy usage`,
`llm-proxy import FILE`."""

import argparse
import errno
import logging
import math
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from proxy import addresses, redact
from proxy.config import Config, ConfigError
from proxy.runtime import read_config
from proxy.workers import CONFIG_ENV, WorkerSettings

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


def _usage(args: argparse.Namespace) -> int:
    import asyncio

    from proxy.state import report
    from proxy.state.connect import read_usage, state_dir
    from proxy.state.store import StateUnavailable

    try:
        config = read_config(Path(args.config), dict(os.environ))
    except ConfigError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return 1
    params = {"key": args.key, "model": args.model, "from": args.since, "to": args.until,
              "group": args.group, "format": args.format}  # fmt: skip
    try:
        query = report.parse_query({k: v for k, v in params.items() if v}, "table")
        directory = state_dir(os.environ, Path.home())
        rows = asyncio.run(read_usage(config.settings, directory, query.where))
    except ValueError as err:
        print(f"llm-proxy usage: {err}", file=sys.stderr)
        return 2
    except StateUnavailable as err:
        print(f"llm-proxy usage: cannot read the state store: {err}", file=sys.stderr)
        return 1
    if query.format == "table":
        print(report.table(rows, query.group), end="")
    else:
        sys.stdout.write(report.render(rows, query)[1].decode())
    return 0


def grace_seconds(flag: int | None, total: float) -> int:
    """`--grace`, or by default the config's `timeouts.total` (whole seconds, rounded up):
    on shutdown a request gets as long as it would have had anyway."""
    return flag if flag is not None else max(1, math.ceil(total))


def _port_taken(host: str, port: int) -> str | None:
    """Why `host:port` can't be ours, or None. granian binds with SO_REUSEPORT, so a second
    gateway on a busy port would start silently and take half the traffic: probe-bind
    without it first (SO_REUSEADDR only: a port in TIME_WAIT is free, a listener is not)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return f"cannot resolve --host {host}: {exc.strerror or exc}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host in ("::", ""):
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"{host}:{port} is already in use (another gateway or server listens there)"
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def _serve(args: argparse.Namespace) -> int:
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.server import Server

    # Absolute but NOT resolved: the watcher must follow the path as given, through its
    # symlinks, every time (a ConfigMap swaps `..data`; `ln -sfn` re-points a link).
    path = Path(os.path.abspath(args.config))
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
    if config.keys is None and not addresses.is_loopback(args.host):
        log.warning(
            "listening on %s without client keys: anyone who can reach this port can use every "
            "backend. Add a `keys:` section to %s.",
            args.host,
            path.name,
        )
    taken = _port_taken(args.host, args.port)
    if taken is not None:
        print(f"not starting: {taken}; choose another --port", file=sys.stderr)
        return 2
    grace = grace_seconds(args.grace, config.settings.timeouts.total)
    stamp_dir = tempfile.mkdtemp(prefix="llm-proxy-")
    stamp = Path(stamp_dir) / "reload"
    stamp.touch()
    # What every worker reads once (`proxy.workers.current()`); granian's workers inherit it.
    settings = WorkerSettings(
        path, stamp, max(1, args.workers), Path(stamp_dir), args.host, float(grace)
    )
    flag = settings.shutdown_flag
    os.environ.update(settings.to_env())

    class _Server(Server):  # type: ignore[misc, valid-type]
        # granian's own SIGHUP handling respawns workers and so cuts every open stream;
        # the gateway reloads routes.yaml in place instead, in every worker.
        def signal_handler_reload(self, *_: Any, **__: Any) -> None:
            stamp.touch()
            os.utime(stamp, None)

        # Workers learn that their grace began (granian's own signal to them carries no
        # time): requests still open near its end are ended with an error event and logged,
        # not cut by the kill with a bare EOF.
        def signal_handler_interrupt(self, *args: Any, **kwargs: Any) -> None:
            if flag is not None:
                flag.touch()
            super().signal_handler_interrupt(*args, **kwargs)

    server = _Server(
        "proxy.app:create_app",
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        loop=Loops.auto,
        http=HTTPModes(args.http),  # auto: HTTP/1.1, and HTTP/2 (prior knowledge) on the same port
        factory=True,
        backlog=args.backlog,
        # Backpressure bounds concurrent connections per worker; open SSE streams hold one
        # each, so it must sit well above the streams we expect or new clients stall.
        backpressure=args.backpressure,
        http1_settings=HTTP1Settings(header_read_timeout=30_000, keep_alive=True),
        log_access=False,
        workers_kill_timeout=grace,
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
    serve.add_argument("--config", default=os.environ.get(CONFIG_ENV, "routes.yaml"))
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
        "--grace",
        type=int,
        default=None,
        help="seconds in-flight requests get to finish on shutdown (default: the config's "
        "timeouts.total, so no request is cut that could still finish)",
    )
    serve.add_argument(
        "--http",
        choices=("auto", "1", "2"),
        default="auto",
        help="HTTP versions served: auto (HTTP/1.1 and prior-knowledge HTTP/2), 1 or 2",
    )
    check = sub.add_parser("check", help="validate a routes.yaml")
    check.add_argument("path")
    usage = sub.add_parser("usage", help="print the usage ledger (the same as /admin/usage)")
    usage.add_argument("--config", default=os.environ.get("LLM_PROXY_CONFIG", "routes.yaml"))
    usage.add_argument("--key", help="one key's name")
    usage.add_argument("--model", help="one model alias")
    usage.add_argument("--from", dest="since", help="first day, YYYY-MM-DD (UTC)")
    usage.add_argument("--to", dest="until", help="last day, YYYY-MM-DD (UTC)")
    usage.add_argument("--group", choices=("day", "key", "model", "none"), default="none")
    usage.add_argument("--format", choices=("table", "json", "csv"), default="table")
    imports = sub.add_parser(
        "import", help="print a routes.yaml converted from a LiteLLM config or providers list"
    )
    imports.add_argument("path")
    args = parser.parse_args(argv)
    if args.command == "check":
        return _check(args.path)
    if args.command == "usage":
        return _usage(args)
    if args.command == "import":
        return _import(args.path)
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main())
