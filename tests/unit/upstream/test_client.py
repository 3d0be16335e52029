"""The upstream client alone (``gateway.upstream.client``, ``failover``), no gateway app.

A real aiohttp client session against scripted clusters (``tests.upstream``): the
cluster's answers, errors included, come back as they were sent; aiohttp's
failures become the gateway's at the one boundary; a URL that cannot be connected
to is skipped for a back-off that doubles, and used again once it answers.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from gateway.errors import ClientRequestError, UpstreamTimeout, UpstreamUnavailable
from gateway.settings import Settings
from gateway.upstream.client import Upstream
from gateway.upstream.failover import UrlPool
from tests.doubles.corpora import CAPITALS as DOCS
from tests.doubles.net import free_port
from tests.doubles.upstream import Canned, Gate, ScriptedUpstream, reset_mid_body

JSON = {"Content-Type": "application/json"}
ERROR = b'{"error":{"root_cause":[{"type":"index_not_found_exception"}]},"status":404}'


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def client(*urls: str, **upstream: Any) -> AsyncIterator[Upstream]:
    settings = Settings.model_validate({"upstream": {"urls": list(urls), **upstream}})
    up = Upstream(settings.upstream)
    await up.start()
    try:
        yield up
    finally:
        await up.close()


@pytest.fixture
async def cluster() -> AsyncIterator[ScriptedUpstream]:
    async with ScriptedUpstream(DOCS) as scripted:
        yield scripted


def nowhere() -> str:
    """A loopback URL nothing listens on: connecting is refused, nothing is sent."""
    return f"http://127.0.0.1:{free_port()}"


async def test_a_non_2xx_answer_comes_back_verbatim(cluster: ScriptedUpstream) -> None:
    headers = {**JSON, "X-Elastic-Product": "Elasticsearch", "Warning": "299 deprecated"}
    cluster.script("/missing/_search", Canned(status=404, body=ERROR, headers=headers))
    async with client(cluster.url) as up:
        reply = await up.fetch("POST", "/missing/_search", JSON, b"{}")
    assert (reply.status, reply.body) == (404, ERROR)
    assert reply.headers["Warning"] == "299 deprecated"
    assert up.pool.dead() == []  # an answer, even an error, is a live URL


async def test_redirects_are_answers_not_followed(cluster: ScriptedUpstream) -> None:
    cluster.script("/old", Canned(status=302, body=b"", headers={"Location": "/elsewhere"}))
    async with client(cluster.url) as up:
        reply = await up.fetch("GET", "/old", {})
    assert (reply.status, reply.headers["Location"]) == (302, "/elsewhere")
    assert [s.path for s in cluster.seen] == ["/old"]


async def test_fetch_decodes_gzip_unless_relaying(cluster: ScriptedUpstream) -> None:
    body = json.dumps({"hits": {"hits": []}, "pad": "x" * 2000}).encode()
    cluster.script("/docs/_search", Canned(body=body, gzip=True))
    asked = {"Accept-Encoding": "br, gzip;q=0.8, zstd"}
    async with client(cluster.url) as up:
        decoded = await up.fetch("POST", "/docs/_search", asked, b"{}")
        relayed = await up.fetch("POST", "/docs/_search", asked, b"{}", decode=False)
    assert decoded.body == body and "Content-Encoding" not in decoded.headers
    # Only what fetch can decode is offered when it decodes.
    assert cluster.seen[0].headers["Accept-Encoding"] == "gzip;q=0.8"
    assert relayed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(relayed.body) == body
    assert cluster.seen[1].headers["Accept-Encoding"] == asked["Accept-Encoding"]


async def test_a_corrupt_gzip_body_is_the_clusters_fault(cluster: ScriptedUpstream) -> None:
    headers = {**JSON, "Content-Encoding": "gzip"}
    cluster.script("/docs/_search", Canned(body=b"not gzip at all", headers=headers))
    async with client(cluster.url) as up:
        with pytest.raises(UpstreamUnavailable, match="corrupt"):
            await up.fetch("POST", "/docs/_search", {}, b"{}")


async def test_a_timeout_is_a_504_and_no_failover(cluster: ScriptedUpstream) -> None:
    gate = Gate()
    cluster.behaviour = gate
    async with (
        ScriptedUpstream(DOCS) as second,
        client(cluster.url, second.url, timeout_s=0.2) as up,
    ):
        with pytest.raises(UpstreamTimeout) as caught:
            await up.fetch("POST", "/docs/_search", JSON, b"{}")
        gate.open()
    assert caught.value.status == 504
    assert isinstance(caught.value.__cause__, TimeoutError)
    # The request had been sent: trying it again elsewhere could run it twice.
    assert second.seen == []
    assert up.pool.dead() == []


async def test_a_cut_answer_is_a_502_and_no_failover(cluster: ScriptedUpstream) -> None:
    cluster.behaviour = reset_mid_body()
    async with ScriptedUpstream(DOCS) as second, client(cluster.url, second.url) as up:
        with pytest.raises(UpstreamUnavailable, match="broke off") as caught:
            await up.fetch("POST", "/docs/_search", JSON, b"{}")
    assert caught.value.status == 502
    assert isinstance(caught.value.__cause__, aiohttp.ClientError)
    assert second.seen == [] and up.pool.dead() == []


async def test_nothing_reachable_is_a_502_naming_no_url() -> None:
    first, second = nowhere(), nowhere()
    async with client(first, second) as up:
        with pytest.raises(UpstreamUnavailable) as caught:
            await up.fetch("GET", "/", {})
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)
    assert "127.0.0.1" not in str(caught.value)
    assert up.pool.dead() == [first, second]


async def test_a_cancelled_call_stays_cancelled(cluster: ScriptedUpstream) -> None:
    gate = Gate()
    cluster.behaviour = gate
    async with client(cluster.url) as up:
        task = asyncio.create_task(up.fetch("POST", "/docs/_search", JSON, b"{}"))
        await gate.entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.open()
    assert up.pool.dead() == []


async def test_failover_backoff_and_return(cluster: ScriptedUpstream) -> None:
    """Refused: the next URL takes the request; the dead one is skipped for a back-off
    that doubles per failure in a row, then probed first, and used again once it answers."""
    async with ScriptedUpstream(DOCS) as second:
        await cluster.close()  # its port now refuses
        clock = Clock()
        async with client(cluster.url, second.url) as up:
            up.pool = UrlPool(up.pool.urls, backoff_s=1.0, max_backoff_s=8.0, clock=clock)

            async def search() -> int:
                reply = await up.fetch("POST", "/docs/_search", JSON, b'{"size": 1}')
                return reply.status

            assert await search() == 200  # refused by the first, answered by the second
            assert up.pool.dead() == [cluster.url] and len(second.seen) == 1
            clock.now = 1000.5
            assert up.pool.order() == [second.url, cluster.url]  # backing off for 1 s
            clock.now = 1001.0
            assert await search() == 200  # probed first, refused again, failed over
            assert len(second.seen) == 2
            clock.now = 1002.5  # two failures in a row: 2 s from the probe
            assert up.pool.order() == [second.url, cluster.url]
            await cluster.start()  # back on the same port
            clock.now = 1003.0
            assert await search() == 200
            assert [s.path for s in cluster.seen] == ["/docs/_search"]
            assert up.pool.dead() == []
            assert up.pool.order() == [cluster.url, second.url]


async def test_a_large_body_goes_whole_to_the_next_url(cluster: ScriptedUpstream) -> None:
    """Bodies over 1 MiB go as a stream, made again for each attempt."""
    body = b'{"index":{}}\n' + b'{"text": "' + b"y" * (3 << 20) + b'"}\n'
    async with client(nowhere(), cluster.url) as up:
        reply = await up.fetch(
            "POST", "/docs/_bulk", {"Content-Type": "application/x-ndjson"}, body
        )
    assert reply.status == 200
    assert cluster.last("/docs/_bulk").body == body


async def test_a_streamed_answer_is_forwarded_as_sent(cluster: ScriptedUpstream) -> None:
    payload = bytes(range(256)) * 1024
    cluster.script(
        "/big", Canned(body=payload, headers={"Content-Type": "application/x"}, chunks=8)
    )
    async with client(cluster.url) as up, up.open("GET", "/big", {}) as reply:
        assert reply.status == 200 and reply.content_length is None  # chunked
        chunks = [chunk async for chunk in up.stream(reply, 16 * 1024)]
    assert b"".join(chunks) == payload
    assert len(chunks) > 1 and all(len(c) <= 16 * 1024 for c in chunks)


async def test_a_stream_cut_midway_is_the_gateways_error(cluster: ScriptedUpstream) -> None:
    cluster.behaviour = reset_mid_body()
    async with client(cluster.url) as up, up.open("GET", "/docs/_doc/1", {}) as reply:
        assert reply.status == 200  # the headers came
        with pytest.raises(UpstreamUnavailable, match="broke off"):
            async for _ in up.stream(reply, 1024):
                pass


@pytest.mark.parametrize("path", ["/docs/../_cluster", "/docs/..%2f_nodes", "/docs/%252e%252e/x"])
async def test_paths_cannot_climb_out_of_the_base_url(cluster: ScriptedUpstream, path: str) -> None:
    async with client(cluster.url + "/prefix") as up:
        with pytest.raises(ClientRequestError):
            await up.fetch("GET", path, {})
    assert cluster.seen == []


async def test_no_cookie_rides_from_one_answer_to_the_next_request(
    cluster: ScriptedUpstream,
) -> None:
    cluster.script("/login", Canned(headers={**JSON, "Set-Cookie": "session=alice; Path=/"}))
    # By name: a cookie jar keeps no cookies of a bare IP address anyway.
    async with client(cluster.url.replace("127.0.0.1", "localhost")) as up:
        await up.fetch("GET", "/login", {})
        await up.fetch("GET", "/docs/_doc/1", {})
    assert "Cookie" not in cluster.last("/docs/_doc/1").headers


async def test_the_gateways_credential_replaces_the_clients(cluster: ScriptedUpstream) -> None:
    base = cluster.url.replace("http://", "http://gw%40user:p%3Ass@")
    async with client(base) as up:
        # A CIMultiDict, as aiohttp hands the handlers a request's headers.
        sent = up.outgoing_headers(
            CIMultiDict(
                {
                    "Authorization": "Basic Y2xpZW50OnNlY3JldA==",
                    "X-Gateway-Api-Key": "the client's key to the gateway",
                    "Connection": "keep-alive, X-Hop",
                    "X-Hop": "1",
                    "Content-Encoding": "gzip",
                    "X-Opaque-Id": "abc",
                }
            )
        )
        await up.fetch("GET", "/docs/_doc/1", sent)
    seen = cluster.last("/docs/_doc/1").headers
    assert seen["Authorization"] == "Basic Z3dAdXNlcjpwOnNz"  # gw@user:p:ss
    assert seen["X-Opaque-Id"] == "abc"
    for gone in ("X-Gateway-Api-Key", "X-Hop", "Content-Encoding"):
        assert gone not in seen


async def test_probe_learns_the_flavor_and_adapts_media_types() -> None:
    async with ScriptedUpstream(DOCS, flavor="opensearch") as cluster, client(cluster.url) as up:
        assert up.flavor == "auto"
        assert await up.probe() == "opensearch"
        sent = up.outgoing_headers(
            {"Content-Type": "application/vnd.elasticsearch+x-ndjson; compatible-with=8"}
        )
    assert sent["Content-Type"] == "application/x-ndjson"


async def test_probe_of_nothing_is_none() -> None:
    async with client(nowhere()) as up:
        assert await up.probe() is None
