"""The search pipeline: decide, widen, ask upstream, score, merge. Returns data, not web objects.

::

    decide   which searches are reranked (settings, index patterns, opt in/out)
    plan     es_body.plan: query text, page, window; or a skip reason
    widen    es_body.widen: top `fetch` hits from 0, text fields requested
    upstream its non-2xx answers go back verbatim
    score    reranker.score (cache → batcher → model), within the deadline
    merge    es_body.merge: reorder the window, slice the page, keep the rest
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict, MultiDict
from yarl import URL

from gateway import es_body
from gateway.errors import ClientRequestError
from gateway.reranker import Reranker
from gateway.settings import RerankSettings
from gateway.upstream import Reply, Upstream

RERANK_HEADER = "X-Rerank"  # full | partial | skipped, on every _search / _msearch answer
REASON_HEADER = "X-Rerank-Reason"
OPT_HEADER = "X-Rerank"  # the same name on a request: on | off
OPT_PARAM = "rerank"  # ?rerank=true|false, removed before forwarding
_JSON_TYPES = ("application/json", "application/vnd.elasticsearch+json")
_NDJSON_TYPES = (
    "application/x-ndjson",
    "application/vnd.elasticsearch+x-ndjson",
    "application/json",
    "application/vnd.elasticsearch+json",
)
_TRUE, _FALSE = ("true", "on", "1", ""), ("false", "off", "0")


@dataclass(slots=True)
class SearchResult:
    """What the handler sends: status, headers, body, and the rerank outcome."""

    status: int
    headers: CIMultiDict[str]
    body: bytes
    rerank: str = "skipped"
    reason: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


def index_allowed(index: str | None, patterns: Sequence[str]) -> bool:
    """Whether every index named in the path matches an include and no exclude."""
    names = [n for n in (index or "_all").split(",") if n]
    includes = [p for p in patterns if not p.startswith("-")]
    excludes = [p[1:] for p in patterns if p.startswith("-")]
    for name in names:
        if name == "_all":
            if "*" not in includes:
                return False
            continue
        if not any(fnmatch.fnmatchcase(name, p) for p in includes):
            return False
        if any(fnmatch.fnmatchcase(name, p) for p in excludes):
            return False
    return True


def _opt(headers: Mapping[str, str], params: Mapping[str, str]) -> bool | None:
    """The request's explicit choice: True (rerank), False (don't) or None."""
    if OPT_PARAM in params:
        value = params[OPT_PARAM].lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ClientRequestError(
            "illegal_argument_exception",
            f"Failed to parse value [{params[OPT_PARAM]}] as only [true] or [false] are allowed.",
        )
    value = headers.get(OPT_HEADER, "").strip().lower()
    if value in ("on", "true", "1"):
        return True
    if value in ("off", "false", "0"):
        return False
    return None


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("Content-Type", "").split(";")[0].strip().lower()


class SearchFlow:
    def __init__(
        self, upstream: Upstream, reranker: Reranker | None, settings: RerankSettings
    ) -> None:
        self.upstream = upstream
        self.reranker = reranker
        self.settings = settings

    def _skip_reason(
        self, index: str | None, headers: Mapping[str, str], params: Mapping[str, str]
    ) -> str | None:
        choice = _opt(headers, params)
        if choice is False:
            return "opted_out"
        if not self.settings.enabled:
            return "disabled"
        if self.settings.opt_in and choice is not True:
            return "not_opted_in"
        if choice is not True and not index_allowed(index, self.settings.indices):
            return "index_not_configured"
        if self.reranker is None:
            return "model_not_ready"
        if "source" in params:
            return "unreadable_body"
        return None

    async def search(
        self,
        method: str,
        url: URL,
        index: str | None,
        headers: Mapping[str, str],
        body: bytes,
    ) -> SearchResult:
        started = time.perf_counter()
        params = url.query
        reason = self._skip_reason(index, headers, params)
        parsed: dict[str, Any] | None = None
        if reason is None:
            if body.strip() and _media_type(headers) not in _JSON_TYPES:
                reason = "unreadable_body"
            else:
                parsed = es_body.load_object(body)
                reason = "unreadable_body" if parsed is None else None
        plan: es_body.Plan | str = reason or "unreadable_body"
        if reason is None and parsed is not None:
            plan = es_body.plan(
                parsed, params, window=self.settings.window, fields=self.settings.fields
            )
        out_headers = self.upstream.outgoing_headers(headers)
        if isinstance(plan, str):
            # Forward as sent (minus the gateway's own parameter and ext section).
            if parsed is not None and "ext" in parsed:
                body = es_body.dump(es_body.strip_gateway_ext(parsed))
            reply = await self.upstream.fetch(
                method, _forward_url(url, ()), out_headers, body or None
            )
            return _verbatim(reply, plan)
        assert parsed is not None
        wide = es_body.widen(parsed, plan)
        if not body.strip():
            out_headers["Content-Type"] = "application/json"
        t0 = time.perf_counter()
        reply = await self.upstream.fetch(
            "POST" if method == "GET" and not body else method,
            _forward_url(url, ("from", "size")),
            out_headers,
            es_body.dump(wide),
        )
        upstream_ms = (time.perf_counter() - t0) * 1000
        response = _json_object(reply) if 200 <= reply.status < 300 else None
        if response is None:
            return _verbatim(reply, "upstream_status" if reply.status >= 300 else "upstream_body")
        merged, status, why, rerank_ms = await self._rerank_one(
            plan, response, started, upstream_ms
        )
        result = _json_result(reply, merged, status, why)
        result.timings_ms = {"upstream": upstream_ms, "rerank": rerank_ms}
        return result

    async def _rerank_one(
        self, plan: es_body.Plan, response: dict[str, Any], started: float, upstream_ms: float
    ) -> tuple[dict[str, Any], str, str | None, float]:
        assert self.reranker is not None
        hits = (response.get("hits") or {}).get("hits") or []
        window = hits[: plan.window]
        found = es_body.passages(window, self.settings.fields, self.settings.max_doc_chars)
        texts = [p for p in found if p is not None]
        t0 = time.perf_counter()
        if not texts:
            gateway_ms = _gateway_ms(started, upstream_ms)
            return es_body.passthrough_page(response, plan, gateway_ms), "skipped", "no_text", 0.0
        outcome = await self.reranker.score(plan.query, texts, self.settings.timeout_s)
        rerank_ms = (time.perf_counter() - t0) * 1000
        scores_iter = iter(outcome.scores)
        scores = [next(scores_iter) if p is not None else None for p in found]
        has_text = [p is not None for p in found]
        gateway_ms = _gateway_ms(started, upstream_ms)
        if outcome.status == "skipped":
            merged = es_body.passthrough_page(response, plan, gateway_ms)
        else:
            merged = es_body.merge(response, plan, scores, has_text, gateway_ms)
        reason = outcome.reason
        if outcome.status == "full" and not all(has_text):
            return merged, "partial", "no_text", rerank_ms
        return merged, outcome.status, reason, rerank_ms

    async def msearch(
        self,
        method: str,
        url: URL,
        index: str | None,
        headers: Mapping[str, str],
        body: bytes,
    ) -> SearchResult:
        """Each sub-search of a ``_msearch`` is treated like a ``_search``."""
        started = time.perf_counter()
        params = url.query
        out_headers = self.upstream.outgoing_headers(headers)
        reason = self._skip_reason(index, headers, params)
        lines = _ndjson(body) if reason is None else None
        if reason is None and (lines is None or _media_type(headers) not in _NDJSON_TYPES):
            reason = "unreadable_body"
        if reason is not None or lines is None:
            reply = await self.upstream.fetch(method, _forward_url(url, ()), out_headers, body)
            return _verbatim(reply, reason or "unreadable_body")
        plans: list[es_body.Plan | str] = []
        out_lines: list[bytes] = []
        for head, sub in zip(lines[0::2], lines[1::2], strict=True):
            sub_index = head.get("index", index)
            if isinstance(sub_index, list):
                sub_index = ",".join(str(x) for x in sub_index)
            p: es_body.Plan | str = "index_not_configured"
            if _opt(headers, params) is True or index_allowed(sub_index, self.settings.indices):
                p = es_body.plan(sub, {}, window=self.settings.window, fields=self.settings.fields)
            plans.append(p)
            wide = es_body.widen(sub, p) if isinstance(p, es_body.Plan) else sub
            out_lines += [es_body.dump(head), es_body.dump(es_body.strip_gateway_ext(wide))]
        t0 = time.perf_counter()
        reply = await self.upstream.fetch(
            method, _forward_url(url, ()), out_headers, b"\n".join(out_lines) + b"\n"
        )
        upstream_ms = (time.perf_counter() - t0) * 1000
        response = _json_object(reply) if 200 <= reply.status < 300 else None
        responses = response.get("responses") if response else None
        if response is None or not isinstance(responses, list):
            return _verbatim(reply, "upstream_status" if reply.status >= 300 else "upstream_body")
        statuses: list[str] = []
        reasons: list[str] = []
        for i, p in enumerate(plans):
            sub_resp = responses[i] if i < len(responses) else None
            if not isinstance(p, es_body.Plan):
                statuses.append("skipped")
                reasons.append(p)
                continue
            if not isinstance(sub_resp, dict) or "error" in sub_resp:
                statuses.append("skipped")
                reasons.append("upstream_status")
                continue
            merged, status, why, _ = await self._rerank_one(p, sub_resp, started, upstream_ms)
            responses[i] = merged
            statuses.append(status)
            if why:
                reasons.append(why)
        overall = _overall(statuses)
        return _json_result(reply, response, overall, ",".join(sorted(set(reasons))) or None)


def _overall(statuses: list[str]) -> str:
    if statuses and all(s == "full" for s in statuses):
        return "full"
    if any(s in ("full", "partial") for s in statuses):
        return "partial"
    return "skipped"


def _gateway_ms(started: float, upstream_ms: float) -> int:
    return max(round((time.perf_counter() - started) * 1000 - upstream_ms), 0)


def _forward_url(url: URL, moved: tuple[str, ...]) -> str:
    """Path and query for upstream: the gateway's own parameter (and ``moved`` ones) removed."""
    drop = {OPT_PARAM, *moved}
    query = url.query
    if not any(key in query for key in drop):
        return url.raw_path_qs
    kept: MultiDict[str] = MultiDict((k, v) for k, v in query.items() if k not in drop)
    return url.with_query(kept).raw_path_qs if kept else url.raw_path


def _ndjson(body: bytes) -> list[dict[str, Any]] | None:
    lines = [line for line in body.split(b"\n") if line.strip()]
    if not lines or len(lines) % 2:
        return None
    out: list[dict[str, Any]] = []
    for line in lines:
        obj = es_body.load_object(line)
        if obj is None:
            return None
        out.append(obj)
    return out


def _json_object(reply: Reply) -> dict[str, Any] | None:
    try:
        value = json.loads(reply.body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _verbatim(reply: Reply, reason: str) -> SearchResult:
    return SearchResult(reply.status, reply.headers, reply.body, "skipped", reason)


def _json_result(
    reply: Reply, value: dict[str, Any], status: str, reason: str | None
) -> SearchResult:
    return SearchResult(reply.status, reply.headers, es_body.dump(value), status, reason)
