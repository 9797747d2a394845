"""What loop detection costs on a stream, as a share of the gateway's own CPU for that stream.

`python -m bench.loop_cost [--chunks 4000] [--rounds 5]`

1. The gateway's CPU per streamed chunk: a gateway subprocess relays an OpenAI stream of
   `--chunks` content chunks (about 4 characters each, like tokens) from a local fake
   upstream; its process group's user+system CPU time is read from /proc before and after.
2. The detector's CPU per chunk on the same text, fed chunk by chunk (median of rounds).
3. Getting that text out of whole frames with `streamtext.split` (a regex, no JSON decode),
   which loop detection needs on the pass-through path; full SSE + JSON decoding is timed
   too, for comparison.
Then 1 again with `loop_detection: {enabled: true}`: the end-to-end difference (noisy: the
gateway's CPU is read in clock ticks, so use enough chunks and rounds).
The upstream paces its chunks (`--interval`, 1 ms by default) so each arrives on its own, as
a model's tokens do. Prints each per-chunk cost and its share of 1. Linux only (/proc).
"""

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import msgspec

from proxy import sse
from proxy.interactive import streamtext
from proxy.interactive.loops import Detector
from tests.conftest import RoutesFile, launch
from tests.upstreams import FakeUpstream, ok

_TEXT = (
    "the of and to in is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when "
    "what will more if no out so said up its about into than them can only other new some "
    "time could these two may then do first any my now such like our over man me even most"
)
WORDS = _TEXT.split()


def _pieces(n: int, seed: int) -> list[str]:
    """n token-sized pieces of prose that never loops (numbers keep sentences distinct)."""
    rng = random.Random(seed)
    out: list[str] = []
    sentence = 0
    while len(out) < n:
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 18))]
        words.append(f"({sentence}).")
        sentence += 1
        out.extend(" " + w for w in words)
    return out[:n]


def _group_cpu(pgid: int) -> float:
    """User + system CPU seconds of every process in the group (granian's workers too)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:  # field 5, pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def gateway_cpu_per_chunk(
    pieces: list[str], rounds: int, interval: float, loops: bool = False
) -> float:
    with tempfile.TemporaryDirectory() as tmp, FakeUpstream(models=("m",)) as up:
        config = RoutesFile(Path(tmp))(
            f"""
            version: 1
            settings:
              loop_detection: {{enabled: {"true" if loops else "false"}}}
            backends:
              up: {{type: openai, base_url: "{up.url}", api_key: k}}
            models:
              m: {{targets: [{{backend: up}}]}}
            """
        )
        gw = launch(config, Path(tmp))
        try:
            body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
            samples = []
            with httpx.Client(timeout=60) as client:
                for _ in range(rounds + 1):  # the first warms up
                    up.script(ok(chunks=pieces, interval=interval))
                    before = _group_cpu(gw.proc.pid)
                    with client.stream("POST", f"{gw.url}/v1/chat/completions", json=body) as r:
                        for _ in r.iter_bytes():
                            pass
                    samples.append((_group_cpu(gw.proc.pid) - before) / len(pieces))
            return statistics.median(samples[1:])
        finally:
            gw.stop()


def detector_per_chunk(pieces: list[str], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        detector = Detector(4096, 6)
        t0 = time.process_time()
        for piece in pieces:
            if detector.feed(piece) is not None:
                raise AssertionError("the benchmark text must not loop")
        samples.append((time.process_time() - t0) / len(pieces))
    return statistics.median(samples)


def _frames(pieces: list[str], per_read: int) -> list[bytes]:
    """The OpenAI stream of `pieces` as reads of `per_read` whole frames."""
    frames = [
        b"data: "
        + msgspec.json.encode(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}],
            }
        )
        + b"\n\n"
        for p in pieces
    ]
    return [b"".join(frames[i : i + per_read]) for i in range(0, len(frames), per_read)]


def extraction_per_chunk(pieces: list[str], rounds: int, per_read: int) -> float:
    """Pulling the text out of whole frames with `streamtext.split` (a regex, no JSON)."""
    reads = _frames(pieces, per_read)
    samples = []
    for _ in range(rounds):
        t0 = time.process_time()
        for read in reads:
            streamtext.split(read, "openai")
        samples.append((time.process_time() - t0) / len(pieces))
    return statistics.median(samples)


_chunk = msgspec.json.Decoder(dict[str, object])


def decoding_per_chunk(pieces: list[str], rounds: int, per_read: int) -> float:
    """For comparison: SSE-decoding and JSON-decoding every chunk instead."""
    reads = _frames(pieces, per_read)
    samples = []
    for _ in range(rounds):
        decoder = sse.Decoder()
        t0 = time.process_time()
        for read in reads:
            for event in decoder.feed(read):
                _chunk.decode(event.data)
        samples.append((time.process_time() - t0) / len(pieces))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--interval", type=float, default=0.001, help="seconds between upstream chunks"
    )
    parser.add_argument(
        "--frames-per-read", type=int, default=1, help="frames per relay read, for 3 (0 s: 16)"
    )
    args = parser.parse_args()
    pieces = _pieces(args.chunks, seed=1)
    gateway = gateway_cpu_per_chunk(pieces, args.rounds, args.interval)
    enabled = gateway_cpu_per_chunk(pieces, args.rounds, args.interval, loops=True)
    detector = detector_per_chunk(pieces, args.rounds)
    extraction = extraction_per_chunk(pieces, args.rounds, args.frames_per_read)
    decoding = decoding_per_chunk(pieces, args.rounds, args.frames_per_read)
    size = sum(map(len, pieces)) / len(pieces)
    print(f"chunks per stream: {args.chunks}, ~{size:.1f} chars each, {args.interval}s apart")
    print(f"gateway CPU per relayed chunk:    {gateway * 1e6:8.2f} us")
    print(f"loop detector per chunk:          {detector * 1e6:8.2f} us  ({detector / gateway:.1%})")
    share = extraction / gateway
    print(f"text from frames (streamtext):    {extraction * 1e6:8.2f} us  ({share:.1%})")
    both = detector + extraction
    print(f"detection in all, per chunk:      {both * 1e6:8.2f} us  ({both / gateway:.1%})")
    change = enabled / gateway - 1
    print(f"gateway CPU per chunk, detection on: {enabled * 1e6:5.2f} us  ({change:+.1%})")
    print(
        f"(full SSE + JSON decode instead:  {decoding * 1e6:8.2f} us  ({decoding / gateway:.1%}))"
    )


if __name__ == "__main__":
    main()
