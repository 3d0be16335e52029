"""The whole app (FakeEncoder) in front of a scripted upstream that records every request.

``Scripted`` answers like a small Elasticsearch: ``GET /`` with product info,
``_search`` with hits over ``DOCS`` (upstream order = list order, honouring
from/size and ``fields``), ``_msearch`` sub-search by sub-search, and a JSON
echo for anything else. ``script(path, Canned(...))`` overrides one path's
answer (status, exact bytes, headers, delay, gzip).
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.model.fake import FakeEncoder
from gateway.settings import Settings
from tests.conftest import GatewayFactory, free_port

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


@dataclass
class Seen:
    method: str
    path_qs: str
    headers: CIMultiDictProxy[str]
    body: bytes

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


def hits_for(body: dict[str, Any], params: Any) -> dict[str, Any]:
    """What a cluster answers to a ``_search`` body over ``DOCS``."""
    start = int(params.get("from", body.get("from", 0)))
    size = int(params.get("size", body.get("size", 10)))
    wanted = [f for f in body.get("fields", []) if isinstance(f, str)]
    hits = []
    for rank, doc in enumerate(DOCS[start : start + size], start=start):
        source = {k: v for k, v in doc.items() if k != "_id"}
        h: dict[str, Any] = {
            "_index": "docs",
            "_id": doc["_id"],
            "_score": 10.0 - rank,
            "_source": source,
        }
        got = {f: [source[f]] for f in wanted if f in source}
        if got:
            h["fields"] = got
        hits.append(h)
    return {
        "took": 2,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": len(DOCS), "relation": "eq"}, "max_score": 10.0, "hits": hits},
    }


class Scripted:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.canned: dict[str, Canned] = {}
        self.server: TestServer | None = None

    def script(self, path: str, canned: Canned) -> None:
        self.canned[path] = canned

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def last(self, path: str | None = None) -> Seen:
        found = [s for s in self.seen if path is None or s.path_qs.split("?")[0] == path]
        assert found, f"nothing reached the upstream at {path}"
        return found[-1]

    async def start(self) -> None:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app, host="127.0.0.1", port=free_port(), auto_decompress=False)
        await self.server.start_server()

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.raw_path, request.headers, body))
        canned = self.canned.get(request.path)
        if canned is None:
            canned = self._default(request, body)
        if canned.delay_s:
            await asyncio.sleep(canned.delay_s)
        headers = dict(canned.headers)
        payload = canned.body
        if canned.gzip and "gzip" in request.headers.get("Accept-Encoding", ""):
            payload = gzip.compress(payload)
            headers["Content-Encoding"] = "gzip"
        if not canned.chunks:
            return web.Response(status=canned.status, body=payload, headers=headers)
        response = web.StreamResponse(status=canned.status, headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        step = -(-len(payload) // canned.chunks)
        for i in range(0, len(payload), step):
            await response.write(payload[i : i + step])
        await response.write_eof()
        return response

    def _default(self, request: web.Request, body: bytes) -> Canned:
        try:
            return self._answer(request, body)
        except (ValueError, TypeError):
            error = {"error": {"type": "parsing_exception"}, "status": 400}
            return Canned(status=400, body=json.dumps(error).encode())

    def _answer(self, request: web.Request, body: bytes) -> Canned:
        product = {"Content-Type": "application/json", "X-Elastic-Product": "Elasticsearch"}
        if request.path == "/":
            info = {"version": {"number": "8.15.0"}, "tagline": "You Know, for Search"}
            return Canned(body=json.dumps(info).encode(), headers=product)
        if request.path.endswith("/_search"):
            parsed = json.loads(body) if body else {}
            return Canned(
                body=json.dumps(hits_for(parsed, request.query)).encode(), headers=product
            )
        if request.path.endswith("/_msearch"):
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            answers = [{**hits_for(sub, {}), "status": 200} for sub in lines[1::2]]
            return Canned(
                body=json.dumps({"took": 3, "responses": answers}).encode(), headers=product
            )
        echo = {"method": request.method, "path": request.raw_path, "length": len(body)}
        return Canned(body=json.dumps(echo).encode(), headers=product)


@pytest.fixture
async def upstream() -> AsyncIterator[Scripted]:
    scripted = Scripted()
    await scripted.start()
    yield scripted
    await scripted.close()


Start = Callable[..., Awaitable[str]]


@pytest.fixture
def start(upstream: Scripted, gateway: GatewayFactory) -> Start:
    """``url = await start(upstream={...}, rerank={...}, ...)``: the gateway with FakeEncoder."""

    async def run(**sections: dict[str, Any]) -> str:
        defaults = {
            "upstream": {"urls": [upstream.url], "flavor": "elasticsearch"},
            "rerank": {"window": 5},
        }
        for name, section in defaults.items():
            sections[name] = {**section, **sections.get(name, {})}
        return await gateway(Settings.model_validate(sections), encoder=FakeEncoder())

    return run


@dataclass
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def ids(self) -> list[str]:
        return [h["_id"] for h in self.json()["hits"]["hits"]]


async def call(
    method: str,
    url: str,
    *,
    body: Any = None,
    data: bytes | io.BytesIO | None = None,
    headers: dict[str, str] | None = None,
    auto_decompress: bool = True,
) -> Answer:
    """One request with a fresh client session (no pooled state between tests)."""
    all_headers = CIMultiDict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    async with (
        aiohttp.ClientSession(auto_decompress=auto_decompress) as session,
        session.request(method, url, data=data, headers=all_headers) as resp,
    ):
        return Answer(resp.status, resp.headers, await resp.read())
