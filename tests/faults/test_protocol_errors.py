"""HTTP the gateway cannot parse gets Elasticsearch's answer shape, never a 500 or plain text.

Elasticsearch answers every failure of its HTTP decoder with a 400 carrying the
cause (``RestController.dispatchBadRequest``), e.g. ``too_long_http_header_exception``
past ``http.max_header_size`` (16 KiB). The requests are written on a raw socket;
the scripted cluster records that none of them reached it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import signal
import sys
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from gateway.model.fake import FakeEncoder
from tests.doubles.corpora import REPO
from tests.doubles.gateway import GatewayFactory, settings_with
from tests.doubles.net import free_port, raw_connection
from tests.doubles.upstream import ScriptedUpstream, call
from tests.doubles.waits import wait_for

MARK = b"Sekr3tMark"  # in every bad request: must not come back in the answer
SEARCH = b'{"query": {"match": {"text": "capital"}}}'


def request(
    *headers: bytes, body: bytes = b"", line: bytes = b"POST /docs/_search HTTP/1.1"
) -> bytes:
    head = [line, b"Host: gateway", b"X-Mark: " + MARK, *headers]
    if body and not any(h.lower().startswith(b"transfer-encoding") for h in headers):
        head.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


# name → (raw request, ES error type)
MALFORMED: dict[str, tuple[bytes, str]] = {
    "header_over_16k": (request(b"X-Big: " + b"a" * 17_000), "too_long_http_header_exception"),
    "header_name_over_16k": (
        request(b"X-" + b"n" * 17_000 + b": 1"),
        "too_long_http_header_exception",
    ),
    "too_many_headers": (
        request(*(b"X-H%d: 1" % i for i in range(200))),
        "too_long_http_header_exception",
    ),
    "request_line_over_8k": (
        request(line=b"GET /" + MARK + b"a" * 9000 + b" HTTP/1.1"),
        "too_long_http_line_exception",
    ),
    "bad_chunk_size": (
        request(b"Transfer-Encoding: chunked", body=b"zz" + MARK + b"\r\n{}\r\n0\r\n\r\n"),
        "illegal_argument_exception",
    ),
    "control_char_in_header": (request(b"X-Bad: a\x01" + MARK), "illegal_argument_exception"),
    "nul_in_header": (request(b"X-Bad: a\x00" + MARK), "illegal_argument_exception"),
    "brotli_body": (request(b"Content-Encoding: br", body=SEARCH), "illegal_argument_exception"),
    "zstd_body": (request(b"Content-Encoding: zstd", body=SEARCH), "illegal_argument_exception"),
    "bad_method": (request(line=b"G(T / HTTP/1.1"), "illegal_argument_exception"),
    "bad_version": (request(line=b"GET / HTTP/7.1"), "illegal_argument_exception"),
    "tls_on_plain_port": (
        b"\x16\x03\x01\x00\xa5\x01\x00\x00" + MARK + b"\r\n\r\n",
        "illegal_argument_exception",
    ),
}
# Bodies that break only while the gateway reads them: the same answer, from the middleware.
BROKEN_BODIES: dict[str, bytes] = {
    "gzip_header_not_gzip": request(b"Content-Encoding: gzip", body=SEARCH + MARK),
    "deflate_header_not_deflate": request(b"Content-Encoding: deflate", body=SEARCH + MARK),
}


@dataclass
class Raw:
    status: int
    headers: CIMultiDict[str]
    body: bytes
    closed: bool

    def json(self) -> Any:
        return json.loads(self.body)


async def exchange(url: str, data: bytes) -> Raw:
    """``data`` on a fresh connection; the answer, and whether the gateway then closed."""
    async with raw_connection(url, data) as reader, asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers: CIMultiDict[str] = CIMultiDict()
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers.add(name, value.strip())
        body = await reader.readexactly(int(headers["Content-Length"]))
        closed = await reader.read(1) == b""
    return Raw(int(lines[0].split(" ")[1]), headers, body, closed)


def assert_es_400(got: Raw, error_type: str) -> None:
    assert got.status == 400, got.body[:300]
    assert got.headers["Content-Type"].startswith("application/json")
    assert got.headers["X-Elastic-Product"] == "Elasticsearch"
    body = got.json()
    assert body["status"] == 400
    assert body["error"]["type"] == error_type
    assert [c["type"] for c in body["error"]["root_cause"]] == [error_type]
    assert isinstance(body["error"]["reason"], str) and body["error"]["reason"]
    assert MARK not in got.body and MARK.lower() not in got.body.lower()
    assert got.closed, "the connection is closed after a request that could not be parsed"


@pytest.fixture
async def url(scripted: ScriptedUpstream, gateway: GatewayFactory) -> str:
    return await gateway(settings_with([scripted.url]), encoder=FakeEncoder())


def reached_cluster(scripted: ScriptedUpstream) -> list[str]:
    """What reached the cluster besides the gateway's own start-up reads (product, mappings)."""
    return [
        seen.path
        for seen in scripted.seen
        if seen.path != "/" and not seen.path.endswith("_mapping")
    ]


