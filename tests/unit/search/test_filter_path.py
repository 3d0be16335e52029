"""filter_path: Elasticsearch's FilterPath / FilterPathBasedFilter rules on plain dicts.

The same rules are checked against the cluster's own answers in
``tests/integration/test_fidelity.py``; these cover what an answer rarely shows.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.search.filter_path import FilterPath, from_params, glob

DOC: dict[str, Any] = {
    "took": 3,
    "hits": {
        "total": {"value": 2, "relation": "eq"},
        "hits": [
            {"_id": "a", "_score": 1.0, "fields": {"meta.summary": ["x"]}, "tags": ["p", "q"]},
            {"_id": "b", "_score": 0.5, "_source": {"meta": {"summary": "y"}}},
        ],
    },
}


def trim(value: str) -> dict[str, Any]:
    f = FilterPath.parse(value)
    assert f is not None
    return f.apply(DOC)


@pytest.mark.parametrize("value", ["", ",", " , ", "-"])
def test_nothing_to_filter(value: str) -> None:
    parsed = FilterPath.parse(value)
    assert parsed is None or parsed.apply(DOC) == DOC


def test_includes_keep_matched_subtrees_and_drop_empty_containers() -> None:
    assert trim("hits.hits._source.meta") == {
        "hits": {"hits": [{"_source": {"meta": {"summary": "y"}}}]}
    }
    assert trim("hits.hits.tags.x") == {}  # a scalar reached by a path prefix only


def test_double_wildcard_takes_one_level_or_more() -> None:
    assert trim("**._id") == {"hits": {"hits": [{"_id": "a"}, {"_id": "b"}]}}
    assert trim("**.took") == {}  # not zero levels
    assert trim("hits.**") == {"hits": DOC["hits"]}


def test_escaped_dot_matches_a_dotted_key() -> None:
    assert trim(r"hits.hits.fields.meta\.summary") == {
        "hits": {"hits": [{"fields": {"meta.summary": ["x"]}}]}
    }
    assert trim("hits.hits.fields.meta.summary") == {}


def test_shorter_path_wins_over_a_longer_one() -> None:
    assert trim("hits.total.value,hits.total") == trim("hits.total")
    assert trim("hits.total,hits.total.value") == {"hits": {"total": DOC["hits"]["total"]}}


def test_excludes_after_includes_keep_what_they_empty() -> None:
    assert trim("hits.total,-hits.total.*") == {"hits": {"total": {}}}
    assert trim("-hits.hits.*") == {**DOC, "hits": {**DOC["hits"], "hits": [{}, {}]}}


def test_glob_has_only_the_star() -> None:
    assert glob("h*s", "hits") and glob("*", "") and not glob("h?ts", "hits")
    assert glob("a[b]*", "a[b]c") and not glob("a.c", "abc")


def test_from_params_reads_the_first_value() -> None:
    assert from_params({}) is None
    f = from_params({"filter_path": "took"})
    assert f is not None and f.apply(DOC) == {"took": 3}
