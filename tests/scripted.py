"""Scripted HTTP servers for tests where a real cluster cannot do the job.

``ScriptedCluster`` speaks just enough of Elasticsearch (``GET /``, ``_search``,
anything else) to see what the gateway sends upstream (headers, order of
requests) and to hold searches back on purpose (``hold``). ``start_app`` runs any aiohttp app
on a free loopback port.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from gateway.settings import Settings
from tests.conftest import free_port

DOCS = [
    {"_id": "d1", "title": "Paris", "text": "Paris is the capital of France."},
    {"_id": "d2", "title": "Berlin", "text": "Berlin is the capital of Germany."},
    {"_id": "d3", "title": "Rome", "text": "Rome is the capital of Italy and a city."},
]


@dataclass
class ScriptedCluster:
    """An Elasticsearch look-alike that records what reaches it."""

    product: str = "Elasticsearch"
    distribution: str | None = None
    hold: asyncio.Event | None = None  # searches wait for it when set
    search_started: asyncio.Event = field(default_factory=asyncio.Event)
    seen: list[tuple[str, str, CIMultiDict[str]]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._info)
        app.router.add_route("*", "/{index}/_search", self._search)
        app.router.add_route("*", "/{tail:.*}", self._other)
        return app

    def headers_of(self, path_suffix: str) -> list[CIMultiDict[str]]:
        return [h for _, path, h in self.seen if path.endswith(path_suffix)]

    def _record(self, request: web.Request) -> None:
        self.seen.append((request.method, request.path, CIMultiDict(request.headers)))

    def _headers(self) -> dict[str, str]:
        return {"X-Elastic-Product": self.product} if self.product else {}

    async def _info(self, request: web.Request) -> web.Response:
        self._record(request)
        version: dict[str, Any] = {"number": "8.15.0"}
        if self.distribution:
            version = {"number": "2.17.0", "distribution": self.distribution}
        return web.json_response({"version": version}, headers=self._headers())

    async def _search(self, request: web.Request) -> web.Response:
        self._record(request)
        self.search_started.set()
        if self.hold is not None:
            await self.hold.wait()
        hits = [
            {
                "_index": request.match_info["index"],
                "_id": d["_id"],
                "_score": 3.0 - i,
                "_source": {"title": d["title"], "text": d["text"]},
            }
            for i, d in enumerate(DOCS)
        ]
        body = {
            "took": 1,
            "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {
                "total": {"value": len(hits), "relation": "eq"},
                "max_score": 3.0,
                "hits": hits,
            },
        }
        return web.json_response(body, headers=self._headers())

    async def _other(self, request: web.Request) -> web.Response:
        self._record(request)
        return web.Response(
            body=json.dumps({"acknowledged": True}).encode(),
            content_type="application/json",
            headers=self._headers(),
        )


async def start_app(app: web.Application, port: int | None = None) -> TestServer:
    server = TestServer(app, host="127.0.0.1", port=port or free_port())
    await server.start_server()
    return server


def url_of(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@asynccontextmanager
async def running_cluster(**options: Any) -> AsyncIterator[tuple[ScriptedCluster, str]]:
    """A ``ScriptedCluster(**options)`` served on a free port; its held searches are let go
    at the end."""
    script = ScriptedCluster(**options)
    server = await start_app(script.app())
    try:
        yield script, url_of(server)
    finally:
        if script.hold is not None:
            script.hold.set()
        await server.close()


def settings_with(urls: list[str], **sections: dict[str, Any]) -> Settings:
    """Like ``make_settings``, with the upstream section open too (auth, TLS, failover)."""
    upstream = {"urls": urls, **sections.pop("upstream", {})}
    return Settings.model_validate({"upstream": upstream, **sections})
