"""Fixtures for the fault suite: a scripted upstream, a hung TCP peer, a port that never
connects, a private Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.faults.scripted import DOCS, BlackHole, OwnRedis, Unconnectable
from tests.upstream import ScriptedUpstream


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedUpstream]:
    upstream = ScriptedUpstream(DOCS)
    await upstream.start()
    yield upstream
    await upstream.close()


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
