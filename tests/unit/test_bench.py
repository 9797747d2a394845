"""The benchmark's own pieces: mock upstreams, statistics, table, stream verifier, wrk parsing.

No timing assertions: the upstreams run with millisecond schedules only to be quick.
"""

import itertools
import os
import sys
import time
from pathlib import Path

import msgspec
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from bench import upstreams
from bench.__main__ import parse_compare_models
from bench.harness import Bench, RunError, Settings, check_errors
from bench.load import Pace, chat_body, closed_loop, paced, streams
from bench.machine import parse_cores, plan_cores
from bench.procs import Procs, tree_memory
from bench.report import (
    Row,
    Run,
    aggregate,
    error_row,
    failed_rounds,
    first_errors,
    median,
    percentile,
    ratio,
    render_table,
    rotate,
    summarize,
)
from bench.stack import compare_target, gateway_argv, routes_yaml
from bench.verify import SSESplitter, expected_content, verify_stream
from bench.wrk import lua_script, parse_wrk, to_ms

# --- mock upstreams ------------------------------------------------------------------------


async def _client(app: object) -> TestClient:  # type: ignore[type-arg]
    client = TestClient(TestServer(app))  # type: ignore[arg-type]
    await client.start_server()
    return client


def _events(data: bytes) -> list[bytes]:
    splitter = SSESplitter()
    return splitter.feed(data) + splitter.feed(b"\n\n")


async def test_fast_upstream_serves_a_chat_completion_and_a_static_stream() -> None:
    client = await _client(upstreams.fast_app())
    try:
        resp = await client.post("/v1/chat/completions", data=chat_body("bench"))
        assert resp.status == 200
        reply = msgspec.json.decode(await resp.read())
        assert reply["object"] == "chat.completion"
        assert reply["choices"][0]["message"]["role"] == "assistant"
        assert reply["choices"][0]["finish_reason"] == "stop"
        assert reply["usage"]["total_tokens"] == 36

        resp = await client.post("/sse/v1/chat/completions", data=chat_body("bench", True))
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events = _events(await resp.read())
        check = verify_stream(events, "static", upstreams.SSE_CONTENT_CHUNKS)
        assert check.ok and check.received == upstreams.SSE_CONTENT_CHUNKS and check.done
    finally:
        await client.close()


async def test_delayed_upstream_streams_numbered_events_then_done() -> None:
    client = await _client(upstreams.slow_app(first_ms=1, gap_ms=1))
    try:
        body = chat_body("bench-stream", stream=True, max_tokens=5, user="u7")
        resp = await client.post("/v1/chat/completions", data=body)
        assert resp.status == 200
        events = _events(await resp.read())
        assert events[-1] == b"[DONE]"
        assert len(events) == 5 + 2  # content events, finish chunk, [DONE]
        contents = [
            msgspec.json.decode(e)["choices"][0]["delta"].get("content") for e in events[:5]
        ]
        assert contents == [expected_content("u7", seq) for seq in range(5)]
        assert verify_stream(events, "u7", 5).ok

        usage_body = msgspec.json.decode(body) | {"stream_options": {"include_usage": True}}
        resp = await client.post("/v1/chat/completions", data=msgspec.json.encode(usage_body))
        events = _events(await resp.read())
        assert msgspec.json.decode(events[-2])["usage"]["completion_tokens"] == 5
        assert verify_stream(events, "u7", 5).ok

        resp = await client.post("/v1/chat/completions", data=chat_body("bench-stream"))
        assert msgspec.json.decode(await resp.read())["object"] == "chat.completion"
    finally:
        await client.close()


