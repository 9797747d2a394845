"""The cache tests use the state tests' real redis-server fixture."""

from tests.state.conftest import redis_server

__all__ = ["redis_server"]
