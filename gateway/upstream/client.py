"""The one HTTP client session to the search cluster.

Only this module talks aiohttp-client; its exceptions become
``UpstreamUnavailable`` (502) or ``UpstreamTimeout`` (504) here. Targets are
always ``<configured base URL><path and query of the request>``: nothing in a
request can choose another host. The session keeps no cookies (one client's
``Set-Cookie`` never reaches another's request), and a URL that cannot be
connected to fails over to the next one (``failover.UrlPool``).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import ssl
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway import tracing
from gateway.errors import ClientRequestError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.settings import UpstreamSettings, split_userinfo
from gateway.upstream.failover import UrlPool

log = logging.getLogger(__name__)

# RFC 9110 §7.6.1 hop-by-hop headers, plus the ones aiohttp recomputes.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
ES_PRODUCT = ("X-Elastic-Product", "Elasticsearch")
GATEWAY_KEY_HEADER = "X-Gateway-Api-Key"  # see guard.py
_VENDOR_JSON = "application/vnd.elasticsearch+json"
_VENDOR_NDJSON = "application/vnd.elasticsearch+x-ndjson"
# aiohttp warns (ResourceWarning) about raw bytes bodies above 1 MiB; those go as a stream.
_STREAMED_BODY_BYTES = 1 << 20


def strip_hop_by_hop(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """Headers fit to forward: hop-by-hop ones and those named in ``Connection`` dropped."""
    named = {
        token.strip().lower() for value in _all(headers, "connection") for token in value.split(",")
    }
    out: CIMultiDict[str] = CIMultiDict()
    for key, value in headers.items():
        lower = key.lower()
        if lower in HOP_BY_HOP or lower in named:
            continue
        out.add(key, value)
    return out


def _all(headers: Mapping[str, str], name: str) -> list[str]:
    if isinstance(headers, CIMultiDict | CIMultiDictProxy):
        return list(headers.getall(name, []))
    value = headers.get(name)
    return [value] if value else []


def generic_media_type(value: str) -> str:
    """ES clients' vendor media type → the generic one an OpenSearch cluster accepts."""
    lowered = value.lower()
    if lowered.startswith(_VENDOR_NDJSON):
        return "application/x-ndjson"
    if lowered.startswith(_VENDOR_JSON):
        return "application/json"
    return value


def confine(path_qs: str) -> None:
    """Refuse a path that could climb out of the configured base URL's path.

    A dot segment (``.``, ``..``), even percent-encoded (``%2e%2e``, ``%252e``) or
    behind an encoded slash or a backslash (``..%2f``, ``..\\``), would let any
    normalizing hop between here and the cluster resolve the target outside
    ``http://host/prefix``; such requests get a 400 instead.
    """
    decoded = path_qs.split("?", 1)[0]
    for _ in range(3):
        decoded = unquote(decoded)
    if any(part in (".", "..") for part in decoded.replace("\\", "/").split("/")):
        raise ClientRequestError(
            "illegal_argument_exception", "request path must not contain dot segments"
        )


@dataclass(slots=True)
class Reply:
    """A fully read upstream answer, body decoded from any Content-Encoding."""

    status: int
    headers: CIMultiDict[str]
    body: bytes