async def test_python_clients_against_the_mock_upstreams() -> None:
    fast = await _client(upstreams.fast_app())
    slow = await _client(upstreams.slow_app(first_ms=1, gap_ms=1))
    try:
        url = str(fast.make_url("/v1/chat/completions"))
        loop_result = await closed_loop(url, chat_body("bench"), 2, 0.05, header="x-none")
        assert loop_result.errors == 0 and loop_result.latencies_ms
        paced_result = await paced(url, chat_body("bench"), 400, 0.05)
        assert paced_result.scheduled == 20 and paced_result.errors == 0
        assert len(paced_result.latencies_ms) == 20

        surl = str(slow.make_url("/v1/chat/completions"))
        pace = Pace(first_ms=2, gap_ms=2, send=True)
        result = await streams(surl, "bench-stream", 5, 4, 10, "t", pace)
        assert (result.ok, result.lost, result.reordered, result.garbled) == (5, 0, 0, 0)
        assert len(result.ttft_ms) == 5 and len(result.gaps_ms) == 5 * 3
    finally:
        await fast.close()
        await slow.close()


def test_nginx_config_embeds_the_same_bytes() -> None:
    assert upstreams.nginx_quote(b'a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    with pytest.raises(ValueError):
        upstreams.nginx_quote(b"$host")
    conf = upstreams.nginx_conf(18080, Path("/tmp/x"))
    assert "listen 127.0.0.1:18080" in conf and "location = /sse/v1/chat/completions" in conf
    assert upstreams.nginx_quote(upstreams.CHAT_JSON) in conf


# --- statistics and the table -------------------------------------------------------------


def test_percentile_median_ratio() -> None:
    data = [float(x) for x in range(1, 101)]
    assert percentile(data, 50) == pytest.approx(50.5)
    assert percentile(data, 99) == pytest.approx(99.01)
    assert percentile(data, 0) == 1.0 and percentile(data, 100) == 100.0
    assert percentile([], 50) is None and percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile(data, 101)
    assert median([3.0, 1.0, 2.0]) == 2.0 and median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(None, 2.0) is None and ratio(1.0, None) is None and ratio(1.0, 0.0) is None
    assert summarize([1.0, 2.0, 3.0])["p50"] == 2.0 and summarize([]) == {"count": 0.0}
    assert rotate(["d", "g", "c"], 1) == ["g", "c", "d"] and rotate(["d", "g"], 2) == ["d", "g"]


def test_aggregate_takes_medians_over_successful_rounds() -> None:
    runs = [
        Run("tp", "c=32", "gateway", 0, {"rps": 100.0}),
        Run("tp", "c=32", "gateway", 1, {"rps": 300.0}),
        Run("tp", "c=32", "gateway", 2, {"rps": 200.0}),
        Run("tp", "c=32", "direct", 0, error="boom"),
        Run("tp", "c=32", "direct", 1, {"rps": 1000.0}),
        Run("tp", "c=64", "gateway", 0, error="refused"),
    ]
    assert aggregate(runs)[("tp", "c=32", "gateway")] == {"rps": 200.0}
    assert aggregate(runs)[("tp", "c=32", "direct")] == {"rps": 1000.0}
    assert first_errors(runs) == {("tp", "c=64", "gateway"): "refused"}
    assert failed_rounds(runs) == {
        ("tp", "c=32", "direct"): (1, 2, "boom"),
        ("tp", "c=64", "gateway"): (1, 1, "refused"),
    }
    rows = Bench(Settings(), [], runs=runs).error_rows("tp")
    assert [(r.metric, r.error) for r in rows] == [
        ("ERROR (direct)", "c=32: 1 of 2 rounds failed (medians from the rest): boom"),
        ("ERROR (gateway)", "c=64: refused"),
    ]


def test_table_shows_ratios_and_error_rows() -> None:
    rows = [
        Row("throughput c=32", "req/s", {"direct": 2000.0, "gateway": 1000.0}),
        Row("unloaded", "added p50 ms", {"direct": None, "gateway": 0.42}, show_ratio=False),
        Row("streams", "p99 ms", {"direct": 1.0, "gateway": "ERROR"}),
        error_row("tracing", "gateway exited | code 1", "gateway"),
    ]
    table = render_table(rows)
    lines = table.splitlines()
    assert lines[0] == "| scenario | metric | direct | gateway | gateway ÷ direct |"
    assert lines[2] == "| throughput c=32 | req/s | 2,000 | 1,000 | 0.50x |"
    assert lines[3] == "| unloaded | added p50 ms | — | 0.42 |  |"
    assert lines[4] == "| streams | p99 ms | 1.00 | ERROR | — |"
    assert lines[5].startswith("| tracing | ERROR (gateway) | gateway exited \\| code 1 |")
    assert all(line.count(" | ") == lines[0].count(" | ") for line in lines[2:])
    three = render_table(rows[:1], ("direct", "gateway", "compare"))
    assert three.splitlines()[0].endswith("| compare | compare ÷ direct |")


def test_check_errors_rejects_runs_with_failed_requests() -> None:
    check_errors(0, 100, None, 0.01)
    check_errors(1, 100, "x", 0.01)
    with pytest.raises(RunError, match="5 of 100"):
        check_errors(5, 95, "HTTP 404", 0.01)
    with pytest.raises(RunError):
        check_errors(0, 0, None, 0.01)


# --- the stream verifier ------------------------------------------------------------------


def _stream(nonce: str, n: int) -> list[bytes]:
    body = b"".join(upstreams.content_event(nonce, "m", seq) for seq in range(n))
    return _events(body + upstreams.finish_event(nonce, "m") + upstreams.DONE_EVENT)


def test_verifier_accepts_the_stream_as_sent() -> None:
    check = verify_stream(_stream("s1", 6), "s1", 6)
    assert check.ok and check.received == 6 and check.finished and check.done


def test_verifier_detects_lost_reordered_duplicated_and_garbled_events() -> None:
    events = _stream("s1", 6)
    assert verify_stream(events[:2] + events[3:], "s1", 6).lost == 1
    assert verify_stream(events[:-1], "s1", 6).lost == 1  # no [DONE]
    swapped = [events[0], events[2], events[1], *events[3:]]
    assert verify_stream(swapped, "s1", 6).reordered == 1
    assert verify_stream([events[0], *events], "s1", 6).duplicated == 1
    assert verify_stream([*events, events[1]], "s1", 6).garbled == 1  # after [DONE]
    other = _stream("s2", 6)
    assert verify_stream([*events[:3], other[3], *events[4:]], "s1", 6).garbled == 1
    truncated = [*events[:3], events[3][:40], *events[4:]]
    assert verify_stream(truncated, "s1", 6).garbled == 1
    altered = [*events[:3], events[3].replace(b"|", b"!"), *events[4:]]
    bad = verify_stream(altered, "s1", 6)
    assert bad.garbled == 1 and bad.lost == 1 and not bad.ok


def test_verifier_ignores_usage_and_keepalives() -> None:
    events = _stream("s1", 3)
    usage = _events(upstreams.usage_event("s1", "m", 3))
    assert verify_stream([*events[:-1], *usage, events[-1]], "s1", 3).ok
    data = b": keepalive\n\n" + b"".join(b"data: " + e + b"\n\n" for e in events)
    assert _events(data) == events


@given(st.lists(st.integers(min_value=0, max_value=4000), max_size=8))
def test_splitter_gives_the_same_events_for_any_split(cuts: list[int]) -> None:
    data = upstreams.static_sse("p", 4).replace(b"\n\n", b"\r\n\r\n", 2)
    splitter = SSESplitter()
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    out = [e for a, b in itertools.pairwise(points) for e in splitter.feed(data[a:b])]
    assert out == _events(upstreams.static_sse("p", 4))
    assert splitter.pending == b""


# --- wrk ----------------------------------------------------------------------------------

WRK_TEXT = """Running 1s test @ http://127.0.0.1:18556/v1/chat/completions
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.59ms   10.38ms  78.74ms   95.42%
    Req/Sec    19.13k     7.90k   30.46k    66.67%
  Latency Distribution
     50%   73.00us
     75%  483.00us
     90%    2.67ms
     99%   64.41ms
  17543 requests in 1.09s, 9.82MB read
  Non-2xx or 3xx responses: 12
  Socket errors: connect 0, read 3, write 0, timeout 1
Requests/sec:  16142.06
Transfer/sec:      9.04MB
"""


def test_wrk_latency_text_is_parsed() -> None:
    r = parse_wrk(WRK_TEXT)
    assert r.requests == 17543 and r.duration_s == pytest.approx(1.09)
    assert r.rps == pytest.approx(16142.06)
    assert (r.p50_ms, r.p90_ms, r.p99_ms) == pytest.approx((0.073, 2.67, 64.41))
    assert r.max_ms == pytest.approx(78.74) and r.mean_ms == pytest.approx(2.59)
    assert r.non2xx == 12 and r.socket_errors["read"] == 3 and r.errors == 16
    assert r.metrics()["p99"] == pytest.approx(64.41)
    assert (to_ms("812.00us"), to_ms("2.01s"), to_ms("1.00m")) == pytest.approx(
        (0.812, 2010, 60000)
    )


def test_wrk_done_line_wins_over_the_text() -> None:
    line = (
        'BENCH {"requests":1000,"duration_us":2000000,"bytes":5,"connect":0,"read":0,"write":0,'
        '"status":2,"timeout":0,"p50_us":500,"p90_us":900,"p99_us":1500,"p999_us":3000,'
        '"max_us":4000,"mean_us":600.50}'
    )
    r = parse_wrk(WRK_TEXT + line + "\n")
    assert r.rps == 500.0 and r.p99_ms == 1.5 and r.p999_ms == 3.0 and r.non2xx == 2
    with pytest.raises(ValueError):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


def test_lua_script_posts_the_body_verbatim() -> None:
    script = lua_script(b'{"a":"]]"}')
    assert 'wrk.method = "POST"' in script and 'wrk.body = [=[{"a":"]]"}]=]' in script
    assert "done = function(summary, latency, requests)" in script


# --- configuration, cores, processes ------------------------------------------------------


def test_routes_yaml_and_commands() -> None:
    doc = yaml.safe_load(routes_yaml(1111, 2222))
    assert doc["backends"]["up"]["base_url"] == "http://127.0.0.1:1111/v1"
    assert doc["backends"]["up-sse"]["base_url"] == "http://127.0.0.1:1111/sse/v1"
    assert doc["backends"]["slow"]["base_url"] == "http://127.0.0.1:2222/v1"
    assert set(doc["models"]) == {"bench", "bench-sse", "bench-stream"}
    argv = gateway_argv(None, Path("/tmp/r.yaml"), 9000, 2)
    expected = "-m proxy serve --config /tmp/r.yaml --host 127.0.0.1 --port 9000 --workers 2"
    assert argv[1:] == expected.split(" ")
    assert gateway_argv("gw --port {port}", Path("c"), 1, 1) == ["gw", "--port", "1"]
    with pytest.raises(ValueError):
        gateway_argv("gw", Path("c"), 1, 1)
    models = parse_compare_models(["bench=gpt-x,bench-stream=s"])
    target = compare_target("http://127.0.0.1:4000/v1/", models)
    assert target.urls["json"] == "http://127.0.0.1:4000/v1/chat/completions"
    assert target.models == {"json": "gpt-x", "sse": "bench-sse", "stream": "s"}
    with pytest.raises(ValueError):
        parse_compare_models(["other=x"])


def test_core_plans() -> None:
    assert parse_cores("0,2-3") == {0, 2, 3}
    plan = plan_cores([0, 1], taskset=True)
    assert (plan.gateway, plan.load, plan.method) == (frozenset({0}), frozenset({1}), "taskset -c")
    assert "core(s) 0" in plan.describe()
    assert plan_cores([0, 1, 2, 3], taskset=False).gateway == frozenset({0, 1})
    assert plan_cores([0], taskset=True).gateway is None
    assert plan_cores([0, 1], taskset=True, pin=False).load is None


def test_processes_are_stopped_by_pid(tmp_path: Path) -> None:
    procs = Procs(tmp_path, use_taskset=False)
    proc = procs.start("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 5
        while tree_memory(proc.pid)["main_kib"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tree_memory(proc.pid)["main_kib"] > 0
    finally:
        procs.stop_all()
    assert not proc.alive() and proc.popen.returncode is not None
    assert tree_memory(os.getpid())["total_kib"] > 0


# --- the floor and the targets (issue 11) --------------------------------------------------


async def test_floor_forwards_the_body_and_answers_the_upstreams_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bench import floor

    upstream = await _client(upstreams.fast_app())
    monkeypatch.setenv(floor.UPSTREAM_ENV, str(upstream.make_url("")))
    monkeypatch.setattr(floor, "_session", None)
    sent: list[dict[str, object]] = []
    body = chat_body("bench")
    chunks = iter([{"body": body[:10], "more_body": True}, {"body": body[10:]}])

    async def receive() -> dict[str, object]:
        return next(chunks)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    try:
        scope = {"type": "http", "path": "/v1/chat/completions", "method": "POST"}
        await floor.bare(scope, receive, send)
    finally:
        await floor._pool().close()
        await upstream.close()
    assert sent[0]["status"] == 200
    assert msgspec.json.decode(sent[1]["body"])["object"] == "chat.completion"  # type: ignore[arg-type]


def test_tree_cpu_counts_this_process() -> None:
    from bench.procs import tree_cpu_s

    before = tree_cpu_s(os.getpid(), [])
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    assert tree_cpu_s(os.getpid(), []) - before >= 0.03


def test_verdict_says_met_or_by_how_much() -> None:
    from bench.targets import _verdict

    assert _verdict(0.95, 0.9, "x", True) == "0.95x (target ≥ 0.9x): met"
    assert _verdict(0.57, 0.9, "x", True) == "0.57x (target ≥ 0.9x): missed by 0.33x"
    assert _verdict(1.76, 1.15, "x", False) == "1.76x (target ≤ 1.15x): missed by 0.61x"
    assert _verdict(7434.0, 10_000, " B", False) == "7,434 B (target ≤ 10000 B): met"
    assert _verdict(0.966, 0.97, "x", True) == "0.97x (target ≥ 0.97x): missed by 0.004x"
    assert _verdict(None, 1, "x", True) == "not measured in this run"


async def test_targets_are_ratios_to_the_floor_from_the_same_runs() -> None:
    from bench.harness import Target
    from bench.targets import targets

    def target(name: str) -> Target:
        return Target(name, name, {"json": "u"}, {"json": "m"})

    b = Bench(Settings(), [target("direct"), target("floor"), target("gateway")])
    for rnd, (floor_rps, gw_rps) in enumerate([(7000.0, 4000.0), (7200.0, 4200.0), (1.0, 1.0)]):
        b.runs.append(
            Run("throughput", "c=32", "floor", rnd, {"rps": floor_rps, "cpu_ms_per_req": 0.14})
        )
        b.runs.append(
            Run("throughput", "c=32", "gateway", rnd, {"rps": gw_rps, "cpu_ms_per_req": 0.21})
        )
    b.runs.append(Run("tracing", "c=32", "gateway", 0, {"rps": 4000.0}))
    b.runs.append(Run("tracing", "c=32", "gateway-traced", 0, {"rps": 3000.0}))  # stopped
    b.runs.append(Run("unloaded", "c=1", "direct", 0, {"p50": 0.02}))
    b.runs.append(Run("unloaded", "c=1", "gateway", 0, {"p50": 0.17}))
    rows = {r.metric: r.cells["gateway"] for r in await targets(b)}
    # medians: floor 7000, gateway 4000 -> 0.57x; CPU 0.21 / 0.14 = 1.5x
    assert rows["throughput c=32, gateway ÷ floor"] == "0.57x (target ≥ 0.9x): missed by 0.33x"
    assert rows["CPU per request c=32, gateway ÷ floor"] == (
        "1.50x (target ≤ 1.15x): missed by 0.35x"
    )
    assert rows["added p50 at c=1 (gateway - direct)"] == "0.15 ms (target ≤ 0.2 ms): met"
    assert rows["tracing 100 % (batch): throughput ÷ off"] == (
        "0.75x (target ≥ 0.9x): missed by 0.15x"
    )
    assert rows["bytes per open stream (n=1000)"] == "not measured in this run"
