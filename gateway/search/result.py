"""What the pipeline answers: a ``SearchResult`` (status, headers, body, rerank outcome),
and the ways one is made from the cluster's reply (verbatim, as JSON, trimmed).

Also the URL sent upstream (the gateway's own parameters removed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from multidict import CIMultiDict
from yarl import URL

from gateway.es import body as es_body
from gateway.rerank.reranker import Reason, Status
from gateway.search.filter_path import from_params
from gateway.search.reasons import joined
from gateway.search.request import OPT_PARAM
from gateway.upstream.client import Reply

RERANK_HEADER = "X-Rerank"  # full | partial | skipped, on every _search / _msearch answer
REASON_HEADER = "X-Rerank-Reason"
EACH_HEADER = "X-Rerank-Each"  # _msearch: full | partial | skipped per sub-search, in order
EACH_REASON_HEADER = "X-Rerank-Each-Reason"  # _msearch: each one's reason, "-" when none


@dataclass(slots=True)
class SearchResult:
    """What the handler sends: status, headers, body, and the rerank outcome."""

    status: int
    headers: CIMultiDict[str]
    body: bytes
    rerank: Status = "skipped"
    reasons: tuple[Reason, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    verbatim: bool = False  # the cluster's own bytes: relayed without recompressing

    @property
    def reason(self) -> str | None:
        """The ``X-Rerank-Reason`` header: the reasons, each once, comma-separated."""
        return joined(self.reasons)


def reasons_of(*reasons: Reason | None) -> tuple[Reason, ...]:
    return tuple(r for r in reasons if r is not None)


def overall(statuses: Iterable[Status]) -> Status:
    """Several searches' outcome as one: full when all are, partial when some are."""
    seen = list(statuses)
    if seen and all(s == "full" for s in seen):
        return "full"
    if any(s in ("full", "partial") for s in seen):
        return "partial"
    return "skipped"


def verbatim(reply: Reply, reason: Reason) -> SearchResult:
    return SearchResult(
        reply.status, reply.headers, reply.body, "skipped", (reason,), verbatim=True
    )


def json_result(
    reply: Reply | None,
    value: dict[str, Any],
    status: Status,
    reasons: tuple[Reason, ...],
    params: Mapping[str, str],
    *,
    timings: dict[str, float] | None = None,
) -> SearchResult:
    """``value`` trimmed by the client's ``filter_path`` and written as it asked
    (``?pretty``); the status and headers the cluster's (a 200 of JSON without ``reply``)."""
    keep = from_params(params)
    value = value if keep is None else keep.apply(value)
    body = es_body.dump_pretty(value) if es_body.wants_pretty(params) else es_body.dump(value)
    if reply is None:
        status_code, headers = 200, CIMultiDict({"Content-Type": "application/json"})
    else:
        status_code, headers = reply.status, reply.headers
    return SearchResult(status_code, headers, body, status, reasons, timings_ms=timings or {})


def unread(
    reply: Reply, response: dict[str, Any] | None, params: Mapping[str, str]
) -> SearchResult:
    """A cluster answer the gateway does not rerank: as it came (errors are never trimmed,
    as in Elasticsearch), or a 2xx JSON object trimmed by the client's ``filter_path``."""
    if response is None or from_params(params) is None:
        return verbatim(reply, "upstream_status" if reply.status >= 300 else "upstream_body")
    return json_result(reply, response, "skipped", ("upstream_body",), params)


def ok_object(reply: Reply) -> dict[str, Any] | None:
    """A 2xx reply's JSON object; None for any other reply."""
    return json_object(reply) if 200 <= reply.status < 300 else None


def json_object(reply: Reply) -> dict[str, Any] | None:
    try:
        value = json.loads(reply.body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def forward_url(url: URL, moved: tuple[str, ...] = ()) -> str:
    """Path and query for upstream: the gateway's own parameter (and ``moved`` ones) removed."""
    drop = {OPT_PARAM, *moved}
    if not any(key in url.query for key in drop):
        return url.raw_path_qs
    # The other parameters keep their bytes exactly (no re-encoding of %20 as +).
    kept = [
        part
        for part in url.raw_query_string.split("&")
        if part and unquote_plus(part.split("=", 1)[0]) not in drop
    ]
    return f"{url.raw_path}?{'&'.join(kept)}" if kept else url.raw_path
