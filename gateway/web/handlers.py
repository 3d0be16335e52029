"""Thin aiohttp handlers: read the request, call the pipeline or the upstream, write the answer."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from aiohttp import web

from gateway import tracing
from gateway.errors import UpstreamError
from gateway.search.pipeline import SearchFlow
from gateway.search.request import SearchRequest
from gateway.search.result import REASON_HEADER, RERANK_HEADER, SearchResult
from gateway.tracing import STAGES
from gateway.upstream.client import ES_PRODUCT, strip_hop_by_hop
from gateway.web.state import (
    FLOW,
    METRICS,
    QUERY_VECTORS,
    RECORD,
    UPSTREAM,
    WRITE_VECTORS,
)

log = logging.getLogger(__name__)

_STREAM_CHUNK = 64 * 1024
# Answers up to this size are gzipped on the loop (a 10-hit page: ~0.2 ms), not in a
# worker thread: the hand-off there and back costs more than that on a busy CPU.
_INLINE_COMPRESS_BYTES = 32 * 1024
SERVER_TIMING = "Server-Timing"
_TIMED = (*STAGES, "upstream")


def server_timing(timings_ms: Mapping[str, float]) -> str:
    """``cache;dur=1.2, queue;dur=0.1, ...`` (W3C Server Timing: metric names are tokens,
    ``dur`` in milliseconds) for the stages of a reranked search."""
    return ", ".join(f"{k};dur={timings_ms[k]:.1f}" for k in _TIMED if k in timings_ms)


async def search(request: web.Request) -> web.StreamResponse:
    flow: SearchFlow = request.app[FLOW]
    body = await request.read()
    index = request.match_info.get("index")
    experiment = flow.experiment
    arm = None
    url = request.rel_url
    stages = tracing.collect_timings()  # filled by the rerank stages and the batcher
    if request.path.endswith("/_msearch"):
        if experiment is not None:
            url = experiment.clean_url(url)  # experiments cover _search only
        read = SearchRequest(request.method, url, index, request.headers, body)
        result = await flow.msearch(read)
    else:
        if experiment is not None and experiment.enabled:
            arm = experiment.assign(request.headers, url)
            request.app[METRICS].variant(arm.variant, experiment.name)
            url = arm.url
        body = await request.app[QUERY_VECTORS].fill(body, request.headers, url.query.get("q"))
        read = SearchRequest(request.method, url, index, request.headers, body)
        result = await flow.search(read, arm=arm)
    result.timings_ms.update(tracing.stage_split(stages))
    record = request.get(RECORD)
    if record is not None:
        record.rerank, record.reason = result.rerank, result.reason
        record.timings_ms.update(result.timings_ms)
    response = _respond(request, result)
    if arm is not None:
        response.headers.update(arm.headers())
        arm.finish(result.status, result.body)
    return response


def _respond(request: web.Request, result: SearchResult) -> web.Response:
    headers = strip_hop_by_hop(result.headers)
    # The cluster's own bytes go back as they came, compressed only if the cluster did.
    if not result.verbatim:
        headers.popall("Content-Encoding", None)
    headers[RERANK_HEADER] = result.rerank
    if result.reason:
        headers[REASON_HEADER] = result.reason
    if result.rerank != "skipped" and "model" in result.timings_ms:
        headers[SERVER_TIMING] = server_timing(result.timings_ms)
    if 200 <= result.status < 300 and ES_PRODUCT[0] not in headers:
        headers[ES_PRODUCT[0]] = ES_PRODUCT[1]
    response = web.Response(
        status=result.status,
        body=result.body,
        headers=headers,
        zlib_executor_size=_INLINE_COMPRESS_BYTES,
    )
    if not result.verbatim and len(result.body) > 1024:
        response.enable_compression()  # only if the client's Accept-Encoding allows it
    return response


async def passthrough(request: web.Request) -> web.StreamResponse:
    """Anything the gateway does not rerank: forwarded as is, answer streamed back."""
    upstream = request.app[UPSTREAM]
    body = await request.read()
    path = request.rel_url.raw_path
    body = await request.app[WRITE_VECTORS].fill(request.method, path, request.headers, body)
    headers = upstream.outgoing_headers(request.headers)
    started = time.perf_counter()
    async with upstream.open(
        request.method, request.rel_url.raw_path_qs, headers, body or None
    ) as reply:
        record = request.get(RECORD)
        if record is not None:
            record.timings_ms["upstream"] = (time.perf_counter() - started) * 1000
        out = strip_hop_by_hop(reply.headers)
        response = web.StreamResponse(status=reply.status, headers=out)
        if reply.content_length is not None:
            # The bytes are relayed unchanged (still encoded), so the length holds.
            response.content_length = reply.content_length
        await response.prepare(request)
        try:
            async for chunk in upstream.stream(reply, _STREAM_CHUNK):
                await response.write(chunk)
        except UpstreamError as exc:
            # Headers are gone already: all that is left is to cut the connection.
            log.warning("upstream broke off a passthrough answer: %s", exc)
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response
