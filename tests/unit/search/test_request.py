"""A search request read once: the opt-in choice, the deadline, the parsed body."""

from __future__ import annotations

import pytest
from yarl import URL

from gateway.errors import ClientRequestError
from gateway.search.request import SearchRequest, deadline_ms


def _request(
    query: str = "", headers: dict[str, str] | None = None, raw: bytes = b""
) -> SearchRequest:
    url = URL("/docs/_search" + (f"?{query}" if query else ""))
    return SearchRequest("POST", url, "docs", headers or {}, raw)


@pytest.mark.parametrize(
    ("query", "headers", "choice"),
    [
        ("", {}, None),
        ("rerank", {}, True),
        ("rerank=OFF", {"X-Rerank": "on"}, False),  # the parameter wins
        ("", {"X-Rerank": " 1 "}, True),
        ("", {"X-Rerank": "false"}, False),
    ],
)
def test_the_choice_comes_from_the_parameter_then_the_header(
    query: str, headers: dict[str, str], choice: bool | None
) -> None:
    assert _request(query, headers).choice is choice


def test_an_unknown_choice_is_a_400() -> None:
    with pytest.raises(ClientRequestError) as caught:
        _ = _request("rerank=maybe").choice
    assert "Failed to parse value [maybe] of parameter [rerank]" in caught.value.reason


def test_the_media_type_and_the_body_parsed_on_first_use() -> None:
    req = _request(headers={"Content-Type": "Application/JSON; charset=utf-8"}, raw=b'{"size":1}')
    assert req.media_type == "application/json" and req.json_typed
    assert req.json == {"size": 1}
    assert req.json is req.json  # parsed once
    assert _request(raw=b"{bad").json is None


def test_ext_rerank_is_validated_and_a_rewritten_body_is_not_parsed_again() -> None:
    req = _request(raw=b'{"ext":{"rerank":{"window":5}}}')
    assert req.option == {"window": 5}
    plain = req.rewritten({"query": {"match_all": {}}})
    assert plain.raw == b'{"query":{"match_all":{}}}'
    assert plain.option == {}
    with pytest.raises(ClientRequestError):
        _ = _request(raw=b'{"ext":{"rerank":{"windw":5}}}').option


def test_the_deadline_from_ext_rerank_or_the_header() -> None:
    assert deadline_ms({"timeout_ms": 250}, {}) == 250.0
    assert deadline_ms({}, {"X-Rerank-Timeout-Ms": "40"}) == 40.0
    assert deadline_ms({}, {}) is None
    for bad in ({"timeout_ms": 0}, {"timeout_ms": True}, {"timeout_ms": "5"}):
        with pytest.raises(ClientRequestError):
            deadline_ms(bad, {})
    with pytest.raises(ClientRequestError):
        deadline_ms({}, {"X-Rerank-Timeout-Ms": "soon"})
