"""Everything the gateway does not rerank reaches the scripted upstream as sent, and back."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os

import pytest

from tests.doubles.corpora import WALL_SEARCH as SEARCH
from tests.doubles.gateway import Start
from tests.doubles.upstream import Canned, call
from tests.doubles.upstream import ScriptedUpstream as Scripted

VENDOR = "application/vnd.elasticsearch+json; compatible-with=9"


async def test_method_path_query_body_and_headers_reach_the_upstream(
    upstream: Scripted, start: Start
) -> None:
    url = await start()
    got = await call(
        "PUT",
        f"{url}/docs/_doc/a%2Fb?refresh=wait_for&routing=x",
        data=b'{"title": "x"}',
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic dXNlcjpwdw==",
            "X-Opaque-Id": "trace-1",
            "Connection": "keep-alive, X-Drop-Me",
            "X-Drop-Me": "hop",
            "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "Basic c2VjcmV0",
            "TE": "trailers",
        },
    )
    assert got.status == 200
    seen = upstream.last()
    assert (seen.method, seen.path_qs) == ("PUT", "/docs/_doc/a%2Fb?refresh=wait_for&routing=x")
    assert seen.body == b'{"title": "x"}'
    assert seen.headers["Authorization"] == "Basic dXNlcjpwdw=="
    assert seen.headers["X-Opaque-Id"] == "trace-1"
    for hop in ("X-Drop-Me", "Keep-Alive", "Proxy-Authorization", "TE"):
        assert hop not in seen.headers
    assert seen.headers["Host"] == upstream.url.split("//")[1]
    assert got.headers["X-Elastic-Product"] == "Elasticsearch"
    assert "X-Rerank" not in got.headers


async def test_configured_credentials_replace_the_clients(upstream: Scripted, start: Start) -> None:
    url = await start(upstream={"api_key": "c2VjcmV0"})
    await call("GET", f"{url}/docs", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert upstream.last().headers.getall("Authorization") == ["ApiKey c2VjcmV0"]


async def test_head_and_delete(upstream: Scripted, start: Start) -> None:
    url = await start()
    upstream.script(
        "/docs", Canned(status=404, body=b"", headers={"X-Elastic-Product": "Elasticsearch"})
    )
    got = await call("HEAD", f"{url}/docs")
    assert (got.status, got.body) == (404, b"")
    got = await call("DELETE", f"{url}/docs")
    assert got.status == 404
    assert [s.method for s in upstream.seen[-2:]] == ["HEAD", "DELETE"]


async def test_large_bodies_stream_both_ways_intact(upstream: Scripted, start: Start) -> None:
    url = await start()
    big = os.urandom(3 * 1024 * 1024)
    upstream.script(
        "/_bulk", Canned(body=big, headers={"Content-Type": "application/octet-stream"})
    )
    sent = b"\n".join(json.dumps({"index": {"_id": i}}).encode() for i in range(50_000)) + b"\n"
    got = await call(
        "POST",
        f"{url}/_bulk",
        data=io.BytesIO(sent),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert got.status == 200 and got.body == big
    assert upstream.last("/_bulk").body == sent


@pytest.mark.parametrize("path", ["/_bulk", "/docs/_search"])
async def test_gzip_request_bodies_arrive_consistent(
    upstream: Scripted, start: Start, path: str
) -> None:
    url = await start(rerank={"enabled": False})
    plain = json.dumps(SEARCH).encode()
    got = await call(
        "POST",
        url + path,
        data=gzip.compress(plain),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert got.status == 200
    seen = upstream.last(path)
    # Either still compressed and labelled so, or decoded and unlabelled: never a mix.
    if "Content-Encoding" in seen.headers:
        assert gzip.decompress(seen.body) == plain
    else:
        assert seen.body == plain


@pytest.mark.parametrize("path", ["/docs/_doc/1", "/docs/_search"])
@pytest.mark.parametrize("accepts", [True, False])
async def test_gzip_upstream_answers_reach_any_client(
    upstream: Scripted, start: Start, path: str, accepts: bool
) -> None:
    url = await start()
    payload = json.dumps({"found": True, "pad": "x" * 5000}).encode()
    if path.endswith("_search"):
        payload = json.dumps(
            {"hits": {"total": {"value": 0}, "hits": []}, "pad": "x" * 5000}
        ).encode()
    upstream.script(path, Canned(body=payload, gzip=True))
    headers = {"Accept-Encoding": "gzip"} if accepts else {"Accept-Encoding": "identity"}
    body = SEARCH if path.endswith("_search") else None
    got = await call(
        "POST" if body else "GET", url + path, body=body, headers=headers, auto_decompress=False
    )
    assert got.status == 200
    encoding = got.headers.get("Content-Encoding")
    raw = gzip.decompress(got.body) if encoding == "gzip" else got.body
    assert json.loads(raw)["pad"] == "x" * 5000
    if not accepts:
        assert encoding is None
    assert "gzip" not in upstream.last(path).headers.get("Accept-Encoding", "") or accepts


async def _raw_request(url: str, request: bytes) -> bytes:
    host, port = url.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    await writer.wait_closed()
    return data


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET http://evil.invalid:9999/_cat/indices HTTP/1.1",
        b"GET //evil.invalid/_cat/indices HTTP/1.1",
        b"GET http://evil.invalid/docs/_search HTTP/1.1",
    ],
)
async def test_no_request_reaches_another_host(
    upstream: Scripted, start: Start, request_line: bytes
) -> None:
    url = await start()
    before = len(upstream.seen)
    answer = await _raw_request(
        url,
        request_line
        + b"\r\nHost: evil.invalid\r\nX-Forwarded-Host: evil.invalid\r\nConnection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200")
    assert len(upstream.seen) == before + 1  # it went to the configured upstream, once
    seen = upstream.last()
    assert seen.headers["Host"] == upstream.url.split("//")[1]
    assert seen.path_qs.endswith(("/_cat/indices", "/docs/_search"))
    assert not seen.path_qs.startswith("http")


@pytest.mark.parametrize(
    ("flavor", "expected"), [("opensearch", "application/json"), ("elasticsearch", VENDOR)]
)
async def test_vendor_media_type(
    upstream: Scripted, start: Start, flavor: str, expected: str
) -> None:
    url = await start(upstream={"urls": [upstream.url], "flavor": flavor})
    headers = {"Content-Type": VENDOR, "Accept": VENDOR}
    await call("PUT", f"{url}/docs/_doc/1", data=b"{}", headers=headers)
    got = await call("POST", f"{url}/docs/_search", body=SEARCH, headers=headers)
    assert got.headers["X-Rerank"] == "full"
    for seen in (upstream.last("/docs/_doc/1"), upstream.last("/docs/_search")):
        assert seen.headers["Content-Type"] == expected
        assert seen.headers["Accept"] == expected


async def test_vendor_ndjson_for_opensearch(upstream: Scripted, start: Start) -> None:
    url = await start(upstream={"urls": [upstream.url], "flavor": "opensearch"})
    ndjson = "application/vnd.elasticsearch+x-ndjson; compatible-with=9"
    await call("POST", f"{url}/_bulk", data=b"{}\n", headers={"Content-Type": ndjson})
    assert upstream.last("/_bulk").headers["Content-Type"] == "application/x-ndjson"


@pytest.mark.parametrize("path", ["/docs/_doc/1", "/docs/_search"])
@pytest.mark.parametrize("status", [400, 404, 429, 500, 503])
async def test_upstream_errors_byte_for_byte(
    upstream: Scripted, start: Start, path: str, status: int
) -> None:
    url = await start()
    raw = b'{"error" : {"type" : "x", "reason" : "\\u00e9 odd  spacing"}, "status" : %d}' % status
    upstream.script(
        path,
        Canned(
            status=status,
            body=raw,
            headers={"Content-Type": "application/json", "Retry-After": "7"},
        ),
    )
    got = await call("POST", url + path, body=SEARCH)
    assert (got.status, got.body) == (status, raw)
    assert got.headers["Retry-After"] == "7"
    if path.endswith("_search"):
        assert (got.headers["X-Rerank"], got.headers["X-Rerank-Reason"]) == (
            "skipped",
            "upstream_status",
        )


@pytest.mark.parametrize("path", ["/docs/_doc/1", "/docs/_search"])
async def test_unreachable_upstream_is_an_es_shaped_502(start: Start, path: str) -> None:
    from tests.doubles.net import free_port

    url = await start(upstream={"urls": [f"http://127.0.0.1:{free_port()}"]})
    got = await call("POST", url + path, body=SEARCH)
    assert got.status == 502
    error = got.json()
    assert error["status"] == 502
    assert error["error"]["type"] == error["error"]["root_cause"][0]["type"]
    assert "127.0.0.1" not in got.body.decode()  # no internals leak


@pytest.mark.parametrize("path", ["/docs/_doc/1", "/docs/_search"])
async def test_slow_upstream_is_an_es_shaped_504(
    upstream: Scripted, start: Start, path: str
) -> None:
    url = await start(upstream={"urls": [upstream.url], "timeout_s": 0.3})
    upstream.script(path, Canned(delay_s=2.0))
    got = await call("POST", url + path, body=SEARCH)
    assert got.status == 504
    assert got.json()["error"]["root_cause"][0]["type"] == got.json()["error"]["type"]


@pytest.mark.parametrize("path", ["/docs/_doc/1", "/docs/_search", "/_msearch"])
async def test_body_over_the_limit_is_an_es_shaped_413(
    upstream: Scripted, start: Start, path: str
) -> None:
    url = await start(server={"max_body_bytes": 1000})
    before = len(upstream.seen)
    got = await call(
        "POST",
        url + path,
        data=b"{" + b" " * 2000 + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert got.status == 413
    error = got.json()
    assert error["status"] == 413 and error["error"]["root_cause"][0]["reason"]
    assert len(upstream.seen) == before


async def test_malformed_json_goes_upstream_unchanged(upstream: Scripted, start: Start) -> None:
    url = await start()
    verdict = b'{"error":{"root_cause":[],"type":"parsing_exception"},"status":400}'
    upstream.script("/docs/_search", Canned(status=400, body=verdict))
    broken = b'{"query": {"match": {"text": "berlin"}}, "ext": {"rerank": {}}'
    got = await call(
        "POST", f"{url}/docs/_search", data=broken, headers={"Content-Type": "application/json"}
    )
    assert (got.status, got.body) == (400, verdict)
    assert upstream.last("/docs/_search").body == broken
    assert (got.headers["X-Rerank"], got.headers["X-Rerank-Reason"]) == (
        "skipped",
        "unreadable_body",
    )


async def test_searches_ask_upstream_only_for_encodings_the_gateway_decodes(
    upstream: Scripted, start: Start
) -> None:
    url = await start()
    headers = {"Accept-Encoding": "br, zstd, gzip;q=0.8"}
    got = await call("POST", f"{url}/docs/_search", body=SEARCH, headers=headers)
    assert got.headers["X-Rerank"] == "full"
    assert upstream.last("/docs/_search").headers["Accept-Encoding"] == "gzip;q=0.8"
    await call("GET", f"{url}/docs/_doc/1", headers=headers)  # passthrough: as sent
    assert upstream.last("/docs/_doc/1").headers["Accept-Encoding"] == headers["Accept-Encoding"]


async def test_skipped_searches_relay_the_clusters_encoding_unread(
    upstream: Scripted, start: Start
) -> None:
    """X-Rerank: off: the cluster's answer goes back byte for byte, still compressed."""
    url = await start()
    payload = json.dumps({"hits": {"total": {"value": 0}, "hits": []}, "pad": "y" * 5000})
    upstream.script("/docs/_search", Canned(body=payload.encode(), gzip=True))
    headers = {"Accept-Encoding": "br, gzip", "X-Rerank": "off"}
    got = await call(
        "POST", f"{url}/docs/_search", body=SEARCH, headers=headers, auto_decompress=False
    )
    assert got.headers["X-Rerank"] == "skipped"
    assert got.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(got.body)) == json.loads(payload)
    # Not read by the gateway, so the client's own encodings are asked for.
    assert upstream.last("/docs/_search").headers["Accept-Encoding"] == "br, gzip"


async def test_chunked_answers_stream_back_without_hop_by_hop_headers(
    upstream: Scripted, start: Start
) -> None:
    url = await start()
    payload = os.urandom(256 * 1024)
    headers = {"Content-Type": "application/octet-stream", "Keep-Alive": "timeout=9", "X-Kept": "1"}
    upstream.script("/_snapshot/x", Canned(body=payload, headers=headers, chunks=7))
    got = await call("GET", f"{url}/_snapshot/x")
    assert got.body == payload
    assert got.headers["X-Kept"] == "1" and "Keep-Alive" not in got.headers
    assert got.headers["Transfer-Encoding"] == "chunked"
