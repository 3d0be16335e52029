"""The tracing middleware: one OpenTelemetry SERVER span per request (``LOG__TRACING``).

The span itself, its parent (the client's ``traceparent``) and the stages below
it are ``gateway.tracing``'s; this middleware only feeds it what the web layer
knows: the route template, the answer's status, and what the request's record
(``RequestRecord``, filled by the handlers) says the client was told about
reranking. The gateway's own ``/_gateway`` endpoints get no span.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.tracing import ServerSpan, Tracing
from gateway.web.state import RECORD, RESERVED_PREFIX

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def tracing_middleware(tracing: Tracing) -> Middleware:
    """One SERVER span per request (not for the gateway's own ``/_gateway`` endpoints)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(RESERVED_PREFIX):
            return await handler(request)
        route = request.match_info.route.resource
        template = route.canonical if route is not None else request.path
        with tracing.server_span(request.method, request.path, template, request.headers) as span:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                _answered(span, request, exc.status)
                raise
            except BaseException:
                _answered(span, request, 500)
                raise
            _answered(span, request, response.status)
            return response

    return middleware


def _answered(span: ServerSpan, request: web.Request, status: int) -> None:
    """The SERVER span's answer: status, and what the client was told about reranking."""
    record = request.get(RECORD)
    if record is None:
        span.answered(status)
        return
    span.answered(
        status,
        {
            "gateway.request_id": record.request_id,
            "rerank.outcome": record.rerank,
            "rerank.reason": record.reason,
        },
    )
