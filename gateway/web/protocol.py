"""HTTP the gateway cannot parse, answered the way Elasticsearch answers it.

aiohttp's parser rejects a malformed request (a header over the limit, too many
headers, a bad chunk size, a control character in a header, an unsupported
``Content-Encoding``) before any handler or middleware runs, and its protocol
answers with plain text that echoes the request's bytes. ``GatewayRunner``
serves the app with a protocol whose ``handle_error`` writes an ES-shaped JSON
body instead: 400 with the type Elasticsearch reports for the same failure of
its Netty decoder (``RestController.dispatchBadRequest`` answers every decoder
failure ``400`` with the cause), a fixed reason that never quotes the request,
and the connection closed. ``bad_request`` is the same translation for a body
that breaks while a handler reads it (``RequestPayloadError``).

Limits: a header line up to Elasticsearch's whole-header default
(``http.max_header_size``, 16 KiB), so any header the cluster takes passes here
and the cluster has the last word; the request line up to aiohttp's 8190 bytes
(above Elasticsearch's ``http.max_initial_line_length``, 4 KiB); 128 headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import (
    BadStatusLine,
    ContentEncodingError,
    ContentLengthError,
    InvalidHeader,
    LineTooLong,
    TransferEncodingError,
)
from aiohttp.web_request import BaseRequest

from gateway.errors import es_error_body
from gateway.upstream.client import ES_PRODUCT

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    """What aiohttp's parser accepts; over them, a 400 ``too_long_http_*_exception``."""

    line_bytes: int = 8190
    field_bytes: int = 16 * 1024
    headers: int = 128


_DEFAULT = Limits()


def describe(exc: BaseException | None, limits: Limits = _DEFAULT) -> tuple[str, str]:
    """ES error type and a reason (never the request's bytes) for a parse failure."""
    if isinstance(exc, LineTooLong):
        if exc.args[1:2] == (limits.line_bytes,) and limits.line_bytes != limits.field_bytes:
            return "too_long_http_line_exception", (
                f"An HTTP line is larger than {limits.line_bytes} bytes."
            )
        return "too_long_http_header_exception", (
            f"HTTP header is larger than {limits.field_bytes} bytes."
        )
    message = getattr(exc, "message", "")
    if message == "Too many headers received":
        return "too_long_http_header_exception", (
            f"HTTP request has more than {limits.headers} headers."
        )
    if isinstance(exc, ContentEncodingError):
        return "illegal_argument_exception", (
            "request body cannot be decoded: its Content-Encoding is not supported "
            "(gzip, deflate are) or does not match the body"
        )
    if isinstance(exc, TransferEncodingError) or "chunk" in str(message).lower():
        return "illegal_argument_exception", "request body has invalid chunked framing"
    if isinstance(exc, ContentLengthError):
        return "illegal_argument_exception", "request body is shorter than its Content-Length"
    if isinstance(exc, InvalidHeader) or "header" in str(message).lower():
        return "illegal_argument_exception", "request has an invalid HTTP header"
    if isinstance(exc, BadStatusLine):
        return "illegal_argument_exception", "invalid HTTP request line"
    return "illegal_argument_exception", "malformed HTTP request"


def bad_request(exc: BaseException | None, limits: Limits = _DEFAULT) -> dict[str, Any]:
    """The ES-shaped 400 body for a request aiohttp could not parse."""
    error_type, reason = describe(exc, limits)
    return es_error_body(400, error_type, reason)


class EsRequestHandler(web.RequestHandler):
    """aiohttp's protocol, with its own error pages replaced by ES-shaped JSON."""

    def __init__(self, manager: web.Server, *, limits: Limits, **kwargs: Any) -> None:
        super().__init__(
            manager,
            max_line_size=limits.line_bytes,
            max_field_size=limits.field_bytes,
            max_headers=limits.headers,
            **kwargs,
        )
        self._limits = limits

    def log_exception(self, *args: Any, **kw: Any) -> None:
        if isinstance(kw.get("exc_info"), web.RequestPayloadError):
            return  # a body that broke while read: answered 400 by the middleware already
        super().log_exception(*args, **kw)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp: the answer has begun, only cut it
            raise ConnectionError("response already started, cannot send an error")
        if status == 400:
            # A client's mistake, logged without its bytes (they may hold credentials).
            log.info("unparsable request from %s: %s", request.remote, type(exc).__name__)
            body = bad_request(exc, self._limits)
        elif status == 504:
            body = es_error_body(504, "timeout_exception", "the request timed out")
        else:
            log.error("error handling request from %s", request.remote, exc_info=exc)
            body = es_error_body(status, "gateway_exception", "internal error in the gateway")
        response = web.Response(
            status=status,
            body=json.dumps(body).encode(),
            content_type="application/json",
            headers={ES_PRODUCT[0]: ES_PRODUCT[1]},
        )
        response.force_close()
        return response


class _EsServer(web.Server):
    def __init__(self, server: web.Server, limits: Limits) -> None:
        super().__init__(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )
        self._limits = limits

    def __call__(self) -> web.RequestHandler:
        return EsRequestHandler(self, loop=self._loop, limits=self._limits, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer protocol errors in ES's shape."""

    def __init__(self, app: web.Application, *, limits: Limits | None = None, **kwargs: Any):
        super().__init__(app, **kwargs)
        self._limits = limits or _DEFAULT

    async def _make_server(self) -> web.Server:
        return _EsServer(await super()._make_server(), self._limits)


def serve(app: web.Application, *, sock: socket.socket, shutdown_timeout_s: float) -> None:
    """Serve on the bound ``sock`` until SIGINT / SIGTERM, then shut down gracefully
    (``web.run_app``'s job)."""
    runner = GatewayRunner(
        app, handle_signals=True, access_log=None, shutdown_timeout=shutdown_timeout_s
    )

    async def run() -> None:
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            await asyncio.Event().wait()  # until a signal raises GracefulExit
        finally:
            await runner.cleanup()

    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        asyncio.run(run())
