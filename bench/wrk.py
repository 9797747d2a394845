"""wrk as the closed-loop load generator: the Lua script, running it, parsing its output.

The script POSTs a fixed JSON body and prints one `BENCH {json}` line from `done()` with
exact percentiles; `--latency` text is parsed as a fallback, so a wrk without Lua output
still gives p50/p99.
"""

import asyncio
import contextlib
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

_DONE_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"p999_us":%d,"max_us":%d,"mean_us":%.2f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
"""


def lua_script(body: bytes) -> str:
    """A wrk script that POSTs body as JSON and reports percentiles from done()."""
    text = body.decode()
    level = 0
    while f"]{'=' * level}]" in text:  # a Lua long bracket the body can't close
        level += 1
    eq = "=" * level
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = [{eq}[{text}]{eq}]\n"
        'wrk.headers["Content-Type"] = "application/json"\n' + _DONE_LUA
    )


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    p999_ms: float | None = None
    max_ms: float | None = None
    mean_ms: float | None = None
    non2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return self.non2xx + sum(self.socket_errors.values())

    def metrics(self) -> dict[str, float]:
        out = {"rps": self.rps, "requests": float(self.requests), "errors": float(self.errors)}
        for name in ("p50", "p90", "p99", "p999", "max", "mean"):
            value = getattr(self, f"{name}_ms")
            if value is not None:
                out[name] = value
        return out


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = re.compile(r"^([\d.]+)(us|ms|s|m|h)$")


def to_ms(text: str) -> float:
    """A wrk duration (`812.00us`, `1.23ms`, `2.01s`, `1.00m`) in milliseconds."""
    m = _DURATION.match(text.strip())
    if m is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


def _parse_bench_line(line: str) -> WrkResult:
    d = json.loads(line.split(" ", 1)[1])
    duration_s = d["duration_us"] / 1e6
    sock = {k: int(d[k]) for k in ("connect", "read", "write", "timeout")}
    return WrkResult(
        requests=int(d["requests"]),
        duration_s=duration_s,
        rps=d["requests"] / duration_s if duration_s > 0 else 0.0,
        p50_ms=d["p50_us"] / 1000,
        p90_ms=d["p90_us"] / 1000,
        p99_ms=d["p99_us"] / 1000,
        p999_ms=d["p999_us"] / 1000,
        max_ms=d["max_us"] / 1000,
        mean_ms=d["mean_us"] / 1000,
        non2xx=int(d["status"]),
        socket_errors=sock,
    )


def parse_wrk(text: str) -> WrkResult:
    """Parse wrk's output: the script's BENCH line when present, else the `--latency` text."""
    for line in text.splitlines():
        if line.startswith("BENCH {"):
            return _parse_bench_line(line)
    summary = re.search(r"(\d+) requests in ([\d.]+\w+),", text)
    if summary is None:
        raise ValueError(f"no request summary in wrk output: {text.strip()[:200]!r}")
    requests, duration_s = int(summary.group(1)), to_ms(summary.group(2)) / 1000
    rps_match = re.search(r"Requests/sec:\s+([\d.]+)", text)
    rps = float(rps_match.group(1)) if rps_match else requests / duration_s
    pcts = {int(p): to_ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", text, re.M)}
    latency = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return WrkResult(
        requests=requests,
        duration_s=duration_s,
        rps=rps,
        p50_ms=pcts.get(50),
        p90_ms=pcts.get(90),
        p99_ms=pcts.get(99),
        max_ms=to_ms(latency.group(3)) if latency else None,
        mean_ms=to_ms(latency.group(1)) if latency else None,
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=(
            dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True))
            if sock
            else {}
        ),
    )


def available() -> bool:
    return shutil.which("wrk") is not None


async def run_wrk(
    url: str,
    body: bytes,
    connections: int,
    duration_s: float,
    workdir: Path,
    prefix: list[str] | None = None,
    threads: int = 1,
) -> WrkResult:
    """Run wrk for duration_s; the process is killed by PID if this is cancelled or it
    overruns."""
    script = workdir / "post.lua"
    script.write_text(lua_script(body))
    argv = [
        *(prefix or []),
        "wrk",
        f"-t{max(1, min(threads, connections))}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=duration_s + 30)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), timeout=5)
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited {proc.returncode}: {text.strip()[-300:]}")
    return parse_wrk(text)
