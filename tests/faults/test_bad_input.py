"""A corpus of bad requests through the gateway in front of noida-db (Elasticsearch 8).

Bodies the gateway cannot read go to the cluster unchanged, so the client gets
the cluster's own verdict: for every input the gateway's status and error type
equal what the cluster answers directly. The gateway's own checks (body size,
its ``rerank`` options) answer in Elasticsearch's error shape. Nothing is a 500.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.model.fake import FakeEncoder
from tests.doubles.gateway import GatewayFactory, make_settings
from tests.doubles.upstream import Answer, call

MAX_BODY = 256 * 1024  # the 10,000-deep body (~90 kB) fits


def nested(depth: int) -> bytes:
    """A valid query that is ``depth`` bool clauses deep."""
    query: dict[str, object] = {"match": {"text": "berlin"}}
    for _ in range(depth):
        query = {"bool": {"must": [query]}}
    return json.dumps({"query": query}).encode()


# name → body, sent as application/json to POST /docs/_search.
JSON_BODIES: dict[str, bytes] = {
    "truncated": b'{"query": {"match": {"text": "berlin"',
    "invalid_json": b"{query: 1}",
    "trailing_garbage": b'{"size": 1} xyz',
    "invalid_utf8": b'{"query": {"match": {"text": "\xff\xfe berlin"}}}',
    "lone_surrogate": b'{"query": {"match": {"text": "\\ud800 berlin"}}}',
    "nul_bytes": b'{"query": {"match": {"text": "ber\x00lin"}}}',
    "nested_10000_objects": b'{"query":' * 10_000 + b"1" + b"}" * 10_000,
    "nested_10000_arrays": b"[" * 10_000 + b"]" * 10_000,
    "nested_bool_250": nested(250),
    "huge_integer": b'{"size": 1' + b"0" * 400 + b"}",
    "huge_float": b'{"size": 1e400}',
    "nan": b'{"size": NaN}',
    "infinity": b'{"from": Infinity}',
    "negative_from": b'{"from": -1, "query": {"match": {"text": "berlin"}}}',
    "negative_size": b'{"size": -5, "query": {"match": {"text": "berlin"}}}',
    "float_size": b'{"size": 2.5, "query": {"match": {"text": "berlin"}}}',
    "string_size": b'{"size": "ten", "query": {"match": {"text": "b"}}}',
    "bool_size": b'{"size": true, "query": {"match": {"text": "b"}}}',
    "size_1e9": b'{"size": 1000000000, "query": {"match": {"text": "b"}}}',
    "from_1e9": b'{"from": 1000000000, "query": {"match": {"text": "b"}}}',
    "duplicate_keys": b'{"size": 1, "size": 2, "query": {"match": {"text": "b"}}}',
    "unknown_query": b'{"query": {"frobnicate": {"text": "x"}}}',
    "query_not_object": b'{"query": "berlin"}',
    "sort_garbage": b'{"sort": [{"_score": 5}], "query": {"match": {"text": "b"}}}',
    "fields_garbage": b'{"fields": 7, "query": {"match": {"text": "berlin"}}}',
    "empty": b"",
    "whitespace": b"  \n ",
    "top_level_array": b"[1, 2]",
    "top_level_scalar": b"42",
    "null": b"null",
}
# name → (body, content type): the bodies sent as something else.
TYPED_BODIES: dict[str, tuple[bytes, str]] = {
    "text_plain": (b'{"query": {"match": {"text": "berlin"}}}', "text/plain"),
    "form_encoded": (b"query=berlin", "application/x-www-form-urlencoded"),
    "xml": (b"<query>berlin</query>", "application/xml"),
    "vendor_json": (
        b'{"query": {"match": {"text": "berlin"}}}',
        "application/vnd.elasticsearch+json; compatible-with=8",
    ),
}
BODIES = {**{n: (b, "application/json") for n, b in JSON_BODIES.items()}, **TYPED_BODIES}
SEARCH = '{"query": {"match": {"text": "berlin"}}, "size": 3}'
# Bodies the gateway could read only by repairing them: the cluster's own answer must come
# back, status and body (they go to it byte for byte).
UNREPAIRED: dict[str, bytes] = {
    "utf8_bom": b"\xef\xbb\xbf" + SEARCH.encode(),
    "utf16": SEARCH.encode("utf-16"),
    "utf16_le_no_bom": SEARCH.encode("utf-16-le"),
    "utf32": SEARCH.encode("utf-32"),
    "raw_surrogate": b'{"query": {"match": {"text": "\xed\xa0\x80 berlin"}}}',
    "huge_float_window": b'{"query": {"match": {"text": "berlin"}}, "min_score": 1e400}',
    "huge_negative_float": b'{"query": {"match": {"text": "berlin"}}, "min_score": -1e999}',
}
PARAMS = ["size=-1", "from=abc", "size=1e3", "size=1000000000", "q=%ff%fe", "from=-3&q=berlin"]
NDJSON = "application/x-ndjson"
MSEARCH: dict[str, bytes] = {
    "odd_lines": b'{}\n{"query": {"match": {"text": "berlin"}}}\n{}\n',
    "bad_line": b'{}\n{"query": {"match": {"text": "berlin"\n',
    "invalid_utf8": b'{}\n{"query": {"match": {"text": "\xff"}}}\n',
    "no_trailing_newline": b'{}\n{"query": {"match": {"text": "berlin"}}}',
    "blank_line_between": b'{}\n\n{"query": {"match": {"text": "berlin"}}}\n',
    "blank_line_at_end": b'{}\n{"query": {"match": {"text": "berlin"}}}\n\n',
    "whitespace_line": b'{}\n{"query": {"match": {"text": "berlin"}}}\n   \n{}\n{}\n',
    "raw_surrogate": b'{}\n{"query": {"match": {"text": "\xed\xa0\x80"}}}\n',
    "huge_float": b'{}\n{"query": {"match": {"text": "berlin"}}, "min_score": 1e400}\n',
    "bom": b'\xef\xbb\xbf{}\n{"query": {"match": {"text": "berlin"}}}\n',
    "head_not_object": b'[]\n{"query": {"match": {"text": "berlin"}}}\n',
}


def verdict(got: Answer) -> tuple[int, str | None]:
    """Status and, for an error, its ES error type (the body must have ES's error shape)."""
    assert got.status < 500, got.body[:300]
    if got.status < 400:
        json.loads(got.body)
        return got.status, None
    return got.status, got.es_error()


def same_answer(got: Answer, direct: Answer) -> None:
    """The gateway relayed the cluster's answer: same status, same body (``took`` aside)."""
    assert got.status < 500, got.body[:300]
    assert got.status == direct.status, got.body[:300]
    assert without_took(got.json()) == without_took(direct.json())


def without_took(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_took(v) for k, v in value.items() if k != "took"}
    if isinstance(value, list):
        return [without_took(v) for v in value]
    return value


@pytest.fixture
async def url(noida: str, gateway: GatewayFactory) -> str:
    settings = make_settings(noida, rerank={"window": 10}, server={"max_body_bytes": MAX_BODY})
    return await gateway(settings, encoder=FakeEncoder())


@pytest.mark.parametrize("name", sorted(BODIES))
async def test_body_gets_the_clusters_verdict(noida: str, url: str, name: str) -> None:
    body, ctype = BODIES[name]
    headers = {"Content-Type": ctype}
    direct = await call("POST", f"{noida}/docs/_search", data=body, headers=headers)
    got = await call("POST", f"{url}/docs/_search", data=body, headers=headers)
    assert verdict(got) == verdict(direct), got.body[:300]


@pytest.mark.parametrize("name", sorted(UNREPAIRED))
async def test_body_not_repaired(noida: str, url: str, name: str) -> None:
    headers = {"Content-Type": "application/json"}
    body = UNREPAIRED[name]
    direct = await call("POST", f"{noida}/docs/_search", data=body, headers=headers)
    got = await call("POST", f"{url}/docs/_search", data=body, headers=headers)
    same_answer(got, direct)
    assert got.headers["X-Rerank"] == "skipped"
    assert got.headers["X-Rerank-Reason"] == "unreadable_body"


@pytest.mark.parametrize("query", PARAMS)
async def test_params_get_the_clusters_verdict(noida: str, url: str, query: str) -> None:
    direct = await call("GET", f"{noida}/docs/_search?{query}")
    got = await call("GET", f"{url}/docs/_search?{query}")
    assert verdict(got) == verdict(direct), got.body[:300]


@pytest.mark.parametrize("name", sorted(MSEARCH))
async def test_msearch_gets_the_clusters_verdict(noida: str, url: str, name: str) -> None:
    headers = {"Content-Type": NDJSON}
    body = MSEARCH[name]
    direct = await call("POST", f"{noida}/docs/_msearch", data=body, headers=headers)
    got = await call("POST", f"{url}/docs/_msearch", data=body, headers=headers)
    assert verdict(got) == verdict(direct), got.body[:300]
    same_answer(got, direct)


@pytest.mark.parametrize("route", ["/docs/_search", "/docs/_msearch", "/docs/_doc/1", "/_bulk"])
async def test_body_over_limit_is_413(url: str, route: str) -> None:
    big = b'{"query": {"match": {"text": "' + b"x" * MAX_BODY + b'"}}}'
    got = await call("POST", url + route, data=big, headers={"Content-Type": "application/json"})
    assert got.status == 413
    assert got.es_error() == "content_too_long_exception"


async def test_chunked_body_over_limit_is_413(url: str) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(MAX_BODY // 1024 + 2):
            yield b" " * 1024

    got = await call(
        "POST",
        f"{url}/docs/_search",
        data=chunks(),  # type: ignore[arg-type]
        headers={"Content-Type": "application/json"},
    )
    assert got.status == 413
    assert got.es_error() == "content_too_long_exception"


@pytest.mark.parametrize(
    ("target", "body"),
    [
        ("/docs/_search?rerank=maybe", {"query": {"match": {"text": "berlin"}}}),
        ("/docs/_search", {"query": {"match": {"text": "berlin"}}, "ext": {"rerank": 5}}),
        ("/docs/_search", {"query": {"match": {"text": "b"}}, "ext": {"rerank": {"window": "x"}}}),
        ("/docs/_search", {"query": {"match": {"text": "b"}}, "ext": {"rerank": {"window": 1.5}}}),
    ],
)
async def test_gateway_options_are_illegal_arguments(url: str, target: str, body: object) -> None:
    got = await call("POST", url + target, body)
    assert got.status == 400
    assert got.es_error() == "illegal_argument_exception"


@pytest.mark.parametrize("route", ["/docs/_msearch", "/docs/_bulk", "/docs/_mget"])
async def test_unreadable_body_under_the_index_guard_is_refused(
    noida: str, gateway: GatewayFactory, route: str
) -> None:
    """With an index allow-list the gateway reads these bodies itself (to find index names);
    one too deep for it cannot be checked, so it is refused (403, deny by default), not a 500."""
    settings = make_settings(
        noida, access={"indices": ["docs"]}, server={"max_body_bytes": MAX_BODY}
    )
    url = await gateway(settings, encoder=FakeEncoder())
    deep = b'{"index":' * 10_000 + b"1" + b"}" * 10_000 + b"\n{}\n"
    got = await call("POST", url + route, data=deep, headers={"Content-Type": NDJSON})
    assert got.status == 403, got.body[:300]
    assert got.es_error() == "security_exception"
    assert b"cannot be checked" in got.body


async def test_unreadable_click_is_a_400(
    noida: str, gateway: GatewayFactory, redis_url: str
) -> None:
    experiment = {"name": "bad-input", "mode": "ab", "events_redis_url": redis_url}
    url = await gateway(make_settings(noida, experiment=experiment), encoder=FakeEncoder())
    deep = b"[" * 100_000 + b"]" * 100_000
    got = await call("POST", f"{url}/_gateway/events", data=deep)
    assert got.status == 400, got.body[:300]
    assert got.es_error() == "illegal_argument_exception"
