"""routes.yaml: settings.sessions, settings.commands, loop_detection globally and per model."""

from proxy.config import LoopDetection, Sessions, parse
from tests.unit.config_support import MINIMAL, problems, with_settings


def test_defaults() -> None:
    config = parse(MINIMAL, {})
    s = config.settings
    assert s.sessions == Sessions(ttl=3600.0, max=10_000, derive=False)
    assert (s.commands.prefix, s.commands.enabled) == ("!/", True)
    assert s.loop_detection == LoopDetection(enabled=False, window=4096, min_repeats=6)
    assert config.models[0].loop_detection == s.loop_detection


def test_values() -> None:
    text = with_settings(
        "sessions: {ttl: 30m, max: 50, derive: true}\n"
        "commands: {prefix: '>>', enabled: false}\n"
        "loop_detection: {enabled: true, window: 2048, min_repeats: 4}"
    )
    s = parse(text, {}).settings
    assert s.sessions == Sessions(ttl=1800.0, max=50, derive=True)
    assert (s.commands.prefix, s.commands.enabled) == (">>", False)
    assert s.loop_detection == LoopDetection(enabled=True, window=2048, min_repeats=4)


def test_per_model_loop_detection_takes_the_rest_from_settings() -> None:
    text = """\
version: 1
settings:
  loop_detection: {window: 2048}
backends:
  demo: {type: mock}
models:
  plain: {targets: [{backend: demo}]}
  agent:
    targets: [{backend: demo}]
    loop_detection: {min_repeats: 3}
  off:
    targets: [{backend: demo}]
    loop_detection: false
  on:
    targets: [{backend: demo}]
    loop_detection: true
"""
    models = {m.alias: m.loop_detection for m in parse(text, {}).models}
    assert models["plain"] == LoopDetection(enabled=False, window=2048, min_repeats=6)
    assert models["agent"] == LoopDetection(enabled=True, window=2048, min_repeats=3)
    assert models["off"] == LoopDetection(enabled=False, window=2048, min_repeats=6)
    assert models["on"] == LoopDetection(enabled=True, window=2048, min_repeats=6)


def test_problems_at_their_place() -> None:
    found = problems(
        with_settings(
            "sessions: {ttl: 0s, max: 0, derive: maybe, size: 3}\n"
            "commands: {prefix: '! /'}\n"
            "loop_detection: {window: 100, min_repeats: 1}"
        )
    )
    text = "\n".join(found)
    assert "routes.yaml:8:19: expected a duration above 0" in text
    assert "routes.yaml:8:28: expected an integer >= 1" in text
    assert "routes.yaml:8:39: expected true or false" in text
    assert "unknown key 'size' in settings.sessions" in text
    assert "routes.yaml:9:22: expected a command prefix" in text
    assert "routes.yaml:10:28: expected an integer from 256" in text
    assert "routes.yaml:10:46: expected an integer from 2" in text


def test_repeats_must_fit_the_window() -> None:
    found = problems(with_settings("loop_detection: {window: 256, min_repeats: 300}"))
    assert any("can't fit in window=256" in p for p in found)
