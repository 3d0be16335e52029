"""Helpers for tests where a real cluster cannot do the job.

``DOCS`` is a three-document corpus (capitals) for ``tests.upstream.ScriptedUpstream``,
the scripted cluster. ``start_app`` runs any other aiohttp app (a scripted model
server) on a free loopback port; ``settings_with`` builds settings with the
upstream section open.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.settings import Settings
from tests.conftest import free_port

# Upstream order d1, d2, d3; for "capital of Italy" a reranker puts Rome (d3) first.
DOCS = [
    {"_id": "d1", "title": "Paris", "text": "Paris is the capital of France."},
    {"_id": "d2", "title": "Berlin", "text": "Berlin is the capital of Germany."},
    {"_id": "d3", "title": "Rome", "text": "Rome is the capital of Italy and a city."},
]


async def start_app(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1", port=free_port())
    await server.start_server()
    return server


def url_of(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


def settings_with(urls: list[str], **sections: dict[str, Any]) -> Settings:
    """Like ``make_settings``, with the upstream section open too (auth, TLS, failover)."""
    upstream = {"urls": urls, **sections.pop("upstream", {})}
    return Settings.model_validate({"upstream": upstream, **sections})
