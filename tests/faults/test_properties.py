"""Property-based tests: query-text extraction never raises; the merge keeps the window's hits."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.es import body as es_body
from gateway.es.query_text import find_text
from gateway.search import merge as es_merge
from gateway.search import plan as es_plan

KEYS = st.sampled_from(
    ["query", "bool", "must", "should", "match", "multi_match", "query_string", "knn",
     "retriever", "standard", "rrf", "retrievers", "ext", "rerank", "query_context",
     "query_text", "text", "title", "dis_max", "queries", "nested", "hybrid", "x"]
)  # fmt: skip
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(KEYS | st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=40,
)


@settings(max_examples=150, deadline=None)
@given(body=st.dictionaries(KEYS, JSON, max_size=5), q=st.none() | st.text(max_size=20))
def test_find_text_never_raises(body: dict[str, Any], q: str | None) -> None:
    text = find_text(body, q)
    assert text is None or (isinstance(text, str) and text == text.strip() and text)


@st.composite
def search_case(
    draw: st.DrawFn,
) -> tuple[dict[str, Any], es_plan.Plan, list[float | None], list[bool]]:
    n = draw(st.integers(0, 30))
    window = draw(st.integers(1, 20))
    from_ = draw(st.integers(0, window - 1))
    size = draw(st.integers(1, 15))
    hits = [
        {"_index": "docs", "_id": f"d{i}", "_score": float(n - i), "_source": {"text": f"t{i}"}}
        for i in range(n)
    ]
    plan = es_plan.Plan(
        query="q", from_=from_, size=size, window=window, fetch=max(window, from_ + size),
        added_fields=(), client_fields=False, first_stage=draw(st.booleans()),
    )  # fmt: skip
    in_window = min(n, window)
    has_text = draw(st.lists(st.booleans(), min_size=in_window, max_size=in_window))
    scores = [
        draw(st.none() | st.floats(-50, 50, allow_nan=False)) if t else None for t in has_text
    ]
    response = {
        "took": draw(st.integers(0, 1000)),
        "timed_out": False,
        "hits": {"total": {"value": n, "relation": "eq"}, "max_score": float(n), "hits": hits},
        "aggregations": {"a": {"value": 1}},
    }
    return response, plan, scores, has_text


@settings(max_examples=150, deadline=None)
@given(case=search_case())
def test_merge_is_valid_es_json_with_the_same_hits(
    case: tuple[dict[str, Any], es_plan.Plan, list[float | None], list[bool]],
) -> None:
    response, plan, scores, has_text = case
    original = json.loads(json.dumps(response))
    merged = json.loads(es_body.dump(es_merge.merge(response, plan, scores, has_text, 5)))
    assert response == original  # the input is not modified
    page = merged["hits"]["hits"]
    hits = original["hits"]["hits"]
    window_ids = {h["_id"] for h in hits[: plan.window]}
    # The page is the from:size slice of a permutation of the window followed by the rest.
    expected_ids = [h["_id"] for h in hits]
    reordered = [h["_id"] for h in page]
    assert len(reordered) == len(set(reordered))
    assert len(page) == len(expected_ids[plan.from_ : plan.from_ + plan.size])
    if plan.from_ + plan.size <= plan.window:
        assert set(reordered) <= window_ids
    all_pages = {h["_id"] for h in es_merge.merge(response, _whole(plan), scores, has_text, 0)[
        "hits"]["hits"]}  # fmt: skip
    assert all_pages == {h["_id"] for h in hits}
    assert merged["hits"]["total"] == original["hits"]["total"]
    assert merged["aggregations"] == original["aggregations"]
    assert merged["took"] == original["took"] + 5
    for hit in page:
        assert isinstance(hit["_score"], float)
    # Scored hits come out in score order among themselves.
    by_id = {f"d{i}": s for i, s in enumerate(scores) if s is not None}
    ranked = [by_id[i] for i in reordered if i in by_id]
    assert ranked == sorted(ranked, reverse=True)


def _whole(plan: es_plan.Plan) -> es_plan.Plan:
    """The same plan, asking for every hit from 0 (to see the full ranked list)."""
    return es_plan.Plan(
        query=plan.query, from_=0, size=10_000, window=plan.window, fetch=plan.fetch,
        added_fields=(), client_fields=False, first_stage=plan.first_stage,
    )  # fmt: skip
