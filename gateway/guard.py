"""Who may use the gateway: optional API keys and an allow-list of indices (``GATEWAY_ACCESS__*``).

::

    /_gateway/health/*      always open (probes)
    /_gateway/...           admin key if set, else the client key if set
    POST /rerank, /v*/rerank  the client key (rerank_api/core.py checks it); no index
    everything else         client key if set; then every index the request names
                            must match GATEWAY_ACCESS__INDICES

Indices are read from the path (``/a,b/_search``) and, for the endpoints whose
body may name others (``_msearch``, ``_bulk``, ``_mget``), from the body too.
With a restricted list, endpoints that name no index (``/_search``, ``/_bulk``,
``/_cat/...``) are refused: they reach every index. Keys are compared in
constant time and never logged; the key header is never sent upstream.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import SecretStr

from gateway.errors import ClientRequestError, NotAllowed, NotAuthenticated
from gateway.indices import name_allowed
from gateway.settings import AccessSettings
from gateway.state import RERANK_PATHS, RESERVED_PREFIX
from gateway.upstream import GATEWAY_KEY_HEADER as KEY_HEADER

_OPEN = f"{RESERVED_PREFIX}/health/"
_BODY_NAMES_INDICES = frozenset({"_msearch", "_bulk", "_mget"})
_BULK_ACTIONS = frozenset({"index", "create", "update", "delete"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def guard_middleware(settings: AccessSettings) -> Middleware:
    restricted = list(settings.indices) != ["*"]

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "POST" and request.path in RERANK_PATHS:
            return await handler(request)  # key checked there, answered in the API's shape
        # The decoded path, as the router sees it (``/%5Fgateway`` is ``/_gateway``).
        if request.path == RESERVED_PREFIX or request.path.startswith(RESERVED_PREFIX + "/"):
            if not request.path.startswith(_OPEN):
                _check_key(request, settings.admin_api_key or settings.api_key)
            return await handler(request)
        _check_key(request, settings.api_key)
        if restricted:
            await _check_indices(request, settings.indices)
        return await handler(request)

    return middleware


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
    names = first.split(",")
    endpoint = segments[1] if len(segments) > 1 else ""
    if endpoint in _BODY_NAMES_INDICES:
        names += _body_indices(endpoint, await request.read())
    for name in names:
        if not name_allowed(name, patterns, wildcard_safe=True):
            raise NotAllowed(f"no access to index [{name}] through this gateway")


def _body_indices(endpoint: str, body: bytes) -> list[str]:
    try:
        if endpoint == "_mget":
            docs = _load(body).get("docs", []) if body.strip() else []
            return [str(d["_index"]) for d in _objects(docs) if "_index" in d]
        lines = [_load(line) for line in body.split(b"\n") if line.strip()]
    except ValueError:
        raise ClientRequestError(
            "parsing_exception", "request body names indices and is not valid JSON"
        ) from None
    if endpoint == "_msearch":
        return [name for head in lines[0::2] for name in _names(head.get("index"))]
    return list(_bulk_indices(lines))


def _bulk_indices(lines: list[dict[str, Any]]) -> Iterator[str]:
    i = 0
    while i < len(lines):
        action = next((k for k in lines[i] if k in _BULK_ACTIONS), None)
        if action is None:
            raise ClientRequestError("illegal_argument_exception", "malformed bulk action line")
        meta = lines[i][action]
        if isinstance(meta, dict):
            yield from _names(meta.get("_index"))
        i += 1 if action == "delete" else 2


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [n for v in values for n in str(v).split(",")]


def _objects(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _load(raw: bytes) -> dict[str, Any]:
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value
