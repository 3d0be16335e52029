"""The ``/_gateway`` sub-app alone: its routes, state read from the main app, and that
every path under the prefix stays with it (never the main app's catch-all)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.metrics import CONTENT_TYPE, Metrics
from gateway.settings import Settings
from gateway.upstream.client import Upstream
from gateway.web.admin import admin_app, mount_admin
from gateway.web.state import HEALTH, METRICS, UPSTREAM, Health
from tests.doubles.net import start_app, url_of
from tests.doubles.upstream import call


async def elsewhere(request: web.Request) -> web.Response:
    return web.json_response({"handler": "main app"})


async def extra(request: web.Request) -> web.Response:
    return web.json_response({"handler": "extra", "path": request.path})


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, web.Application]]:
    app = web.Application()
    app[HEALTH] = Health(upstream_flavor="elasticsearch")
    app[METRICS] = Metrics()
    app[UPSTREAM] = Upstream(
        Settings.model_validate({}).upstream
    )  # not called: the flavor is known
    app.router.add_get("/{index}/_search", elsewhere)
    mount_admin(app, admin_app([web.get("/things/extra", extra)]))
    app.router.add_route("*", "/{tail:.*}", elsewhere)
    server: TestServer = await start_app(app)
    try:
        yield url_of(server), app
    finally:
        await server.close()


async def test_health_reads_the_main_apps_state(served: tuple[str, web.Application]) -> None:
    url, app = served
    assert (await call("GET", f"{url}/_gateway/health/live")).json() == {"status": "ok"}
    loading = await call("GET", f"{url}/_gateway/health/ready")
    assert (loading.status, loading.json()["model"]) == (503, "loading")
    app[HEALTH].model_ready = True
    ready = await call("GET", f"{url}/_gateway/health/ready")
    assert ready.status == 200
    assert ready.json() == {"ready": True, "model": "ready", "upstream": "elasticsearch"}


async def test_metrics_are_the_main_apps(served: tuple[str, web.Application]) -> None:
    url, app = served
    app[METRICS].variant("treatment", "exp-1")
    got = await call("GET", f"{url}/_gateway/metrics")
    assert got.headers["Content-Type"] == CONTENT_TYPE
    assert 'gateway_experiment_variant_total{experiment="exp-1",variant="treatment"} 1.0' in (
        got.body.decode()
    )


async def test_attached_routes_serve_under_the_prefix(served: tuple[str, web.Application]) -> None:
    url, _ = served
    got = await call("GET", f"{url}/_gateway/things/extra")
    assert got.json() == {"handler": "extra", "path": "/_gateway/things/extra"}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/_gateway/nope", 404),
        ("GET", "/_gateway/_search", 404),  # not /{index}/_search
        ("GET", "/_gateway/metrics/x", 404),
        ("POST", "/_gateway/metrics", 405),
    ],
)
async def test_every_path_under_the_prefix_stays_in_the_sub_app(
    served: tuple[str, web.Application], method: str, path: str, status: int
) -> None:
    url, _ = served
    got = await call(method, url + path)
    assert got.status == status
    assert b"main app" not in got.body
