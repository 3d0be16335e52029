"""Request ids, the access log line and request metrics: the outermost middleware.

Every request gets an id: the client's own ``X-Opaque-Id`` when it sent one
(Elasticsearch's request-tracing header), else a fresh one. The id goes
upstream as ``X-Opaque-Id`` (so it shows in the cluster's slow log and tasks
API) and back to the client as ``X-Request-Id``.

One log line per request on the ``gateway.web.access_log`` logger, its fields also in
``record.fields`` (the JSON formatter writes them as keys). Only method, path,
status, ids, timings and the rerank outcome are logged: never headers, query
strings or bodies, so credentials cannot end up in the log.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from multidict import CIMultiDict
from yarl import URL

from gateway.metrics import Metrics
from gateway.tracing import STAGES
from gateway.web import handlers
from gateway.web.state import METRICS, RECORD, RERANK_PATHS, RESERVED_PREFIX, RequestRecord

log = logging.getLogger("gateway.web.access_log")

OPAQUE_ID = "X-Opaque-Id"
REQUEST_ID_HEADER = "X-Request-Id"
_MAX_ID_CHARS = 200

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_kind(request: web.Request) -> str:
    """``search``, ``msearch``, ``rerank`` (the rerank API), ``passthrough`` or ``gateway``
    (its own endpoints: every path under the reserved prefix, unknown ones answered 404 by
    the guard)."""
    if request.path == RESERVED_PREFIX or request.path.startswith(RESERVED_PREFIX + "/"):
        return "gateway"
    handler = request.match_info.handler
    if request.method == "POST" and request.path in RERANK_PATHS:
        return "rerank"
    if handler is handlers.search:
        return "msearch" if request.path.endswith("/_msearch") else "search"
    if handler is handlers.passthrough:
        return "passthrough"
    return "gateway"


def redact_url(url: str) -> str:
    """A URL fit for logs: any ``user:password@`` removed."""
    parsed = URL(url)
    return str(parsed.with_user(None)) if parsed.user or parsed.password else url


def access_middleware(metrics: Metrics) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        given = request.headers.get(OPAQUE_ID, "").strip()
        request_id = given[:_MAX_ID_CHARS] if given else uuid.uuid4().hex
        record = RequestRecord(request_id, route_kind(request))
        request[RECORD] = record
        if not given:
            headers = CIMultiDict(request.headers)
            headers[OPAQUE_ID] = request_id
            request = request.clone(headers=headers)
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            total_s = time.perf_counter() - started
            _finish(metrics, request, record, status, total_s)

    return middleware


def observe(app: web.Application, metrics: Metrics) -> None:
    """Keep ``metrics`` on the app (the admin sub-app serves them, ``web/admin.py``); put
    the request id on every answer, the sub-app's included.

    ``access_middleware(metrics)`` must be the app's first (outermost) middleware.
    """
    app[METRICS] = metrics
    app.on_response_prepare.append(add_request_id)


async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the id goes back on every answer, streamed ones too."""
    record = request.get(RECORD)
    if record is not None:
        response.headers[REQUEST_ID_HEADER] = record.request_id


def _finish(
    metrics: Metrics, request: web.Request, record: RequestRecord, status: int, total_s: float
) -> None:
    t = record.timings_ms
    upstream_ms, rerank_ms = t.get("upstream"), t.get("rerank")
    metrics.request_done(
        record.route,
        status,
        total_s,
        upstream_s=None if upstream_ms is None else upstream_ms / 1000,
        rerank_s=None if not rerank_ms else rerank_ms / 1000,
        stages_s={k: t[k] / 1000 for k in STAGES if k in t},
        rerank=record.rerank,
        reason=record.reason,
    )
    if record.route == "gateway" or not log.isEnabledFor(logging.INFO):
        return  # health checks and scrapes would drown the log; INFO off: nothing to build
    fields: dict[str, Any] = {
        "request_id": record.request_id,
        "method": request.method,
        "path": request.path,
        "route": record.route,
        "status": status,
        "total_ms": round(total_s * 1000, 2),
    }
    if upstream_ms is not None:
        fields["upstream_ms"] = round(upstream_ms, 2)
    if rerank_ms is not None:
        fields["model_ms"] = round(rerank_ms, 2)
    if record.rerank is not None:
        fields["rerank"] = record.rerank
        if record.reason:
            fields["rerank_reason"] = record.reason
    text = " ".join(f"{k}={v}" for k, v in fields.items())
    log.info("%s", text, extra={"fields": fields})
