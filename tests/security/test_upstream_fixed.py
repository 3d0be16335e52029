"""Nothing in a request reaches another host or climbs out of the upstream's base path.

Requests are written on a raw socket where the shape matters (absolute-form
targets, ``Host`` tricks, smuggling framings); the scripted upstream records
what actually arrived.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.model.fake import FakeEncoder
from tests.doubles.gateway import GatewayFactory, settings_with
from tests.doubles.net import raw_connection
from tests.doubles.upstream import ScriptedUpstream, call


async def exchange(url: str, data: bytes) -> bytes:
    """Write ``data`` on a fresh connection; everything read back until close or 3 s."""
    out = b""
    async with raw_connection(url, data) as reader:
        try:
            async with asyncio.timeout(3):
                while chunk := await reader.read(65536):
                    out += chunk
        except TimeoutError:
            pass
    return out


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


@pytest.fixture
async def prefixed(scripted: ScriptedUpstream, gateway: GatewayFactory) -> str:
    """A gateway whose upstream lives under ``/prefix``."""
    return await gateway(settings_with([scripted.url + "/prefix"]), encoder=FakeEncoder())


def forwarded(scripted: ScriptedUpstream) -> list[str]:
    return [s.path_qs for s in scripted.seen if s.path_qs != "/prefix/"]


@pytest.mark.parametrize(
    "target",
    [
        b"http://evil.example/docs/_doc/1",
        b"https://127.0.0.2:1/docs/_doc/1",
        b"//evil.example/docs",
    ],
)
async def test_absolute_and_authority_targets_stay_upstream(
    scripted: ScriptedUpstream, prefixed: str, target: bytes
) -> None:
    scripted.seen.clear()
    raw = await exchange(
        prefixed, b"GET " + target + b" HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    )
    assert status_of(raw) in (200, 400)
    for seen in scripted.seen:  # whatever arrived, arrived here, under the prefix
        assert seen.path_qs.startswith("/prefix/")
        assert seen.headers["Host"] == f"127.0.0.1:{scripted.port}"


@pytest.mark.parametrize(
    "path",
    [
        "/../x",
        "/a/../../x",
        "/%2e%2e/x",
        "/.%2E/x",
        "/..%2f..%2fx",
        "/docs%2f..%2f..%2fx/_search",
        "/%252e%252e/x",
        "/..%5cx",
        "/docs/_doc/..",
        "/./docs/_search",
        "/../_search",
    ],
)
async def test_dot_segments_are_refused(
    scripted: ScriptedUpstream, prefixed: str, path: str
) -> None:
    scripted.seen.clear()
    raw = await exchange(
        prefixed, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    assert status_of(raw) == 400
    assert b"illegal_argument_exception" in raw
    assert forwarded(scripted) == []


async def test_ordinary_paths_keep_the_prefix(scripted: ScriptedUpstream, prefixed: str) -> None:
    for path in ("/docs/_doc/1", "/.kibana/_doc/a..b", "/docs/_doc/%2Fslash", "/_cat/indices?v"):
        scripted.seen.clear()
        got = await call("GET", prefixed + path)
        assert got.status == 200
        assert forwarded(scripted) == ["/prefix" + path]


async def test_hop_by_hop_and_proxy_headers(scripted: ScriptedUpstream, prefixed: str) -> None:
    scripted.seen.clear()
    raw = await exchange(
        prefixed,
        b"GET /docs/_doc/1 HTTP/1.1\r\nHost: evil.example\r\n"
        b"Connection: close, X-Private\r\nX-Private: 1\r\nKeep-Alive: timeout=5\r\n"
        b"Proxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n"
        b"Upgrade: h2c\r\nX-Gateway-Api-Key: not-for-upstream\r\nX-Kept: yes\r\n\r\n",
    )
    assert status_of(raw) == 200
    headers = scripted.seen[-1].headers
    for name in ("X-Private", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "TE",
                 "Upgrade", "X-Gateway-Api-Key"):  # fmt: skip
        assert name not in headers, name
    assert headers["X-Kept"] == "yes"
    assert headers["Host"] == f"127.0.0.1:{scripted.port}"


async def test_hop_by_hop_response_headers_dropped(
    scripted: ScriptedUpstream, prefixed: str
) -> None:
    from aiohttp import web

    async def leaky(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=b"{}",
            content_type="application/json",
            headers={"Connection": "X-Internal", "X-Internal": "1", "Proxy-Authenticate": "x"},
        )

    scripted.behaviour = leaky
    got = await call("GET", f"{prefixed}/docs/_doc/1")
    assert got.status == 200
    assert "X-Internal" not in got.headers
    assert "Proxy-Authenticate" not in got.headers


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n",
        b"Content-Length: %d\r\nContent-Length: 0\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        b"Transfer-Encoding: xchunked\r\n",
        b"Transfer-Encoding : chunked\r\n",
        b"Transfer-Encoding: chunked, identity\r\n",
        b"Content-Length: +%d\r\n",
        b"Content-Length: %d, 0\r\n",
    ],
)
async def test_smuggling_shapes_rejected(
    scripted: ScriptedUpstream, prefixed: str, head: bytes
) -> None:
    body = b"0\r\n\r\n" + SMUGGLED
    if b"%d" in head:
        head = head % len(body)
    scripted.seen.clear()
    raw = await exchange(
        prefixed, b"POST /docs/_search HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n" + body
    )
    assert status_of(raw) == 400
    assert raw.count(b"HTTP/1.") == 1  # one answer: nothing smuggled behind it
    assert forwarded(scripted) == []


async def test_pipelined_requests_stay_separate(scripted: ScriptedUpstream, prefixed: str) -> None:
    """A well-framed body that looks like a request is a body, never a second request."""
    body = SMUGGLED
    scripted.seen.clear()
    raw = await exchange(
        prefixed,
        b"POST /docs/_doc/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body,
    )
    assert status_of(raw) == 200
    assert forwarded(scripted) == ["/prefix/docs/_doc/1"]
    assert scripted.seen[-1].body == body
