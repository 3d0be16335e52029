"""Who may use the gateway: optional API keys and an allow-list of indices (``GATEWAY_ACCESS__*``).

::

    every path              no ``;`` path parameters, no encoded ``%`` (400)
    /_gateway/health/*      always open (probes)
    /_gateway/...           admin key if set, else the client key if set; answered by
                            the gateway's sub-app (web/admin.py), never forwarded (404
                            for unknown ones, and for paths only a later hop would
                            read as ours: ``//_gateway``, ``/_gateway%2F...``)
    POST /rerank, /v*/rerank  the client key (rerank_api/core.py checks it); no index
    everything else         client key if set; then, with GATEWAY_ACCESS__INDICES,
                            the endpoint must be one the guard understands and every
                            index the request names must match the list

With a restricted list the guard denies by default: a request must name its indices
in the path (``/a,b/<endpoint>``), the endpoint must be in :data:`SAFE_ENDPOINTS`, and
a body the endpoint reads is walked for index references (``index_refs``); a body
the guard cannot read with certainty is refused like a denied index (403). Keys are
compared in constant time and never logged; the key header is never sent upstream.
"""

from __future__ import annotations

import enum
import hmac
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from urllib.parse import unquote

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import SecretStr

from gateway.errors import ClientRequestError, NotAllowed, NotAuthenticated, NotFound
from gateway.indices import name_allowed
from gateway.settings import AccessSettings
from gateway.upstream.client import GATEWAY_KEY_HEADER as KEY_HEADER
from gateway.web.index_refs import Unreadable, body_names, bulk_names, load_object, msearch_names
from gateway.web.state import RERANK_PATHS, RESERVED_PREFIX

_OPEN = f"{RESERVED_PREFIX}/health/"
_UNREADABLE_MEDIA = ("yaml", "cbor", "smile")  # formats the cluster reads and the guard does not

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Body(enum.Enum):
    """What an endpoint's body is, for the guard."""

    NONE = "none"  # no body accepted while the list is restricted
    QUERY = "query"  # JSON walked for index references
    MSEARCH = "msearch"  # NDJSON, every line walked
    BULK = "bulk"  # NDJSON, action lines read for _index
    DOCUMENT = "document"  # a document: names no index, not read


# The path after the index names; "*" is any one segment (a document id).
SAFE_ENDPOINTS: dict[tuple[str, ...], Body] = {
    (): Body.NONE,  # index info, exists, delete; create without a body
    ("_search",): Body.QUERY,
    ("_async_search",): Body.QUERY,
    ("_count",): Body.QUERY,
    ("_validate", "query"): Body.QUERY,
    ("_explain", "*"): Body.QUERY,
    ("_delete_by_query",): Body.QUERY,
    ("_update_by_query",): Body.QUERY,
    ("_mget",): Body.QUERY,
    ("_mtermvectors",): Body.QUERY,
    ("_termvectors",): Body.QUERY,
    ("_termvectors", "*"): Body.QUERY,
    ("_field_caps",): Body.QUERY,
    ("_terms_enum",): Body.QUERY,
    ("_msearch",): Body.MSEARCH,
    ("_bulk",): Body.BULK,
    ("_doc",): Body.DOCUMENT,
    ("_doc", "*"): Body.DOCUMENT,
    ("_create", "*"): Body.DOCUMENT,
    ("_update", "*"): Body.DOCUMENT,
    ("_source", "*"): Body.NONE,
    ("_refresh",): Body.NONE,
    ("_flush",): Body.NONE,
    ("_stats",): Body.NONE,
    ("_mapping",): Body.NONE,
    ("_settings",): Body.NONE,
}


