"""Fixtures for the fault suite: a hung TCP peer, a port that never connects, a private Redis
(the scripted upstream, ``scripted``, is in the root conftest: the security suite uses it too)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.doubles.net import BlackHole, Unconnectable
from tests.doubles.redis_servers import OwnRedis


@pytest.fixture
async def black_hole() -> AsyncIterator[BlackHole]:
    hole = BlackHole()
    await hole.start()
    yield hole
    await hole.close()


@pytest.fixture
def unconnectable() -> Iterator[Unconnectable]:
    port = Unconnectable()
    yield port
    port.close()


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    yield server
    server.stop()
