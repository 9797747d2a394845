"""Helpers for tests/deploy: a config with a marker alias, a deadline poll, and a directory laid
out exactly as the kubelet lays out a mounted ConfigMap (and swaps it on an update).
"""

import itertools
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

VISIBLE_WITHIN = 2.0  # seconds: "noticed within a second", with slack for a loaded machine
_stamps = itertools.count(1)


def config_text(marker: str) -> str:
    return (
        "version: 1\n"
        "backends:\n"
        "  demo: {type: mock}\n"
        "models:\n"
        "  demo:\n"
        "    targets: [{backend: demo}]\n"
        f"  {marker}:\n"
        "    targets: [{backend: demo}]\n"
    )


def wait_until(check: Callable[[], Any], what: str) -> None:
    end = time.monotonic() + VISIBLE_WITHIN
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"not within {VISIBLE_WITHIN}s: {what}")
        time.sleep(0.05)


class ConfigMapVolume:
    """A directory laid out exactly as the kubelet's atomic writer lays out a ConfigMap."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "..data"

    def _timestamped(self) -> Path:
        # the kubelet's names look like ..2026_12_05_08_01_02.123456789
        return self.root / f"..2026_12_05_08_00_{next(_stamps):02d}.000000001"

    def create(self, text: str) -> Path:
        target = self._timestamped()
        target.mkdir()
        (target / "routes.yaml").write_text(text)
        os.symlink(target.name, self.data)
        os.symlink("..data/routes.yaml", self.root / "routes.yaml")
        return self.root / "routes.yaml"

    def update(self, text: str) -> None:
        old = self.data.parent / os.readlink(self.data)
        new = self._timestamped()
        new.mkdir()
        (new / "routes.yaml").write_text(text)
        tmp = self.root / "..data_tmp"
        os.symlink(new.name, tmp)
        os.rename(tmp, self.data)  # the atomic swap
        shutil.rmtree(old)  # the kubelet removes the old directory right after
