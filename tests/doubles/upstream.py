"""A scripted upstream that records every request, and the one-request client for tests.

``ScriptedUpstream(docs)`` answers like a small Elasticsearch: ``GET /`` with
product info, ``_search`` with hits over ``docs`` (upstream order = list order,
honouring from/size and ``fields``), ``_msearch`` sub-search by sub-search, and
a JSON echo for anything else. Tests change that in two ways:
``script(path, Canned(...))`` for one path (status, exact bytes, headers, delay,
gzip, chunks), and ``behaviour`` for every path but the info at ``/`` (a
``Canned``, ``slow(s)``, ``reset_mid_body()``, a ``Gate`` or any aiohttp handler;
a handler returning ``None`` lets the default answer go). ``flavor="opensearch"``
answers ``GET /`` like OpenSearch and drops ``X-Elastic-Product``; ``tls`` serves
https. It listens on the same port again after ``close`` and ``start``, and
``async with ScriptedUpstream(docs) as upstream`` starts and closes it.

``call`` sends one request with a fresh client session and returns an ``Answer``;
``assert_degraded`` checks that a gateway whose model failed answers a search with the
cluster's own order.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy

from tests.doubles.net import free_port

Behaviour = Callable[[web.Request], Awaitable[web.StreamResponse | None]]
ES_INFO = {
    "name": "scripted",
    "cluster_name": "scripted",
    "version": {"number": "8.15.0", "build_flavor": "default"},
    "tagline": "You Know, for Search",
}
OS_INFO = {
    "name": "scripted",
    "cluster_name": "scripted",
    "version": {"distribution": "opensearch", "number": "2.17.0"},
    "tagline": "The OpenSearch Project: https://opensearch.org/",
}
PRODUCT = {"Content-Type": "application/json", "X-Elastic-Product": "Elasticsearch"}


@dataclass(slots=True)
class Seen:
    """One request as it reached the upstream (``body`` exactly as sent, never decoded)."""

    method: str
    path_qs: str
    headers: CIMultiDict[str]
    body: bytes

    @property
    def path(self) -> str:
        """``path_qs`` without the query."""
        return self.path_qs.split("?")[0]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Canned:
    """A scripted answer: exactly these bytes and headers, after ``delay_s``."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    delay_s: float = 0.0
    gzip: bool = False  # compressed when the request accepts gzip, like ES http.compression
    chunks: int = 0  # sent chunked (no Content-Length) in this many pieces

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        headers = dict(self.headers)
        payload = self.body
        if self.gzip and "gzip" in request.headers.get("Accept-Encoding", ""):
            payload = gzip.compress(payload)
            headers["Content-Encoding"] = "gzip"
        if not self.chunks:
            return web.Response(status=self.status, body=payload, headers=headers)
        response = web.StreamResponse(status=self.status, headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        step = -(-len(payload) // self.chunks)
        for i in range(0, len(payload), step):
            await response.write(payload[i : i + step])
        await response.write_eof()
        return response


def search_answer(docs: list[dict[str, Any]], body: dict[str, Any], params: Any) -> dict[str, Any]:
    """What a cluster answers to a ``_search`` over ``docs`` (from/size in params or body)."""
    start = int(params.get("from", body.get("from", 0)))
    size = int(params.get("size", body.get("size", 10)))
    wanted = [f for f in body.get("fields", []) if isinstance(f, str)]
    hits = []
    for rank, doc in enumerate(docs[start : start + size], start=start):
        source = {k: v for k, v in doc.items() if k != "_id"}
        hit: dict[str, Any] = {
            "_index": "docs",
            "_id": doc["_id"],
            "_score": float(len(docs) - rank),
            "_source": source,
        }
        got = {f: [source[f]] for f in wanted if f in source}
        if got:
            hit["fields"] = got
        hits.append(hit)
    return {
        "took": 2,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {
            "total": {"value": len(docs), "relation": "eq"},
            "max_score": hits[0]["_score"] if hits else None,
            "hits": hits,
        },
    }


class ScriptedUpstream:
    def __init__(
        self,
        docs: list[dict[str, Any]],
        *,
        flavor: Literal["elasticsearch", "opensearch"] = "elasticsearch",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.docs = docs
        self.flavor = flavor
        self.tls = tls
        self.behaviour: Behaviour | None = None
        self.scripts: dict[str, Behaviour] = {}
        self.seen: list[Seen] = []
        self.port = free_port()
        self._server: TestServer | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def script(self, path: str, answer: Behaviour) -> None:
        """Answer requests for ``path`` (decoded, no query) with ``answer``."""
        self.scripts[path] = answer

    def last(self, path: str | None = None) -> Seen:
        found = [s for s in self.seen if path is None or s.path == path]
        assert found, f"nothing reached the upstream at {path}"
        return found[-1]

    async def start(self) -> None:
        """Listen (again, after ``close``) on the same port."""
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server = TestServer(
            app,
            host="127.0.0.1",
            port=self.port,
            scheme="https" if self.tls else "http",
            auto_decompress=False,
        )
        await self._server.start_server(ssl=self.tls)

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.raw_path, CIMultiDict(request.headers), body))
        override = self.scripts.get(request.path)
        if override is None and not (request.path == "/" and request.method in ("GET", "HEAD")):
            override = self.behaviour
        if override is not None and (response := await override(request)) is not None:
            return response
        return await self._default(request, body)(request)

    def _default(self, request: web.Request, body: bytes) -> Canned:
        try:
            return self._answer(request, body)
        except (ValueError, TypeError):
            error = {"error": {"type": "parsing_exception"}, "status": 400}
            return Canned(status=400, body=json.dumps(error).encode())

    def _answer(self, request: web.Request, body: bytes) -> Canned:
        answer: Any
        if request.path == "/":
            answer = OS_INFO if self.flavor == "opensearch" else ES_INFO
        elif request.path.endswith("/_search"):
            parsed = json.loads(body) if body else {}
            answer = search_answer(self.docs, parsed, request.query)
        elif request.path.endswith("/_msearch"):
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            answers = [{**search_answer(self.docs, sub, {}), "status": 200} for sub in lines[1::2]]
            answer = {"took": 3, "responses": answers}
        else:
            echo = {"acknowledged": True, "method": request.method, "path": request.raw_path}
            answer = {**echo, "length": len(body)}
        # OpenSearch sends no product header.
        headers = (
            PRODUCT if self.flavor == "elasticsearch" else {"Content-Type": "application/json"}
        )
        return Canned(body=json.dumps(answer).encode(), headers=headers)


def slow(seconds: float) -> Behaviour:
    """The default answer, ``seconds`` late."""

    async def handler(request: web.Request) -> None:
        await asyncio.sleep(seconds)

    return handler


class Gate:
    """A behaviour that holds each request until ``open()``, then lets the default
    answer go; ``entered`` is set once a request waits. Open it before ``close``."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self._opened = asyncio.Event()

    def open(self) -> None:
        self._opened.set()

    async def __call__(self, request: web.Request) -> None:
        self.entered.set()
        await self._opened.wait()


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


@dataclass(slots=True)
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def ids(self) -> list[str]:
        return [h["_id"] for h in self.json()["hits"]["hits"]]

    def es_error(self) -> str:
        """The ``error.type`` of an ES-shaped error body (asserting the shape)."""
        body = self.json()
        assert body["status"] == self.status
        assert all(isinstance(cause["type"], str) for cause in body["error"]["root_cause"])
        assert isinstance(body["error"]["reason"], str)
        return str(body["error"]["type"])


async def call(
    method: str,
    url: str,
    body: Any = None,
    *,
    data: bytes | io.BytesIO | None = None,
    headers: dict[str, str] | None = None,
    auto_decompress: bool = True,
) -> Answer:
    """One request with a fresh client session (no pooled state between tests);
    JSON ``body`` or raw ``data``."""
    all_headers = CIMultiDict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    async with (
        aiohttp.ClientSession(auto_decompress=auto_decompress) as session,
        session.request(method, url, data=data, headers=all_headers) as response,
    ):
        return Answer(response.status, response.headers, await response.read())


async def assert_degraded(gateway_url: str, upstream_url: str, body: Any) -> None:
    """``body`` searched through the gateway: not reranked (``model_error``), and in the
    order the cluster itself answers it in."""
    down = await call("POST", f"{gateway_url}/docs/_search", body)
    assert down.headers["X-Rerank"] == "skipped"
    assert down.headers["X-Rerank-Reason"] == "model_error"
    bare = await call("POST", f"{upstream_url}/docs/_search", body)
    assert down.ids() == bare.ids()  # the cluster's own order
