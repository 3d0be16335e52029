"""Query text found in every supported shape of the query DSL."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.es.query_text import MAX_CHARS, explicit_text, find_text

MATCH = {"match": {"text": "berlin population"}}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"match": {"text": "berlin population"}}, "berlin population"),
        ({"match": {"text": {"query": "berlin wall", "operator": "and"}}}, "berlin wall"),
        ({"match_phrase": {"title": "fall of the wall"}}, "fall of the wall"),
        ({"match_phrase": {"title": {"query": "fall of the wall", "slop": 2}}}, "fall of the wall"),
        ({"match_phrase_prefix": {"title": "berl"}}, "berl"),
        ({"match_bool_prefix": {"title": "quick brown f"}}, "quick brown f"),
        ({"multi_match": {"query": "river spree", "fields": ["title", "text"]}}, "river spree"),
        ({"simple_query_string": {"query": "capital city"}}, "capital city"),
        ({"combined_fields": {"query": "capital city", "fields": ["a", "b"]}}, "capital city"),
    ],
)
def test_full_text_leaves(query: dict[str, Any], expected: str) -> None:
    assert find_text({"query": query}) == expected


@pytest.mark.parametrize(
    ("qs", "expected"),
    [
        ('title:berlin AND "wall fell"', "berlin wall fell"),
        ("(river OR lake) NOT sea", "river lake sea"),
        ("+capital -village^2 city~", "capital village 2 city"),
        ("text:popul* AND title:ber?in", "popul ber in"),
        ("C\\+\\+ programming", "C programming"),
    ],
)
def test_query_string_syntax_is_stripped(qs: str, expected: str) -> None:
    assert find_text({"query": {"query_string": {"query": qs}}}) == expected


def test_simple_query_string_syntax_is_stripped() -> None:
    body = {
        "query": {"simple_query_string": {"query": '"fried eggs" +(eggplant | potato) -frittata'}}
    }
    assert find_text(body) == "fried eggs eggplant potato frittata"


def test_bool_reads_must_and_should_but_not_filter_or_must_not() -> None:
    body = {
        "query": {
            "bool": {
                "must": [{"match": {"text": "berlin"}}],
                "should": {"match_phrase": {"title": "city wall"}},
                "filter": [{"match": {"lang": "german"}}],
                "must_not": {"match": {"text": "paris"}},
            }
        }
    }
    assert find_text(body) == "berlin city wall"


def test_filter_only_bool_has_no_text() -> None:
    body = {"query": {"bool": {"filter": [{"match": {"text": "berlin"}}]}}}
    assert find_text(body) is None


def test_constant_score_is_a_filter() -> None:
    body = {"query": {"constant_score": {"filter": MATCH}}}
    assert find_text(body) is None


@pytest.mark.parametrize(
    "query",
    [
        {"dis_max": {"queries": [MATCH, {"term": {"tag": "x"}}]}},
        {"function_score": {"query": MATCH, "functions": []}},
        {"script_score": {"query": MATCH, "script": {"source": "1"}}},
        {"boosting": {"positive": MATCH, "negative": {"match": {"text": "paris"}}}},
        {"nested": {"path": "comments", "query": MATCH}},
        {"has_child": {"type": "answer", "query": MATCH}},
        {"hybrid": {"queries": [MATCH, {"neural": {"v": {"query_text": "x", "k": 5}}}]}},
        {"bool": {"must": {"function_score": {"query": {"dis_max": {"queries": [MATCH]}}}}}},
    ],
)
def test_compound_queries(query: dict[str, Any]) -> None:
    assert find_text({"query": query}) == "berlin population"


def test_repeated_text_is_kept_once() -> None:
    body = {
        "query": {
            "bool": {"should": [{"match": {"title": "berlin"}}, {"match": {"text": "berlin"}}]}
        }
    }
    assert find_text(body) == "berlin"


def test_knn_alongside_a_query() -> None:
    body = {"query": MATCH, "knn": {"field": "v", "query_vector": [0.1, 0.2], "k": 5}}
    assert find_text(body) == "berlin population"


def test_knn_alone_with_vector_has_no_text() -> None:
    body = {"knn": {"field": "v", "query_vector": [0.1, 0.2], "k": 5, "num_candidates": 10}}
    assert find_text(body) is None


def test_knn_query_vector_builder_model_text() -> None:
    builder = {"text_embedding": {"model_id": "m", "model_text": "rivers of europe"}}
    body = {"knn": [{"field": "v", "k": 3, "query_vector_builder": builder}]}
    assert find_text(body) == "rivers of europe"


def test_retrievers_standard_inside_rrf() -> None:
    body = {
        "retriever": {
            "rrf": {
                "retrievers": [
                    {"standard": {"query": MATCH}},
                    {"knn": {"field": "v", "query_vector": [1.0], "k": 3}},
                ]
            }
        }
    }
    assert find_text(body) == "berlin population"


def test_retriever_wrapping_one_retriever() -> None:
    body = {
        "retriever": {
            "text_similarity_reranker": {
                "retriever": {"standard": {"query": {"multi_match": {"query": "spree"}}}}
            }
        }
    }
    assert find_text(body) == "spree"


def test_uri_q_is_stripped_of_syntax() -> None:
    assert find_text({}, "title:berlin AND wall") == "berlin wall"


def test_uri_q_and_body_query_both_count() -> None:
    assert find_text({"query": MATCH}, "capital") == "capital berlin population"


@pytest.mark.parametrize(
    "ext",
    [
        {"rerank": {"query_context": {"query_text": "  the  explicit text "}}},
        {"rerank": {"query": "the explicit text"}},
    ],
)
def test_explicit_text_wins(ext: dict[str, Any]) -> None:
    body = {"query": MATCH, "ext": ext}
    assert explicit_text(body) == "the explicit text"
    assert find_text(body, "other") == "the explicit text"


@pytest.mark.parametrize(
    "ext",
    [None, "text", {"rerank": "text"}, {"rerank": {"query": 3}}, {"rerank": {"query": "  "}}],
)
def test_unusable_explicit_text_falls_back_to_the_dsl(ext: Any) -> None:
    body = {"query": MATCH, "ext": ext}
    assert find_text(body) == "berlin population"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"query": {"match_all": {}}},
        {"query": {"term": {"tag": "berlin"}}},
        {"query": {"range": {"year": {"gte": 1990}}}},
        {"query": {"match": {"text": 42}}},
        {"query": {"multi_match": {"query": ["not", "a", "string"]}}},
        {"query": "match"},
        {"query": {"bool": {"must": "oops"}}},
        {"query": {"match": {"text": "   "}}},
    ],
)
def test_no_text(body: dict[str, Any]) -> None:
    assert find_text(body) is None


def test_deep_nesting_does_not_recurse_forever() -> None:
    node: dict[str, Any] = MATCH
    for _ in range(500):
        node = {"bool": {"must": [node]}}
    assert find_text({"query": node}) is None


def test_a_long_query_is_read_up_to_max_chars() -> None:
    words = " ".join(f"word{i}" for i in range(200_000))  # ~1.4 MB
    clauses = [{"match": {"text": words}} for _ in range(50)]
    for body in (
        {"query": {"match": {"text": words}}},
        {"query": {"bool": {"should": clauses}}},
        {"ext": {"rerank": {"query": words}}},
    ):
        text = find_text(body)
        assert text is not None and words.startswith(text)
        assert MAX_CHARS - 10 <= len(text) <= MAX_CHARS
    short = {"query": {"bool": {"should": [{"match": {"a": "berlin"}}, {"match": {"b": "wall"}}]}}}
    assert find_text(short) == "berlin wall"
