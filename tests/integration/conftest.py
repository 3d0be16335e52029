"""Fixtures of the integration suite: private Redis servers (``own_redis``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.redis_servers import RedisProcess


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Callable[..., RedisProcess]]:
    started: list[RedisProcess] = []

    def start(*args: str, tls: bool = False) -> RedisProcess:
        server = RedisProcess(tmp_path, *args, tls=tls)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()
