"""The search pipeline reached without the app: a scripted cluster, the fake model."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from yarl import URL

from gateway.es import body as es_body
from gateway.search import plan as es_plan
from gateway.search import request as search_request
from gateway.search.hooks import Page, Ranked
from gateway.search.pipeline import SearchFlow
from gateway.search.request import SearchRequest
from tests.doubles.upstream import ScriptedUpstream

ITALY = {"query": {"match": {"text": "capital of Italy"}}, "size": 2}
JSON = {"Content-Type": "application/json"}


def _request(
    body: dict[str, Any] | bytes,
    query: str = "",
    headers: dict[str, str] | None = None,
    path: str = "/docs/_search",
) -> SearchRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    url = URL(path + (f"?{query}" if query else ""))
    return SearchRequest("POST", url, "docs", {**JSON, **(headers or {})}, raw)


def _ids(body: bytes) -> list[str]:
    return [h["_id"] for h in json.loads(body)["hits"]["hits"]]


def _counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, calls: list[int]) -> None:
    real: Callable[..., Any] = getattr(module, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)


async def test_search_reranks_the_window_and_asks_the_cluster_wider(
    flow: SearchFlow, cluster: ScriptedUpstream
) -> None:
    result = await flow.search(_request(ITALY))
    assert result.status == 200
    assert result.rerank == "full" and result.reason is None
    assert _ids(result.body) == ["d3", "d1"]  # Rome first, the page cut to size 2
    sent = json.loads(cluster.last("/docs/_search").body)
    assert sent["from"] == 0 and sent["size"] >= 3  # the window, from 0
    assert set(result.timings_ms) >= {"upstream", "rerank"}


async def test_ext_rerank_is_validated_once_and_the_body_parsed_once(
    flow: SearchFlow, cluster: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    validated: list[int] = []
    parsed: list[int] = []
    _counting(monkeypatch, es_plan, "rerank_option", validated)
    _counting(monkeypatch, search_request, "rerank_option", validated)
    _counting(monkeypatch, es_body, "load_object", parsed)
    body = {**ITALY, "ext": {"rerank": {"window": 3, "explain": False}}}
    result = await flow.search(_request(body))
    assert result.rerank == "full"
    assert (len(validated), len(parsed)) == (1, 1)
    assert "ext" not in json.loads(cluster.last("/docs/_search").body)


async def test_a_skipped_search_goes_as_sent_minus_ext_rerank(
    flow: SearchFlow, cluster: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[int] = []
    _counting(monkeypatch, es_body, "load_object", parsed)
    body = {**ITALY, "ext": {"rerank": {"window": 3}}}
    result = await flow.search(_request(body, "rerank=false"))
    assert (result.rerank, result.reason, result.verbatim) == ("skipped", "opted_out", True)
    assert _ids(result.body) == ["d1", "d2"]  # the cluster's order
    assert json.loads(cluster.last("/docs/_search").body) == ITALY
    assert "rerank" not in cluster.last("/docs/_search").path_qs
    assert len(parsed) == 1


@pytest.mark.parametrize(
    ("body", "query", "reason"),
    [
        ({**ITALY, "size": 0}, "", "size_zero"),
        ({**ITALY, "sort": [{"title": "asc"}]}, "", "sorted"),
        ({"query": {"match_all": {}}}, "", "no_query_text"),
        (b"{not json", "", "unreadable_body"),
        (ITALY, "scroll=1m", "paginated_by_cursor"),
    ],
)
async def test_a_search_the_plan_refuses_has_its_reason(
    flow: SearchFlow, body: dict[str, Any] | bytes, query: str, reason: str
) -> None:
    result = await flow.search(_request(body, query))
    assert (result.rerank, result.reason) == ("skipped", reason)


class _Arm:
    """An experiment arm as the pipeline sees it (search.hooks.Arm)."""

    def __init__(self, *, rerank: bool, whole: bool) -> None:
        self.url = URL("/docs/_search")
        self.variant = "treatment" if rerank else "control"
        self.rerank = rerank
        self.window: int | None = None
        self.profile: str | None = None
        self.whole = whole
        self.served: list[Ranked] = []
        self.finished: list[int] = []

    def headers(self) -> dict[str, str]:
        return {"X-Experiment-Variant": self.variant}

    def finish(self, status: int, body: bytes) -> None:
        self.finished.append(status)

    async def serve(self, ranked: Ranked) -> Page:
        self.served.append(ranked)
        if not self.whole:
            return Page(ranked.upstream(), "skipped", "shadow")
        whole = await ranked.whole()
        return Page(whole.body, whole.status, whole.reason, whole.rerank_ms)


async def test_an_arm_builds_its_page_from_the_pipelines_results(flow: SearchFlow) -> None:
    shadow = _Arm(rerank=True, whole=False)
    result = await flow.search(_request(ITALY), arm=shadow)
    assert (result.rerank, result.reason) == ("skipped", "shadow")
    assert _ids(result.body) == ["d1", "d2"]
    assert shadow.served[0].plan.query == "capital of Italy"
    everything = _Arm(rerank=True, whole=True)
    result = await flow.search(_request(ITALY), arm=everything)
    assert result.rerank == "full"
    assert _ids(result.body) == ["d3", "d1", "d2"]  # every fetched hit, reranked


async def test_a_control_arm_is_forwarded_as_sent(
    flow: SearchFlow, cluster: ScriptedUpstream
) -> None:
    control = _Arm(rerank=False, whole=False)
    result = await flow.search(_request(ITALY), arm=control)
    assert (result.rerank, result.reason) == ("skipped", "experiment_control")
    assert control.served == []
    assert json.loads(cluster.last("/docs/_search").body) == ITALY
