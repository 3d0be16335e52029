"""The search cluster misbehaves: every client gets the cluster's answer or an ES-shaped error.

For each fault: what the client receives, then that the next request after the
fault is gone is served correctly (reranked, in the fake model's order).
"""

from __future__ import annotations

import gzip
import logging

import aiohttp
import pytest

from gateway.model.fake import FakeEncoder
from tests.doubles.corpora import POPULATION_FAKE_ORDER as FAKE_ORDER
from tests.doubles.corpora import POPULATION_QUERY as QUERY
from tests.doubles.gateway import GatewayFactory, settings_with
from tests.doubles.net import Unconnectable, free_port
from tests.doubles.upstream import Answer, Canned, ScriptedUpstream, call, reset_mid_body, slow
from tests.doubles.waits import wait_for

SEARCH = {"query": {"match": {"text": QUERY}}, "size": 3}


async def start(gateway: GatewayFactory, upstream_url: str) -> str:
    settings = settings_with([upstream_url], upstream={"timeout_s": 1.0}, rerank={"window": 8})
    return await gateway(settings, encoder=FakeEncoder())


async def assert_recovered(url: str) -> None:
    got = await call("POST", f"{url}/docs/_search", SEARCH)
    assert got.status == 200
    assert got.headers["X-Rerank"] == "full"
    assert got.ids() == FAKE_ORDER
    doc = await call("GET", f"{url}/docs/_doc/d1")
    assert doc.status == 200


async def test_refused_then_back(scripted: ScriptedUpstream, gateway: GatewayFactory) -> None:
    url = await start(gateway, scripted.url)
    await assert_recovered(url)
    await scripted.close()
    for got in (
        await call("POST", f"{url}/docs/_search", SEARCH),
        await call("GET", f"{url}/docs/_doc/d1"),
    ):
        assert got.status == 502
        assert got.es_error() == "upstream_unavailable_exception"
        assert got.headers["X-Elastic-Product"] == "Elasticsearch"
    await scripted.start()
    await assert_recovered(url)


async def test_never_listening_gives_502(gateway: GatewayFactory) -> None:
    url = await start(gateway, f"http://127.0.0.1:{free_port()}")
    got = await call("POST", f"{url}/docs/_search", SEARCH)
    assert got.status == 502
    assert got.es_error() == "upstream_unavailable_exception"
    assert "127.0.0.1" not in got.body.decode()  # no internals in the body


async def test_failover_to_second_url(scripted: ScriptedUpstream, gateway: GatewayFactory) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    settings = settings_with([dead, scripted.url], rerank={"window": 8})
    url = await gateway(settings, encoder=FakeEncoder())
    await assert_recovered(url)


async def test_reset_mid_body(scripted: ScriptedUpstream, gateway: GatewayFactory) -> None:
    url = await start(gateway, scripted.url)
    scripted.behaviour = reset_mid_body()
    got = await call("POST", f"{url}/docs/_search", SEARCH)
    assert got.status == 502
    assert got.es_error() == "upstream_unavailable_exception"
    # A passthrough answer is streamed: its headers are gone when the cut comes, so the
    # client must see a broken transfer, never a short body passed off as complete.
    with pytest.raises(aiohttp.ClientPayloadError):
        await call("GET", f"{url}/docs/_doc/d1")
    scripted.behaviour = None
    await assert_recovered(url)


async def test_slow_past_timeout(scripted: ScriptedUpstream, gateway: GatewayFactory) -> None:
    url = await start(gateway, scripted.url)
    scripted.behaviour = slow(2.5)
    for got in (
        await call("POST", f"{url}/docs/_search", SEARCH),
        await call("GET", f"{url}/docs/_doc/d1"),
    ):
        assert got.status == 504
        assert got.es_error() == "upstream_timeout_exception"
    scripted.behaviour = None
    await assert_recovered(url)


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_error_status_verbatim(
    scripted: ScriptedUpstream, gateway: GatewayFactory, status: int
) -> None:
    url = await start(gateway, scripted.url)
    body = b'{"error":{"type":"es_rejected_execution_exception","reason":"queue full"},"status":%d}'
    scripted.behaviour = Canned(status=status, body=body % status)
    search = await call("POST", f"{url}/docs/_search", SEARCH)
    passthrough = await call("GET", f"{url}/docs/_doc/d1")
    for got in (search, passthrough):
        assert (got.status, got.body) == (status, body % status)
    assert search.headers["X-Rerank"] == "skipped"
    assert search.headers["X-Rerank-Reason"] == "upstream_status"
    scripted.behaviour = None
    await assert_recovered(url)