@pytest.mark.parametrize("name", sorted(MALFORMED))
async def test_malformed_http_is_an_es_400(scripted: ScriptedUpstream, url: str, name: str) -> None:
    raw, error_type = MALFORMED[name]
    assert_es_400(await exchange(url, raw), error_type)
    assert reached_cluster(scripted) == []


@pytest.mark.parametrize("name", sorted(BROKEN_BODIES))
@pytest.mark.parametrize("path", [b"/docs/_search", b"/docs/_msearch", b"/docs/_doc/1"])
async def test_body_not_matching_its_encoding_is_an_es_400(
    scripted: ScriptedUpstream, url: str, name: str, path: bytes
) -> None:
    raw = BROKEN_BODIES[name].replace(b"/docs/_search", path, 1)
    assert_es_400(await exchange(url, raw), "illegal_argument_exception")
    assert reached_cluster(scripted) == []


async def test_below_the_limits_requests_work(scripted: ScriptedUpstream, url: str) -> None:
    """A 12 KiB header (over aiohttp's 8 KiB default, under ES's 16 KiB) is accepted
    (the gateway's own endpoint answers it), and a real gzip body reaches the cluster."""
    got = await call("GET", f"{url}/_gateway/health/live", headers={"X-Big": "b" * 12_000})
    assert got.status == 200
    body = gzip.compress(SEARCH)
    got = await call(
        "POST",
        f"{url}/docs/_doc/2",
        data=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert got.status == 200
    assert scripted.seen[-1].body == SEARCH  # decoded once, sent without Content-Encoding
    assert "Content-Encoding" not in scripted.seen[-1].headers


async def test_the_entry_point_serves_this_protocol_and_stops_on_sigterm() -> None:
    """``python -m gateway`` itself: a malformed request gets the ES-shaped 400, and
    SIGTERM still ends it cleanly (exit status 0)."""
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "GATEWAY_SERVER__PORT": str(port),
        "GATEWAY_UPSTREAM__URLS": f"http://127.0.0.1:{free_port()}",
        "GATEWAY_MODEL__BACKEND": "tei",  # no model to load: searches would pass through
        "GATEWAY_MODEL__TEI_URL": f"http://127.0.0.1:{free_port()}",
        "GATEWAY_SERVER__START_WITHOUT_MODEL": "true",  # the TEI backend is not there
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", env=env, cwd=REPO, stderr=asyncio.subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}"

        async def live() -> bool:
            with contextlib.suppress(aiohttp.ClientError):
                return (await call("GET", f"{url}/_gateway/health/live")).status == 200
            return False

        await wait_for(live, what="the gateway process answering")
        raw, error_type = MALFORMED["control_char_in_header"]
        assert_es_400(await exchange(url, raw), error_type)
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            _, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert b"Traceback" not in stderr
    assert MARK not in stderr  # the request's bytes are not logged either
