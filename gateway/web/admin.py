"""The gateway's own endpoints: the ``/_gateway`` sub-app (aiohttp ``add_subapp``).

::

    GET /_gateway/health/live     200 while the process serves (liveness probe)
    GET /_gateway/health/ready    200 once the model is warm and the cluster answered, else 503
    GET /_gateway/metrics         Prometheus text (gateway.metrics)
    ...                           the routes other wings attach (``admin_app(routes)``: the
                                  experiments' pages, wired in app.py)

Mounted under :data:`~gateway.web.state.RESERVED_PREFIX`, a path no Elasticsearch
endpoint starts with: every path below it resolves here, so none of them can reach
the passthrough. Who may call them is decided before the sub-app is reached, by
the main app's guard (``web/guard.py``): it sees every path, also those that only
look like ours once decoded or normalized (``/%5Fgateway``, ``//_gateway``), and
answers 404 for any the sub-app does not serve. The sub-app keeps no state of its
own: its handlers read the main app's through ``request.config_dict``, and the
main app's middlewares (access log, errors, guard) wrap them.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from gateway.metrics import CONTENT_TYPE
from gateway.web.state import HEALTH, METRICS, RESERVED_PREFIX, UPSTREAM


def admin_app(routes: Iterable[web.AbstractRouteDef] = ()) -> web.Application:
    """The sub-app: health, metrics, then ``routes`` (paths relative to the prefix)."""
    admin = web.Application()
    admin.router.add_get("/health/live", live)
    admin.router.add_get("/health/ready", ready)
    admin.router.add_get("/metrics", metrics)
    admin.router.add_routes(routes)
    return admin


def mount_admin(app: web.Application, admin: web.Application) -> None:
    """Mount ``admin`` (complete: a mounted app takes no more routes) at the reserved prefix;
    before the passthrough catch-all, like every route of the gateway's own."""
    app.add_subapp(RESERVED_PREFIX, admin)


async def live(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    health = request.config_dict[HEALTH]
    if health.upstream_flavor is None:
        # Not known to be up (down at start-up, or seen failing since): ask again.
        health.upstream_flavor = await request.config_dict[UPSTREAM].probe()
    body = health.report()
    return web.json_response(body, status=200 if body["ready"] else 503)


async def metrics(request: web.Request) -> web.Response:
    body = request.config_dict[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
