"""Reading request bodies for index names the way the cluster reads them."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from gateway.indices import name_allowed
from gateway.web.index_refs import Unreadable, body_names, bulk_names, load_object, msearch_names


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"query": {"match_all": {}}}, []),
        ({"query": {"terms": {"f": {"index": "a,b", "id": "1", "path": "p"}}}}, ["a", "b"]),
        ({"docs": [{"_index": "a"}, {"_index": ["b", 7]}]}, ["a", "b", "7"]),
        ({"x": {"indices": True, "target_index": False}}, ["true", "false"]),
        ({"query": {"range": {"index": {"gte": 1}}}}, []),  # an object: no name, walked into
        ({"a": [[{"b": {"index": "deep"}}]]}, ["deep"]),
        ({"index": None}, []),
    ],
)
def test_body_names(body: dict[str, Any], names: list[str]) -> None:
    assert sorted(body_names(body)) == sorted(names)


def test_wrapper_query_is_decoded_and_walked() -> None:
    inner = {"terms": {"f": {"index": "hidden", "id": "1", "path": "p"}}}
    wrapped = base64.b64encode(json.dumps({"bool": {"must": [inner]}}).encode()).decode()
    assert list(body_names({"query": {"wrapper": {"query": wrapped}}})) == ["hidden"]


@pytest.mark.parametrize(
    "body",
    [
        {"index": 1.5},
        {"index": [["a"]]},
        {"query": {"wrapper": {"query": "not base64!"}}},
        {"query": {"wrapper": {"query": base64.b64encode(b"[1]").decode()}}},
        {"query": {"wrapper": {"query": 12}}},
        {"query": {"rule": {"ruleset_ids": ["r"], "organic": {}}}},
    ],
)
def test_unreadable_bodies(body: dict[str, Any]) -> None:
    with pytest.raises(Unreadable):
        list(body_names(body))


@pytest.mark.parametrize(
    "raw",
    [b'{"a": 1, "a": 2}', b"[]", b'{"a": NaN}', b"{} {}", b'{"a": /* c */ 1}', b"\xff{}"],
)
def test_load_object_is_strict(raw: bytes) -> None:
    with pytest.raises(Unreadable):
        load_object(raw)


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b'{"index": "a"}\n{}\n', ["a"]),
        (b'{"indices": ["a", "b"]}\n{}\n', ["a", "b"]),
        # The cluster reads the blank line as an empty header: "b" heads the second search.
        (b'{}\n\n{"index": "b"}\n{}\n', ["b"]),
        (b'\n{"index": "b"}\n{}\n', ["b"]),
        (b'{}\r\n{"query": {"terms": {"f": {"index": "c"}}}}\r\n', ["c"]),
        (b'{"index": "a"}\n{}', ["a"]),  # no final newline: still read
        (b"  \n\t\n", []),
    ],
)
def test_msearch_names_every_line(body: bytes, names: list[str]) -> None:
    assert list(msearch_names(body)) == names


def test_msearch_refuses_a_line_it_cannot_read() -> None:
    with pytest.raises(Unreadable):
        list(msearch_names(b'{}\n{"query": 1\n'))


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b'{"index": {"_index": "a"}}\n{"index": "not-a-name"}\n', ["a"]),
        (b'{"delete": {"_index": "a"}}\n{"create": {"_index": "b"}}\n{}\n', ["a", "b"]),
        (b'{"update": {}}\n{"doc": {"_index": "x"}}\n', []),
    ],
)
def test_bulk_names_read_action_lines_only(body: bytes, names: list[str]) -> None:
    assert list(bulk_names(body)) == names


@pytest.mark.parametrize(
    "body",
    [
        b'{"index": {}}\n\n{}\n',
        b'{"index": {}}\n{}\n \n{"delete": {"_index": "x"}}\n',
        b'{"index": {}, "delete": {"_index": "x"}}\n',
        b'{"upsert": {}}\n{}\n',
    ],
)
def test_bulk_refuses_uncertain_pairing(body: bytes) -> None:
    with pytest.raises(Unreadable):
        list(bulk_names(body))


@pytest.mark.parametrize(
    ("name", "patterns", "allowed"),
    [
        ("docs", ["docs"], True),
        ("_all", ["*", "-secret"], False),
        ("-secret", ["*", "-x"], False),
        ("+docs", ["*", "-x"], False),
        ("<secret-{now/d}>", ["*", "-secret*"], False),
        ("logs-a:secret", ["logs-*"], False),
        ("eu:logs-a", ["eu:logs-*"], True),
        ("logs-a/../secret", ["logs-*"], False),
        ("logs-a\\x", ["logs-*"], False),
        ("logs-*", ["logs-*", "-logs-secret"], False),
    ],
)
def test_access_names_mean_only_what_they_spell(
    name: str, patterns: list[str], allowed: bool
) -> None:
    assert name_allowed(name, patterns, wildcard_safe=True) is allowed
