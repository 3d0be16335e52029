"""es_body: plan, widen, passages, reorder/merge and the ext strip, on plain dicts."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import ClientRequestError
from gateway.es import body as es_body
from gateway.rerank import documents
from gateway.rerank.documents import DocumentSpec
from gateway.search import merge as es_merge
from gateway.search import plan as es_plan
from gateway.search.merge import FIRST_STAGE_FIELD, FIRST_STAGE_RANK_FIELD
from gateway.search.plan import Plan

FIELDS = ("title", "text")
QUERY = {"match": {"text": "berlin"}}


def make_plan(body: dict[str, Any], params: dict[str, str] | None = None, window: int = 10) -> Plan:
    got = es_plan.plan(body, params or {}, window=window, fields=FIELDS)
    assert isinstance(got, Plan), got
    return got


# ---- load_object ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", [b"{", b"[1]", b'"x"', b'{"a":1,"a":2}', b'{"a":NaN}', b"\xff\xfe", b"1"]
)
def test_load_object_refuses_what_it_cannot_read_cleanly(raw: bytes) -> None:
    assert es_body.load_object(raw) is None


def test_load_object_empty_body_is_an_empty_search() -> None:
    assert es_body.load_object(b"  \n") == {}
    assert es_body.load_object(b'{"size": 3}') == {"size": 3}


# ---- plan -----------------------------------------------------------------------------------


def test_plan_defaults() -> None:
    p = make_plan({"query": QUERY})
    assert (p.query, p.from_, p.size, p.window, p.fetch) == ("berlin", 0, 10, 10, 10)
    assert p.added_fields == FIELDS
    assert not p.client_fields and not p.first_stage


def test_plan_from_size_from_body_and_url() -> None:
    assert (make_plan({"query": QUERY, "from": 3, "size": 4}).from_, 3) == (3, 3)
    p = make_plan({"query": QUERY, "from": 3, "size": 4}, {"from": "5", "size": "2"})
    assert (p.from_, p.size, p.fetch) == (5, 2, 10)


def test_plan_fetch_covers_a_page_straddling_the_window() -> None:
    p = make_plan({"query": QUERY, "from": 8, "size": 5})
    assert (p.window, p.fetch) == (10, 13)


def test_plan_ext_window_is_capped_at_ten_times() -> None:
    assert make_plan({"query": QUERY, "ext": {"rerank": {"window": 25}}}).window == 25
    assert make_plan({"query": QUERY, "ext": {"rerank": {"window": 500}}}).window == 100


@pytest.mark.parametrize(
    ("body", "params", "reason"),
    [
        ({"query": QUERY, "size": 0}, {}, "size_zero"),
        ({"query": QUERY}, {"size": "0"}, "size_zero"),
        ({"query": QUERY}, {"scroll": "1m"}, "paginated_by_cursor"),
        ({"query": QUERY, "search_after": [1.0]}, {}, "paginated_by_cursor"),
        ({"query": QUERY, "sort": [{"year": "desc"}]}, {}, "sorted"),
        ({"query": QUERY, "sort": "year"}, {}, "sorted"),
        ({"query": QUERY, "sort": [{"_score": "asc"}]}, {}, "sorted"),
        ({"query": QUERY, "sort": [{"_score": {"order": "asc"}}]}, {}, "sorted"),
        ({"query": QUERY}, {"sort": "year:desc"}, "sorted"),
        ({"query": QUERY}, {"sort": "_score:asc"}, "sorted"),
        ({"query": QUERY, "from": 10}, {}, "beyond_window"),
        ({"query": QUERY}, {"from": "12"}, "beyond_window"),
        ({"query": QUERY, "stored_fields": "_none_"}, {}, "no_source"),
        ({"query": {"match_all": {}}}, {}, "no_query_text"),
        ({"query": QUERY, "size": "ten"}, {}, "unreadable_body"),
        ({"query": QUERY, "size": True}, {}, "unreadable_body"),
        ({"query": QUERY, "from": -1}, {}, "unreadable_body"),
        ({"query": QUERY}, {"size": "x"}, "unreadable_body"),
    ],
)
def test_plan_skips(body: dict[str, Any], params: dict[str, str], reason: str) -> None:
    assert es_plan.plan(body, params, window=10, fields=FIELDS) == reason


@pytest.mark.parametrize(
    "sort",
    [
        "_score",
        ["_score"],
        [{"_score": "desc"}],
        [{"_score": {"order": "desc"}}, {"year": "asc"}],
    ],
)
def test_plan_sort_by_score_is_reranked(sort: Any) -> None:
    make_plan({"query": QUERY, "sort": sort})
    make_plan({"query": QUERY}, {"sort": "_score"})


def test_plan_text_from_uri_q() -> None:
    assert make_plan({}, {"q": "title:berlin"}).query == "berlin"


@pytest.mark.parametrize(
    ("client", "added"),
    [
        (["title"], ("text",)),
        (["*"], ()),
        (["t*"], ()),
        ([{"field": "text", "format": "x"}], ("title",)),
        (["other"], FIELDS),
        ([], FIELDS),
    ],
)
def test_plan_adds_only_fields_the_client_did_not_ask_for(
    client: list[Any], added: tuple[str, ...]
) -> None:
    p = make_plan({"query": QUERY, "fields": client})
    assert p.added_fields == added
    assert p.client_fields


@pytest.mark.parametrize(
    ("rerank", "reason"),
    [
        ("x", "[ext.rerank] must be an object"),
        ({"window": "5"}, 'must be a positive integer, found ["5"]'),
        ({"window": 0}, "[ext.rerank.window] must be a positive integer, found [0]"),
        ({"window": -3}, "found [-3]"),
        ({"window": True}, "found [true]"),
        ({"explain": "yes"}, '[ext.rerank.explain] must be true or false, found ["yes"]'),
        ({"first_stage_score": 1}, "[ext.rerank.first_stage_score] must be true or false"),
        ({"query": ["a"]}, "[ext.rerank.query] must be a string"),
        ({"query_context": "berlin"}, "[ext.rerank.query_context] must be"),
        ({"query_context": {"query_text_path": "q"}}, "[ext.rerank.query_context] must be"),
    ],
)
def test_bad_rerank_options_are_the_clients_error(rerank: object, reason: str) -> None:
    with pytest.raises(ClientRequestError) as refused:
        es_plan.plan({"query": QUERY, "ext": {"rerank": rerank}}, {}, window=10, fields=FIELDS)
    body = refused.value.body()
    assert body["status"] == 400
    assert body["error"]["type"] == "illegal_argument_exception"
    assert reason in body["error"]["reason"]


@pytest.mark.parametrize(
    ("rerank", "reason"),
    [
        ({"windw": 5}, "[rerank] unknown field [windw] did you mean [window]?"),
        ({"window": 5, "size": 3}, "[rerank] unknown field [size]"),
        ({"Explain": True}, "[rerank] unknown field [Explain] did you mean [explain]?"),
        (
            {"query_context": {"query_text": "x", "lang": "en"}},
            "[query_context] unknown field [lang]",
        ),
    ],
)
def test_unknown_rerank_option_is_named(rerank: dict[str, Any], reason: str) -> None:
    # As ES's object parsers answer, e.g. "[highlight] unknown field [fieldz]".
    with pytest.raises(ClientRequestError) as refused:
        es_plan.plan({"query": QUERY, "ext": {"rerank": rerank}}, {}, window=10, fields=FIELDS)
    error = refused.value.body()["error"]
    assert (error["type"], error["reason"]) == ("x_content_parse_exception", reason)
    assert error["root_cause"] == [{"type": error["type"], "reason": reason}]


def test_every_documented_rerank_option_is_accepted() -> None:
    options = {
        "query_context": {"query_text": "berlin"},
        "window": 5,
        "profile": "papers",
        "timeout_ms": 300,
        "explain": True,
        "first_stage_score": False,
    }
    assert set(options) | {"query"} == set(es_plan.RERANK_OPTIONS)
    assert es_plan.rerank_option({"ext": {"rerank": options}}) == options
    assert es_plan.rerank_option({"ext": {"rerank": {"query": "berlin"}}}) == {"query": "berlin"}


# ---- widen / strip --------------------------------------------------------------------------


def test_widen_asks_from_zero_with_fields() -> None:
    body = {"query": QUERY, "from": 4, "size": 3, "_source": ["year"], "fields": ["title"]}
    wide = es_plan.widen(body, make_plan(body))
    assert wide == {
        "query": QUERY,
        "from": 0,
        "size": 10,
        "_source": ["year"],
        "fields": ["title", "text"],
    }
    assert body["from"] == 4  # the client's body is not changed


def test_widen_adds_no_fields_when_the_client_pattern_covers_them() -> None:
    body = {"query": QUERY, "fields": ["*"]}
    assert es_plan.widen(body, make_plan(body))["fields"] == ["*"]


def test_strip_gateway_ext() -> None:
    body = {"query": QUERY, "ext": {"rerank": {"window": 5}, "other": {"a": 1}}}
    assert es_body.strip_gateway_ext(body) == {"query": QUERY, "ext": {"other": {"a": 1}}}
    assert es_body.strip_gateway_ext({"ext": {"rerank": {}}}) == {}
    untouched = {"ext": {"other": 1}}
    assert es_body.strip_gateway_ext(untouched) is untouched
    wide = es_plan.widen({"query": QUERY, "ext": {"rerank": {}}}, make_plan({"query": QUERY}))
    assert "ext" not in wide


# ---- document text (documents.segments reads what the plan asked for) -----------------------


def hit(doc_id: str, score: float = 1.0, **extra: Any) -> dict[str, Any]:
    return {"_index": "docs", "_id": doc_id, "_score": score, **extra}


def texts(
    hits: list[dict[str, Any]], fields: tuple[str, ...] = FIELDS, cut: int = 1000
) -> list[list[str]]:
    return documents.segments(hits, DocumentSpec(fields=fields, max_chars=cut))


def test_text_dotted_paths_arrays_and_order() -> None:
    hits = [
        hit("a", _source={"meta": {"title": "Berlin"}, "body": ["first", "second", 7]}),
        hit("b", _source={"meta": [{"title": "x"}], "body": "only body"}),
        hit("c", _source={"body": {"nested": "not text"}, "meta": {"title": True}}),
    ]
    assert texts(hits, ("meta.title", "body")) == [["Berlin first second 7"], ["x only body"], []]


def test_text_prefers_fields_over_source() -> None:
    h = hit("a", _source={"title": "from source"}, fields={"title": ["from", "fields"]})
    assert texts([h], ("title",)) == [["from fields"]]


def test_text_missing_blank_and_cut() -> None:
    hits = [hit("a"), hit("b", _source={"title": "  "}), hit("c", _source={"title": "abcdef"})]
    assert texts(hits, cut=3) == [[], [], ["abc"]]


# ---- reorder / merge ------------------------------------------------------------------------


def test_reorder_by_score_ties_keep_upstream_order() -> None:
    assert es_merge.reorder([1.0, 3.0, 3.0, 2.0], [True] * 4) == [1, 2, 3, 0]


def test_reorder_hits_without_text_go_last() -> None:
    assert es_merge.reorder([None, 1.0, None, 2.0], [False, True, False, True]) == [3, 1, 0, 2]


def test_reorder_unscored_hits_keep_their_positions() -> None:
    # Hit 1 has text but no score (deadline): it stays second; the scored ones fill the rest.
    assert es_merge.reorder([1.0, None, 5.0, 3.0], [True] * 4) == [2, 1, 3, 0]


def upstream(n: int, **extra: Any) -> dict[str, Any]:
    hits = [
        hit(f"d{i}", float(n - i), _source={"title": f"t{i}"}, fields={"title": [f"t{i}"]})
        for i in range(n)
    ]
    return {
        "took": 5,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": 1234, "relation": "eq"}, "max_score": float(n), "hits": hits},
        **extra,
    }


def ids(response: dict[str, Any]) -> list[str]:
    return [h["_id"] for h in response["hits"]["hits"]]


def page(body: dict[str, Any], n: int = 15, window: int = 10) -> dict[str, Any]:
    """Rerank ``n`` upstream hits, scores rising with upstream rank (so the window reverses)."""
    p = make_plan({"query": QUERY, **body}, window=window)
    resp = upstream(n)
    window_hits = resp["hits"]["hits"][: p.window]
    scores = [float(i) for i in range(len(window_hits))]
    return es_merge.merge(resp, p, scores, [True] * len(scores), 3)


def test_pages_inside_the_window_are_stable_and_disjoint() -> None:
    pages = [ids(page({"from": f, "size": 3})) for f in (0, 3, 6)]
    assert pages == [["d9", "d8", "d7"], ["d6", "d5", "d4"], ["d3", "d2", "d1"]]
    flat = [x for p in pages for x in p]
    assert len(set(flat)) == len(flat)


def test_page_straddling_the_window_edge() -> None:
    assert ids(page({"from": 8, "size": 4})) == ["d1", "d0", "d10", "d11"]


def test_merge_keeps_what_the_cluster_said() -> None:
    p = make_plan({"query": QUERY, "size": 2})
    aggs = {"years": {"buckets": [{"key": 1990, "doc_count": 3}]}}
    suggest = {"s": [{"text": "berln", "options": []}]}
    resp = upstream(4, aggregations=aggs, suggest=suggest)
    resp["hits"]["hits"][1]["highlight"] = {"text": ["<em>berlin</em>"]}
    resp["hits"]["hits"][1]["inner_hits"] = {"c": {"hits": {"hits": []}}}
    out = es_merge.merge(resp, p, [0.1, 0.9, 0.5, 0.2], [True] * 4, 7)
    assert ids(out) == ["d1", "d2"]
    assert out["aggregations"] == aggs and out["suggest"] == suggest
    assert out["_shards"] == resp["_shards"] and out["timed_out"] is False
    assert out["hits"]["total"] == {"value": 1234, "relation": "eq"}
    assert out["hits"]["max_score"] == 0.9
    assert [h["_score"] for h in out["hits"]["hits"]] == [0.9, 0.5]
    assert out["hits"]["hits"][0]["highlight"] == {"text": ["<em>berlin</em>"]}
    assert "inner_hits" in out["hits"]["hits"][0]
    assert out["took"] == 12
    # The gateway's own `fields` entry is gone again; the source is the client's.
    assert all("fields" not in h for h in out["hits"]["hits"])
    assert out["hits"]["hits"][0]["_source"] == {"title": "t1"}
    assert resp["hits"]["hits"][0]["_score"] == 4.0  # the upstream dict is not changed


def test_merge_keeps_fields_the_client_asked_for() -> None:
    p = make_plan({"query": QUERY, "fields": ["year"]})
    resp = upstream(2)
    for h in resp["hits"]["hits"]:
        h["fields"]["year"] = [1989]
    out = es_merge.merge(resp, p, [1.0, 2.0], [True, True], 0)
    assert [h["fields"] for h in out["hits"]["hits"]] == [{"year": [1989]}] * 2


def test_merge_client_fields_matching_added_ones_are_kept() -> None:
    p = make_plan({"query": QUERY, "fields": ["title"]})
    out = es_merge.merge(upstream(2), p, [1.0, 2.0], [True, True], 0)
    assert [h["fields"] for h in out["hits"]["hits"]] == [{"title": ["t1"]}, {"title": ["t0"]}]


def test_merge_first_stage_score_and_rank() -> None:
    p = make_plan({"query": QUERY, "ext": {"rerank": {"first_stage_score": True}}})
    out = es_merge.merge(upstream(3), p, [1.0, 2.0, 3.0], [True] * 3, 0)
    first = out["hits"]["hits"][0]
    assert first["_id"] == "d2" and first["_score"] == 3.0
    assert first["fields"] == {FIRST_STAGE_FIELD: [1.0], FIRST_STAGE_RANK_FIELD: [3]}


def test_merge_beyond_the_window_keeps_upstream_order_below_the_reranked_scores() -> None:
    out = page({"from": 9, "size": 5}, n=15)
    assert ids(out) == ["d0", "d10", "d11", "d12", "d13"]
    last_reranked, *beyond = [h["_score"] for h in out["hits"]["hits"]]
    # One scale on the page: below the last reranked score, the cluster's gaps kept.
    assert max(beyond) < last_reranked
    assert [b - beyond[0] for b in beyond] == [0.0, -1.0, -2.0, -3.0]
    assert all(b == int(b) for b in beyond)  # the cluster's 5, 4, 3, 2 moved by a whole number


def test_merge_with_fewer_hits_than_the_page() -> None:
    out = page({"from": 2, "size": 10}, n=4)
    assert ids(out) == ["d1", "d0"]


def test_passthrough_page_keeps_upstream_order_and_max_score() -> None:
    p = make_plan({"query": QUERY, "from": 1, "size": 2})
    out = es_merge.passthrough_page(upstream(5), p, 2)
    assert ids(out) == ["d1", "d2"]
    assert out["hits"]["max_score"] == 5.0
    assert out["took"] == 7
    assert all("fields" not in h for h in out["hits"]["hits"])


def test_merge_of_an_empty_answer() -> None:
    p = make_plan({"query": QUERY})
    out = es_merge.merge(upstream(0), p, [], [], 0)
    assert out["hits"]["hits"] == [] and out["hits"]["max_score"] == 0.0


# ---- hit options, sort values, cursors (issue 13) -------------------------------------------


@pytest.mark.parametrize(
    ("options", "added", "shadowed"),
    [
        ({}, FIELDS, ()),
        ({"fields": ["ti*"]}, ("text",), ()),
        ({"stored_fields": ["title"]}, ("text",), ()),
        ({"docvalue_fields": [{"field": "text"}]}, ("title",), ("text",)),
        ({"script_fields": {"title": {"script": "1"}}}, ("text",), ("title",)),
        ({"script_fields": {"title": {}}, "fields": ["title"]}, ("text",), ()),
        ({"collapse": {"field": "t*"}}, (), FIELDS),
        ({"docvalue_fields": ["t?tle"]}, FIELDS, ()),  # "?" is no wildcard in ES patterns
    ],
)
def test_plan_asks_only_for_text_no_client_option_returns(
    options: dict[str, Any], added: tuple[str, ...], shadowed: tuple[str, ...]
) -> None:
    p = make_plan({"query": QUERY, **options})
    assert (p.added_fields, p.shadowed) == (added, shadowed)


def test_text_is_not_read_from_a_shadowed_fields_entry() -> None:
    p = make_plan({"query": QUERY, "script_fields": {"title": {"script": "1"}}})
    hits = [hit("a", 1.0, _source={"title": "real"}, fields={"title": [2], "x": [1]})]
    seen = es_merge.text_hits(hits, p)
    assert seen[0]["fields"] == {"x": [1]} and hits[0]["fields"]["title"] == [2]
    assert documents.render(seen[0], DocumentSpec(fields=("title",))) == "real"


def test_merge_drops_a_fields_object_only_the_gateway_filled() -> None:
    p = make_plan({"query": QUERY, "fields": ["missing"]})
    out = es_merge.merge(upstream(2), p, [1.0, 2.0], [True, True], 0)
    assert all("fields" not in h for h in out["hits"]["hits"])


def sorted_upstream(n: int) -> dict[str, Any]:
    resp = upstream(n)
    resp["hits"]["max_score"] = None  # Elasticsearch's answer to a sorted search
    for h in resp["hits"]["hits"]:
        h["sort"] = [h["_score"], 7]
    return resp


def test_merge_rewrites_the_score_sort_value_and_keeps_max_score_null() -> None:
    p = make_plan({"query": QUERY, "size": 4, "sort": ["_score", {"n": "desc"}]}, window=3)
    out = es_merge.merge(sorted_upstream(5), p, [0.1, 0.3, 0.2], [True] * 3, 0)
    hits = out["hits"]["hits"]
    assert [h["sort"] for h in hits] == [[h["_score"], 7] for h in hits]
    assert [h["_score"] for h in hits][:3] == [0.3, 0.2, 0.1] and hits[3]["_score"] < 0.1
    assert out["hits"]["max_score"] is None


def test_merge_breaks_equal_reranked_scores_by_the_tie_breakers() -> None:
    p = make_plan({"query": QUERY, "sort": ["_score", {"n": "desc"}]}, window=3)
    resp = sorted_upstream(3)
    for h, n in zip(resp["hits"]["hits"], [1, 5, 3], strict=True):
        h["sort"] = [h["_score"], n]
    out = es_merge.merge(resp, p, [0.5, 0.5, 0.5], [True] * 3, 0)
    assert [h["sort"][1] for h in out["hits"]["hits"]] == [5, 3, 1]


def test_plan_reads_search_after_only_with_a_score_first_sort() -> None:
    sort = ["_score", {"n": "desc"}]
    p = make_plan({"query": QUERY, "size": 4, "sort": sort, "search_after": [1.5, 3]})
    assert (p.cursor, p.orders, p.fetch) == ((1.5, 3), (True, True), 14)
    wide = es_plan.widen({"query": QUERY, "sort": sort, "search_after": [1.5, 3]}, p)
    assert "search_after" not in wide and (wide["from"], wide["size"]) == (0, 14)
    for body in (
        {"search_after": [1.5]},
        {"sort": sort, "search_after": 1.5},
        {"sort": sort, "search_after": [1.5, 3], "from": 2},
    ):
        assert es_plan.plan({"query": QUERY, **body}, {}, window=10, fields=FIELDS) == (
            "paginated_by_cursor"
        )