def guard_middleware(settings: AccessSettings) -> Middleware:
    restricted = list(settings.indices) != ["*"]

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        _confine(request.raw_path)
        if request.method == "POST" and request.path in RERANK_PATHS:
            return await handler(request)  # key checked there, answered in the API's shape
        # The decoded path, as the router sees it (``/%5Fgateway`` is ``/_gateway``).
        path = re.sub("/{2,}", "/", request.path)
        if path == RESERVED_PREFIX or path.startswith(RESERVED_PREFIX + "/"):
            if not path.startswith(_OPEN):
                _check_key(request, settings.admin_api_key or settings.api_key)
            if not _served_here(request):
                raise NotFound(request.method, request.path)
            return await handler(request)
        _check_key(request, settings.api_key)
        if restricted:
            await _check_indices(request, settings.indices)
        return await handler(request)

    return middleware


def _served_here(request: web.Request) -> bool:
    """Whether a route of the gateway's own answers (not the passthrough, nor
    ``/{index}/_search`` with ``_gateway`` for the index)."""
    route = request.match_info.route
    resource = route.resource
    return resource is not None and resource.canonical.startswith(RESERVED_PREFIX + "/")


def _confine(raw_path: str) -> None:
    """Paths that mean something else to some hop between here and the cluster: ``;``
    path parameters and an encoded ``%`` (``%252e``, decoded twice, is a dot)."""
    path = raw_path.split("?", 1)[0]
    if ";" in path or "%25" in path.lower():
        raise ClientRequestError(
            "illegal_argument_exception",
            "request path must not contain [;] or an encoded [%]",
        )


def _check_key(request: web.Request, key: SecretStr | None) -> None:
    if key is None:
        return
    given = request.headers.get(KEY_HEADER, "")
    if not hmac.compare_digest(given.encode(), key.get_secret_value().encode()):
        what = "invalid" if given else "missing"
        raise NotAuthenticated(f"{what} gateway API key for REST request [{request.path}]")


async def _check_indices(request: web.Request, patterns: Sequence[str]) -> None:
    segments = [unquote(s) for s in request.raw_path.split("?", 1)[0].split("/")[1:]]
    first = segments[0] if segments else ""
    if first == "" and len(segments) <= 1 and request.method in ("GET", "HEAD"):
        return  # cluster info: what clients ask first
    if first == "" or first.startswith("_"):
        raise NotAllowed(f"[{request.path}] names no index, and only some indices are allowed")
    kind = _endpoint(tuple(segments[1:]))
    if kind is None:
        raise NotAllowed(
            f"[{request.method} {request.path}] is not let through while only some indices"
            " are allowed"
        )
    if "index" in request.query:
        raise NotAllowed("an [index] parameter is not let through while only some are allowed")
    names = first.split(",")
    body = await request.read()
    try:
        names += [n for raw, media in _bodies(request, body) for n in _read(kind, raw, media)]
    except Unreadable as exc:
        raise NotAllowed(f"the request body cannot be checked for indices: {exc}") from None
    for name in names:
        if not name_allowed(name, patterns, wildcard_safe=True):
            raise NotAllowed(f"no access to index [{name}] through this gateway")


def _endpoint(rest: tuple[str, ...]) -> Body | None:
    for shape, kind in SAFE_ENDPOINTS.items():
        if len(shape) != len(rest):
            continue
        if all(part and s in ("*", part) for s, part in zip(shape, rest, strict=True)):
            return kind
    return None


def _bodies(request: web.Request, body: bytes) -> Iterator[tuple[bytes, str]]:
    """What the cluster may read as the body: the body, and the ``source`` parameter
    (which it reads when there is no body)."""
    if body:
        yield body, " ".join(request.headers.getall("Content-Type", []))
    media = " ".join(request.query.getall("source_content_type", []))
    for source in request.query.getall("source", []):  # every one: which wins is not ours to say
        yield source.encode(), media


def _read(kind: Body, raw: bytes, media: str) -> list[str]:
    if kind is Body.DOCUMENT:
        return []
    if kind is Body.NONE:
        raise Unreadable("this endpoint takes no body while only some indices are allowed")
    if any(name in media.lower() for name in _UNREADABLE_MEDIA):
        raise Unreadable("only JSON bodies can be checked")
    if kind is Body.MSEARCH:
        return list(msearch_names(raw))
    if kind is Body.BULK:
        return list(bulk_names(raw))
    return list(body_names(load_object(raw)))
