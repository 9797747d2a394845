"""proxy.workers: what `serve` writes is exactly what every worker reads back."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy import workers
from proxy.workers import WorkerSettings

_paths = st.none() | st.from_regex(r"/[a-z0-9_/.-]{1,30}", fullmatch=True).map(Path)


@given(_paths, _paths, st.integers(1, 512), _paths)
def test_to_env_round_trips(
    config: Path | None, stamp: Path | None, count: int, directory: Path | None
) -> None:
    settings = WorkerSettings(config, stamp, count, directory)
    assert WorkerSettings.from_env(settings.to_env()) == settings


def test_without_serve_every_field_has_its_one_process_default() -> None:
    assert WorkerSettings.from_env({}) == WorkerSettings(None, None, 1, None)
    bad = WorkerSettings.from_env({workers.WORKERS_ENV: "many"})
    assert bad.worker_count == 1
    assert WorkerSettings.from_env({workers.WORKERS_ENV: "0"}).worker_count == 1


def test_current_reads_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    workers.use(None)
    try:
        monkeypatch.setenv(workers.WORKERS_ENV, "3")
        assert workers.current().worker_count == 3
        monkeypatch.setenv(workers.WORKERS_ENV, "5")
        assert workers.current().worker_count == 3  # read once, kept
        workers.use(None)
        assert workers.current().worker_count == 5
    finally:
        workers.use(None)
