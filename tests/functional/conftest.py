"""Fixtures of the functional suite: the whole app (FakeEncoder) in front of a scripted
upstream that records every request.

``upstream`` serves ``tests.doubles.corpora.WALL_DOCS``; ``script(path, Canned(...))``
overrides one path's answer. ``start(**sections)`` starts the gateway in front of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.model.fake import FakeEncoder
from gateway.settings import Settings
from tests.doubles.corpora import WALL_DOCS
from tests.doubles.gateway import GatewayFactory, Start
from tests.doubles.upstream import ScriptedUpstream


@pytest.fixture
async def upstream() -> AsyncIterator[ScriptedUpstream]:
    scripted = ScriptedUpstream(WALL_DOCS)
    await scripted.start()
    yield scripted
    await scripted.close()


@pytest.fixture
def start(upstream: ScriptedUpstream, gateway: GatewayFactory) -> Start:
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