class Upstream:
    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        self.flavor: str = settings.flavor
        self._session: aiohttp.ClientSession | None = None
        # The URLs' user:password@ is the gateway's credential (as USERNAME/PASSWORD),
        # sent as a header: aiohttp would refuse a URL credential next to Authorization.
        self._bases = [split_userinfo(url)[0] for url in settings.urls]
        self._auth = self._gateway_auth(settings)
        self.pool = UrlPool(self._bases, settings.dead_backoff_s, settings.dead_backoff_max_s)

    @staticmethod
    def _gateway_auth(settings: UpstreamSettings) -> str | None:
        """One source at most (settings refuse conflicts): API_KEY, USERNAME/PASSWORD, or
        the URLs' ``user:password@``, percent-decoded as the official clients do."""
        if settings.api_key is not None:
            return f"ApiKey {settings.api_key.get_secret_value()}"
        user, password = settings.username, settings.password
        if user is not None:
            return _basic(user, password.get_secret_value() if password else "")
        userinfo = split_userinfo(settings.urls[0])[1]
        if userinfo is not None:
            name, _, secret = userinfo.partition(":")
            return _basic(unquote(name), unquote(secret))
        return None

    async def start(self) -> None:
        ssl_context = _ssl_context(self.settings)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.settings.max_connections, ssl=ssl_context),
            # sock_connect, not connect: waiting for a free pooled connection is no sign
            # of a dead URL, only a TCP connect that times out is.
            timeout=aiohttp.ClientTimeout(
                total=self.settings.timeout_s, sock_connect=self.settings.connect_timeout_s
            ),
            # A shared client keeps no per-user state: cookies set on one client's
            # answer must never ride on another client's request.
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Content-Type", "Accept-Encoding"),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def probe(self) -> str | None:
        """Ask ``GET /``; the product (``elasticsearch`` / ``opensearch``) or None if unreachable.

        With ``flavor=auto`` the answer decides how requests are adapted; until the
        cluster has answered once, Elasticsearch is assumed.
        """
        try:
            reply = await self.fetch("GET", "/", CIMultiDict(self._auth_only()))
        except UpstreamError as exc:
            log.warning("search cluster did not answer GET /: %s", exc)
            return None
        info = _json(reply.body) if reply.status == 200 else None
        version = info.get("version") if isinstance(info, dict) else None
        distribution = version.get("distribution") if isinstance(version, dict) else None
        found = "opensearch" if distribution == "opensearch" else "elasticsearch"
        if self.settings.flavor == "auto" and self.flavor != found:
            number = version.get("number") if isinstance(version, dict) else "?"
            log.info("search cluster is %s %s", found, number)
            self.flavor = "opensearch" if found == "opensearch" else "elasticsearch"
        return self.flavor if self.flavor != "auto" else found

    def _auth_only(self) -> dict[str, str]:
        return {"Authorization": self._auth} if self._auth else {}

    def outgoing_headers(self, incoming: Mapping[str, str]) -> CIMultiDict[str]:
        headers = strip_hop_by_hop(incoming)
        # The body was decoded on the way in (aiohttp server) and is sent as is.
        headers.popall("Content-Encoding", None)
        if self.flavor == "opensearch":
            for name in ("Content-Type", "Accept"):
                if name in headers:
                    headers[name] = generic_media_type(headers[name])
        headers.popall(GATEWAY_KEY_HEADER, None)  # the gateway's own credential stays here
        if self._auth is not None:
            headers["Authorization"] = self._auth
        return headers

    def _target(self, path_qs: str) -> str:
        if not path_qs.startswith("/"):
            path_qs = "/" + path_qs
        confine(path_qs)
        return path_qs

    @asynccontextmanager
    async def open(
        self, method: str, path_qs: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """An upstream response whose body the caller streams (passthrough)."""
        assert self._session is not None, "Upstream.start() was not awaited"
        target = self._target(path_qs)
        bases = self.pool.order()
        for attempt, base in enumerate(bases):
            url = URL(base + target, encoded=True)
            try:
                with (
                    _translated("could not be used"),
                    tracing.cluster_call(method, url, headers) as call,
                ):
                    response = await self._session.request(
                        method,
                        url,
                        headers=call.headers,
                        data=_payload(body),
                        allow_redirects=False,
                    )
                    call.answered(response.status)
            except UpstreamError as exc:
                if not _nothing_sent(exc):
                    raise
                # Refused, unresolvable or not connected in time: the next URL may take it.
                self.pool.mark_dead(base, exc.__cause__ or exc)
                if attempt + 1 < len(bases):
                    continue
                raise
            self.pool.mark_alive(base)
            try:
                yield response
            finally:
                response.release()
            return

    async def stream(
        self, response: aiohttp.ClientResponse, chunk_bytes: int
    ) -> AsyncIterator[bytes]:
        """The raw (still encoded) body of an open response, in chunks."""
        with _translated("broke off its answer"):
            async for chunk in response.content.iter_chunked(chunk_bytes):
                yield chunk

    async def fetch(
        self,
        method: str,
        path_qs: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
        *,
        decode: bool = True,
    ) -> Reply:
        """A complete upstream answer (searches), status kept.

        ``decode``: the body is decompressed (the gateway reads it). Without it the body
        stays as the cluster encoded it for the client's ``Accept-Encoding``, and the
        ``Content-Encoding`` header stays with it (an answer relayed unread).
        """
        if decode:
            headers = _decodable(headers)
        async with self.open(method, path_qs, headers, body) as response:
            with _translated("broke off its answer"):
                raw = await response.read()
            out_headers = CIMultiDict(response.headers)
        if not decode:
            return Reply(response.status, out_headers, raw)
        encoding = out_headers.popall("Content-Encoding", [""])[0].lower()
        if encoding in ("gzip", "deflate"):
            try:
                raw = _decompress(raw, encoding)
            except zlib.error as exc:
                raise UpstreamUnavailable("the search cluster sent a corrupt body") from exc
        return Reply(response.status, out_headers, raw)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _ssl_context(settings: UpstreamSettings) -> ssl.SSLContext | bool:
    """TLS to the cluster: system CAs or CA_BUNDLE, an optional client certificate."""
    if not settings.verify_tls and settings.client_cert is None:
        return False
    cafile = str(settings.ca_bundle) if settings.ca_bundle is not None else None
    if settings.ca_bundle is None and settings.client_cert is None:
        return True
    context = ssl.create_default_context(cafile=cafile)
    if not settings.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if settings.client_cert is not None:
        key = str(settings.client_key) if settings.client_key is not None else None
        context.load_cert_chain(str(settings.client_cert), key)
    return context


def _nothing_sent(exc: UpstreamError) -> bool:
    """Whether the request failed before a connection existed (so no byte of it was sent).

    A refused connection, a DNS failure or a TLS handshake failure
    (``ClientConnectorError`` and its kinds), or a TCP connect past
    ``connect_timeout_s`` (``ConnectionTimeoutError``).
    """
    cause = exc.__cause__
    return isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


def _decodable(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """``Accept-Encoding`` narrowed to what ``fetch`` decodes (gzip, deflate): never ``br``."""
    out = CIMultiDict(headers)
    offered = [t.strip() for v in out.popall("Accept-Encoding", []) for t in v.split(",")]
    kept = [t for t in offered if t.split(";")[0].strip().lower() in ("gzip", "deflate")]
    if kept:
        out["Accept-Encoding"] = ", ".join(kept)
    return out


def _payload(body: bytes | None) -> bytes | io.BytesIO | None:
    """A request body as aiohttp sends it without blocking: large ones as a stream (per attempt)."""
    if body is not None and len(body) > _STREAMED_BODY_BYTES:
        return io.BytesIO(body)
    return body


@contextmanager
def _translated(failure: str) -> Iterator[None]:
    """aiohttp's exceptions become the gateway's: the one boundary for the HTTP client."""
    try:
        yield
    except TimeoutError as exc:
        raise UpstreamTimeout("the search cluster did not answer in time") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamUnavailable(f"the search cluster {failure} ({type(exc).__name__})") from exc


def _decompress(raw: bytes, encoding: str) -> bytes:
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    return zlib.decompress(raw, wbits)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None
