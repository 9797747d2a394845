"""Fixtures shared by the SDK-by-backend matrix modules.

Each module gets its own gateway and fake upstreams (module scope), so the modules stay
independent; scripted answers a failed test left behind are dropped around every test.
"""

from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.client.matrix.support import Rig, anthropic_client, forget, matrix_rig, openai_client


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with matrix_rig(tmp_path_factory.mktemp("matrix")) as rig:
        yield rig


@pytest.fixture(autouse=True)
def _fresh_scripts(rig: Rig) -> Iterator[None]:
    """A failed test may leave scripted answers behind: drop them before and after."""
    forget(rig)
    yield
    forget(rig)


@pytest.fixture(scope="module")
def oa(rig: Rig) -> Iterator[openai.OpenAI]:
    with openai_client(rig) as client:
        yield client


@pytest.fixture(scope="module")
def an(rig: Rig) -> Iterator[anthropic.Anthropic]:
    with anthropic_client(rig) as client:
        yield client
