"""Fixtures of the search pipeline's unit tests: a scripted cluster, a flow on the fake model."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.model.fake import FakeEncoder
from gateway.rerank.batcher import Batcher
from gateway.rerank.cache import MemoryCache
from gateway.rerank.reranker import Reranker
from gateway.search.pipeline import SearchFlow
from gateway.upstream.client import Upstream
from tests.doubles.corpora import CAPITALS as DOCS
from tests.doubles.gateway import settings_with
from tests.doubles.upstream import ScriptedUpstream


@pytest.fixture
async def cluster() -> AsyncIterator[ScriptedUpstream]:
    async with ScriptedUpstream(DOCS) as scripted:
        yield scripted


@pytest.fixture
async def flow(cluster: ScriptedUpstream) -> AsyncIterator[SearchFlow]:
    settings = settings_with(
        [cluster.url], upstream={"flavor": "elasticsearch"}, batcher={"max_wait_ms": 0}
    )
    upstream = Upstream(settings.upstream)
    await upstream.start()
    encoder = FakeEncoder()
    batcher = Batcher(encoder, settings.batcher)
    await batcher.start()
    reranker = Reranker(batcher, MemoryCache(100), fingerprint=encoder.fingerprint)
    yield SearchFlow(upstream, reranker, settings.rerank)
    await batcher.stop()
    await upstream.close()
