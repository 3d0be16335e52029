"""The cluster's ``_mapping`` fails, stalls or changes: searches still rerank on what is known.

A mapping that cannot be read leaves the configured fields (the search is still
reranked, nothing fails) and is asked again after a short pause; a readable one
is reused for ``RERANK__MAPPING_TTL_S`` and then read again, so a changed
mapping changes the fields (and is told again).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from multidict import CIMultiDict

from gateway.model.fake import FakeEncoder
from gateway.search.mappings import IndexFields
from gateway.settings import RerankSettings, UpstreamSettings
from gateway.upstream.client import Upstream
from tests.doubles.corpora import POPULATION_FAKE_ORDER as FAKE_ORDER
from tests.doubles.corpora import POPULATION_QUERY as QUERY
from tests.doubles.gateway import GatewayFactory, settings_with
from tests.doubles.upstream import Canned, ScriptedUpstream, call, slow

SEARCH = {"query": {"match": {"text": QUERY}}, "size": 3}
CONFIGURED = ("title", "text")


def mapping(index: str, **types: str) -> Canned:
    props = {name: {"type": kind} for name, kind in types.items()}
    return Canned(body=json.dumps({index: {"mappings": {"properties": props}}}).encode())


@pytest.mark.parametrize(
    "answer",
    [
        Canned(status=500, body=b'{"error": {"type": "x"}, "status": 500}'),
        Canned(status=403, body=b'{"error": {"type": "security_exception"}, "status": 403}'),
        Canned(body=b"not json"),
        Canned(body=b'["a", "list"]'),
        slow(3.0),
    ],
    ids=["500", "403", "not-json", "not-an-object", "stalled"],
)
async def test_unreadable_mapping_leaves_the_configured_fields(
    scripted: ScriptedUpstream, gateway: GatewayFactory, answer: Any
) -> None:
    scripted.script("/docs/_mapping", answer)
    settings = settings_with([scripted.url], rerank={"window": 8, "timeout_s": 0.5})
    url = await gateway(settings, encoder=FakeEncoder())
    got = await call("POST", f"{url}/docs/_search", SEARCH)
    assert got.status == 200
    assert got.headers["X-Rerank"] == "full"
    assert got.ids() == FAKE_ORDER
    sent = scripted.last("/docs/_search").json()
    assert set(CONFIGURED) <= set(sent["fields"])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def upstream(scripted: ScriptedUpstream) -> Any:
    client = Upstream(UpstreamSettings(urls=[scripted.url]))
    await client.start()
    yield client
    await client.close()


def reads(scripted: ScriptedUpstream) -> int:
    return sum(1 for s in scripted.seen if s.path == "/news/_mapping")


async def test_mapping_is_cached_for_its_ttl_then_read_again(
    scripted: ScriptedUpstream, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    fields = IndexFields(upstream, RerankSettings(mapping_ttl_s=60), clock=clock)
    scripted.script("/news/_mapping", mapping("news", body="text", headline="text"))
    assert await fields.choose("news", CONFIGURED, CIMultiDict()) == ("headline", "body")
    clock.now += 59
    assert await fields.choose("news", CONFIGURED, CIMultiDict()) == ("headline", "body")
    assert reads(scripted) == 1
    # The mapping changed: after the TTL the new one is read, and told.
    scripted.script("/news/_mapping", mapping("news", body="text", title="text"))
    clock.now += 2
    assert await fields.choose("news", CONFIGURED, CIMultiDict()) == CONFIGURED
    assert reads(scripted) == 2
    scripted.script("/news/_mapping", mapping("news", story="text"))
    clock.now += 61
    assert await fields.choose("news", CONFIGURED, CIMultiDict()) == ("story",)
    told = [r.getMessage() for r in caplog.records if r.name == "gateway.search.mappings"]
    assert [m.split(": ")[-1] for m in told] == [
        "scoring its text fields headline, body (set GATEWAY_RERANK__FIELDS to choose)",
        "scoring its text fields story (set GATEWAY_RERANK__FIELDS to choose)",
    ]
    await fields.close()


async def test_failed_read_is_retried_soon_not_after_the_ttl(
    scripted: ScriptedUpstream, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.search.mappings")
    clock = Clock()
    fields = IndexFields(upstream, RerankSettings(mapping_ttl_s=300), clock=clock)
    scripted.script("/news/_mapping", Canned(status=503, body=b"{}"))
    assert await fields.choose("news", CONFIGURED, CIMultiDict()) == CONFIGURED
    assert "HTTP 503" in caplog.text
    scripted.script("/news/_mapping", mapping("news", body="text"))
    clock.now += 5
    assert await fields.choose("news", CONFIGURED, CIMultiDict()) == CONFIGURED
    clock.now += 6  # past the retry pause, well within the TTL
    assert await fields.choose("news", CONFIGURED, CIMultiDict()) == ("body",)
    assert reads(scripted) == 2
    await fields.close()


async def test_concurrent_first_searches_read_the_mapping_once(
    scripted: ScriptedUpstream, upstream: Upstream
) -> None:
    fields = IndexFields(upstream, RerankSettings())
    scripted.script("/news/_mapping", mapping("news", body="text"))
    got = await asyncio.gather(
        *(fields.choose("news", CONFIGURED, CIMultiDict()) for _ in range(5))
    )
    assert got == [("body",)] * 5
    assert reads(scripted) == 1
    await fields.close()


async def test_discovery_off_never_reads_the_mapping(
    scripted: ScriptedUpstream, gateway: GatewayFactory
) -> None:
    settings = settings_with([scripted.url], rerank={"discover_fields": False})
    url = await gateway(settings, encoder=FakeEncoder())
    got = await call("POST", f"{url}/docs/_search", SEARCH)
    assert got.headers["X-Rerank"] == "full"
    assert not [s for s in scripted.seen if s.path.endswith("/_mapping")]


async def test_an_index_name_that_climbs_is_not_read(
    scripted: ScriptedUpstream, upstream: Upstream
) -> None:
    """A sub-search of ``_msearch`` names any index: ``..`` must not reach another path."""
    fields = IndexFields(upstream, RerankSettings())
    for name in ("..", "a/../_cluster", "%2e%2e"):
        assert await fields.choose(name, CONFIGURED, CIMultiDict()) == CONFIGURED
    assert not [s for s in scripted.seen if "_mapping" in s.path]
    await fields.close()


async def test_the_mapping_cache_keeps_a_bounded_number_of_expressions(
    scripted: ScriptedUpstream, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clients name any index expression they like: the oldest are dropped, and asked
    again when searched again."""
    monkeypatch.setattr("gateway.search.mappings._CACHED", 3)
    fields = IndexFields(upstream, RerankSettings())
    for name in ("a", "b", "c", "d", "e"):
        scripted.script(f"/{name}/_mapping", mapping(name, body="text"))
        assert await fields.choose(name, CONFIGURED, CIMultiDict()) == ("body",)
    assert sorted(fields._cache) == ["c", "d", "e"]
    assert await fields.choose("a", CONFIGURED, CIMultiDict()) == ("body",)
    asked = [s.path for s in scripted.seen if s.path.endswith("/_mapping")]
    assert asked == [f"/{name}/_mapping" for name in "abcdea"]  # "a" read again
    await fields.close()