@pytest.mark.parametrize(
    "raw", [b"", b"{not json", b"[1, 2]", b'{"hits": "oops"}', b'{"hits": {"hits": [1, null]}}']
)
async def test_unusable_2xx_body(
    scripted: ScriptedUpstream, gateway: GatewayFactory, raw: bytes
) -> None:
    url = await start(gateway, scripted.url)
    scripted.behaviour = Canned(body=raw)
    got = await call("POST", f"{url}/docs/_search", SEARCH)
    assert got.status < 500, got.body
    assert got.headers["X-Rerank"] == "skipped"
    if got.status == 200:
        assert got.body == raw  # not parseable as a search answer: relayed untouched
    scripted.behaviour = None
    await assert_recovered(url)


async def test_corrupt_gzip_body(scripted: ScriptedUpstream, gateway: GatewayFactory) -> None:
    url = await start(gateway, scripted.url)

    async def corrupt(request: object) -> aiohttp.web.StreamResponse:
        good = gzip.compress(b'{"hits": {"hits": []}}')
        return aiohttp.web.Response(
            body=good[:12] + b"garbage" + good[12:],
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    scripted.behaviour = corrupt
    got: Answer = await call("POST", f"{url}/docs/_search", SEARCH)
    assert got.status == 502
    assert got.es_error() == "upstream_unavailable_exception"
    scripted.behaviour = None
    await assert_recovered(url)


async def test_no_cookie_passes_between_clients(
    scripted: ScriptedUpstream, gateway: GatewayFactory
) -> None:
    # By a host name: aiohttp's default cookie jar ignores cookies from IP-address hosts.
    url = await start(gateway, f"http://localhost:{scripted.port}")
    set_cookie = {"Content-Type": "application/json", "Set-Cookie": "session=client-a; Path=/"}
    scripted.script("/docs/_doc/d1", Canned(body=b'{"found": true}', headers=set_cookie))
    first = await call("GET", f"{url}/docs/_doc/d1")
    assert first.headers["Set-Cookie"] == "session=client-a; Path=/"  # client A's, relayed
    await call("GET", f"{url}/docs/_doc/d2")
    await assert_recovered(url)
    assert len(scripted.seen) >= 4
    assert [s.headers.get("Cookie") for s in scripted.seen] == [None] * len(scripted.seen)


async def failover_start(gateway: GatewayFactory, urls: list[str], **upstream: float) -> str:
    settings = settings_with(
        urls, upstream={"connect_timeout_s": 0.5, **upstream}, rerank={"window": 8}
    )
    return await gateway(settings, encoder=FakeEncoder())


def unreachable_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "unreachable" in r.getMessage()]


async def test_connect_timeout_fails_over(
    unconnectable: Unconnectable,
    scripted: ScriptedUpstream,
    gateway: GatewayFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.upstream.failover")
    url = await failover_start(gateway, [unconnectable.url, scripted.url], dead_backoff_s=60)
    for _ in range(3):
        await assert_recovered(url)
    # Marked dead once (at the start-up probe), then never tried again within its back-off.
    (dead,) = unreachable_logs(caplog)
    assert dead.levelno == logging.WARNING
    assert "ConnectionTimeoutError" in dead.getMessage()


async def test_dns_failure_fails_over(
    scripted: ScriptedUpstream, gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # RFC 6761: .invalid never resolves, and the resolver says so without asking anyone.
    url = await failover_start(gateway, ["http://nonexistent.invalid:9200", scripted.url])
    await assert_recovered(url)
    (dead,) = unreachable_logs(caplog)
    assert "ClientConnectorDNSError" in dead.getMessage()


async def test_dead_url_is_tried_again_after_its_backoff(
    scripted: ScriptedUpstream, gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.upstream.failover")
    primary = ScriptedUpstream(scripted.docs)  # not started: refuses connections
    # The back-off is 0.2 s however often the primary failed meanwhile (the cap).
    backoff = {"dead_backoff_s": 0.2, "dead_backoff_max_s": 0.2}
    url = await failover_start(gateway, [primary.url, scripted.url], **backoff)
    await assert_recovered(url)
    assert primary.seen == []
    async with primary:

        async def tried_again() -> bool:  # once its back-off has passed
            await assert_recovered(url)
            return any(s.path == "/docs/_search" for s in primary.seen)

        await wait_for(tried_again, what="the first URL tried again")
        assert primary.last("/docs/_search").json()["size"] == 8  # back to the first URL
    assert any("answers again" in r.getMessage() for r in caplog.records)
