"""Hot reload of a config that changes the way deployments change it.

Kubernetes never writes a mounted ConfigMap's file: the kubelet writes a new timestamped
directory, points a fresh `..data_tmp` symlink at it, renames that over `..data` (one atomic
step) and deletes the old directory; `routes.yaml` itself is a symlink `..data/routes.yaml`
that never changes. Editors save by writing a temp file and renaming it over the original;
`cp` truncates and rewrites the same inode. Each must become live within a second (tests allow
2 s on a loaded CI machine), and the gateway must keep following the path it was given, not
the file that path pointed at when it started.
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Gateway, serve
from tests.deploy.support import ConfigMapVolume, config_text, wait_until

pytestmark = pytest.mark.timeout(60)


def aliases(gw: Gateway) -> set[str]:
    resp = httpx.get(f"{gw.url}/v1/models", timeout=5, trust_env=False)
    assert resp.status_code == 200, resp.text
    return {m["id"] for m in resp.json()["data"]}


def wait_routable(gw: Gateway, marker: str) -> None:
    wait_until(lambda: marker in aliases(gw), f"{marker} listed by /v1/models")
    body = {"model": marker, "messages": [{"role": "user", "content": "hi"}]}
    resp = httpx.post(f"{gw.url}/v1/chat/completions", json=body, timeout=5, trust_env=False)
    assert resp.status_code == 200, resp.text


@pytest.fixture
def configmap(tmp_path: Path) -> Iterator[tuple[ConfigMapVolume, Gateway]]:
    volume = ConfigMapVolume(tmp_path / "etc-llm-proxy")
    volume.root.mkdir()
    path = volume.create(config_text("marker-start"))
    with serve(path, tmp_path) as gw:
        yield volume, gw


def test_configmap_symlink_swap_is_seen(configmap: tuple[ConfigMapVolume, Gateway]) -> None:
    volume, gw = configmap
    assert "marker-start" in aliases(gw)
    for n in (1, 2, 3):  # after the first swap the start-time target is gone: keep following
        volume.update(config_text(f"marker-swap-{n}"))
        wait_routable(gw, f"marker-swap-{n}")
        assert f"marker-swap-{n - 1}" not in aliases(gw)
    assert len([p for p in volume.root.iterdir() if p.name.startswith("..2026")]) == 1


def test_rename_on_save_and_cp_over_the_file_are_seen(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(config_text("marker-start"))
    with serve(path, tmp_path) as gw:
        # an editor: write a temp file beside it, rename it over the original
        tmp = tmp_path / ".routes.yaml.swp"
        tmp.write_text(config_text("marker-renamed"))
        os.replace(tmp, path)
        wait_routable(gw, "marker-renamed")
        # cp: truncate and rewrite the same inode
        source = tmp_path / "other.yaml"
        source.write_text(config_text("marker-copied"))
        inode = path.stat().st_ino
        shutil.copyfile(source, path)
        assert path.stat().st_ino == inode
        wait_routable(gw, "marker-copied")


def test_a_symlinked_config_follows_its_link_when_repointed(tmp_path: Path) -> None:
    """`ln -sfn` style: the configured path is a link that is re-pointed to another file."""
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(config_text("marker-a"))
    second.write_text(config_text("marker-b"))
    link = tmp_path / "routes.yaml"
    os.symlink(first.name, link)
    with serve(link, tmp_path) as gw:
        assert "marker-a" in aliases(gw)
        tmp = tmp_path / "routes.yaml.new"
        os.symlink(second.name, tmp)
        os.replace(tmp, link)
        wait_routable(gw, "marker-b")
