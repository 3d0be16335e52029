"""Whether a search is reranked, and under which profile and deadline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from yarl import URL

from gateway.rerank.profiles import Profiles
from gateway.rerank.reranker import Reranker
from gateway.search.decide import Planner
from gateway.search.hooks import Page, Ranked
from gateway.search.mappings import IndexFields, IndexMapping, parse
from gateway.search.plan import Plan
from gateway.search.request import SearchRequest
from tests.doubles.gateway import settings_with

ITALY = {"query": {"match": {"text": "capital of Italy"}}}


def _planner(rerank: dict[str, Any] | None = None, *, ready: bool = True) -> Planner:
    settings = settings_with(["http://127.0.0.1:1"], rerank=rerank or {})
    profiles = Profiles(settings.rerank, settings.relevance)
    model = object() if ready else None

    def models(name: str) -> Reranker | None:
        return model  # type: ignore[return-value]  # only its presence is read

    return Planner(settings.rerank, profiles, models, 2.0, None)


def _request(query: str = "", headers: dict[str, str] | None = None) -> SearchRequest:
    url = URL("/docs/_search" + (f"?{query}" if query else ""))
    return SearchRequest("POST", url, "docs", headers or {}, b"{}")


class _Arm:
    url = URL("/docs/_search")
    variant = "v"
    window: int | None = 7
    profile: str | None = None

    def __init__(self, rerank: bool) -> None:
        self.rerank = rerank

    def headers(self) -> dict[str, str]:
        return {}

    def finish(self, status: int, body: bytes) -> None:
        pass

    async def serve(self, ranked: Ranked) -> Page:
        raise AssertionError("planning serves nothing")


@pytest.mark.parametrize(
    ("rerank", "ready", "query", "headers", "reason"),
    [
        ({}, True, "rerank=false", {}, "opted_out"),
        ({"enabled": False}, True, "", {}, "disabled"),
        ({"opt_in": True}, True, "", {}, "not_opted_in"),
        ({"opt_in": True}, True, "", {"X-Rerank": "on"}, None),
        ({"indices": ["logs-*"]}, True, "", {}, "index_not_configured"),
        ({"indices": ["logs-*"]}, True, "rerank=true", {}, None),  # asked: any index
        ({}, False, "", {}, "model_not_ready"),
        ({}, True, "source=%7B%7D", {}, "unreadable_body"),
        ({}, True, "", {}, None),
    ],
)
def test_why_a_search_is_not_reranked(
    rerank: dict[str, Any], ready: bool, query: str, headers: dict[str, str], reason: str | None
) -> None:
    assert _planner(rerank, ready=ready).skip(_request(query, headers)) == reason


def test_a_control_arm_is_the_last_reason() -> None:
    planner = _planner()
    assert planner.skip(_request(), _Arm(rerank=False)) == "experiment_control"
    assert planner.skip(_request(), _Arm(rerank=True)) is None
    assert planner.skip(_request("rerank=0"), _Arm(rerank=False)) == "opted_out"


async def test_the_plan_takes_the_arms_window_and_a_capped_deadline() -> None:
    planner = _planner({"window": 20})
    plan, profile = await planner.plan(ITALY, {}, {}, "docs", headers={})
    assert isinstance(plan, Plan) and plan.window == 20
    plan, profile = await planner.plan(ITALY, {}, {}, "docs", headers={}, arm=_Arm(rerank=True))
    assert isinstance(plan, Plan) and plan.window == 7 and profile.window == 7
    _, profile = await planner.plan(ITALY, {"timeout_ms": 500}, {}, "docs", headers={})
    assert profile.timeout_s == 0.5
    _, profile = await planner.plan(ITALY, {}, {}, "docs", headers={"X-Rerank-Timeout-Ms": "9000"})
    assert profile.timeout_s == 2.0  # no more than the planner's most


async def test_the_validated_option_is_the_one_planned_with() -> None:
    plan, _ = await _planner().plan(ITALY, {"window": 3}, {}, "docs", headers={})
    assert isinstance(plan, Plan) and plan.window == 3


class _Mapped(IndexFields):
    """Index fields with a fixed ``_mapping`` answer (no cluster)."""

    def __init__(self, mappings: dict[str, Any]) -> None:
        self.enabled = True
        self._told = {}
        self._answer = {"docs": {"mappings": mappings}}

    async def mappings(
        self, index: str | None, headers: Mapping[str, str] | None = None
    ) -> list[IndexMapping] | None:
        return parse(self._answer)


def _fields_planner(mappings: dict[str, Any]) -> Planner:
    settings = settings_with(["http://127.0.0.1:1"])
    profiles = Profiles(settings.rerank, settings.relevance)
    return Planner(settings.rerank, profiles, lambda _: None, 2.0, _Mapped(mappings))


PLAIN = {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}}
STORED = {"properties": {"title": {"type": "text", "store": True}, "text": {"type": "text"}}}


@pytest.mark.parametrize(
    ("mappings", "body", "params", "added"),
    [
        (PLAIN, {}, {}, ()),  # the whole _source comes back: the text is in it
        (PLAIN, {"_source": True}, {}, ()),
        (PLAIN, {"_source": False}, {}, ("title", "text")),
        (PLAIN, {"_source": ["title"]}, {}, ("title", "text")),
        (PLAIN, {}, {"_source_excludes": "text"}, ("title", "text")),
        # stored_fields brings back a stored field; the cluster has nothing for another
        (STORED, {"stored_fields": ["title"]}, {}, ("text",)),
        (PLAIN, {"stored_fields": ["title"]}, {}, ("title", "text")),
        (STORED, {"stored_fields": ["*"]}, {}, ("text",)),
        # URL parameters as Elasticsearch reads them: stored_fields replaces the body's
        (STORED, {}, {"stored_fields": "title"}, ("text",)),
        (STORED, {"stored_fields": ["title"]}, {"stored_fields": "other"}, ("title", "text")),
        (PLAIN, {}, {"stored_fields": "title,text"}, ("title", "text")),
        # Elasticsearch leaves _source out beside script_fields unless it is asked for
        (PLAIN, {"script_fields": {"n": {"script": "1"}}}, {}, ("title", "text")),
        (PLAIN, {"script_fields": {"n": {"script": "1"}}, "_source": True}, {}, ()),
        (PLAIN, {"runtime_mappings": {"text": {"type": "keyword"}}}, {}, ("title", "text")),
        (PLAIN, {}, {"expand_wildcards": "all"}, ("title", "text")),
        ({**PLAIN, "runtime": {"title": {"type": "keyword"}}}, {}, {}, ("title", "text")),
        ({**PLAIN, "_source": {"enabled": False}}, {}, {}, ("title", "text")),
        (
            {"properties": {"title": {"type": "alias", "path": "t"}, "text": {"type": "text"}}},
            {},
            {},
            ("title", "text"),
        ),
    ],
)
async def test_the_text_is_asked_for_in_fields_only_where_source_lacks_it(
    mappings: dict[str, Any], body: dict[str, Any], params: dict[str, str], added: tuple[str, ...]
) -> None:
    p, _ = await _fields_planner(mappings).plan({**ITALY, **body}, {}, params, "docs", headers={})
    assert isinstance(p, Plan)
    assert p.added_fields == added


async def test_a_remote_cluster_s_index_keeps_asking_for_fields() -> None:
    p, _ = await _fields_planner(PLAIN).plan(ITALY, {}, {}, "docs,remote:docs", headers={})
    assert isinstance(p, Plan)
    assert p.added_fields == ("title", "text")


async def test_a_docvalue_fields_parameter_shadows_like_the_body_option() -> None:
    """``?docvalue_fields=title``: the hit's ``fields.title`` is the client's doc value, so
    the title is read from ``_source`` (whole here: nothing else is asked for)."""
    planner = _fields_planner(PLAIN)
    p, _ = await planner.plan(ITALY, {}, {"docvalue_fields": "title"}, "docs", headers={})
    assert isinstance(p, Plan)
    assert (p.shadowed, p.added_fields) == (("title",), ())


async def test_stored_fields_none_as_a_parameter_is_not_reranked() -> None:
    p, _ = await _fields_planner(PLAIN).plan(
        ITALY, {}, {"stored_fields": "_none_"}, "docs", headers={}
    )
    assert p == "no_source"
