"""Middlewares: every error leaves as an Elasticsearch-shaped JSON body."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.errors import (
    BodyTooLarge,
    ClientRequestError,
    UpstreamError,
    UpstreamUnavailable,
    es_error_body,
)
from gateway.es.body import dump_pretty, wants_pretty
from gateway.upstream.client import ES_PRODUCT
from gateway.web.protocol import bad_request
from gateway.web.state import HEALTH

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_middleware(max_body_bytes: int) -> Middleware:
    """Translate the gateway's errors (and aiohttp's) into ES-shaped answers."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ClientRequestError as exc:
            return _error(request, exc.status, exc.body())
        except UpstreamError as exc:
            log.warning("%s %s: %s", request.method, request.path, exc)
            if isinstance(exc, UpstreamUnavailable):
                request.app[HEALTH].upstream_flavor = None  # readiness asks again
            return _error(request, exc.status, exc.body())
        except web.RequestPayloadError as exc:
            # The body broke while being read (not gzip after all, cut short, bad chunks).
            response = _error(request, 400, bad_request(exc.__cause__))
            response.force_close()
            return response
        except web.HTTPRequestEntityTooLarge:
            return _error(request, 413, BodyTooLarge(max_body_bytes).body())
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            reason = exc.reason
            return _error(request, exc.status, es_error_body(exc.status, "http_exception", reason))
        except Exception:
            # A bug of ours: logged in full, reported without internals.
            log.exception("unexpected error on %s %s", request.method, request.path)
            return _error(
                request,
                500,
                es_error_body(500, "gateway_exception", "internal error in the gateway"),
            )

    return middleware


def _error(request: web.Request, status: int, body: dict[str, object]) -> web.Response:
    """An ES-shaped error answer, pretty-printed when the request asked (``?pretty``)."""
    headers = {ES_PRODUCT[0]: ES_PRODUCT[1]}
    if not wants_pretty(request.query):
        return web.json_response(body, status=status, headers=headers)
    return web.Response(
        body=dump_pretty(body), status=status, headers=headers, content_type="application/json"
    )
