"""Test doubles for fault injection: a scriptable upstream, a black-hole TCP server, a Redis.

``ScriptedUpstream`` answers like a small Elasticsearch (``GET /`` and
``_search`` over a fixed corpus) unless a test sets ``behaviour``: any aiohttp
handler, e.g. ``answer(503, ...)``, ``slow(2.0)``, ``reset_mid_body()``. Every
request it receives is recorded, so tests can check what the gateway sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import redis
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from gateway.settings import Settings
from ops.load import RedisServer
from tests.conftest import free_port

Behaviour = Callable[[web.Request], Awaitable[web.StreamResponse]]
ES_INFO = {
    "name": "scripted",
    "cluster_name": "scripted",
    "version": {"number": "8.15.0", "build_flavor": "default"},
    "tagline": "You Know, for Search",
}
# Upstream (BM25-like) order: d0 first. The fake model prefers documents sharing query words.
DOCS = [
    {"_id": f"d{i}", "title": f"document {i}", "text": text}
    for i, text in enumerate(
        [
            "nothing relevant here",
            "weather report for tuesday",
            "berlin population is about 3.7 million",
            "recipes with potatoes",
            "berlin wall history",
            "football scores",
            "population of berlin and its districts berlin",
            "stock market news",
        ]
    )
]
QUERY = "berlin population"
FAKE_ORDER = ["d6", "d2", "d4"]  # what FakeEncoder puts first for QUERY


@dataclass(slots=True)
class Seen:
    method: str
    path_qs: str
    headers: CIMultiDict[str]
    body: bytes


def search_answer(body: dict[str, Any]) -> dict[str, Any]:
    """An ES ``_search`` response over ``DOCS`` honouring from/size."""
    from_, size = int(body.get("from", 0)), int(body.get("size", 10))
    hits = [
        {"_index": "docs", "_id": d["_id"], "_score": float(len(DOCS) - i), "_source": d}
        for i, d in enumerate(DOCS)
    ][from_ : from_ + size]
    return {
        "took": 3,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {
            "total": {"value": len(DOCS), "relation": "eq"},
            "max_score": hits[0]["_score"] if hits else None,
            "hits": hits,
        },
    }


def es_json(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, headers={"X-Elastic-Product": "Elasticsearch"})


class ScriptedUpstream:
    def __init__(self) -> None:
        self.behaviour: Behaviour | None = None
        self.seen: list[Seen] = []
        self._server: TestServer | None = None
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen (again, after ``close``) on the same port."""
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server = TestServer(app, host="127.0.0.1", port=self.port)
        await self._server.start_server()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.raw_path, CIMultiDict(request.headers), body))
        if request.path == "/" and request.method in ("GET", "HEAD"):
            return es_json(ES_INFO)
        if self.behaviour is not None:
            return await self.behaviour(request)
        return await default_answer(request, body)

    def searches(self) -> list[Seen]:
        return [s for s in self.seen if "_search" in s.path_qs]


async def default_answer(request: web.Request, body: bytes) -> web.StreamResponse:
    if request.path.endswith("/_search"):
        return es_json(search_answer(json.loads(body) if body else {}))
    return es_json({"acknowledged": True, "path": request.raw_path})


def answer(status: int, body: bytes, content_type: str = "application/json") -> Behaviour:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body, content_type=content_type)

    return handler


def slow(seconds: float) -> Behaviour:
    async def handler(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return await default_answer(request, await request.read())

    return handler


def reset_mid_body() -> Behaviour:
    """Headers promise 10 kB, a few bytes follow, then the connection is cut."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.content_length = 10_000
        await response.prepare(request)
        await response.write(b'{"took": 1, "hits": {"hits": [')
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.abort()
        return response

    return handler


class BlackHole:
    """A TCP server that accepts connections and never answers (a hung Redis)."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._writers.append(writer)  # kept open, never written to

        self._server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class OwnRedis(RedisServer):
    """A private redis-server on a free port that tests may stop and restart."""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def keys(self) -> int:
        client = redis.Redis(port=self.port)
        try:
            return int(client.dbsize())
        finally:
            client.close()


@dataclass(slots=True)
class Answer:
    status: int
    headers: CIMultiDict[str]
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw)

    def es_error(self) -> str:
        """The ``error.type`` of an ES-shaped error body (asserting the shape)."""
        body = self.json()
        assert body["status"] == self.status
        assert all(isinstance(cause["type"], str) for cause in body["error"]["root_cause"])
        assert isinstance(body["error"]["reason"], str)
        return str(body["error"]["type"])

    def ids(self) -> list[str]:
        return [h["_id"] for h in self.json()["hits"]["hits"]]


async def send(
    method: str,
    url: str,
    body: Any = None,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request with a fresh client; JSON ``body`` or raw ``data``."""
    sent = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=data, headers=sent) as response,
    ):
        return Answer(response.status, CIMultiDict(response.headers), await response.read())


def settings_for(urls: str | list[str], **sections: dict[str, Any]) -> Settings:
    """Settings with extra keys in the upstream section too (``make_settings`` can't)."""
    values: dict[str, Any] = {k: dict(v) for k, v in sections.items()}
    values.setdefault("upstream", {})["urls"] = [urls] if isinstance(urls, str) else urls
    return Settings.model_validate(values)
