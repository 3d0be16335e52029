"""The pipeline's answers: the URL sent on, outcomes summed up, unread answers."""

from __future__ import annotations

import json

from multidict import CIMultiDict
from yarl import URL

from gateway.search.result import forward_url, overall, unread
from gateway.upstream.client import Reply


def test_forward_url_drops_the_gateways_parameter_and_keeps_the_others_bytes() -> None:
    url = URL("/docs/_search?q=a%20b&rerank=true&size=3", encoded=True)
    assert forward_url(url) == "/docs/_search?q=a%20b&size=3"
    assert forward_url(url, ("size",)) == "/docs/_search?q=a%20b"
    assert forward_url(URL("/docs/_search?rerank")) == "/docs/_search"
    plain = URL("/docs/_search?q=x")
    assert forward_url(plain) == plain.raw_path_qs


def test_overall_is_full_only_when_every_search_is() -> None:
    assert overall(["full", "full"]) == "full"
    assert overall(["full", "skipped"]) == "partial"
    assert overall(["partial"]) == "partial"
    assert overall(["skipped"]) == overall([]) == "skipped"


def test_an_unread_answer_goes_back_verbatim_unless_trimmed() -> None:
    kind = CIMultiDict({"Content-Type": "application/json"})
    error = Reply(404, kind, b'{"error":"no index"}')
    result = unread(error, None, {})
    assert (result.verbatim, result.reason, result.body) == (True, "upstream_status", error.body)
    odd = Reply(200, kind, b'{"hits":7,"took":1}')
    assert unread(odd, {"hits": 7, "took": 1}, {}).reason == "upstream_body"
    trimmed = unread(odd, {"hits": 7, "took": 1}, {"filter_path": "took"})
    assert not trimmed.verbatim and json.loads(trimmed.body) == {"took": 1}
