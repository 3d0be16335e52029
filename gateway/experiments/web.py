"""The experiment endpoints, routes of the ``/_gateway`` sub-app (``gateway.web.admin``).

::

    POST /_gateway/events                 clicks: {"search_id", "id" | "position", "index"?}
                                          (or a JSON array of them); 202 {"accepted": n}
    GET  /_gateway/experiments/report     figures as JSON (see gateway.experiments.report)
    GET  /_gateway/experiments            the same as an HTML page, figures rendered here
                                          (gateway.experiments.page); a local script adds charts
    GET  /_gateway/experiments/report.js  that script

``create_experiments`` builds the arms and their event log, ``experiments_ctx`` is
their lifecycle, ``routes`` the endpoints above (relative to the sub-app's prefix),
each handler bound to the one ``Experiments``. The wiring (app.py) attaches all
three from outside, so neither the web layer nor the search pipeline imports this
module, and this module imports nothing of theirs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from importlib.resources import files
from typing import Any

from aiohttp import web

from gateway.errors import ClientRequestError, EventStoreError, es_error_body
from gateway.experiments.arms import Experiments
from gateway.experiments.events import EventLog, create_event_log
from gateway.experiments.page import render_page
from gateway.experiments.report import build_report
from gateway.settings import Settings

MAX_EVENTS_PER_POST = 1000
_STATIC = files("gateway") / "static"
_UNAVAILABLE = es_error_body(503, "event_store_exception", "experiment events are unavailable")


def create_experiments(settings: Settings) -> Experiments:
    """The arms of EXPERIMENT__* and the event log they write to (not started yet)."""
    conf = settings.experiment
    events = create_event_log(
        settings.cache, conf.events_redis_url, conf.name, conf.events_max, k=conf.k
    )
    return Experiments(conf, events)


def experiments_ctx(
    experiments: Experiments,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx``: the event log runs while the app does; shadow searches are
    cancelled, then the log closed."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await experiments.events.start()
        yield
        await experiments.close()
        await experiments.events.close()

    return ctx


def routes(experiments: Experiments) -> list[web.RouteDef]:
    """The endpoints, relative to the ``/_gateway`` prefix, serving ``experiments``."""

    async def events(request: web.Request) -> web.Response:
        return await post_events(request, experiments.events)

    async def report(request: web.Request) -> web.Response:
        return await get_report(experiments)

    async def page(request: web.Request) -> web.Response:
        return await get_page(experiments)

    return [
        web.post("/events", events),
        web.get("/experiments/report", report),
        web.get("/experiments", page),
        web.get("/experiments/report.js", get_script),
    ]


def _bad(reason: str) -> ClientRequestError:
    return ClientRequestError("illegal_argument_exception", reason)


def parse_click(value: Any) -> dict[str, Any]:
    """One validated click event from a posted object."""
    if not isinstance(value, dict):
        raise _bad("an event must be a JSON object")
    kind = value.get("type", "click")
    sid = value.get("search_id")
    if kind != "click":
        raise _bad("[type] must be [click]")
    if not isinstance(sid, str) or not sid or len(sid) > 100:
        raise _bad("[search_id] is required: the X-Search-Id header of the search")
    event: dict[str, Any] = {"type": "click", "search_id": sid}
    position = value.get("position")
    if position is not None:
        if isinstance(position, bool) or not isinstance(position, int) or position < 1:
            raise _bad("[position] must be a positive integer (1 = first hit shown)")
        event["position"] = position
    for name in ("id", "index"):
        if name in value:
            if not isinstance(value[name], str):
                raise _bad(f"[{name}] must be a string")
            event[name] = value[name]
    if "position" not in event and "id" not in event:
        raise _bad("a click needs [id] or [position]")
    return event


async def post_events(request: web.Request, events: EventLog) -> web.Response:
    try:
        payload = json.loads(await request.read())
    except (ValueError, RecursionError):  # RecursionError: nested too deep to read
        raise _bad("the body must be JSON") from None
    items = payload if isinstance(payload, list) else [payload]
    if len(items) > MAX_EVENTS_PER_POST:
        raise _bad(f"at most {MAX_EVENTS_PER_POST} events per request")
    clicks = [parse_click(item) for item in items]
    for click in clicks:
        events.record(click)
    return web.json_response({"accepted": len(clicks)}, status=202)


async def report_of(experiments: Experiments) -> dict[str, Any]:
    events: EventLog = experiments.events
    treatment = experiments.treatment.name if experiments.treatment else None
    figures = build_report(
        await events.read(), experiments.settings.k, experiments.control.name, treatment
    )
    figures["experiment"] = experiments.settings.name
    figures["mode"] = experiments.settings.mode
    figures["events_dropped"] = events.dropped + events.failed
    figures["shadow_skipped"] = experiments.shadow_skipped
    return figures


async def get_report(experiments: Experiments) -> web.Response:
    try:
        figures = await report_of(experiments)
    except EventStoreError:
        return web.json_response(_UNAVAILABLE, status=503)
    return web.json_response(figures)


async def get_page(experiments: Experiments) -> web.Response:
    try:
        figures = await report_of(experiments)
    except EventStoreError:
        return web.json_response(_UNAVAILABLE, status=503)
    return web.Response(text=render_page(figures), content_type="text/html")


async def get_script(request: web.Request) -> web.Response:
    text = (_STATIC / "report.js").read_text(encoding="utf-8")
    return web.Response(text=text, content_type="application/javascript")
