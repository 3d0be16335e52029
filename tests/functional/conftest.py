"""The whole app (FakeEncoder) in front of a scripted upstream that records every request.

The upstream (``tests.upstream``, here under the name ``Scripted``) serves
``DOCS``; ``script(path, Canned(...))`` overrides one path's answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from gateway.model.fake import FakeEncoder
from gateway.settings import Settings
from tests.conftest import GatewayFactory
from tests.upstream import Canned, call
from tests.upstream import ScriptedUpstream as Scripted

__all__ = ["DOCS", "QUERY", "RERANKED", "SEARCH", "Canned", "Scripted", "Start", "call"]

# Upstream (BM25-like) order; FakeEncoder prefers more words of the query, then shorter texts.
DOCS: list[dict[str, Any]] = [
    {"_id": "d0", "title": "Paris", "text": "Paris is the capital of France."},
    {"_id": "d1", "title": "Walls", "text": "A wall is a structure."},
    {"_id": "d2", "title": "Berlin", "text": "Berlin is the capital of Germany."},
    {"_id": "d3", "title": "Berlin Wall", "text": "The Berlin Wall fell in 1989."},
    {"_id": "d4", "title": "Rome", "text": "Rome is old."},
    {"_id": "d5", "title": "Madrid", "text": "Madrid is in Spain."},
    {"_id": "d6", "title": "Lisbon", "text": "Lisbon is by the sea."},
]
QUERY = "berlin wall"
RERANKED = ["d3", "d2", "d1", "d0", "d4"]  # FakeEncoder's order of the first five (window 5)
SEARCH: dict[str, Any] = {"query": {"match": {"text": QUERY}}}


@pytest.fixture
async def upstream() -> AsyncIterator[Scripted]:
    scripted = Scripted(DOCS)
    await scripted.start()
    yield scripted
    await scripted.close()


Start = Callable[..., Awaitable[str]]


@pytest.fixture
def start(upstream: Scripted, gateway: GatewayFactory) -> Start:
    """``url = await start(upstream={...}, rerank={...}, ...)``: the gateway with FakeEncoder."""

    async def run(**sections: dict[str, Any]) -> str:
        defaults: dict[str, dict[str, Any]] = {
            "upstream": {"urls": [upstream.url], "flavor": "elasticsearch"},
            "rerank": {"window": 5},
        }
        for name, section in defaults.items():
            sections[name] = {**section, **sections.get(name, {})}
        return await gateway(Settings.model_validate(sections), encoder=FakeEncoder())

    return run
